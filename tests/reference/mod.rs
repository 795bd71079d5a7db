//! Reference evaluator: docs/model.md (R1–R17, the action table, "Reasons, in
//! order") and docs/semantics-choices.md written the slow, obvious way, one
//! record at a time, directly on the data file types.
//!
//! It shares no code with `permd::index` and calls none of the model's rule
//! helpers (`Action::level`, `field_needs`, `gate`, `toggle`,
//! `contacts_only`, `ContactState::has_valid_email`, `is_suppressed_at`,
//! `validate::object_fields`, …): the action table, the field list of an
//! object and the Contact state rules are encoded again here from the text.
//! Only plain data (the data types, `Action`, `Toggle`, `Reason`,
//! `EmailStatus`, the level enums and their documented ordering) is shared.

use std::borrow::Cow;

use permd::model::data::{ContactState, EmailStatus, Group, ObjectDef, Record, RunAs, Tenant};
use permd::model::{AccessLevel, Action, ActionContext, Channel, FieldLevel, Reason, Toggle};
use time::OffsetDateTime;
use uuid::Uuid;

/// The kinds of principal (docs/model.md "Principal").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    User,
    Integration,
    Automation,
}

/// A request the engine must refuse (INVALID_ARGUMENT / NOT_FOUND) rather
/// than answer with a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub String);

fn invalid<T>(why: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(why.into()))
}

const CONTACTS: &str = "contacts";

// ---------------------------------------------------------------------------
// Who is asking (R1, R8, choice 5)
// ---------------------------------------------------------------------------

/// A principal as the rules see it: its groups, the admin flag, and the user
/// whose associations count as its own.
struct Acting<'t> {
    groups: Vec<&'t Group>,
    admin: bool,
    user: Option<&'t str>,
}

fn groups_named<'t>(t: &'t Tenant, names: &[&String]) -> Vec<&'t Group> {
    t.groups
        .iter()
        .filter(|g| names.iter().any(|n| **n == g.id))
        .collect()
}

fn acting<'t>(t: &'t Tenant, kind: Kind, id: &str) -> Option<Acting<'t>> {
    match kind {
        Kind::User => {
            let user = t.users.iter().find(|u| u.id == id)?;
            let mut names: Vec<&String> = Vec::new();
            for role_id in &user.roles {
                for role in t.roles.iter().filter(|r| r.id == *role_id) {
                    names.extend(role.groups.iter());
                }
            }
            names.extend(user.groups.iter());
            Some(Acting {
                groups: groups_named(t, &names),
                admin: user.admin,
                user: Some(user.id.as_str()),
            })
        }
        Kind::Integration => {
            let integration = t.integrations.iter().find(|i| i.id == id)?;
            let names: Vec<&String> = integration.groups.iter().collect();
            let user = integration
                .user
                .as_deref()
                .and_then(|u| t.users.iter().find(|x| x.id == u))
                .map(|u| u.id.as_str());
            Some(Acting {
                groups: groups_named(t, &names),
                // `admin` is a user flag; an integration never has it.
                admin: false,
                user,
            })
        }
        Kind::Automation => {
            let automation = t.automations.iter().find(|a| a.id == id)?;
            match &automation.run_as {
                RunAs::User(u) => acting(t, Kind::User, u),
                RunAs::Integration(i) => acting(t, Kind::Integration, i),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Objects and their fields (choice 2)
// ---------------------------------------------------------------------------

fn object_def<'t>(t: &'t Tenant, name: &str) -> Option<Cow<'t, ObjectDef>> {
    match t.objects.iter().find(|o| o.name == name) {
        Some(def) => Some(Cow::Borrowed(def)),
        None if name == CONTACTS => Some(Cow::Owned(ObjectDef {
            name: CONTACTS.to_owned(),
            ..ObjectDef::default()
        })),
        None => None,
    }
}

/// Every object of the tenant: `contacts` always exists.
pub fn object_names(t: &Tenant) -> Vec<String> {
    let mut names = vec![CONTACTS.to_owned()];
    for o in &t.objects {
        if !names.contains(&o.name) {
            names.push(o.name.clone());
        }
    }
    names
}

/// The fields permissions apply to: plain fields (plus the Contact system
/// fields), team-association fields, relationship fields.
pub fn fields_of(def: &ObjectDef) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |f: &str| {
        if !out.iter().any(|x| x == f) {
            out.push(f.to_owned());
        }
    };
    if def.name == CONTACTS {
        for f in [
            "email",
            "email_status",
            "mobile_phone",
            "tags",
            "timezone",
            "birthday",
        ] {
            add(f);
        }
    }
    for f in &def.fields {
        add(f);
    }
    for f in &def.team_fields {
        add(f);
    }
    for r in &def.relationships {
        add(&r.field);
    }
    out
}

// ---------------------------------------------------------------------------
// Effective permissions on one object (R1–R7, choice 1, choice 3)
// ---------------------------------------------------------------------------

struct Perms {
    view_object: bool,
    edit_settings: bool,
    delete_object: bool,
    all: AccessLevel,
    assoc: AccessLevel,
    toggles: Vec<Toggle>,
    /// Per field of the object, in `fields_of` order.
    fields: Vec<(String, FieldLevel)>,
}

impl Perms {
    /// R3.
    fn visible(&self) -> bool {
        self.view_object || self.all != AccessLevel::None || self.assoc != AccessLevel::None
    }

    fn field(&self, name: &str) -> FieldLevel {
        self.fields
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, l)| *l)
            .unwrap_or(FieldLevel::Hidden)
    }
}

fn perms(who: &Acting<'_>, def: &ObjectDef) -> Perms {
    let fields = fields_of(def);
    if who.admin {
        return Perms {
            view_object: true,
            edit_settings: true,
            delete_object: true,
            all: AccessLevel::Delete,
            assoc: AccessLevel::Delete,
            toggles: Toggle::ALL.to_vec(),
            fields: fields.into_iter().map(|f| (f, FieldLevel::Edit)).collect(),
        };
    }
    let mut p = Perms {
        view_object: false,
        edit_settings: false,
        delete_object: false,
        all: AccessLevel::None,
        assoc: AccessLevel::None,
        toggles: Vec::new(),
        fields: fields
            .iter()
            .map(|f| (f.clone(), FieldLevel::Hidden))
            .collect(),
    };
    for group in &who.groups {
        let Some(op) = group.objects.get(&def.name) else {
            continue;
        };
        p.view_object = p.view_object || op.view_object;
        p.edit_settings = p.edit_settings || op.edit_settings;
        p.delete_object = p.delete_object || op.delete_object;
        if op.all_records > p.all {
            p.all = op.all_records;
        }
        if op.associated_records > p.assoc {
            p.assoc = op.associated_records;
        }
        for t in &op.actions {
            if !p.toggles.contains(t) {
                p.toggles.push(*t);
            }
        }
        for (name, level) in p.fields.iter_mut() {
            let here = match op.fields.get(name.as_str()) {
                Some(l) => *l,
                None => op.fields.get("*").copied().unwrap_or(FieldLevel::Hidden),
            };
            if here > *level {
                *level = here;
            }
        }
    }
    p
}

// ---------------------------------------------------------------------------
// The action table
// ---------------------------------------------------------------------------

enum FieldRule {
    Nothing,
    /// Every listed field at least at its level.
    Each(Vec<(String, FieldLevel)>),
    /// At least one listed field at its level (send_single_message without
    /// a channel: "Email ≥ view, or Mobile Phone ≥ view").
    AnyOf(Vec<(String, FieldLevel)>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GateKind {
    Email,
    Sms,
    Subscription { bulk: bool },
}

struct Needs {
    level: AccessLevel,
    toggle: Option<Toggle>,
    fields: FieldRule,
    gate: Option<GateKind>,
}

fn one(field: &str, level: FieldLevel) -> FieldRule {
    FieldRule::Each(vec![(field.to_owned(), level)])
}

/// The row of "What each action needs". `ctx = None` is "no request
/// context" (ObjectAccess, choice 11).
fn needs(action: Action, ctx: Option<&ActionContext>) -> Needs {
    use AccessLevel::{Delete, Edit, View};
    use FieldLevel::{Edit as FEdit, View as FView};
    let n = |level, toggle, fields, gate| Needs {
        level,
        toggle,
        fields,
        gate,
    };
    let named_fields = || match ctx {
        Some(c) => FieldRule::Each(c.fields.iter().map(|f| (f.clone(), FEdit)).collect()),
        None => FieldRule::Nothing,
    };
    match action {
        Action::View => n(View, None, FieldRule::Nothing, None),
        Action::Edit => n(Edit, None, named_fields(), None),
        Action::Create => n(Edit, None, FieldRule::Nothing, None),
        Action::Archive | Action::Unarchive | Action::ViewArchived => {
            n(Delete, None, FieldRule::Nothing, None)
        }
        Action::Export => n(View, Some(Toggle::Export), FieldRule::Nothing, None),
        Action::BulkExport => n(View, Some(Toggle::BulkExport), FieldRule::Nothing, None),
        Action::Upload => n(Edit, Some(Toggle::Upload), FieldRule::Nothing, None),
        Action::BulkChangeFieldValues => n(
            Edit,
            Some(Toggle::BulkChangeFieldValues),
            named_fields(),
            None,
        ),
        Action::BulkArchive => n(Delete, Some(Toggle::BulkArchive), FieldRule::Nothing, None),
        Action::ModifyAutomation => n(
            Edit,
            Some(Toggle::ModifyAutomation),
            FieldRule::Nothing,
            None,
        ),
        Action::BulkModifyAutomation => n(
            Edit,
            Some(Toggle::BulkModifyAutomation),
            FieldRule::Nothing,
            None,
        ),
        Action::SendSingleMessage => {
            let t = Some(Toggle::SendSingleMessage);
            match ctx.map(|c| c.channel) {
                Some(Some(Channel::Email)) => {
                    n(View, t, one("email", FView), Some(GateKind::Email))
                }
                Some(Some(Channel::Text)) => {
                    n(View, t, one("mobile_phone", FView), Some(GateKind::Sms))
                }
                // No channel: whatever channel it will be, one of the two
                // fields must be visible.
                _ => n(
                    View,
                    t,
                    FieldRule::AnyOf(vec![
                        ("email".to_owned(), FView),
                        ("mobile_phone".to_owned(), FView),
                    ]),
                    None,
                ),
            }
        }
        Action::BulkSendEmail => n(
            View,
            Some(Toggle::BulkSendEmail),
            one("email", FView),
            Some(GateKind::Email),
        ),
        Action::BulkSendSurvey => n(
            View,
            Some(Toggle::BulkSendSurvey),
            one("email", FView),
            Some(GateKind::Email),
        ),
        Action::BulkSendText => n(
            View,
            Some(Toggle::BulkSendText),
            one("mobile_phone", FView),
            Some(GateKind::Sms),
        ),
        Action::BulkChangeTags => n(Edit, Some(Toggle::BulkChangeTags), one("tags", FEdit), None),
        Action::TeamAssociations => n(
            Edit,
            Some(Toggle::TeamAssociations),
            FieldRule::Nothing,
            None,
        ),
        Action::SubscriptionLists => {
            let t = Some(Toggle::SubscriptionLists);
            let changing = ctx.is_some_and(|c| c.target_email_status.is_some());
            if changing {
                n(
                    Edit,
                    t,
                    one("email_status", FEdit),
                    Some(GateKind::Subscription { bulk: false }),
                )
            } else {
                n(View, t, one("email_status", FView), None)
            }
        }
        Action::BulkManageSubscription => n(
            Edit,
            Some(Toggle::BulkManageSubscription),
            one("email_status", FEdit),
            Some(GateKind::Subscription { bulk: true }),
        ),
        Action::ViewTimeline => n(View, Some(Toggle::ViewTimeline), FieldRule::Nothing, None),
    }
}

/// R6: the actions that exist only on `contacts`.
pub fn contacts_only(action: Action) -> bool {
    matches!(
        action,
        Action::SendSingleMessage
            | Action::TeamAssociations
            | Action::SubscriptionLists
            | Action::ViewTimeline
            | Action::BulkSendEmail
            | Action::BulkSendText
            | Action::BulkSendSurvey
            | Action::BulkChangeTags
            | Action::BulkManageSubscription
    )
}

/// Choice 10: `create` and `upload` act on the object, not on a record.
pub fn record_less(action: Action) -> bool {
    matches!(action, Action::Create | Action::Upload)
}

fn is_bulk(action: Action) -> bool {
    matches!(
        action,
        Action::BulkExport
            | Action::BulkChangeFieldValues
            | Action::BulkArchive
            | Action::BulkModifyAutomation
            | Action::BulkSendEmail
            | Action::BulkSendSurvey
            | Action::BulkSendText
            | Action::BulkChangeTags
            | Action::BulkManageSubscription
    )
}

fn fields_pass(rule: &FieldRule, p: &Perms) -> bool {
    match rule {
        FieldRule::Nothing => true,
        FieldRule::Each(list) => list.iter().all(|(f, l)| p.field(f) >= *l),
        FieldRule::AnyOf(list) => list.iter().any(|(f, l)| p.field(f) >= *l),
    }
}

fn toggle_on(toggle: Option<Toggle>, p: &Perms) -> bool {
    toggle.is_none_or(|t| p.toggles.contains(&t))
}

/// What a request must carry (choice 14, the table's required parameters,
/// and fields that exist).
fn check_request(def: &ObjectDef, action: Action, ctx: &ActionContext) -> Result<(), Invalid> {
    if contacts_only(action) && def.name != CONTACTS {
        return invalid(format!("{} only on contacts", action.as_str()));
    }
    match action {
        Action::SendSingleMessage if ctx.channel.is_none() => {
            return invalid("send_single_message needs a channel");
        }
        Action::BulkManageSubscription if ctx.target_email_status.is_none() => {
            return invalid("bulk_manage_subscription needs a target");
        }
        Action::BulkChangeFieldValues if ctx.fields.is_empty() => {
            return invalid("bulk_change_field_values needs fields");
        }
        _ => {}
    }
    if matches!(action, Action::Edit | Action::BulkChangeFieldValues) {
        let known = fields_of(def);
        if let Some(f) = ctx.fields.iter().find(|f| !known.contains(f)) {
            return invalid(format!("unknown field {f}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Association (R8, R9, choice 4)
// ---------------------------------------------------------------------------

fn directly_associated(r: &Record, user: &str) -> bool {
    r.owner.as_deref() == Some(user)
        || r.teams
            .values()
            .any(|users| users.iter().any(|u| u == user))
        || r.interactions.iter().any(|u| u == user)
}

fn linked(a: &Record, b: &Record) -> bool {
    a.links.values().any(|ids| ids.contains(&b.id))
        || b.links.values().any(|ids| ids.contains(&a.id))
}

fn associated(t: &Tenant, def: &ObjectDef, r: &Record, user: &str) -> bool {
    use permd::model::data::AssociationSource::{Both, Direct, Related};
    let direct = || directly_associated(r, user);
    let related = || {
        t.records
            .iter()
            .any(|other| linked(r, other) && directly_associated(other, user))
    };
    match def.association_source {
        Direct => direct(),
        Related => related(),
        Both => direct() || related(),
    }
}

// ---------------------------------------------------------------------------
// Contact state (R12–R15, choices 7 and 8)
// ---------------------------------------------------------------------------

fn has_email(c: Option<&ContactState>) -> bool {
    match c {
        None => false,
        Some(c) => match &c.email {
            None => false,
            Some(e) => c.email_valid && !e.trim().is_empty(),
        },
    }
}

fn has_mobile(c: Option<&ContactState>) -> bool {
    match c {
        None => false,
        Some(c) => match &c.mobile_phone {
            None => false,
            Some(m) => c.mobile_valid && !m.trim().is_empty(),
        },
    }
}

fn suppressed_now(c: Option<&ContactState>, now: OffsetDateTime) -> bool {
    let Some(c) = c else {
        return false;
    };
    let flagged = c.suppressed || c.email_status == EmailStatus::Suppressed;
    if !flagged {
        return false;
    }
    match c.suppressed_until {
        None => true,
        Some(until) => now < until,
    }
}

/// The subscription status under any suppression.
fn base_status(c: Option<&ContactState>) -> EmailStatus {
    match c.map(|c| c.email_status) {
        None | Some(EmailStatus::Suppressed) => EmailStatus::NotOptedIn,
        Some(s) => s,
    }
}

fn gate_reason(
    t: &Tenant,
    gate: GateKind,
    r: &Record,
    ctx: &ActionContext,
    now: OffsetDateTime,
) -> Option<Reason> {
    let c = r.contact.as_ref();
    match gate {
        GateKind::Email => {
            if !has_email(c) {
                return Some(Reason::NoEmail);
            }
            if suppressed_now(c, now) {
                return Some(Reason::Suppressed);
            }
            if base_status(c) == EmailStatus::UnsubscribedAll && !ctx.transactional {
                return Some(Reason::Unsubscribed);
            }
            if let (Some(list), Some(c)) = (&ctx.subscription_list, c)
                && c.opted_out_lists.iter().any(|l| l == list)
            {
                return Some(Reason::OptedOutOfList);
            }
            if !t.email_configured {
                return Some(Reason::EmailNotConfigured);
            }
            None
        }
        GateKind::Sms => {
            if !has_mobile(c) {
                return Some(Reason::NoMobile);
            }
            if c.is_some_and(|c| c.sms_opted_out) {
                return Some(Reason::SmsOptedOut);
            }
            if !t.sms_configured {
                return Some(Reason::SmsNotConfigured);
            }
            None
        }
        GateKind::Subscription { bulk } => {
            let target = ctx.target_email_status;
            if suppressed_now(c, now) || target == Some(EmailStatus::Suppressed) {
                return Some(Reason::SystemManaged);
            }
            if bulk
                && base_status(c) == EmailStatus::UnsubscribedAll
                && target == Some(EmailStatus::OptedIn)
            {
                return Some(Reason::SingleRecordOnly);
            }
            None
        }
    }
}

// ---------------------------------------------------------------------------
// The decisions
// ---------------------------------------------------------------------------

/// One decision: `Ok(None)` = allowed, `Ok(Some(reason))` = denied with the
/// first reason in docs/model.md order, `Err` = a request to refuse.
pub fn decide(
    t: &Tenant,
    principal: (Kind, &str),
    object: &str,
    action: Action,
    ctx: &ActionContext,
    record: Option<Uuid>,
    now: OffsetDateTime,
) -> Result<Option<Reason>, Invalid> {
    let Some(who) = acting(t, principal.0, principal.1) else {
        return invalid("unknown principal");
    };
    let Some(def) = object_def(t, object) else {
        return invalid("unknown object");
    };
    check_request(&def, action, ctx)?;
    let p = perms(&who, &def);
    let need = needs(action, Some(ctx));

    if record_less(action) {
        if record.is_some() {
            return invalid("create/upload take no record");
        }
        if !p.visible() {
            return Ok(Some(Reason::ObjectNotVisible));
        }
        if p.all < AccessLevel::Edit && p.assoc < AccessLevel::Edit {
            return Ok(Some(Reason::NoRecordAccess));
        }
        if !toggle_on(need.toggle, &p) {
            return Ok(Some(Reason::ActionNotPermitted));
        }
        return Ok(None);
    }
    let Some(id) = record else {
        return invalid("record action without record");
    };
    let Some(r) = t
        .records
        .iter()
        .find(|r| r.id == id && r.object == def.name)
    else {
        return Ok(Some(Reason::UnknownRecord));
    };
    if !p.visible() {
        return Ok(Some(Reason::ObjectNotVisible));
    }
    if r.archived && !matches!(action, Action::ViewArchived | Action::Unarchive) {
        return Ok(Some(Reason::Archived));
    }
    let by_all = p.all >= need.level;
    let by_assoc = p.assoc >= need.level && who.user.is_some_and(|u| associated(t, &def, r, u));
    if !by_all && !by_assoc {
        return Ok(Some(Reason::NoRecordAccess));
    }
    if !toggle_on(need.toggle, &p) {
        return Ok(Some(Reason::ActionNotPermitted));
    }
    if !fields_pass(&need.fields, &p) {
        return Ok(Some(Reason::FieldRestricted));
    }
    if let Some(gate) = need.gate {
        return Ok(gate_reason(t, gate, r, ctx, now));
    }
    Ok(None)
}

/// The field mask returned with an answer on `object` (R7, choice 3): the
/// union over the principal's groups, all `edit` for an admin, all `hidden`
/// on an object the principal cannot see.
pub fn field_mask(
    t: &Tenant,
    principal: (Kind, &str),
    object: &str,
) -> Result<Vec<(String, FieldLevel)>, Invalid> {
    let Some(who) = acting(t, principal.0, principal.1) else {
        return invalid("unknown principal");
    };
    let Some(def) = object_def(t, object) else {
        return invalid("unknown object");
    };
    let p = perms(&who, &def);
    if p.visible() {
        Ok(p.fields)
    } else {
        Ok(p.fields
            .into_iter()
            .map(|(f, _)| (f, FieldLevel::Hidden))
            .collect())
    }
}

/// R16 flags of one visible object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectFlags {
    pub object: String,
    pub view: bool,
    pub edit: bool,
    pub remove: bool,
    pub create_records: bool,
    pub single_actions: Vec<Action>,
    pub bulk_actions: Vec<Action>,
    pub field_mask: Vec<(String, FieldLevel)>,
}

/// R16 / choice 11: flags of every visible object (or of the one named, if
/// visible), and the global `create_objects`.
pub fn object_access(
    t: &Tenant,
    principal: (Kind, &str),
    object: Option<&str>,
) -> Result<(Vec<ObjectFlags>, bool), Invalid> {
    let Some(who) = acting(t, principal.0, principal.1) else {
        return invalid("unknown principal");
    };
    let names = match object {
        Some(name) if object_def(t, name).is_none() => return invalid("unknown object"),
        Some(name) => vec![name.to_owned()],
        None => object_names(t),
    };
    let mut out = Vec::new();
    for name in names {
        let Some(def) = object_def(t, &name) else {
            continue;
        };
        let p = perms(&who, &def);
        if !p.visible() {
            continue;
        }
        let best = if p.all > p.assoc { p.all } else { p.assoc };
        let mut single = Vec::new();
        let mut bulk = Vec::new();
        for action in Action::ALL {
            if contacts_only(action) && def.name != CONTACTS {
                continue;
            }
            let need = needs(action, None);
            let Some(toggle) = need.toggle else {
                continue;
            };
            let on =
                p.toggles.contains(&toggle) && best >= need.level && fields_pass(&need.fields, &p);
            if !on {
                continue;
            }
            if is_bulk(action) {
                bulk.push(action);
            } else {
                single.push(action);
            }
        }
        out.push(ObjectFlags {
            object: name.clone(),
            view: p.view_object,
            edit: p.edit_settings,
            remove: p.delete_object,
            create_records: best >= AccessLevel::Edit,
            single_actions: single,
            bulk_actions: bulk,
            field_mask: p.fields.clone(),
        });
    }
    let create_objects = who.admin || who.groups.iter().any(|g| g.create_objects);
    Ok((out, create_objects))
}

/// R17 flags of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFlags {
    pub record_id: Uuid,
    pub view: bool,
    pub edit: bool,
    pub remove: bool,
    pub field_mask: Vec<(String, FieldLevel)>,
}

/// R17 / choice 12: `view` = `view` allowed; `edit` = `view` and `edit` (no
/// fields named) allowed; `remove` = `view` and `archive` allowed; the mask
/// only on records that can be viewed.
pub fn record_access(
    t: &Tenant,
    principal: (Kind, &str),
    object: &str,
    ids: &[Uuid],
    now: OffsetDateTime,
) -> Result<Vec<RecordFlags>, Invalid> {
    let mask = field_mask(t, principal, object)?;
    let ctx = ActionContext::default();
    let mut out = Vec::new();
    for id in ids {
        let allowed = |action| {
            decide(t, principal, object, action, &ctx, Some(*id), now).map(|r| r.is_none())
        };
        let view = allowed(Action::View)?;
        let edit = view && allowed(Action::Edit)?;
        let remove = view && allowed(Action::Archive)?;
        out.push(RecordFlags {
            record_id: *id,
            view,
            edit,
            remove,
            field_mask: if view { mask.clone() } else { Vec::new() },
        });
    }
    Ok(out)
}
