//! Smoke test of the load tool: `permd bench` (the real binary) for two
//! seconds against a permd served in-process on an ephemeral loopback port.
//! It must stop by itself, check every answer and write figures whose keys
//! carry their units. Performance is not asserted here: that is what
//! `cargo bench` and `permd bench` are for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::server::{TestServer, demo_engine, output_within, scratch_dir};
use tokio::process::Command;

/// `permd bench <args>` to its end: it must stop by itself within 60 s.
async fn bench(args: &[&str]) -> std::process::Output {
    let mut run = Command::new(env!("CARGO_BIN_EXE_permd"));
    run.arg("bench").args(args);
    output_within(run, "permd bench", Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("permd bench did not stop by itself: {e}"))
}

/// A run that must succeed: its printed report and its JSON figures.
async fn bench_figures(args: &[&str], json: &std::path::Path) -> (String, serde_json::Value) {
    let mut all = args.to_vec();
    all.extend(["--json", json.to_str().unwrap()]);
    let out = bench(&all).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    (stdout, figures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permd_bench_runs_two_seconds_and_reports_figures_with_units() {
    let server = TestServer::start(demo_engine()).await;
    let addr = server.url();
    let dir = scratch_dir("bench-smoke");
    let json = dir.join("bench.json");
    let (stdout, figures) = bench_figures(
        &[
            "--addr",
            &addr,
            "--duration",
            "2",
            "--batch",
            "1000",
            "--concurrency",
            "2",
        ],
        &json,
    )
    .await;
    assert!(stdout.contains("p50"), "{stdout}");
    assert_eq!(figures["errors"], 0);
    assert_eq!(figures["batch"], 1000);
    assert!(figures["requests"].as_u64().unwrap() > 0, "{figures}");
    let p50 = figures["latency_ms"]["p50"].as_f64().unwrap();
    let p99 = figures["latency_ms"]["p99"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= p99, "{figures}");
    assert!(figures["record_decisions_per_s"].as_f64().unwrap() > 0.0);
    let duration = figures["duration_s"].as_f64().unwrap();
    assert!((2.0..10.0).contains(&duration), "{figures}");
    // The demo tenant's ids are known: nothing should be UNKNOWN_RECORD,
    // and carol's bulk email is allowed for most Contacts.
    assert_eq!(figures["unknown_record_fraction"], 0.0);
    let allowed = figures["allowed_fraction"].as_f64().unwrap();
    assert!((0.5..0.9).contains(&allowed), "{figures}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `--handles`: each batch's handles are asked once, and their answer
/// compared with the ids' (a difference fails the run), before the clock
/// starts; the run then sends only handles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permd_bench_sends_record_handles_and_gets_the_answers_ids_get() {
    let server = TestServer::start(demo_engine()).await;
    let addr = server.url();
    let dir = scratch_dir("bench-handles");
    let args = |flag: &'static str| {
        [
            "--addr",
            &addr,
            "--duration",
            "1",
            "--batch",
            "1000",
            "--concurrency",
            "2",
            flag,
        ]
        .map(str::to_owned)
    };
    let run = |flag: &'static str, file: &'static str| {
        let args = args(flag);
        let json = dir.join(file);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            bench_figures(&args, &json).await.1
        }
    };
    let by_handles = run("--handles", "handles.json").await;
    assert_eq!(by_handles["ids"], "handles", "{by_handles}");
    assert_eq!(by_handles["errors"], 0, "{by_handles}");
    assert!(by_handles["requests"].as_u64().unwrap() > 0, "{by_handles}");
    // Every handle names a known Contact: none is UNKNOWN_RECORD, and
    // carol's bulk email is allowed for most, as by ids.
    assert_eq!(by_handles["unknown_record_fraction"], 0.0);
    let allowed = by_handles["allowed_fraction"].as_f64().unwrap();
    assert!((0.5..0.9).contains(&allowed), "{by_handles}");
    // `--packed-denials`: every answer's packed arrays are checked against
    // its bitmask (a mismatch is an error) and give the same fractions.
    let packed = run("--packed-denials", "packed-denials.json").await;
    assert_eq!(packed["packed_denials"], true, "{packed}");
    assert_eq!(packed["errors"], 0, "{packed}");
    assert!(packed["requests"].as_u64().unwrap() > 0, "{packed}");
    let packed_allowed = packed["allowed_fraction"].as_f64().unwrap();
    assert!((0.5..0.9).contains(&packed_allowed), "{packed}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permd_bench_fails_clearly_on_a_wrong_principal() {
    let server = TestServer::start(demo_engine()).await;
    let addr = server.url();
    let out = bench(&["--addr", &addr, "--duration", "1", "--principal", "nobody"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("NotFound") && stderr.contains("nobody"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permd_bench_refuses_an_unbounded_run() {
    let out = bench(&["--addr", "http://127.0.0.1:9", "--duration", "0"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--duration"), "{stderr}");
}

/// With `--server-metrics`, the server's own CPU over the run is read from
/// its `process_cpu_seconds_total` before and after: a real `permd serve`
/// process, apart from the client's CPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permd_bench_reports_the_servers_cpu_per_record_from_its_metrics() {
    let server = common::server::Serve::new().metrics().quiet().spawn();
    let _ = server.channel_within(Duration::from_secs(60)).await;
    let metrics = format!("http://127.0.0.1:{}/metrics", server.metrics_port.unwrap());
    let dir = scratch_dir("bench-cpu");
    let json = dir.join("bench.json");
    let (stdout, figures) = bench_figures(
        &[
            "--addr",
            &server.url(),
            "--duration",
            "2",
            "--concurrency",
            "2",
            "--server-metrics",
            &metrics,
        ],
        &json,
    )
    .await;
    assert!(stdout.contains("ns per record decided"), "{stdout}");
    let cpu = figures["server_cpu_s"].as_f64().unwrap();
    let per_record = figures["server_cpu_ns_per_record"].as_f64().unwrap();
    // Two seconds of two concurrent 10,000-record requests keep the server
    // busy: some CPU, and at most a few microseconds per record.
    assert!(cpu > 0.0 && cpu < 10.0, "{figures}");
    assert!(per_record > 0.0 && per_record < 5_000.0, "{figures}");
    assert!(figures["client_cpu_s"].as_f64().unwrap() > 0.0, "{figures}");

    // Not a metrics endpoint: a clear error, not a figure.
    let out = bench(&[
        "--addr",
        &server.url(),
        "--duration",
        "1",
        "--server-metrics",
        "127.0.0.1:1",
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--server-metrics") && stderr.contains("http://"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
