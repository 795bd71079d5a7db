//! Reference evaluator: docs/model.md v2 (R1–R17 and R5b, the action table,
//! "Reasons, in order") and docs/semantics-choices.md written the slow,
//! obvious way, one record at a time, directly on the data file types.
//!
//! It shares no code with `permd::index` and calls none of the model's rule
//! helpers (`Action::level`, `control`, `field_needs`, `gate`, `toggle`,
//! `contacts_only`, `is_record_less`, `reaches_archived`,
//! `ObjectPermissions::field_level`, `best_scope`,
//! `ContactState::has_valid_email`, `is_suppressed_at`,
//! `validate::object_fields`, `validate::catalog_violations`, …): the action
//! table, the field list of an object, a group's field levels, the catalog
//! rules and the Contact state rules are encoded again here from the text.
//! Only plain data (the data types, `Action`, `Toggle`, `Reason`,
//! `EmailStatus`, `EmailInbox`, the level enums and their documented
//! ordering) is shared.

use std::borrow::Cow;

use permd::model::data::{
    ContactState, EmailInbox, EmailStatus, Group, ObjectDef, ObjectPermissions, Record, RunAs,
    Tenant, User,
};
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

fn higher<T: Ord>(a: T, b: T) -> T {
    if a >= b { a } else { b }
}

fn lower<T: Ord>(a: T, b: T) -> T {
    if a <= b { a } else { b }
}

// ---------------------------------------------------------------------------
// Who is asking (R1, "Integration", "Automation", choices 4 and 19)
// ---------------------------------------------------------------------------

/// A principal as the rules see it: the user it acts as (whose groups,
/// admin flag, associations and inbox are its own), and that user's groups.
struct Acting<'t> {
    groups: Vec<&'t Group>,
    user: &'t User,
}

impl Acting<'_> {
    fn admin(&self) -> bool {
        self.user.admin
    }

    /// The sender of R13 (choice 19).
    fn inbox(&self) -> EmailInbox {
        self.user.email_inbox
    }
}

fn groups_named<'t>(t: &'t Tenant, names: &[&String]) -> Vec<&'t Group> {
    t.groups
        .iter()
        .filter(|g| names.iter().any(|n| **n == g.id))
        .collect()
}

/// Every principal acts as exactly one user: itself, its integration's
/// user, or the user (or integration's user) an automation runs as.
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
                user,
            })
        }
        Kind::Integration => {
            let integration = t.integrations.iter().find(|i| i.id == id)?;
            // An integration has no groups of its own: it is its user.
            let user = integration.user.as_deref()?;
            acting(t, Kind::User, user)
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
// Objects and their fields (choices 1 and 14)
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

/// The fields permissions apply to: the system fields (the Contact ones on
/// `contacts`, `created` on every custom object), plain fields,
/// team-association fields, relationship fields.
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
    } else {
        add("created");
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

/// What one group gives one field of `object` (R7, choices 14 and 15): the
/// level it states; unstated, its `default_for_new_field`, except Contacts'
/// `email` (`edit` when a scope of the group is at `edit` or above, else at
/// most `view`) and a custom object's `created` (at most `view`).
fn group_field_level(object: &str, op: &ObjectPermissions, field: &str) -> FieldLevel {
    if let Some(level) = op.fields.get(field) {
        return *level;
    }
    let default = op.default_for_new_field;
    let scope = higher(op.all_records, op.associated_records);
    if object == CONTACTS && field == "email" {
        if scope >= AccessLevel::Edit {
            FieldLevel::Edit
        } else {
            lower(default, FieldLevel::View)
        }
    } else if object != CONTACTS && field == "created" {
        lower(default, FieldLevel::View)
    } else {
        default
    }
}

// ---------------------------------------------------------------------------
// The catalog rules (R5, R5b, R7), checked again from the text
// ---------------------------------------------------------------------------

/// One catalog rule of a group's entry for an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CatalogRule {
    /// R5: `associated_records` missing or `none`.
    AssociatedNone,
    /// R5: `associated_records` below `all_records`.
    AssociatedBelowAll,
    /// R5b: `create_record` with `associated_records` below `edit`.
    CreateWithoutEdit,
    /// R5b: `bulk_data_upload` without `create_record`.
    UploadWithoutCreate,
    /// R5b: `unarchive_all` without `unarchive_associated`.
    UnarchiveAllWithoutAssociated,
    /// R7: Contacts' `email` stated at a level the group's scopes forbid.
    EmailForScope,
    /// R7: a custom object's `created` stated `edit`.
    CreatedEdit,
}

impl CatalogRule {
    pub const ALL: [CatalogRule; 7] = [
        Self::AssociatedNone,
        Self::AssociatedBelowAll,
        Self::CreateWithoutEdit,
        Self::UploadWithoutCreate,
        Self::UnarchiveAllWithoutAssociated,
        Self::EmailForScope,
        Self::CreatedEdit,
    ];

    /// The rule's id in docs/model.md.
    pub fn rule(self) -> &'static str {
        match self {
            Self::AssociatedNone | Self::AssociatedBelowAll => "R5",
            Self::CreateWithoutEdit
            | Self::UploadWithoutCreate
            | Self::UnarchiveAllWithoutAssociated => "R5b",
            Self::EmailForScope | Self::CreatedEdit => "R7",
        }
    }

    /// The setting at fault (the key under the group's entry).
    pub fn control(self) -> &'static str {
        match self {
            Self::AssociatedNone | Self::AssociatedBelowAll => "associated_records",
            Self::CreateWithoutEdit => "create_record",
            Self::UploadWithoutCreate => "bulk_data_upload",
            Self::UnarchiveAllWithoutAssociated => "unarchive_all",
            Self::EmailForScope => "email",
            Self::CreatedEdit => "created",
        }
    }
}

/// A group's entry for an object that breaks a catalog rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CatalogBreak {
    pub group: String,
    pub object: String,
    pub rule: CatalogRule,
}

/// Every catalog rule every group of `t` breaks, on the objects of `t`.
pub fn catalog_breaks(t: &Tenant) -> Vec<CatalogBreak> {
    let objects = object_names(t);
    let mut out = Vec::new();
    for group in &t.groups {
        for (object, op) in &group.objects {
            if !objects.contains(object) {
                continue;
            }
            for rule in entry_breaks(object, op) {
                out.push(CatalogBreak {
                    group: group.id.clone(),
                    object: object.clone(),
                    rule,
                });
            }
        }
    }
    out
}

/// The catalog rules one group's entry for `object` breaks.
pub fn entry_breaks(object: &str, op: &ObjectPermissions) -> Vec<CatalogRule> {
    use AccessLevel::{Edit, None as NoLevel};
    let mut out = Vec::new();
    if op.associated_records == NoLevel {
        out.push(CatalogRule::AssociatedNone);
    }
    if op.associated_records < op.all_records {
        out.push(CatalogRule::AssociatedBelowAll);
    }
    if op.create_record && op.associated_records < Edit {
        out.push(CatalogRule::CreateWithoutEdit);
    }
    if op.bulk_data_upload && !op.create_record {
        out.push(CatalogRule::UploadWithoutCreate);
    }
    if op.unarchive_all && !op.unarchive_associated {
        out.push(CatalogRule::UnarchiveAllWithoutAssociated);
    }
    if object == CONTACTS
        && let Some(level) = op.fields.get("email")
    {
        let editable = op.all_records >= Edit || op.associated_records >= Edit;
        let allowed = if editable {
            *level == FieldLevel::Edit
        } else {
            *level == FieldLevel::None || *level == FieldLevel::View
        };
        if !allowed {
            out.push(CatalogRule::EmailForScope);
        }
    }
    if object != CONTACTS && op.fields.get("created") == Some(&FieldLevel::Edit) {
        out.push(CatalogRule::CreatedEdit);
    }
    out
}

// ---------------------------------------------------------------------------
// Effective permissions on one object (R1–R7, R5b, choices 2 and 20)
// ---------------------------------------------------------------------------

struct Perms {
    view_object: bool,
    edit_settings: bool,
    delete_object: bool,
    all: AccessLevel,
    assoc: AccessLevel,
    create_record: bool,
    bulk_data_upload: bool,
    unarchive_associated: bool,
    unarchive_all: bool,
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
            .unwrap_or(FieldLevel::None)
    }

    fn best(&self) -> AccessLevel {
        higher(self.all, self.assoc)
    }
}

fn perms(who: &Acting<'_>, def: &ObjectDef) -> Perms {
    let fields = fields_of(def);
    if who.admin() {
        // Everything, `email` and `created` at `edit` included: the R7
        // catalog rules bind groups, not admins.
        return Perms {
            view_object: true,
            edit_settings: true,
            delete_object: true,
            all: AccessLevel::Remove,
            assoc: AccessLevel::Remove,
            create_record: true,
            bulk_data_upload: true,
            unarchive_associated: true,
            unarchive_all: true,
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
        create_record: false,
        bulk_data_upload: false,
        unarchive_associated: false,
        unarchive_all: false,
        toggles: Vec::new(),
        fields: fields
            .iter()
            .map(|f| (f.clone(), FieldLevel::None))
            .collect(),
    };
    for group in &who.groups {
        // A group that says nothing of the object adds nothing.
        let Some(op) = group.objects.get(&def.name) else {
            continue;
        };
        p.view_object = p.view_object || op.view_object;
        p.edit_settings = p.edit_settings || op.edit_settings;
        p.delete_object = p.delete_object || op.delete_object;
        p.all = higher(p.all, op.all_records);
        p.assoc = higher(p.assoc, op.associated_records);
        p.create_record = p.create_record || op.create_record;
        p.bulk_data_upload = p.bulk_data_upload || op.bulk_data_upload;
        p.unarchive_associated = p.unarchive_associated || op.unarchive_associated;
        p.unarchive_all = p.unarchive_all || op.unarchive_all;
        for t in &op.actions {
            if !p.toggles.contains(t) {
                p.toggles.push(*t);
            }
        }
        for (name, level) in p.fields.iter_mut() {
            *level = higher(*level, group_field_level(&def.name, op, name));
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
    /// a channel, in ObjectAccess: "Email ≥ view, or Mobile Phone ≥ view").
    AnyOf(Vec<(String, FieldLevel)>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GateKind {
    Email,
    Sms,
    Subscription { bulk: bool },
}

/// What a record action that goes through a scope needs: the level, the
/// toggle, the fields, the gate. `create`, `upload` and `unarchive` have
/// no row here: they need controls (R5b, R10), handled in [`decide`].
struct Needs {
    level: AccessLevel,
    toggle: Option<Toggle>,
    fields: FieldRule,
    gate: Option<GateKind>,
}

fn one(field: &str, level: FieldLevel) -> FieldRule {
    FieldRule::Each(vec![(field.to_owned(), level)])
}

/// The row of "What each action needs" for an action that goes through a
/// scope; `None` for `create`, `upload` and `unarchive`. `ctx = None` is
/// "no request context" (ObjectAccess, choice 8).
fn needs(action: Action, ctx: Option<&ActionContext>) -> Option<Needs> {
    use AccessLevel::{Edit, Remove, View};
    use FieldLevel::{Edit as FEdit, View as FView};
    let n = |level, toggle, fields, gate| {
        Some(Needs {
            level,
            toggle,
            fields,
            gate,
        })
    };
    let named_fields = || match ctx {
        Some(c) => FieldRule::Each(c.fields.iter().map(|f| (f.clone(), FEdit)).collect()),
        None => FieldRule::Nothing,
    };
    match action {
        Action::Create | Action::Upload | Action::Unarchive => None,
        Action::View => n(View, None, FieldRule::Nothing, None),
        Action::Edit => n(Edit, None, named_fields(), None),
        Action::Archive => n(Remove, None, FieldRule::Nothing, None),
        Action::Export => n(View, Some(Toggle::Export), FieldRule::Nothing, None),
        Action::BulkExport => n(View, Some(Toggle::BulkExport), FieldRule::Nothing, None),
        Action::BulkChangeFieldValues => n(
            Edit,
            Some(Toggle::BulkChangeFieldValues),
            named_fields(),
            None,
        ),
        Action::BulkArchive => n(Remove, Some(Toggle::BulkArchive), FieldRule::Nothing, None),
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

/// Choice 16: `create` and `upload` act on the object, not on a record.
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

/// What a request must carry (choice 11, the table's required parameters,
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
// Association (R8, R9, choice 3)
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
// Contact state and the sender (R12–R15, choices 5, 6 and 19)
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
    sender: EmailInbox,
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
            if !t.email_configured || sender == EmailInbox::NotConnected {
                return Some(Reason::EmailNotConfigured);
            }
            if sender == EmailInbox::Blocked {
                return Some(Reason::SenderBlocked);
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

    // R5b, choice 16: no record, no scope; the object visible and the
    // control on.
    if record_less(action) {
        if record.is_some() {
            return invalid("create/upload take no record");
        }
        if !p.visible() {
            return Ok(Some(Reason::ObjectNotVisible));
        }
        let control = if action == Action::Create {
            p.create_record
        } else {
            p.bulk_data_upload
        };
        if !control {
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
    let user = who.user.id.as_str();

    // R10, choice 17: `unarchive` needs the record archived, then its
    // controls stand in for a scope.
    if action == Action::Unarchive {
        if !r.archived {
            return Ok(Some(Reason::NotArchived));
        }
        let reached = p.unarchive_all || (p.unarchive_associated && associated(t, &def, r, user));
        if !reached {
            return Ok(Some(Reason::NoRecordAccess));
        }
        return Ok(None);
    }
    if r.archived {
        return Ok(Some(Reason::Archived));
    }
    let Some(need) = needs(action, Some(ctx)) else {
        return invalid("no row for the action");
    };
    let by_all = p.all >= need.level;
    let by_assoc = p.assoc >= need.level && associated(t, &def, r, user);
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
        return Ok(gate_reason(t, who.inbox(), gate, r, ctx, now));
    }
    Ok(None)
}

/// The field mask of `object` (R7, choice 2): the union over the
/// principal's groups, all `edit` for an admin, all `none` on an object the
/// principal cannot see. What an allowed answer carries; a denied Check or
/// RecordAccess position carries none.
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
            .map(|(f, _)| (f, FieldLevel::None))
            .collect())
    }
}

/// The mask a `Check` answer carries (choice 2): the object's mask when
/// allowed, none when denied.
pub fn check_mask(
    t: &Tenant,
    principal: (Kind, &str),
    object: &str,
    answer: Option<Reason>,
) -> Result<Vec<(String, FieldLevel)>, Invalid> {
    let mask = field_mask(t, principal, object)?;
    Ok(if answer.is_none() { mask } else { Vec::new() })
}

/// R16 flags of one visible object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectFlags {
    pub object: String,
    pub view: bool,
    pub edit: bool,
    pub remove: bool,
    pub create_record: bool,
    pub bulk_data_upload: bool,
    pub unarchive: bool,
    pub single_actions: Vec<Action>,
    pub bulk_actions: Vec<Action>,
    pub field_mask: Vec<(String, FieldLevel)>,
}

/// R16 / choice 8: flags of every visible object (or of the one named, if
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
        let mut single = Vec::new();
        let mut bulk = Vec::new();
        for action in Action::ALL {
            if contacts_only(action) && def.name != CONTACTS {
                continue;
            }
            // Only actions with a toggle are listed: create, upload and
            // unarchive are reported by their flags.
            let Some(need) = needs(action, None) else {
                continue;
            };
            let Some(toggle) = need.toggle else {
                continue;
            };
            let on = p.toggles.contains(&toggle)
                && p.best() >= need.level
                && fields_pass(&need.fields, &p);
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
            create_record: p.create_record,
            bulk_data_upload: p.bulk_data_upload,
            unarchive: p.unarchive_associated || p.unarchive_all,
            single_actions: single,
            bulk_actions: bulk,
            field_mask: p.fields.clone(),
        });
    }
    let create_objects = who.admin() || who.groups.iter().any(|g| g.create_objects);
    Ok((out, create_objects))
}

/// R17 flags of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFlags {
    pub record_id: Uuid,
    pub view: bool,
    pub edit: bool,
    pub remove: bool,
    pub unarchive: bool,
    pub field_mask: Vec<(String, FieldLevel)>,
}

/// R17 / choice 9: `view` = `view` allowed; `edit` = `view` and `edit` (no
/// fields named) allowed; `remove` = `view` and `archive` allowed;
/// `unarchive` = `unarchive` allowed; the mask only on records that can be
/// viewed.
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
        let unarchive = allowed(Action::Unarchive)?;
        out.push(RecordFlags {
            record_id: *id,
            view,
            edit,
            remove,
            unarchive,
            field_mask: if view { mask.clone() } else { Vec::new() },
        });
    }
    Ok(out)
}
