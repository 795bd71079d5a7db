//! Lifecycle of a real `permd serve` process: health says SERVING once it
//! answers; SIGTERM lets an in-flight LookupRecords stream finish, then the
//! process exits 0 and stops accepting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::requests::{lookup_pages, user};
use common::server::{Serve, assert_serving, authorizer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_streams_then_exits_zero() {
    let mut server = Serve::new().spawn();
    let channel = server.channel().await;
    assert_serving(channel.clone()).await;

    let request = lookup_pages(user("carol"), "contacts", "view", 100);
    let mut client = authorizer(channel);
    let mut expected = 0;
    let mut all = client
        .lookup_records(request.clone())
        .await
        .unwrap()
        .into_inner();
    while let Some(page) = all.message().await.unwrap() {
        expected += page.record_ids.map_or(0, |p| p.ids.len());
    }
    assert!(expected > 1_000);

    // A stream in flight: its first page has arrived.
    let mut stream = client.lookup_records(request).await.unwrap().into_inner();
    let mut got = stream
        .message()
        .await
        .unwrap()
        .unwrap()
        .record_ids
        .unwrap()
        .ids
        .len();
    let pid = server.child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    while let Some(page) = stream.message().await.unwrap() {
        got += page.record_ids.map_or(0, |p| p.ids.len());
    }
    assert_eq!(got, expected, "the in-flight stream finished whole");

    let status = tokio::time::timeout(Duration::from_secs(20), server.child.wait())
        .await
        .expect("permd exits after draining")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await;
    assert!(refused.is_err(), "no longer accepting");
}
