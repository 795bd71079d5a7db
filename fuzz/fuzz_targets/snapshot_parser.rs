//! Snapshot files: any text, read as YAML and as JSON by
//! `permd::source::parse_str`. A file that passes validation is indexed
//! (`Snapshot::build`) and asked a few questions. Nothing may panic, and the
//! engine's answers must agree with one another:
//!
//! - BatchCheck: `allowed_count + denials == n`, a bitmask of `ceil(n / 8)`
//!   bytes with exactly the allowed positions set, denials in request order;
//! - Check of one record gives the reason BatchCheck gave its position;
//! - LookupRecords lists exactly the records of the object BatchCheck allows;
//! - Explain ends with Check's answer;
//! - RecordAccess `view` is BatchCheck `view`, `edit`/`remove` imply `view`.

#![no_main]

use std::collections::HashSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use permd::index::{
    BatchAnswer, DEFAULT_MAX_BATCH, Engine, PrincipalKind, PrincipalRef, Question, Snapshot,
};
use permd::model::data::{DataFile, Tenant};
use permd::model::validate::{object_fields, tenant_objects};
use permd::model::{Action, ActionContext, Channel, EmailStatus, Reason};
use time::OffsetDateTime;
use uuid::Uuid;

/// Questions asked per (tenant, principal, object); bounded so one input
/// stays fast.
const MAX_TENANTS: usize = 3;
const MAX_PRINCIPALS: usize = 4;
const MAX_OBJECTS: usize = 4;
/// Positions of a batch compared one by one against Check.
const MAX_SINGLE_CHECKS: usize = 12;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for json in [false, true] {
        match permd::source::parse_str(text, json, Path::new("fuzz.yaml")) {
            Ok((file, _warnings)) => {
                if verbose() {
                    eprintln!("json={json}: valid, {} tenant(s)", file.tenants.len());
                }
                exercise(&file);
            }
            Err(e) if verbose() => eprintln!("json={json}: {e}"),
            Err(_) => {}
        }
    }
});

/// `PERMD_FUZZ_VERBOSE=1` prints what each input parsed to (for checking
/// seeds: `cargo fuzz run snapshot_parser fuzz/seeds/snapshot_parser -- -runs=0`).
fn verbose() -> bool {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("PERMD_FUZZ_VERBOSE").is_some())
}

/// A fixed instant: after the demo's expired soft bounces, before the rest.
fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn exercise(file: &DataFile) {
    let snapshot = Snapshot::build(file, 1);
    assert_eq!(
        snapshot.tenants.len(),
        file.tenants.len(),
        "validated tenant ids are unique, one index each"
    );
    let engine = Engine::new(snapshot, DEFAULT_MAX_BATCH);
    for tenant in file.tenants.iter().take(MAX_TENANTS) {
        exercise_tenant(&engine, tenant);
    }
    // A tenant that is not there.
    let nobody = PrincipalRef {
        kind: PrincipalKind::User,
        id: "nobody".to_owned(),
    };
    assert!(
        engine
            .object_access("no such tenant", &nobody, None, 0)
            .is_err()
    );
}

fn principals(tenant: &Tenant) -> Vec<PrincipalRef> {
    let user = |u: &permd::model::data::User| PrincipalRef {
        kind: PrincipalKind::User,
        id: u.id.clone(),
    };
    let mut out: Vec<PrincipalRef> = tenant.users.iter().take(MAX_PRINCIPALS).map(user).collect();
    out.extend(tenant.integrations.iter().take(2).map(|i| PrincipalRef {
        kind: PrincipalKind::Integration,
        id: i.id.clone(),
    }));
    out.extend(tenant.automations.iter().take(2).map(|a| PrincipalRef {
        kind: PrincipalKind::Automation,
        id: a.id.clone(),
    }));
    // Unknown: must be refused, not panic.
    out.push(PrincipalRef {
        kind: PrincipalKind::Integration,
        id: "\u{0}no-such-principal".to_owned(),
    });
    out
}

/// A handful of (action, context) pairs that reach every gate: plain scope,
/// archived records, email (with and without a list), SMS, subscriptions,
/// field-level needs, and a record-less action.
fn questions(tenant: &Tenant, fields: &[String]) -> Vec<(Action, ActionContext)> {
    let list = tenant
        .records
        .iter()
        .filter_map(|r| r.contact.as_ref())
        .flat_map(|c| c.opted_out_lists.first())
        .next()
        .cloned()
        .unwrap_or_else(|| "newsletter".to_owned());
    let ctx = ActionContext::default;
    vec![
        (Action::View, ctx()),
        (
            Action::Edit,
            ActionContext {
                fields: fields.iter().take(2).cloned().collect(),
                ..ctx()
            },
        ),
        (Action::Archive, ctx()),
        (Action::Unarchive, ctx()),
        (Action::Upload, ctx()),
        (Action::Create, ctx()),
        (
            Action::BulkSendEmail,
            ActionContext {
                subscription_list: Some(list),
                ..ctx()
            },
        ),
        (
            Action::SendSingleMessage,
            ActionContext {
                channel: Some(Channel::Email),
                transactional: true,
                ..ctx()
            },
        ),
        (Action::BulkSendText, ctx()),
        (
            Action::BulkManageSubscription,
            ActionContext {
                target_email_status: Some(EmailStatus::OptedIn),
                ..ctx()
            },
        ),
        (
            Action::SubscriptionLists,
            ActionContext {
                target_email_status: Some(EmailStatus::Suppressed),
                ..ctx()
            },
        ),
    ]
}

fn exercise_tenant(engine: &Engine, tenant: &Tenant) {
    let now = now();
    // Every record id of the tenant (any object), then two unknown ones.
    let mut ids: Vec<Uuid> = tenant.records.iter().map(|r| r.id).collect();
    ids.push(Uuid::nil());
    ids.push(Uuid::max());
    let objects = tenant_objects(tenant);
    let mut object_names: Vec<String> = objects
        .iter()
        .take(MAX_OBJECTS)
        .map(|o| o.name.clone())
        .collect();
    object_names.push("no-such-object".to_owned());
    for principal in principals(tenant) {
        let access = engine.object_access(&tenant.id, &principal, None, 0);
        if let Ok((flags, _, revision)) = &access {
            assert_eq!(*revision, 1);
            assert!(flags.len() <= objects.len());
        }
        for object in &object_names {
            let fields = objects
                .iter()
                .find(|o| &o.name == object)
                .map(object_fields)
                .unwrap_or_default();
            let _ = engine.object_access(&tenant.id, &principal, Some(object), 0);
            let mut view_answer = None;
            for (action, ctx) in questions(tenant, &fields) {
                let q = Question {
                    tenant: tenant.id.clone(),
                    principal: principal.clone(),
                    object: object.clone(),
                    action: action.as_str().to_owned(),
                    ctx,
                    min_revision: 0,
                };
                let answer = ask(engine, tenant, &q, &ids, now);
                if action == Action::View {
                    view_answer = answer;
                }
            }
            let flags = engine.record_access(&tenant.id, &principal, object, &ids, 0, now);
            match (&flags, &view_answer) {
                (Ok((flags, _)), Some(view)) => {
                    assert_eq!(flags.len(), ids.len());
                    for (i, f) in flags.iter().enumerate() {
                        assert_eq!(f.record_id, ids[i]);
                        assert_eq!(
                            f.view,
                            view.is_allowed(i),
                            "RecordAccess view vs BatchCheck view at {i}"
                        );
                        assert!(!f.edit || f.view, "edit without view");
                        assert!(!f.remove || f.view, "remove without view");
                        assert!(f.view || f.field_mask.is_empty());
                        // Only archived records unarchive; they never view (R10).
                        assert!(!(f.unarchive && f.view), "unarchive and view at {i}");
                    }
                }
                (Ok(_), None) => panic!("RecordAccess answered where BatchCheck view did not"),
                (Err(_), Some(_)) => panic!("BatchCheck view answered where RecordAccess did not"),
                (Err(_), None) => {}
            }
        }
    }
}

/// Asks one question every way the engine can be asked it; checks that the
/// answers agree. Returns the BatchCheck answer, if any.
fn ask(
    engine: &Engine,
    tenant: &Tenant,
    q: &Question,
    ids: &[Uuid],
    now: OffsetDateTime,
) -> Option<BatchAnswer> {
    let batch = engine.batch_check(q, ids, now);
    let lookup = engine.lookup(q, now);
    if let Ok(b) = &batch {
        check_batch_shape(b, ids.len());
    }
    match (&batch, &lookup) {
        (Ok(b), Ok((found, revision))) => {
            assert_eq!(*revision, b.revision);
            let found_set: HashSet<Uuid> = found.iter().copied().collect();
            assert_eq!(found_set.len(), found.len(), "LookupRecords repeats an id");
            let allowed: HashSet<Uuid> = ids
                .iter()
                .enumerate()
                .filter(|(i, _)| b.is_allowed(*i))
                .map(|(_, id)| *id)
                .collect();
            // Every id of the object is in the batch, so both sides are the
            // full allowed set of the object.
            assert_eq!(found_set, allowed, "LookupRecords vs BatchCheck");
            let of_object: HashSet<Uuid> = tenant
                .records
                .iter()
                .filter(|r| r.object == q.object)
                .map(|r| r.id)
                .collect();
            assert!(
                found_set.is_subset(&of_object),
                "LookupRecords returned another object's record"
            );
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "BatchCheck and LookupRecords refuse differently"),
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => {
            panic!("only one of BatchCheck / LookupRecords refused: {e}")
        }
    }

    // One record at a time agrees with the batch.
    let mut singles: Vec<usize> = (0..ids.len()).take(MAX_SINGLE_CHECKS).collect();
    singles.extend(ids.len().saturating_sub(2)..ids.len());
    for i in singles {
        let id = ids[i];
        let single = engine.check(q, Some(id), now);
        match (&batch, &single) {
            (Ok(b), Ok(d)) => {
                let batch_reason = b
                    .denials
                    .iter()
                    .find(|(p, _)| *p as usize == i)
                    .map(|(_, r)| *r);
                assert_eq!(
                    d.reason, batch_reason,
                    "Check vs BatchCheck at position {i} ({id})"
                );
                // The batch's one mask is for its allowed positions; a
                // denied Check shows no field (R7).
                match d.reason {
                    None => assert_eq!(d.field_mask, b.field_mask),
                    Some(_) => assert!(d.field_mask.is_empty(), "mask on a denied Check"),
                }
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => {
                panic!("only one of BatchCheck / Check refused: {e}")
            }
        }
        if let Ok(d) = &single {
            let explained = engine.explain(q, Some(id), now);
            match explained {
                Ok(e) => assert_eq!(e.reason, d.reason, "Explain vs Check"),
                Err(e) => panic!("Check answered, Explain refused: {e}"),
            }
        }
    }
    // Record-less form of the question.
    let none = engine.check(q, None, now);
    if let Ok(d) = &none {
        let _ = engine.explain(q, None, now);
        assert!(d.reason != Some(Reason::UnknownRecord));
    }
    batch.ok()
}

fn check_batch_shape(b: &BatchAnswer, n: usize) {
    assert_eq!(
        b.allowed_count as usize + b.denials.len(),
        n,
        "allowed_count + denials != n"
    );
    assert_eq!(b.allowed.len(), n.div_ceil(8), "bitmask length");
    let set: usize = b.allowed.iter().map(|w| w.count_ones() as usize).sum();
    assert_eq!(
        set, b.allowed_count as usize,
        "bitmask popcount != allowed_count"
    );
    let mut last = None;
    for (p, _) in &b.denials {
        assert!((*p as usize) < n, "denial position out of range");
        assert!(last < Some(*p), "denials out of order");
        assert!(
            !b.is_allowed(*p as usize),
            "position both allowed and denied"
        );
        last = Some(*p);
    }
}
