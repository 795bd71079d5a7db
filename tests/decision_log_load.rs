//! The decision log under load, behind a slow sink: p99 latency of
//! `permd bench` (the real binary, over loopback gRPC) against a server
//! logging every call to a pipe drained at 40 KiB/s stays within 20% of
//! the same server with the log off. The two run side by side and are
//! measured in alternating rounds (medians of the rounds' p99), so the
//! machine's noise falls on both. Alone in its test binary: nothing else
//! runs while it measures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::Read;
use std::time::Duration;

use common::server::{Serve, bounded_by, metric_value, output_within, scrape, scratch_dir};
use tokio::process::Command;

const ROUNDS: usize = 7;

/// p99 in ms and the number of calls of a two-second `permd bench` run of
/// BatchChecks of 10: many calls, so many lines.
async fn p99(url: &str, dir: &std::path::Path, round: usize, name: &str) -> (f64, u64) {
    let json = dir.join(format!("{name}-{round}.json"));
    let mut bench = Command::new(env!("CARGO_BIN_EXE_permd"));
    bench.args([
        "bench",
        "--addr",
        url,
        "--duration",
        "2",
        "--batch",
        "10",
        "--concurrency",
        "4",
        "--json",
        json.to_str().unwrap(),
    ]);
    let out = output_within(bench, "permd bench", Duration::from_secs(60))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (
        report["latency_ms"]["p99"].as_f64().unwrap(),
        report["requests"].as_u64().unwrap(),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p99_with_the_decision_log_on_a_slow_sink_stays_within_20_percent_of_log_off() {
    bounded_by(Duration::from_secs(300), async {
        let dir = scratch_dir("decision-log-load");
        let fifo = dir.join("slow.fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        // The slow sink: 4 KiB every 100 ms (about a hundred lines a
        // second), until the pipe closes.
        let reader_path = fifo.clone();
        let reader = std::thread::spawn(move || {
            let mut pipe = std::fs::File::open(reader_path).unwrap();
            let mut buf = [0u8; 4096];
            let mut total = 0u64;
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
                std::thread::sleep(Duration::from_millis(100));
            }
            total
        });
        // Both record metrics, so the log is the only difference.
        let off = Serve::new().quiet().metrics().spawn();
        let on = Serve::new()
            .quiet()
            .metrics()
            .args(["--decision-log", fifo.to_str().unwrap()])
            .args(["--decision-log-sample", "checks=1,denials=1,batches=1"])
            .spawn();
        off.channel().await;
        on.channel().await;
        let (mut p99_off, mut p99_on, mut calls_on) = (Vec::new(), Vec::new(), 0);
        for round in 0..ROUNDS {
            // Alternate which goes first, so a trend in the machine's load
            // falls on both.
            let first_off = round % 2 == 0;
            for off_now in [first_off, !first_off] {
                if off_now {
                    p99_off.push(p99(&off.url(), &dir, round, "off").await.0);
                } else {
                    let (p, calls) = p99(&on.url(), &dir, round, "on").await;
                    p99_on.push(p);
                    calls_on += calls;
                }
            }
        }
        let (off_ms, on_ms) = (median(p99_off.clone()), median(p99_on.clone()));
        eprintln!(
            "p99 ms, log off {p99_off:?} (median {off_ms:.3}), log on a slow sink {p99_on:?} (median {on_ms:.3}): {:+.1}%",
            (on_ms / off_ms - 1.0) * 100.0
        );
        assert!(
            on_ms <= off_ms * 1.2,
            "p99 with the decision log on a slow sink {on_ms:.3} ms is more than 20% above {off_ms:.3} ms without it"
        );
        // The sink really was too slow: fewer lines reached it than calls
        // were made (the rest wait in the queue or were dropped).
        let text = scrape(on.metrics_port.unwrap()).await;
        let written = metric_value(&text, "permd_decision_log_lines_total{result=\"written\"}")
            .unwrap_or(0.0);
        assert!(
            written < calls_on as f64 * 0.9,
            "the slow sink kept up ({written} lines of {calls_on} calls written): not a slow sink\n{text}"
        );
        drop(on);
        drop(off);
        let _ = reader.join();
    })
    .await;
}
