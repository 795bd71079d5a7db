//! Deny by default: one named test per way a request can ask about something
//! permd does not know, or on behalf of a principal that was granted nothing
//! — and what must come back. Request-shape problems (an unknown action,
//! object, field or principal kind) are refused with a message that names
//! them, in-process and over gRPC with the exact status code; questions that
//! are well formed but reach nothing are answered with the exact first
//! reason of docs/model.md, through BatchCheck, Check, LookupRecords,
//! RecordAccess, ObjectAccess and Explain alike.
//!
//! The data is inline (`DATA`): users are named for what they lack (`nemo`
//! has no roles and no groups, `hollow` only empty groups, `bulky` every
//! bulk toggle but the least scope and no control…), and most of them are
//! *associated* with records (owner, team field, interaction), so
//! association alone is shown to grant nothing. What v1 could write to
//! grant nothing — a group naming an object with no scope, an integration
//! of its own with no groups — is refused in v2, never read as some access
//! (`settings_that_would_grant_nothing_are_refused_not_read`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use common::requests::{
    ACTION_RPCS, AnyRequest, EVERY_RPC, answered, batch, check, principal_ref, question,
    reasons_by_position,
};
use common::server::{TestServer, bounded};
use permd::index::explain::Explanation;
use permd::index::{Engine, PrincipalKind, QueryError, Question, Snapshot};
use permd::model::Reason::{self, *};
use permd::model::{Action, ActionContext, Channel, EmailStatus, FieldLevel};
use permd::pb::{self, authorizer_client::AuthorizerClient};
use permd::source::parse_str;
use time::OffsetDateTime;
use time::macros::datetime;
use tonic::Code;
use tonic::transport::Channel as GrpcChannel;
use uuid::Uuid;

// ----------------------------------------------------------------- data ---

const NOW: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);

const DATA: &str = r#"
tenants:
  - id: acme
    email_configured: true
    sms_configured: true
    objects:
      - name: contacts
        fields: [first_name]
        team_fields: [sales_team]
      - name: deals
        fields: [stage, amount]
        team_fields: [deal_team]
    groups:
      # Remove on every record, every control, every toggle, every field at
      # the highest level it can have.
      - id: everything
        objects:
          contacts:
            view_object: true
            all_records: remove
            associated_records: remove
            create_record: true
            bulk_data_upload: true
            unarchive_associated: true
            unarchive_all: true
            actions: [export, modify_automation, send_single_message,
                      team_associations, subscription_lists, view_timeline,
                      bulk_export, bulk_archive, bulk_change_field_values,
                      bulk_modify_automation, bulk_send_email, bulk_send_text,
                      bulk_send_survey, bulk_change_tags, bulk_manage_subscription]
            default_for_new_field: edit
          deals:
            view_object: true
            all_records: remove
            associated_records: remove
            create_record: true
            bulk_data_upload: true
            unarchive_associated: true
            unarchive_all: true
            actions: [export, modify_automation, bulk_export, bulk_archive,
                      bulk_change_field_values, bulk_modify_automation]
            default_for_new_field: edit
      # Edit (not remove) on every Contact, every toggle, no unarchive control.
      - id: editors
        objects:
          contacts:
            view_object: true
            all_records: edit
            associated_records: edit
            actions: [export, modify_automation, send_single_message,
                      team_associations, subscription_lists, view_timeline,
                      bulk_export, bulk_archive, bulk_change_field_values,
                      bulk_modify_automation, bulk_send_email, bulk_send_text,
                      bulk_send_survey, bulk_change_tags, bulk_manage_subscription]
            default_for_new_field: edit
      # Exists, grants nothing.
      - id: empty
      # The objects are visible and every toggle is on, but only the least
      # scope a group can give (My Associated Records: view, R5), and no
      # control.
      - id: bulk-least-scope
        objects:
          contacts:
            view_object: true
            associated_records: view
            actions: [export, modify_automation, send_single_message,
                      team_associations, subscription_lists, view_timeline,
                      bulk_export, bulk_archive, bulk_change_field_values,
                      bulk_modify_automation, bulk_send_email, bulk_send_text,
                      bulk_send_survey, bulk_change_tags, bulk_manage_subscription]
            default_for_new_field: edit
          deals:
            view_object: true
            associated_records: view
            actions: [export, modify_automation, bulk_export, bulk_archive,
                      bulk_change_field_values, bulk_modify_automation]
            default_for_new_field: edit
      # My Associated Records: view, and every toggle.
      - id: associated-view-all-toggles
        objects:
          contacts:
            view_object: true
            associated_records: view
            actions: [export, modify_automation, send_single_message,
                      team_associations, subscription_lists, view_timeline,
                      bulk_export, bulk_archive, bulk_change_field_values,
                      bulk_modify_automation, bulk_send_email, bulk_send_text,
                      bulk_send_survey, bulk_change_tags, bulk_manage_subscription]
            default_for_new_field: edit
    roles:
      - {id: role-without-groups, groups: []}
      - {id: empty-role, groups: [empty]}
    users:
      - {id: root, admin: true}
      # Admins whose outgoing email is off: the sender gate (R13).
      - {id: root-unplugged, admin: true, email_inbox: not_connected}
      - {id: root-blocked, admin: true, email_inbox: blocked}
      - {id: ed, groups: [everything]}
      - {id: editor, groups: [editors]}
      - {id: nemo}
      - {id: rolling, roles: [role-without-groups]}
      - {id: hollow, roles: [empty-role], groups: [empty]}
      - {id: bulky, groups: [bulk-least-scope]}
      - {id: assoc, groups: [associated-view-all-toggles]}
    integrations:
      # API keys of users granted nothing: an integration acts as its user.
      - {id: bare-key, user: nemo}
      - {id: empty-key, user: hollow}
    automations:
      - {id: bare-auto, run_as: {integration: bare-key}}
      - {id: nemo-auto, run_as: {user: nemo}}
    records:
      - id: c0000000-0000-4000-8000-000000000001
        object: contacts
        teams: {sales_team: [nemo, rolling, hollow, assoc]}
        interactions: [nemo, rolling, hollow, assoc]
        contact: {email: fine@example.com, email_status: opted_in, mobile_phone: "+15550000001"}
      - id: c0000000-0000-4000-8000-000000000002
        object: contacts
        contact: {email: fine2@example.com, email_status: opted_in, mobile_phone: "+15550000002"}
      - id: c0000000-0000-4000-8000-000000000003
        object: contacts
        archived: true
        teams: {sales_team: [nemo, assoc, bulky]}
        contact: {email: old@example.com, email_status: opted_in, mobile_phone: "+15550000003"}
      - id: c0000000-0000-4000-8000-000000000004
        object: contacts
        contact: {email_status: opted_in, mobile_phone: "+15550000004"}
      - id: c0000000-0000-4000-8000-000000000005
        object: contacts
        contact: {email: gone@example.com, email_status: opted_in, suppressed: true, mobile_phone: "+15550000005"}
      - id: c0000000-0000-4000-8000-000000000006
        object: contacts
        contact: {email: unsub@example.com, email_status: unsubscribed_all, mobile_phone: "+15550000006"}
      - id: c0000000-0000-4000-8000-000000000007
        object: contacts
        contact: {email: list@example.com, email_status: opted_in, opted_out_lists: [newsletter], mobile_phone: "+15550000007"}
      - id: c0000000-0000-4000-8000-000000000008
        object: contacts
        contact: {email: nomobile@example.com, email_status: opted_in}
      - id: c0000000-0000-4000-8000-000000000009
        object: contacts
        contact: {email: smsout@example.com, email_status: opted_in, mobile_phone: "+15550000009", sms_opted_out: true}
      - id: c0000000-0000-4000-8000-00000000000a
        object: contacts
        contact: {email: bounced@example.com, email_valid: false, email_status: opted_in, mobile_phone: "+1555000000a"}
      - id: d0000000-0000-4000-8000-000000000001
        object: deals
        owner: nemo
        teams: {deal_team: [hollow]}
      - id: d0000000-0000-4000-8000-000000000002
        object: deals
        archived: true
        owner: bulky

  # No email integration, no SMS: the tenant-level gates, for an admin.
  - id: quiet
    groups: []
    users:
      - {id: root, admin: true}
    records:
      - id: c1000000-0000-4000-8000-000000000001
        object: contacts
        contact: {email: q@example.com, email_status: opted_in, mobile_phone: "+15550001001"}
"#;

const K_FINE: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0001);
const K_FINE2: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0002);
const K_ARCHIVED: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0003);
const K_NO_EMAIL: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0004);
const K_SUPPRESSED: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0005);
const K_UNSUBSCRIBED: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0006);
const K_LIST_OUT: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0007);
const K_NO_MOBILE: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0008);
const K_SMS_OUT: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0009);
const K_BAD_EMAIL: Uuid = Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_000a);
const D_LIVE: Uuid = Uuid::from_u128(0xd000_0000_0000_4000_8000_0000_0000_0001);
const D_ARCHIVED: Uuid = Uuid::from_u128(0xd000_0000_0000_4000_8000_0000_0000_0002);
/// The Contact of tenant `quiet`: not a record of acme.
const Q_FINE: Uuid = Uuid::from_u128(0xc100_0000_0000_4000_8000_0000_0000_0001);

const CONTACTS: [Uuid; 10] = [
    K_FINE,
    K_FINE2,
    K_ARCHIVED,
    K_NO_EMAIL,
    K_SUPPRESSED,
    K_UNSUBSCRIBED,
    K_LIST_OUT,
    K_NO_MOBILE,
    K_SMS_OUT,
    K_BAD_EMAIL,
];
const DEALS: [Uuid; 2] = [D_LIVE, D_ARCHIVED];

/// Every field of acme's objects as permissions see them.
const CONTACT_FIELDS: [&str; 8] = [
    "email",
    "email_status",
    "mobile_phone",
    "tags",
    "timezone",
    "birthday",
    "first_name",
    "sales_team",
];
/// `created` is the system field of every custom object (R7).
const DEAL_FIELDS: [&str; 4] = ["created", "stage", "amount", "deal_team"];

fn engine() -> Engine {
    let (data, warnings) = parse_str(DATA, false, Path::new("deny_by_default.yaml"))
        .unwrap_or_else(|e| panic!("test data does not load: {e}"));
    assert!(warnings.is_empty(), "unexpected warnings: {warnings:?}");
    Engine::new(Snapshot::build(&data, 1), 100_000)
}

fn records_of(object: &str) -> &'static [Uuid] {
    match object {
        "contacts" => &CONTACTS,
        "deals" => &DEALS,
        other => panic!("no object {other}"),
    }
}

/// Ids that are not records of `object` in acme: never synced, the nil and
/// max UUIDs, a record of the other object, and a record of tenant `quiet`.
fn not_synced(object: &str) -> Vec<Uuid> {
    let other = if object == "contacts" { D_LIVE } else { K_FINE };
    vec![
        Uuid::from_u128(0x0bad_0000_0000_4000_8000_0000_0000_0001),
        Uuid::nil(),
        Uuid::max(),
        other,
        Q_FINE,
    ]
}

// ------------------------------------------------------------ questions ---

/// A question on tenant acme.
fn ask(kind: PrincipalKind, who: &str, object: &str, action: &str) -> Question {
    question("acme", kind, who, object, action)
}

fn user(who: &str, object: &str, action: &str) -> Question {
    ask(PrincipalKind::User, who, object, action)
}

/// The smallest context that makes `action` a valid request on `object`.
fn valid_ctx(object: &str, action: Action) -> ActionContext {
    let mut ctx = ActionContext::default();
    match action {
        Action::SendSingleMessage => ctx.channel = Some(Channel::Email),
        Action::BulkManageSubscription => ctx.target_email_status = Some(EmailStatus::OptedIn),
        Action::BulkChangeFieldValues => {
            let field = if object == "contacts" {
                "first_name"
            } else {
                "stage"
            };
            ctx.fields = vec![field.to_owned()];
        }
        _ => {}
    }
    ctx
}

/// A valid question for each action that takes records on `object`.
fn record_questions(kind: PrincipalKind, who: &str, object: &str) -> Vec<(Action, Question)> {
    Action::ALL
        .into_iter()
        .filter(|a| !a.is_record_less())
        .filter(|a| object == "contacts" || !a.contacts_only())
        .map(|a| {
            let mut q = ask(kind, who, object, a.as_str());
            q.ctx = valid_ctx(object, a);
            (a, q)
        })
        .collect()
}

/// The Explain layer that reports each reason (of a record action).
fn layer_of(r: Reason) -> &'static str {
    match r {
        UnknownRecord => "record",
        ObjectNotVisible => "visibility",
        Archived | NotArchived => "archived",
        NoRecordAccess => "scope",
        ActionNotPermitted => "toggle",
        FieldRestricted => "field",
        _ => "gate",
    }
}

// -------------------------------------------------------------- answers ---

/// Asks `q` about `ids` through BatchCheck, Check, Explain and
/// LookupRecords, asserts all four agree position by position, and returns
/// the reasons (None = allowed).
#[track_caller]
fn answers(e: &Engine, q: &Question, ids: &[Uuid]) -> Vec<Option<Reason>> {
    let answer = e
        .batch_check(q, ids, NOW)
        .unwrap_or_else(|err| panic!("{q:?}: {err}"));
    assert_eq!(
        answer.allowed.len(),
        ids.len().div_ceil(8),
        "bitmask length"
    );
    let out = reasons_by_position(&answer, ids.len());
    let (found, _) = e.lookup(q, NOW).unwrap();
    for (id, r) in ids.iter().zip(&out) {
        let single = e.check(q, Some(*id), NOW).unwrap();
        assert_eq!(single.reason, *r, "{q:?}: Check vs BatchCheck on {id}");
        // Check shows the object's mask only on a record it allows (R7).
        if r.is_none() {
            assert_eq!(single.field_mask, answer.field_mask, "Check mask");
        } else {
            assert!(single.field_mask.is_empty(), "{q:?}: mask of a denied {id}");
        }
        assert_eq!(
            found.contains(id),
            r.is_none(),
            "{q:?}: LookupRecords vs BatchCheck on {id}"
        );
        let x = e.explain(q, Some(*id), NOW).unwrap();
        assert_explains(&x, *r, &format!("{q:?} on {id}"));
    }
    out
}

/// BatchCheck, Check, LookupRecords and Explain of K_FINE all refuse `q`
/// with `want`.
#[track_caller]
fn assert_every_query_refused(e: &Engine, q: &Question, want: &QueryError) {
    let batch = e.batch_check(q, &[K_FINE], NOW).unwrap_err();
    assert_eq!(&batch, want, "BatchCheck");
    assert_eq!(&e.check(q, Some(K_FINE), NOW).unwrap_err(), want, "Check");
    assert_eq!(&e.lookup(q, NOW).unwrap_err(), want, "LookupRecords");
    let explain = e.explain(q, Some(K_FINE), NOW).unwrap_err();
    assert_eq!(&explain, want, "Explain");
}

/// Explain's answer is `want`, and its first failing layer is the one that
/// reports that reason.
#[track_caller]
fn assert_explains(x: &Explanation, want: Option<Reason>, what: &str) {
    assert_eq!(x.reason, want, "Explain of {what}");
    let first = x.steps.iter().find(|s| !s.passed);
    match want {
        None => assert!(first.is_none(), "{what}: allowed, yet a step failed: {x:?}"),
        Some(r) => {
            let first = first.unwrap_or_else(|| panic!("{what}: no failing step: {x:?}"));
            assert_eq!(
                first.reason,
                Some(r),
                "{what}: first failing step {first:?}"
            );
            assert_eq!(first.layer, layer_of(r), "{what}: layer of {r:?}");
        }
    }
}

/// Every record action on `object` by the principal is denied `reason` on
/// every record of the object; unknown ids stay UNKNOWN_RECORD.
#[track_caller]
fn assert_every_record_action_denied(
    e: &Engine,
    kind: PrincipalKind,
    who: &str,
    object: &str,
    reason_of: impl Fn(Action, Uuid) -> Reason,
) {
    let known = records_of(object);
    let mut ids: Vec<Uuid> = known.to_vec();
    let unknown = not_synced(object)[0];
    ids.push(unknown);
    for (action, q) in record_questions(kind, who, object) {
        let got = answers(e, &q, &ids);
        for (id, got) in ids.iter().zip(&got) {
            let want = if *id == unknown {
                UnknownRecord
            } else {
                reason_of(action, *id)
            };
            assert_eq!(
                *got,
                Some(want),
                "{kind:?} {who}: {} on {object} record {id}",
                action.as_str()
            );
        }
        assert!(
            e.lookup(&q, NOW).unwrap().0.is_empty(),
            "{who}: LookupRecords {} on {object} found records",
            action.as_str()
        );
    }
}

fn hidden_mask(fields: &[&str]) -> Vec<(String, FieldLevel)> {
    let mut m: Vec<(String, FieldLevel)> = fields
        .iter()
        .map(|f| ((*f).to_owned(), FieldLevel::None))
        .collect();
    m.sort();
    m
}

fn sorted_mask(mut m: Vec<(String, FieldLevel)>) -> Vec<(String, FieldLevel)> {
    m.sort();
    m
}

/// The principal reaches nothing at all: every record action on every object
/// is OBJECT_NOT_VISIBLE, `create` and `upload` too; BatchCheck's mask is
/// `none` on every field and a denied Check shows none; ObjectAccess lists
/// nothing, RecordAccess flags nothing.
#[track_caller]
fn assert_granted_nothing(e: &Engine, kind: PrincipalKind, who: &str) {
    for (object, fields) in [
        ("contacts", &CONTACT_FIELDS[..]),
        ("deals", &DEAL_FIELDS[..]),
    ] {
        assert_every_record_action_denied(e, kind, who, object, |_, _| ObjectNotVisible);
        let q = ask(kind, who, object, "view");
        let a = e.batch_check(&q, records_of(object), NOW).unwrap();
        assert_eq!(a.allowed_count, 0);
        assert_eq!(
            sorted_mask(a.field_mask),
            hidden_mask(fields),
            "{who}: field mask on {object}"
        );
        for action in ["create", "upload"] {
            let q = ask(kind, who, object, action);
            let d = e.check(&q, None, NOW).unwrap();
            assert_eq!(d.reason, Some(ObjectNotVisible), "{who}: {action} {object}");
            assert!(d.field_mask.is_empty(), "{who}: {action} {object} mask");
            assert_explains(
                &e.explain(&q, None, NOW).unwrap(),
                Some(ObjectNotVisible),
                &format!("{who} {action} {object}"),
            );
        }
        let p = principal_ref(kind, who);
        let (one, create_objects, _) = e.object_access("acme", &p, Some(object), 0).unwrap();
        assert!(one.is_empty(), "{who}: ObjectAccess({object}) = {one:?}");
        assert!(!create_objects, "{who}: create_objects");
        let mut ids = records_of(object).to_vec();
        ids.extend(not_synced(object));
        let (flags, _) = e.record_access("acme", &p, object, &ids, 0, NOW).unwrap();
        assert_eq!(flags.len(), ids.len());
        for (f, id) in flags.iter().zip(&ids) {
            assert_eq!(f.record_id, *id);
            assert!(
                !f.view && !f.edit && !f.remove && !f.unarchive && f.field_mask.is_empty(),
                "{who}: RecordAccess on {object} {id}: {f:?}"
            );
        }
    }
    let p = principal_ref(kind, who);
    let (all, create_objects, _) = e.object_access("acme", &p, None, 0).unwrap();
    assert!(all.is_empty(), "{who}: ObjectAccess lists {all:?}");
    assert!(!create_objects);
}

// ============================================== request-shape problems ===

#[test]
fn unknown_action_is_refused_naming_it_and_the_valid_ones() {
    let e = engine();
    let want = QueryError::UnknownAction {
        message: Action::unknown("bulk_send_fax"),
    };
    // Even an admin, even on a record that exists.
    for who in ["root", "nemo"] {
        let q = user(who, "contacts", "bulk_send_fax");
        assert_every_query_refused(&e, &q, &want);
        assert_eq!(e.check(&q, None, NOW).unwrap_err(), want);
        assert!(e.allowed_set(&q, NOW).is_err());
    }
    // Names are exact: no case folding, no trimming, no prefixes.
    for name in ["View", " view", "view ", "", "bulk_", "all", "*"] {
        let q = user("root", "contacts", name);
        assert_eq!(
            e.batch_check(&q, &[K_FINE], NOW).unwrap_err(),
            QueryError::UnknownAction {
                message: Action::unknown(name),
            },
            "action {name:?}"
        );
    }
    // v1's `view_archived` is retired (choice 18): refused, saying what
    // replaced it, even for an admin on an archived record.
    let q = user("root", "contacts", "view_archived");
    let retired = e.check(&q, Some(K_ARCHIVED), NOW).unwrap_err();
    assert_eq!(
        retired,
        QueryError::UnknownAction {
            message: Action::unknown("view_archived")
        }
    );
    let said = retired.to_string();
    assert!(
        said.contains("view_archived") && said.contains("unarchive"),
        "{said}"
    );
    assert!(e.lookup(&q, NOW).is_err() && e.batch_check(&q, &[K_ARCHIVED], NOW).is_err());
    let message = want.to_string();
    assert!(message.starts_with("unknown action 'bulk_send_fax'; actions are: "));
    for a in Action::ALL {
        assert!(
            message.contains(a.as_str()),
            "{message} lacks {}",
            a.as_str()
        );
    }
}

#[test]
fn unknown_object_is_refused_naming_it_and_the_valid_ones() {
    let e = engine();
    let want = QueryError::UnknownObject {
        object: "tickets".to_owned(),
        tenant: "acme".to_owned(),
        valid: "contacts, deals".to_owned(),
    };
    let root = principal_ref(PrincipalKind::User, "root");
    let q = user("root", "tickets", "view");
    assert_every_query_refused(&e, &q, &want);
    assert_eq!(
        e.check(&user("root", "tickets", "create"), None, NOW)
            .unwrap_err(),
        want
    );
    assert_eq!(
        e.object_access("acme", &root, Some("tickets"), 0)
            .unwrap_err(),
        want
    );
    assert_eq!(
        e.record_access("acme", &root, "tickets", &[K_FINE], 0, NOW)
            .unwrap_err(),
        want
    );
    // Exact names only.
    for name in ["Contacts", "contact", "contacts ", ""] {
        assert_eq!(
            e.batch_check(&user("root", name, "view"), &[K_FINE], NOW)
                .unwrap_err(),
            QueryError::UnknownObject {
                object: name.to_owned(),
                tenant: "acme".to_owned(),
                valid: "contacts, deals".to_owned(),
            },
            "object {name:?}"
        );
    }
    assert_eq!(
        want.to_string(),
        "unknown object 'tickets'; objects of tenant 'acme' are: contacts, deals"
    );
}

#[test]
fn unknown_field_in_context_fields_is_refused_naming_it() {
    let e = engine();
    let contact_fields = CONTACT_FIELDS.join(", ");
    // A field of no object, and a field of deals asked on contacts.
    for bad in ["shoe_size", "stage", "Email", "*", ""] {
        for action in ["edit", "bulk_change_field_values"] {
            for who in ["root", "ed", "nemo"] {
                let mut q = user(who, "contacts", action);
                q.ctx.fields = vec!["first_name".to_owned(), bad.to_owned()];
                let want = QueryError::UnknownField {
                    field: bad.to_owned(),
                    object: "contacts".to_owned(),
                    valid: contact_fields.clone(),
                };
                assert_every_query_refused(&e, &q, &want);
            }
        }
    }
    // And on deals, a Contact field.
    let mut q = user("ed", "deals", "edit");
    q.ctx.fields = vec!["email".to_owned()];
    assert_eq!(
        e.check(&q, Some(D_LIVE), NOW).unwrap_err(),
        QueryError::UnknownField {
            field: "email".to_owned(),
            object: "deals".to_owned(),
            valid: DEAL_FIELDS.join(", "),
        }
    );
    let mut q = user("ed", "contacts", "edit");
    q.ctx.fields = vec!["shoe_size".to_owned()];
    assert_eq!(
        e.check(&q, Some(K_FINE), NOW).unwrap_err().to_string(),
        format!("unknown field 'shoe_size' on contacts; fields are: {contact_fields}")
    );
}

#[test]
fn principal_of_the_wrong_or_unknown_kind_is_not_found() {
    let e = engine();
    for (kind, id) in [
        // Exists as a user only.
        (PrincipalKind::Integration, "root"),
        (PrincipalKind::Automation, "root"),
        // Exists as an integration only.
        (PrincipalKind::User, "bare-key"),
        (PrincipalKind::Automation, "bare-key"),
        // Exists as an automation only.
        (PrincipalKind::User, "nemo-auto"),
        (PrincipalKind::Integration, "nemo-auto"),
        // Exists nowhere, or only in another tenant's spelling.
        (PrincipalKind::User, "nobody"),
        (PrincipalKind::User, "Root"),
        (PrincipalKind::User, ""),
    ] {
        let want = QueryError::UnknownPrincipal {
            kind: kind.as_str(),
            id: id.to_owned(),
            tenant: "acme".to_owned(),
        };
        let q = ask(kind, id, "contacts", "view");
        let p = q.principal.clone();
        assert_every_query_refused(&e, &q, &want);
        assert_eq!(
            e.object_access("acme", &p, None, 0).unwrap_err(),
            want,
            "{kind:?} {id}"
        );
        assert_eq!(
            e.record_access("acme", &p, "contacts", &[K_FINE], 0, NOW)
                .unwrap_err(),
            want
        );
    }
}

// ============================================ archived and unsynced ids ===

#[test]
fn archived_records_are_denied_archived_for_every_action_but_unarchive() {
    let e = engine();
    // ed: remove on every record of both objects, every control, every
    // toggle, every field; root: admin. Only the archived flag can deny:
    // ARCHIVED for every action on an archived record but `unarchive`, and
    // NOT_ARCHIVED for `unarchive` on a live one (R10).
    for who in ["ed", "root"] {
        for (object, archived, live) in [
            ("contacts", K_ARCHIVED, K_FINE),
            ("deals", D_ARCHIVED, D_LIVE),
        ] {
            for (action, q) in record_questions(PrincipalKind::User, who, object) {
                let got = answers(&e, &q, &[archived, live]);
                let (want_archived, want_live) = if action == Action::Unarchive {
                    (None, Some(NotArchived))
                } else {
                    (Some(Archived), None)
                };
                assert_eq!(
                    got[0],
                    want_archived,
                    "{who}: {} on archived {object}",
                    action.as_str()
                );
                // The same action on a live record: the test can tell.
                assert_eq!(
                    got[1],
                    want_live,
                    "{who}: {} on live {object}",
                    action.as_str()
                );
            }
        }
        let p = principal_ref(PrincipalKind::User, who);
        let (flags, _) = e
            .record_access("acme", &p, "contacts", &[K_ARCHIVED, K_FINE], 0, NOW)
            .unwrap();
        assert!(
            !flags[0].view && !flags[0].edit && !flags[0].remove && flags[0].field_mask.is_empty(),
            "{who}: RecordAccess on an archived record: {:?}",
            flags[0]
        );
        assert!(flags[0].unarchive, "{who}: {:?}", flags[0]);
        assert!(flags[1].view && flags[1].edit && flags[1].remove && !flags[1].unarchive);
    }
    // `unarchive` needs an unarchive control, not a level (R10): editor has
    // none, so it is NO_RECORD_ACCESS on the archived record, while every
    // other action on it stays ARCHIVED first.
    for (action, q) in record_questions(PrincipalKind::User, "editor", "contacts") {
        let got = answers(&e, &q, &[K_ARCHIVED]);
        let want = if action == Action::Unarchive {
            NoRecordAccess
        } else {
            Archived
        };
        assert_eq!(
            got[0],
            Some(want),
            "editor: {} on archived",
            action.as_str()
        );
    }
}

#[test]
fn records_not_yet_synced_are_unknown_record_and_never_allowed() {
    let e = engine();
    for (kind, who) in [
        (PrincipalKind::User, "root"),
        (PrincipalKind::User, "ed"),
        (PrincipalKind::User, "nemo"),
        (PrincipalKind::Integration, "bare-key"),
    ] {
        for object in ["contacts", "deals"] {
            let ids = not_synced(object);
            // Twice, in case a repeated id is answered from a cache.
            let ids: Vec<Uuid> = ids.iter().chain(&ids).copied().collect();
            for (action, q) in record_questions(kind, who, object) {
                let got = answers(&e, &q, &ids);
                assert!(
                    got.iter().all(|r| *r == Some(UnknownRecord)),
                    "{who}: {} on {object}: {got:?}",
                    action.as_str()
                );
                let a = e.batch_check(&q, &ids, NOW).unwrap();
                assert_eq!(a.allowed_count, 0);
                assert!(a.allowed.iter().all(|b| *b == 0));
                let (found, _) = e.lookup(&q, NOW).unwrap();
                assert!(
                    found.iter().all(|id| records_of(object).contains(id)),
                    "LookupRecords returned a record that is not one of acme's {object}"
                );
            }
            let p = principal_ref(kind, who);
            let (flags, _) = e.record_access("acme", &p, object, &ids, 0, NOW).unwrap();
            for f in flags {
                assert!(
                    !f.view && !f.edit && !f.remove && !f.unarchive && f.field_mask.is_empty(),
                    "{who}: RecordAccess on an unsynced id: {f:?}"
                );
            }
        }
    }
    // Explain names the record and the tenant it is not a record of.
    let x = e
        .explain(&user("root", "contacts", "view"), Some(Q_FINE), NOW)
        .unwrap();
    assert_explains(&x, Some(UnknownRecord), "root view of quiet's Contact");
    assert_eq!(
        x.steps[1].detail,
        format!("{Q_FINE} is not a contacts record of tenant 'acme'")
    );
}

// ========================================= principals granted nothing ===

#[test]
fn a_user_with_no_roles_and_no_groups_is_denied_everything_object_not_visible() {
    // nemo is on K_FINE's and K_ARCHIVED's teams, interacted with K_FINE
    // and owns D_LIVE: association without any group grants nothing.
    assert_granted_nothing(&engine(), PrincipalKind::User, "nemo");
}

#[test]
fn a_role_with_no_groups_grants_nothing() {
    assert_granted_nothing(&engine(), PrincipalKind::User, "rolling");
}

#[test]
fn an_empty_group_grants_nothing() {
    // hollow: role whose only group is empty, plus `empty` itself. (v1's
    // `empty-objects`, naming both objects and setting nothing, is refused
    // in v2: see settings_that_would_grant_nothing_are_refused_not_read.)
    assert_granted_nothing(&engine(), PrincipalKind::User, "hollow");
}

#[test]
fn an_integration_of_a_user_granted_nothing_and_an_automation_running_as_it_are_denied_everything()
{
    // An integration acts as its user (R1): bare-key is nemo's key,
    // empty-key hollow's; bare-auto runs as bare-key, so as nemo.
    let e = engine();
    assert_granted_nothing(&e, PrincipalKind::Integration, "bare-key");
    assert_granted_nothing(&e, PrincipalKind::Integration, "empty-key");
    assert_granted_nothing(&e, PrincipalKind::Automation, "bare-auto");
    assert_granted_nothing(&e, PrincipalKind::Automation, "nemo-auto");
}

/// `DATA` with `edits` applied: each a YAML text replaced by another.
fn data_with(edits: &[(&str, &str)]) -> String {
    let mut data = DATA.to_owned();
    for (from, to) in edits {
        assert!(data.contains(from), "DATA has no {from:?}");
        data = data.replacen(from, to, 1);
    }
    data
}

#[test]
fn settings_that_would_grant_nothing_are_refused_not_read() {
    // v1 could grant nothing by naming an object with no scope (field
    // levels and toggles only, or nothing at all), and give an integration
    // no groups of its own. v2 has no such settings (R5, R1): each is
    // refused with what to write instead, never read as some access.
    let no_scope = "      - id: ghostly
        objects:
          contacts:
            actions: [export, bulk_export, bulk_send_email, bulk_archive, bulk_change_tags]
            default_for_new_field: edit
          deals: {}
      - id: empty
";
    /// Text replacements in DATA, and what the refusal must say.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 3] = [
        (
            &[("      - id: empty\n", no_scope)],
            &[
                "groups[2].objects.contacts.associated_records",
                "groups[2].objects.deals.associated_records",
                "tenant 'acme', group 'ghostly', object 'contacts'",
                "missing or none",
            ],
        ),
        (
            &[("{id: bare-key, user: nemo}", "{id: bare-key}")],
            &["integrations[0].user", "bare-key", "names no user"],
        ),
        (
            &[(
                "{id: empty-key, user: hollow}",
                "{id: empty-key, groups: [empty], user: hollow}",
            )],
            &[
                "integrations[1].groups",
                "empty-key",
                "give these groups to user 'hollow'",
            ],
        ),
    ];
    for (edits, needles) in cases {
        let text = data_with(edits);
        let err = parse_str(&text, false, Path::new("deny_by_default.yaml"))
            .map(|_| ())
            .expect_err("v1 settings that granted nothing are refused")
            .to_string();
        for needle in needles {
            assert!(err.contains(needle), "{edits:?}: {err}\nlacks {needle:?}");
        }
    }
}

#[test]
fn bulk_toggles_on_records_not_reached_are_denied_no_record_access_on_every_record() {
    let e = engine();
    // bulky: view_object and every toggle on both objects, every field
    // editable, the least scope a group can give (My Associated Records:
    // view) and no control; bulky is associated with K_ARCHIVED (team) and
    // D_ARCHIVED (owner) only. R4: the objects are visible, no record is
    // reached; R6: a bulk permission never widens scope; R10: association
    // with an archived record does not unarchive it without a control.
    for object in ["contacts", "deals"] {
        assert_every_record_action_denied(&e, PrincipalKind::User, "bulky", object, |a, id| {
            let archived = id == K_ARCHIVED || id == D_ARCHIVED;
            match (archived, a == Action::Unarchive) {
                (true, false) => Archived,
                (false, true) => NotArchived,
                _ => NoRecordAccess,
            }
        });
        // create and upload need their controls (R5b, choice 16).
        for action in ["create", "upload"] {
            let q = user("bulky", object, action);
            let d = e.check(&q, None, NOW).unwrap();
            assert_eq!(
                d.reason,
                Some(ActionNotPermitted),
                "bulky: {action} {object}"
            );
            assert!(d.field_mask.is_empty(), "bulky: {action} {object} mask");
            let x = e.explain(&q, None, NOW).unwrap();
            let first = x.steps.iter().find(|s| !s.passed).expect("a failing step");
            assert_eq!(
                (first.layer, first.reason),
                ("control", Some(ActionNotPermitted))
            );
        }
    }
    // ObjectAccess: the objects are visible with no control on. An action
    // is listed when its toggle is on and some scope is at its level
    // (R16): the view-level ones, though bulky reaches no record with them;
    // none that needs edit or remove.
    let p = principal_ref(PrincipalKind::User, "bulky");
    let (flags, _, _) = e.object_access("acme", &p, None, 0).unwrap();
    let names: BTreeSet<&str> = flags.iter().map(|f| f.object.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["contacts", "deals"]));
    for f in &flags {
        assert!(f.view, "{}: view_object", f.object);
        assert!(
            !f.create_record && !f.bulk_data_upload && !f.unarchive,
            "{}: controls {f:?}",
            f.object
        );
        let listed: BTreeSet<&str> = f
            .single_actions
            .iter()
            .chain(&f.bulk_actions)
            .map(|a| a.as_str())
            .collect();
        let want: BTreeSet<&str> = if f.object == "contacts" {
            BTreeSet::from([
                "export",
                "send_single_message",
                "subscription_lists",
                "view_timeline",
                "bulk_export",
                "bulk_send_email",
                "bulk_send_survey",
                "bulk_send_text",
            ])
        } else {
            BTreeSet::from(["export", "bulk_export"])
        };
        assert_eq!(listed, want, "{}: actions listed", f.object);
    }
}

#[test]
fn bulk_toggles_with_associated_view_reach_only_associated_records_at_view_level() {
    let e = engine();
    // assoc: My Associated Records view and every toggle. Associated with
    // K_FINE (team, interaction) and K_ARCHIVED (team), not K_FINE2.
    let ids = [K_FINE, K_FINE2, K_ARCHIVED];
    let view_level = [
        Action::View,
        Action::Export,
        Action::BulkExport,
        Action::BulkSendEmail,
        Action::BulkSendSurvey,
        Action::BulkSendText,
        Action::SendSingleMessage,
        Action::ViewTimeline,
        Action::SubscriptionLists,
    ];
    for (action, q) in record_questions(PrincipalKind::User, "assoc", "contacts") {
        let got = answers(&e, &q, &ids);
        let unarchive = action == Action::Unarchive;
        let on_fine = if unarchive {
            // Nothing to unarchive on a live record (R10).
            Some(NotArchived)
        } else if view_level.contains(&action) {
            None
        } else {
            // Edit- and remove-level actions, bulk or not: out of scope.
            Some(NoRecordAccess)
        };
        let on_fine2 = Some(if unarchive {
            NotArchived
        } else {
            NoRecordAccess
        });
        // Associated, but no unarchive control: unarchive is not reached.
        let on_archived = Some(if unarchive { NoRecordAccess } else { Archived });
        assert_eq!(
            got,
            vec![on_fine, on_fine2, on_archived],
            "assoc: {} on [associated, not associated, archived]",
            action.as_str()
        );
        let found: BTreeSet<Uuid> = e.lookup(&q, NOW).unwrap().0.into_iter().collect();
        let want: BTreeSet<Uuid> = if on_fine.is_none() {
            BTreeSet::from([K_FINE])
        } else {
            BTreeSet::new()
        };
        assert_eq!(found, want, "assoc: LookupRecords {}", action.as_str());
    }
}

#[test]
fn an_admin_still_passes_the_contact_gates() {
    let e = engine();
    let with = |action: &str, f: &dyn Fn(&mut ActionContext)| {
        let mut q = user("root", "contacts", action);
        f(&mut q.ctx);
        q
    };
    let marketing = |_: &mut ActionContext| {};
    let email = |c: &mut ActionContext| c.channel = Some(Channel::Email);
    let text = |c: &mut ActionContext| c.channel = Some(Channel::Text);
    let newsletter = |c: &mut ActionContext| c.subscription_list = Some("newsletter".to_owned());
    let to = |s: EmailStatus| move |c: &mut ActionContext| c.target_email_status = Some(s);
    let mail = || with("bulk_send_email", &marketing);
    let survey = || with("bulk_send_survey", &marketing);
    let texts = || with("bulk_send_text", &marketing);
    let single = |channel: &dyn Fn(&mut ActionContext)| with("send_single_message", channel);
    let lists_to = |s| with("subscription_lists", &to(s));
    let bulk_to = |s| with("bulk_manage_subscription", &to(s));
    let cases: Vec<(Question, Uuid, Option<Reason>)> = vec![
        (mail(), K_FINE, None),
        (mail(), K_NO_EMAIL, Some(NoEmail)),
        (mail(), K_BAD_EMAIL, Some(NoEmail)),
        (mail(), K_SUPPRESSED, Some(Suppressed)),
        (mail(), K_UNSUBSCRIBED, Some(Unsubscribed)),
        (
            with("bulk_send_email", &newsletter),
            K_LIST_OUT,
            Some(OptedOutOfList),
        ),
        (mail(), K_LIST_OUT, None),
        (mail(), K_ARCHIVED, Some(Archived)),
        (survey(), K_UNSUBSCRIBED, Some(Unsubscribed)),
        (single(&email), K_SUPPRESSED, Some(Suppressed)),
        (single(&email), K_NO_EMAIL, Some(NoEmail)),
        (single(&text), K_NO_MOBILE, Some(NoMobile)),
        (single(&text), K_SMS_OUT, Some(SmsOptedOut)),
        (texts(), K_FINE, None),
        (texts(), K_NO_MOBILE, Some(NoMobile)),
        (texts(), K_SMS_OUT, Some(SmsOptedOut)),
        (
            lists_to(EmailStatus::Suppressed),
            K_FINE,
            Some(SystemManaged),
        ),
        (
            lists_to(EmailStatus::OptedIn),
            K_SUPPRESSED,
            Some(SystemManaged),
        ),
        (lists_to(EmailStatus::OptedIn), K_UNSUBSCRIBED, None),
        (
            bulk_to(EmailStatus::OptedIn),
            K_UNSUBSCRIBED,
            Some(SingleRecordOnly),
        ),
        (
            bulk_to(EmailStatus::Suppressed),
            K_FINE,
            Some(SystemManaged),
        ),
    ];
    for (q, id, want) in cases {
        let got = answers(&e, &q, &[id]);
        assert_eq!(got[0], want, "admin {} {:?} on {id}", q.action, q.ctx);
    }
    // A tenant with neither email nor SMS set up.
    let quiet = |action: &str| Question {
        tenant: "quiet".to_owned(),
        ..user("root", "contacts", action)
    };
    let got = answers(&e, &quiet("bulk_send_email"), &[Q_FINE]);
    assert_eq!(got[0], Some(EmailNotConfigured));
    let got = answers(&e, &quiet("bulk_send_text"), &[Q_FINE]);
    assert_eq!(got[0], Some(SmsNotConfigured));
    let got = answers(&e, &quiet("view"), &[Q_FINE]);
    assert_eq!(got[0], None, "the admin does see quiet's Contact");
    // The sender gate (R13 steps 5 and 6) binds admins too, transactional
    // mail too; SMS has no sender gate.
    for (who, want) in [
        ("root-unplugged", EmailNotConfigured),
        ("root-blocked", SenderBlocked),
    ] {
        let as_who = |action: &str, f: &dyn Fn(&mut ActionContext)| {
            let mut q = user(who, "contacts", action);
            f(&mut q.ctx);
            q
        };
        let transactional = |c: &mut ActionContext| c.transactional = true;
        for q in [
            as_who("bulk_send_email", &marketing),
            as_who("bulk_send_email", &transactional),
            as_who("bulk_send_survey", &marketing),
            as_who("send_single_message", &email),
        ] {
            let got = answers(&e, &q, &[K_FINE, K_NO_EMAIL, K_ARCHIVED]);
            assert_eq!(
                got,
                vec![Some(want), Some(NoEmail), Some(Archived)],
                "{who} {} {:?}",
                q.action,
                q.ctx
            );
        }
        let got = answers(&e, &as_who("bulk_send_text", &marketing), &[K_FINE]);
        assert_eq!(got[0], None, "{who}: text");
    }
}

// ================================================================ gRPC ===

/// One request on tenant acme about K_FINE, to send through any RPC.
fn req(kind: i32, who: &str, object: &str, action: &str) -> AnyRequest {
    AnyRequest {
        tenant: "acme".to_owned(),
        principal: Some(pb::Principal {
            kind,
            id: who.to_owned(),
        }),
        object: object.to_owned(),
        action: action.to_owned(),
        record: K_FINE,
        ..AnyRequest::demo(None)
    }
}

/// The acme engine served, and a client of it.
async fn serve() -> (TestServer, AuthorizerClient<GrpcChannel>) {
    TestServer::with_client(Arc::new(engine())).await
}

const USER: i32 = pb::principal::Kind::User as i32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unknown_action_is_invalid_argument_naming_it() {
    bounded(async {
        let (_server, mut c) = serve().await;
        let mut fax = vec!["unknown action 'bulk_send_fax'"];
        fax.extend(Action::ALL.map(Action::as_str));
        let empty = ["unknown action ''", "view", "bulk_send_email"];
        for (who, action, needles) in [
            ("root", "bulk_send_fax", &fax[..]),
            ("nemo", "bulk_send_fax", &fax),
            ("root", "", &empty),
        ] {
            req(USER, who, "contacts", action)
                .assert_refused(&mut c, &ACTION_RPCS, Code::InvalidArgument, needles)
                .await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unknown_object_is_invalid_argument_naming_it() {
    bounded(async {
        let (_server, mut c) = serve().await;
        let needles = [
            "unknown object 'tickets'",
            "tenant 'acme'",
            "contacts, deals",
        ];
        req(USER, "root", "tickets", "view")
            .assert_refused(&mut c, &EVERY_RPC, Code::InvalidArgument, &needles)
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unknown_field_in_context_fields_is_invalid_argument_naming_it() {
    bounded(async {
        let (_server, mut c) = serve().await;
        let contact_fields = CONTACT_FIELDS.join(", ");
        for action in ["edit", "bulk_change_field_values"] {
            for bad in ["shoe_size", "stage"] {
                let mut r = req(USER, "root", "contacts", action);
                r.context = Some(pb::ActionContext {
                    fields: vec!["first_name".to_owned(), bad.to_owned()],
                    ..Default::default()
                });
                let named = format!("unknown field '{bad}' on contacts");
                let needles = [named.as_str(), &contact_fields];
                r.assert_refused(&mut c, &ACTION_RPCS, Code::InvalidArgument, &needles)
                    .await;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unknown_principal_kind_is_invalid_argument_naming_it() {
    bounded(async {
        let (_server, mut c) = serve().await;
        for (kind, shown) in [(99, "99"), (4, "4"), (-1, "-1")] {
            // An admin's id, so a kind that fell back to USER would be allowed.
            let named = format!("principal.kind {shown} is unknown");
            let needles = [named.as_str(), "USER", "INTEGRATION", "AUTOMATION"];
            req(kind, "root", "contacts", "view")
                .assert_refused(&mut c, &EVERY_RPC, Code::InvalidArgument, &needles)
                .await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unspecified_principal_kind_is_a_user_and_never_more() {
    bounded(async {
        let (_server, mut c) = serve().await;
        const UNSPECIFIED: i32 = pb::principal::Kind::Unspecified as i32;
        // KIND_UNSPECIFIED is documented (authorizer.proto) as USER: it never
        // resolves to an integration or automation of the same id ...
        for id in ["bare-key", "empty-key", "bare-auto", "nemo-auto"] {
            let named = format!("user '{id}' not found in tenant 'acme'");
            req(UNSPECIFIED, id, "contacts", "view")
                .assert_refused(&mut c, &EVERY_RPC, Code::NotFound, &[&named])
                .await;
        }
        // ... and a user asked as KIND_UNSPECIFIED gets exactly the USER answer.
        for (who, want) in [
            ("nemo", ObjectNotVisible as i32),
            ("bulky", NoRecordAccess as i32),
            ("root", 0),
        ] {
            for kind in [UNSPECIFIED, USER] {
                let who_as = Some(pb::Principal {
                    kind,
                    id: who.to_owned(),
                });
                let req = pb::CheckRequest {
                    tenant: "acme".to_owned(),
                    ..check(who_as, "contacts", "view", K_FINE)
                };
                let resp = answered(c.check(req).await);
                assert_eq!(resp.reason, want, "{who} as kind {kind}");
                assert_eq!(resp.allowed, want == 0, "{who} as kind {kind}");
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unknown_tenant_is_not_found_naming_it() {
    bounded(async {
        let (_server, mut c) = serve().await;
        for tenant in ["nope", "Acme", "acme ", "acm"] {
            let mut r = req(USER, "root", "contacts", "view");
            r.tenant = tenant.to_owned();
            let named = format!("tenant '{tenant}' not found");
            r.assert_refused(&mut c, &EVERY_RPC, Code::NotFound, &[&named])
                .await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_archived_unsynced_and_groupless_answers_carry_their_exact_reasons() {
    bounded(async {
        let (_server, mut c) = serve().await;
        let ids = [K_FINE, K_ARCHIVED, Q_FINE, Uuid::nil()];
        const UNKNOWN: i32 = UnknownRecord as i32;
        const HIDDEN: i32 = ObjectNotVisible as i32;
        let cases: [(&str, [i32; 4]); 4] = [
            ("ed", [0, Archived as i32, UNKNOWN, UNKNOWN]),
            ("nemo", [HIDDEN, HIDDEN, UNKNOWN, UNKNOWN]),
            ("hollow", [HIDDEN, HIDDEN, UNKNOWN, UNKNOWN]),
            (
                "bulky",
                [NoRecordAccess as i32, Archived as i32, UNKNOWN, UNKNOWN],
            ),
        ];
        for (who, want) in cases {
            let who_as = Some(pb::Principal {
                kind: USER,
                id: who.to_owned(),
            });
            let req = pb::BatchCheckRequest {
                tenant: "acme".to_owned(),
                ..batch(who_as, "contacts", "bulk_export", &ids)
            };
            let resp = answered(c.batch_check(req).await);
            let mut got = [0i32; 4];
            for d in &resp.denials {
                got[d.position as usize] = d.reason;
            }
            assert_eq!(got, want, "{who}: bulk_export reasons per position");
            let allowed = want.iter().filter(|r| **r == 0).count() as u32;
            assert_eq!(resp.allowed_count, allowed, "{who}: allowed_count");
        }
    })
    .await;
}
