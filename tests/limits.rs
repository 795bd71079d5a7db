//! Limits over real gRPC on loopback: concurrent streams beyond the limit
//! get RESOURCE_EXHAUSTED naming the setting, and a request whose deadline
//! has passed is refused, not computed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::time::Duration;

use permd::index::{DEFAULT_MAX_BATCH, Engine, Snapshot};
use permd::pb::{self, authorizer_client::AuthorizerClient};
use permd::server::Limits;
use permd::source::demo::{contact_id, demo_data};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;

async fn serve(limits: Limits) -> (AuthorizerClient<Channel>, tokio::sync::oneshot::Sender<()>) {
    let engine = Arc::new(Engine::new(
        Snapshot::build(&demo_data(), 1),
        DEFAULT_MAX_BATCH,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(permd::server::serve_with_limits(
        engine,
        listener,
        limits,
        async {
            let _ = stopped.await;
        },
    ));
    let client = AuthorizerClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    (client, stop)
}

fn carol() -> Option<pb::Principal> {
    Some(pb::Principal {
        kind: pb::principal::Kind::User as i32,
        id: "carol".to_owned(),
    })
}

fn lookup(page_size: u32) -> pb::LookupRecordsRequest {
    pb::LookupRecordsRequest {
        tenant: "demo".to_owned(),
        principal: carol(),
        object: "contacts".to_owned(),
        action: "view".to_owned(),
        page_size,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_are_refused_until_one_ends() {
    let (mut client, _stop) = serve(Limits {
        max_concurrent_streams: 1,
        ..Limits::default()
    })
    .await;
    // One page per message and nobody reading: the stream stays open.
    let held = client.lookup_records(lookup(1)).await.unwrap().into_inner();
    let refused = client.lookup_records(lookup(1)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("max_concurrent_streams"),
        "{}",
        refused.message()
    );
    // Unary requests have their own limit and still pass.
    let check = client
        .check(pb::CheckRequest {
            tenant: "demo".to_owned(),
            principal: carol(),
            object: "contacts".to_owned(),
            action: "view".to_owned(),
            record_id: contact_id(1).to_string(),
            ..Default::default()
        })
        .await;
    assert!(check.is_ok(), "{check:?}");
    drop(held);
    // The server notices the dropped stream at its next send.
    let mut admitted = false;
    for _ in 0..100 {
        if client.lookup_records(lookup(1)).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "the permit of a closed stream came back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_deadline_has_passed_is_refused() {
    let (mut client, _stop) = serve(Limits::default()).await;
    let ids: Vec<String> = (0..10_000).map(|n| contact_id(n).to_string()).collect();
    let mut request = tonic::Request::new(pb::BatchCheckRequest {
        tenant: "demo".to_owned(),
        principal: carol(),
        object: "contacts".to_owned(),
        action: "bulk_send_email".to_owned(),
        records: Some(pb::batch_check_request::Records::RecordIds(pb::StringIds {
            ids,
        })),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("grpc-timeout", "1n".parse().unwrap());
    let err = client.batch_check(request).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_requests_beyond_the_limit_get_resource_exhausted_never_a_wrong_answer() {
    let (client, _stop) = serve(Limits {
        max_concurrent_requests: 1,
        ..Limits::default()
    })
    .await;
    let ids: Vec<String> = (0..10_000).map(|n| contact_id(n).to_string()).collect();
    let calls = (0..12).map(|_| {
        let mut client = client.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            client
                .batch_check(pb::BatchCheckRequest {
                    tenant: "demo".to_owned(),
                    principal: carol(),
                    object: "contacts".to_owned(),
                    action: "bulk_send_email".to_owned(),
                    records: Some(pb::batch_check_request::Records::RecordIds(pb::StringIds {
                        ids,
                    })),
                    ..Default::default()
                })
                .await
        })
    });
    let mut ok = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(r) => {
                let r = r.into_inner();
                assert_eq!(r.allowed_count as usize + r.denials.len(), 10_000);
                ok += 1;
            }
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
                assert!(
                    s.message().contains("max_concurrent_requests"),
                    "{}",
                    s.message()
                );
            }
        }
    }
    assert!(ok >= 1, "at least the first request is answered");
}
