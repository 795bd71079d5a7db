//! One test per rule (R1–R17) and per scenario of docs/model.md, against the
//! engine's public API. The data is `tests/fixtures/semantics.yaml`: users
//! are named for the part they play (alice the rep, dora who reads deals
//! without `view_object`, mark the marketer…), records for what they are
//! (K_ANA is alice's Contact, K_SUPPRESSED is suppressed…). The rows of
//! "What each action needs" run against a one-group tenant built per case
//! (`table_engine`), so each row proves the exact level, toggle and fields.
//!
//! Every decision asserts its exact reason, never only "denied".

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::requests::{principal_ref as pref, question as ask, reasons_by_position};
use permd::index::engine::{ObjectFlags, RecordFlags};
use permd::index::explain::Explanation;
use permd::index::{Engine, PrincipalKind, QueryError, Question, Snapshot};
use permd::model::Reason::{self, *};
use permd::model::{Action, ActionContext, Channel, DataFile, EmailStatus, FieldLevel};
use permd::source::{LoadError, load_file, parse_str};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

// ----------------------------------------------------------------- data ---

const FIXTURE: &str = include_str!("fixtures/semantics.yaml");

/// The instant every test asks at, unless it is about the clock.
const NOW: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);
/// When K_SOFT_BOUNCE's suppression ends.
const SOFT_BOUNCE_ENDS: OffsetDateTime = datetime!(2026-06-01 00:00 UTC);

const ALLOWED: Option<Reason> = None;

// acme contacts
const K_ANA: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0001);
const K_BEN: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0002);
const K_CARA: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0003);
const K_DAN: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0004);
const K_EVE: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0005);
const K_OLD: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0006);
const K_NO_EMAIL: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0010);
const K_INVALID_EMAIL: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0011);
const K_BLANK_EMAIL: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0012);
const K_NO_STATE: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0013);
const K_SUPPRESSED: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0014);
const K_SOFT_BOUNCE: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0015);
const K_UNSUBSCRIBED: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0016);
const K_NEWSLETTER_OUT: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0017);
const K_NO_MOBILE: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0018);
const K_BAD_MOBILE: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0019);
const K_SMS_OUT: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0020);
const K_SOFT_BOUNCE_STATUS: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0021);
// acme companies, deals, projects
const C_ACME: Uuid = Uuid::from_u128(0xa000_0000_0000_4000_8000_0000_0000_0001);
const C_INITECH: Uuid = Uuid::from_u128(0xa000_0000_0000_4000_8000_0000_0000_0002);
const D_BIG: Uuid = Uuid::from_u128(0xd000_0000_0000_4000_8000_0000_0000_0001);
const P_ROLLOUT: Uuid = Uuid::from_u128(0xe000_0000_0000_4000_8000_0000_0000_0001);
// quiet contacts
const Q_ALL_BAD: Uuid = Uuid::from_u128(0xc100_0000_0000_4000_8000_0000_0000_0001);
const Q_SUPPRESSED: Uuid = Uuid::from_u128(0xc100_0000_0000_4000_8000_0000_0000_0002);
const Q_UNSUBSCRIBED: Uuid = Uuid::from_u128(0xc100_0000_0000_4000_8000_0000_0000_0003);
const Q_LIST_OUT: Uuid = Uuid::from_u128(0xc100_0000_0000_4000_8000_0000_0000_0004);
const Q_FINE: Uuid = Uuid::from_u128(0xc100_0000_0000_4000_8000_0000_0000_0005);
const Q_ARCHIVED: Uuid = Uuid::from_u128(0xc100_0000_0000_4000_8000_0000_0000_0006);
/// In no tenant.
const NOWHERE: Uuid = Uuid::from_u128(0x0bad_0000_0000_4000_8000_0000_0000_0001);

/// Every field of acme's contacts as permissions see them (choice 2).
const ACME_CONTACT_FIELDS: [&str; 10] = [
    "email",
    "email_status",
    "mobile_phone",
    "tags",
    "timezone",
    "birthday",
    "first_name",
    "last_name",
    "sales_team",
    "company",
];
/// Every object of acme.
const ACME_OBJECTS: [&str; 4] = ["contacts", "companies", "deals", "projects"];

fn engine_from(yaml: &str) -> Engine {
    let (data, _warnings) = parse_str(yaml, false, Path::new("test.yaml"))
        .unwrap_or_else(|e| panic!("fixture does not load: {e}"));
    Engine::new(Snapshot::build(&data, 1), 100_000)
}

fn engine() -> Engine {
    engine_from(FIXTURE)
}

// ------------------------------------------------------------ questions ---

/// A user of acme asks.
fn user(who: &str, object: &str, action: &str) -> Question {
    ask("acme", PrincipalKind::User, who, object, action)
}

fn integration(who: &str, object: &str, action: &str) -> Question {
    ask("acme", PrincipalKind::Integration, who, object, action)
}

fn automation(who: &str, object: &str, action: &str) -> Question {
    ask("acme", PrincipalKind::Automation, who, object, action)
}

/// A user of the tenant without email or SMS asks.
fn quiet(who: &str, action: &str) -> Question {
    ask("quiet", PrincipalKind::User, who, "contacts", action)
}

/// The request context, fluently.
trait Ctx: Sized {
    fn ctx_mut(&mut self) -> &mut ActionContext;
    fn fields(mut self, fields: &[&str]) -> Self {
        self.ctx_mut().fields = fields.iter().map(|f| (*f).to_owned()).collect();
        self
    }
    fn channel(mut self, channel: Channel) -> Self {
        self.ctx_mut().channel = Some(channel);
        self
    }
    fn transactional(mut self) -> Self {
        self.ctx_mut().transactional = true;
        self
    }
    fn list(mut self, list: &str) -> Self {
        self.ctx_mut().subscription_list = Some(list.to_owned());
        self
    }
    fn target(mut self, status: EmailStatus) -> Self {
        self.ctx_mut().target_email_status = Some(status);
        self
    }
}

impl Ctx for Question {
    fn ctx_mut(&mut self) -> &mut ActionContext {
        &mut self.ctx
    }
}

// -------------------------------------------------------------- answers ---

/// The first reason denying `id` (None = allowed) at `now`, through Check.
fn reason_at(e: &Engine, q: &Question, id: Uuid, now: OffsetDateTime) -> Option<Reason> {
    e.check(q, Some(id), now)
        .unwrap_or_else(|err| panic!("{q:?} on {id}: {err}"))
        .reason
}

fn reason(e: &Engine, q: &Question, id: Uuid) -> Option<Reason> {
    reason_at(e, q, id, NOW)
}

/// One decision per row, through Check at `now`: the question on the
/// record is answered with exactly the reason (ALLOWED: allowed).
#[track_caller]
fn expect_at(e: &Engine, now: OffsetDateTime, rows: &[(Question, Uuid, Option<Reason>)]) {
    for (q, id, want) in rows {
        let who = &q.principal.id;
        assert_eq!(
            reason_at(e, q, *id, now),
            *want,
            "{who} {} on {} {id} with {:?} at {now}",
            q.action,
            q.object,
            q.ctx
        );
    }
}

/// [`expect_at`] NOW.
#[track_caller]
fn expect(e: &Engine, rows: &[(Question, Uuid, Option<Reason>)]) {
    expect_at(e, NOW, rows);
}

/// User `who` asks each of `actions` on `object` record `id`: every answer
/// is `want`.
#[track_caller]
fn expect_each(
    e: &Engine,
    who: &str,
    object: &str,
    actions: &[&str],
    id: Uuid,
    want: Option<Reason>,
) {
    let rows: Vec<_> = actions
        .iter()
        .map(|action| (user(who, object, action), id, want))
        .collect();
    expect(e, &rows);
}

/// Record-less Check (`create`, `upload`).
fn object_reason(e: &Engine, q: &Question) -> Option<Reason> {
    e.check(q, None, NOW)
        .unwrap_or_else(|err| panic!("{q:?}: {err}"))
        .reason
}

/// Per request position: None if allowed, else the reason. Checks on the way
/// that BatchCheck, Check and LookupRecords agree on every position.
fn batch_at(e: &Engine, q: &Question, ids: &[Uuid], now: OffsetDateTime) -> Vec<Option<Reason>> {
    let answer = e
        .batch_check(q, ids, now)
        .unwrap_or_else(|err| panic!("{q:?}: {err}"));
    let out = reasons_by_position(&answer, ids.len());
    let (found, _) = e.lookup(q, now).unwrap();
    for (id, r) in ids.iter().zip(&out) {
        let single = e.check(q, Some(*id), now).unwrap();
        assert_eq!(single.reason, *r, "Check and BatchCheck disagree on {id}");
        assert_eq!(single.field_mask, answer.field_mask);
        assert_eq!(found.contains(id), r.is_none(), "Lookup disagrees on {id}");
    }
    out
}

fn batch(e: &Engine, q: &Question, ids: &[Uuid]) -> Vec<Option<Reason>> {
    batch_at(e, q, ids, NOW)
}

/// One BatchCheck (through [`batch`]): each row is a position, its id and
/// the reason it must get.
#[track_caller]
fn expect_batch(e: &Engine, q: &Question, rows: &[(Uuid, Option<Reason>)]) {
    let ids: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let want: Vec<Option<Reason>> = rows.iter().map(|(_, r)| *r).collect();
    assert_eq!(batch(e, q, &ids), want, "{q:?}");
}

fn lookup(e: &Engine, q: &Question) -> BTreeSet<Uuid> {
    e.lookup(q, NOW).unwrap().0.into_iter().collect()
}

fn set(ids: &[Uuid]) -> BTreeSet<Uuid> {
    ids.iter().copied().collect()
}

fn mask(e: &Engine, q: &Question, id: Uuid) -> Vec<(String, FieldLevel)> {
    e.check(q, Some(id), NOW).unwrap().field_mask
}

/// The level of one field in a mask; the field must be there.
fn level_of(mask: &[(String, FieldLevel)], field: &str) -> FieldLevel {
    mask.iter()
        .find(|(f, _)| f == field)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("no field {field} in mask {mask:?}"))
}

/// ObjectAccess for acme's principal (`object`: None for every object):
/// the flags of each object listed, and whether it may create objects.
fn object_access(
    e: &Engine,
    kind: PrincipalKind,
    who: &str,
    object: Option<&str>,
) -> (Vec<ObjectFlags>, bool) {
    let (flags, create_objects, _revision) = e
        .object_access("acme", &pref(kind, who), object, 0)
        .unwrap();
    (flags, create_objects)
}

/// [`object_access`] of a user, every object.
fn objects_of(e: &Engine, who: &str) -> (Vec<ObjectFlags>, bool) {
    object_access(e, PrincipalKind::User, who, None)
}

fn object_names(objects: &[ObjectFlags]) -> BTreeSet<&str> {
    objects.iter().map(|o| o.object.as_str()).collect()
}

/// RecordAccess for user `who` of acme, NOW.
fn record_access(e: &Engine, who: &str, object: &str, ids: &[Uuid]) -> Vec<RecordFlags> {
    e.record_access("acme", &pref(PrincipalKind::User, who), object, ids, 0, NOW)
        .unwrap()
        .0
}

fn actions(list: &[Action]) -> BTreeSet<&'static str> {
    list.iter().map(|a| a.as_str()).collect()
}

fn names<'a>(list: &[&'a str]) -> BTreeSet<&'a str> {
    list.iter().copied().collect()
}

/// The reasons of the failing steps of an explanation, in step order.
fn failing(x: &Explanation) -> Vec<Reason> {
    x.steps.iter().filter_map(|s| s.reason).collect()
}

/// The actions on one Contact that an admin may take on any live record
/// and that R10 denies on an archived one.
const RECORD_ACTIONS: [&str; 10] = [
    "view",
    "edit",
    "archive",
    "export",
    "bulk_export",
    "bulk_archive",
    "modify_automation",
    "bulk_modify_automation",
    "team_associations",
    "view_timeline",
];

// ============================================================ R1 union ===

#[test]
fn r1_union_takes_highest_level_across_groups() {
    let e = engine();
    // rita: contact_readers (All Records view, export, first/last name view).
    // wes: contact_writers (All Records edit, first_name edit, no export).
    // uma: both, one through her role and one as an additional group.
    let edit_first_name = |who| user(who, "contacts", "edit").fields(&["first_name"]);
    expect(
        &e,
        &[
            (edit_first_name("rita"), K_BEN, Some(NoRecordAccess)),
            (edit_first_name("wes"), K_BEN, ALLOWED),
            (edit_first_name("uma"), K_BEN, ALLOWED),
            // Any toggle on in any group is on.
            (
                user("wes", "contacts", "export"),
                K_BEN,
                Some(ActionNotPermitted),
            ),
            (user("uma", "contacts", "export"), K_BEN, ALLOWED),
        ],
    );

    // Highest field level: first_name view ∪ edit = edit; last_name view ∪ hidden = view.
    let m = mask(&e, &user("uma", "contacts", "view"), K_BEN);
    assert_eq!(level_of(&m, "first_name"), FieldLevel::Edit);
    assert_eq!(level_of(&m, "last_name"), FieldLevel::View);
    assert_eq!(level_of(&m, "email"), FieldLevel::Hidden);
    let edit_last_name = user("uma", "contacts", "edit").fields(&["last_name"]);
    expect(&e, &[(edit_last_name, K_BEN, Some(FieldRestricted))]);
}

#[test]
fn r1_admin_has_every_permission_but_passes_contact_gates() {
    let e = engine();
    expect_each(&e, "root", "contacts", &RECORD_ACTIONS, K_BEN, ALLOWED);
    let edit_all = user("root", "contacts", "edit").fields(&ACME_CONTACT_FIELDS);
    expect(
        &e,
        &[
            (edit_all, K_BEN, ALLOWED),
            (user("root", "companies", "archive"), C_ACME, ALLOWED),
            (user("root", "deals", "edit"), D_BIG, ALLOWED),
            (user("root", "projects", "view"), P_ROLLOUT, ALLOWED),
        ],
    );
    for action in ["create", "upload"] {
        assert_eq!(
            object_reason(&e, &user("root", "contacts", action)),
            ALLOWED
        );
    }
    let m = mask(&e, &user("root", "contacts", "view"), K_BEN);
    assert_eq!(m.len(), ACME_CONTACT_FIELDS.len());
    assert!(m.iter().all(|(_, l)| *l == FieldLevel::Edit), "{m:?}");

    let (objects, create_objects) = objects_of(&e, "root");
    assert!(create_objects);
    assert_eq!(object_names(&objects), names(&ACME_OBJECTS));
    assert!(
        objects
            .iter()
            .all(|o| o.view && o.edit && o.remove && o.create_records)
    );

    // ... and still meets the Contact state gates (R12–R15) and R10.
    expect_batch(
        &e,
        &user("root", "contacts", "bulk_send_email"),
        &[
            (K_ANA, ALLOWED),
            (K_NO_EMAIL, Some(NoEmail)),
            (K_SUPPRESSED, Some(Suppressed)),
            (K_UNSUBSCRIBED, Some(Unsubscribed)),
        ],
    );
    let change_to = |action, to| user("root", "contacts", action).target(to);
    expect(
        &e,
        &[
            (
                user("root", "contacts", "bulk_send_text"),
                K_SMS_OUT,
                Some(SmsOptedOut),
            ),
            (
                change_to("subscription_lists", EmailStatus::OptedIn),
                K_SUPPRESSED,
                Some(SystemManaged),
            ),
            (
                change_to("bulk_manage_subscription", EmailStatus::OptedIn),
                K_UNSUBSCRIBED,
                Some(SingleRecordOnly),
            ),
            (user("root", "contacts", "view"), K_OLD, Some(Archived)),
        ],
    );
}

// ===================================================== R2–R4 Level 1 ===

#[test]
fn r2_object_settings_never_grant_records() {
    let e = engine();
    // sam: schema_admins = view_object, edit_settings, delete_object on
    // companies and create_objects; no record access.
    let (objects, create_objects) = objects_of(&e, "sam");
    assert!(create_objects);
    assert_eq!(objects.len(), 1, "{objects:?}");
    let companies = &objects[0];
    assert_eq!(companies.object, "companies");
    assert!(companies.view && companies.edit && companies.remove);
    assert!(!companies.create_records);
    assert!(companies.single_actions.is_empty() && companies.bulk_actions.is_empty());

    expect_each(
        &e,
        "sam",
        "companies",
        &["view", "edit", "archive"],
        C_ACME,
        Some(NoRecordAccess),
    );
    assert_eq!(
        object_reason(&e, &user("sam", "companies", "create")),
        Some(NoRecordAccess)
    );

    let (_, alice_creates_objects) = objects_of(&e, "alice");
    assert!(!alice_creates_objects);
}

#[test]
fn r3_object_visible_with_record_access_but_no_view_object() {
    let e = engine();
    // dora: deal_readers = All Records view on deals, no view_object.
    let (objects, _) = objects_of(&e, "dora");
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert_eq!(objects[0].object, "deals");
    assert!(
        !objects[0].view,
        "view flag is the Level 1 view_object setting"
    );
    assert_eq!(reason(&e, &user("dora", "deals", "view"), D_BIG), ALLOWED);
    assert_eq!(lookup(&e, &user("dora", "deals", "view")), set(&[D_BIG]));
}

#[test]
fn r3_invisible_object_is_left_out_and_denies_object_not_visible() {
    let e = engine();
    assert_eq!(
        reason(&e, &user("dora", "companies", "view"), C_ACME),
        Some(ObjectNotVisible)
    );
    // Even an archived record of an invisible object: visibility comes first.
    expect_batch(
        &e,
        &user("dora", "contacts", "view"),
        &[
            (K_ANA, Some(ObjectNotVisible)),
            (K_OLD, Some(ObjectNotVisible)),
        ],
    );
    let m = mask(&e, &user("dora", "contacts", "view"), K_ANA);
    assert!(m.iter().all(|(_, l)| *l == FieldLevel::Hidden), "{m:?}");
    assert_eq!(
        object_reason(&e, &user("dora", "contacts", "create")),
        Some(ObjectNotVisible)
    );
    let (only, _) = object_access(&e, PrincipalKind::User, "dora", Some("companies"));
    assert!(only.is_empty(), "{only:?}");
    let (none, create_objects) = objects_of(&e, "nobody");
    assert!(none.is_empty() && !create_objects);
}

#[test]
fn r4_view_object_alone_grants_no_records() {
    let e = engine();
    // sam sees companies (view_object) but has no record scope.
    assert_eq!(
        reason(&e, &user("sam", "companies", "view"), C_INITECH),
        Some(NoRecordAccess)
    );
    assert!(lookup(&e, &user("sam", "companies", "view")).is_empty());
    let flags = record_access(&e, "sam", "companies", &[C_ACME]);
    assert!(!flags[0].view && !flags[0].edit && !flags[0].remove);
    assert!(flags[0].field_mask.is_empty());
}

// ================================================ R5–R7 record access ===

#[test]
fn r5_associated_scope_reaches_only_associated_records() {
    let e = engine();
    // alice (reps): My Associated Records delete on contacts, All Records none.
    // Owner of K_ANA, on K_CARA's sales team, interacted with K_DAN, owns
    // Initech which K_EVE links to; K_OLD is hers but archived.
    assert_eq!(
        lookup(&e, &user("alice", "contacts", "view")),
        set(&[K_ANA, K_CARA, K_DAN, K_EVE])
    );
    expect_batch(
        &e,
        &user("alice", "contacts", "view"),
        &[
            (K_ANA, ALLOWED),
            (K_BEN, Some(NoRecordAccess)),
            (K_UNSUBSCRIBED, Some(NoRecordAccess)),
        ],
    );
}

#[test]
fn r5_level_is_needed_in_a_scope_that_reaches_the_record() {
    let e = engine();
    // lena: All Records view, My Associated Records edit; interacted with K_BEN.
    expect(
        &e,
        &[
            (user("lena", "contacts", "view"), K_ANA, ALLOWED),
            (
                user("lena", "contacts", "edit"),
                K_ANA,
                Some(NoRecordAccess),
            ),
            (user("lena", "contacts", "edit"), K_BEN, ALLOWED),
            // edit < delete: archiving needs more than she has anywhere.
            (
                user("lena", "contacts", "archive"),
                K_BEN,
                Some(NoRecordAccess),
            ),
        ],
    );
    // dave: All Records delete includes every lower level.
    expect_each(
        &e,
        "dave",
        "contacts",
        &["view", "edit", "archive"],
        K_ANA,
        ALLOWED,
    );
}

#[test]
fn r6_bulk_toggle_never_widens_scope() {
    let e = engine();
    // alice has every bulk toggle of reps; her scope is her associated records.
    let ids = [K_ANA, K_BEN, K_OLD];
    let expected = vec![ALLOWED, Some(NoRecordAccess), Some(Archived)];
    for q in [
        user("alice", "contacts", "bulk_change_field_values").fields(&["first_name"]),
        user("alice", "contacts", "bulk_export"),
        user("alice", "contacts", "bulk_archive"),
    ] {
        assert_eq!(batch(&e, &q, &ids), expected, "{}", q.action);
    }
    // Bulk reaches exactly what the single action at the same level reaches.
    for (bulk, single) in [
        ("bulk_archive", "archive"),
        ("bulk_export", "export"),
        ("bulk_modify_automation", "modify_automation"),
    ] {
        assert_eq!(
            lookup(&e, &user("alice", "contacts", bulk)),
            lookup(&e, &user("alice", "contacts", single)),
            "{bulk}"
        );
    }
    // wes has the bulk_archive toggle but only edit: the toggle lifts nothing.
    assert_eq!(
        reason(&e, &user("wes", "contacts", "bulk_archive"), K_BEN),
        Some(NoRecordAccess)
    );
}

#[test]
fn r6_toggle_off_denies_action_not_permitted() {
    let e = engine();
    // lena reaches K_BEN at edit but has no toggles.
    expect_each(
        &e,
        "lena",
        "contacts",
        &[
            "export",
            "bulk_export",
            "modify_automation",
            "team_associations",
            "view_timeline",
        ],
        K_BEN,
        Some(ActionNotPermitted),
    );
    assert_eq!(
        object_reason(&e, &user("lena", "contacts", "upload")),
        Some(ActionNotPermitted)
    );
}

#[test]
fn r7_field_mask_is_union_and_hidden_by_default() {
    let e = engine();
    // rita's only group names first_name and last_name: everything else is hidden.
    let m = mask(&e, &user("rita", "contacts", "view"), K_BEN);
    assert_eq!(
        m.iter().map(|(f, _)| f.as_str()).collect::<BTreeSet<_>>(),
        names(&ACME_CONTACT_FIELDS),
        "the mask covers system, plain, team and relationship fields"
    );
    for (field, level) in &m {
        let expected = match field.as_str() {
            "first_name" | "last_name" => FieldLevel::View,
            _ => FieldLevel::Hidden,
        };
        assert_eq!(*level, expected, "{field}");
    }
    // The mask is per object: the same on every record rita may view.
    assert_eq!(mask(&e, &user("rita", "contacts", "view"), K_ANA), m);
    // uma = rita's group ∪ first_name edit.
    let m = mask(&e, &user("uma", "contacts", "view"), K_BEN);
    assert_eq!(level_of(&m, "first_name"), FieldLevel::Edit);
    assert_eq!(level_of(&m, "last_name"), FieldLevel::View);
    assert_eq!(level_of(&m, "birthday"), FieldLevel::Hidden);
    let edit_email = user("uma", "contacts", "edit").fields(&["email"]);
    expect(&e, &[(edit_email, K_BEN, Some(FieldRestricted))]);
}

#[test]
fn r7_set_all_covers_unnamed_fields_and_named_fields_override_it() {
    let e = engine();
    // marketing: {"*": edit, birthday: hidden}
    let m = mask(&e, &user("mark", "contacts", "view"), K_ANA);
    for (field, level) in &m {
        let expected = if field == "birthday" {
            FieldLevel::Hidden
        } else {
            FieldLevel::Edit
        };
        assert_eq!(*level, expected, "{field}");
    }
    let edit = |fields| user("mark", "contacts", "edit").fields(fields);
    expect(
        &e,
        &[
            (edit(&["tags", "sales_team", "company"]), K_ANA, ALLOWED),
            (edit(&["tags", "birthday"]), K_ANA, Some(FieldRestricted)),
        ],
    );
}

#[test]
fn r7_no_field_visible_on_unviewable_record() {
    let e = engine();
    let flags = record_access(&e, "alice", "contacts", &[K_ANA, K_BEN, K_OLD]);
    assert!(flags[0].view);
    assert_eq!(flags[0].field_mask.len(), ACME_CONTACT_FIELDS.len());
    assert!(!flags[1].view && flags[1].field_mask.is_empty(), "not hers");
    assert!(!flags[2].view && flags[2].field_mask.is_empty(), "archived");
    // On an object she cannot see, every record comes back empty too.
    let flags = record_access(&e, "rita", "companies", &[C_ACME]);
    assert!(!flags[0].view && flags[0].field_mask.is_empty());
}

// ========================================================== R8–R9 ======

#[test]
fn r8_owner_team_field_and_interaction_associate() {
    let e = engine();
    expect_batch(
        &e,
        &user("alice", "contacts", "edit"),
        &[
            (K_ANA, ALLOWED),              // owner
            (K_CARA, ALLOWED),             // in the sales_team team field
            (K_DAN, ALLOWED),              // interacted with it
            (K_BEN, Some(NoRecordAccess)), // none of these
        ],
    );
    // bob owns K_BEN, K_CARA and K_DAN; alice being on the team takes nothing from him.
    expect_batch(
        &e,
        &user("bob", "contacts", "edit"),
        &[
            (K_BEN, ALLOWED),
            (K_CARA, ALLOWED),
            (K_DAN, ALLOWED),
            (K_EVE, Some(NoRecordAccess)),
        ],
    );
}

#[test]
fn r8_integration_associated_only_through_its_user() {
    let e = engine();
    // crm_sync: reps, runs as alice → alice's associated records.
    expect_batch(
        &e,
        &integration("crm_sync", "contacts", "edit"),
        &[(K_ANA, ALLOWED), (K_BEN, Some(NoRecordAccess))],
    );
    assert_eq!(
        lookup(&e, &integration("crm_sync", "contacts", "edit")),
        lookup(&e, &user("alice", "contacts", "edit"))
    );
    assert!(lookup(&e, &integration("etl_key", "contacts", "view")).is_empty());
    expect(
        &e,
        &[
            // etl_key: reps, no user → associated with nothing.
            (
                integration("etl_key", "contacts", "edit"),
                K_ANA,
                Some(NoRecordAccess),
            ),
            // report_key: its own groups (contact_readers), not alice's.
            (
                integration("report_key", "contacts", "edit"),
                K_ANA,
                Some(NoRecordAccess),
            ),
            (
                integration("report_key", "contacts", "view"),
                K_BEN,
                ALLOWED,
            ),
        ],
    );
    // Principal kinds do not mix: there is no user called crm_sync.
    assert!(matches!(
        e.check(&user("crm_sync", "contacts", "view"), Some(K_ANA), NOW),
        Err(QueryError::UnknownPrincipal { .. })
    ));
}

#[test]
fn r8_automation_acts_as_its_user() {
    let e = engine();
    // nurture runs as alice: same groups, same associations.
    for action in ["view", "edit", "archive", "bulk_archive"] {
        assert_eq!(
            lookup(&e, &automation("nurture", "contacts", action)),
            lookup(&e, &user("alice", "contacts", action)),
            "{action}"
        );
    }
    expect_batch(
        &e,
        &automation("nurture", "contacts", "edit"),
        &[(K_ANA, ALLOWED), (K_BEN, Some(NoRecordAccess))],
    );
    expect(
        &e,
        &[
            // nightly runs as etl_key: associated with nothing.
            (
                automation("nightly", "contacts", "edit"),
                K_ANA,
                Some(NoRecordAccess),
            ),
            // janitor runs as root: the admin flag comes along, gates still apply.
            (automation("janitor", "contacts", "archive"), K_BEN, ALLOWED),
            (
                automation("janitor", "contacts", "bulk_send_email"),
                K_SUPPRESSED,
                Some(Suppressed),
            ),
        ],
    );
    let (_, create_objects) = object_access(&e, PrincipalKind::Automation, "janitor", None);
    assert!(create_objects);
}

#[test]
fn r9_related_source_one_hop_both_directions() {
    let e = engine();
    expect(
        &e,
        &[
            // deals (related): D_BIG links Acme, which bob owns (link declared on the deal).
            (user("bob", "deals", "view"), D_BIG, ALLOWED),
            // projects (related): D_BIG, owned by alice, links P_ROLLOUT (link
            // declared on the other record: it counts for both sides).
            (user("alice", "projects", "view"), P_ROLLOUT, ALLOWED),
            // One hop only: Acme (bob) → D_BIG → P_ROLLOUT is two.
            (
                user("bob", "projects", "view"),
                P_ROLLOUT,
                Some(NoRecordAccess),
            ),
            // contacts (both): K_EVE through alice's Initech; K_ANA through bob's Acme.
            (user("alice", "contacts", "edit"), K_EVE, ALLOWED),
            (user("bob", "contacts", "edit"), K_ANA, ALLOWED),
        ],
    );
}

#[test]
fn r9_related_source_ignores_direct_association() {
    let e = engine();
    // alice owns D_BIG, but deals count only associations through linked records.
    assert_eq!(
        reason(&e, &user("alice", "deals", "view"), D_BIG),
        Some(NoRecordAccess)
    );
}

#[test]
fn r9_direct_source_ignores_related() {
    let e = engine();
    // companies (direct): alice's K_ANA and D_BIG both link Acme; that does not count.
    expect_batch(
        &e,
        &user("alice", "companies", "view"),
        &[(C_ACME, Some(NoRecordAccess)), (C_INITECH, ALLOWED)],
    );
    expect_batch(
        &e,
        &user("bob", "companies", "view"),
        &[(C_ACME, ALLOWED), (C_INITECH, Some(NoRecordAccess))],
    );
}

// ======================================================= R10–R11 =======

#[test]
fn r10_archived_denied_except_view_archived_and_unarchive_with_delete() {
    let e = engine();
    // alice reaches K_OLD at delete (she owns it); it is archived.
    expect_each(
        &e,
        "alice",
        "contacts",
        &RECORD_ACTIONS,
        K_OLD,
        Some(Archived),
    );
    let change_first_name =
        user("alice", "contacts", "bulk_change_field_values").fields(&["first_name"]);
    expect(&e, &[(change_first_name, K_OLD, Some(Archived))]);
    for action in ["view_archived", "unarchive"] {
        let contacts = |who| user(who, "contacts", action);
        expect(
            &e,
            &[
                (contacts("alice"), K_OLD, ALLOWED),
                // delete is needed, in a scope that reaches the record:
                // wes has edit on all records; bob has delete, but not on
                // alice's record; dave has delete on all records.
                (contacts("wes"), K_OLD, Some(NoRecordAccess)),
                (contacts("bob"), K_OLD, Some(NoRecordAccess)),
                (contacts("dave"), K_OLD, ALLOWED),
                // choice 6: on a live record they are allowed no-ops.
                (contacts("alice"), K_ANA, ALLOWED),
            ],
        );
    }
    assert!(!lookup(&e, &user("alice", "contacts", "view")).contains(&K_OLD));
    assert!(lookup(&e, &user("alice", "contacts", "view_archived")).contains(&K_OLD));
}

#[test]
fn r11_archive_needs_delete() {
    let e = engine();
    for (who, want) in [
        ("wes", Some(NoRecordAccess)),
        ("lena", Some(NoRecordAccess)),
        ("dave", ALLOWED),
    ] {
        expect_batch(&e, &user(who, "contacts", "archive"), &[(K_BEN, want)]);
    }
}

#[test]
fn r11_bulk_archive_needs_delete_and_toggle() {
    let e = engine();
    // dave: delete, no toggle. wes: toggle, only edit. alice: both (on hers).
    let bulk_archive = |who| user(who, "contacts", "bulk_archive");
    expect(
        &e,
        &[
            (bulk_archive("dave"), K_BEN, Some(ActionNotPermitted)),
            (bulk_archive("wes"), K_BEN, Some(NoRecordAccess)),
            (bulk_archive("alice"), K_ANA, ALLOWED),
        ],
    );
}

// ========================================== R12–R15 Contact state ======

#[test]
fn r12_email_status_values_and_default() {
    for status in EmailStatus::ALL {
        assert_eq!(EmailStatus::parse(status.as_str()), Some(status));
    }
    assert_eq!(
        EmailStatus::ALL.map(EmailStatus::as_str),
        [
            "not_opted_in",
            "opted_in",
            "opted_out",
            "unsubscribed_all",
            "suppressed"
        ]
    );
    assert_eq!(EmailStatus::default(), EmailStatus::NotOptedIn);
    // K_BEN has no status in the file: not_opted_in, so not unsubscribed and
    // a bulk move to opted_in is fine.
    let e = engine();
    let opt_in = user("mark", "contacts", "bulk_manage_subscription").target(EmailStatus::OptedIn);
    expect(
        &e,
        &[
            (opt_in, K_BEN, ALLOWED),
            (user("mark", "contacts", "bulk_send_email"), K_BEN, ALLOWED),
        ],
    );
}

#[test]
fn r13_no_email_when_missing_blank_or_invalid() {
    let e = engine();
    let ids = [
        K_ANA,
        K_NO_EMAIL,
        K_INVALID_EMAIL,
        K_BLANK_EMAIL,
        K_NO_STATE,
    ];
    let expected = vec![
        ALLOWED,
        Some(NoEmail), // no address
        Some(NoEmail), // email_valid: false
        Some(NoEmail), // blank
        Some(NoEmail), // no contact block at all
    ];
    for q in [
        user("mark", "contacts", "bulk_send_email"),
        user("mark", "contacts", "bulk_send_survey"),
        user("mark", "contacts", "send_single_message").channel(Channel::Email),
    ] {
        assert_eq!(batch(&e, &q, &ids), expected, "{}", q.action);
    }
}

#[test]
fn r13_suppressed_is_denied_even_for_transactional_mail() {
    let e = engine();
    for q in [
        user("mark", "contacts", "bulk_send_email"),
        user("mark", "contacts", "bulk_send_email").transactional(),
        user("mark", "contacts", "send_single_message")
            .channel(Channel::Email)
            .transactional(),
    ] {
        assert_eq!(reason(&e, &q, K_SUPPRESSED), Some(Suppressed), "{q:?}");
    }
}

#[test]
fn r13_soft_bounce_ends_at_expiry_without_data_change() {
    // One engine, one snapshot, the clock moves.
    let e = engine();
    let send = user("mark", "contacts", "bulk_send_email");
    let change = user("mark", "contacts", "subscription_lists").target(EmailStatus::OptedOut);
    let before = SOFT_BOUNCE_ENDS - time::Duration::SECOND;
    let after = SOFT_BOUNCE_ENDS + time::Duration::days(30);
    let three = [K_SOFT_BOUNCE, K_SOFT_BOUNCE_STATUS, K_SUPPRESSED];

    expect_at(&e, NOW, &[(send.clone(), K_SOFT_BOUNCE, Some(Suppressed))]);
    expect_at(
        &e,
        before,
        &[
            (send.clone(), K_SOFT_BOUNCE, Some(Suppressed)),
            (change.clone(), K_SOFT_BOUNCE, Some(SystemManaged)),
        ],
    );
    assert!(!e.lookup(&send, before).unwrap().0.contains(&K_SOFT_BOUNCE));
    assert_eq!(
        batch_at(&e, &send, &three, before),
        vec![Some(Suppressed), Some(Suppressed), Some(Suppressed)]
    );

    expect_at(
        &e,
        SOFT_BOUNCE_ENDS,
        &[(send.clone(), K_SOFT_BOUNCE, ALLOWED)],
    );
    expect_at(&e, after, &[(send.clone(), K_SOFT_BOUNCE, ALLOWED)]);
    assert_eq!(
        batch_at(&e, &send, &three, after),
        vec![ALLOWED, ALLOWED, Some(Suppressed)],
        "a permanent suppression does not end"
    );
    let opt_in = user("mark", "contacts", "bulk_manage_subscription").target(EmailStatus::OptedIn);
    expect_at(
        &e,
        after,
        &[
            // `email_status: suppressed` with an expiry falls back to not_opted_in
            // (choice 8): not unsubscribed, so a bulk move to opted_in is fine.
            (opt_in, K_SOFT_BOUNCE_STATUS, ALLOWED),
            // The status underneath (opted_in) shows again: the change is no
            // longer system-managed.
            (change, K_SOFT_BOUNCE, ALLOWED),
        ],
    );
    assert!(e.lookup(&send, after).unwrap().0.contains(&K_SOFT_BOUNCE));
}

#[test]
fn r13_soft_bounce_answer_depends_only_on_now_not_on_earlier_questions() {
    // Same question, same snapshot: asked first after the expiry, then
    // before it (a clock stepped back, or two requests racing across the
    // expiry). The answer at NOW must still be SUPPRESSED.
    let e = engine();
    let send = user("mark", "contacts", "bulk_send_email");
    let after = SOFT_BOUNCE_ENDS + time::Duration::days(30);
    assert_eq!(reason_at(&e, &send, K_SOFT_BOUNCE, after), ALLOWED);
    assert_eq!(reason_at(&e, &send, K_SOFT_BOUNCE, NOW), Some(Suppressed));
}

#[test]
fn r13_unsubscribed_blocks_marketing_but_not_transactional() {
    let e = engine();
    let mark = |action| user("mark", "contacts", action);
    let email = || mark("send_single_message").channel(Channel::Email);
    expect(
        &e,
        &[
            // Marketing is the default.
            (mark("bulk_send_email"), K_UNSUBSCRIBED, Some(Unsubscribed)),
            (mark("bulk_send_survey"), K_UNSUBSCRIBED, Some(Unsubscribed)),
            (email(), K_UNSUBSCRIBED, Some(Unsubscribed)),
            (
                mark("bulk_send_email").transactional(),
                K_UNSUBSCRIBED,
                ALLOWED,
            ),
            (email().transactional(), K_UNSUBSCRIBED, ALLOWED),
        ],
    );
}

#[test]
fn r13_opted_out_of_list_only_when_the_request_names_it() {
    let e = engine();
    let send = || user("mark", "contacts", "bulk_send_email");
    expect_batch(
        &e,
        &send().list("newsletter"),
        &[(K_NEWSLETTER_OUT, Some(OptedOutOfList)), (K_ANA, ALLOWED)],
    );
    let single = user("mark", "contacts", "send_single_message")
        .channel(Channel::Email)
        .list("newsletter");
    expect(
        &e,
        &[
            (send().list("product_news"), K_NEWSLETTER_OUT, ALLOWED),
            (send(), K_NEWSLETTER_OUT, ALLOWED),
            (single, K_NEWSLETTER_OUT, Some(OptedOutOfList)),
        ],
    );
}

#[test]
fn r13_email_not_configured_for_the_tenant() {
    let e = engine();
    // quiet has no email integration; Q_FINE is otherwise reachable.
    for q in [
        quiet("quinn", "bulk_send_email"),
        quiet("quinn", "bulk_send_survey"),
        quiet("quinn", "send_single_message")
            .channel(Channel::Email)
            .transactional(),
    ] {
        assert_eq!(reason(&e, &q, Q_FINE), Some(EmailNotConfigured), "{q:?}");
    }
    expect(
        &e,
        &[
            // The same request in acme, which has one, is allowed.
            (user("mark", "contacts", "bulk_send_email"), K_ANA, ALLOWED),
            // Not a gate for anything but email.
            (quiet("quinn", "view"), Q_FINE, ALLOWED),
        ],
    );
}

#[test]
fn r14_no_mobile_without_a_valid_number() {
    let e = engine();
    let ids = [K_ANA, K_NO_MOBILE, K_BAD_MOBILE, K_NO_STATE];
    let expected = vec![ALLOWED, Some(NoMobile), Some(NoMobile), Some(NoMobile)];
    for q in [
        user("mark", "contacts", "bulk_send_text"),
        user("mark", "contacts", "send_single_message").channel(Channel::Text),
    ] {
        assert_eq!(batch(&e, &q, &ids), expected, "{q:?}");
    }
    // The channel decides the gate: K_NO_MOBILE can still get an email.
    let email = user("mark", "contacts", "send_single_message").channel(Channel::Email);
    expect(&e, &[(email, K_NO_MOBILE, ALLOWED)]);
}

#[test]
fn r14_sms_opted_out() {
    let e = engine();
    for q in [
        user("mark", "contacts", "bulk_send_text"),
        user("mark", "contacts", "send_single_message").channel(Channel::Text),
    ] {
        assert_eq!(reason(&e, &q, K_SMS_OUT), Some(SmsOptedOut), "{q:?}");
    }
}

#[test]
fn r14_sms_not_configured() {
    let e = engine();
    for q in [
        quiet("quinn", "bulk_send_text"),
        quiet("quinn", "send_single_message").channel(Channel::Text),
    ] {
        assert_eq!(reason(&e, &q, Q_FINE), Some(SmsNotConfigured), "{q:?}");
    }
}

#[test]
fn r15_suppression_is_system_managed() {
    let e = engine();
    let single = |to| user("mark", "contacts", "subscription_lists").target(to);
    let bulk = |to| user("mark", "contacts", "bulk_manage_subscription").target(to);
    // A suppressed Contact's status cannot be changed, to anything.
    for to in [
        EmailStatus::OptedIn,
        EmailStatus::OptedOut,
        EmailStatus::NotOptedIn,
    ] {
        expect(
            &e,
            &[
                (single(to), K_SUPPRESSED, Some(SystemManaged)),
                (bulk(to), K_SUPPRESSED, Some(SystemManaged)),
            ],
        );
    }
    let root = user("root", "contacts", "subscription_lists").target(EmailStatus::Suppressed);
    expect(
        &e,
        &[
            // Nobody suppresses through permd, admin included.
            (single(EmailStatus::Suppressed), K_ANA, Some(SystemManaged)),
            (bulk(EmailStatus::Suppressed), K_ANA, Some(SystemManaged)),
            (root, K_ANA, Some(SystemManaged)),
            // Seeing the subscription (no target) is not a change: no gate.
            (
                user("mark", "contacts", "subscription_lists"),
                K_SUPPRESSED,
                ALLOWED,
            ),
        ],
    );
}

#[test]
fn r15_unsubscribed_to_opted_in_is_single_record_only() {
    let e = engine();
    let bulk = |to| user("mark", "contacts", "bulk_manage_subscription").target(to);
    expect_batch(
        &e,
        &bulk(EmailStatus::OptedIn),
        &[
            (K_UNSUBSCRIBED, Some(SingleRecordOnly)),
            (K_BEN, ALLOWED),
            (K_NEWSLETTER_OUT, ALLOWED),
        ],
    );
    // One record at a time it is allowed.
    let single = user("mark", "contacts", "subscription_lists").target(EmailStatus::OptedIn);
    expect(
        &e,
        &[
            (single, K_UNSUBSCRIBED, ALLOWED),
            // Only the move to opted_in is single-record-only.
            (bulk(EmailStatus::OptedOut), K_UNSUBSCRIBED, ALLOWED),
            (bulk(EmailStatus::NotOptedIn), K_UNSUBSCRIBED, ALLOWED),
        ],
    );
}

// ======================================================= R16–R17 =======

#[test]
fn r16_object_access_flags() {
    let e = engine();
    let (objects, create_objects, revision) = e
        .object_access("acme", &pref(PrincipalKind::User, "alice"), None, 0)
        .unwrap();
    assert_eq!(revision, 1);
    assert!(!create_objects);
    assert_eq!(object_names(&objects), names(&ACME_OBJECTS));
    let contacts = objects.iter().find(|o| o.object == "contacts").unwrap();
    assert!(contacts.view && !contacts.edit && !contacts.remove);
    assert!(
        contacts.create_records,
        "associated delete is edit in some scope"
    );
    assert_eq!(
        actions(&contacts.single_actions),
        names(&[
            "export",
            "upload",
            "modify_automation",
            "team_associations",
            "view_timeline"
        ])
    );
    assert_eq!(
        actions(&contacts.bulk_actions),
        names(&[
            "bulk_export",
            "bulk_archive",
            "bulk_change_field_values",
            "bulk_modify_automation"
        ])
    );
    let companies = objects.iter().find(|o| o.object == "companies").unwrap();
    assert!(companies.view && !companies.create_records);
    assert!(companies.single_actions.is_empty() && companies.bulk_actions.is_empty());
    assert_eq!(level_of(&contacts.field_mask, "email"), FieldLevel::Edit);

    // mark: the messaging toggles, each with the level and fields it needs.
    let (objects, _) = object_access(&e, PrincipalKind::User, "mark", Some("contacts"));
    assert_eq!(objects.len(), 1);
    assert_eq!(
        actions(&objects[0].single_actions),
        names(&["send_single_message", "subscription_lists"])
    );
    assert_eq!(
        actions(&objects[0].bulk_actions),
        names(&[
            "bulk_send_email",
            "bulk_send_survey",
            "bulk_send_text",
            "bulk_manage_subscription",
            "bulk_change_tags"
        ])
    );
    assert_eq!(
        level_of(&objects[0].field_mask, "birthday"),
        FieldLevel::Hidden
    );
}

#[test]
fn r16_object_access_lists_only_actions_that_can_succeed() {
    // A toggle is listed only if some scope reaches its level and its fields
    // are at their level (choice 11).
    let all_on = "[export, upload, modify_automation, subscription_lists, view_timeline, \
                  bulk_send_email, bulk_send_text, bulk_change_tags, bulk_archive]";
    let flags = |contacts: String| {
        let e = table_engine(&contacts, "{}");
        let (objects, _, _) = e
            .object_access("t", &pref(PrincipalKind::User, "u"), Some("contacts"), 0)
            .unwrap();
        assert_eq!(objects.len(), 1);
        let o = objects.into_iter().next().unwrap();
        (
            actions(&o.single_actions),
            actions(&o.bulk_actions),
            o.create_records,
        )
    };
    let low = format!(
        "{{view_object: true, all_records: view, actions: {all_on}, \
         fields: {{tags: view, email_status: view, mobile_phone: view}}}}"
    );
    assert_eq!(
        flags(low),
        (
            names(&["export", "subscription_lists", "view_timeline"]),
            names(&["bulk_send_text"]),
            false
        )
    );
    let high = format!(
        "{{view_object: true, associated_records: delete, actions: {all_on}, \
         fields: {{email: view, tags: edit}}}}"
    );
    assert_eq!(
        flags(high),
        (
            names(&["export", "upload", "modify_automation", "view_timeline"]),
            names(&["bulk_send_email", "bulk_change_tags", "bulk_archive"]),
            true
        )
    );
}

#[test]
fn r17_record_access_missing_and_forbidden_look_alike() {
    let e = engine();
    let ids = [K_ANA, K_BEN, NOWHERE, K_OLD, C_ACME];
    let (flags, revision) = e
        .record_access(
            "acme",
            &pref(PrincipalKind::User, "alice"),
            "contacts",
            &ids,
            0,
            NOW,
        )
        .unwrap();
    assert_eq!(revision, 1);
    assert_eq!(flags.len(), ids.len());
    for (f, id) in flags.iter().zip(ids) {
        assert_eq!(f.record_id, id);
    }
    assert!(flags[0].view && flags[0].edit && flags[0].remove);
    assert!(!flags[0].field_mask.is_empty());
    // Forbidden (K_BEN), missing (NOWHERE), archived (K_OLD), another
    // object's record (C_ACME): indistinguishable.
    for f in &flags[1..] {
        assert!(
            !f.view && !f.edit && !f.remove && f.field_mask.is_empty(),
            "{f:?}"
        );
    }

    // lena: views all, edits hers, removes none.
    let flags = record_access(&e, "lena", "contacts", &[K_ANA, K_BEN]);
    assert!(flags[0].view && !flags[0].edit && !flags[0].remove);
    assert!(flags[1].view && flags[1].edit && !flags[1].remove);
    assert_eq!(flags[0].field_mask, flags[1].field_mask);
}

// ===================================================== reason order =====

#[test]
fn reasons_follow_the_documented_order() {
    let e = engine();
    // Every Contact of quiet fails several layers; the tenant has neither
    // email nor SMS. Each row peels one layer off.
    let email = |who| quiet(who, "bulk_send_email").list("newsletter");
    expect(
        &e,
        &[
            // UNKNOWN_RECORD before OBJECT_NOT_VISIBLE
            (email("nobody"), NOWHERE, Some(UnknownRecord)),
            // OBJECT_NOT_VISIBLE before ARCHIVED
            (email("nobody"), Q_ARCHIVED, Some(ObjectNotVisible)),
            // ARCHIVED before NO_RECORD_ACCESS (assoc is associated with nothing)
            (email("assoc"), Q_ARCHIVED, Some(Archived)),
            // NO_RECORD_ACCESS before ACTION_NOT_PERMITTED
            (email("assoc"), Q_ALL_BAD, Some(NoRecordAccess)),
            // ACTION_NOT_PERMITTED before FIELD_RESTRICTED (quill: no toggles, no fields)
            (email("quill"), Q_ALL_BAD, Some(ActionNotPermitted)),
            // FIELD_RESTRICTED before the gates (blind: toggle on, email hidden)
            (email("blind"), Q_ALL_BAD, Some(FieldRestricted)),
        ],
    );
    // then R13 in its written order
    expect_batch(
        &e,
        &email("quinn"),
        &[
            (Q_ALL_BAD, Some(NoEmail)),
            (Q_SUPPRESSED, Some(Suppressed)),
            (Q_UNSUBSCRIBED, Some(Unsubscribed)),
            (Q_LIST_OUT, Some(OptedOutOfList)),
            (Q_FINE, Some(EmailNotConfigured)),
        ],
    );
    // R14
    expect_batch(
        &e,
        &quiet("quinn", "bulk_send_text"),
        &[
            (Q_ALL_BAD, Some(NoMobile)),
            (Q_SUPPRESSED, Some(SmsOptedOut)),
            (Q_FINE, Some(SmsNotConfigured)),
        ],
    );
    assert_eq!(
        reason(&e, &quiet("blind", "bulk_send_text"), Q_ALL_BAD),
        Some(FieldRestricted)
    );
    // R15: suppressed and unsubscribed_all → SYSTEM_MANAGED first.
    expect_batch(
        &e,
        &quiet("quinn", "bulk_manage_subscription").target(EmailStatus::OptedIn),
        &[
            (Q_SUPPRESSED, Some(SystemManaged)),
            (Q_UNSUBSCRIBED, Some(SingleRecordOnly)),
        ],
    );
}

#[test]
fn explain_lists_every_layer_not_only_the_first_failure() {
    let e = engine();
    let email = |who| quiet(who, "bulk_send_email").list("newsletter");
    let every_email_layer = [
        ActionNotPermitted,
        FieldRestricted,
        NoEmail,
        Suppressed,
        Unsubscribed,
        OptedOutOfList,
        EmailNotConfigured,
    ];
    let x = e.explain(&email("quill"), Some(Q_ALL_BAD), NOW).unwrap();
    assert_eq!(x.reason, Some(ActionNotPermitted));
    assert_eq!(failing(&x), every_email_layer);
    assert_eq!(x.groups, vec!["q_readers".to_owned()]);

    let x = e.explain(&email("blind"), Some(Q_ALL_BAD), NOW).unwrap();
    assert_eq!(x.reason, Some(FieldRestricted));
    assert_eq!(failing(&x), every_email_layer[1..]);

    let x = e.explain(&email("assoc"), Some(Q_ARCHIVED), NOW).unwrap();
    assert_eq!(x.reason, Some(Archived));
    let mut all = vec![Archived, NoRecordAccess];
    all.extend(every_email_layer);
    assert_eq!(failing(&x), all);

    let x = e.explain(&email("quinn"), Some(Q_FINE), NOW).unwrap();
    assert_eq!(failing(&x), vec![EmailNotConfigured]);

    // Record-less: visibility and "edit in some scope" are the layers.
    let x = e
        .explain(&user("sam", "companies", "create"), None, NOW)
        .unwrap();
    assert_eq!(x.reason, Some(NoRecordAccess));
    assert_eq!(failing(&x), vec![NoRecordAccess]);
    let x = e
        .explain(&user("dora", "contacts", "upload"), None, NOW)
        .unwrap();
    assert_eq!(x.reason, Some(ObjectNotVisible));
    assert_eq!(
        failing(&x),
        vec![ObjectNotVisible, NoRecordAccess, ActionNotPermitted]
    );

    // An allowed decision explains with no failing step, and agrees with Check.
    let x = e
        .explain(&user("alice", "contacts", "edit"), Some(K_EVE), NOW)
        .unwrap();
    assert!(x.allowed() && failing(&x).is_empty(), "{x:?}");
}

// ============================================= "What each action needs" ===

const T_MINE: Uuid = Uuid::from_u128(0xc200_0000_0000_4000_8000_0000_0000_0001);
const T_OTHERS: Uuid = Uuid::from_u128(0xc200_0000_0000_4000_8000_0000_0000_0002);
const T_ARCHIVED: Uuid = Uuid::from_u128(0xc200_0000_0000_4000_8000_0000_0000_0003);
const T_COMPANY: Uuid = Uuid::from_u128(0xa200_0000_0000_4000_8000_0000_0000_0001);

/// A tenant where the only user `u` has one group `g` with the given grants
/// on contacts and companies. Every Contact can get email and SMS; `u` owns
/// T_MINE, T_ARCHIVED (archived) and T_COMPANY, not T_OTHERS.
fn table_engine(contacts: &str, companies: &str) -> Engine {
    let state = r#"{email: k@example.com, email_status: opted_in, mobile_phone: "+15550301"}"#;
    engine_from(&format!(
        r#"
tenants:
  - id: t
    email_configured: true
    sms_configured: true
    objects:
      - {{name: contacts, fields: [first_name], team_fields: [sales_team]}}
      - {{name: companies, fields: [name]}}
    groups:
      - id: g
        objects:
          contacts: {contacts}
          companies: {companies}
    users: [{{id: u, groups: [g]}}]
    records:
      - {{id: {T_MINE}, object: contacts, owner: u, contact: {state}}}
      - {{id: {T_OTHERS}, object: contacts, contact: {state}}}
      - {{id: {T_ARCHIVED}, object: contacts, owner: u, archived: true, contact: {state}}}
      - {{id: {T_COMPANY}, object: companies, owner: u}}
"#
    ))
}

/// One row of the table: what `action` needs, on `record` (None: the
/// action takes no record).
struct Row<'a> {
    object: &'a str,
    action: &'a str,
    ctx: ActionContext,
    level: &'a str,
    toggle: Option<&'a str>,
    fields: &'a [(&'a str, &'a str)],
    record: Option<Uuid>,
}

impl<'a> Row<'a> {
    fn new(action: &'a str, level: &'a str) -> Row<'a> {
        Row {
            object: "contacts",
            action,
            ctx: ActionContext::default(),
            level,
            toggle: None,
            fields: &[],
            record: Some(T_MINE),
        }
    }

    /// The action needs its own toggle.
    fn toggled(self) -> Row<'a> {
        Row {
            toggle: Some(self.action),
            ..self
        }
    }

    /// The action needs these fields at these levels.
    fn needs(self, fields: &'a [(&'a str, &'a str)]) -> Row<'a> {
        Row { fields, ..self }
    }
}

/// The row of an action that needs `level`, its own toggle, and `fields`
/// at their levels.
fn toggled<'a>(action: &'a str, level: &'a str, fields: &'a [(&'a str, &'a str)]) -> Row<'a> {
    Row::new(action, level).toggled().needs(fields)
}

impl Ctx for Row<'_> {
    fn ctx_mut(&mut self) -> &mut ActionContext {
        &mut self.ctx
    }
}

fn lower_level(level: &str) -> &'static str {
    match level {
        "delete" => "edit",
        "edit" => "view",
        "view" => "none",
        other => panic!("no level below {other}"),
    }
}

fn lower_field(level: &str) -> &'static str {
    match level {
        "edit" => "view",
        "view" => "hidden",
        other => panic!("no field level below {other}"),
    }
}

fn grant(scope: &str, level: &str, toggles: &[&str], fields: &[(&str, &str)]) -> String {
    let fields: Vec<String> = fields.iter().map(|(f, l)| format!("{f}: {l}")).collect();
    format!(
        "{{view_object: true, {scope}: {level}, actions: [{}], fields: {{{}}}}}",
        toggles.join(", "),
        fields.join(", ")
    )
}

/// Runs the row: the exact grant (only that level, that toggle, those
/// fields; every other field hidden) is enough, in All Records and in My
/// Associated Records; one level less is NO_RECORD_ACCESS; without the
/// toggle ACTION_NOT_PERMITTED; each field one step lower FIELD_RESTRICTED.
fn check_row(row: &Row) {
    let decide = |perms: String, record: Option<Uuid>| -> Option<Reason> {
        let (contacts, companies) = if row.object == "contacts" {
            (perms, "{}".to_owned())
        } else {
            ("{}".to_owned(), perms)
        };
        let e = table_engine(&contacts, &companies);
        let mut q = ask("t", PrincipalKind::User, "u", row.object, row.action);
        q.ctx = row.ctx.clone();
        let decision = e
            .check(&q, record, NOW)
            .unwrap_or_else(|err| panic!("{}: {err}", row.action));
        if let Some(id) = record {
            let answer = e.batch_check(&q, &[id], NOW).unwrap();
            assert_eq!(answer.is_allowed(0), decision.allowed(), "{}", row.action);
        }
        decision.reason
    };
    let toggles: Vec<&str> = row.toggle.into_iter().collect();
    let exact = |scope| grant(scope, row.level, &toggles, row.fields);
    // (grant, record, answer, what the case is)
    let mut cases = vec![
        (
            exact("all_records"),
            row.record,
            ALLOWED,
            "the exact grant in All Records".to_owned(),
        ),
        (
            exact("associated_records"),
            row.record,
            ALLOWED,
            "the exact grant in My Associated Records, on u's record".to_owned(),
        ),
    ];
    if row.record == Some(T_MINE) {
        cases.push((
            exact("associated_records"),
            Some(T_OTHERS),
            Some(NoRecordAccess),
            "My Associated Records, on someone else's record".to_owned(),
        ));
    }
    cases.push((
        grant("all_records", lower_level(row.level), &toggles, row.fields),
        row.record,
        Some(NoRecordAccess),
        format!("one level below {}", row.level),
    ));
    if row.toggle.is_some() {
        cases.push((
            grant("all_records", row.level, &[], row.fields),
            row.record,
            Some(ActionNotPermitted),
            "toggle off".to_owned(),
        ));
    }
    for i in 0..row.fields.len() {
        let mut fields = row.fields.to_vec();
        fields[i].1 = lower_field(fields[i].1);
        cases.push((
            grant("all_records", row.level, &toggles, &fields),
            row.record,
            Some(FieldRestricted),
            format!("{} one step below {}", fields[i].0, row.fields[i].1),
        ));
    }
    for (perms, record, want, case) in cases {
        assert_eq!(
            decide(perms, record),
            want,
            "{} {:?}: {case}",
            row.action,
            row.ctx
        );
    }
}

/// A record-less action asked about a record: refused, by Check and by
/// BatchCheck.
#[track_caller]
fn assert_record_less(e: &Engine, q: &Question, action: &'static str) {
    assert_eq!(
        e.check(q, Some(T_MINE), NOW),
        Err(QueryError::RecordLessAction(action))
    );
    assert_eq!(
        e.batch_check(q, &[T_MINE], NOW),
        Err(QueryError::RecordLessAction(action))
    );
}

#[test]
fn table_view_needs_view() {
    check_row(&Row::new("view", "view"));
}

#[test]
fn table_edit_needs_edit_and_edit_on_each_named_field() {
    check_row(&Row::new("edit", "edit"));
    check_row(
        &Row::new("edit", "edit")
            .needs(&[
                ("first_name", "edit"),
                ("email", "edit"),
                ("sales_team", "edit"),
            ])
            .fields(&["first_name", "email", "sales_team"]),
    );
}

#[test]
fn table_create_needs_edit_in_some_scope_and_no_record() {
    check_row(&Row {
        record: None,
        ..Row::new("create", "edit")
    });
    let e = table_engine(&grant("all_records", "edit", &[], &[]), "{}");
    let create = ask("t", PrincipalKind::User, "u", "contacts", "create");
    assert_record_less(&e, &create, "create");
    assert!(matches!(
        e.lookup(&create, NOW),
        Err(QueryError::RecordLessAction("create"))
    ));
}

#[test]
fn table_archive_unarchive_view_archived_need_delete() {
    check_row(&Row::new("archive", "delete"));
    for action in ["unarchive", "view_archived"] {
        check_row(&Row {
            record: Some(T_ARCHIVED),
            ..Row::new(action, "delete")
        });
        check_row(&Row::new(action, "delete"));
    }
}

#[test]
fn table_export_and_bulk_export_need_view_and_toggle() {
    for action in ["export", "bulk_export"] {
        check_row(&Row::new(action, "view").toggled());
    }
}

#[test]
fn table_upload_needs_edit_in_some_scope_and_toggle() {
    check_row(&Row {
        record: None,
        ..Row::new("upload", "edit").toggled()
    });
    let e = table_engine(&grant("all_records", "edit", &["upload"], &[]), "{}");
    let upload = ask("t", PrincipalKind::User, "u", "contacts", "upload");
    assert_record_less(&e, &upload, "upload");
}

#[test]
fn table_bulk_change_field_values_needs_edit_toggle_and_edit_on_named_fields() {
    let row = toggled(
        "bulk_change_field_values",
        "edit",
        &[("first_name", "edit"), ("tags", "edit")],
    );
    check_row(&row.fields(&["first_name", "tags"]));
}

#[test]
fn table_bulk_archive_needs_delete_and_toggle() {
    check_row(&Row::new("bulk_archive", "delete").toggled());
}

#[test]
fn table_modify_automation_and_bulk_need_edit_and_toggle() {
    for action in ["modify_automation", "bulk_modify_automation"] {
        check_row(&Row::new(action, "edit").toggled());
    }
}

#[test]
fn table_send_single_message_needs_view_toggle_and_the_channel_field() {
    for (channel, field) in [(Channel::Email, "email"), (Channel::Text, "mobile_phone")] {
        let needs = [(field, "view")];
        check_row(&toggled("send_single_message", "view", &needs).channel(channel));
    }
}

#[test]
fn table_bulk_send_email_and_survey_need_view_toggle_and_email() {
    for action in ["bulk_send_email", "bulk_send_survey"] {
        check_row(&toggled(action, "view", &[("email", "view")]));
    }
}

#[test]
fn table_bulk_send_text_needs_view_toggle_and_mobile_phone() {
    check_row(&toggled(
        "bulk_send_text",
        "view",
        &[("mobile_phone", "view")],
    ));
}

#[test]
fn table_bulk_change_tags_needs_edit_toggle_and_tags_edit() {
    check_row(&toggled("bulk_change_tags", "edit", &[("tags", "edit")]));
}

#[test]
fn table_team_associations_needs_edit_and_toggle() {
    check_row(&Row::new("team_associations", "edit").toggled());
}

#[test]
fn table_subscription_lists_view_to_see_edit_to_change() {
    check_row(&toggled(
        "subscription_lists",
        "view",
        &[("email_status", "view")],
    ));
    let change = toggled("subscription_lists", "edit", &[("email_status", "edit")]);
    check_row(&change.target(EmailStatus::OptedOut));
}

#[test]
fn table_bulk_manage_subscription_needs_edit_toggle_and_email_status_edit() {
    let row = toggled(
        "bulk_manage_subscription",
        "edit",
        &[("email_status", "edit")],
    );
    check_row(&row.target(EmailStatus::OptedOut));
}

#[test]
fn table_view_timeline_needs_view_and_toggle() {
    check_row(&Row::new("view_timeline", "view").toggled());
}

#[test]
fn table_custom_objects_have_the_all_object_actions() {
    let company = |action, level| Row {
        object: "companies",
        record: Some(T_COMPANY),
        ..Row::new(action, level)
    };
    check_row(&company("view", "view"));
    check_row(
        &company("edit", "edit")
            .needs(&[("name", "edit")])
            .fields(&["name"]),
    );
    check_row(&company("archive", "delete"));
    for (action, level) in [
        ("export", "view"),
        ("bulk_export", "view"),
        ("bulk_archive", "delete"),
        ("modify_automation", "edit"),
        ("bulk_modify_automation", "edit"),
    ] {
        check_row(&company(action, level).toggled());
    }
}

#[test]
fn contacts_only_actions_on_other_objects_are_invalid_argument() {
    let e = engine();
    for action in [
        "send_single_message",
        "team_associations",
        "subscription_lists",
        "view_timeline",
        "bulk_send_email",
        "bulk_send_text",
        "bulk_send_survey",
        "bulk_change_tags",
        "bulk_manage_subscription",
    ] {
        let q = user("root", "companies", action)
            .channel(Channel::Email)
            .target(EmailStatus::OptedOut);
        assert!(
            matches!(
                e.check(&q, Some(C_ACME), NOW),
                Err(QueryError::ActionNotOnObject { .. })
            ),
            "{action}"
        );
    }
}

// ======================================================== requests =======

#[test]
fn unknown_record_is_unknown_record() {
    let e = engine();
    expect_batch(
        &e,
        &user("root", "contacts", "view"),
        &[
            (NOWHERE, Some(UnknownRecord)), // in no tenant
            (C_ACME, Some(UnknownRecord)),  // a company, asked as a contact (choice 9)
            (Q_FINE, Some(UnknownRecord)),  // a contact of another tenant
            (K_ANA, ALLOWED),
        ],
    );
    // Unknown comes before every other reason, visibility included.
    assert_eq!(
        reason(&e, &user("nobody", "contacts", "view"), NOWHERE),
        Some(UnknownRecord)
    );
}

#[test]
fn duplicate_ids_are_answered_per_position() {
    let e = engine();
    // Ten positions, so the bitmask spans two bytes.
    let ids = [
        K_ANA, K_BEN, K_ANA, K_BEN, K_OLD, K_ANA, NOWHERE, K_BEN, K_ANA, K_ANA,
    ];
    let answer = e
        .batch_check(&user("alice", "contacts", "edit"), &ids, NOW)
        .unwrap();
    assert_eq!(answer.allowed_count, 5);
    assert_eq!(answer.allowed, vec![0b0010_0101, 0b0000_0011]);
    assert_eq!(
        answer.denials,
        vec![
            (1, NoRecordAccess),
            (3, NoRecordAccess),
            (4, Archived),
            (6, UnknownRecord),
            (7, NoRecordAccess)
        ]
    );
    let empty = e
        .batch_check(&user("alice", "contacts", "edit"), &[], NOW)
        .unwrap();
    assert_eq!(empty.allowed_count, 0);
    assert!(empty.allowed.is_empty() && empty.denials.is_empty());
}

#[test]
fn unknown_principal_is_an_error_never_an_answer() {
    let e = engine();
    let ghost = user("ghost", "contacts", "view");
    let expected = || {
        Some(QueryError::UnknownPrincipal {
            kind: "user",
            id: "ghost".to_owned(),
            tenant: "acme".to_owned(),
        })
    };
    assert_eq!(e.check(&ghost, Some(K_ANA), NOW).err(), expected());
    assert_eq!(e.batch_check(&ghost, &[K_ANA], NOW).err(), expected());
    assert_eq!(e.lookup(&ghost, NOW).err(), expected());
    assert_eq!(e.explain(&ghost, Some(K_ANA), NOW).err(), expected());
    assert_eq!(
        e.object_access("acme", &pref(PrincipalKind::User, "ghost"), None, 0)
            .err(),
        expected()
    );
    assert_eq!(
        e.record_access(
            "acme",
            &pref(PrincipalKind::User, "ghost"),
            "contacts",
            &[K_ANA],
            0,
            NOW
        )
        .err(),
        expected()
    );
    assert_eq!(
        e.check(&integration("ghost", "contacts", "view"), Some(K_ANA), NOW),
        Err(QueryError::UnknownPrincipal {
            kind: "integration",
            id: "ghost".to_owned(),
            tenant: "acme".to_owned(),
        })
    );
    assert!(matches!(
        e.check(&automation("alice", "contacts", "view"), Some(K_ANA), NOW),
        Err(QueryError::UnknownPrincipal {
            kind: "automation",
            ..
        })
    ));
}

#[test]
fn unknown_action_and_object_list_the_valid_names() {
    let e = engine();
    match e.check(&user("alice", "contacts", "delete"), Some(K_ANA), NOW) {
        Err(QueryError::UnknownAction { action, valid }) => {
            assert_eq!(action, "delete");
            for a in Action::ALL {
                assert!(valid.split(", ").any(|v| v == a.as_str()), "{valid}");
            }
        }
        other => panic!("expected UnknownAction, got {other:?}"),
    }
    match e.batch_check(&user("alice", "contact", "view"), &[K_ANA], NOW) {
        Err(QueryError::UnknownObject {
            object,
            tenant,
            valid,
        }) => {
            assert_eq!((object.as_str(), tenant.as_str()), ("contact", "acme"));
            assert_eq!(
                valid.split(", ").collect::<BTreeSet<_>>(),
                names(&ACME_OBJECTS)
            );
        }
        other => panic!("expected UnknownObject, got {other:?}"),
    }
    assert!(matches!(
        e.object_access(
            "acme",
            &pref(PrincipalKind::User, "alice"),
            Some("contact"),
            0
        ),
        Err(QueryError::UnknownObject { .. })
    ));
    assert_eq!(
        e.check(
            &ask("umbrella", PrincipalKind::User, "alice", "contacts", "view"),
            Some(K_ANA),
            NOW
        ),
        Err(QueryError::UnknownTenant("umbrella".to_owned()))
    );
}

#[test]
fn request_fields_and_context_are_validated() {
    let e = engine();
    assert!(matches!(
        e.check(
            &user("root", "contacts", "edit").fields(&["emial"]),
            Some(K_ANA),
            NOW
        ),
        Err(QueryError::UnknownField { field, .. }) if field == "emial"
    ));
    for q in [
        user("root", "contacts", "send_single_message"),
        user("root", "contacts", "bulk_manage_subscription"),
        user("root", "contacts", "bulk_change_field_values"),
    ] {
        assert!(
            matches!(
                e.check(&q, Some(K_ANA), NOW),
                Err(QueryError::InvalidContext(_))
            ),
            "{}",
            q.action
        );
    }
    assert_eq!(
        e.check(&user("root", "contacts", "view"), None, NOW),
        Err(QueryError::RecordRequired("view"))
    );
}

#[test]
fn batch_over_limit_is_refused() {
    let (data, _) = parse_str(FIXTURE, false, Path::new("semantics.yaml")).unwrap();
    let e = Engine::new(Snapshot::build(&data, 1), 3);
    assert_eq!(e.max_batch(), 3);
    let q = user("alice", "contacts", "view");
    assert_eq!(
        e.batch_check(&q, &[K_ANA, K_BEN, K_CARA, K_DAN], NOW),
        Err(QueryError::BatchTooLarge { size: 4, limit: 3 })
    );
    assert_eq!(
        e.record_access(
            "acme",
            &pref(PrincipalKind::User, "alice"),
            "contacts",
            &[K_ANA, K_BEN, K_CARA, K_DAN],
            0,
            NOW
        ),
        Err(QueryError::BatchTooLarge { size: 4, limit: 3 })
    );
    // At the limit it answers.
    expect_batch(
        &e,
        &q,
        &[
            (K_ANA, ALLOWED),
            (K_BEN, Some(NoRecordAccess)),
            (K_CARA, ALLOWED),
        ],
    );
}

#[test]
fn min_revision_not_reached_is_refused() {
    let e = engine();
    let mut q = user("alice", "contacts", "view");
    q.min_revision = 2;
    assert_eq!(
        e.check(&q, Some(K_ANA), NOW),
        Err(QueryError::RevisionNotReached {
            current: 1,
            wanted: 2
        })
    );
    q.min_revision = 1;
    assert_eq!(e.check(&q, Some(K_ANA), NOW).unwrap().revision, 1);
}

#[test]
fn tenants_never_cross() {
    let e = engine();
    // alice is a user of acme, not of quiet; quiet's records are not acme's.
    assert!(matches!(
        e.check(
            &ask("quiet", PrincipalKind::User, "alice", "contacts", "view"),
            Some(K_ANA),
            NOW
        ),
        Err(QueryError::UnknownPrincipal { .. })
    ));
    expect(
        &e,
        &[
            (quiet("quinn", "view"), K_ANA, Some(UnknownRecord)),
            // "nobody" exists in both tenants, with nothing in either.
            (
                user("nobody", "contacts", "view"),
                K_ANA,
                Some(ObjectNotVisible),
            ),
        ],
    );
    assert!(!lookup(&e, &quiet("quinn", "view")).contains(&K_ANA));
}

// ======================================================= data files =====

fn load_problems(yaml: &str) -> Vec<(String, String)> {
    match parse_str(yaml, false, Path::new("bad.yaml")) {
        Err(LoadError::Invalid { file, problems }) => {
            assert_eq!(file, Path::new("bad.yaml"));
            problems.into_iter().map(|p| (p.path, p.message)).collect()
        }
        Err(other) => panic!("expected Invalid, got {other}"),
        Ok(_) => panic!("the file should be refused"),
    }
}

fn parse_error(yaml: &str) -> (String, String) {
    match parse_str(yaml, false, Path::new("bad.yaml")) {
        Err(LoadError::Parse {
            file,
            path,
            message,
        }) => {
            assert_eq!(file, Path::new("bad.yaml"));
            (path, message)
        }
        Err(other) => panic!("expected Parse, got {other}"),
        Ok(_) => panic!("the file should be refused"),
    }
}

#[test]
fn fixture_loads_without_warnings() {
    let (data, warnings) = parse_str(FIXTURE, false, Path::new("semantics.yaml")).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(data.tenants.len(), 2);
}

#[test]
fn json_is_the_same_format_as_yaml() {
    let (data, _) = parse_str(FIXTURE, false, Path::new("semantics.yaml")).unwrap();
    let json = serde_json::to_string(&data).unwrap();
    let (again, _): (DataFile, _) = parse_str(&json, true, Path::new("semantics.json")).unwrap();
    assert_eq!(again, data);
}

#[test]
fn dangling_record_references_never_widen_access() {
    const MINE: Uuid = Uuid::from_u128(0xc300_0000_0000_4000_8000_0000_0000_0001);
    const ORPHAN: Uuid = Uuid::from_u128(0xc300_0000_0000_4000_8000_0000_0000_0002);
    const NO_COMPANY: Uuid = Uuid::from_u128(0xa300_0000_0000_4000_8000_0000_0000_0099);
    let yaml = format!(
        r#"
tenants:
  - id: t
    objects:
      - {{name: companies}}
      - name: contacts
        team_fields: [sales_team]
        relationships: [{{field: company, object: companies}}]
        association_source: both
    groups:
      - id: mine
        objects:
          contacts: {{view_object: true, associated_records: edit}}
    users:
      - {{id: alice, groups: [mine]}}
    integrations:
      - {{id: ghost, groups: [mine]}}       # named like the dangling owner below
    records:
      - {{id: {MINE}, object: contacts, owner: alice}}
      - id: {ORPHAN}
        object: contacts
        owner: ghost                        # no such user
        teams: {{sales_team: [ghost, casper]}}
        interactions: [ghost]
        links: {{company: [{NO_COMPANY}]}}  # no such record
"#
    );
    let (data, warnings) = parse_str(&yaml, false, Path::new("dangling.yaml")).unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().all(|w| w.path == "tenants[0].records"));
    // Owner, two team entries and an interaction name no user; one link no record.
    assert!(
        warnings.iter().any(|w| w.message.starts_with("4 ")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.message.starts_with("1 ")),
        "{warnings:?}"
    );

    let e = Engine::new(Snapshot::build(&data, 1), 100);
    let edit = ask("t", PrincipalKind::User, "alice", "contacts", "edit");
    expect_batch(
        &e,
        &edit,
        &[(MINE, ALLOWED), (ORPHAN, Some(NoRecordAccess))],
    );
    // The dangling name is nobody: not a user, and the integration that
    // shares it is not associated with the record either.
    assert!(matches!(
        e.check(
            &ask("t", PrincipalKind::User, "ghost", "contacts", "view"),
            Some(ORPHAN),
            NOW
        ),
        Err(QueryError::UnknownPrincipal { .. })
    ));
    let ghost = ask("t", PrincipalKind::Integration, "ghost", "contacts", "view");
    expect(
        &e,
        &[
            (ghost, ORPHAN, Some(NoRecordAccess)),
            // The dangling link made up no record.
            (
                ask("t", PrincipalKind::User, "alice", "companies", "view"),
                NO_COMPANY,
                Some(UnknownRecord),
            ),
        ],
    );
}

#[test]
fn unknown_group_in_a_user_is_a_load_error_naming_the_path() {
    let problems = load_problems(
        r#"
tenants:
  - id: t
    groups: [{id: sales}]
    users:
      - {id: alice, groups: [sales]}
      - {id: bob, groups: [salse, sales]}
"#,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "tenants[0].users[1].groups[0]");
    assert!(problems[0].1.contains("salse"), "{problems:?}");
}

#[test]
fn unknown_field_in_a_group_is_a_load_error_naming_the_path() {
    let yaml = r#"
tenants:
  - id: t
    groups:
      - {id: a}
      - id: b
        objects: {contacts: {fields: {email: view}}}
      - id: c
        objects:
          contacts:
            fields: {"*": view, emial: edit}
"#;
    let problems = load_problems(yaml);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        problems[0].0,
        "tenants[0].groups[2].objects.contacts.fields.emial"
    );
    assert!(
        problems[0].1.contains("emial") && problems[0].1.contains("email"),
        "names the bad field and lists the valid ones: {problems:?}"
    );
    let shown = parse_str(yaml, false, Path::new("acme.yaml"))
        .unwrap_err()
        .to_string();
    assert!(shown.contains("acme.yaml"), "{shown}");
    assert!(
        shown.contains("tenants[0].groups[2].objects.contacts.fields.emial"),
        "{shown}"
    );
}

#[test]
fn every_grant_reference_must_exist() {
    let problems = load_problems(
        r#"
tenants:
  - id: t
    objects: [{name: companies}]
    groups:
      - id: g
        objects:
          companys: {view_object: true}
          companies: {actions: [bulk_send_email]}
    roles: [{id: rep, groups: [gg]}]
    users: [{id: alice, roles: [rpe]}]
    integrations: [{id: key, groups: [g], user: alcie}]
    automations:
      - {id: a1, run_as: {user: bob}}
      - {id: a2, run_as: {integration: kye}}
"#,
    );
    let paths: BTreeSet<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        names(&[
            "tenants[0].groups[0].objects.companys",
            "tenants[0].groups[0].objects.companies.actions",
            "tenants[0].roles[0].groups[0]",
            "tenants[0].users[0].roles[0]",
            "tenants[0].integrations[0].user",
            "tenants[0].automations[0].run_as",
            "tenants[0].automations[1].run_as",
        ]),
        "{problems:?}"
    );
}

#[test]
fn record_problems_are_load_errors_naming_the_path() {
    let problems = load_problems(
        r#"
tenants:
  - id: t
    objects:
      - {name: companies, team_fields: [account_team]}
      - {name: deals, relationships: [{field: company, object: companies}]}
    users: [{id: alice}]
    records:
      - {id: a0000000-0000-4000-8000-000000000001, object: companies, teams: {sales_team: [alice]}}
      - {id: d0000000-0000-4000-8000-000000000001, object: deals,
         links: {company: [d0000000-0000-4000-8000-000000000001], owner: []}}
      - {id: a0000000-0000-4000-8000-000000000002, object: companies, contact: {email: x@example.com}}
      - {id: c0000000-0000-4000-8000-000000000001, object: contacts,
         contact: {email: x@example.com, suppressed_until: 2026-06-01T00:00:00Z}}
      - {id: c0000000-0000-4000-8000-000000000002, object: leads}
      - {id: c0000000-0000-4000-8000-000000000001, object: contacts}
"#,
    );
    let paths: BTreeSet<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        names(&[
            "tenants[0].records[0].teams.sales_team",
            "tenants[0].records[1].links.company[0]",
            "tenants[0].records[1].links.owner",
            "tenants[0].records[2].contact",
            "tenants[0].records[3].contact.suppressed_until",
            "tenants[0].records[4].object",
            "tenants[0].records[5].id",
        ]),
        "{problems:?}"
    );
}

#[test]
fn automation_run_as_loads_in_the_documented_map_form() {
    // README "Data format": `automations: [{id: nurture, run_as: {user: alice}}]  # or {integration: sync-key}`
    let yaml = r#"
tenants:
  - id: t
    users: [{id: alice}]
    integrations: [{id: sync-key}]
    automations:
      - {id: nurture, run_as: {user: alice}}
      - {id: nightly, run_as: {integration: sync-key}}
"#;
    let (data, _) = parse_str(yaml, false, Path::new("documented.yaml"))
        .unwrap_or_else(|e| panic!("the README's run_as form is refused: {e}"));
    let e = Engine::new(Snapshot::build(&data, 1), 100);
    for id in ["nurture", "nightly"] {
        assert!(
            e.object_access("t", &pref(PrincipalKind::Automation, id), None, 0)
                .is_ok(),
            "{id}"
        );
    }
}

#[test]
fn automation_run_as_must_name_exactly_one_principal() {
    for (run_as, expected) in [
        (
            "{user: alice, integration: sync-key}",
            "more than one principal",
        ),
        ("{}", "run_as is empty"),
        ("{group: g}", "unknown field `group`"),
        ("alice", "exactly one key, `user` or `integration`"),
    ] {
        let yaml = format!(
            "tenants:\n  - id: t\n    users: [{{id: alice}}]\n    automations:\n      - {{id: a, run_as: {run_as}}}\n"
        );
        let (path, message) = parse_error(&yaml);
        assert_eq!(path, "tenants[0].automations[0].run_as", "{run_as}");
        assert!(message.contains(expected), "{run_as}: {message}");
        assert!(!message.starts_with("tenants["), "path repeated: {message}");
    }
}

#[test]
fn malformed_yaml_is_a_parse_error_with_a_path() {
    // A value of the wrong kind.
    let (path, message) = parse_error(
        r#"
tenants:
  - id: t
    groups:
      - id: g
        objects:
          contacts: {all_records: maybe}
"#,
    );
    assert_eq!(path, "tenants[0].groups[0].objects.contacts.all_records");
    assert!(message.contains("maybe"), "{message}");
    // A misspelt key is an error, never a silently dropped grant.
    let (path, message) = parse_error(
        r#"
tenants:
  - id: t
    groups:
      - id: g
        objects:
          contacts: {view_objekt: true}
"#,
    );
    assert!(
        path.starts_with("tenants[0].groups[0].objects.contacts"),
        "{path}"
    );
    assert!(message.contains("view_objekt"), "{message}");
    // An unknown email status.
    let (path, _) = parse_error(
        r#"
tenants:
  - id: t
    records:
      - id: c0000000-0000-4000-8000-000000000001
        object: contacts
        contact: {email_status: subscribed}
"#,
    );
    assert_eq!(path, "tenants[0].records[0].contact.email_status");
    // Broken YAML syntax.
    let (_, message) = parse_error("tenants:\n  - id: t\n    groups: [\n  users: {\n");
    assert!(message.contains("line"), "{message}");
}

#[test]
fn example_data_file_loads() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/small.yaml");
    let (data, warnings) =
        load_file(&file).unwrap_or_else(|e| panic!("examples/data/small.yaml: {e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(!data.tenants.is_empty());
    let e = Engine::new(Snapshot::build(&data, 1), 100);
    let snapshot = e.snapshot();
    assert_eq!(snapshot.tenants.len(), data.tenants.len());
}
