//! Random tenants for the property tests: one generator, with knobs.
//!
//! Generation is in two steps. Proptest draws a [`TenantSpec`]: plain
//! numbers (flags, counts, and indexes into what they will point at), which
//! it shrinks toward small, simple tenants. [`build`] then resolves the spec
//! into a [`Tenant`] following a [`Shape`]: the names it may use, how many of
//! each entity, how often each feature is on. An index is taken modulo the
//! length of what it points at, and a group's settings are held to the
//! catalog rules of model v2 (R5, R5b, R7), so every spec builds a valid
//! tenant; the tests assert that with `validate` anyway. The one exception
//! is asked for: with [`Shape::catalog_breaks`] some group entries break
//! one catalog rule each ([`Break`]), and [`repaired`] takes the breaks out.
//!
//! The same spec type serves every shape, so a knob that one test turns is
//! there for the others: [`Shape::default`] is one tenant with every
//! feature and names of its own (the comparison with the reference
//! evaluator, tests/property.rs); tests/isolation.rs draws ids from pools
//! several tenants share; tests/changes.rs draws Contact states alone
//! ([`contact_states`]). The contexts requests carry are generated here too
//! ([`ctx_spec`], [`build_ctx`]), since they name the generated fields and
//! lists.

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;

use permd::index::{PrincipalKind, PrincipalRef};
use permd::model::data::{
    AssociationSource, Automation, ContactState, DataFile, EmailInbox, EmailStatus, Group,
    Integration, ObjectDef, ObjectPermissions, Record, Relationship, Role, RunAs, Tenant, User,
};
use permd::model::validate::object_fields;
use permd::model::{AccessLevel, Action, ActionContext, Channel, FieldLevel, Toggle};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde::Serialize;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

// ===========================================================================
// Knobs
// ===========================================================================

/// A name a generated tenant may use. In a file of several tenants, shared
/// names are where a leak between tenants would show; a tenant's own names
/// are what must never show up in an answer about another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Name {
    /// The same in every tenant.
    Fixed(String),
    /// `<kind>-only-<tenant>`: only this tenant has it.
    Own(&'static str),
    /// The next tenant's own name (`<kind>-only-<next tenant>`): never
    /// this tenant's, so a record naming it names nobody here.
    NextOwn(&'static str),
}

pub fn fixed(names: &[&str]) -> Vec<Name> {
    names.iter().map(|n| Name::Fixed((*n).to_owned())).collect()
}

/// `<prefix>0`, `<prefix>1`, …
pub fn numbered(prefix: &str, n: usize) -> Vec<Name> {
    (0..n)
        .map(|i| Name::Fixed(format!("{prefix}{i}")))
        .collect()
}

/// The ids of one kind of entity (groups, users, …) and how many there are.
#[derive(Clone, Debug)]
pub struct Pool {
    pub names: Vec<Name>,
    /// Each entity draws its name from the pool, and the first to draw a
    /// name keeps it (so tenants of one file share some ids and not
    /// others); otherwise the entities take the names in order.
    pub drawn: bool,
    /// How many entities the spec holds (with `drawn`, before repeats
    /// collapse); in order, at most the number of names.
    pub count: RangeInclusive<usize>,
}

impl Pool {
    /// Names `<prefix>0…`, as many as `count` may ask for, taken in order.
    pub fn numbered(prefix: &str, count: RangeInclusive<usize>) -> Pool {
        Pool {
            names: numbered(prefix, *count.end()),
            drawn: false,
            count,
        }
    }

    pub fn drawn(names: Vec<Name>, count: RangeInclusive<usize>) -> Pool {
        Pool {
            names,
            drawn: true,
            count,
        }
    }
}

/// Where record ids come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordIds {
    /// A fresh id per record ([`record_id`]): every record of the tenant
    /// has its own.
    Sequential,
    /// `shared` ids every tenant of the file may use ([`shared_id`]) and
    /// `own` ids per tenant ([`own_id`]); the first record to draw an id
    /// keeps it.
    Drawn { shared: usize, own: usize },
}

/// What an id a record links to that is not a record of the target object
/// here stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Foreign {
    /// The [`mirror_id`] of a record of the target object: a record of the
    /// [`mirror`] tenant, which exists, but not here.
    Mirror,
    /// Any id any tenant of the file may hold ([`Shape::universe`]): a
    /// record of another tenant, one nobody has, or one of this tenant's.
    AnyId,
}

/// How a link picks its target, from a generated `u16`: below
/// `dangling_below` an id no record has, below `foreign_below` a
/// [`Foreign`] id, else a record of the target object here. Links to a
/// record here of another object are dropped (the file would be refused).
#[derive(Clone, Copy, Debug)]
pub struct Links {
    pub dangling_below: u16,
    pub foreign_below: u16,
    pub foreign: Foreign,
}

/// The Contact states drawn: how often each gate has something to say.
#[derive(Clone, Debug)]
pub struct ContactShape {
    pub email_valid: f64,
    pub suppressed: f64,
    /// How often a suppression (or a `suppressed` status) has an end.
    pub until: f64,
    /// The end, in `step`s from `base`: some over, some not yet.
    pub until_steps: RangeInclusive<i64>,
    pub step: Duration,
    pub base: OffsetDateTime,
    /// The subscription lists a Contact may have opted out of.
    pub lists: [&'static str; 2],
    pub opted_out: f64,
    pub mobile_valid: f64,
    pub sms_opted_out: f64,
}

/// The instant [`ContactShape::default`] counts suppression ends from.
pub const BASE: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

/// Subscription lists: the first two are the ones Contacts opt out of by
/// default, the third one nobody opted out of.
pub const LISTS: [&str; 3] = ["news", "promo", "other"];

impl Default for ContactShape {
    fn default() -> Self {
        ContactShape {
            email_valid: 0.85,
            suppressed: 0.2,
            until: 0.6,
            // Three hours either side of BASE, in quarter hours.
            until_steps: -12..=12,
            step: Duration::minutes(15),
            base: BASE,
            lists: [LISTS[0], LISTS[1]],
            opted_out: 0.25,
            mobile_valid: 0.85,
            sms_opted_out: 0.2,
        }
    }
}

impl ContactShape {
    /// The instant `steps` steps from `base`.
    pub fn at(&self, steps: i64) -> OffsetDateTime {
        self.base + Duration::seconds(self.step.whole_seconds() * steps)
    }
}

/// The knobs of the generator: what a generated tenant may hold.
#[derive(Clone, Debug)]
pub struct Shape {
    /// The tenants of a file; [`build`] builds the `t`-th.
    pub tenants: Vec<String>,
    /// Object slots. Slot 0 is `contacts` and always there; the others are
    /// each present with `object_present`.
    pub objects: Vec<Name>,
    pub object_present: f64,
    /// How often `contacts` is listed among the objects (unlisted, it has
    /// the system fields only).
    pub contacts_listed: f64,
    /// Plain fields an object may declare (at most 8: a bitmask picks).
    pub fields: Vec<Name>,
    /// Team fields an object may declare, the first so many of these.
    pub team_fields: Vec<Name>,
    /// Relationship fields an object may declare, the first so many.
    pub relationship_fields: Vec<Name>,
    pub groups: Pool,
    pub roles: Pool,
    pub users: Pool,
    pub integrations: Pool,
    pub automations: Pool,
    pub admin: f64,
    /// How often a user is a service account.
    pub service_account: f64,
    /// Weights of a user's `email_inbox`: connected, not connected,
    /// blocked (R13's sender gate).
    pub inbox: [u32; 3],
    /// How often a group's entry for an object breaks one catalog rule
    /// (R5, R5b, R7; see [`Break`]): such a tenant is refused, and
    /// [`repaired`] gives the same spec with every entry keeping the rules.
    /// 0 unless a test asks for refusals.
    pub catalog_breaks: f64,
    /// How many records the spec holds (before drawn ids collapse).
    pub records: RangeInclusive<usize>,
    pub record_ids: RecordIds,
    /// Names a record may give (owner, team member, interaction) that are
    /// not necessarily a user here; a record names one of them when the
    /// generated byte is below `stranger_share`, else one of the tenant's
    /// users.
    pub strangers: Vec<Name>,
    pub stranger_share: u8,
    pub links: Links,
    pub archived: f64,
    pub contact: ContactShape,
}

impl Default for Shape {
    /// One tenant, `acme`, with every feature: contacts (sometimes
    /// unlisted) and up to two more objects, up to 4 plain, 2 team and 2
    /// relationship fields each, entities named in order (`g0`, `u0`, …),
    /// and up to 120 records naming a user nobody has one time in twenty
    /// and linking to records that do not exist or exist only in the
    /// [`mirror`] tenant. Users have every `email_inbox`; groups keep the
    /// catalog rules.
    fn default() -> Self {
        Shape {
            tenants: vec!["acme".to_owned()],
            objects: fixed(&["contacts", "deals", "tickets"]),
            object_present: 0.75,
            contacts_listed: 0.7,
            // contacts may list a system field again: still one field.
            fields: fixed(&["f0", "f1", "f2", "birthday"]),
            team_fields: numbered("team", 2),
            relationship_fields: numbered("rel", 2),
            groups: Pool::numbered("g", 1..=5),
            roles: Pool::numbered("r", 0..=3),
            users: Pool::numbered("u", 1..=6),
            integrations: Pool::numbered("i", 0..=2),
            automations: Pool::numbered("a", 0..=3),
            admin: 0.12,
            service_account: 0.25,
            inbox: [6, 2, 2],
            catalog_breaks: 0.0,
            records: 0..=120,
            record_ids: RecordIds::Sequential,
            strangers: fixed(&["ghost"]),
            stranger_share: 12,
            links: Links {
                dangling_below: 1500,
                foreign_below: 3000,
                foreign: Foreign::Mirror,
            },
            archived: 0.15,
            contact: ContactShape::default(),
        }
    }
}

/// Tenant `t` of a file holding the first `n` tenants of a shape: what its
/// names resolve to.
#[derive(Clone, Copy)]
struct Here<'a> {
    shape: &'a Shape,
    t: usize,
    n: usize,
}

impl Here<'_> {
    fn name(&self, name: &Name) -> String {
        let own = |kind: &str, t: usize| format!("{kind}-only-{}", self.shape.tenants[t]);
        match name {
            Name::Fixed(n) => n.clone(),
            Name::Own(kind) => own(kind, self.t),
            Name::NextOwn(kind) => own(kind, (self.t + 1) % self.n),
        }
    }
}

impl Shape {
    /// Every record id any tenant of the file may hold (with
    /// `RecordIds::Drawn`): the shared ones first, then each tenant's own.
    pub fn universe(&self) -> Vec<Uuid> {
        match self.record_ids {
            RecordIds::Sequential => Vec::new(),
            RecordIds::Drawn { shared, own } => {
                let mut ids: Vec<Uuid> = (0..shared).map(shared_id).collect();
                for t in 0..self.tenants.len() {
                    ids.extend((0..own).map(|k| own_id(t, k)));
                }
                ids
            }
        }
    }
}

/// Record `k` of object slot `slot`, with `RecordIds::Sequential`.
pub fn record_id(slot: usize, k: usize) -> Uuid {
    Uuid::from_u128(((slot as u128 + 1) << 96) | k as u128)
}

/// A record UUID every tenant may use.
pub fn shared_id(k: usize) -> Uuid {
    Uuid::from_u128(0x5a5a_0000_0000_4000_8000_0000_0000_0000 | k as u128)
}

/// A record UUID only tenant `t` may use.
pub fn own_id(t: usize, k: usize) -> Uuid {
    Uuid::from_u128(0xbbbb_0000_0000_4000_8000_0000_0000_0000 | ((t as u128) << 8) | k as u128)
}

/// The id record `id` has in the [`mirror`] tenant.
pub fn mirror_id(id: Uuid) -> Uuid {
    Uuid::from_u128(id.as_u128() ^ (0xdec0_u128 << 64))
}

/// The same tenant under another id, every user an admin, email and SMS
/// on, every record id (and link) its [`mirror_id`]: in a file beside `t`,
/// none of it may leak into answers about `t`.
pub fn mirror(t: &Tenant, id: &str) -> Tenant {
    let mut d = t.clone();
    d.id = id.to_owned();
    d.email_configured = true;
    d.sms_configured = true;
    for u in &mut d.users {
        u.admin = true;
    }
    for r in &mut d.records {
        r.id = mirror_id(r.id);
        for ids in r.links.values_mut() {
            for id in ids.iter_mut() {
                *id = mirror_id(*id);
            }
        }
    }
    d
}

// ===========================================================================
// Specs and their strategies
// ===========================================================================

#[derive(Clone, Debug)]
pub struct ObjectSpec {
    /// Ignored for slot 0 (contacts is always there).
    pub present: bool,
    /// Bit i: field i of `Shape::fields`.
    pub fields: u8,
    /// How many of `Shape::team_fields`.
    pub team_fields: usize,
    /// One per relationship field: the object slot it links to.
    pub relationships: Vec<u8>,
    pub source: AssociationSource,
}

/// One catalog rule a group's entry for an object can break (R5, R5b, R7).
/// [`permissions`] breaks exactly that rule and keeps the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Break {
    /// `associated_records: none` (R5).
    AssociatedNone,
    /// `associated_records` below `all_records` (R5).
    AssociatedBelowAll,
    /// `create_record` with `associated_records: view` (R5b).
    CreateWithoutEdit,
    /// `bulk_data_upload` without `create_record` (R5b).
    UploadWithoutCreate,
    /// `unarchive_all` without `unarchive_associated` (R5b).
    UnarchiveAllWithoutAssociated,
    /// Contacts' `email` stated at a level the scopes forbid (R7); on a
    /// custom object, [`Break::CreatedEdit`].
    EmailForScope,
    /// A custom object's `created` stated `edit` (R7); on `contacts`,
    /// [`Break::EmailForScope`].
    CreatedEdit,
}

impl Break {
    pub const ALL: [Break; 7] = [
        Self::AssociatedNone,
        Self::AssociatedBelowAll,
        Self::CreateWithoutEdit,
        Self::UploadWithoutCreate,
        Self::UnarchiveAllWithoutAssociated,
        Self::EmailForScope,
        Self::CreatedEdit,
    ];

    /// The rule this break is on `object`: the field rules swap between
    /// `contacts` and custom objects.
    pub fn on(self, object: &str) -> Break {
        match (self, object == "contacts") {
            (Self::EmailForScope, false) => Self::CreatedEdit,
            (Self::CreatedEdit, true) => Self::EmailForScope,
            (b, _) => b,
        }
    }
}

/// A group's entry for one object. Built by [`permissions`] into settings
/// that keep the catalog rules (unless `breaks`), often at their edges:
/// `associated_records` equal to `all_records`, `create_record` with
/// `associated_records: edit`, `unarchive_associated` without
/// `unarchive_all`, `default_for_new_field` at every level, `email` and
/// `created` stated or not.
#[derive(Clone, Debug)]
pub struct PermSpec {
    pub view_object: bool,
    pub edit_settings: bool,
    pub delete_object: bool,
    pub all: AccessLevel,
    /// My Associated Records: this level raised to `all` and to `view`;
    /// `None` is `all` itself (at least `view`).
    pub assoc: Option<AccessLevel>,
    /// Kept only with `associated_records` ≥ edit.
    pub create_record: bool,
    /// Kept only with `create_record`.
    pub bulk_data_upload: bool,
    pub unarchive_associated: bool,
    /// Kept only with `unarchive_associated`.
    pub unarchive_all: bool,
    /// Bit i: `Toggle::ALL[i]`.
    pub toggles: u16,
    pub default_for_new_field: FieldLevel,
    /// Index into the object's fields (system fields included) and level;
    /// `email` and `created` are held to R7.
    pub fields: Vec<(u8, FieldLevel)>,
    /// The object's R7 field (Contacts' `email`, a custom object's
    /// `created`) stated at this level, held to R7; or left unstated.
    pub rule_field: Option<FieldLevel>,
    pub breaks: Option<Break>,
}

#[derive(Clone, Debug)]
pub struct GroupSpec {
    pub name: u8,
    pub create_objects: bool,
    /// One per object slot: the grant on that object, if any.
    pub perms: Vec<Option<PermSpec>>,
}

#[derive(Clone, Debug)]
pub struct UserSpec {
    pub name: u8,
    pub admin: bool,
    pub roles: Vec<u8>,
    pub groups: Vec<u8>,
    pub service_account: bool,
    pub email_inbox: EmailInbox,
}

/// An integration: an API key of a user, which it acts as.
#[derive(Clone, Debug)]
pub struct IntegrationSpec {
    pub name: u8,
    /// Index into the tenant's users.
    pub user: u8,
}

#[derive(Clone, Debug)]
pub struct AutomationSpec {
    pub name: u8,
    pub as_integration: bool,
    pub target: u8,
}

#[derive(Clone, Debug)]
pub struct ContactSpec {
    /// 0 none, 1 empty, 2 blank, else an address.
    pub email: u8,
    pub email_valid: bool,
    pub status: EmailStatus,
    pub suppressed: bool,
    /// Suppression end, in `ContactShape::step`s from its base.
    pub until: Option<i64>,
    /// Opted out of `ContactShape::lists[0]`, `[1]`.
    pub lists: (bool, bool),
    /// 0 none, 1 blank, else a number.
    pub mobile: u8,
    pub mobile_valid: bool,
    pub sms_opted_out: bool,
}

#[derive(Clone, Debug)]
pub struct RecordSpec {
    /// With `RecordIds::Drawn`: index into the ids this tenant may use.
    pub id: u8,
    /// Index into the object slots present.
    pub object: u8,
    /// The owner of a custom-object record; on a Contact (which has no
    /// owner) an interaction instead.
    pub owner: Option<u8>,
    /// Team field index and the members.
    pub teams: Vec<(u8, Vec<u8>)>,
    pub interactions: Vec<u8>,
    /// Relationship field index and the targets (see [`Links`]).
    pub links: Vec<(u8, Vec<u16>)>,
    pub archived: bool,
    /// Used on Contacts only.
    pub contact: Option<ContactSpec>,
}

#[derive(Clone, Debug)]
pub struct TenantSpec {
    pub email_configured: bool,
    pub sms_configured: bool,
    pub contacts_listed: bool,
    /// Listed contacts comes last in the file rather than first: it need
    /// not be first.
    pub contacts_last: bool,
    /// One per object slot.
    pub objects: Vec<ObjectSpec>,
    pub groups: Vec<GroupSpec>,
    /// Name and groups.
    pub roles: Vec<(u8, Vec<u8>)>,
    pub users: Vec<UserSpec>,
    pub integrations: Vec<IntegrationSpec>,
    pub automations: Vec<AutomationSpec>,
    pub records: Vec<RecordSpec>,
}

pub fn access_level() -> impl Strategy<Value = AccessLevel> {
    prop::sample::select(AccessLevel::ALL.to_vec())
}

pub fn field_level() -> impl Strategy<Value = FieldLevel> {
    prop::sample::select(FieldLevel::ALL.to_vec())
}

pub fn email_status() -> impl Strategy<Value = EmailStatus> {
    prop::sample::select(EmailStatus::ALL.to_vec())
}

pub fn source() -> impl Strategy<Value = AssociationSource> {
    prop::sample::select(vec![
        AssociationSource::Direct,
        AssociationSource::Related,
        AssociationSource::Both,
    ])
}

// The strategies take their knobs by value: a strategy may outlive the
// shape it was made from.

prop_compose! {
    fn object_spec(present: f64, team_fields: usize, relationship_fields: usize)(
        present in prop::bool::weighted(present),
        fields in any::<u8>(),
        team_fields in 0..=team_fields,
        relationships in vec(any::<u8>(), 0..=relationship_fields),
        source in source(),
    ) -> ObjectSpec {
        ObjectSpec { present, fields, team_fields, relationships, source }
    }
}

pub fn catalog_break() -> impl Strategy<Value = Break> {
    prop::sample::select(Break::ALL.to_vec())
}

/// A catalog break with probability `p` (0 and 1 included).
fn maybe_break(p: f64) -> BoxedStrategy<Option<Break>> {
    if p <= 0.0 {
        Just(None).boxed()
    } else if p >= 1.0 {
        catalog_break().prop_map(Some).boxed()
    } else {
        prop::option::weighted(p, catalog_break()).boxed()
    }
}

prop_compose! {
    /// A group's entry for an object; with probability `breaks` it breaks
    /// one catalog rule.
    pub fn perm_spec(breaks: f64)(
        view_object in any::<bool>(),
        edit_settings in any::<bool>(),
        delete_object in any::<bool>(),
        // All Records is often none, so "My Associated Records" matters.
        all in prop_oneof![2 => Just(AccessLevel::None), 3 => access_level()],
        // Often exactly All Records: the edge of R5.
        assoc in prop::option::weighted(
            0.6,
            prop::sample::select(vec![AccessLevel::View, AccessLevel::Edit, AccessLevel::Remove]),
        ),
        create_record in prop::bool::weighted(0.6),
        bulk_data_upload in any::<bool>(),
        unarchive_associated in prop::bool::weighted(0.5),
        unarchive_all in any::<bool>(),
        toggles in any::<u16>(),
        default_for_new_field in field_level(),
        fields in vec((any::<u8>(), field_level()), 0..=4),
        rule_field in prop::option::of(field_level()),
        breaks in maybe_break(breaks),
    ) -> PermSpec {
        PermSpec {
            view_object, edit_settings, delete_object, all, assoc, create_record,
            bulk_data_upload, unarchive_associated, unarchive_all, toggles,
            default_for_new_field, fields, rule_field, breaks,
        }
    }
}

prop_compose! {
    fn group_spec(slots: usize, breaks: f64)(
        name in any::<u8>(),
        create_objects in prop::bool::weighted(0.3),
        perms in vec(prop::option::weighted(0.75, perm_spec(breaks)), slots),
    ) -> GroupSpec {
        GroupSpec { name, create_objects, perms }
    }
}

pub fn email_inbox(weights: [u32; 3]) -> impl Strategy<Value = EmailInbox> {
    let [connected, not_connected, blocked] = weights;
    prop_oneof![
        connected => Just(EmailInbox::Connected),
        not_connected => Just(EmailInbox::NotConnected),
        blocked => Just(EmailInbox::Blocked),
    ]
}

prop_compose! {
    fn user_spec(admin: f64, service_account: f64, inbox: [u32; 3])(
        name in any::<u8>(),
        admin in prop::bool::weighted(admin),
        roles in vec(any::<u8>(), 0..=2),
        groups in vec(any::<u8>(), 0..=2),
        service_account in prop::bool::weighted(service_account),
        email_inbox in email_inbox(inbox),
    ) -> UserSpec {
        UserSpec { name, admin, roles, groups, service_account, email_inbox }
    }
}

prop_compose! {
    fn integration_spec()(
        name in any::<u8>(),
        user in any::<u8>(),
    ) -> IntegrationSpec {
        IntegrationSpec { name, user }
    }
}

prop_compose! {
    fn automation_spec()(
        name in any::<u8>(),
        as_integration in any::<bool>(),
        target in any::<u8>(),
    ) -> AutomationSpec {
        AutomationSpec { name, as_integration, target }
    }
}

prop_compose! {
    /// A Contact's state, as numbers; [`contact_state`] makes it one.
    pub fn contact_spec(shape: ContactShape)(
        email in 0u8..5,
        email_valid in prop::bool::weighted(shape.email_valid),
        status in email_status(),
        suppressed in prop::bool::weighted(shape.suppressed),
        until in prop::option::weighted(shape.until, shape.until_steps.clone()),
        lists in (prop::bool::weighted(shape.opted_out), prop::bool::weighted(shape.opted_out)),
        mobile in 0u8..4,
        mobile_valid in prop::bool::weighted(shape.mobile_valid),
        sms_opted_out in prop::bool::weighted(shape.sms_opted_out),
    ) -> ContactSpec {
        ContactSpec {
            email, email_valid, status, suppressed, until, lists, mobile, mobile_valid,
            sms_opted_out,
        }
    }
}

/// Contact states on their own, for a change that gives a record a new one.
pub fn contact_states(shape: &ContactShape) -> impl Strategy<Value = ContactState> + use<> {
    let resolve = shape.clone();
    contact_spec(shape.clone()).prop_map(move |c| contact_state(&c, Uuid::nil(), &resolve))
}

prop_compose! {
    fn record_spec(shape: Shape)(
        // Mostly shared ids, where ids are drawn: the point is the same
        // UUID in several tenants.
        id in prop_oneof![3 => 0..shared_ids(&shape).max(1) as u8, 1 => any::<u8>()],
        object in any::<u8>(),
        owner in prop::option::weighted(0.7, any::<u8>()),
        teams in vec((any::<u8>(), vec(any::<u8>(), 0..=2)), 0..=2),
        interactions in vec(any::<u8>(), 0..=2),
        links in vec((any::<u8>(), vec(any::<u16>(), 0..=2)), 0..=2),
        archived in prop::bool::weighted(shape.archived),
        contact in prop::option::weighted(0.9, contact_spec(shape.contact.clone())),
    ) -> RecordSpec {
        RecordSpec { id, object, owner, teams, interactions, links, archived, contact }
    }
}

fn shared_ids(shape: &Shape) -> usize {
    match shape.record_ids {
        RecordIds::Sequential => 0,
        RecordIds::Drawn { shared, .. } => shared,
    }
}

type People = (
    Vec<GroupSpec>,
    Vec<(u8, Vec<u8>)>,
    Vec<UserSpec>,
    Vec<IntegrationSpec>,
    Vec<AutomationSpec>,
);

prop_compose! {
    fn people_spec(shape: Shape)(
        groups in vec(
            group_spec(shape.objects.len(), shape.catalog_breaks),
            shape.groups.count.clone(),
        ),
        roles in vec((any::<u8>(), vec(any::<u8>(), 0..=3)), shape.roles.count.clone()),
        users in vec(
            user_spec(shape.admin, shape.service_account, shape.inbox),
            shape.users.count.clone(),
        ),
        integrations in vec(integration_spec(), shape.integrations.count.clone()),
        automations in vec(automation_spec(), shape.automations.count.clone()),
    ) -> People {
        (groups, roles, users, integrations, automations)
    }
}

/// One tenant's spec, of `shape`.
pub fn tenant_spec(shape: &Shape) -> impl Strategy<Value = TenantSpec> + use<> {
    tenant_spec_of(shape.clone())
}

prop_compose! {
    fn tenant_spec_of(shape: Shape)(
        email_configured in prop::bool::weighted(0.8),
        sms_configured in prop::bool::weighted(0.8),
        contacts_listed in prop::bool::weighted(shape.contacts_listed),
        contacts_last in any::<bool>(),
        objects in vec(
            object_spec(
                shape.object_present,
                shape.team_fields.len(),
                shape.relationship_fields.len(),
            ),
            shape.objects.len(),
        ),
        people in people_spec(shape.clone()),
        records in vec(record_spec(shape.clone()), shape.records.clone()),
    ) -> TenantSpec {
        let (groups, roles, users, integrations, automations) = people;
        TenantSpec {
            email_configured, sms_configured, contacts_listed, contacts_last, objects, groups,
            roles, users, integrations, automations, records,
        }
    }
}

// ===========================================================================
// Building the tenant
// ===========================================================================

/// Picks `names[k % len]`, or nothing from an empty list.
fn pick<T>(names: &[T], k: impl Into<usize>) -> Option<&T> {
    if names.is_empty() {
        None
    } else {
        Some(&names[k.into() % names.len()])
    }
}

fn picks(names: &[String], ks: &[u8]) -> Vec<String> {
    ks.iter().filter_map(|k| pick(names, *k).cloned()).collect()
}

/// The entities of one pool, one per spec that gets an id: `drawn` is the
/// name a spec draws (see [`Pool::drawn`]), `make` builds the entity from
/// its spec and id. A spec whose drawn name is taken, or past the last name
/// in order, makes none.
fn entities<S, T>(
    here: Here,
    pool: &Pool,
    specs: &[S],
    drawn: impl Fn(&S) -> u8,
    make: impl Fn(&S, String) -> T,
) -> Vec<T> {
    let mut taken: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let name = if pool.drawn {
            pick(&pool.names, drawn(spec))
        } else {
            pool.names.get(i)
        };
        let Some(id) = name.map(|n| here.name(n)) else {
            continue;
        };
        if !taken.contains(&id) {
            taken.push(id.clone());
            out.push(make(spec, id));
        }
    }
    out
}

/// The Contact state a spec stands for; `id` makes the address.
pub fn contact_state(c: &ContactSpec, id: Uuid, shape: &ContactShape) -> ContactState {
    // An end needs a suppression to end (validation refuses it otherwise).
    let flagged = c.suppressed || c.status == EmailStatus::Suppressed;
    let mut lists = Vec::new();
    if c.lists.0 {
        lists.push(shape.lists[0].to_owned());
    }
    if c.lists.1 {
        lists.push(shape.lists[1].to_owned());
    }
    ContactState {
        email: match c.email {
            0 => None,
            1 => Some(String::new()),
            2 => Some("   ".to_owned()),
            _ => Some(format!("c{}@example.com", id.simple())),
        },
        email_valid: c.email_valid,
        email_status: c.status,
        suppressed: c.suppressed,
        suppressed_until: if flagged {
            c.until.map(|s| shape.at(s))
        } else {
            None
        },
        opted_out_lists: lists,
        mobile_phone: match c.mobile {
            0 => None,
            1 => Some(" ".to_owned()),
            _ => Some(format!("+1555{:07}", id.as_u128() % 10_000_000)),
        },
        mobile_valid: c.mobile_valid,
        sms_opted_out: c.sms_opted_out,
    }
}

fn object_def(here: Here, spec: &ObjectSpec, slot: usize, slots: &[usize]) -> ObjectDef {
    let shape = here.shape;
    let names = |pool: &[Name], n: usize| -> Vec<String> {
        pool.iter().take(n).map(|f| here.name(f)).collect()
    };
    ObjectDef {
        name: here.name(&shape.objects[slot]),
        fields: shape
            .fields
            .iter()
            .enumerate()
            .filter(|(i, _)| spec.fields & (1 << i) != 0)
            .map(|(_, f)| here.name(f))
            .collect(),
        team_fields: names(&shape.team_fields, spec.team_fields),
        relationships: names(&shape.relationship_fields, spec.relationships.len())
            .into_iter()
            .zip(&spec.relationships)
            .map(|(field, to)| Relationship {
                field,
                object: here.name(&shape.objects[*pick(slots, *to).unwrap_or(&0)]),
            })
            .collect(),
        association_source: spec.source,
    }
}

/// The settings a [`PermSpec`] stands for on `def`: keeping every catalog
/// rule, then breaking the one `p.breaks` names, if any.
pub fn permissions(p: &PermSpec, def: &ObjectDef) -> ObjectPermissions {
    use AccessLevel::{Edit, None as NoLevel, Remove, View};
    let contacts = def.name == "contacts";
    let all_fields = object_fields(def);
    let mut fields: BTreeMap<String, FieldLevel> = p
        .fields
        .iter()
        .filter_map(|(f, level)| Some((pick(&all_fields, *f)?.clone(), *level)))
        .collect();
    let rule_field = if contacts { "email" } else { "created" };
    if let Some(level) = p.rule_field {
        fields.insert(rule_field.to_owned(), level);
    }
    let actions = Toggle::ALL
        .into_iter()
        .enumerate()
        .filter(|(bit, _)| p.toggles & (1 << bit) != 0)
        .map(|(_, toggle)| toggle)
        .filter(|toggle| contacts || !toggle.contacts_only())
        .collect();
    let assoc = p.assoc.unwrap_or(p.all).max(p.all).max(View);
    let create_record = p.create_record && assoc >= Edit;
    let unarchive_associated = p.unarchive_associated;
    let mut perms = ObjectPermissions {
        view_object: p.view_object,
        edit_settings: p.edit_settings,
        delete_object: p.delete_object,
        all_records: p.all,
        associated_records: assoc,
        create_record,
        bulk_data_upload: p.bulk_data_upload && create_record,
        unarchive_associated,
        unarchive_all: p.unarchive_all && unarchive_associated,
        actions,
        default_for_new_field: p.default_for_new_field,
        fields,
    };
    let breaks = p.breaks.map(|b| b.on(&def.name));
    match breaks {
        None | Some(Break::EmailForScope | Break::CreatedEdit) => {}
        Some(Break::AssociatedNone) => {
            perms.associated_records = NoLevel;
            perms.all_records = NoLevel;
            perms.create_record = false;
            perms.bulk_data_upload = false;
        }
        Some(Break::AssociatedBelowAll) => {
            if perms.associated_records == Remove {
                perms.associated_records = Edit;
            }
            perms.all_records = Remove;
        }
        Some(Break::CreateWithoutEdit) => {
            perms.create_record = true;
            perms.associated_records = View;
            perms.all_records = perms.all_records.min(View);
        }
        Some(Break::UploadWithoutCreate) => {
            perms.create_record = false;
            perms.bulk_data_upload = true;
        }
        Some(Break::UnarchiveAllWithoutAssociated) => {
            perms.unarchive_associated = false;
            perms.unarchive_all = true;
        }
    }
    // R7, for the scopes as they now are.
    let editable = perms.all_records.max(perms.associated_records) >= Edit;
    for (field, level) in perms.fields.iter_mut() {
        if contacts && field == "email" {
            *level = if editable {
                FieldLevel::Edit
            } else {
                (*level).min(FieldLevel::View)
            };
        } else if !contacts && field == "created" {
            *level = (*level).min(FieldLevel::View);
        }
    }
    match breaks {
        Some(Break::EmailForScope) => {
            let wrong = if !editable {
                FieldLevel::Edit
            } else if p.default_for_new_field == FieldLevel::None {
                FieldLevel::None
            } else {
                FieldLevel::View
            };
            perms.fields.insert("email".to_owned(), wrong);
        }
        Some(Break::CreatedEdit) => {
            perms.fields.insert("created".to_owned(), FieldLevel::Edit);
        }
        _ => {}
    }
    perms
}

/// The same spec with every catalog break taken out: a tenant that keeps
/// every rule.
pub fn repaired(s: &TenantSpec) -> TenantSpec {
    let mut s = s.clone();
    for group in &mut s.groups {
        for p in group.perms.iter_mut().flatten() {
            p.breaks = None;
        }
    }
    s
}

/// Builds tenant `t` of `shape.tenants` from its spec.
pub fn build(s: &TenantSpec, shape: &Shape, t: usize) -> Tenant {
    build_here(
        s,
        Here {
            shape,
            t,
            n: shape.tenants.len(),
        },
    )
}

/// Builds the first `specs.len()` tenants of `shape`, each from its spec:
/// a data file.
pub fn build_file(specs: &[TenantSpec], shape: &Shape) -> DataFile {
    let n = specs.len();
    DataFile {
        tenants: specs
            .iter()
            .enumerate()
            .map(|(t, s)| build_here(s, Here { shape, t, n }))
            .collect(),
    }
}

fn build_here(s: &TenantSpec, here: Here) -> Tenant {
    let (shape, t) = (here.shape, here.t);
    // Object slots present, and their definitions.
    let slots: Vec<usize> = (0..shape.objects.len())
        .filter(|&slot| slot == 0 || s.objects[slot].present)
        .collect();
    let defs: Vec<ObjectDef> = slots
        .iter()
        .map(|&slot| object_def(here, &s.objects[slot], slot, &slots))
        .collect();
    // contacts, unlisted, has only the system fields.
    let contacts = if s.contacts_listed {
        defs[0].clone()
    } else {
        ObjectDef {
            name: "contacts".to_owned(),
            ..ObjectDef::default()
        }
    };
    let def = |i: usize| if i == 0 { &contacts } else { &defs[i] };

    let groups = entities(
        here,
        &shape.groups,
        &s.groups,
        |g| g.name,
        |g, id| Group {
            id,
            create_objects: g.create_objects,
            objects: slots
                .iter()
                .enumerate()
                .filter_map(|(i, slot)| {
                    let p = g.perms[*slot].as_ref()?;
                    Some((def(i).name.clone(), permissions(p, def(i))))
                })
                .collect(),
        },
    );
    let group_ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
    let roles = entities(
        here,
        &shape.roles,
        &s.roles,
        |r| r.0,
        |(_, gs), id| Role {
            id,
            groups: picks(&group_ids, gs),
        },
    );
    let role_ids: Vec<String> = roles.iter().map(|r| r.id.clone()).collect();
    let users = entities(
        here,
        &shape.users,
        &s.users,
        |u| u.name,
        |u, id| User {
            id,
            admin: u.admin,
            roles: picks(&role_ids, &u.roles),
            groups: picks(&group_ids, &u.groups),
            service_account: u.service_account,
            email_inbox: u.email_inbox,
        },
    );
    let user_ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let integrations = entities(
        here,
        &shape.integrations,
        &s.integrations,
        |i| i.name,
        |i, id| Integration {
            id,
            // Always a user: an integration is one of its API keys.
            user: pick(&user_ids, i.user).cloned(),
            groups: None,
        },
    );
    let integration_ids: Vec<String> = integrations.iter().map(|i| i.id.clone()).collect();
    let automations = entities(
        here,
        &shape.automations,
        &s.automations,
        |a| a.name,
        |a, id| Automation {
            id,
            run_as: match pick(&integration_ids, a.target) {
                Some(i) if a.as_integration => RunAs::Integration(i.clone()),
                _ => RunAs::User(pick(&user_ids, a.target).cloned().unwrap_or_default()),
            },
        },
    );

    let present: Vec<ObjectDef> = (0..slots.len()).map(|i| def(i).clone()).collect();
    let records = build_records(s, here, &slots, &present, &user_ids);
    let mut objects: Vec<ObjectDef> = defs.into_iter().skip(1).collect();
    if s.contacts_listed {
        if s.contacts_last {
            objects.push(contacts);
        } else {
            objects.insert(0, contacts);
        }
    }
    Tenant {
        id: shape.tenants[t].clone(),
        email_configured: s.email_configured,
        sms_configured: s.sms_configured,
        objects,
        groups,
        roles,
        users,
        integrations,
        automations,
        records,
    }
}

/// The records of the tenant: `defs[i]` is the definition of the object in
/// slot `slots[i]`, `users` the tenant's user ids.
fn build_records(
    s: &TenantSpec,
    here: Here,
    slots: &[usize],
    defs: &[ObjectDef],
    users: &[String],
) -> Vec<Record> {
    let (shape, t) = (here.shape, here.t);
    let strangers: Vec<String> = shape.strangers.iter().map(|n| here.name(n)).collect();
    let record_user = |k: &u8| -> String {
        let stranger = (*k < shape.stranger_share)
            .then(|| pick(&strangers, *k))
            .flatten();
        stranger
            .or_else(|| pick(users, *k))
            .cloned()
            .unwrap_or_default()
    };
    let ids_here: Vec<Uuid> = match shape.record_ids {
        RecordIds::Sequential => Vec::new(),
        RecordIds::Drawn { shared, own } => (0..shared)
            .map(shared_id)
            .chain((0..own).map(|k| own_id(t, k)))
            .collect(),
    };
    let mut per_slot = vec![0usize; shape.objects.len()];
    let mut records: Vec<Record> = Vec::new();
    // The spec and definition each record came from, for its links.
    let mut made: Vec<(&RecordSpec, usize)> = Vec::new();
    for r in &s.records {
        let i = r.object as usize % slots.len();
        let (slot, def) = (slots[i], &defs[i]);
        let id = match shape.record_ids {
            RecordIds::Sequential => {
                per_slot[slot] += 1;
                record_id(slot, per_slot[slot] - 1)
            }
            RecordIds::Drawn { .. } => ids_here[r.id as usize % ids_here.len()],
        };
        // The first record to draw an id keeps it.
        if records.iter().any(|x| x.id == id) {
            continue;
        }
        let mut teams: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (field, members) in &r.teams {
            if let Some(field) = pick(&def.team_fields, *field) {
                teams
                    .entry(field.clone())
                    .or_default()
                    .extend(members.iter().map(record_user));
            }
        }
        // Contacts have no owner (R8): the owner drawn for one is an
        // interaction instead.
        let contact = slot == 0;
        let owner = r.owner.as_ref().map(record_user);
        let mut interactions: Vec<String> = r.interactions.iter().map(record_user).collect();
        if contact {
            interactions.extend(owner.clone());
        }
        records.push(Record {
            id,
            object: def.name.clone(),
            owner: if contact { None } else { owner },
            teams: teams.into(),
            interactions,
            links: BTreeMap::new(),
            archived: r.archived,
            contact: if contact {
                r.contact
                    .as_ref()
                    .map(|c| contact_state(c, id, &shape.contact))
            } else {
                None
            },
        });
        made.push((r, i));
    }

    // Links, once every record exists: to a record of the right object here,
    // or to an id that is not one (see `Links`).
    let universe = shape.universe();
    let object_of: HashMap<Uuid, String> =
        records.iter().map(|r| (r.id, r.object.clone())).collect();
    let mut ids_of: HashMap<&str, Vec<Uuid>> = HashMap::new();
    for r in &records {
        ids_of.entry(r.object.as_str()).or_default().push(r.id);
    }
    let mut links: Vec<BTreeMap<String, Vec<Uuid>>> = Vec::new();
    for (r, i) in &made {
        let mut out: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
        for (rel, targets) in &r.links {
            let Some(rel) = pick(&defs[*i].relationships, *rel) else {
                continue;
            };
            let here = ids_of
                .get(rel.object.as_str())
                .map_or(&[][..], Vec::as_slice);
            let ids = targets.iter().filter_map(|v| {
                let id = if *v < shape.links.dangling_below {
                    Some(Uuid::from_u128(0xdead_0000 + u128::from(*v)))
                } else if *v < shape.links.foreign_below {
                    match shape.links.foreign {
                        Foreign::Mirror => pick(here, *v).copied().map(mirror_id),
                        Foreign::AnyId => pick(&universe, *v).copied(),
                    }
                } else {
                    pick(here, *v).copied()
                }?;
                // A record here of another object cannot be linked to.
                object_of
                    .get(&id)
                    .is_none_or(|o| *o == rel.object)
                    .then_some(id)
            });
            out.entry(rel.field.clone()).or_default().extend(ids);
        }
        links.push(out);
    }
    for (r, l) in records.iter_mut().zip(links) {
        r.links = l;
    }
    records
}

/// Every principal of `t`: its users, integrations and automations, in
/// that order. What a generated case picks the principals it asks for from.
pub fn principals(t: &Tenant) -> Vec<PrincipalRef> {
    let users = t.users.iter().map(|u| (PrincipalKind::User, &u.id));
    let integrations = t
        .integrations
        .iter()
        .map(|i| (PrincipalKind::Integration, &i.id));
    let automations = t
        .automations
        .iter()
        .map(|a| (PrincipalKind::Automation, &a.id));
    users
        .chain(integrations)
        .chain(automations)
        .map(|(kind, id)| PrincipalRef {
            kind,
            id: id.clone(),
        })
        .collect()
}

/// A data file or tenant as YAML, for a failure message: the generated
/// case, readable.
pub fn yaml(data: &impl Serialize) -> String {
    serde_yaml::to_string(data).unwrap_or_else(|e| format!("<yaml: {e}>"))
}

// ===========================================================================
// Request contexts
// ===========================================================================

#[derive(Clone, Debug)]
pub struct CtxSpec {
    pub channel: Option<Channel>,
    pub transactional: bool,
    pub list: Option<u8>,
    pub fields: Vec<u16>,
    pub target: Option<EmailStatus>,
    /// Leave the context as generated, possibly invalid.
    pub raw: bool,
}

prop_compose! {
    pub fn ctx_spec()(
        channel in prop::option::weighted(0.8, prop::sample::select(vec![Channel::Email, Channel::Text])),
        transactional in prop::bool::weighted(0.3),
        list in prop::option::weighted(0.4, any::<u8>()),
        fields in vec(any::<u16>(), 0..=2),
        target in prop::option::weighted(0.6, email_status()),
        raw in prop::bool::weighted(0.1),
    ) -> CtxSpec {
        CtxSpec { channel, transactional, list, fields, target, raw }
    }
}

/// A context for `action` naming some of `fields` and one of [`LISTS`].
/// Unless `raw`, it is made valid for the action: parameters the action
/// requires are filled in (the first of `fields` where it needs one), and
/// only `fields` are named; raw, it may also name a field nobody has.
pub fn build_ctx(s: &CtxSpec, action: Action, fields: &[String], raw: bool) -> ActionContext {
    let mut ctx = ActionContext {
        channel: s.channel,
        transactional: s.transactional,
        subscription_list: s
            .list
            .and_then(|l| pick(&LISTS, l))
            .map(|l| (*l).to_owned()),
        fields: s
            .fields
            .iter()
            .filter_map(|v| {
                if raw && v % 7 == 0 {
                    Some("no_such_field".to_owned())
                } else {
                    pick(fields, *v).cloned()
                }
            })
            .collect(),
        target_email_status: s.target,
    };
    if !raw {
        if action == Action::SendSingleMessage && ctx.channel.is_none() {
            ctx.channel = Some(if s.transactional {
                Channel::Text
            } else {
                Channel::Email
            });
        }
        if action == Action::BulkManageSubscription && ctx.target_email_status.is_none() {
            ctx.target_email_status = Some(EmailStatus::OptedIn);
        }
        if action == Action::BulkChangeFieldValues
            && ctx.fields.is_empty()
            && let Some(f) = fields.first()
        {
            ctx.fields.push(f.clone());
        }
    }
    ctx
}

// ===========================================================================
// Running the cases
// ===========================================================================

/// `PROPTEST_CASES`, or `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A runner for `cases` generated cases, shrinking a failure at most
/// `max_shrink_iters` times. Run by hand (`TestRunner::run`), a property
/// has no source file to persist failing seeds next to, so none are: the
/// failure message must carry the generated data.
pub fn runner(cases: u32, max_shrink_iters: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        max_shrink_iters,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}
