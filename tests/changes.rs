//! Record changes applied to a live engine answer exactly as an engine
//! rebuilt from the changed data file: the incremental path may never drift
//! from a full load.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use permd::index::{
    ApplyError, Engine, PrincipalKind, PrincipalRef, Question, RecordChange, Snapshot,
};
use permd::model::data::{ContactState, DataFile, EmailStatus};
use permd::model::{ActionContext, Channel};
use permd::source::generate::{GenSpec, generate, record_ids};
use proptest::prelude::*;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

const NOW: OffsetDateTime = datetime!(2026-11-27 12:00 UTC);

fn spec() -> GenSpec {
    GenSpec {
        contacts: 300,
        users: 12,
        groups: 6,
        roles: 4,
        custom_objects: 1,
        custom_records_per_contact: 0.1,
        seed: 9,
        ..GenSpec::default()
    }
}

fn contact_state() -> impl Strategy<Value = ContactState> {
    (
        prop_oneof![
            Just(None),
            Just(Some("a@example.com".to_owned())),
            Just(Some(" ".to_owned()))
        ],
        any::<bool>(),
        prop::sample::select(EmailStatus::ALL.to_vec()),
        any::<bool>(),
        prop_oneof![
            Just(None),
            Just(Some(datetime!(2026-01-01 00:00 UTC))),
            Just(Some(datetime!(2027-01-01 00:00 UTC))),
        ],
        prop::sample::subsequence(vec!["newsletter", "events"], 0..=2),
        prop_oneof![Just(None), Just(Some("+15550001".to_owned()))],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                email,
                email_valid,
                email_status,
                suppressed,
                until,
                lists,
                mobile,
                mobile_valid,
                sms,
            )| {
                ContactState {
                    email,
                    email_valid,
                    email_status,
                    suppressed,
                    suppressed_until: until,
                    opted_out_lists: lists.into_iter().map(str::to_owned).collect(),
                    mobile_phone: mobile,
                    mobile_valid,
                    sms_opted_out: sms,
                }
            },
        )
}

fn change(contacts: usize, customs: usize) -> impl Strategy<Value = (usize, ChangeKind)> {
    prop_oneof![
        (0..contacts, contact_state()).prop_map(|(i, s)| (i, ChangeKind::State(s))),
        (0..contacts, any::<bool>()).prop_map(|(i, a)| (i, ChangeKind::ArchiveContact(a))),
        (0..customs.max(1), any::<bool>()).prop_map(|(i, a)| (i, ChangeKind::ArchiveCustom(a))),
    ]
}

#[derive(Clone, Debug)]
enum ChangeKind {
    State(ContactState),
    ArchiveContact(bool),
    ArchiveCustom(bool),
}

/// Applies the changes to the data file, the slow and obvious way.
fn apply_to_data(data: &mut DataFile, changes: &[RecordChange]) {
    let tenant = &mut data.tenants[0];
    for c in changes {
        match c {
            RecordChange::ContactState { record, state } => {
                let r = tenant.records.iter_mut().find(|r| r.id == *record).unwrap();
                r.contact = Some(state.clone());
            }
            RecordChange::Archived {
                record, archived, ..
            } => {
                let r = tenant.records.iter_mut().find(|r| r.id == *record).unwrap();
                r.archived = *archived;
            }
        }
    }
}

fn ask(
    e: &Engine,
    principal: &str,
    object: &str,
    action: &str,
    ctx: ActionContext,
    ids: &[Uuid],
) -> String {
    let q = Question {
        tenant: "bench".to_owned(),
        principal: PrincipalRef {
            kind: PrincipalKind::User,
            id: principal.to_owned(),
        },
        object: object.to_owned(),
        action: action.to_owned(),
        ctx,
        min_revision: 0,
    };
    match e.batch_check(&q, ids, NOW) {
        Ok(a) => format!("{:?} {:?}", a.allowed, a.denials),
        Err(err) => format!("error {err}"),
    }
}

fn questions() -> Vec<(&'static str, ActionContext)> {
    let email = ActionContext {
        subscription_list: Some("newsletter".to_owned()),
        ..ActionContext::default()
    };
    let text = ActionContext {
        channel: Some(Channel::Text),
        ..ActionContext::default()
    };
    let opt_in = ActionContext {
        target_email_status: Some(EmailStatus::OptedIn),
        ..ActionContext::default()
    };
    vec![
        ("view", ActionContext::default()),
        ("bulk_send_email", email),
        ("bulk_send_text", ActionContext::default()),
        ("send_single_message", text),
        ("bulk_manage_subscription", opt_in),
        ("view_archived", ActionContext::default()),
        ("archive", ActionContext::default()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn applied_changes_answer_as_a_rebuild_from_changed_data(
        picks in prop::collection::vec(change(300, 30), 1..12)
    ) {
        let data = generate(&spec());
        let contacts = record_ids(&data, "bench", "contacts");
        let customs = record_ids(&data, "bench", "obj0");
        let changes: Vec<RecordChange> = picks
            .into_iter()
            .map(|(i, kind)| match kind {
                ChangeKind::State(state) => RecordChange::ContactState { record: contacts[i], state },
                ChangeKind::ArchiveContact(archived) => RecordChange::Archived {
                    object: "contacts".to_owned(),
                    record: contacts[i],
                    archived,
                },
                ChangeKind::ArchiveCustom(archived) => RecordChange::Archived {
                    object: "obj0".to_owned(),
                    record: customs[i % customs.len()],
                    archived,
                },
            })
            .collect();

        let live = Engine::new(Snapshot::build(&data, 1), 100_000);
        // Compile some answers first, so stale cache entries would show.
        for (action, ctx) in questions() {
            ask(&live, "u0", "contacts", action, ctx, &contacts);
        }
        let revision = live.apply("bench", &changes).unwrap();
        prop_assert_eq!(revision, 2);

        let mut changed = data.clone();
        apply_to_data(&mut changed, &changes);
        let rebuilt = Engine::new(Snapshot::build(&changed, 2), 100_000);

        let users: Vec<String> = (0..12).map(|n| format!("u{n}")).collect();
        for user in &users {
            for (action, ctx) in questions() {
                prop_assert_eq!(
                    ask(&live, user, "contacts", action, ctx.clone(), &contacts),
                    ask(&rebuilt, user, "contacts", action, ctx, &contacts),
                    "{} {}", user, action
                );
            }
            prop_assert_eq!(
                ask(&live, user, "obj0", "view", ActionContext::default(), &customs),
                ask(&rebuilt, user, "obj0", "view", ActionContext::default(), &customs)
            );
        }
    }
}

#[test]
fn a_bad_change_applies_nothing_and_names_what_is_wrong() {
    let data = generate(&spec());
    let contacts = record_ids(&data, "bench", "contacts");
    let e = Engine::new(Snapshot::build(&data, 1), 100_000);
    let good = RecordChange::Archived {
        object: "contacts".to_owned(),
        record: contacts[0],
        archived: true,
    };
    let stranger = Uuid::from_u128(7);
    let bad = RecordChange::Archived {
        object: "contacts".to_owned(),
        record: stranger,
        archived: true,
    };
    let err = e.apply("bench", &[good.clone(), bad]).unwrap_err();
    assert_eq!(
        err,
        ApplyError::UnknownRecord {
            tenant: "bench".to_owned(),
            object: "contacts".to_owned(),
            record: stranger,
        }
    );
    assert!(err.to_string().contains(&stranger.to_string()));
    assert_eq!(e.revision(), 1, "nothing of a failed batch is published");
    let before = ask(
        &e,
        "u0",
        "contacts",
        "view",
        ActionContext::default(),
        &contacts[..1],
    );
    assert!(before.contains("[]"), "still allowed: {before}");

    assert_eq!(
        e.apply("other", std::slice::from_ref(&good)).unwrap_err(),
        ApplyError::UnknownTenant("other".to_owned())
    );
    let bad_object = RecordChange::Archived {
        object: "nope".to_owned(),
        record: contacts[0],
        archived: true,
    };
    assert!(matches!(
        e.apply("bench", &[bad_object]).unwrap_err(),
        ApplyError::UnknownObject { .. }
    ));
    assert_eq!(e.apply("bench", &[good]).unwrap(), 2);
}
