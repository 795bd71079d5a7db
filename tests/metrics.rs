//! `/metrics` of a real `permd serve` process: after a few RPCs the scrape
//! holds latency histograms per method, batch sizes, decisions by outcome,
//! cache hits and misses, the revision, the publish time and tenant sizes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::requests::{batch, demo_contacts, user};
use common::server::{Serve, metric_value as value, metrics_get as get};
use permd::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_what_the_server_did() {
    let mut server = Serve::new().metrics().spawn();
    let metrics = server.metrics_port.unwrap();
    let mut client = server.client().await;
    let ids = demo_contacts(1_000);
    let mut allowed = 0;
    for _ in 0..3 {
        let r = client
            .batch_check(batch(user("carol"), "contacts", "bulk_send_email", &ids))
            .await
            .unwrap()
            .into_inner();
        allowed += u64::from(r.allowed_count);
    }
    let _ = client
        .check(pb::CheckRequest {
            tenant: "nope".to_owned(),
            ..Default::default()
        })
        .await;
    // Two refusals by a limit: a tenant name past max_name_bytes.
    for _ in 0..2 {
        let refused = client
            .check(pb::CheckRequest {
                tenant: "t".repeat(300),
                ..Default::default()
            })
            .await;
        assert!(refused.is_err());
    }

    let text = get(metrics, b"GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        value(&text, "permd_refusals_total{setting=\"max_name_bytes\"}"),
        Some(2.0),
        "{text}"
    );
    // Every metric says what it is.
    for line in text.lines().filter(|l| l.starts_with("# TYPE permd_")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("# HELP {name} "))),
            "no # HELP for {name}"
        );
    }
    assert_eq!(
        value(
            &text,
            "permd_rpc_duration_seconds_count{method=\"BatchCheck\",code=\"OK\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "permd_rpc_duration_seconds_count{method=\"Check\",code=\"InvalidArgument\"}"
        ),
        Some(3.0)
    );
    assert_eq!(value(&text, "permd_batch_records_count"), Some(3.0));
    assert_eq!(value(&text, "permd_batch_records_sum"), Some(3_000.0));
    assert_eq!(
        value(&text, "permd_record_decisions_total{outcome=\"ALLOWED\"}"),
        Some(allowed as f64)
    );
    let denied: f64 = text
        .lines()
        .filter(|l| l.starts_with("permd_record_decisions_total{") && !l.contains("ALLOWED"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(denied + allowed as f64, 3_000.0, "{text}");
    assert!(text.contains("permd_record_decisions_total{outcome=\"NO_EMAIL\"}"));
    assert_eq!(
        value(&text, "permd_compiled_cache_total{result=\"miss\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "permd_compiled_cache_total{result=\"hit\"}"),
        Some(2.0)
    );
    assert_eq!(value(&text, "permd_revision"), Some(1.0));
    let published = value(&text, "permd_snapshot_published_timestamp_seconds").unwrap();
    assert!(published > 1.7e9, "{published}");
    assert!(value(&text, "permd_tenant_index_bytes{tenant=\"demo\"}").unwrap() > 10_000.0);
    assert_eq!(
        value(&text, "permd_tenant_records{tenant=\"demo\"}"),
        Some(10_800.0)
    );

    let other = get(metrics, b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    server.child.start_kill().unwrap();
}
