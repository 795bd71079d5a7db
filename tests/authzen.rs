//! The AuthZEN listener, tested from outside by an independent HTTP client:
//! tests/authzen/test_authzen.py (Python `requests`, and the gRPC stubs of
//! clients/python to compare every decision with BatchCheck), run against
//! a real `permd serve --authzen-listen` on loopback — once open, once with
//! an API token, a default tenant and one request permit (the 401, default
//! tenant and 429 cases).
//!
//! Without the Python packages the test prints a notice and passes, unless
//! `CI` is set (CI installs tests/authzen/requirements.txt).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::server::{Serve, bounded_by, free_port, output_within, repo_path};
use common::skip;
use tokio::process::Command;

const SKIP_NOTICE: &str =
    "SKIPPED: python requests/grpcio not installed (pip install -r tests/authzen/requirements.txt)";

/// Serves the demo tenant with AuthZEN and `extra` flags, then runs the
/// suite with `env`.
async fn suite(extra: &[&str], env: &[(&str, &str)]) {
    let authzen = free_port();
    let listen = format!("127.0.0.1:{authzen}");
    let server = Serve::new()
        .args(["--authzen-listen", listen.as_str()])
        .args(extra.iter().copied())
        .quiet()
        .spawn();
    server.channel().await;
    let mut cmd = Command::new("python3");
    cmd.arg(repo_path("tests/authzen/test_authzen.py"))
        .env("PERMD_AUTHZEN_URL", format!("http://{listen}"))
        .env("PERMD_ADDR", format!("127.0.0.1:{}", server.port));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = output_within(cmd, "test_authzen.py", Duration::from_secs(600))
        .await
        .unwrap_or_else(|e| panic!("test_authzen.py: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/authzen/test_authzen.py with {extra:?} failed ({}):\n{stderr}",
        out.status
    );
    eprintln!(
        "{}",
        stderr.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authzen_answers_as_the_spec_and_batch_check_say() {
    bounded_by(Duration::from_secs(900), async {
        let ready = skip::python_imports("requests, grpc").await;
        if skip::available(ready, "python requests and grpcio", SKIP_NOTICE).is_none() {
            return;
        }
        suite(&[], &[]).await;
        let token = "authzen-token-0123456789";
        suite(
            &[
                "--api-token",
                token,
                "--authzen-tenant",
                "demo",
                "--max-concurrent-requests",
                "1",
            ],
            &[
                ("PERMD_API_TOKEN", token),
                ("PERMD_AUTHZEN_TENANT", "demo"),
                ("PERMD_AUTHZEN_TEST_429", "1"),
            ],
        )
        .await;
    })
    .await;
}

/// `POST path` with a JSON body to an AuthZEN listener: status and body.
async fn post(listen: &str, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(listen).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let status = text[9..12].parse().unwrap();
    let json = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(json).unwrap_or_default())
}

/// A page token is a position in one permd's numbering of the records: sent
/// to another permd (or to this one after a restart), it would skip or
/// repeat records, so it is refused and the client told to start again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_token_is_refused_by_another_permd_instead_of_misread() {
    bounded_by(Duration::from_secs(120), async {
        let mut listens = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..2 {
            let listen = format!("127.0.0.1:{}", free_port());
            let server = Serve::new()
                .args(["--authzen-listen", listen.as_str()])
                .quiet()
                .spawn();
            server.channel().await;
            listens.push(listen);
            servers.push(server);
        }
        let search = |token: Option<&str>| {
            let mut page = serde_json::json!({"limit": 100});
            if let Some(t) = token {
                page["token"] = t.into();
            }
            serde_json::json!({
                "subject": {"type": "user", "id": "alice", "properties": {"tenant": "demo"}},
                "action": {"name": "view"},
                "resource": {"type": "contacts"},
                "page": page,
            })
        };
        const PATH: &str = "/access/v1/search/resource";
        let (status, first) = post(&listens[0], PATH, &search(None)).await;
        assert_eq!(status, 200, "{first}");
        let token = first["page"]["next_token"].as_str().unwrap().to_owned();
        assert!(!token.is_empty(), "{first}");
        let (status, second) = post(&listens[0], PATH, &search(Some(&token))).await;
        assert_eq!(status, 200, "the same permd reads its own token: {second}");
        let (status, refused) = post(&listens[1], PATH, &search(Some(&token))).await;
        assert_eq!(status, 400, "{refused}");
        let text = refused.to_string();
        assert!(
            text.contains("FAILED_PRECONDITION") && text.contains("without page.token"),
            "{text}"
        );
    })
    .await;
}
