//! Tenant isolation: nothing of one tenant may decide, count or show up in
//! an answer about another ("Entities": nothing ever crosses tenants).
//!
//! The property: generated data files hold 2–3 tenants that deliberately
//! share user, group, role, integration and automation ids, object and
//! field names, and record UUIDs — the same UUID a Contact in one tenant
//! and a deal (or an archived Contact with another owner and other state)
//! in the next; records name users that exist only in another tenant and
//! link to records that exist only in another tenant. For every tenant T,
//! every answer of one engine over the whole file must equal the answer of
//! an engine built from a file holding **only T** (the strongest oracle: if
//! T's answers do not change when every other tenant is deleted, nothing of
//! them got in), through every entry point: BatchCheck, Check (with and
//! without a record), LookupRecords, ObjectAccess, RecordAccess and Explain,
//! errors included. Each case asks three principal ids (drawn from every
//! tenant's, plus one nobody has) about every object name (likewise) and
//! `view` plus up to eight generated actions, each with a generated context
//! (sometimes invalid, then the refusal must be equal too); Check and
//! Explain go record by record for every third action. Questions are
//! interleaved across tenants so the shared compiled-answer cache sees the
//! same principal, object, action and context for every tenant in turn.
//! Then a record change is applied to one tenant (after a change naming
//! another tenant's record, which must be refused) and every tenant is
//! compared again.
//!
//! Independently of the oracle: an id that is not a record of T's object is
//! always UNKNOWN_RECORD, LookupRecords returns only T's records, and no
//! Explain text, group list or error message about T names a user, group,
//! role, principal, object, field, record id or tenant that only other
//! tenants have (unless the request itself named it).
//!
//! A second part runs a fixed two-tenant file over real gRPC on loopback:
//! three servers (both tenants, each alone) must give identical responses
//! for BatchCheck, LookupRecords (streamed), Explain, Check, ObjectAccess
//! and RecordAccess; an unknown tenant is NOT_FOUND naming it.
//!
//! `PROPTEST_CASES` sets the number of generated cases (default 256).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use permd::index::explain::Explanation;
use permd::index::{
    ApplyError, Engine, PrincipalKind, PrincipalRef, QueryError, Question, Snapshot,
};
use permd::model::change::{Change, Entity};
use permd::model::data::{
    AssociationSource, Automation, ContactState, DataFile, EmailStatus, Group, Integration,
    ObjectDef, ObjectPermissions, Record, Relationship, Role, RunAs, Tenant, User,
};
use permd::model::validate::{object_fields, validate};
use permd::model::{AccessLevel, Action, ActionContext, Channel, FieldLevel, Reason, Toggle};
use permd::pb::{self, authorizer_client::AuthorizerClient};
use permd::server::DEFAULT_MAX_MESSAGE_BYTES;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::{Channel as GrpcChannel, Endpoint};
use uuid::Uuid;

// ===========================================================================
// Names: a shared pool every tenant draws from, and one name per tenant
// that only it has.
// ===========================================================================

const TENANTS: [&str; 3] = ["t-alpha", "t-beta", "t-gamma"];
const SHARED_USERS: [&str; 4] = ["user-ann", "user-bob", "user-cat", "user-dan"];
const SHARED_GROUPS: [&str; 3] = ["group-sales", "group-ops", "group-mkt"];
const SHARED_ROLES: [&str; 2] = ["role-rep", "role-lead"];
const SHARED_INTEGRATION: &str = "key-sync";
const SHARED_AUTOMATION: &str = "auto-drip";
/// Object slots: contacts (always), two shared custom objects, one of the
/// tenant's own.
const SHARED_OBJECTS: [&str; 2] = ["deals", "tickets"];
const SHARED_FIELDS: [&str; 4] = ["first_name", "stage", "priority", "region"];
/// The team field and relationship field names; every tenant uses the same.
const TEAM_FIELD: &str = "team";
const LINK_FIELD: &str = "link";
const LISTS: [&str; 2] = ["news", "promo"];
const N_SHARED_IDS: usize = 6;
const N_OWN_IDS: usize = 3;
/// The instant every question is asked at.
const NOW: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

fn own(kind: &str, t: usize) -> String {
    format!("{kind}-only-{}", TENANTS[t])
}

/// A record UUID every tenant may use.
fn shared_id(k: usize) -> Uuid {
    Uuid::from_u128(0x5a5a_0000_0000_4000_8000_0000_0000_0000 | k as u128)
}

/// A record UUID only tenant `t` may use.
fn own_id(t: usize, k: usize) -> Uuid {
    Uuid::from_u128(0xbbbb_0000_0000_4000_8000_0000_0000_0000 | ((t as u128) << 8) | k as u128)
}

/// Every UUID any tenant may hold: shared ones first, then each tenant's own.
fn universe() -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = (0..N_SHARED_IDS).map(shared_id).collect();
    for t in 0..TENANTS.len() {
        ids.extend((0..N_OWN_IDS).map(|k| own_id(t, k)));
    }
    ids
}

/// Names a record may use for a user (owner, team, interaction): the shared
/// pool, the tenant's own user, and the next tenant's own user (which never
/// exists in this tenant: a dangling reference that must associate nobody).
fn record_user(t: usize, n_tenants: usize, k: u8) -> String {
    match k as usize % (SHARED_USERS.len() + 2) {
        i if i < SHARED_USERS.len() => SHARED_USERS[i].to_owned(),
        i if i == SHARED_USERS.len() => own("user", t),
        _ => own("user", (t + 1) % n_tenants),
    }
}

// ===========================================================================
// Generated specs: plain numbers, resolved into a valid tenant by `build`.
// ===========================================================================

#[derive(Clone, Debug)]
struct ObjSpec {
    /// Bit i: field i of `SHARED_FIELDS`; bit 4: the tenant's own field.
    fields: u8,
    team: bool,
    /// Relationship to this object slot, if present.
    link: Option<u8>,
    source: AssociationSource,
}

#[derive(Clone, Debug)]
struct PermSpec {
    view_object: bool,
    edit_settings: bool,
    delete_object: bool,
    all: AccessLevel,
    assoc: AccessLevel,
    toggles: u16,
    /// Field index (0 = "*") and level.
    fields: Vec<(u8, FieldLevel)>,
}

#[derive(Clone, Debug)]
struct GroupSpec {
    name: u8,
    create_objects: bool,
    /// One per object slot.
    perms: Vec<Option<PermSpec>>,
}

#[derive(Clone, Debug)]
struct UserSpec {
    name: u8,
    admin: bool,
    roles: Vec<u8>,
    groups: Vec<u8>,
}

#[derive(Clone, Debug)]
struct IntegrationSpec {
    name: u8,
    groups: Vec<u8>,
    user: Option<u8>,
}

#[derive(Clone, Debug)]
struct AutomationSpec {
    name: u8,
    as_integration: bool,
    target: u8,
}

#[derive(Clone, Debug)]
struct ContactSpec {
    /// 0 none, 1 blank, 2 present but invalid, else valid.
    email: u8,
    status: EmailStatus,
    suppressed: bool,
    /// Suppression end in hours from `NOW` (negative: already over).
    until: Option<i64>,
    lists: (bool, bool),
    mobile: bool,
    sms_opted_out: bool,
}

#[derive(Clone, Debug)]
struct RecordSpec {
    /// Index into `universe()` restricted to the shared ids and this
    /// tenant's own.
    id: u8,
    object: u8,
    owner: Option<u8>,
    team: Vec<u8>,
    interactions: Vec<u8>,
    links: Vec<u8>,
    archived: bool,
    contact: Option<ContactSpec>,
}

#[derive(Clone, Debug)]
struct TenantSpec {
    email_configured: bool,
    sms_configured: bool,
    /// Slots 1..=3 present (deals, tickets, own object).
    present: [bool; 3],
    objects: Vec<ObjSpec>,
    groups: Vec<GroupSpec>,
    roles: Vec<(u8, Vec<u8>)>,
    users: Vec<UserSpec>,
    integrations: Vec<IntegrationSpec>,
    automations: Vec<AutomationSpec>,
    records: Vec<RecordSpec>,
}

#[derive(Clone, Debug)]
struct CtxSpec {
    channel: Option<Channel>,
    transactional: bool,
    list: Option<u8>,
    fields: Vec<u8>,
    target: Option<EmailStatus>,
    /// Leave the context as generated, possibly invalid.
    raw: bool,
}

#[derive(Clone, Debug)]
struct ChangeSpec {
    tenant: u8,
    record: u8,
    archive: bool,
    contact: ContactSpec,
}

#[derive(Clone, Debug)]
struct Scenario {
    tenants: Vec<TenantSpec>,
    principals: Vec<u8>,
    /// Indexes into `Action::ALL` of the actions asked (besides `view`).
    actions: Vec<u8>,
    ctxs: Vec<CtxSpec>,
    /// Which tenant is asked first for each question.
    rotate: u8,
    change: ChangeSpec,
}

fn access_level() -> impl Strategy<Value = AccessLevel> {
    prop::sample::select(AccessLevel::ALL.to_vec())
}

fn field_level() -> impl Strategy<Value = FieldLevel> {
    prop::sample::select(FieldLevel::ALL.to_vec())
}

fn email_status() -> impl Strategy<Value = EmailStatus> {
    prop::sample::select(EmailStatus::ALL.to_vec())
}

fn source() -> impl Strategy<Value = AssociationSource> {
    prop::sample::select(vec![
        AssociationSource::Direct,
        AssociationSource::Related,
        AssociationSource::Both,
    ])
}

prop_compose! {
    fn obj_spec()(
        fields in any::<u8>(),
        team in prop::bool::weighted(0.7),
        link in prop::option::weighted(0.6, 0u8..4),
        source in source(),
    ) -> ObjSpec {
        ObjSpec { fields, team, link, source }
    }
}

prop_compose! {
    fn perm_spec()(
        view_object in any::<bool>(),
        edit_settings in any::<bool>(),
        delete_object in any::<bool>(),
        all in prop_oneof![2 => Just(AccessLevel::None), 3 => access_level()],
        assoc in access_level(),
        toggles in any::<u16>(),
        fields in vec((0u8..16, field_level()), 0..=4),
    ) -> PermSpec {
        PermSpec { view_object, edit_settings, delete_object, all, assoc, toggles, fields }
    }
}

prop_compose! {
    fn group_spec()(
        name in any::<u8>(),
        create_objects in prop::bool::weighted(0.3),
        perms in vec(prop::option::weighted(0.75, perm_spec()), 4),
    ) -> GroupSpec {
        GroupSpec { name, create_objects, perms }
    }
}

prop_compose! {
    fn user_spec()(
        name in any::<u8>(),
        admin in prop::bool::weighted(0.15),
        roles in vec(any::<u8>(), 0..=2),
        groups in vec(any::<u8>(), 0..=2),
    ) -> UserSpec {
        UserSpec { name, admin, roles, groups }
    }
}

prop_compose! {
    fn integration_spec()(
        name in any::<u8>(),
        groups in vec(any::<u8>(), 0..=2),
        user in prop::option::of(any::<u8>()),
    ) -> IntegrationSpec {
        IntegrationSpec { name, groups, user }
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
    fn contact_spec()(
        email in 0u8..6,
        status in email_status(),
        suppressed in prop::bool::weighted(0.2),
        until in prop::option::weighted(0.4, -48i64..=48),
        lists in (prop::bool::weighted(0.3), prop::bool::weighted(0.3)),
        mobile in prop::bool::weighted(0.8),
        sms_opted_out in prop::bool::weighted(0.2),
    ) -> ContactSpec {
        ContactSpec { email, status, suppressed, until, lists, mobile, sms_opted_out }
    }
}

prop_compose! {
    fn record_spec()(
        // Mostly shared ids: the point is the same UUID in several tenants.
        id in prop_oneof![3 => 0u8..N_SHARED_IDS as u8, 1 => any::<u8>()],
        object in any::<u8>(),
        owner in prop::option::weighted(0.7, any::<u8>()),
        team in vec(any::<u8>(), 0..=2),
        interactions in vec(any::<u8>(), 0..=1),
        links in vec(any::<u8>(), 0..=2),
        archived in prop::bool::weighted(0.2),
        contact in prop::option::weighted(0.9, contact_spec()),
    ) -> RecordSpec {
        RecordSpec { id, object, owner, team, interactions, links, archived, contact }
    }
}

prop_compose! {
    fn people_spec()(
        groups in vec(group_spec(), 1..=4),
        roles in vec((any::<u8>(), vec(any::<u8>(), 0..=2)), 0..=2),
        users in vec(user_spec(), 1..=5),
        integrations in vec(integration_spec(), 0..=2),
        automations in vec(automation_spec(), 0..=2),
    ) -> (
        Vec<GroupSpec>,
        Vec<(u8, Vec<u8>)>,
        Vec<UserSpec>,
        Vec<IntegrationSpec>,
        Vec<AutomationSpec>,
    ) {
        (groups, roles, users, integrations, automations)
    }
}

prop_compose! {
    fn tenant_spec()(
        email_configured in prop::bool::weighted(0.8),
        sms_configured in prop::bool::weighted(0.8),
        present in prop::array::uniform3(any::<bool>()),
        objects in vec(obj_spec(), 4),
        people in people_spec(),
        records in vec(record_spec(), 0..=14),
    ) -> TenantSpec {
        let (groups, roles, users, integrations, automations) = people;
        TenantSpec {
            email_configured, sms_configured, present, objects, groups, roles, users,
            integrations, automations, records,
        }
    }
}

prop_compose! {
    fn ctx_spec()(
        channel in prop::option::weighted(0.8, prop::sample::select(vec![Channel::Email, Channel::Text])),
        transactional in prop::bool::weighted(0.3),
        list in prop::option::weighted(0.4, any::<u8>()),
        fields in vec(any::<u8>(), 0..=2),
        target in prop::option::weighted(0.6, email_status()),
        raw in prop::bool::weighted(0.1),
    ) -> CtxSpec {
        CtxSpec { channel, transactional, list, fields, target, raw }
    }
}

prop_compose! {
    fn change_spec()(
        tenant in any::<u8>(),
        record in any::<u8>(),
        archive in any::<bool>(),
        contact in contact_spec(),
    ) -> ChangeSpec {
        ChangeSpec { tenant, record, archive, contact }
    }
}

prop_compose! {
    fn scenario()(
        tenants in vec(tenant_spec(), 2..=3),
        principals in vec(any::<u8>(), 3),
        actions in vec(any::<u8>(), 8),
        ctxs in vec(ctx_spec(), 3),
        rotate in any::<u8>(),
        change in change_spec(),
    ) -> Scenario {
        Scenario { tenants, principals, actions, ctxs, rotate, change }
    }
}

// ===========================================================================
// Building the data file
// ===========================================================================

fn object_name(t: usize, slot: usize) -> String {
    match slot {
        0 => "contacts".to_owned(),
        1 | 2 => SHARED_OBJECTS[slot - 1].to_owned(),
        _ => own("obj", t),
    }
}

fn contact_state(c: &ContactSpec, id: Uuid) -> ContactState {
    let flagged = c.suppressed || c.status == EmailStatus::Suppressed;
    let mut lists = Vec::new();
    if c.lists.0 {
        lists.push(LISTS[0].to_owned());
    }
    if c.lists.1 {
        lists.push(LISTS[1].to_owned());
    }
    ContactState {
        email: match c.email {
            0 => None,
            1 => Some(" ".to_owned()),
            _ => Some(format!("{}@example.com", id.simple())),
        },
        email_valid: c.email != 2,
        email_status: c.status,
        suppressed: c.suppressed,
        suppressed_until: if flagged {
            c.until.map(|h| NOW + Duration::hours(h))
        } else {
            None
        },
        opted_out_lists: lists,
        mobile_phone: c.mobile.then(|| "+15550100".to_owned()),
        mobile_valid: true,
        sms_opted_out: c.sms_opted_out,
    }
}

/// Picks `names[k % len]`, or nothing from an empty list.
fn pick(names: &[String], k: u8) -> Option<&String> {
    if names.is_empty() {
        None
    } else {
        Some(&names[k as usize % names.len()])
    }
}

fn picks(names: &[String], ks: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = ks.iter().filter_map(|k| pick(names, *k).cloned()).collect();
    out.sort();
    out.dedup();
    out
}

fn build_tenant(t: usize, n_tenants: usize, s: &TenantSpec) -> Tenant {
    // Objects present, by slot.
    let slots: Vec<usize> = (0..4)
        .filter(|&slot| slot == 0 || s.present[slot - 1])
        .collect();
    let defs: Vec<(usize, ObjectDef)> = slots
        .iter()
        .map(|&slot| {
            let spec = &s.objects[slot];
            let mut fields: Vec<String> = SHARED_FIELDS
                .iter()
                .enumerate()
                .filter(|(i, _)| spec.fields & (1 << i) != 0)
                .map(|(_, f)| (*f).to_owned())
                .collect();
            if spec.fields & 0x10 != 0 {
                fields.push(own("field", t));
            }
            let relationships = spec
                .link
                .map(|to| slots[to as usize % slots.len()])
                .map(|to| Relationship {
                    field: LINK_FIELD.to_owned(),
                    object: object_name(t, to),
                })
                .into_iter()
                .collect();
            let def = ObjectDef {
                name: object_name(t, slot),
                fields,
                team_fields: if spec.team {
                    vec![TEAM_FIELD.to_owned()]
                } else {
                    Vec::new()
                },
                relationships,
                association_source: spec.source,
            };
            (slot, def)
        })
        .collect();

    // Groups, by unique name.
    let group_name = |k: u8| match k as usize % (SHARED_GROUPS.len() + 1) {
        i if i < SHARED_GROUPS.len() => SHARED_GROUPS[i].to_owned(),
        _ => own("group", t),
    };
    let mut groups: Vec<Group> = Vec::new();
    for g in &s.groups {
        let id = group_name(g.name);
        if groups.iter().any(|x| x.id == id) {
            continue;
        }
        let mut objects = BTreeMap::new();
        for (slot, def) in &defs {
            let Some(p) = &g.perms[*slot] else { continue };
            let all_fields = object_fields(def);
            let mut fields = BTreeMap::new();
            for (f, level) in &p.fields {
                let name = match *f as usize % (all_fields.len() + 1) {
                    0 => "*".to_owned(),
                    i => all_fields[i - 1].clone(),
                };
                fields.insert(name, *level);
            }
            let actions = Toggle::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| p.toggles & (1 << i) != 0)
                .map(|(_, t)| t)
                .filter(|t| *slot == 0 || !t.contacts_only())
                .collect();
            objects.insert(
                def.name.clone(),
                ObjectPermissions {
                    view_object: p.view_object,
                    edit_settings: p.edit_settings,
                    delete_object: p.delete_object,
                    all_records: p.all,
                    associated_records: p.assoc,
                    actions,
                    fields,
                },
            );
        }
        groups.push(Group {
            id,
            create_objects: g.create_objects,
            objects,
        });
    }
    let group_ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();

    let role_name = |k: u8| match k as usize % (SHARED_ROLES.len() + 1) {
        i if i < SHARED_ROLES.len() => SHARED_ROLES[i].to_owned(),
        _ => own("role", t),
    };
    let mut roles: Vec<Role> = Vec::new();
    for (name, gs) in &s.roles {
        let id = role_name(*name);
        if roles.iter().any(|r| r.id == id) {
            continue;
        }
        roles.push(Role {
            id,
            groups: picks(&group_ids, gs),
        });
    }
    let role_ids: Vec<String> = roles.iter().map(|r| r.id.clone()).collect();

    let user_name = |k: u8| match k as usize % (SHARED_USERS.len() + 1) {
        i if i < SHARED_USERS.len() => SHARED_USERS[i].to_owned(),
        _ => own("user", t),
    };
    let mut users: Vec<User> = Vec::new();
    for u in &s.users {
        let id = user_name(u.name);
        if users.iter().any(|x| x.id == id) {
            continue;
        }
        users.push(User {
            id,
            admin: u.admin,
            roles: picks(&role_ids, &u.roles),
            groups: picks(&group_ids, &u.groups),
        });
    }
    let user_ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();

    let mut integrations: Vec<Integration> = Vec::new();
    for i in &s.integrations {
        let id = if i.name % 2 == 0 {
            SHARED_INTEGRATION.to_owned()
        } else {
            own("key", t)
        };
        if integrations.iter().any(|x| x.id == id) {
            continue;
        }
        integrations.push(Integration {
            id,
            groups: picks(&group_ids, &i.groups),
            user: i.user.and_then(|k| pick(&user_ids, k).cloned()),
        });
    }
    let integration_ids: Vec<String> = integrations.iter().map(|i| i.id.clone()).collect();

    let mut automations: Vec<Automation> = Vec::new();
    for a in &s.automations {
        let id = if a.name % 2 == 0 {
            SHARED_AUTOMATION.to_owned()
        } else {
            own("auto", t)
        };
        if automations.iter().any(|x| x.id == id) {
            continue;
        }
        let run_as = match pick(&integration_ids, a.target) {
            Some(i) if a.as_integration => RunAs::Integration(i.clone()),
            _ => RunAs::User(pick(&user_ids, a.target).cloned().unwrap_or_default()),
        };
        automations.push(Automation { id, run_as });
    }

    // Records: shared ids and this tenant's own, first spec of an id wins.
    let ids_here: Vec<Uuid> = (0..N_SHARED_IDS)
        .map(shared_id)
        .chain((0..N_OWN_IDS).map(|k| own_id(t, k)))
        .collect();
    let mut records: Vec<Record> = Vec::new();
    // The spec each record came from, for its links.
    let mut specs: Vec<&RecordSpec> = Vec::new();
    for r in &s.records {
        let id = ids_here[r.id as usize % ids_here.len()];
        if records.iter().any(|x| x.id == id) {
            continue;
        }
        let (slot, def) = &defs[r.object as usize % defs.len()];
        let mut teams = BTreeMap::new();
        if !def.team_fields.is_empty() && !r.team.is_empty() {
            let mut members: Vec<String> = r
                .team
                .iter()
                .map(|k| record_user(t, n_tenants, *k))
                .collect();
            members.sort();
            members.dedup();
            teams.insert(TEAM_FIELD.to_owned(), members);
        }
        records.push(Record {
            id,
            object: def.name.clone(),
            owner: r.owner.map(|k| record_user(t, n_tenants, k)),
            teams,
            interactions: r
                .interactions
                .iter()
                .map(|k| record_user(t, n_tenants, *k))
                .collect(),
            links: BTreeMap::new(),
            archived: r.archived,
            contact: if *slot == 0 {
                r.contact.as_ref().map(|c| contact_state(c, id))
            } else {
                None
            },
        });
        specs.push(r);
    }
    // Links go to any UUID of any tenant: one of this tenant's records of
    // the right object, or an id this tenant does not have (a dangling link,
    // possibly a record of another tenant, which must associate nobody).
    let everywhere = universe();
    let object_of: BTreeMap<Uuid, String> =
        records.iter().map(|r| (r.id, r.object.clone())).collect();
    for (r, spec) in records.iter_mut().zip(specs) {
        let Some(def) = defs.iter().map(|(_, d)| d).find(|d| d.name == r.object) else {
            continue;
        };
        let Some(rel) = def.relationships.first() else {
            continue;
        };
        let mut targets: Vec<Uuid> = spec
            .links
            .iter()
            .map(|k| everywhere[*k as usize % everywhere.len()])
            .filter(|id| object_of.get(id).is_none_or(|o| *o == rel.object))
            .collect();
        targets.sort();
        targets.dedup();
        if !targets.is_empty() {
            r.links.insert(LINK_FIELD.to_owned(), targets);
        }
    }

    Tenant {
        id: TENANTS[t].to_owned(),
        email_configured: s.email_configured,
        sms_configured: s.sms_configured,
        objects: defs.into_iter().map(|(_, d)| d).collect(),
        groups,
        roles,
        users,
        integrations,
        automations,
        records,
    }
}

fn yaml(file: &DataFile) -> String {
    serde_yaml::to_string(file).unwrap_or_else(|e| format!("<yaml: {e}>"))
}

// ===========================================================================
// What a tenant has, and what only others have
// ===========================================================================

/// Every name and id of a tenant that could show up in a text.
fn tokens(t: &Tenant) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    out.insert(t.id.clone());
    out.extend(t.users.iter().map(|u| u.id.clone()));
    out.extend(t.groups.iter().map(|g| g.id.clone()));
    out.extend(t.roles.iter().map(|r| r.id.clone()));
    out.extend(t.integrations.iter().map(|i| i.id.clone()));
    out.extend(t.automations.iter().map(|a| a.id.clone()));
    out.insert("contacts".to_owned());
    for o in &t.objects {
        out.insert(o.name.clone());
        out.extend(object_fields(o));
    }
    out.extend(t.records.iter().map(|r| r.id.to_string()));
    // Users named only on records (owner, team, interaction) are not the
    // tenant's: a name there that only another tenant has stays foreign.
    // Generic words that also occur in Explain's fixed texts.
    out.remove(TEAM_FIELD);
    out.remove(LINK_FIELD);
    out
}

/// What appears in no way in tenant `t` but does in another tenant.
fn foreign_tokens(file: &DataFile, t: usize) -> BTreeSet<String> {
    let mine = tokens(&file.tenants[t]);
    file.tenants
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != t)
        .flat_map(|(_, other)| tokens(other))
        .filter(|tok| !mine.contains(tok))
        .collect()
}

/// Every principal any tenant has, plus one nobody has.
fn all_principals(file: &DataFile) -> Vec<PrincipalRef> {
    let mut out: BTreeSet<(PrincipalKind, String)> = BTreeSet::new();
    for t in &file.tenants {
        out.extend(t.users.iter().map(|u| (PrincipalKind::User, u.id.clone())));
        out.extend(
            t.integrations
                .iter()
                .map(|i| (PrincipalKind::Integration, i.id.clone())),
        );
        out.extend(
            t.automations
                .iter()
                .map(|a| (PrincipalKind::Automation, a.id.clone())),
        );
    }
    out.insert((PrincipalKind::User, "user-nobody".to_owned()));
    out.into_iter()
        .map(|(kind, id)| PrincipalRef { kind, id })
        .collect()
}

/// Every object name any tenant has, plus one nobody has.
fn all_objects(file: &DataFile) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    out.insert("contacts".to_owned());
    for t in &file.tenants {
        out.extend(t.objects.iter().map(|o| o.name.clone()));
    }
    out.insert("obj-nowhere".to_owned());
    out.into_iter().collect()
}

/// Every field name any tenant has on any object, plus one nobody has.
fn all_fields(file: &DataFile) -> Vec<String> {
    let mut out: BTreeSet<String> = ["email", "email_status", "tags", "mobile_phone"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    for t in &file.tenants {
        for o in &t.objects {
            out.extend(object_fields(o));
        }
    }
    out.insert("field-nowhere".to_owned());
    out.into_iter().collect()
}

fn build_ctx(s: &CtxSpec, action: Action, fields: &[String]) -> ActionContext {
    let mut ctx = ActionContext {
        channel: s.channel,
        transactional: s.transactional,
        subscription_list: s.list.map(|k| LISTS[k as usize % LISTS.len()].to_owned()),
        fields: s
            .fields
            .iter()
            .map(|k| fields[*k as usize % fields.len()].clone())
            .collect(),
        target_email_status: s.target,
    };
    if s.raw {
        return ctx;
    }
    match action {
        Action::SendSingleMessage if ctx.channel.is_none() => ctx.channel = Some(Channel::Email),
        Action::BulkManageSubscription if ctx.target_email_status.is_none() => {
            ctx.target_email_status = Some(EmailStatus::OptedIn);
        }
        Action::BulkChangeFieldValues if ctx.fields.is_empty() => {
            ctx.fields = vec!["first_name".to_owned()];
        }
        _ => {}
    }
    ctx
}

// ===========================================================================
// Comparing the engine over every tenant with each tenant alone
// ===========================================================================

type Outcome = Result<(), TestCaseError>;

/// What a run covered.
#[derive(Default)]
struct Coverage {
    /// Answers compared, per entry point.
    compared: BTreeMap<&'static str, usize>,
    /// BatchCheck positions allowed, and denied, in the tenant asked.
    allowed: usize,
    denied: usize,
    /// A shared UUID answered differently in two tenants for the same
    /// principal id, object name, action and context: the cases where a
    /// leak would show.
    shared_id_differs: usize,
}

struct World {
    file: DataFile,
    /// Over every tenant.
    all: Engine,
    /// One per tenant, over that tenant alone.
    alone: Vec<Engine>,
    foreign: Vec<BTreeSet<String>>,
    /// Per tenant, per object name: its record ids.
    records_of: Vec<BTreeMap<String, BTreeSet<Uuid>>>,
    principals: Vec<PrincipalRef>,
    objects: Vec<String>,
    fields: Vec<String>,
    /// Every id asked about, in every tenant: every UUID of every tenant,
    /// an id nobody has, and repeats.
    batch: Vec<Uuid>,
    /// The ids Check and Explain are asked about one by one: the shared
    /// ids, the first own id of each tenant, and the id nobody has.
    probes: Vec<Uuid>,
}

fn engine(file: &DataFile, revision: u64) -> Engine {
    Engine::new(Snapshot::build(file, revision), 10_000)
}

impl World {
    fn build(s: &Scenario) -> Result<World, TestCaseError> {
        let n = s.tenants.len();
        let file = DataFile {
            tenants: s
                .tenants
                .iter()
                .enumerate()
                .map(|(t, spec)| build_tenant(t, n, spec))
                .collect(),
        };
        let report = validate(&file);
        prop_assert!(
            report.errors.is_empty(),
            "generator produced an invalid file: {:?}\n{}",
            report.errors,
            yaml(&file)
        );
        let alone = file
            .tenants
            .iter()
            .map(|t| {
                engine(
                    &DataFile {
                        tenants: vec![t.clone()],
                    },
                    1,
                )
            })
            .collect();
        let records_of = file
            .tenants
            .iter()
            .map(|t| {
                let mut m: BTreeMap<String, BTreeSet<Uuid>> = BTreeMap::new();
                for r in &t.records {
                    m.entry(r.object.clone()).or_default().insert(r.id);
                }
                m
            })
            .collect();
        let mut batch = universe();
        batch.push(Uuid::from_u128(0xffff_0000_0000_4000_8000_0000_0000_0001));
        batch.extend_from_slice(&universe()[..3]);
        let mut probes: Vec<Uuid> = (0..N_SHARED_IDS).map(shared_id).collect();
        probes.extend((0..TENANTS.len()).map(|t| own_id(t, 0)));
        probes.push(batch[N_SHARED_IDS + TENANTS.len() * N_OWN_IDS]);
        Ok(World {
            all: engine(&file, 1),
            alone,
            foreign: (0..n).map(|t| foreign_tokens(&file, t)).collect(),
            records_of,
            principals: all_principals(&file),
            objects: all_objects(&file),
            fields: all_fields(&file),
            batch,
            probes,
            file,
        })
    }

    fn describe(&self, t: usize, what: &str) -> String {
        format!(
            "tenant {}: {what}\n--- data file ---\n{}",
            TENANTS[t],
            yaml(&self.file)
        )
    }

    fn is_record(&self, t: usize, object: &str, id: &Uuid) -> bool {
        self.records_of[t]
            .get(object)
            .is_some_and(|ids| ids.contains(id))
    }

    /// No text about tenant `t` may name what only other tenants have,
    /// except what the request itself named (cut out of the text first, so
    /// a foreign name inside a requested one does not count).
    fn no_foreign_text(&self, t: usize, text: &str, asked: &[&str], what: &str) -> Outcome {
        let mut asked: Vec<&str> = asked.iter().copied().filter(|a| !a.is_empty()).collect();
        asked.sort_by_key(|a| std::cmp::Reverse(a.len()));
        let mut rest = text.to_owned();
        for a in asked {
            rest = rest.replace(a, "\u{1f}");
        }
        for tok in &self.foreign[t] {
            prop_assert!(
                !rest.contains(tok.as_str()),
                "{what} names '{tok}', which only another tenant has: {text}\n{}",
                self.describe(t, what)
            );
        }
        Ok(())
    }

    fn no_foreign_error<T>(
        &self,
        t: usize,
        r: &Result<T, QueryError>,
        asked: &[&str],
        what: &str,
    ) -> Outcome {
        if let Err(e) = r {
            self.no_foreign_text(t, &e.to_string(), asked, what)?;
        }
        Ok(())
    }

    fn no_foreign_explain(
        &self,
        t: usize,
        r: &Result<Explanation, QueryError>,
        asked: &[&str],
        what: &str,
    ) -> Outcome {
        match r {
            Ok(x) => {
                for s in &x.steps {
                    self.no_foreign_text(t, &s.detail, asked, what)?;
                }
                self.no_foreign_text(t, &x.groups.join(","), asked, what)
            }
            Err(_) => self.no_foreign_error(t, r, asked, what),
        }
    }
}

fn same<T: PartialEq + Debug>(got: &T, want: &T, what: impl FnOnce() -> String) -> Outcome {
    if got != want {
        return Err(TestCaseError::fail(format!(
            "{}\n  with every tenant: {got:?}\n  tenant alone:      {want:?}",
            what()
        )));
    }
    Ok(())
}

fn question(
    t: usize,
    p: &PrincipalRef,
    object: &str,
    action: Action,
    ctx: &ActionContext,
) -> Question {
    Question {
        tenant: TENANTS[t].to_owned(),
        principal: p.clone(),
        object: object.to_owned(),
        action: action.as_str().to_owned(),
        ctx: ctx.clone(),
        min_revision: 0,
    }
}

/// One question about tenant `t` through every record entry point, against
/// the tenant-alone engine and the independent checks. `deep` adds Check
/// and Explain per id.
fn compare_question(
    w: &World,
    t: usize,
    q: &Question,
    deep: bool,
    cov: &mut Coverage,
) -> Result<Option<Vec<Option<Reason>>>, TestCaseError> {
    let alone = &w.alone[t];
    let what = |entry: &str| {
        format!(
            "{entry}: {:?} '{}' {} {} ctx {:?}",
            q.principal.kind, q.principal.id, q.object, q.action, q.ctx
        )
    };
    let mut asked: Vec<&str> = vec![
        q.principal.id.as_str(),
        q.object.as_str(),
        q.action.as_str(),
    ];
    asked.extend(q.ctx.fields.iter().map(String::as_str));

    let got = w.all.batch_check(q, &w.batch, NOW);
    let want = alone.batch_check(q, &w.batch, NOW);
    same(&got, &want, || w.describe(t, &what("BatchCheck")))?;
    w.no_foreign_error(t, &got, &asked, &what("BatchCheck error"))?;
    *cov.compared.entry("BatchCheck").or_default() += 1;
    let reasons = match &got {
        Ok(a) => {
            let mut reasons: Vec<Option<Reason>> = vec![None; w.batch.len()];
            for (pos, r) in &a.denials {
                reasons[*pos as usize] = Some(*r);
            }
            for (pos, id) in w.batch.iter().enumerate() {
                if !w.is_record(t, &q.object, id) {
                    prop_assert_eq!(
                        reasons[pos],
                        Some(Reason::UnknownRecord),
                        "{} is not a {} record of this tenant\n{}",
                        id,
                        &q.object,
                        w.describe(t, &what("BatchCheck"))
                    );
                }
                if reasons[pos].is_none() {
                    cov.allowed += 1;
                } else {
                    cov.denied += 1;
                }
            }
            Some(reasons)
        }
        Err(_) => None,
    };

    let got = w.all.lookup(q, NOW);
    let want = alone.lookup(q, NOW);
    same(&got, &want, || w.describe(t, &what("LookupRecords")))?;
    *cov.compared.entry("LookupRecords").or_default() += 1;
    if let Ok((ids, _)) = &got {
        for id in ids {
            prop_assert!(
                w.is_record(t, &q.object, id),
                "LookupRecords returned {}, not a {} record of this tenant\n{}",
                id,
                &q.object,
                w.describe(t, &what("LookupRecords"))
            );
        }
    }

    // Record-less Check (create, upload; refused for every other action).
    let got = w.all.check(q, None, NOW);
    let want = alone.check(q, None, NOW);
    same(&got, &want, || w.describe(t, &what("Check without record")))?;
    *cov.compared.entry("Check").or_default() += 1;
    let got = w.all.explain(q, None, NOW);
    let want = alone.explain(q, None, NOW);
    same(&got, &want, || {
        w.describe(t, &what("Explain without record"))
    })?;
    w.no_foreign_explain(t, &got, &asked, &what("Explain without record"))?;

    if !deep {
        return Ok(reasons);
    }
    for id in &w.probes {
        let id_text = id.to_string();
        let mut asked = asked.clone();
        asked.push(&id_text);
        let got = w.all.check(q, Some(*id), NOW);
        let want = alone.check(q, Some(*id), NOW);
        same(&got, &want, || w.describe(t, &what(&format!("Check {id}"))))?;
        *cov.compared.entry("Check").or_default() += 1;
        let got = w.all.explain(q, Some(*id), NOW);
        let want = alone.explain(q, Some(*id), NOW);
        same(&got, &want, || {
            w.describe(t, &what(&format!("Explain {id}")))
        })?;
        w.no_foreign_explain(t, &got, &asked, &what(&format!("Explain {id}")))?;
        *cov.compared.entry("Explain").or_default() += 1;
    }
    Ok(reasons)
}

/// ObjectAccess and RecordAccess of one principal in tenant `t`.
fn compare_access(w: &World, t: usize, p: &PrincipalRef, cov: &mut Coverage) -> Outcome {
    let alone = &w.alone[t];
    let tenant = TENANTS[t];
    let what = |entry: String| format!("{entry}: {:?} '{}'", p.kind, p.id);
    let got = w.all.object_access(tenant, p, None, 0);
    let want = alone.object_access(tenant, p, None, 0);
    same(&got, &want, || {
        w.describe(t, &what("ObjectAccess(all)".into()))
    })?;
    w.no_foreign_error(t, &got, &[&p.id], &what("ObjectAccess error".into()))?;
    if let Ok((flags, _, _)) = &got {
        let mine: BTreeSet<&str> = w.file.tenants[t]
            .objects
            .iter()
            .map(|o| o.name.as_str())
            .chain(["contacts"])
            .collect();
        for f in flags {
            prop_assert!(
                mine.contains(f.object.as_str()),
                "ObjectAccess lists '{}', not an object of this tenant\n{}",
                &f.object,
                w.describe(t, &what("ObjectAccess".into()))
            );
        }
    }
    *cov.compared.entry("ObjectAccess").or_default() += 1;
    for object in &w.objects {
        let got = w.all.object_access(tenant, p, Some(object), 0);
        let want = alone.object_access(tenant, p, Some(object), 0);
        same(&got, &want, || {
            w.describe(t, &what(format!("ObjectAccess({object})")))
        })?;
        w.no_foreign_error(
            t,
            &got,
            &[&p.id, object],
            &what("ObjectAccess error".into()),
        )?;
        let got = w.all.record_access(tenant, p, object, &w.batch, 0, NOW);
        let want = alone.record_access(tenant, p, object, &w.batch, 0, NOW);
        same(&got, &want, || {
            w.describe(t, &what(format!("RecordAccess({object})")))
        })?;
        w.no_foreign_error(
            t,
            &got,
            &[&p.id, object],
            &what("RecordAccess error".into()),
        )?;
        if let Ok((flags, _)) = &got {
            for f in flags {
                if !w.is_record(t, object, &f.record_id) {
                    prop_assert!(
                        !f.view && !f.edit && !f.remove && f.field_mask.is_empty(),
                        "RecordAccess flags {:?} on an id that is not a {} record here\n{}",
                        f,
                        object,
                        w.describe(t, &what("RecordAccess".into()))
                    );
                }
            }
        }
        *cov.compared.entry("RecordAccess").or_default() += 1;
    }
    Ok(())
}

/// Every chosen principal, object and action, asked of every tenant in turn
/// (so the shared cache holds the same key for the other tenants).
fn compare_everything(w: &World, s: &Scenario, deep: bool, cov: &mut Coverage) -> Outcome {
    let n = w.file.tenants.len();
    let mut chosen: Vec<&PrincipalRef> = Vec::new();
    for k in &s.principals {
        let p = &w.principals[*k as usize % w.principals.len()];
        if !chosen.contains(&p) {
            chosen.push(p);
        }
    }
    let order: Vec<usize> = (0..n).map(|i| (i + s.rotate as usize) % n).collect();
    for p in &chosen {
        for &t in &order {
            compare_access(w, t, p, cov)?;
        }
        for object in &w.objects {
            for (ai, action) in Action::ALL.into_iter().enumerate().filter(|(ai, _)| {
                *ai == 0
                    || s.actions
                        .iter()
                        .any(|k| *k as usize % Action::ALL.len() == *ai)
            }) {
                let ctx = build_ctx(&s.ctxs[ai % s.ctxs.len()], action, &w.fields);
                let mut answers: Vec<(usize, Vec<Option<Reason>>)> = Vec::new();
                for &t in &order {
                    let q = question(t, p, object, action, &ctx);
                    // Explain and Check per id for every third action:
                    // BatchCheck already covers every id.
                    let deep = deep && ai % 3 == 0;
                    if let Some(r) = compare_question(w, t, &q, deep, cov)? {
                        answers.push((t, r));
                    }
                }
                // Where a leak would show: one shared UUID, answered
                // differently by two tenants.
                for (i, (_, a)) in answers.iter().enumerate() {
                    for (_, b) in answers.iter().skip(i + 1) {
                        cov.shared_id_differs +=
                            (0..N_SHARED_IDS).filter(|k| a[*k] != b[*k]).count();
                    }
                }
            }
        }
    }
    Ok(())
}

/// Applies one record change to one tenant of the shared engine (and of
/// that tenant's own engine), then compares every tenant again: the others
/// must answer exactly as before.
fn change_one_tenant(w: &World, s: &Scenario, cov: &mut Coverage) -> Outcome {
    let n = w.file.tenants.len();
    let t = s.change.tenant as usize % n;
    let tenant = &w.file.tenants[t];
    let Some(record) = (!tenant.records.is_empty())
        .then(|| &tenant.records[s.change.record as usize % tenant.records.len()])
    else {
        return Ok(());
    };
    let mut changed = record.clone();
    if record.object == "contacts" && !s.change.archive {
        changed.contact = Some(contact_state(&s.change.contact, record.id));
    } else {
        changed.archived = !record.archived;
    }
    let change = Change::upsert(TENANTS[t], Entity::Record(changed));
    let mut elsewhere = change.clone();
    elsewhere.tenant = "t-nowhere".to_owned();
    prop_assert_eq!(
        w.all.apply(std::slice::from_ref(&elsewhere)),
        Err(ApplyError::UnknownTenant("t-nowhere".to_owned()))
    );
    prop_assert_eq!(w.all.revision(), 1);
    let revision = w.all.apply(std::slice::from_ref(&change));
    prop_assert_eq!(revision, Ok(2));
    prop_assert_eq!(w.alone[t].apply(&[change]), Ok(2));
    // The other tenants' own engines: same data, next revision.
    for (i, e) in w.alone.iter().enumerate() {
        if i != t {
            let current = e.snapshot();
            e.publish(Snapshot {
                revision: 2,
                tenants: current.tenants.clone(),
            });
        }
    }
    compare_everything(w, s, false, cov)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

#[test]
fn no_answer_about_one_tenant_depends_on_or_reveals_another() {
    let cases = cases();
    let config = ProptestConfig {
        cases,
        max_shrink_iters: 2048,
        // Run by hand, there is no source file to persist failing seeds
        // next to; the failure message carries the data file.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let coverage = Mutex::new(Coverage::default());
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&scenario(), |s| {
        let mut cov = Coverage::default();
        let w = World::build(&s)?;
        compare_everything(&w, &s, true, &mut cov)?;
        change_one_tenant(&w, &s, &mut cov)?;
        let mut total = coverage.lock().unwrap();
        for (k, v) in cov.compared {
            *total.compared.entry(k).or_default() += v;
        }
        total.allowed += cov.allowed;
        total.denied += cov.denied;
        total.shared_id_differs += cov.shared_id_differs;
        Ok(())
    });
    if let Err(e) = result {
        panic!("tenant isolation: {e}");
    }
    let cov = coverage.into_inner().unwrap();
    eprintln!(
        "tenant isolation: {cases} cases in {:.1?}; compared {:?}; positions allowed {}, denied {}; shared ids answered differently across tenants {}",
        started.elapsed(),
        cov.compared,
        cov.allowed,
        cov.denied,
        cov.shared_id_differs
    );
    // The generator must produce the situations a leak would show in.
    if cases >= 32 {
        assert!(cov.allowed > 0, "no position was ever allowed");
        assert!(
            cov.shared_id_differs > 0,
            "no shared UUID was ever answered differently by two tenants"
        );
        for entry in [
            "BatchCheck",
            "LookupRecords",
            "Check",
            "Explain",
            "ObjectAccess",
            "RecordAccess",
        ] {
            assert!(
                cov.compared.get(entry).copied().unwrap_or(0) > 0,
                "{entry} never compared"
            );
        }
    }
}

// ===========================================================================
// A fixed two-tenant file: unknown tenants, and the whole thing over gRPC
// ===========================================================================

/// alpha and beta share user, group, role and integration ids, object
/// names and record UUIDs; beta grants far more (ann is an admin there, the
/// shared group reaches every record at delete), and the same UUIDs are
/// other records with other owners, states and archived flags.
const TWO_TENANTS: &str = r#"
tenants:
  - id: alpha
    email_configured: true
    sms_configured: false
    objects:
      - name: contacts
        fields: [first_name]
        team_fields: [team]
      - name: deals
        fields: [stage]
    groups:
      - id: sales
        objects:
          contacts:
            view_object: true
            associated_records: edit
            actions: [export, bulk_export, bulk_send_email]
            fields: {"*": view, first_name: edit}
      - id: ops
        objects:
          deals: {view_object: true, associated_records: view, fields: {stage: view}}
    roles: [{id: rep, groups: [sales]}]
    users:
      - {id: ann, roles: [rep]}
      - {id: bob, groups: [ops]}
      - {id: alpha-carl, roles: [rep], groups: [ops]}
    integrations: [{id: sync, groups: [sales], user: bob}]
    automations: [{id: drip, run_as: {user: ann}}]
    records:
      - id: 5a5a0000-0000-4000-8000-000000000001
        object: contacts
        owner: ann
        contact: {email: a1@example.com, email_status: opted_in}
      - id: 5a5a0000-0000-4000-8000-000000000002
        object: contacts
        owner: alpha-carl
        teams: {team: [ann]}
        archived: true
        contact: {email: a2@example.com, email_status: unsubscribed_all}
      - id: 5a5a0000-0000-4000-8000-000000000003
        object: contacts
        owner: beta-dora
        contact: {email: a3@example.com, email_status: opted_in}
      - id: 5a5a0000-0000-4000-8000-000000000004
        object: deals
        owner: bob
      - id: aaaa0000-0000-4000-8000-000000000001
        object: contacts
        interactions: [ann]
        contact: {email_status: opted_in}

  - id: beta
    email_configured: true
    sms_configured: true
    objects:
      - name: contacts
        fields: [first_name, beta_secret]
        team_fields: [team]
      - name: deals
        fields: [stage]
      - name: beta-projects
    groups:
      - id: sales
        create_objects: true
        objects:
          contacts:
            view_object: true
            all_records: delete
            actions: [export, bulk_export, bulk_send_email, bulk_archive, bulk_change_tags]
            fields: {"*": edit}
          deals: {view_object: true, all_records: delete, fields: {"*": edit}}
          beta-projects: {view_object: true, all_records: view}
      - id: beta-vip
        objects:
          contacts: {view_object: true, all_records: delete, fields: {"*": edit}}
    roles: [{id: rep, groups: [sales, beta-vip]}]
    users:
      - {id: ann, admin: true}
      - {id: bob, roles: [rep]}
      - {id: beta-dora, roles: [rep]}
    integrations: [{id: sync, groups: [sales, beta-vip], user: ann}]
    automations: [{id: drip, run_as: {user: ann}}]
    records:
      - id: 5a5a0000-0000-4000-8000-000000000001
        object: contacts
        owner: bob
        archived: true
        contact: {email: b1@example.com, email_status: unsubscribed_all}
      - id: 5a5a0000-0000-4000-8000-000000000002
        object: contacts
        owner: ann
        contact: {email: b2@example.com, email_status: opted_in}
      - id: 5a5a0000-0000-4000-8000-000000000003
        object: deals
        owner: ann
      - id: 5a5a0000-0000-4000-8000-000000000004
        object: contacts
        owner: bob
        contact: {email: b4@example.com, email_status: opted_in}
      - id: bbbb0000-0000-4000-8000-000000000001
        object: contacts
        owner: ann
        contact: {email: bb@example.com, email_status: opted_in}
      - id: bbbb0000-0000-4000-8000-000000000002
        object: beta-projects
        owner: ann
"#;

const S1: Uuid = Uuid::from_u128(0x5a5a_0000_0000_4000_8000_0000_0000_0001);
const S2: Uuid = Uuid::from_u128(0x5a5a_0000_0000_4000_8000_0000_0000_0002);
const S3: Uuid = Uuid::from_u128(0x5a5a_0000_0000_4000_8000_0000_0000_0003);
const S4: Uuid = Uuid::from_u128(0x5a5a_0000_0000_4000_8000_0000_0000_0004);
const ALPHA_ONLY: Uuid = Uuid::from_u128(0xaaaa_0000_0000_4000_8000_0000_0000_0001);
const BETA_ONLY: Uuid = Uuid::from_u128(0xbbbb_0000_0000_4000_8000_0000_0000_0001);
const BETA_PROJECT: Uuid = Uuid::from_u128(0xbbbb_0000_0000_4000_8000_0000_0000_0002);
/// Every id either tenant has, and one neither has.
const FIXED_IDS: [Uuid; 8] = [
    S1,
    S2,
    S3,
    S4,
    ALPHA_ONLY,
    BETA_ONLY,
    BETA_PROJECT,
    Uuid::from_u128(0xffff_0000_0000_4000_8000_0000_0000_0001),
];
/// What only beta has: no answer about alpha may name it.
const BETA_ONLY_TOKENS: [&str; 7] = [
    "beta",
    "beta-dora",
    "beta-vip",
    "beta_secret",
    "beta-projects",
    "bbbb0000-0000-4000-8000-000000000001",
    "bbbb0000-0000-4000-8000-000000000002",
];

fn two_tenant_file() -> DataFile {
    permd::source::parse_str(TWO_TENANTS, false, Path::new("two-tenants.yaml"))
        .unwrap_or_else(|e| panic!("the two-tenant file does not load: {e}"))
        .0
}

fn only(file: &DataFile, id: &str) -> DataFile {
    DataFile {
        tenants: file
            .tenants
            .iter()
            .filter(|t| t.id == id)
            .cloned()
            .collect(),
    }
}

fn pref(kind: PrincipalKind, id: &str) -> PrincipalRef {
    PrincipalRef {
        kind,
        id: id.to_owned(),
    }
}

#[test]
fn unknown_tenant_is_not_found_naming_it_at_every_entry_point() {
    let e = engine(&two_tenant_file(), 1);
    let ann = pref(PrincipalKind::User, "ann");
    // Exact names: no case folding, no trimming, no prefix match.
    for tenant in ["gamma", "Alpha", "alpha ", "alph", "", "alpha,beta"] {
        let want = QueryError::UnknownTenant(tenant.to_owned());
        let q = Question {
            tenant: tenant.to_owned(),
            principal: ann.clone(),
            object: "contacts".to_owned(),
            action: "view".to_owned(),
            ctx: ActionContext::default(),
            min_revision: 0,
        };
        assert_eq!(e.batch_check(&q, &[S1], NOW).unwrap_err(), want);
        assert_eq!(e.check(&q, Some(S1), NOW).unwrap_err(), want);
        assert_eq!(e.lookup(&q, NOW).unwrap_err(), want);
        assert_eq!(e.explain(&q, Some(S1), NOW).unwrap_err(), want);
        assert_eq!(e.object_access(tenant, &ann, None, 0).unwrap_err(), want);
        assert_eq!(
            e.record_access(tenant, &ann, "contacts", &[S1], 0, NOW)
                .unwrap_err(),
            want
        );
        assert_eq!(want.to_string(), format!("tenant '{tenant}' not found"));
    }
}

#[test]
fn the_fixed_two_tenant_file_answers_each_tenant_from_its_own_data() {
    // Spot checks with the expected answer written out, so that the oracle
    // comparison of the gRPC test is known to compare different answers.
    let e = engine(&two_tenant_file(), 1);
    let ask = |tenant: &str, who: &str, object: &str, action: &str, id: Uuid| {
        let q = Question {
            tenant: tenant.to_owned(),
            principal: pref(PrincipalKind::User, who),
            object: object.to_owned(),
            action: action.to_owned(),
            ctx: ActionContext::default(),
            min_revision: 0,
        };
        e.check(&q, Some(id), NOW).unwrap().reason
    };
    use Reason::*;
    // S1: ann's live Contact in alpha; bob's archived Contact in beta.
    assert_eq!(ask("alpha", "ann", "contacts", "view", S1), None);
    assert_eq!(ask("beta", "ann", "contacts", "view", S1), Some(Archived));
    // S2: archived in alpha (ann on its team); ann's live Contact in beta,
    // where she is an admin.
    assert_eq!(ask("alpha", "ann", "contacts", "view", S2), Some(Archived));
    assert_eq!(
        ask("alpha", "ann", "contacts", "unarchive", S2),
        Some(NoRecordAccess)
    );
    assert_eq!(ask("beta", "ann", "contacts", "archive", S2), None);
    // S3: a Contact in alpha owned by beta's user (dangling in alpha), a
    // deal in beta.
    assert_eq!(
        ask("alpha", "ann", "contacts", "view", S3),
        Some(NoRecordAccess)
    );
    // beta-dora is not a principal of alpha at all.
    let q = Question {
        tenant: "alpha".to_owned(),
        principal: pref(PrincipalKind::User, "beta-dora"),
        object: "contacts".to_owned(),
        action: "view".to_owned(),
        ctx: ActionContext::default(),
        min_revision: 0,
    };
    assert_eq!(
        e.check(&q, Some(S3), NOW).unwrap_err(),
        QueryError::UnknownPrincipal {
            kind: "user",
            id: "beta-dora".to_owned(),
            tenant: "alpha".to_owned(),
        }
    );
    assert_eq!(
        ask("alpha", "ann", "deals", "view", S3),
        Some(UnknownRecord)
    );
    assert_eq!(ask("beta", "bob", "deals", "view", S3), None);
    // S4: bob's deal in alpha; bob's Contact in beta.
    assert_eq!(ask("alpha", "bob", "deals", "view", S4), None);
    assert_eq!(
        ask("alpha", "bob", "contacts", "view", S4),
        Some(UnknownRecord)
    );
    assert_eq!(ask("beta", "bob", "contacts", "view", S4), None);
    // The other tenant's own records are unknown here, even to beta's admin.
    assert_eq!(
        ask("alpha", "ann", "contacts", "view", BETA_ONLY),
        Some(UnknownRecord)
    );
    assert_eq!(
        ask("beta", "ann", "contacts", "view", ALPHA_ONLY),
        Some(UnknownRecord)
    );
    // beta-projects is not an object of alpha, and the message lists only
    // alpha's objects.
    let q = Question {
        tenant: "alpha".to_owned(),
        principal: pref(PrincipalKind::User, "ann"),
        object: "beta-projects".to_owned(),
        action: "view".to_owned(),
        ctx: ActionContext::default(),
        min_revision: 0,
    };
    assert_eq!(
        e.check(&q, Some(BETA_PROJECT), NOW).unwrap_err(),
        QueryError::UnknownObject {
            object: "beta-projects".to_owned(),
            tenant: "alpha".to_owned(),
            valid: "contacts, deals".to_owned(),
        }
    );
    // beta_secret is a field of beta's Contacts only.
    let mut q = Question {
        object: "contacts".to_owned(),
        action: "edit".to_owned(),
        ..q
    };
    q.ctx.fields = vec!["beta_secret".to_owned()];
    assert_eq!(
        e.check(&q, Some(S1), NOW).unwrap_err(),
        QueryError::UnknownField {
            field: "beta_secret".to_owned(),
            object: "contacts".to_owned(),
            valid: "email, email_status, mobile_phone, tags, timezone, birthday, first_name, team"
                .to_owned(),
        }
    );
    // ObjectAccess: alpha's ann is no admin and cannot create objects.
    let (flags, create_objects, _) = e
        .object_access("alpha", &pref(PrincipalKind::User, "ann"), None, 0)
        .unwrap();
    assert!(!create_objects);
    assert_eq!(
        flags.iter().map(|f| f.object.as_str()).collect::<Vec<_>>(),
        vec!["contacts"]
    );
}

// --------------------------------------------------------------- gRPC ---

const TEST_TIMEOUT: StdDuration = StdDuration::from_secs(120);

async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test exceeded its time limit");
}

struct TestServer {
    addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    async fn start(file: &DataFile) -> TestServer {
        let engine = Arc::new(engine(file, 1));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(permd::server::serve(
            engine,
            listener,
            DEFAULT_MAX_MESSAGE_BYTES,
            async move {
                let _ = rx.await;
            },
        ));
        TestServer {
            addr,
            _shutdown: tx,
            handle,
        }
    }

    async fn client(&self) -> AuthorizerClient<GrpcChannel> {
        let channel = Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_timeout(StdDuration::from_secs(5))
            .timeout(StdDuration::from_secs(30))
            .connect()
            .await
            .unwrap();
        AuthorizerClient::new(channel)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

fn wire_principal(kind: pb::principal::Kind, id: &str) -> Option<pb::Principal> {
    Some(pb::Principal {
        kind: kind as i32,
        id: id.to_owned(),
    })
}

/// Every page of a LookupRecords stream, as sent.
async fn lookup_pages(
    c: &mut AuthorizerClient<GrpcChannel>,
    req: pb::LookupRecordsRequest,
) -> Result<Vec<pb::LookupRecordsResponse>, tonic::Status> {
    let mut stream = c.lookup_records(req).await?.into_inner();
    let mut pages = Vec::new();
    while let Some(page) = stream.message().await? {
        pages.push(page);
    }
    Ok(pages)
}

fn status_of<T>(r: &Result<T, tonic::Status>) -> Option<(Code, String)> {
    r.as_ref().err().map(|s| (s.code(), s.message().to_owned()))
}

/// The two results are equal: both the same message, or both the same
/// status code and message.
#[track_caller]
fn assert_same_wire<T: PartialEq + Debug>(
    got: Result<T, tonic::Status>,
    want: Result<T, tonic::Status>,
    what: &str,
) -> Option<T> {
    assert_eq!(status_of(&got), status_of(&want), "{what}: status");
    match (got, want) {
        (Ok(g), Ok(w)) => {
            assert_eq!(g, w, "{what}: response");
            Some(g)
        }
        _ => None,
    }
}

#[track_caller]
fn assert_no_beta_text(text: &str, what: &str) {
    for tok in BETA_ONLY_TOKENS {
        assert!(!text.contains(tok), "{what}: names beta's '{tok}': {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_answers_about_a_tenant_equal_a_server_holding_only_that_tenant() {
    bounded(async {
        let file = two_tenant_file();
        let both = TestServer::start(&file).await;
        let alpha_alone = TestServer::start(&only(&file, "alpha")).await;
        let beta_alone = TestServer::start(&only(&file, "beta")).await;
        let mut c_both = both.client().await;
        use pb::principal::Kind;
        let principals = [
            (Kind::User, "ann"),
            (Kind::User, "bob"),
            (Kind::User, "alpha-carl"),
            (Kind::User, "beta-dora"),
            (Kind::Integration, "sync"),
            (Kind::Automation, "drip"),
        ];
        let actions = [
            ("view", None),
            ("edit", Some(vec!["first_name".to_owned()])),
            ("archive", None),
            ("unarchive", None),
            ("bulk_export", None),
            ("bulk_send_email", None),
            ("bulk_change_tags", None),
            ("edit", Some(vec!["beta_secret".to_owned()])),
        ];
        let objects = ["contacts", "deals", "beta-projects"];
        let mut compared = 0usize;
        let mut differ = 0usize;
        for (tenant, alone) in [("alpha", &alpha_alone), ("beta", &beta_alone)] {
            let mut c_alone = alone.client().await;
            for (kind, who) in principals {
                for object in objects {
                    for (action, fields) in &actions {
                        let context = fields.as_ref().map(|f| pb::ActionContext {
                            fields: f.clone(),
                            ..Default::default()
                        });
                        let what =
                            format!("{tenant}: {kind:?} {who} {action} {fields:?} on {object}");
                        // BatchCheck, string ids and packed, allowed ids returned.
                        let string_req = pb::BatchCheckRequest {
                            tenant: tenant.to_owned(),
                            principal: wire_principal(kind, who),
                            object: object.to_owned(),
                            action: (*action).to_owned(),
                            records: Some(pb::batch_check_request::Records::RecordIds(
                                pb::StringIds {
                                    ids: FIXED_IDS.iter().map(Uuid::to_string).collect(),
                                },
                            )),
                            context: context.clone(),
                            return_allowed_ids: true,
                            min_revision: 0,
                        };
                        let packed_req = pb::BatchCheckRequest {
                            records: Some(pb::batch_check_request::Records::PackedRecordIds(
                                pb::PackedIds {
                                    uuids: FIXED_IDS.iter().flat_map(|id| *id.as_bytes()).collect(),
                                },
                            )),
                            ..string_req.clone()
                        };
                        for req in [string_req, packed_req] {
                            let got = c_both
                                .batch_check(req.clone())
                                .await
                                .map(|r| r.into_inner());
                            let want = c_alone.batch_check(req).await.map(|r| r.into_inner());
                            if let Some(resp) =
                                assert_same_wire(got, want, &format!("BatchCheck {what}"))
                            {
                                // Ids the tenant does not have are UNKNOWN_RECORD.
                                let file_tenant =
                                    file.tenants.iter().find(|t| t.id == tenant).unwrap();
                                for d in &resp.denials {
                                    let id = FIXED_IDS[d.position as usize];
                                    let known = file_tenant
                                        .records
                                        .iter()
                                        .any(|r| r.id == id && r.object == object);
                                    if !known {
                                        assert_eq!(
                                            d.reason,
                                            pb::Reason::UnknownRecord as i32,
                                            "{what}: {id}"
                                        );
                                    }
                                }
                                compared += 1;
                            }
                        }
                        // LookupRecords, streamed in pages of 2, strings and packed.
                        for packed in [false, true] {
                            let req = pb::LookupRecordsRequest {
                                tenant: tenant.to_owned(),
                                principal: wire_principal(kind, who),
                                object: object.to_owned(),
                                action: (*action).to_owned(),
                                context: context.clone(),
                                page_size: 2,
                                packed,
                                min_revision: 0,
                            };
                            let got = lookup_pages(&mut c_both, req.clone()).await;
                            let want = lookup_pages(&mut c_alone, req).await;
                            assert_same_wire(got, want, &format!("LookupRecords {what}"));
                        }
                        // Explain and Check on every id.
                        for id in FIXED_IDS {
                            let req = pb::ExplainRequest {
                                tenant: tenant.to_owned(),
                                principal: wire_principal(kind, who),
                                object: object.to_owned(),
                                action: (*action).to_owned(),
                                record_id: id.to_string(),
                                context: context.clone(),
                                min_revision: 0,
                            };
                            let got = c_both.explain(req.clone()).await.map(|r| r.into_inner());
                            let want = c_alone.explain(req).await.map(|r| r.into_inner());
                            let asked_beta_id = BETA_ONLY_TOKENS.contains(&id.to_string().as_str());
                            let asked_beta_name = who.starts_with("beta")
                                || object.starts_with("beta")
                                || fields.iter().flatten().any(|f| f.starts_with("beta"));
                            if tenant == "alpha" && !asked_beta_id && !asked_beta_name {
                                match &got {
                                    Ok(x) => {
                                        for s in &x.steps {
                                            assert_no_beta_text(
                                                &s.detail,
                                                &format!("Explain {what} {id}"),
                                            );
                                        }
                                        assert_no_beta_text(
                                            &x.groups.join(","),
                                            &format!("Explain {what} {id}"),
                                        );
                                    }
                                    Err(s) => assert_no_beta_text(
                                        s.message(),
                                        &format!("Explain {what} {id}"),
                                    ),
                                }
                            }
                            assert_same_wire(got, want, &format!("Explain {what} {id}"));
                            let req = pb::CheckRequest {
                                tenant: tenant.to_owned(),
                                principal: wire_principal(kind, who),
                                object: object.to_owned(),
                                action: (*action).to_owned(),
                                record_id: id.to_string(),
                                context: context.clone(),
                                min_revision: 0,
                            };
                            let got = c_both.check(req.clone()).await.map(|r| r.into_inner());
                            let want = c_alone.check(req).await.map(|r| r.into_inner());
                            assert_same_wire(got, want, &format!("Check {what} {id}"));
                        }
                    }
                }
                // ObjectAccess, all objects and each; RecordAccess on every id.
                for object in ["", "contacts", "deals", "beta-projects"] {
                    let req = pb::ObjectAccessRequest {
                        tenant: tenant.to_owned(),
                        principal: wire_principal(kind, who),
                        object: object.to_owned(),
                        min_revision: 0,
                    };
                    let got = c_both
                        .object_access(req.clone())
                        .await
                        .map(|r| r.into_inner());
                    let want = c_alone.object_access(req).await.map(|r| r.into_inner());
                    assert_same_wire(
                        got,
                        want,
                        &format!("ObjectAccess {tenant} {who} {object:?}"),
                    );
                }
                for object in objects {
                    let req = pb::RecordAccessRequest {
                        tenant: tenant.to_owned(),
                        principal: wire_principal(kind, who),
                        object: object.to_owned(),
                        record_ids: FIXED_IDS.iter().map(Uuid::to_string).collect(),
                        min_revision: 0,
                    };
                    let got = c_both
                        .record_access(req.clone())
                        .await
                        .map(|r| r.into_inner());
                    let want = c_alone.record_access(req).await.map(|r| r.into_inner());
                    assert_same_wire(got, want, &format!("RecordAccess {tenant} {who} {object}"));
                }
            }
        }
        // The same question about the shared ids gets different answers in
        // the two tenants: the comparison above was not vacuous.
        for action in ["view", "bulk_export", "archive"] {
            let ask = |tenant: &str| pb::BatchCheckRequest {
                tenant: tenant.to_owned(),
                principal: wire_principal(Kind::User, "ann"),
                object: "contacts".to_owned(),
                action: action.to_owned(),
                records: Some(pb::batch_check_request::Records::RecordIds(pb::StringIds {
                    ids: FIXED_IDS.iter().map(Uuid::to_string).collect(),
                })),
                ..Default::default()
            };
            let a = c_both.batch_check(ask("alpha")).await.unwrap().into_inner();
            let b = c_both.batch_check(ask("beta")).await.unwrap().into_inner();
            if a.denials != b.denials {
                differ += 1;
            }
        }
        assert!(
            compared > 100,
            "only {compared} BatchCheck answers compared"
        );
        assert_eq!(differ, 3, "alpha and beta answered ann alike");
        // Unknown tenant: NOT_FOUND naming it, through every RPC.
        let principal = wire_principal(Kind::User, "ann");
        let named = "tenant 'gamma' not found";
        let check = |r: Result<(), tonic::Status>, rpc: &str| {
            let s = r.expect_err(rpc);
            assert_eq!(s.code(), Code::NotFound, "{rpc}: {}", s.message());
            assert!(s.message().contains(named), "{rpc}: {}", s.message());
        };
        check(
            c_both
                .check(pb::CheckRequest {
                    tenant: "gamma".to_owned(),
                    principal: principal.clone(),
                    object: "contacts".to_owned(),
                    action: "view".to_owned(),
                    record_id: S1.to_string(),
                    ..Default::default()
                })
                .await
                .map(drop),
            "Check",
        );
        check(
            c_both
                .batch_check(pb::BatchCheckRequest {
                    tenant: "gamma".to_owned(),
                    principal: principal.clone(),
                    object: "contacts".to_owned(),
                    action: "view".to_owned(),
                    records: Some(pb::batch_check_request::Records::RecordIds(pb::StringIds {
                        ids: vec![S1.to_string()],
                    })),
                    ..Default::default()
                })
                .await
                .map(drop),
            "BatchCheck",
        );
        check(
            lookup_pages(
                &mut c_both,
                pb::LookupRecordsRequest {
                    tenant: "gamma".to_owned(),
                    principal: principal.clone(),
                    object: "contacts".to_owned(),
                    action: "view".to_owned(),
                    ..Default::default()
                },
            )
            .await
            .map(drop),
            "LookupRecords",
        );
        check(
            c_both
                .object_access(pb::ObjectAccessRequest {
                    tenant: "gamma".to_owned(),
                    principal: principal.clone(),
                    ..Default::default()
                })
                .await
                .map(drop),
            "ObjectAccess",
        );
        check(
            c_both
                .record_access(pb::RecordAccessRequest {
                    tenant: "gamma".to_owned(),
                    principal: principal.clone(),
                    object: "contacts".to_owned(),
                    record_ids: vec![S1.to_string()],
                    ..Default::default()
                })
                .await
                .map(drop),
            "RecordAccess",
        );
        check(
            c_both
                .explain(pb::ExplainRequest {
                    tenant: "gamma".to_owned(),
                    principal,
                    object: "contacts".to_owned(),
                    action: "view".to_owned(),
                    record_id: S1.to_string(),
                    ..Default::default()
                })
                .await
                .map(drop),
            "Explain",
        );
    })
    .await;
}
