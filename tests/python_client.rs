//! Runs the Python example client (examples/python/client.py, grpcio) against
//! a permd served in-process on an ephemeral loopback port, and checks what it
//! prints against the engine's own answer for the same request.
//!
//! Without grpcio installed the test prints a notice and passes, unless the
//! `CI` environment variable is set: CI installs the requirements, so there a
//! missing module is a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::server::{
    TestServer, assert_client_report, bounded_by, demo_answer, demo_engine, output_within,
    repo_path,
};
use common::skip;
use tokio::process::Command;

const SKIP_NOTICE: &str =
    "SKIPPED: python grpcio not installed (pip install -r examples/python/requirements.txt)";

/// Runs client.py against `addr`; returns its JSON report.
async fn run_client(addr: SocketAddr, extra: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_path("examples/python/client.py"))
        .args(["--addr", &addr.to_string(), "--json"])
        .args(extra);
    let out = output_within(cmd, "client.py", Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("client.py {extra:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client.py {extra:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("client.py printed no JSON ({e}):\n{stdout}\nstderr:\n{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_sees_what_the_engine_computes() {
    bounded_by(Duration::from_secs(300), async {
        let ready = skip::python_imports("grpc, grpc_tools, grpc_reflection, grpc_health").await;
        if skip::available(ready, "python grpcio", SKIP_NOTICE).is_none() {
            return;
        }
        let server = TestServer::start(demo_engine()).await;

        // String ids, 10,000 Contacts; then packed ids, a count that is not
        // a multiple of 8.
        for (count, packed) in [(10_000u64, false), (1_237, true)] {
            let count_arg = count.to_string();
            let mut extra = vec!["--count", count_arg.as_str()];
            if packed {
                extra.push("--packed");
            }
            let report = run_client(server.addr, &extra).await;
            let answer = demo_answer(&server.engine, "carol", None, count);
            assert_client_report(&report, count, &answer);
            assert_eq!(report["revision"], 1);
            assert!(
                !answer.histogram.is_empty() && answer.allowed > 0,
                "a mixed answer"
            );
        }

        server.shut_down().await;
    })
    .await;
}
