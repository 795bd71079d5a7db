//! What an SRE sees and relies on, from a real `permd serve` process: the
//! probe port (gRPC health beside /metrics, so the API can stay on
//! loopback), build and process metrics, the API token, the decision log
//! (lines, sampling, errors, drops behind a stalled sink without slowing a
//! request) and Admin's audit lines.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::{Duration, Instant};

use common::requests::{authorized, batch, demo_contacts, user};
use common::server::{Serve, bounded_by, metric_value as value, scrape, scratch_dir};
use permd::pb;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const TOKEN: &str = "observability-token-0123";

/// Lines of the decision log once it holds at least `n`.
async fn lines_of(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        if lines.len() >= n || started.elapsed() > Duration::from_secs(10) {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_port_serves_grpc_health_and_metrics_with_build_and_process_figures() {
    bounded_by(Duration::from_secs(60), async {
        let server = Serve::new().metrics().args(["--api-token", TOKEN]).spawn();
        server.channel().await;
        let probe = server.metrics_port.unwrap();
        // The kubelet's gRPC probe: plaintext HTTP/2 on the metrics port, no token.
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{probe}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = HealthClient::new(channel);
        // The API port accepts connections once bound, a moment before the
        // API is served: until then the probe says NOT_SERVING (never that
        // the service is unknown), then SERVING.
        for service in ["", "permd.v1.Authorizer"] {
            let started = std::time::Instant::now();
            loop {
                let status = health
                    .check(HealthCheckRequest {
                        service: service.to_owned(),
                    })
                    .await
                    .unwrap_or_else(|e| panic!("service '{service}': {e:?}"))
                    .into_inner()
                    .status;
                if status == ServingStatus::Serving as i32 {
                    break;
                }
                assert_eq!(
                    status,
                    ServingStatus::NotServing as i32,
                    "service '{service}'"
                );
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "'{service}' never SERVING"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Nothing else is served there.
        let mut authorizer = pb::authorizer_client::AuthorizerClient::new(
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{probe}"))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
        let refused = authorizer
            .batch_check(authorized(
                batch(user("carol"), "contacts", "view", &demo_contacts(1)),
                Some(TOKEN),
            ))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");

        let text = scrape(probe).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.contains(&format!(
                "permd_build_info{{version=\"{}\",commit=\"",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        let rss = value(&text, "process_resident_memory_bytes ").unwrap();
        let peak = value(&text, "permd_process_peak_resident_bytes ").unwrap();
        assert!(rss > 1e6 && peak >= rss, "rss {rss} peak {peak}");
        assert!(value(&text, "process_open_fds ").unwrap() >= 3.0);
        assert!(value(&text, "process_cpu_seconds_total ").unwrap() >= 0.0);
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# HELP {name} "))),
                "no # HELP for {name}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_token_guards_the_authorizer_and_nothing_else() {
    bounded_by(Duration::from_secs(60), async {
        let server = Serve::new().args(["--api-token", TOKEN]).spawn();
        let channel = server.channel().await;
        let mut client = pb::authorizer_client::AuthorizerClient::new(channel.clone());
        let ask = || batch(user("carol"), "contacts", "view", &demo_contacts(10));
        let e = client.batch_check(ask()).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
        assert!(
            e.message().contains("Bearer <API token>"),
            "{}",
            e.message()
        );
        let e = client
            .batch_check(authorized(ask(), Some("not-the-token-0123456")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
        let r = client
            .batch_check(authorized(ask(), Some(TOKEN)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.allowed_count + r.denials.len() as u32, 10);
        // Health on the API port needs no token.
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32);
        // A short token is refused at start, naming the flag.
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_permd"))
            .args(["serve", "--api-token", "short"])
            .output()
            .await
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--api-token"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_log_has_a_line_per_call_sampled_by_kind_and_every_error() {
    bounded_by(Duration::from_secs(60), async {
        let dir = scratch_dir("decision-log");
        let log = dir.join("decisions.jsonl");
        let server = Serve::new()
            .args(["--decision-log", log.to_str().unwrap()])
            .args(["--decision-log-sample", "checks=0,denials=1,batches=1"])
            .spawn();
        let mut client = pb::authorizer_client::AuthorizerClient::new(server.channel().await);
        let ids = demo_contacts(1_000);
        let mut request =
            tonic::Request::new(batch(user("carol"), "contacts", "bulk_send_email", &ids));
        request.metadata_mut().insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        request
            .metadata_mut()
            .insert("x-request-id", "req-42".parse().unwrap());
        let answer = client.batch_check(request).await.unwrap().into_inner();
        // Allowed single checks are sampled out (checks=0), denied ones kept.
        let check = |id: uuid::Uuid, who: &str| pb::CheckRequest {
            tenant: "demo".to_owned(),
            principal: user(who),
            object: "contacts".to_owned(),
            action: "view".to_owned(),
            record_id: id.to_string(),
            ..Default::default()
        };
        let allowed = client
            .check(check(ids[1], "carol"))
            .await
            .unwrap()
            .into_inner();
        assert!(allowed.allowed);
        let denied = client
            .check(check(ids[1], "dave"))
            .await
            .unwrap()
            .into_inner();
        assert!(!denied.allowed);
        let error = client.check(check(ids[1], "nobody")).await.unwrap_err();
        assert_eq!(error.code(), Code::NotFound);

        let lines = lines_of(&log, 3).await;
        assert_eq!(lines.len(), 3, "{lines:#?}");
        let b = &lines[0];
        assert_eq!(b["method"], "BatchCheck");
        assert_eq!(b["code"], "OK");
        assert_eq!(b["tenant"], "demo");
        assert_eq!(b["principal"], "user:carol");
        assert_eq!(b["object"], "contacts");
        assert_eq!(b["action"], "bulk_send_email");
        assert_eq!(b["records"], 1_000);
        assert_eq!(b["allowed"], answer.allowed_count);
        let denied_total: u64 = b["denied"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(denied_total, answer.denials.len() as u64);
        assert_eq!(b["revision"], answer.revision);
        assert_eq!(b["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(b["request_id"], "req-42");
        assert!(b["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(b["latency_us"].as_u64().unwrap() > 0);
        assert!(b["time"].as_str().unwrap().ends_with('Z'));
        let d = &lines[1];
        assert_eq!(
            (d["method"].as_str(), d["allowed"].as_u64()),
            (Some("Check"), Some(0))
        );
        assert_eq!(d["denied"]["NO_RECORD_ACCESS"], 1, "{d}");
        let e = &lines[2];
        assert_eq!(e["code"], "NotFound");
        assert!(e["message"].as_str().unwrap().contains("nobody"), "{e}");
    })
    .await;
}

/// A sink that never drains (a FIFO whose reader stopped): requests keep
/// their latency and the log counts what it dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_decision_log_drops_lines_and_never_blocks_a_request() {
    bounded_by(Duration::from_secs(120), async {
        let dir = scratch_dir("decision-log-stalled");
        let fifo = dir.join("stalled.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opened for reading and never read: the writer blocks once the
        // pipe's 64 KiB are full.
        let fifo_path = fifo.clone();
        let _reader = std::thread::spawn(move || {
            let _held = std::fs::File::open(fifo_path).unwrap();
            std::thread::sleep(Duration::from_secs(115));
        });
        let server = Serve::new()
            .metrics()
            .args(["--decision-log", fifo.to_str().unwrap()])
            .args(["--decision-log-sample", "checks=1"])
            .spawn();
        let mut client = pb::authorizer_client::AuthorizerClient::new(server.channel().await);
        let ids = demo_contacts(10);
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        // Far more lines than the pipe and the queue hold.
        for i in 0..12_000u32 {
            let t = Instant::now();
            client
                .check(pb::CheckRequest {
                    tenant: "demo".to_owned(),
                    principal: user("carol"),
                    object: "contacts".to_owned(),
                    action: "view".to_owned(),
                    record_id: ids[(i % 10) as usize].to_string(),
                    ..Default::default()
                })
                .await
                .unwrap();
            slowest = slowest.max(t.elapsed());
        }
        let text = scrape(server.metrics_port.unwrap()).await;
        let dropped = value(&text, "permd_decision_log_lines_total{result=\"dropped\"}").unwrap();
        let written =
            value(&text, "permd_decision_log_lines_total{result=\"written\"}").unwrap_or(0.0);
        assert!(dropped > 2_000.0, "dropped {dropped}, written {written}");
        assert!(
            dropped + written <= 12_000.0,
            "dropped {dropped}, written {written}"
        );
        // No request waited for the sink: a blocked write would stall the
        // first request past the queue for as long as the reader sleeps.
        assert!(
            slowest < Duration::from_secs(2),
            "slowest request {slowest:?} over {:?}",
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_write_is_audited_with_a_token_fingerprint_and_the_keys() {
    bounded_by(Duration::from_secs(60), async {
        let dir = scratch_dir("audit");
        let stderr = dir.join("stderr.log");
        let admin_token = "admin-token-for-audit-0123";
        let server = Serve::new()
            .args(["--admin-token", admin_token, "--log-format", "json"])
            .env("RUST_LOG", "warn")
            .log_to(&stderr)
            .spawn();
        let channel = server.channel().await;
        let mut admin = pb::admin_client::AdminClient::new(channel);
        let write = || pb::WriteRequest {
            mutations: vec![pb::Mutation {
                tenant: "demo".to_owned(),
                entity: "user".to_owned(),
                op: Some(pb::mutation::Op::UpsertJson(
                    r#"{"id": "audited", "roles": ["sales_rep"]}"#.to_owned(),
                )),
            }],
        };
        let r = admin
            .write(authorized(write(), Some(admin_token)))
            .await
            .unwrap()
            .into_inner();
        let e = admin
            .write(authorized(write(), Some("wrong-token-0123456789")))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied);
        let started = Instant::now();
        let lines = loop {
            let text = std::fs::read_to_string(&stderr).unwrap_or_default();
            let audit: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["target"] == "audit")
                .collect();
            if audit.len() >= 2 || started.elapsed() > Duration::from_secs(10) {
                break audit;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // RUST_LOG=warn does not silence the audit.
        assert_eq!(lines.len(), 2, "{lines:#?}");
        let applied = &lines[0]["fields"];
        assert_eq!(applied["message"], "Admin.Write applied");
        assert_eq!(applied["revision"], r.revision);
        assert_eq!(applied["counts"], "upsert user=1");
        assert_eq!(applied["keys"], "demo/user/audited");
        let fingerprint = applied["token"].as_str().unwrap();
        assert!(fingerprint.starts_with("sha256:") && !fingerprint.contains(admin_token));
        assert_eq!(lines[1]["fields"]["message"], "Admin.Write refused");
        assert_eq!(lines[1]["fields"]["code"], "PermissionDenied");
    })
    .await;
}
