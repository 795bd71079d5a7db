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

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use permd::index::{DEFAULT_MAX_BATCH, Engine, PrincipalKind, PrincipalRef, Question, Snapshot};
use permd::model::ActionContext;
use permd::server::DEFAULT_MAX_MESSAGE_BYTES;
use permd::source::demo::{DEMO_TENANT, contact_id, demo_data};
use tokio::process::Command;

const PYTHON: &str = "python3";
const SKIP_NOTICE: &str =
    "SKIPPED: python grpcio not installed (pip install -r examples/python/requirements.txt)";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Prints past libtest's output capture, so the notice shows on a pass.
fn notice(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Whether python3 can import what the client needs. `Err` says why not.
async fn python_ready() -> Result<(), String> {
    let run = Command::new(PYTHON)
        .args([
            "-c",
            "import grpc, grpc_tools, grpc_reflection, grpc_health",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(60), run).await {
        Err(_) => Err(format!("`{PYTHON} -c import grpc ...` timed out")),
        Ok(Err(e)) => Err(format!("cannot run {PYTHON}: {e}")),
        Ok(Ok(out)) if !out.status.success() => {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
        Ok(Ok(_)) => Ok(()),
    }
}

/// Runs client.py against `addr`; returns its JSON report.
async fn run_client(addr: std::net::SocketAddr, extra: &[&str]) -> serde_json::Value {
    let script = repo().join("examples/python/client.py");
    let mut cmd = Command::new(PYTHON);
    cmd.arg(&script)
        .args(["--addr", &addr.to_string(), "--json"])
        .args(extra)
        .current_dir(repo())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("client.py finished within 120 s")
        .expect("client.py started");
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

/// What the engine answers in-process: allowed count and reasons by name.
fn engine_answer(engine: &Engine, count: u64) -> (u64, BTreeMap<String, u64>, u64) {
    let ids: Vec<uuid::Uuid> = (0..count).map(contact_id).collect();
    let q = Question {
        tenant: DEMO_TENANT.to_owned(),
        principal: PrincipalRef {
            kind: PrincipalKind::User,
            id: "carol".to_owned(),
        },
        object: "contacts".to_owned(),
        action: "bulk_send_email".to_owned(),
        ctx: ActionContext::default(),
        min_revision: 0,
    };
    let a = engine
        .batch_check(&q, &ids, time::OffsetDateTime::now_utc())
        .unwrap();
    let mut histogram = BTreeMap::new();
    for (_, reason) in &a.denials {
        *histogram.entry(reason.as_str().to_owned()).or_insert(0) += 1;
    }
    (u64::from(a.allowed_count), histogram, a.revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_sees_what_the_engine_computes() {
    tokio::time::timeout(Duration::from_secs(300), async {
        if let Err(why) = python_ready().await {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but python grpcio is unusable: {why}\n{SKIP_NOTICE}");
            }
            notice(&format!("{SKIP_NOTICE}\n  ({why})"));
            return;
        }

        let engine = Arc::new(Engine::new(
            Snapshot::build(&demo_data(), 1),
            DEFAULT_MAX_BATCH,
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(permd::server::serve(
            engine.clone(),
            listener,
            DEFAULT_MAX_MESSAGE_BYTES,
            async move {
                let _ = stopped.await;
            },
        ));

        // String ids, 10,000 Contacts; then packed ids, a count that is not
        // a multiple of 8.
        for (count, packed) in [(10_000u64, false), (1_237, true)] {
            let count_arg = count.to_string();
            let mut extra = vec!["--count", count_arg.as_str()];
            if packed {
                extra.push("--packed");
            }
            let report = run_client(addr, &extra).await;

            let services: Vec<&str> = report["services"]
                .as_array()
                .expect("services is a list")
                .iter()
                .filter_map(|s| s.as_str())
                .collect();
            assert!(
                services.contains(&"permd.v1.Authorizer"),
                "reflection (v1alpha) lists the Authorizer: {services:?}"
            );
            assert_eq!(report["health"], "SERVING");
            assert_eq!(report["count"], count);
            assert_eq!(report["revision"], 1);

            let (allowed, histogram, revision) = engine_answer(&engine, count);
            assert_eq!(report["revision"], revision);
            assert_eq!(report["allowed_count"], allowed, "{report}");
            assert_eq!(report["allowed_bits"], allowed, "bitmask agrees: {report}");
            assert_eq!(report["denied_count"], count - allowed);
            let got: BTreeMap<String, u64> = report["denials"]
                .as_object()
                .expect("denials is an object")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
                .collect();
            assert_eq!(got, histogram, "denial reasons by name");
            assert!(!histogram.is_empty() && allowed > 0, "a mixed answer");
        }

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(15), server)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    })
    .await
    .expect("test exceeded its time limit");
}
