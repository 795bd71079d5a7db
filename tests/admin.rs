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

use std::sync::Arc;
use std::time::Duration;

use permd::index::{Engine, Snapshot};
use permd::pb::{self, admin_client::AdminClient, authorizer_client::AuthorizerClient};
use permd::server::{AdminService, Extras, Limits, serve_full};
use permd::source::demo::{DEMO_TENANT, contact_id, demo_data};
use tokio::net::TcpListener;
use tonic::Code;

const TOKEN: &str = "file-mode-admin-token-42";

async fn server(admin: bool) -> (String, Arc<Engine>) {
    let engine = Arc::new(Engine::new(Snapshot::build(&demo_data(), 1), 100_000));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let extras = Extras {
        readiness: None,
        admin: admin.then(|| AdminService::new(engine.clone(), None, TOKEN.to_owned()).unwrap()),
    };
    tokio::spawn(serve_full(
        engine.clone(),
        listener,
        Limits::default(),
        None,
        extras,
        std::future::pending(),
    ));
    (addr, engine)
}

fn authorized<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(10));
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

fn mutation(entity: &str, op: pb::mutation::Op) -> pb::Mutation {
    pb::Mutation {
        tenant: DEMO_TENANT.to_owned(),
        entity: entity.to_owned(),
        op: Some(op),
    }
}

fn view(user: &str, min_revision: u64) -> pb::CheckRequest {
    pb::CheckRequest {
        tenant: DEMO_TENANT.to_owned(),
        principal: Some(pb::Principal {
            kind: pb::principal::Kind::User as i32,
            id: user.to_owned(),
        }),
        object: "contacts".to_owned(),
        action: "view".to_owned(),
        record_id: contact_id(0).to_string(),
        min_revision,
        ..Default::default()
    }
}

#[tokio::test]
async fn file_mode_writes_go_to_memory_as_new_revisions() {
    let (addr, engine) = server(true).await;
    let mut admin = AdminClient::connect(addr.clone()).await.unwrap();
    let mut reader = AuthorizerClient::connect(addr).await.unwrap();
    let before = reader.check(view("alice", 0)).await.unwrap().into_inner();
    assert!(before.allowed, "{before:?}");

    // Delete the record: alice no longer sees it, at the new revision.
    let written = admin
        .write(authorized(
            pb::WriteRequest {
                mutations: vec![mutation(
                    "record",
                    pb::mutation::Op::DeleteKey(contact_id(0).to_string()),
                )],
            },
            Some(TOKEN),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((written.revision, written.mutations), (2, 1));
    assert_eq!(engine.revision(), 2);
    let after = reader.check(view("alice", 2)).await.unwrap().into_inner();
    assert!(!after.allowed);
    assert_eq!(after.reason, pb::Reason::UnknownRecord as i32);
    assert_eq!(after.revision, 2);

    // A new user with a role: known at once; a role nobody defined is
    // refused and changes nothing.
    let user = |json: &str| pb::WriteRequest {
        mutations: vec![mutation(
            "user",
            pb::mutation::Op::UpsertJson(json.to_owned()),
        )],
    };
    let e = reader.check(view("newbie", 0)).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let written = admin
        .write(authorized(
            user(r#"{"id": "newbie", "roles": ["sales_rep"]}"#),
            Some(TOKEN),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(written.revision, 3);
    reader.check(view("newbie", 3)).await.unwrap();
    let e = admin
        .write(authorized(
            user(r#"{"id": "newbie", "roles": ["no_such_role"]}"#),
            Some(TOKEN),
        ))
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

#[tokio::test]
async fn every_call_needs_the_token_and_bad_mutations_are_refused_whole() {
    let (addr, engine) = server(true).await;
    let mut admin = AdminClient::connect(addr).await.unwrap();
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
        (
            mutation("widget", pb::mutation::Op::DeleteKey("x".to_owned())),
            "entities are",
        ),
        (
            mutation(
                "record",
                pb::mutation::Op::DeleteKey("not-a-uuid".to_owned()),
            ),
            "not a UUID",
        ),
        (
            mutation(
                "group",
                pb::mutation::Op::UpsertJson("{\"id\": \"g\", \"colour\": 1}".to_owned()),
            ),
            "colour",
        ),
        (
            mutation("group", pb::mutation::Op::UpsertJson("{nope".to_owned())),
            "not JSON",
        ),
        (
            pb::Mutation {
                tenant: DEMO_TENANT.to_owned(),
                entity: "user".to_owned(),
                op: None,
            },
            "set upsert_json or delete_key",
        ),
    ];
    for (bad, says) in cases {
        // A good mutation first: the whole request is refused anyway.
        let good = mutation(
            "record",
            pb::mutation::Op::DeleteKey(contact_id(1).to_string()),
        );
        let e = admin
            .write(authorized(
                pb::WriteRequest {
                    mutations: vec![good, bad],
                },
                Some(TOKEN),
            ))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains("mutations[1]"), "{}", e.message());
        assert!(e.message().contains(says), "{}", e.message());
    }
    // An unknown tenant is NOT_FOUND.
    let e = admin
        .write(authorized(
            pb::WriteRequest {
                mutations: vec![pb::Mutation {
                    tenant: "nowhere".to_owned(),
                    entity: "user".to_owned(),
                    op: Some(pb::mutation::Op::UpsertJson(r#"{"id": "x"}"#.to_owned())),
                }],
            },
            Some(TOKEN),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert_eq!(engine.revision(), 1, "nothing was applied");
}

#[tokio::test]
async fn without_a_token_there_is_no_admin_service() {
    let (addr, _engine) = server(false).await;
    let mut admin = AdminClient::connect(addr).await.unwrap();
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
