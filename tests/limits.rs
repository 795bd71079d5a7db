//! Limits over real gRPC on loopback: concurrent streams beyond the limit
//! get RESOURCE_EXHAUSTED naming the setting, and a request whose deadline
//! has passed is refused, not computed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::requests::{batch, check, demo_contacts, lookup_pages, user};
use common::server::{TestServer, demo_engine, slow_reader, stream_admitted};
use permd::pb::{self, authorizer_client::AuthorizerClient};
use permd::server::Limits;
use permd::source::demo::contact_id;
use tonic::Code;
use tonic::transport::Channel;

/// The demo tenant served with `limits`, and a client of it.
async fn serve(limits: Limits) -> (AuthorizerClient<Channel>, TestServer) {
    let server = TestServer::builder(demo_engine())
        .limits(limits)
        .start()
        .await;
    (server.client().await, server)
}

/// carol's Contacts she may view, one page of `page_size` per message.
fn carol_views(page_size: u32) -> pb::LookupRecordsRequest {
    lookup_pages(user("carol"), "contacts", "view", page_size)
}

/// carol's bulk email to 10,000 Contacts: heavy enough to hold a permit.
fn carol_bulk_email() -> pb::BatchCheckRequest {
    batch(
        user("carol"),
        "contacts",
        "bulk_send_email",
        &demo_contacts(10_000),
    )
}

/// With `max_concurrent_streams` 1: a reader that reads nothing takes the
/// one stream, and `client`'s stream is refused. The reader has a
/// connection of its own granting only HTTP/2's default 64 KiB window:
/// carol's ~7,000 Contacts one per message are several times that, so the
/// stream stays open (and holds its permit) until dropped.
async fn hold_the_only_stream(
    server: &TestServer,
    client: &mut AuthorizerClient<Channel>,
) -> (tonic::Streaming<pb::LookupRecordsResponse>, tonic::Status) {
    let held = slow_reader(server.url())
        .await
        .lookup_records(carol_views(1))
        .await
        .unwrap()
        .into_inner();
    let refused = client.lookup_records(carol_views(1)).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    (held, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_are_refused_until_one_ends() {
    let (mut client, server) = serve(Limits {
        max_concurrent_streams: 1,
        ..Limits::default()
    })
    .await;
    let (held, refused) = hold_the_only_stream(&server, &mut client).await;
    assert!(
        refused.message().contains("max_concurrent_streams"),
        "{}",
        refused.message()
    );
    // Unary requests have their own limit and still pass.
    let answered = client
        .check(check(user("carol"), "contacts", "view", contact_id(1)))
        .await;
    assert!(answered.is_ok(), "{answered:?}");
    drop(held);
    assert!(
        stream_admitted(&mut client, carol_views(1)).await,
        "the permit of a closed stream came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_deadline_has_passed_is_refused() {
    let (mut client, _server) = serve(Limits::default()).await;
    let mut request = tonic::Request::new(carol_bulk_email());
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
    let (client, _server) = serve(Limits {
        max_concurrent_requests: 1,
        ..Limits::default()
    })
    .await;
    let calls = (0..12).map(|_| {
        let mut client = client.clone();
        tokio::spawn(async move { client.batch_check(carol_bulk_email()).await })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_nobody_reads_gives_its_permit_back_after_idle_timeout() {
    let (mut client, server) = serve(Limits {
        max_concurrent_streams: 1,
        idle_timeout: std::time::Duration::from_secs(2),
        ..Limits::default()
    })
    .await;
    let (_held, _) = hold_the_only_stream(&server, &mut client).await;
    // The reader still holds its stream open, and reads nothing.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        stream_admitted(&mut client, carol_views(1)).await,
        "the stalled stream's permit came back"
    );
}
