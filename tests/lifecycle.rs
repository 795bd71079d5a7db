//! Lifecycle of a real `permd serve` process: health says SERVING once it
//! answers; SIGTERM lets an in-flight LookupRecords stream finish, then the
//! process exits 0 and stops accepting. Its logs, off a terminal, are plain
//! text.
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

/// Logs written to a pipe or a file carry no terminal colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_off_a_terminal_are_plain_text() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let port = common::server::free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_permd"))
        .args([
            "serve",
            "--no-metrics",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let serving = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("permd serving") {
                return line;
            }
        }
        panic!("permd exited before serving");
    })
    .await
    .expect("permd logged that it serves within 30 s");
    assert!(!serving.contains('\u{1b}'), "colour codes in {serving:?}");
    assert!(serving.contains("listen=127.0.0.1:"), "{serving}");
}
