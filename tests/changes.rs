//! Record changes applied to a live engine answer exactly as an engine
//! rebuilt from the changed data file: the incremental path may never drift
//! from a full load.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::BTreeMap;

use common::requests::question;
use common::tenants::{ContactShape, access_level, contact_states, field_level, source};

use permd::index::{ApplyError, Engine, PrincipalKind, Question, RecordHandles, Snapshot};
use permd::model::change::{Change, ChangeOp, Entity, EntityKind, TenantSettings};
use permd::model::data::{
    AssociationSource, ContactState, DataFile, EmailInbox, EmailStatus, ObjectPermissions, Record,
};
use permd::model::{AccessLevel, ActionContext, Channel, FieldLevel, Reason, Toggle};
use permd::source::generate::{GenSpec, generate, record_ids};
use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
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

/// The Contact states a change may give a record: every gate open or
/// closed, suppressions that ended before NOW or end after it, opt-outs of
/// the list `questions` asks about.
fn contact_state() -> impl Strategy<Value = ContactState> {
    contact_states(&ContactShape {
        email_valid: 0.5,
        suppressed: 0.5,
        until: 0.67,
        // From about a year before NOW to about a month after.
        until_steps: -330..=35,
        step: Duration::days(1),
        base: NOW,
        lists: ["newsletter", "events"],
        opted_out: 0.5,
        mobile_valid: 0.5,
        sms_opted_out: 0.5,
    })
}

/// One change, drawn by index into the data as it stands when it applies.
#[derive(Clone, Debug)]
enum Edit {
    /// A record gets a new owner (index into users, or a user nobody
    /// created), team, archived flag, contact state and links. Contacts
    /// have no owner (R8): there the owner joins the team instead.
    Record {
        pick: usize,
        owner: Option<usize>,
        team: Vec<usize>,
        archived: bool,
        state: Option<ContactState>,
        links: Vec<usize>,
    },
    Insert {
        custom: bool,
        owner: Option<usize>,
        state: Option<ContactState>,
        links: Vec<usize>,
    },
    Delete(usize),
    /// A group's Contacts grant: all / associated level, the controls (a
    /// bit each: create_record, bulk_data_upload, unarchive_associated,
    /// unarchive_all), a toggle, the email field; held to the catalog
    /// rules (R5, R5b, R7), as the platform's editor would.
    Group {
        pick: usize,
        all: AccessLevel,
        associated: AccessLevel,
        controls: u8,
        toggle: Toggle,
        field: FieldLevel,
    },
    /// A user's extra groups, admin flag and inbox (R13's sender).
    User {
        pick: usize,
        groups: Vec<usize>,
        admin: bool,
        inbox: EmailInbox,
    },
    /// obj0 starts or stops looking at related records.
    Source(AssociationSource),
    EmailConfigured(bool),
}

fn edit() -> impl Strategy<Value = Edit> {
    let user = prop_oneof![4 => (0..14usize).prop_map(Some), 1 => Just(None)];
    prop_oneof![
        6 => (
            any::<usize>(),
            user.clone(),
            prop::collection::vec(0..14usize, 0..3),
            prop::bool::weighted(0.2),
            prop::option::of(contact_state()),
            prop::collection::vec(any::<usize>(), 0..3),
        )
            .prop_map(|(pick, owner, team, archived, state, links)| Edit::Record {
                pick,
                owner,
                team,
                archived,
                state,
                links,
            }),
        2 => (
            any::<bool>(),
            user,
            prop::option::of(contact_state()),
            prop::collection::vec(any::<usize>(), 0..3),
        )
            .prop_map(|(custom, owner, state, links)| Edit::Insert { custom, owner, state, links }),
        2 => any::<usize>().prop_map(Edit::Delete),
        2 => (
            0..6usize,
            access_level(),
            access_level(),
            0..16u8,
            prop::sample::select(Toggle::ALL.to_vec()),
            field_level(),
        )
            .prop_map(|(pick, all, associated, controls, toggle, field)| Edit::Group {
                pick,
                all,
                associated,
                controls,
                toggle,
                field,
            }),
        2 => (
            0..12usize,
            prop::sample::subsequence((0..6usize).collect::<Vec<_>>(), 0..3),
            prop::bool::weighted(0.1),
            prop::sample::select(vec![
                EmailInbox::Connected,
                EmailInbox::NotConnected,
                EmailInbox::Blocked,
            ]),
        )
            .prop_map(|(pick, groups, admin, inbox)| Edit::User { pick, groups, admin, inbox }),
        1 => source().prop_map(Edit::Source),
        1 => any::<bool>().prop_map(Edit::EmailConfigured),
    ]
}

/// A user name: one of the 12 generated users, or one nobody created yet
/// (records may name them; R8 then associates nobody until they exist).
fn user_name(n: usize) -> String {
    if n < 12 {
        format!("u{n}")
    } else {
        format!("ghost{n}")
    }
}

/// `perms` with `all`, `associated` and the `controls` bits, raised or
/// cleared where a catalog rule needs it (R5, R5b) and the email field
/// stated at a level R7 allows, from `field`.
fn keep_catalog(
    perms: &mut ObjectPermissions,
    all: AccessLevel,
    associated: AccessLevel,
    controls: u8,
    field: FieldLevel,
) {
    perms.all_records = all;
    perms.associated_records = associated.max(all).max(AccessLevel::View);
    let editable = perms.associated_records >= AccessLevel::Edit;
    perms.create_record = editable && controls & 1 != 0;
    perms.bulk_data_upload = perms.create_record && controls & 2 != 0;
    perms.unarchive_associated = controls & 4 != 0;
    perms.unarchive_all = perms.unarchive_associated && controls & 8 != 0;
    let email = if editable {
        FieldLevel::Edit
    } else {
        field.min(FieldLevel::View)
    };
    perms.fields.insert("email".to_owned(), email);
}

/// The owner and team of a record: on a Contact, which has no owner (R8),
/// the owner is one more team member.
fn owner_and_team(
    contact: bool,
    owner: Option<String>,
    mut team: Vec<String>,
) -> (Option<String>, Vec<String>) {
    if !contact {
        return (owner, team);
    }
    team.extend(owner);
    team.sort_unstable();
    team.dedup();
    (None, team)
}

/// Turns an edit into a change against the data as it stands.
fn to_change(data: &DataFile, edit: &Edit, fresh: &mut u128) -> Change {
    let t = &data.tenants[0];
    let ids_of = |object: &str| -> Vec<Uuid> {
        t.records
            .iter()
            .filter(|r| r.object == object)
            .map(|r| r.id)
            .collect()
    };
    let contact_links = |links: &[usize]| -> BTreeMap<String, Vec<Uuid>> {
        let contacts = ids_of("contacts");
        let mut ids: Vec<Uuid> = links
            .iter()
            .map(|i| {
                contacts
                    .get(i % contacts.len().max(1))
                    .copied()
                    .unwrap_or(Uuid::from_u128(*i as u128))
            })
            .collect();
        if links.first().is_some_and(|i| i % 5 == 0) {
            // A link to a record that does not exist (yet).
            ids.push(Uuid::from_u128(0xdead_0000 + (links[0] % 4) as u128));
        }
        if ids.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([("contacts".to_owned(), ids)])
        }
    };
    match edit {
        Edit::Record {
            pick,
            owner,
            team,
            archived,
            state,
            links,
        } => {
            let mut record = t.records[pick % t.records.len()].clone();
            let contact = record.object == "contacts";
            let team_field = if contact { "account_team" } else { "team" };
            let (owner, team) = owner_and_team(
                contact,
                owner.map(user_name),
                team.iter().map(|u| user_name(*u)).collect(),
            );
            record.owner = owner;
            record.teams = if team.is_empty() {
                Default::default()
            } else {
                BTreeMap::from([(team_field.to_owned(), team)]).into()
            };
            record.archived = *archived;
            if record.object == "contacts" {
                record.contact = state.clone();
                record.links = BTreeMap::new();
            } else {
                record.links = contact_links(links);
            }
            Change::upsert("bench", Entity::Record(record))
        }
        Edit::Insert {
            custom,
            owner,
            state,
            links,
        } => {
            *fresh += 1;
            // Ids that dangling links above may already point at.
            let id = Uuid::from_u128(0xdead_0000 + (*fresh % 6));
            // Only Contacts may take them: the links are to contacts.
            let id = if *custom || t.records.iter().any(|r| r.id == id) {
                Uuid::from_u128(0xbeef_0000 + *fresh)
            } else {
                id
            };
            let (owner, team) = owner_and_team(!*custom, owner.map(user_name), Vec::new());
            let record = Record {
                id,
                object: if *custom {
                    "obj0".to_owned()
                } else {
                    "contacts".to_owned()
                },
                owner,
                teams: if team.is_empty() {
                    Default::default()
                } else {
                    BTreeMap::from([("account_team".to_owned(), team)]).into()
                },
                interactions: vec![],
                links: if *custom {
                    contact_links(links)
                } else {
                    BTreeMap::new()
                },
                archived: false,
                contact: if *custom { None } else { state.clone() },
            };
            Change::upsert("bench", Entity::Record(record))
        }
        Edit::Delete(pick) => Change::delete(
            "bench",
            EntityKind::Record,
            t.records[pick % t.records.len()].id.to_string(),
        ),
        Edit::Group {
            pick,
            all,
            associated,
            controls,
            toggle,
            field,
        } => {
            let mut group = t.groups[pick % t.groups.len()].clone();
            let perms = group.objects.entry("contacts".to_owned()).or_default();
            perms.view_object = true;
            keep_catalog(perms, *all, *associated, *controls, *field);
            if perms.actions.contains(toggle) {
                perms.actions.retain(|a| a != toggle);
            } else {
                perms.actions.push(*toggle);
            }
            Change::upsert("bench", Entity::Group(group))
        }
        Edit::User {
            pick,
            groups,
            admin,
            inbox,
        } => {
            let mut user = t.users[pick % t.users.len()].clone();
            user.groups = groups
                .iter()
                .map(|g| t.groups[g % t.groups.len()].id.clone())
                .collect();
            user.admin = *admin;
            user.email_inbox = *inbox;
            Change::upsert("bench", Entity::User(user))
        }
        Edit::Source(source) => {
            let mut object = t.objects.iter().find(|o| o.name == "obj0").unwrap().clone();
            object.association_source = *source;
            Change::upsert("bench", Entity::Object(object))
        }
        Edit::EmailConfigured(on) => Change::upsert(
            "bench",
            Entity::Tenant(TenantSettings {
                email_configured: *on,
                sms_configured: t.sms_configured,
            }),
        ),
    }
}

/// BatchCheck's answer (or refusal) as text, so that two engines' answers
/// compare with one `assert_eq!`.
fn ask(
    e: &Engine,
    principal: &str,
    object: &str,
    action: &str,
    ctx: ActionContext,
    ids: &[Uuid],
) -> String {
    let q = Question {
        ctx,
        ..question("bench", PrincipalKind::User, principal, object, action)
    };
    match e.batch_check(&q, ids, NOW) {
        Ok(a) => format!("{:?} {:?}", a.allowed, a.denials),
        Err(err) => format!("error {err}"),
    }
}

/// [`ask`], with the records named by handles.
fn ask_handles(
    e: &Engine,
    principal: &str,
    object: &str,
    action: &str,
    ctx: ActionContext,
    handles: &RecordHandles,
) -> String {
    let q = Question {
        ctx,
        ..question("bench", PrincipalKind::User, principal, object, action)
    };
    match e.batch_check_handles(&q, handles, NOW) {
        Ok(a) => format!("{:?} {:?}", a.allowed, a.denials),
        Err(err) => format!("error {err}"),
    }
}

/// Can `principal` view these Contacts?
fn view(e: &Engine, principal: &str, ids: &[Uuid]) -> String {
    ask(
        e,
        principal,
        "contacts",
        "view",
        ActionContext::default(),
        ids,
    )
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
        ("unarchive", ActionContext::default()),
        ("archive", ActionContext::default()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn applied_changes_answer_as_a_rebuild_from_changed_data(
        batches in prop::collection::vec(prop::collection::vec(edit(), 1..6), 1..5)
    ) {
        let data = generate(&spec());
        let live = Engine::new(Snapshot::build(&data, 1), 100_000);
        let mut changed = data.clone();
        let mut fresh = 0u128;
        let mut every_id: Vec<Uuid> = data.tenants[0].records.iter().map(|r| r.id).collect();
        let users: Vec<String> = (0..14).map(user_name).collect();
        // Handles given out before any change must still name the same
        // records after all of them (inserts, deletes, reshaped objects).
        let first_ids = every_id.clone();
        let handles_of = |object: &str| {
            let q = question("bench", PrincipalKind::User, "u0", object, "view");
            live.batch_check(&q, &first_ids, NOW).unwrap().handles
        };
        let first_handles = [handles_of("contacts"), handles_of("obj0")];
        for (b, batch) in batches.iter().enumerate() {
            // Compile answers first, so stale cache entries would show.
            let contacts = record_ids(&changed, "bench", "contacts");
            for (action, ctx) in questions() {
                ask(&live, "u0", "contacts", action, ctx, &contacts);
            }
            let mut changes = Vec::new();
            for e in batch {
                let change = to_change(&changed, e, &mut fresh);
                common::changes::apply(&mut changed, &change);
                if let ChangeOp::Upsert(Entity::Record(r)) = &change.op {
                    every_id.push(r.id);
                }
                changes.push(change);
            }
            let revision = live.apply(&changes).unwrap();
            prop_assert_eq!(revision, 2 + b as u64);
        }
        every_id.sort_unstable();
        every_id.dedup();
        let rebuilt = Engine::new(Snapshot::build(&changed, live.revision()), 100_000);
        // Another index of the same data numbers records its own way: the
        // live one's handles are refused there, never read.
        let q = question("bench", PrincipalKind::User, "u0", "contacts", "view");
        prop_assert!(rebuilt.batch_check_handles(&q, &first_handles[0], NOW).is_err());
        for user in &users {
            for (action, ctx) in questions() {
                prop_assert_eq!(
                    ask(&live, user, "contacts", action, ctx.clone(), &every_id),
                    ask(&rebuilt, user, "contacts", action, ctx, &every_id),
                    "{} {}", user, action
                );
            }
            let view_obj0 = |e| ask(e, user, "obj0", "view", ActionContext::default(), &every_id);
            prop_assert_eq!(view_obj0(&live), view_obj0(&rebuilt));
            for ((object, handles), (action, ctx)) in ["contacts", "obj0"]
                .into_iter()
                .zip(&first_handles)
                .flat_map(|o| questions().into_iter().map(move |q| (o, q)))
                .filter(|((object, _), (action, _))| *object == "contacts" || *action == "view")
            {
                prop_assert_eq!(
                    ask_handles(&live, user, object, action, ctx.clone(), handles),
                    ask(&live, user, object, action, ctx, &first_ids),
                    "{} {} {} by handles", user, object, action
                );
            }
        }
    }
}

fn archived(data: &DataFile, id: Uuid, archived: bool) -> Change {
    let mut record = data.tenants[0]
        .records
        .iter()
        .find(|r| r.id == id)
        .unwrap()
        .clone();
    record.archived = archived;
    Change::upsert("bench", Entity::Record(record))
}

#[test]
fn a_bad_change_applies_nothing_and_names_what_is_wrong() {
    let data = generate(&spec());
    let contacts = record_ids(&data, "bench", "contacts");
    let e = Engine::new(Snapshot::build(&data, 1), 100_000);
    let good = archived(&data, contacts[0], true);
    let mut bad_record = data.tenants[0].records[0].clone();
    bad_record.object = "nope".to_owned();
    let bad = Change::upsert("bench", Entity::Record(bad_record));
    let err = e.apply(&[good.clone(), bad]).unwrap_err();
    assert!(matches!(err, ApplyError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("unknown object 'nope'"), "{err}");
    assert_eq!(e.revision(), 1, "nothing of a failed batch is published");
    let before = view(&e, "u0", &contacts[..1]);
    assert!(before.contains("[]"), "still allowed: {before}");

    let mut other = good.clone();
    other.tenant = "other".to_owned();
    assert_eq!(
        e.apply(&[other]).unwrap_err(),
        ApplyError::UnknownTenant("other".to_owned())
    );

    // A user granted a group that does not exist: refused like in a file.
    let mut user = data.tenants[0].users[0].clone();
    user.groups.push("no-such-group".to_owned());
    let err = e
        .apply(&[Change::upsert("bench", Entity::User(user))])
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown group 'no-such-group'"),
        "{err}"
    );

    // An object with records cannot go.
    let err = e
        .apply(&[Change::delete("bench", EntityKind::Object, "obj0")])
        .unwrap_err();
    assert!(matches!(err, ApplyError::ObjectHasRecords { .. }), "{err}");

    assert_eq!(e.apply(&[good]).unwrap(), 2);
}

/// A revision that a newer one replaced is freed at once, whether or not
/// questions keep the answer cache busy: the cache's invalidation of stale
/// answers once held each revision until its housekeeping ran, which only
/// questions trigger, so a change stream on a quiet sidecar grew without
/// bound (1.5 GB after 12,000 revisions of a 100,000-Contact tenant).
#[test]
fn a_replaced_revision_is_freed_with_or_without_questions() {
    let data = generate(&spec());
    let contacts = record_ids(&data, "bench", "contacts");
    let e = Engine::new(Snapshot::build(&data, 1), 100_000);
    for asked in [false, true] {
        let mut replaced = Vec::new();
        for n in 0..50 {
            if asked {
                view(&e, "u0", &contacts[..3]);
            }
            replaced.push(std::sync::Arc::downgrade(&e.snapshot().tenants["bench"]));
            e.apply(&[archived(&data, contacts[n % 7], n % 2 == 0)])
                .unwrap();
        }
        let alive = replaced.iter().filter(|r| r.upgrade().is_some()).count();
        assert_eq!(
            alive, 0,
            "{alive} of 50 replaced revisions still held (questions asked: {asked})"
        );
    }
}

#[test]
fn a_deleted_record_is_unknown_and_a_group_change_keeps_other_answers_cached() {
    let data = generate(&spec());
    let contacts = record_ids(&data, "bench", "contacts");
    let e = Engine::new(Snapshot::build(&data, 1), 100_000);
    let gone = Change::delete("bench", EntityKind::Record, contacts[0].to_string());
    e.apply(&[gone]).unwrap();
    let answer = view(&e, "u11", &contacts[..1]);
    assert!(answer.contains("UnknownRecord"), "{answer}");
    // Deleting it again changes nothing but the revision.
    let again = Change::delete("bench", EntityKind::Record, contacts[0].to_string());
    assert_eq!(e.apply(&[again]).unwrap(), 3);
}

#[test]
fn handles_name_one_object_of_one_index_and_a_deleted_record_is_unknown() {
    let data = generate(&spec());
    let contacts = record_ids(&data, "bench", "contacts");
    let e = Engine::new(Snapshot::build(&data, 1), 100_000);
    let view_q = question("bench", PrincipalKind::User, "u0", "contacts", "view");
    let by_ids = e.batch_check(&view_q, &contacts, NOW).unwrap();
    let handles = by_ids.handles.clone();
    let by_handles = |e: &Engine, h: &RecordHandles| {
        e.batch_check_handles(&view_q, h, NOW)
            .map(|a| format!("{:?} {:?}", a.allowed, a.denials))
    };
    assert_eq!(
        by_handles(&e, &handles).unwrap(),
        format!("{:?} {:?}", by_ids.allowed, by_ids.denials)
    );

    // The table's edge: its last ordinal is a record, the next is not.
    let n = u32::try_from(contacts.len()).unwrap();
    let edge = RecordHandles {
        space: handles.space,
        ords: vec![n - 1, n, u32::MAX],
    };
    let last = e
        .batch_check(&view_q, &contacts[contacts.len() - 1..], NOW)
        .unwrap();
    let a = e.batch_check_handles(&view_q, &edge, NOW).unwrap();
    assert_eq!(a.is_allowed(0), last.is_allowed(0));
    assert!(
        a.denials.contains(&(1, Reason::UnknownRecord)),
        "{:?}",
        a.denials
    );
    assert!(
        a.denials.contains(&(2, Reason::UnknownRecord)),
        "{:?}",
        a.denials
    );

    // Another object's handles are refused, not read as its records.
    let obj0 = question("bench", PrincipalKind::User, "u0", "obj0", "view");
    let err = e.batch_check_handles(&obj0, &handles, NOW).unwrap_err();
    assert!(err.to_string().contains("send the ids again"), "{err}");

    // A deleted record keeps its handle, denied as unknown.
    let gone = Change::delete("bench", EntityKind::Record, contacts[0].to_string());
    e.apply(&[gone]).unwrap();
    let first = RecordHandles {
        space: handles.space,
        ords: handles.ords[..1].to_vec(),
    };
    let a = e.batch_check_handles(&view_q, &first, NOW).unwrap();
    assert_eq!(a.denials, vec![(0, Reason::UnknownRecord)]);

    // A reload, even of the same data at the same revision, numbers
    // records anew: the old handles are refused; new ones work.
    let mut reordered = data.clone();
    reordered.tenants[0].records.reverse();
    e.publish(Snapshot::build(&reordered, e.revision()));
    let err = by_handles(&e, &handles).unwrap_err();
    assert!(err.to_string().contains("restarted or reloaded"), "{err}");
    let again = e.batch_check(&view_q, &contacts, NOW).unwrap();
    assert_eq!(
        by_handles(&e, &again.handles).unwrap(),
        format!("{:?} {:?}", again.allowed, again.denials)
    );
    // And the answer by ids is the reordered index's own, not one compiled
    // against the old numbering.
    let fresh = Engine::new(Snapshot::build(&reordered, e.revision()), 100_000);
    let want = fresh.batch_check(&view_q, &contacts, NOW).unwrap();
    assert_eq!((again.allowed, again.denials), (want.allowed, want.denials));
}
