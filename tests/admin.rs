//! The Admin service in file mode, over real gRPC on loopback: writes go to
//! memory as new revisions, every call needs the bearer token, bad
//! mutations are refused whole, and without a token the service does not
//! exist at all. (Write-through to PostgreSQL: tests/postgres.rs.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;

use common::requests::{authorized, check, user};
use common::server::{TestServer, demo_engine};
use permd::index::{Engine, Snapshot};
use permd::pb;
use permd::server::AdminService;
use permd::source::demo::{DEMO_TENANT, contact_id};
use tonic::Code;

const TOKEN: &str = "file-mode-admin-token-42";

/// The demo tenant served with Admin (file mode: writes go to memory), or
/// without it when `admin` is false.
async fn server(admin: bool) -> TestServer {
    let builder = TestServer::builder(demo_engine());
    if admin {
        builder.admin(TOKEN, None).start().await
    } else {
        builder.start().await
    }
}

fn mutation(entity: &str, op: pb::mutation::Op) -> pb::Mutation {
    pb::Mutation {
        tenant: DEMO_TENANT.to_owned(),
        entity: entity.to_owned(),
        op: Some(op),
    }
}

/// A Write of `mutations` with the right token.
fn write(mutations: Vec<pb::Mutation>) -> tonic::Request<pb::WriteRequest> {
    authorized(pb::WriteRequest { mutations }, Some(TOKEN))
}

fn view(who: &str, min_revision: u64) -> pb::CheckRequest {
    pb::CheckRequest {
        min_revision,
        ..check(user(who), "contacts", "view", contact_id(0))
    }
}

#[tokio::test]
async fn file_mode_writes_go_to_memory_as_new_revisions() {
    let server = server(true).await;
    let engine = &server.engine;
    let mut admin = server.admin().await;
    let mut reader = server.client().await;
    let before = reader.check(view("alice", 0)).await.unwrap().into_inner();
    assert!(before.allowed, "{before:?}");

    // Delete the record: alice no longer sees it, at the new revision.
    let gone = mutation("record", delete(&contact_id(0).to_string()));
    let written = admin.write(write(vec![gone])).await.unwrap().into_inner();
    assert_eq!((written.revision, written.mutations), (2, 1));
    assert_eq!(engine.revision(), 2);
    let after = reader.check(view("alice", 2)).await.unwrap().into_inner();
    assert!(!after.allowed);
    assert_eq!(after.reason, pb::Reason::UnknownRecord as i32);
    assert_eq!(after.revision, 2);

    // A new user with a role: known at once; a role nobody defined is
    // refused and changes nothing.
    let new_user = |json: &str| write(vec![mutation("user", upsert(json))]);
    let e = reader.check(view("newbie", 0)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let written = admin
        .write(new_user(r#"{"id": "newbie", "roles": ["sales_rep"]}"#))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(written.revision, 3);
    reader.check(view("newbie", 3)).await.unwrap();
    let e = admin
        .write(new_user(r#"{"id": "newbie", "roles": ["no_such_role"]}"#))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(
        e.message().contains("unknown role 'no_such_role'"),
        "{}",
        e.message()
    );
    assert_eq!(
        engine.revision(),
        3,
        "nothing of a refused write is applied"
    );
}

fn upsert(json: &str) -> pb::mutation::Op {
    pb::mutation::Op::UpsertJson(json.to_owned())
}

fn delete(key: &str) -> pb::mutation::Op {
    pb::mutation::Op::DeleteKey(key.to_owned())
}

#[tokio::test]
async fn every_call_needs_the_token_and_bad_mutations_are_refused_whole() {
    let server = server(true).await;
    let mut admin = server.admin().await;
    let e = admin
        .revision(authorized(pb::RevisionRequest {}, None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = admin
        .revision(authorized(
            pb::RevisionRequest {},
            Some("wrong-token-but-long"),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let mut basic = tonic::Request::new(pb::RevisionRequest {});
    basic
        .metadata_mut()
        .insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    assert_eq!(
        admin.revision(basic).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    let cases = [
        (mutation("widget", delete("x")), "entities are"),
        (mutation("record", delete("not-a-uuid")), "not a UUID"),
        (
            mutation("group", upsert("{\"id\": \"g\", \"colour\": 1}")),
            "colour",
        ),
        (mutation("group", upsert("{nope")), "not JSON"),
        // v1's level name: refused, saying what v2 calls it.
        (
            mutation(
                "group",
                upsert(r#"{"id": "g", "objects": {"deals": {"all_records": "delete"}}}"#),
            ),
            "'remove'",
        ),
        (
            pb::Mutation {
                op: None,
                ..mutation("user", delete("x"))
            },
            "set upsert_json or delete_key",
        ),
    ];
    for (bad, says) in cases {
        // A good mutation first: the whole request is refused anyway.
        let good = mutation("record", delete(&contact_id(1).to_string()));
        let e = admin.write(write(vec![good, bad])).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains("mutations[1]"), "{}", e.message());
        assert!(e.message().contains(says), "{}", e.message());
    }
    // What decodes but breaks a rule of the model is refused whole too,
    // naming what to fix: a group below a catalog rule (R5, R5b: never
    // corrected), an integration with groups of its own (R1).
    let cases = [
        (
            mutation(
                "group",
                upsert(r#"{"id": "g", "objects": {"deals": {"view_object": true}}}"#),
            ),
            &[
                "mutations[1]",
                "tenant 'demo'",
                "group 'g'",
                "object 'deals'",
                "associated_records",
                "R5",
            ][..],
        ),
        (
            mutation(
                "group",
                upsert(
                    r#"{"id": "g", "objects": {"deals": {"associated_records": "view", "create_record": true}}}"#,
                ),
            ),
            &[
                "mutations[1]",
                "group 'g'",
                "object 'deals'",
                "create_record",
                "R5b",
            ],
        ),
        (
            mutation(
                "integration",
                upsert(r#"{"id": "k", "groups": ["sales"], "user": "alice"}"#),
            ),
            &["mutations[1]", "integration 'k'", "act as their user"],
        ),
        (
            mutation(
                "record",
                upsert(
                    r#"{"id": "c0000000-0000-4000-8000-000000000002", "object": "contacts", "owner": "alice"}"#,
                ),
            ),
            &["mutations[1]", "no owner", "'alice'", "team field"],
        ),
    ];
    for (bad, says) in cases {
        let good = mutation("record", delete(&contact_id(1).to_string()));
        let e = admin.write(write(vec![good, bad])).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        for needle in says {
            assert!(e.message().contains(needle), "{needle:?}: {}", e.message());
        }
    }
    // An unknown tenant is NOT_FOUND.
    let nowhere = pb::Mutation {
        tenant: "nowhere".to_owned(),
        ..mutation("user", upsert(r#"{"id": "x"}"#))
    };
    let e = admin.write(write(vec![nowhere])).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert_eq!(server.engine.revision(), 1, "nothing was applied");
}

#[tokio::test]
async fn without_a_token_there_is_no_admin_service() {
    let server = server(false).await;
    let mut admin = server.admin().await;
    let e = admin
        .revision(authorized(pb::RevisionRequest {}, Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    // And a token too short to be one is refused at start.
    let engine = Arc::new(Engine::new(Snapshot::default(), 10));
    let err = AdminService::new(engine, None, "short".to_owned())
        .err()
        .unwrap();
    assert!(err.to_string().contains("at least 16"), "{err}");
}
