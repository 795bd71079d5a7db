//! End-to-end tests over real gRPC on loopback: the server runs in-process on
//! `127.0.0.1:<ephemeral>`, a tonic client talks to it through HTTP/2, and
//! every answer is compared with what the same `Engine` computes in-process
//! (and, where the demo data makes it easy, with what docs/model.md says).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::requests::{
    ACTION_RPCS, AnyRequest, EVERY_RPC, answered, assert_status, batch, batch_bytes, batch_packed,
    batch_strings, both_forms, check, demo_contacts, demo_question, explain_of, lookup,
    lookup_pages, object_access, principal, record_access, strings, unpack, user,
};
use common::server::{TestServer, bounded, demo_engine, demo_file, shared_demo_engine};
use permd::index::{Engine, PrincipalKind, PrincipalRef, Question, Snapshot};
use permd::model::data::{EmailStatus, Record};
use permd::model::{Channel as ModelChannel, FieldLevel, Reason};
use permd::pb::{self, authorizer_client::AuthorizerClient};
use permd::source::demo::{DEMO_CONTACTS, DEMO_TENANT, company_id, contact_id, deal_id};
use time::OffsetDateTime;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------

/// A small custom tenant: email and SMS not configured, one user.
const ACME_YAML: &str = r#"
tenants:
  - id: acme
    email_configured: false
    sms_configured: false
    groups:
      - id: everyone
        objects:
          contacts:
            view_object: true
            all_records: edit
            associated_records: edit
            actions: [send_single_message, bulk_send_email, bulk_send_text]
            default_for_new_field: view
    users:
      - id: zoe
        groups: [everyone]
    records:
      - id: 0a000000-0000-4000-8000-000000000001
        object: contacts
        contact: {email: one@example.com, email_status: opted_in, mobile_phone: "+15550000001"}
      - id: 0a000000-0000-4000-8000-000000000002
        object: contacts
        contact: {email_status: opted_in}
      - id: 0a000000-0000-4000-8000-000000000003
        object: contacts
        archived: true
        contact: {email: three@example.com, email_status: opted_in}
"#;

fn acme_id(n: u128) -> Uuid {
    Uuid::from_u128(0x0a00_0000_0000_4000_8000_0000_0000_0000 | n)
}

/// The demo tenant plus `acme`, with a batch limit of 10.
fn small_batch_engine() -> Arc<Engine> {
    let (acme, warnings) = permd::source::parse_str(ACME_YAML, false, Path::new("acme.yaml"))
        .expect("the acme test data file is valid");
    assert!(warnings.is_empty(), "acme warnings: {warnings:?}");
    let mut data = demo_file().clone();
    data.tenants.extend(acme.tenants);
    Arc::new(Engine::new(Snapshot::build(&data, 1), 10))
}

/// UUIDs the server sent as strings.
fn parse_all(ids: &[String]) -> Vec<Uuid> {
    ids.iter().map(|id| Uuid::parse_str(id).unwrap()).collect()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn level(l: FieldLevel) -> i32 {
    match l {
        FieldLevel::None => pb::FieldLevel::None as i32,
        FieldLevel::View => pb::FieldLevel::View as i32,
        FieldLevel::Edit => pb::FieldLevel::Edit as i32,
    }
}

fn engine_mask(mask: &[(String, FieldLevel)]) -> BTreeMap<String, i32> {
    mask.iter().map(|(f, l)| (f.clone(), level(*l))).collect()
}

fn wire_mask(mask: Option<&pb::FieldMask>) -> BTreeMap<String, i32> {
    mask.expect("a field mask is present")
        .fields
        .iter()
        .map(|(f, l)| (f.clone(), *l))
        .collect()
}

fn reason_name(r: i32) -> &'static str {
    pb::Reason::try_from(r)
        .map(|r| r.as_str_name())
        .unwrap_or("<not a Reason>")
}

fn bit(mask: &[u8], i: usize) -> bool {
    mask[i / 8] & (1 << (i % 8)) != 0
}

/// Asserts a wire BatchCheck answer is self-consistent and equal to the
/// engine's in-process answer for the same ids.
#[track_caller]
fn assert_batch_matches_engine(
    resp: &pb::BatchCheckResponse,
    engine: &Engine,
    q: &Question,
    ids: &[Uuid],
) {
    let n = ids.len();
    let want = engine.batch_check(q, ids, now()).unwrap();
    assert_eq!(resp.allowed.len(), n.div_ceil(8), "bitmask length");
    assert_eq!(resp.allowed, want.allowed, "bitmask differs from engine");
    assert_eq!(resp.allowed_count, want.allowed_count);
    let got: Vec<(u32, i32)> = resp
        .denials
        .iter()
        .map(|d| (d.position, d.reason))
        .collect();
    let expected: Vec<(u32, i32)> = want.denials.iter().map(|(p, r)| (*p, *r as i32)).collect();
    assert_eq!(got, expected, "denials differ from engine");
    assert_eq!(
        wire_mask(resp.field_mask.as_ref()),
        engine_mask(&want.field_mask)
    );
    assert_eq!(resp.revision, want.revision);
    // Self-consistency: the bitmask, the count and the denials agree.
    let set = (0..n).filter(|&i| bit(&resp.allowed, i)).count();
    assert_eq!(set as u32, resp.allowed_count);
    let denied: Vec<u32> = (0..n as u32)
        .filter(|&i| !bit(&resp.allowed, i as usize))
        .collect();
    let positions: Vec<u32> = resp.denials.iter().map(|d| d.position).collect();
    assert_eq!(
        positions, denied,
        "one denial per denied position, in order"
    );
    assert!(
        resp.denials.iter().all(|d| d.reason != 0),
        "a denial carries a reason"
    );
    // Bits past the end are clear.
    for i in n..resp.allowed.len() * 8 {
        assert!(!bit(&resp.allowed, i), "bit {i} past the end is set");
    }
}

fn record(id: Uuid) -> &'static Record {
    demo_file().tenants[0]
        .records
        .iter()
        .find(|r| r.id == id)
        .expect("a demo record")
}

/// The first demo Contact that is (or is not) archived.
fn first_contact(archived: bool) -> Uuid {
    (0..DEMO_CONTACTS)
        .map(contact_id)
        .find(|id| record(*id).archived == archived)
        .unwrap()
}

/// A BatchCheck answer's denials: reason by position.
fn denials_by_position(resp: &pb::BatchCheckResponse) -> BTreeMap<u32, i32> {
    resp.denials
        .iter()
        .map(|d| (d.position, d.reason))
        .collect()
}

/// What carol's `bulk_send_email` LookupRecords must stream, in order.
fn carol_bulk_email_lookup(engine: &Engine) -> Vec<Uuid> {
    let q = demo_question("carol", "contacts", "bulk_send_email");
    engine.lookup(&q, now()).unwrap().0
}

/// The ids at the allowed positions of `bitmask`, in request order.
fn allowed_of(ids: &[Uuid], bitmask: &[u8]) -> Vec<Uuid> {
    ids.iter()
        .enumerate()
        .filter(|(i, _)| bit(bitmask, *i))
        .map(|(_, id)| *id)
        .collect()
}

/// docs/model.md applied by hand to carol (marketing: all records view,
/// email ≥ view, bulk_send_email on) for bulk_send_email, marketing mail.
fn carol_bulk_email_reason(id: Uuid, at: OffsetDateTime) -> Option<Reason> {
    let Some(r) = demo_file().tenants[0].records.iter().find(|r| r.id == id) else {
        return Some(Reason::UnknownRecord);
    };
    if r.object != "contacts" {
        return Some(Reason::UnknownRecord);
    }
    if r.archived {
        return Some(Reason::Archived);
    }
    let c = r.contact.clone().unwrap_or_default();
    if !c.has_valid_email() {
        Some(Reason::NoEmail)
    } else if c.is_suppressed_at(at) {
        Some(Reason::Suppressed)
    } else if c.email_status == EmailStatus::UnsubscribedAll {
        Some(Reason::Unsubscribed)
    } else {
        None
    }
}

// ---------------------------------------------------------------------------
// Check
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_a_record_matches_the_engine_and_the_data() {
    bounded(async {
        let (server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let engine = &server.engine;
        // alice (sales: all records view) sees every live Contact.
        let mut seen_archived = false;
        let mut seen_live = false;
        for n in 0..60 {
            let id = contact_id(n);
            let resp = answered(c.check(check(user("alice"), "contacts", "view", id)).await);
            let archived = record(id).archived;
            seen_archived |= archived;
            seen_live |= !archived;
            assert_eq!(resp.allowed, !archived, "alice view contact {n}");
            let want_reason = if archived { Reason::Archived as i32 } else { 0 };
            assert_eq!(resp.reason, want_reason, "contact {n}");
            assert_eq!(resp.revision, 1);
            let want = engine
                .check(&demo_question("alice", "contacts", "view"), Some(id), now())
                .unwrap();
            assert_eq!(resp.reason, want.reason.map_or(0, |r| r as i32));
            assert_eq!(
                wire_mask(resp.field_mask.as_ref()),
                engine_mask(&want.field_mask)
            );
            // A denied record shows no field (R7).
            assert_eq!(resp.field_mask.unwrap().fields.is_empty(), archived);
        }
        assert!(seen_archived && seen_live, "the sample covers both cases");

        // Every field of the object is in the mask, at the group's level.
        let carol_views = check(user("carol"), "contacts", "view", contact_id(1));
        let resp = answered(c.check(carol_views).await);
        let mask = wire_mask(resp.field_mask.as_ref());
        for f in [
            "first_name",
            "last_name",
            "job_title",
            "email",
            "email_status",
            "mobile_phone",
            "tags",
            "timezone",
            "birthday",
        ] {
            assert!(mask.contains_key(f), "mask lacks {f}: {mask:?}");
        }
        assert_eq!(mask["birthday"], pb::FieldLevel::None as i32);
        assert_eq!(mask["email_status"], pb::FieldLevel::Edit as i32);
        assert_eq!(mask["first_name"], pb::FieldLevel::View as i32);

        // Other principal kinds over the wire: the integration, which acts as
        // its user warehouse-bot (sync-readonly: all records view,
        // bulk_export), and the automation running as carol.
        let live = first_contact(false);
        let sync = || principal(pb::principal::Kind::Integration, "warehouse-sync");
        let resp = answered(
            c.check(check(sync(), "contacts", "bulk_export", live))
                .await,
        );
        assert!(resp.allowed, "{resp:?}");
        let resp = answered(c.check(check(sync(), "contacts", "edit", live)).await);
        assert_eq!(reason_name(resp.reason), "NO_RECORD_ACCESS");
        let automation = || principal(pb::principal::Kind::Automation, "welcome-series");
        for n in 0..40 {
            let id = contact_id(n);
            let as_automation = check(automation(), "contacts", "bulk_send_email", id);
            let as_automation = answered(c.check(as_automation).await);
            let as_carol = check(user("carol"), "contacts", "bulk_send_email", id);
            let as_carol = answered(c.check(as_carol).await);
            assert_eq!(as_automation.reason, as_carol.reason, "contact {n}");
            let want = carol_bulk_email_reason(id, now()).map_or(0, |r| r as i32);
            assert_eq!(as_carol.reason, want, "contact {n}: docs/model.md R13");
        }
        // The reasons v2 added cross the wire with their numbers: frank's
        // outgoing email is blocked (R13), and unarchive needs an archived
        // record (R10).
        let sendable = (0..DEMO_CONTACTS)
            .map(contact_id)
            .find(|id| carol_bulk_email_reason(*id, now()).is_none())
            .unwrap();
        let frank = check(user("frank"), "contacts", "bulk_send_email", sendable);
        let resp = answered(c.check(frank).await);
        assert_eq!(resp.reason, pb::Reason::SenderBlocked as i32);
        assert_eq!(resp.reason, 18);
        let resp = answered(
            c.check(check(user("ada"), "contacts", "unarchive", live))
                .await,
        );
        assert_eq!(resp.reason, pb::Reason::NotArchived as i32);
        assert_eq!(resp.reason, 17);
        let archived = first_contact(true);
        let resp = answered(
            c.check(check(user("ada"), "contacts", "unarchive", archived))
                .await,
        );
        assert!(resp.allowed, "{resp:?}");
        // KIND_UNSPECIFIED is a user.
        let unspecified = principal(pb::principal::Kind::Unspecified, "alice");
        let resp = answered(c.check(check(unspecified, "contacts", "view", live)).await);
        assert!(resp.allowed);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_record_less_create_and_upload() {
    bounded(async {
        let (server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let cases = [
            // sales: create_record on contacts.
            ("alice", "contacts", "create", 0),
            // marketing: view in both scopes, create_record off (R5b).
            (
                "carol",
                "contacts",
                "create",
                Reason::ActionNotPermitted as i32,
            ),
            // support sees no deals at all.
            ("dave", "deals", "create", Reason::ObjectNotVisible as i32),
            // companies: support reaches its associated ones (view), but
            // create_record is off (R5b).
            (
                "dave",
                "companies",
                "create",
                Reason::ActionNotPermitted as i32,
            ),
            // deal-desk has bulk_data_upload, sales does not.
            ("erin", "deals", "upload", 0),
            (
                "alice",
                "deals",
                "upload",
                Reason::ActionNotPermitted as i32,
            ),
            ("ada", "deals", "create", 0),
        ];
        for (who, object, action, want) in cases {
            let resp = answered(c.check(check(user(who), object, action, "")).await);
            assert_eq!(
                resp.reason,
                want,
                "{who} {action} {object}: got {}",
                reason_name(resp.reason)
            );
            assert_eq!(resp.allowed, want == 0);
            assert_eq!(resp.revision, 1);
            let engine = server
                .engine
                .check(&demo_question(who, object, action), None, now())
                .unwrap();
            assert_eq!(resp.reason, engine.reason.map_or(0, |r| r as i32));
            assert_eq!(
                wire_mask(resp.field_mask.as_ref()),
                engine_mask(&engine.field_mask)
            );
        }
        // create with a record, view without one: both say what to fix.
        let alice = |action: &str, id: &str| check(user("alice"), "contacts", action, id);
        assert_status(
            c.check(alice("create", &contact_id(1).to_string())).await,
            Code::InvalidArgument,
            &["create", "record_id"],
        );
        assert_status(
            c.check(alice("view", "")).await,
            Code::InvalidArgument,
            &["view", "record_id"],
        );
        // BatchCheck and LookupRecords refuse record-less actions.
        let create = batch(user("alice"), "contacts", "create", &[contact_id(1)]);
        assert_status(
            c.batch_check(create).await,
            Code::InvalidArgument,
            &["create"],
        );
        let upload = lookup(user("alice"), "contacts", "upload");
        assert_status(
            c.lookup_records(upload).await,
            Code::InvalidArgument,
            &["upload"],
        );
    })
    .await;
}

// ---------------------------------------------------------------------------
// BatchCheck
// ---------------------------------------------------------------------------

/// A mix that exercises many reasons: contacts, an unknown id, ids of other
/// objects, duplicates.
fn mixed_ids() -> Vec<Uuid> {
    let mut ids = demo_contacts(300);
    ids.push(Uuid::from_u128(0x1234_5678_9abc_4def_8000_0000_0000_0001));
    ids.push(company_id(3));
    ids.push(deal_id(3));
    ids.push(contact_id(7));
    ids.push(contact_id(7));
    ids.push(contact_id(DEMO_CONTACTS + 5));
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_check_string_ids() {
    bounded(async {
        let (server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let ids = mixed_ids();
        let text = || {
            Some(pb::ActionContext {
                channel: pb::Channel::Text as i32,
                ..Default::default()
            })
        };
        for (who, action) in [
            ("alice", "view"),
            ("alice", "edit"),
            ("carol", "bulk_send_email"),
            ("dave", "send_single_message"),
            ("ada", "unarchive"),
            ("ada", "bulk_send_text"),
        ] {
            let mut req = batch(user(who), "contacts", action, &ids);
            let mut q = demo_question(who, "contacts", action);
            if action == "send_single_message" {
                req.context = text();
                q.ctx.channel = Some(ModelChannel::Text);
            }
            req.return_allowed_ids = true;
            let resp = answered(c.batch_check(req).await);
            assert_batch_matches_engine(&resp, &server.engine, &q, &ids);
            assert_eq!(resp.revision, 1);
            // Allowed ids come back as strings, in request order.
            let want = strings(&allowed_of(&ids, &resp.allowed));
            let got = resp.allowed_ids.as_ref().expect("allowed_ids").ids.clone();
            assert_eq!(got, want, "{who} {action}");
            assert!(resp.allowed_packed_ids.is_none(), "not in packed form");
            // Each denial reason is what a single Check says for that id.
            for d in resp.denials.iter().step_by(7) {
                let single = pb::CheckRequest {
                    context: text(),
                    ..check(user(who), "contacts", action, ids[d.position as usize])
                };
                let one = answered(c.check(single).await);
                assert_eq!(
                    one.reason, d.reason,
                    "{who} {action} position {}",
                    d.position
                );
            }
        }
        // Without return_allowed_ids neither list is sent.
        let resp = answered(
            c.batch_check(batch(user("alice"), "contacts", "view", &ids))
                .await,
        );
        assert!(resp.allowed_ids.is_none() && resp.allowed_packed_ids.is_none());
        assert!(resp.allowed_count > 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_check_by_handles_answers_as_by_ids_and_refuses_stale_ones() {
    bounded(async {
        let (server, mut c) = TestServer::with_client(demo_engine()).await;
        let ids = mixed_ids();
        let mut req = batch_packed(user("carol"), "contacts", "bulk_send_email", &ids);
        req.return_handles = true;
        let by_ids = answered(c.batch_check(req.clone()).await);
        let handles = by_ids.handles.clone().expect("handles were asked for");
        assert_eq!(
            handles.ordinals.len(),
            ids.len() * 4,
            "one handle per position"
        );
        let unknown = handles
            .ordinals
            .chunks_exact(4)
            .filter(|h| *h == [0xff; 4])
            .count();
        // A random id, a company, a deal and one past the demo Contacts.
        assert_eq!(unknown, 4, "ids that are not Contacts have no handle");
        let q = demo_question("carol", "contacts", "bulk_send_email");
        assert_batch_matches_engine(&by_ids, &server.engine, &q, &ids);

        // By handles: the same answer, bit for bit, for every action.
        for (who, action) in [
            ("carol", "bulk_send_email"),
            ("alice", "edit"),
            ("ada", "unarchive"),
        ] {
            let by_ids = answered(
                c.batch_check(batch_packed(user(who), "contacts", action, &ids))
                    .await,
            );
            let mut by_handles = batch_packed(user(who), "contacts", action, &[]);
            by_handles.records = Some(pb::batch_check_request::Records::RecordHandles(
                handles.clone(),
            ));
            let by_handles = answered(c.batch_check(by_handles).await);
            assert_eq!(by_handles.allowed, by_ids.allowed, "{who} {action}");
            assert_eq!(by_handles.denials, by_ids.denials, "{who} {action}");
            assert!(by_handles.handles.is_none(), "not asked for");
        }

        let with = |h: pb::RecordHandles| {
            let mut r = batch_packed(user("carol"), "contacts", "bulk_send_email", &[]);
            r.records = Some(pb::batch_check_request::Records::RecordHandles(h));
            r
        };
        // A handle permd never gave out is an unknown record, not an error.
        let never = pb::RecordHandles {
            space: handles.space,
            ordinals: [7u32, 1 << 30, u32::MAX]
                .iter()
                .flat_map(|o| o.to_le_bytes())
                .collect(),
        };
        let r = answered(c.batch_check(with(never)).await);
        let reasons: Vec<i32> = r.denials.iter().map(|d| d.reason).collect();
        assert_eq!(r.denials.len() + r.allowed_count as usize, 3);
        assert_eq!(
            reasons
                .iter()
                .filter(|r| **r == pb::Reason::UnknownRecord as i32)
                .count(),
            2,
            "{reasons:?}"
        );
        // Malformed handles, and handles with return_* flags, are refused.
        let torn = pb::RecordHandles {
            space: handles.space,
            ordinals: vec![1, 2, 3, 4, 5],
        };
        assert_status(
            c.batch_check(with(torn)).await,
            Code::InvalidArgument,
            &["4-byte handles"],
        );
        let mut again = with(handles.clone());
        again.return_handles = true;
        assert_status(
            c.batch_check(again).await,
            Code::InvalidArgument,
            &["read the allowed bitmask"],
        );
        let mut both = with(handles.clone());
        both.return_allowed_ids = true;
        assert_status(
            c.batch_check(both).await,
            Code::InvalidArgument,
            &["read the allowed bitmask"],
        );
        // Another object's handles, and another process's (a restart), are
        // refused, never read as other records.
        let mut deals = with(handles.clone());
        deals.object = "deals".to_owned();
        deals.action = "view".to_owned();
        deals.context = None;
        assert_status(
            c.batch_check(deals).await,
            Code::FailedPrecondition,
            &["return_handles"],
        );
        let (_restarted, mut other) = TestServer::with_client(demo_engine()).await;
        assert_status(
            other.batch_check(with(handles.clone())).await,
            Code::FailedPrecondition,
            &[
                "another permd's",
                "'contacts' of tenant 'demo'",
                "return_handles",
            ],
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_check_returns_allowed_ids_as_sent() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let id = contact_id(1);
        // Every spelling Uuid::try_parse accepts, so every one is answered.
        let sent = vec![
            id.to_string().to_uppercase(),
            id.simple().to_string(),
            id.braced().to_string(),
            id.urn().to_string(),
            id.to_string(),
        ];
        let mut req = batch_strings(user("ada"), "contacts", "view", sent.clone());
        req.return_allowed_ids = true;
        let resp = answered(c.batch_check(req).await);
        assert_eq!(resp.allowed_count, 5, "every spelling is the same record");
        // RecordAccess echoes each id as sent ...
        let ra = record_access(user("ada"), "contacts", sent.clone());
        let ra = answered(c.record_access(ra).await);
        let echoed: Vec<String> = ra.records.into_iter().map(|r| r.record_id).collect();
        assert_eq!(echoed, sent);
        // ... and BatchCheck must too ("in the form they were sent"), or a
        // caller matching the returned ids against its own finds none.
        assert_eq!(resp.allowed_ids.unwrap().ids, sent);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_batch_limit_is_100_000() {
    bounded(async {
        let (server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        assert_eq!(server.engine.max_batch(), 100_000);
        let ids: Vec<Uuid> = (0..100_000).map(contact_id).collect();
        let q = demo_question("alice", "contacts", "view");
        for req in both_forms(batch(user("alice"), "contacts", "view", &ids)) {
            let resp = answered(c.batch_check(req).await);
            assert_batch_matches_engine(&resp, &server.engine, &q, &ids);
            assert_eq!(resp.allowed.len(), 12_500);
        }
        let mut over = ids;
        over.push(contact_id(100_000));
        for req in both_forms(batch(user("alice"), "contacts", "view", &over)) {
            let res = c.batch_check(req).await;
            assert_status(res, Code::InvalidArgument, &["100001", "limit of 100000"]);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_get_the_engine_answer() {
    bounded(async {
        let server = TestServer::start(shared_demo_engine()).await;
        let shared = server.client().await;
        let mut tasks = Vec::new();
        for k in 0..24u64 {
            let (who, action) = [
                ("alice", "view"),
                ("alice", "edit"),
                ("carol", "bulk_send_email"),
                ("erin", "archive"),
            ][(k % 4) as usize];
            // Half share one HTTP/2 connection, half open their own.
            let mut c = if k % 2 == 0 {
                shared.clone()
            } else {
                server.client().await
            };
            let engine = server.engine.clone();
            tasks.push(tokio::spawn(async move {
                let ids: Vec<Uuid> = (k * 97..k * 97 + 2_000).map(contact_id).collect();
                let req = batch_packed(user(who), "contacts", action, &ids);
                let resp = answered(c.batch_check(req).await);
                let q = demo_question(who, "contacts", action);
                assert_batch_matches_engine(&resp, &engine, &q, &ids);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_abandoning_a_stream_leaves_the_server_healthy() {
    bounded(async {
        let (server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        for _ in 0..5 {
            let req = lookup_pages(user("alice"), "contacts", "view", 1);
            let mut stream = c.lookup_records(req).await.unwrap().into_inner();
            stream.message().await.unwrap().expect("a first page");
            drop(stream);
        }
        let req = lookup(user("carol"), "contacts", "bulk_send_email");
        let pages = collect_lookup(&mut c, req).await;
        assert_eq!(pages.concat(), carol_bulk_email_lookup(&server.engine));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_check_carol_bulk_email_reasons_per_position() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let ids = mixed_ids();
        let req = batch(user("carol"), "contacts", "bulk_send_email", &ids);
        let resp = answered(c.batch_check(req).await);
        let at = now();
        let denials = denials_by_position(&resp);
        let mut kinds = HashSet::new();
        for (i, id) in ids.iter().enumerate() {
            let want = carol_bulk_email_reason(*id, at);
            kinds.insert(want);
            assert_eq!(bit(&resp.allowed, i), want.is_none(), "position {i} ({id})");
            assert_eq!(
                denials.get(&(i as u32)).copied(),
                want.map(|r| r as i32),
                "position {i} ({id})"
            );
        }
        for r in [
            None,
            Some(Reason::UnknownRecord),
            Some(Reason::Archived),
            Some(Reason::NoEmail),
            Some(Reason::Suppressed),
            Some(Reason::Unsubscribed),
        ] {
            assert!(kinds.contains(&r), "the sample covers {r:?}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_check_packed_ids() {
    bounded(async {
        let (server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let ids = mixed_ids();
        for (who, action) in [("alice", "edit"), ("carol", "bulk_send_email")] {
            let mut req = batch_packed(user(who), "contacts", action, &ids);
            req.return_allowed_ids = true;
            let resp = answered(c.batch_check(req).await);
            let q = demo_question(who, "contacts", action);
            assert_batch_matches_engine(&resp, &server.engine, &q, &ids);
            // Allowed ids come back packed, in request order.
            let got = unpack(&resp.allowed_packed_ids.as_ref().expect("packed ids").uuids);
            assert_eq!(got, allowed_of(&ids, &resp.allowed));
            assert!(resp.allowed_ids.is_none(), "not in string form");
            // Same answer as with string ids.
            let as_strings = answered(
                c.batch_check(batch(user(who), "contacts", action, &ids))
                    .await,
            );
            assert_eq!(as_strings.allowed, resp.allowed);
            assert_eq!(as_strings.denials, resp.denials);
            assert_eq!(as_strings.allowed_count, resp.allowed_count);
            assert_eq!(as_strings.field_mask, resp.field_mask);
        }
        // Packed ids are big-endian RFC 4122 bytes: contact 1 by hand.
        let mut bytes = vec![0u8; 16];
        bytes[0] = 0xc0;
        bytes[6] = 0x40;
        bytes[8] = 0x80;
        bytes[15] = 0x01;
        let mut req = batch_bytes(user("ada"), "contacts", "view", bytes);
        req.return_allowed_ids = true;
        let resp = answered(c.batch_check(req).await);
        assert_eq!(resp.allowed_count, 1, "{resp:?}");
        assert_eq!(
            unpack(&resp.allowed_packed_ids.unwrap().uuids),
            vec![contact_id(1)]
        );
        // An empty batch is an empty answer.
        let empty = batch_packed(user("alice"), "contacts", "view", &[]);
        let resp = answered(c.batch_check(empty).await);
        assert_eq!(resp.allowed_count, 0);
        assert!(resp.allowed.is_empty() && resp.denials.is_empty());
    })
    .await;
}

/// `packed_denials` gives the entries of `denials` as two arrays: the
/// same positions and reasons, nothing in `denials`; without it, nothing
/// packed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_denials_are_the_denials() {
    bounded(async {
        let (server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let mut ids = mixed_ids();
        ids.push(Uuid::from_u128(0x5eed));
        let mut kinds = std::collections::BTreeSet::new();
        for (who, action) in [
            ("alice", "edit"),
            ("carol", "bulk_send_email"),
            ("carol", "bulk_send_text"),
            ("ada", "view"),
        ] {
            let plain = answered(
                c.batch_check(batch_packed(user(who), "contacts", action, &ids))
                    .await,
            );
            assert!(plain.packed_denials.is_none());
            let mut req = batch_packed(user(who), "contacts", action, &ids);
            req.packed_denials = true;
            let packed = answered(c.batch_check(req).await);
            assert!(packed.denials.is_empty(), "{who} {action}: not both forms");
            let p = packed.packed_denials.as_ref().expect("packed denials");
            assert_eq!(p.positions.len(), 4 * p.reasons.len());
            let unpacked: Vec<pb::Denial> = p
                .positions
                .chunks_exact(4)
                .zip(&p.reasons)
                .map(|(at, reason)| pb::Denial {
                    position: u32::from_le_bytes(at.try_into().unwrap()),
                    reason: i32::from(*reason),
                })
                .collect();
            assert_eq!(unpacked, plain.denials, "{who} {action}");
            assert_eq!(
                (&packed.allowed, packed.allowed_count, &packed.field_mask),
                (&plain.allowed, plain.allowed_count, &plain.field_mask)
            );
            kinds.extend(unpacked.iter().map(|d| reason_name(d.reason)));
            let q = demo_question(who, "contacts", action);
            assert_batch_matches_engine(&plain, &server.engine, &q, &ids);
        }
        assert!(
            kinds.contains("UNKNOWN_RECORD") && kinds.len() >= 3,
            "{kinds:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_record_ids_are_denied_never_allowed() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        // Random ids, ids of other objects, a contact id past the last, the
        // nil UUID: unknown on contacts even to the admin.
        let mut ids: Vec<Uuid> = (0..50u128)
            .map(|i| Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 | i))
            .collect();
        ids.extend([
            company_id(0),
            deal_id(0),
            contact_id(DEMO_CONTACTS),
            Uuid::nil(),
        ]);
        for (who, action) in [
            ("ada", "view"),
            ("ada", "unarchive"),
            ("alice", "view"),
            ("carol", "bulk_send_email"),
        ] {
            for req in both_forms(batch(user(who), "contacts", action, &ids)) {
                let resp = answered(c.batch_check(req).await);
                assert_eq!(resp.allowed_count, 0);
                assert!(resp.allowed.iter().all(|b| *b == 0));
                assert_eq!(resp.denials.len(), ids.len());
                for (i, d) in resp.denials.iter().enumerate() {
                    assert_eq!(d.position, i as u32);
                    assert_eq!(reason_name(d.reason), "UNKNOWN_RECORD", "{who} {action}");
                }
            }
            let one = answered(
                c.check(check(user(who), "contacts", action, company_id(0)))
                    .await,
            );
            assert!(!one.allowed);
            assert_eq!(reason_name(one.reason), "UNKNOWN_RECORD");
        }
        // A company id is known on companies.
        let company = batch(user("ada"), "companies", "view", &[company_id(0)]);
        let resp = answered(c.batch_check(company).await);
        assert_eq!(resp.allowed_count, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ids_are_answered_per_position() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let live = first_contact(false);
        let archived = first_contact(true);
        let ids = [
            live, live, archived, live, archived, archived, live, live, live,
        ];
        for mut req in both_forms(batch(user("alice"), "contacts", "view", &ids)) {
            req.return_allowed_ids = true;
            let string_form = matches!(
                req.records,
                Some(pb::batch_check_request::Records::RecordIds(_))
            );
            let resp = answered(c.batch_check(req).await);
            // positions 0,1,3,6,7,8 allowed; 2,4,5 archived.
            assert_eq!(resp.allowed, vec![0b1100_1011, 0b0000_0001]);
            assert_eq!(resp.allowed_count, 6);
            let denials: Vec<(u32, &str)> = resp
                .denials
                .iter()
                .map(|d| (d.position, reason_name(d.reason)))
                .collect();
            assert_eq!(
                denials,
                vec![(2, "ARCHIVED"), (4, "ARCHIVED"), (5, "ARCHIVED")]
            );
            if string_form {
                assert_eq!(resp.allowed_ids.unwrap().ids, strings(&[live; 6]));
            } else {
                assert_eq!(
                    unpack(&resp.allowed_packed_ids.unwrap().uuids),
                    vec![live; 6]
                );
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_send_email_for_ten_thousand_contacts_matches_the_engine() {
    bounded(async {
        let (server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let ids = demo_contacts(10_000);
        let q = demo_question("carol", "contacts", "bulk_send_email");
        for req in both_forms(batch(user("carol"), "contacts", "bulk_send_email", &ids)) {
            let resp = answered(c.batch_check(req).await);
            assert_batch_matches_engine(&resp, &server.engine, &q, &ids);
            assert_eq!(resp.allowed.len(), 1250);
            assert!(resp.allowed_count > 0);
            // And every position is what docs/model.md says for carol.
            let at = now();
            let denials = denials_by_position(&resp);
            for (i, id) in ids.iter().enumerate() {
                let want = carol_bulk_email_reason(*id, at).map(|r| r as i32);
                assert_eq!(denials.get(&(i as u32)).copied(), want, "position {i}");
            }
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// LookupRecords
// ---------------------------------------------------------------------------

async fn collect_lookup(
    c: &mut AuthorizerClient<Channel>,
    req: pb::LookupRecordsRequest,
) -> Vec<Vec<Uuid>> {
    let packed_form = req.packed;
    let mut stream = c.lookup_records(req).await.unwrap().into_inner();
    let mut pages = Vec::new();
    while let Some(m) = stream.message().await.unwrap() {
        assert_eq!(m.revision, 1);
        let page = if packed_form {
            assert!(m.record_ids.is_none(), "packed request gets packed ids");
            unpack(&m.packed_record_ids.expect("packed ids").uuids)
        } else {
            assert!(m.packed_record_ids.is_none(), "string request gets strings");
            parse_all(&m.record_ids.expect("string ids").ids)
        };
        pages.push(page);
    }
    pages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_records_equals_what_batch_check_allows() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let all = demo_contacts(DEMO_CONTACTS);
        for (kind, who, action) in [
            (pb::principal::Kind::User, "alice", "view"),
            (pb::principal::Kind::User, "alice", "edit"),
            (pb::principal::Kind::User, "carol", "bulk_send_email"),
            (pb::principal::Kind::User, "dave", "view"),
            (
                pb::principal::Kind::Integration,
                "warehouse-sync",
                "bulk_export",
            ),
            (
                pb::principal::Kind::Automation,
                "welcome-series",
                "bulk_send_email",
            ),
        ] {
            let mut req = batch(principal(kind, who), "contacts", action, &all);
            req.return_allowed_ids = true;
            let answer = answered(c.batch_check(req).await);
            let allowed = parse_all(&answer.allowed_ids.unwrap().ids);
            let allowed_set: HashSet<Uuid> = allowed.iter().copied().collect();
            for (page_size, packed_form) in [(0u32, false), (997, false), (1000, true), (1, true)] {
                if page_size == 1 && allowed.len() > 3000 {
                    continue; // one message per id: keep it to the small sets
                }
                let mut req = lookup_pages(principal(kind, who), "contacts", action, page_size);
                req.packed = packed_form;
                let pages = collect_lookup(&mut c, req).await;
                let effective = if page_size == 0 {
                    10_000
                } else {
                    page_size as usize
                };
                let (last, full) = pages.split_last().expect("at least one page");
                assert!(full.iter().all(|p| p.len() == effective), "full pages");
                assert!(!last.is_empty() && last.len() <= effective, "last page");
                let ids: Vec<Uuid> = pages.into_iter().flatten().collect();
                let set: HashSet<Uuid> = ids.iter().copied().collect();
                assert_eq!(set.len(), ids.len(), "no id twice");
                assert_eq!(
                    set, allowed_set,
                    "{who} {action} page {page_size}: lookup == batch allowed"
                );
            }
        }
        // An action nobody may perform streams nothing (and ends cleanly).
        let req = lookup(user("dave"), "contacts", "bulk_send_email");
        let pages = collect_lookup(&mut c, req).await;
        assert!(pages.is_empty(), "{pages:?}");
        // page_size is bounded.
        let res = c.lookup_records(lookup_pages(user("alice"), "contacts", "view", 100_001));
        assert_status(res.await, Code::InvalidArgument, &["page_size", "100000"]);
    })
    .await;
}

// ---------------------------------------------------------------------------
// ObjectAccess, RecordAccess, Explain
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_access_one_and_all() {
    bounded(async {
        let (server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let req = |who: &str, object: &str| object_access(user(who), object);
        let sorted_objects = |r: &pb::ObjectAccessResponse| -> Vec<String> {
            let mut objects: Vec<String> = r.objects.iter().map(|o| o.object.clone()).collect();
            objects.sort();
            objects
        };
        for (who, visible) in [
            ("ada", vec!["contacts", "companies", "deals"]),
            ("alice", vec!["contacts", "companies", "deals"]),
            ("carol", vec!["contacts"]),
            ("dave", vec!["contacts", "companies"]),
        ] {
            let all = answered(c.object_access(req(who, "")).await);
            let mut want: Vec<String> = visible.iter().map(|s| (*s).to_owned()).collect();
            want.sort();
            assert_eq!(sorted_objects(&all), want, "{who}: visible objects");
            assert_eq!(all.revision, 1);
            assert_eq!(all.create_objects, who == "ada");
            // The engine agrees, flag for flag.
            let who_ref = PrincipalRef {
                kind: PrincipalKind::User,
                id: who.to_owned(),
            };
            let (flags, create, rev) = server
                .engine
                .object_access(DEMO_TENANT, &who_ref, None, 0)
                .unwrap();
            assert_eq!((create, rev), (all.create_objects, all.revision));
            assert_eq!(flags.len(), all.objects.len());
            for (f, o) in flags.iter().zip(&all.objects) {
                assert_eq!(f.object, o.object);
                assert_eq!(
                    (
                        f.view,
                        f.edit,
                        f.remove,
                        f.create_record,
                        f.bulk_data_upload,
                        f.unarchive
                    ),
                    (
                        o.view,
                        o.edit,
                        o.remove,
                        o.create_record,
                        o.bulk_data_upload,
                        o.unarchive
                    )
                );
                let names = |a: &[permd::model::Action]| -> Vec<String> {
                    a.iter().map(|a| a.as_str().to_owned()).collect()
                };
                assert_eq!(names(&f.single_actions), o.single_actions);
                assert_eq!(names(&f.bulk_actions), o.bulk_actions);
                assert_eq!(engine_mask(&f.field_mask), wire_mask(o.field_mask.as_ref()));
            }
            // One object at a time gives the same flags.
            for o in &all.objects {
                let one = answered(c.object_access(req(who, &o.object)).await);
                assert_eq!(one.objects, vec![o.clone()], "{who} {}", o.object);
            }
        }
        // carol: marketing on contacts.
        let one = answered(c.object_access(req("carol", "contacts")).await);
        let contacts = &one.objects[0];
        assert!(contacts.view);
        assert!(!contacts.create_record, "marketing cannot create contacts");
        assert!(!contacts.bulk_data_upload && !contacts.unarchive);
        for a in ["bulk_send_email", "bulk_export", "bulk_send_survey"] {
            assert!(contacts.bulk_actions.iter().any(|b| b == a), "{a}");
        }
        assert!(contacts.single_actions.iter().any(|s| s == "export"));
        assert!(
            contacts.bulk_actions.iter().all(|a| a.starts_with("bulk_"))
                && contacts
                    .single_actions
                    .iter()
                    .all(|a| !a.starts_with("bulk_"))
        );
        assert!(!contacts.bulk_actions.iter().any(|a| a == "bulk_send_text"));
        // The controls on deals (R16): sales has create_record and
        // unarchive_associated, deal-desk adds bulk_data_upload; `upload` is
        // not an action toggle.
        for (who, want) in [("alice", (true, false, true)), ("erin", (true, true, true))] {
            let one = answered(c.object_access(req(who, "deals")).await);
            let deals = &one.objects[0];
            let flags = (deals.create_record, deals.bulk_data_upload, deals.unarchive);
            assert_eq!(
                flags, want,
                "{who}: create_record, bulk_data_upload, unarchive"
            );
            let mut listed = deals.single_actions.iter().chain(&deals.bulk_actions);
            assert!(!listed.any(|a| a == "upload"), "{who}: {deals:?}");
        }
        // An object the principal cannot see is not listed.
        let hidden = answered(c.object_access(req("carol", "deals")).await);
        assert!(hidden.objects.is_empty(), "{hidden:?}");
        // Every principal kind; an integration acts as its user.
        let sync = principal(pb::principal::Kind::Integration, "warehouse-sync");
        let sync = answered(c.object_access(object_access(sync, "")).await);
        assert_eq!(sorted_objects(&sync), vec!["companies", "contacts"]);
        let bot = answered(c.object_access(req("warehouse-bot", "")).await);
        assert_eq!(sync, bot, "an integration acts as its user");
        let automation = principal(pb::principal::Kind::Automation, "welcome-series");
        let automation = answered(c.object_access(object_access(automation, "")).await);
        let carol = answered(c.object_access(req("carol", "")).await);
        assert_eq!(automation, carol, "an automation acts as its user");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_access_matches_batch_check() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let ids = mixed_ids();
        for who in ["alice", "erin", "dave", "carol", "ada"] {
            let req = pb::RecordAccessRequest {
                min_revision: 1,
                ..record_access(user(who), "contacts", strings(&ids))
            };
            let resp = answered(c.record_access(req).await);
            assert_eq!(resp.revision, 1);
            assert_eq!(resp.records.len(), ids.len());
            let mut flags = [None, None, None, None];
            let actions = ["view", "edit", "archive", "unarchive"];
            for (k, action) in actions.into_iter().enumerate() {
                let req = batch(user(who), "contacts", action, &ids);
                flags[k] = Some(answered(c.batch_check(req).await));
            }
            let [view, edit, archive, unarchive] = flags.map(Option::unwrap);
            let view_mask = wire_mask(view.field_mask.as_ref());
            for (i, r) in resp.records.iter().enumerate() {
                assert_eq!(r.record_id, ids[i].to_string(), "echoes the id, in order");
                assert_eq!(r.view, bit(&view.allowed, i), "{who} view {i}");
                assert_eq!(r.edit, bit(&edit.allowed, i), "{who} edit {i}");
                assert_eq!(r.remove, bit(&archive.allowed, i), "{who} remove {i}");
                let unarchived = bit(&unarchive.allowed, i);
                assert_eq!(r.unarchive, unarchived, "{who} unarchive {i}");
                let mask = r.field_mask.as_ref().map(|m| m.fields.len()).unwrap_or(0);
                if r.view {
                    assert_eq!(wire_mask(r.field_mask.as_ref()), view_mask);
                } else {
                    assert_eq!(mask, 0, "no mask for a record that cannot be viewed");
                }
            }
        }
        // A missing record and a forbidden one look alike.
        let forbidden = first_contact(true);
        let alice = |ids: Vec<String>| record_access(user("alice"), "contacts", ids);
        let resp = answered(
            c.record_access(alice(strings(&[forbidden, company_id(1)])))
                .await,
        );
        let strip = |r: &pb::RecordFlags| {
            (
                r.view,
                r.edit,
                r.remove,
                r.unarchive,
                r.field_mask.clone().unwrap_or_default(),
            )
        };
        assert_eq!(strip(&resp.records[0]), strip(&resp.records[1]));
        // Malformed ids name the position.
        let malformed = vec![contact_id(0).to_string(), "nope".to_owned()];
        assert_status(
            c.record_access(alice(malformed)).await,
            Code::InvalidArgument,
            &["record_ids[1]", "nope", "UUID"],
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_agrees_with_check() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let email = || {
            Some(pb::ActionContext {
                channel: pb::Channel::Email as i32,
                ..Default::default()
            })
        };
        let sync = || principal(pb::principal::Kind::Integration, "warehouse-sync");
        /// Principal, object, action, record id, context.
        type Case = (
            Option<pb::Principal>,
            &'static str,
            &'static str,
            String,
            Option<pb::ActionContext>,
        );
        let mut cases: Vec<Case> = Vec::new();
        for n in 0..25 {
            let id = contact_id(n).to_string();
            cases.extend([
                (user("alice"), "contacts", "edit", id.clone(), None),
                (
                    user("carol"),
                    "contacts",
                    "bulk_send_email",
                    id.clone(),
                    None,
                ),
                (
                    user("dave"),
                    "contacts",
                    "send_single_message",
                    id.clone(),
                    email(),
                ),
                (sync(), "contacts", "bulk_export", id, None),
            ]);
        }
        cases.extend([
            (
                user("alice"),
                "contacts",
                "view",
                company_id(2).to_string(),
                None,
            ),
            (user("carol"), "deals", "view", deal_id(2).to_string(), None),
            (user("alice"), "contacts", "create", String::new(), None),
            (user("carol"), "contacts", "create", String::new(), None),
            (user("erin"), "deals", "upload", String::new(), None),
        ]);
        let mut reasons = HashSet::new();
        for (who, object, action, id, ctx) in cases {
            let asked = pb::CheckRequest {
                context: ctx,
                ..check(who.clone(), object, action, &id)
            };
            let ex = pb::ExplainRequest {
                min_revision: 1,
                ..explain_of(asked.clone())
            };
            let chk = answered(c.check(asked).await);
            let ex = answered(c.explain(ex).await);
            let what = format!("{who:?} {action} {object} {id}");
            assert_eq!(ex.allowed, chk.allowed, "{what}");
            assert_eq!(ex.reason, chk.reason, "{what}");
            assert_eq!(ex.revision, chk.revision);
            assert!(!ex.steps.is_empty(), "{what}: steps present");
            assert!(
                ex.steps
                    .iter()
                    .all(|s| !s.layer.is_empty() && !s.detail.is_empty()),
                "{what}: every step names its layer and says why"
            );
            reasons.insert(ex.reason);
            // Failed steps carry a reason; passed ones do not. The first
            // failure is the final reason (reasons are in layer order).
            for s in &ex.steps {
                assert_eq!(s.passed, s.reason == 0, "{what}: {s:?}");
            }
            match ex.steps.iter().find(|s| !s.passed) {
                None => assert!(ex.allowed, "{what}: no failing step but denied"),
                Some(first) => assert_eq!(first.reason, ex.reason, "{what}: {:?}", ex.steps),
            }
            if who == user("erin") {
                assert!(
                    ex.groups.iter().any(|g| g == "deal-desk"),
                    "{:?}",
                    ex.groups
                );
            }
        }
        assert!(
            reasons.len() >= 5,
            "the cases cover several reasons: {reasons:?}"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------
// Health and reflection
// ---------------------------------------------------------------------------

// Reflection v1 and v1alpha are the same messages in two packages, so what
// both tests do is written once as macros over the package name.

/// A reflection stream of `server` (package `$api`) that was sent one
/// request per message.
macro_rules! reflection_stream {
    ($api:ident, $server:expr, [$($message:expr),+ $(,)?]) => {{
        use tonic_reflection::pb::$api::ServerReflectionRequest;
        use tonic_reflection::pb::$api::server_reflection_client::ServerReflectionClient;
        let requests = vec![$(ServerReflectionRequest {
            host: String::new(),
            message_request: Some($message),
        }),+];
        ServerReflectionClient::new($server.channel().await)
            .server_reflection_info(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner()
    }};
}

/// The next answer on a reflection stream (package `$api`) lists the
/// Authorizer and Health; returns every name listed.
macro_rules! assert_lists_the_authorizer {
    ($api:ident, $stream:expr) => {{
        use tonic_reflection::pb::$api::server_reflection_response::MessageResponse;
        let first = $stream.message().await.unwrap().expect("a list response");
        let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
            panic!("not a list: {first:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for service in ["permd.v1.Authorizer", "grpc.health.v1.Health"] {
            assert!(names.iter().any(|n| n == service), "{names:?}");
        }
        names
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    bounded(async {
        let server = TestServer::start(shared_demo_engine()).await;
        let mut h = HealthClient::new(server.channel().await);
        let ask = |service: &str| HealthCheckRequest {
            service: service.to_owned(),
        };
        for service in ["", "permd.v1.Authorizer"] {
            let resp = h.check(ask(service)).await.unwrap().into_inner();
            assert_eq!(
                resp.status,
                ServingStatus::Serving as i32,
                "service {service:?}"
            );
        }
        assert_status(h.check(ask("permd.v1.Nope")).await, Code::NotFound, &[]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_lists_the_authorizer() {
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    bounded(async {
        let server = TestServer::start(shared_demo_engine()).await;
        let mut stream = reflection_stream!(
            v1,
            server,
            [
                MessageRequest::ListServices(String::new()),
                MessageRequest::FileContainingSymbol("permd.v1.Authorizer".to_owned()),
            ]
        );
        assert_lists_the_authorizer!(v1, stream);
        let second = stream.message().await.unwrap().expect("a file response");
        let Some(MessageResponse::FileDescriptorResponse(files)) = second.message_response else {
            panic!("not a file: {second:?}");
        };
        let has = |needle: &[u8]| {
            files
                .file_descriptor_proto
                .iter()
                .any(|f| f.windows(needle.len()).any(|w| w == needle))
        };
        assert!(has(b"permd/v1/authorizer.proto"));
        assert!(has(b"BatchCheck"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_lists_the_authorizer() {
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    bounded(async {
        let server = TestServer::start(shared_demo_engine()).await;
        let list = MessageRequest::ListServices(String::new());
        let mut stream = reflection_stream!(v1alpha, server, [list]);
        let names = assert_lists_the_authorizer!(v1alpha, stream);
        assert!(
            !names.iter().any(|n| n == "permd.v1.Admin"),
            "Admin is off: {names:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_admin_only_when_it_is_served() {
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    bounded(async {
        let server = TestServer::builder(demo_engine())
            .admin("reflection-admin-token-0123", None)
            .start()
            .await;
        let list = MessageRequest::ListServices(String::new());
        let mut stream = reflection_stream!(v1, server, [list]);
        let names = assert_lists_the_authorizer!(v1, stream);
        assert!(names.iter().any(|n| n == "permd.v1.Admin"), "{names:?}");
    })
    .await;
}

// ---------------------------------------------------------------------------
// Bad input: exact codes and messages that say what to fix
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_uuids_name_the_position() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let alice = |ids: Vec<String>| batch_strings(user("alice"), "contacts", "view", ids);
        let mut ids = strings(&demo_contacts(5));
        ids[2] = "c0000000-0000-4000-8000-00000000000g".to_owned();
        assert_status(
            c.batch_check(alice(ids)).await,
            Code::InvalidArgument,
            &[
                "record_ids.ids[2]",
                "c0000000-0000-4000-8000-00000000000g",
                "UUID",
            ],
        );
        let mut ids = strings(&demo_contacts(5));
        ids[4] = String::new();
        assert_status(
            c.batch_check(alice(ids)).await,
            Code::InvalidArgument,
            &["record_ids.ids[4]"],
        );
        assert_status(
            c.check(check(user("alice"), "contacts", "view", "not-a-uuid"))
                .await,
            Code::InvalidArgument,
            &["record_id", "not-a-uuid"],
        );
        assert_status(
            c.explain(explain_of(check(
                user("alice"),
                "contacts",
                "view",
                "12345",
            )))
            .await,
            Code::InvalidArgument,
            &["record_id", "12345"],
        );
        // A very long bad id is quoted, but not whole.
        let long = "x".repeat(10_000);
        let err = c.batch_check(alice(vec![long])).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("record_ids.ids[0]"));
        assert!(
            err.message().len() < 500,
            "message is {} bytes",
            err.message().len()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_ids_must_be_whole_uuids() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        for len in [1usize, 15, 17, 33] {
            let req = batch_bytes(user("alice"), "contacts", "view", vec![0xc0; len]);
            assert_status(
                c.batch_check(req).await,
                Code::InvalidArgument,
                &["packed_record_ids", &len.to_string(), "16"],
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenant_and_principals_are_not_found() {
    use pb::principal::Kind;
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let req = AnyRequest {
            tenant: "no-such-tenant".to_owned(),
            ..AnyRequest::demo(user("alice"))
        };
        let needles = ["tenant", "no-such-tenant"];
        req.assert_refused(&mut c, &EVERY_RPC, Code::NotFound, &needles)
            .await;
        for (kind, id, word) in [
            (Kind::User, "zed", "user"),
            (Kind::Unspecified, "zed", "user"),
            (Kind::Integration, "no-such-integration", "integration"),
            (Kind::Automation, "no-such-automation", "automation"),
            // Ids exist, but as another kind.
            (Kind::Integration, "alice", "integration"),
            (Kind::Automation, "carol", "automation"),
            (Kind::User, "warehouse-sync", "user"),
        ] {
            let req = AnyRequest::demo(principal(kind, id));
            req.assert_refused(&mut c, &EVERY_RPC, Code::NotFound, &[word, id, "demo"])
                .await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tenant_or_principal_is_invalid() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let no_tenant = AnyRequest {
            tenant: String::new(),
            ..AnyRequest::demo(user("alice"))
        };
        let kind_42 = Some(pb::Principal {
            kind: 42,
            id: "alice".to_owned(),
        });
        let cases: [(AnyRequest, &[&str]); 4] = [
            (no_tenant, &["tenant"]),
            (AnyRequest::demo(None), &["principal"]),
            (AnyRequest::demo(user("")), &["principal.id"]),
            (
                AnyRequest::demo(kind_42),
                &["principal.kind", "42", "USER", "INTEGRATION", "AUTOMATION"],
            ),
        ];
        for (req, needles) in cases {
            req.assert_refused(&mut c, &EVERY_RPC, Code::InvalidArgument, needles)
                .await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_action_and_object_list_the_valid_ones() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let alice = || AnyRequest::demo(user("alice"));
        let mut fax = vec!["bulk_send_fax"];
        fax.extend(permd::model::Action::ALL.map(permd::model::Action::as_str));
        let cases: [(AnyRequest, &[&str], &[&str]); 4] = [
            (alice().on("contacts", "bulk_send_fax"), &ACTION_RPCS, &fax),
            // v1's action, retired in v2 (choice 18): the message says what
            // replaced it.
            (
                alice().on("contacts", "view_archived"),
                &ACTION_RPCS,
                &["view_archived", "retired", "unarchive"],
            ),
            (
                alice().on("tickets", "view"),
                &EVERY_RPC,
                &["tickets", "contacts", "companies", "deals"],
            ),
            // A Contacts-only action on another object.
            (
                alice().on("deals", "bulk_send_email"),
                &ACTION_RPCS,
                &["bulk_send_email", "contacts", "deals"],
            ),
        ];
        for (req, rpcs, needles) in cases {
            req.assert_refused(&mut c, rpcs, Code::InvalidArgument, needles)
                .await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_context_is_invalid() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let id = contact_id(3).to_string();
        let with = |who: &str, object: &str, action: &str, id: &str, ctx| pb::CheckRequest {
            context: Some(ctx),
            ..check(user(who), object, action, id)
        };
        let channel = |channel: i32| pb::ActionContext {
            channel,
            ..Default::default()
        };
        // send_single_message without a channel.
        assert_status(
            c.check(check(user("dave"), "contacts", "send_single_message", &id))
                .await,
            Code::InvalidArgument,
            &["send_single_message", "channel", "EMAIL", "TEXT"],
        );
        let req = batch(
            user("dave"),
            "contacts",
            "send_single_message",
            &[contact_id(3)],
        );
        assert_status(
            c.batch_check(req).await,
            Code::InvalidArgument,
            &["send_single_message", "channel"],
        );
        assert_status(
            c.lookup_records(lookup(user("dave"), "contacts", "send_single_message"))
                .await,
            Code::InvalidArgument,
            &["channel"],
        );
        // ... and with one it is answered.
        for ch in [pb::Channel::Email, pb::Channel::Text] {
            let req = with(
                "dave",
                "contacts",
                "send_single_message",
                &id,
                channel(ch as i32),
            );
            answered(c.check(req).await);
        }
        let subscribed = pb::ActionContext {
            target_email_status: "subscribed".to_owned(),
            ..Default::default()
        };
        let unknown_field = pb::ActionContext {
            fields: vec!["first_name".to_owned(), "shoe_size".to_owned()],
            ..Default::default()
        };
        let deal = deal_id(1).to_string();
        let refused: [(pb::CheckRequest, &[&str]); 5] = [
            (
                with("dave", "contacts", "send_single_message", &id, channel(9)),
                &["context.channel", "9"],
            ),
            (
                with(
                    "dave",
                    "contacts",
                    "bulk_manage_subscription",
                    &id,
                    subscribed,
                ),
                &["target_email_status", "subscribed", "opted_in"],
            ),
            (
                check(user("carol"), "contacts", "bulk_manage_subscription", &id),
                &["target_email_status"],
            ),
            (
                check(user("alice"), "deals", "bulk_change_field_values", &deal),
                &["context.fields"],
            ),
            (
                with("alice", "contacts", "edit", &id, unknown_field),
                &["shoe_size", "first_name"],
            ),
        ];
        for (req, needles) in refused {
            assert_status(c.check(req).await, Code::InvalidArgument, needles);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_the_limit_are_refused_naming_it() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(small_batch_engine()).await;
        let ten = demo_contacts(10);
        let eleven = demo_contacts(11);
        // At the limit: answered.
        let [strings_form, packed_form] =
            both_forms(batch(user("alice"), "contacts", "view", &ten));
        let resp = answered(c.batch_check(strings_form).await);
        assert_eq!(resp.allowed.len(), 2);
        answered(c.batch_check(packed_form).await);
        // Over it: refused, naming the limit.
        for req in both_forms(batch(user("alice"), "contacts", "view", &eleven)) {
            assert_status(
                c.batch_check(req).await,
                Code::InvalidArgument,
                &["11", "limit of 10"],
            );
        }
        let ra = |ids: &[Uuid]| record_access(user("alice"), "contacts", strings(ids));
        answered(c.record_access(ra(&ten)).await);
        assert_status(
            c.record_access(ra(&eleven)).await,
            Code::InvalidArgument,
            &["11", "limit of 10"],
        );
        // LookupRecords is not bounded by max_batch: it streams pages.
        let pages = collect_lookup(&mut c, lookup(user("alice"), "contacts", "view")).await;
        assert!(pages.iter().map(Vec::len).sum::<usize>() > 10);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_tenant_without_email_or_sms() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(small_batch_engine()).await;
        let ids = [
            acme_id(1),
            acme_id(2),
            acme_id(3),
            acme_id(4),
            contact_id(1),
        ];
        let mut req = batch(user("zoe"), "contacts", "bulk_send_email", &ids);
        req.tenant = "acme".to_owned();
        for (action, gate, contact) in [
            ("bulk_send_email", "EMAIL_NOT_CONFIGURED", "NO_EMAIL"),
            ("bulk_send_text", "SMS_NOT_CONFIGURED", "NO_MOBILE"),
        ] {
            req.action = action.to_owned();
            let resp = answered(c.batch_check(req.clone()).await);
            let reasons: Vec<&str> = resp.denials.iter().map(|d| reason_name(d.reason)).collect();
            assert_eq!(
                reasons,
                vec![
                    gate,
                    contact,
                    "ARCHIVED",
                    "UNKNOWN_RECORD",
                    "UNKNOWN_RECORD"
                ]
            );
        }
        // Tenants are separate: zoe is unknown in demo, alice in acme.
        let mut req = check(user("zoe"), "contacts", "view", acme_id(1));
        assert_status(c.check(req.clone()).await, Code::NotFound, &["zoe", "demo"]);
        req.tenant = "acme".to_owned();
        req.principal = user("alice");
        assert_status(c.check(req).await, Code::NotFound, &["alice", "acme"]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_revision_above_current_is_failed_precondition() {
    bounded(async {
        let (_server, mut c) = TestServer::with_client(shared_demo_engine()).await;
        let mut req = AnyRequest::demo(user("alice"));
        req.min_revision = 7;
        let needles = ["revision 1", "min_revision 7"];
        req.assert_refused(&mut c, &EVERY_RPC, Code::FailedPrecondition, &needles)
            .await;
        // At or below the current revision: answered.
        for rev in [0, 1] {
            req.min_revision = rev;
            for rpc in EVERY_RPC {
                let res = req.send(&mut c, rpc).await;
                res.unwrap_or_else(|e| panic!("{rpc} at min_revision {rev}: {e}"));
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_size_limit_are_refused() {
    bounded(async {
        let server = TestServer::builder(shared_demo_engine())
            .max_message_bytes(64 * 1024)
            .start()
            .await;
        let mut c = server.client().await;
        let alice_views = |n| batch(user("alice"), "contacts", "view", &demo_contacts(n));
        // 5,000 string ids are ~190 KB.
        let err = c.batch_check(alice_views(5_000)).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert!(
            err.message().contains("65536") && err.message().contains("max_message_bytes"),
            "names the limit and its setting: {}",
            err.message()
        );
        // Small requests still work on the same server.
        answered(c.batch_check(alice_views(100)).await);
    })
    .await;
}

// ---------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_and_returns() {
    bounded(async {
        let mut server = TestServer::start(shared_demo_engine()).await;
        let mut c = server.client().await;
        answered(
            c.check(check(user("alice"), "contacts", "view", contact_id(1)))
                .await,
        );
        // An in-flight stream: one id per message.
        let want = carol_bulk_email_lookup(&server.engine);
        let req = lookup_pages(user("carol"), "contacts", "bulk_send_email", 1);
        let mut stream = c.lookup_records(req).await.unwrap().into_inner();
        let first = stream.message().await.unwrap().expect("a first page");
        let mut got = vec![first.record_ids.unwrap().ids[0].clone()];

        server.begin_shutdown();
        // The in-flight stream is drained, not cut.
        while let Some(m) = stream.message().await.unwrap() {
            got.extend(m.record_ids.unwrap().ids);
        }
        assert_eq!(
            got,
            strings(&want),
            "the stream finished after shutdown began"
        );
        drop(stream);
        drop(c);
        // serve returns once the shutdown future resolved and RPCs drained.
        let served = server.stopped(Duration::from_secs(15)).await;
        served.expect("serve returns Ok");
        // Nothing listens any more.
        let refused = Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await;
        assert!(refused.is_err(), "the listener is closed");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_no_traffic_returns_promptly() {
    bounded(async {
        let mut server = TestServer::start(shared_demo_engine()).await;
        server.begin_shutdown();
        let served = server.stopped(Duration::from_secs(5)).await;
        served.unwrap();
    })
    .await;
}
