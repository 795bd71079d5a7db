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
