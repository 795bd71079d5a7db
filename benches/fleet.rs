//! The fleet figures (README "Running a fleet"): a NATS-mode sidecar's cold
//! start from a 1,000,000-Contact snapshot beside a direct-mode bootstrap
//! from PostgreSQL, the relay's throughput, and commit → visible in 20
//! sidecars at a sustained write rate.
//!
//! `cargo bench --bench fleet` needs PostgreSQL and a nats-server with
//! JetStream. PERMD_BENCH_DATABASE_URL (default
//! postgres://postgres@127.0.0.1:5432/permd_bench, shared with the feed
//! bench: created and loaded once, then reused), PERMD_BENCH_NATS_URL
//! (default nats://127.0.0.1:4222), PERMD_BENCH_CONTACTS (1,000,000),
//! PERMD_BENCH_SIDECARS (20), PERMD_BENCH_RATE (1,000 changes/s),
//! PERMD_BENCH_SECS (20), PERMD_BENCH_PER_TXN (record changes per writer
//! transaction, 1; the rate counts changes). The relay and the sidecars
//! run in this process, each sidecar with its own NATS connection and
//! engine, exactly as `permd relay` and `permd serve --nats-url` run them;
//! the stream and the bucket (prefix `fleetbench<pid>`) are deleted at the
//! end.
//!
//! Commit → visible is, per transaction and sidecar, the wall time at which
//! that sidecar published a revision holding it, minus the time the
//! writer's one-statement transaction returned.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use permd::index::{Engine, Snapshot};
use permd::model::data::EmailStatus;
use permd::source::generate::{GenSpec, contact_ids};
use permd::source::nats::NatsConfig;
use permd::source::nats::follow::{self, FollowConfig};
use permd::source::nats::relay::{self, RelayConfig};
use permd::source::postgres::feed::Readiness;
use permd::source::postgres::{self as pg};
use sqlx::{Connection, PgConnection};
use support::{env_or, now_secs, percentile};
use tokio::sync::watch;

/// The sidecars' and the relay's own allocator, as `permd serve` and
/// `permd relay` run them (src/main.rs): under glibc's, the cold starts'
/// six million-Contact loads left the process slow to apply changes
/// afterwards (commit → visible p50 ~300 ms instead of ~8 ms).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// (revision, wall time) each time a sidecar published a revision.
type Seen = Arc<Mutex<Vec<(u64, f64)>>>;

fn main() {
    support::bench_main("fleet", run);
}

/// A NATS-mode sidecar in this process: its engine and readiness.
fn sidecar(nats: &NatsConfig) -> (Arc<Engine>, watch::Receiver<Readiness>, watch::Sender<bool>) {
    let engine = Arc::new(Engine::new(Snapshot::default(), 100_000));
    let (readiness, ready) = watch::channel(Readiness::default());
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(follow::run(
        engine.clone(),
        FollowConfig {
            nats: nats.clone(),
            tenants: None,
            max_staleness: Duration::from_secs(60),
        },
        readiness,
        stopped,
    ));
    (engine, ready, stop)
}

async fn loaded(ready: &mut watch::Receiver<Readiness>) {
    ready.wait_for(|r| r.loaded).await.unwrap();
}

async fn run() {
    let url = support::database_url();
    let nats_url = std::env::var("PERMD_BENCH_NATS_URL")
        .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let contacts: usize = env_or("PERMD_BENCH_CONTACTS", 1_000_000);
    let sidecars: usize = env_or("PERMD_BENCH_SIDECARS", 20);
    let rate: f64 = env_or("PERMD_BENCH_RATE", 1_000.0);
    let secs: u64 = env_or("PERMD_BENCH_SECS", 20);
    let per_txn: u64 = env_or("PERMD_BENCH_PER_TXN", 1u64).max(1);
    let spec = GenSpec {
        contacts,
        ..GenSpec::default()
    };

    // The database, created and loaded once (shared with the feed bench).
    let pool = support::bench_database(&url, &spec).await;
    let ids = contact_ids(&spec);

    // The relay, in this process.
    let nats = NatsConfig::new(&nats_url, &format!("fleetbench{}", std::process::id())).unwrap();
    let (_stop_relay, relay_stopped) = watch::channel(false);
    tokio::spawn(relay::run(
        RelayConfig {
            database_url: url.clone(),
            nats: nats.clone(),
            snapshot_every: 1_000_000,
            snapshot_interval: Duration::from_secs(3600),
            snapshot_format: permd::source::snapshot::FORMAT,
            stream_max_age: Duration::from_secs(7200),
            poll_interval: Duration::from_secs(1),
            changelog_retention: None,
        },
        relay_stopped,
    ));
    let client = nats.connect("fleet bench").await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    // The relay's first round is written when the manifest is.
    let started = Instant::now();
    loop {
        if let Ok(store) = js.get_object_store(nats.bucket()).await
            && store.info("manifest").await.is_ok()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the relay wrote its first snapshots"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "relay: first snapshot round of {contacts} contacts written {:.1} s after start",
        started.elapsed().as_secs_f64()
    );

    let cold_starts: usize = env_or("PERMD_BENCH_COLD_STARTS", 3);
    // 1. Cold start, side by side: a NATS-mode sidecar from the snapshot,
    // and a direct-mode bootstrap from PostgreSQL (read + index), 3 each.
    let mut from_nats = Vec::new();
    let mut from_pg = Vec::new();
    for _ in 0..cold_starts {
        let started = Instant::now();
        let (engine, mut ready, stop) = sidecar(&nats);
        loaded(&mut ready).await;
        from_nats.push(started.elapsed().as_secs_f64());
        let _ = stop.send(true);
        drop(engine);
        permd::memory::settle();

        let started = Instant::now();
        let booted = pg::bootstrap_snapshot(&pool).await.unwrap();
        from_pg.push(started.elapsed().as_secs_f64());
        drop(booted);
        permd::memory::settle();
    }
    if cold_starts > 0 {
        from_nats.sort_by(f64::total_cmp);
        from_pg.sort_by(f64::total_cmp);
        let mid = from_nats.len() / 2;
        println!(
            "COLD START {contacts} contacts: from the NATS snapshot median {:.2} s (min {:.2}, max {:.2}); from PostgreSQL median {:.2} s (min {:.2}, max {:.2}); {:.1}x",
            from_nats[mid],
            from_nats[0],
            from_nats[from_nats.len() - 1],
            from_pg[mid],
            from_pg[0],
            from_pg[from_pg.len() - 1],
            from_pg[mid] / from_nats[mid]
        );
    }

    // 2. 20 sidecars, loaded one after the other.
    let mut fleet = Vec::new();
    for _ in 0..sidecars {
        let (engine, mut ready, stop) = sidecar(&nats);
        loaded(&mut ready).await;
        fleet.push((engine, stop));
    }
    println!("{sidecars} sidecars loaded");
    let mut stream = js.get_stream(nats.stream()).await.unwrap();

    // 3. Relay throughput: 100 transactions of 1,000 record changes
    // committed at once; the time until the stream holds the last one.
    if env_or("PERMD_BENCH_THROUGHPUT", 1u8) == 1 {
        let base = pg::revision(&pool).await.unwrap();
        let mut conn = PgConnection::connect(&url).await.unwrap();
        let mut runs = Vec::new();
        for round in 0..3u64 {
            let first_commit = Instant::now();
            for t in 0..100u64 {
                let chunk: Vec<uuid::Uuid> = (0..1000)
                    .map(|i| {
                        ids[(((round * 100 + t) * 1000 + i) * 7919 % ids.len() as u64) as usize]
                    })
                    .collect();
                sqlx::query(
                    "UPDATE permd.records SET contact = jsonb_set(coalesce(contact, '{}'::jsonb), '{email_status}', to_jsonb($2::text)) \
                     WHERE tenant = 'bench' AND id = ANY($1)",
                )
                .bind(&chunk)
                .bind(EmailStatus::ALL[((round + t) % 4) as usize].as_str())
                .execute(&mut conn)
                .await
                .unwrap();
            }
            let committed = first_commit.elapsed();
            let last = base + (round + 1) * 100;
            loop {
                let state = stream.info().await.unwrap().state.clone();
                let message = stream.get_raw_message(state.last_sequence).await.unwrap();
                let part =
                    permd::source::nats::decode_part(Some(&message.headers), &message.payload)
                        .unwrap();
                if part.revision >= last && part.index == part.count {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let total = first_commit.elapsed();
            println!(
                "relay: 100,000 record changes in 100 transactions: committed in {:.2} s, all in the stream after {:.2} s",
                committed.as_secs_f64(),
                total.as_secs_f64()
            );
            runs.push(100_000.0 / total.as_secs_f64());
        }
        runs.sort_by(f64::total_cmp);
        println!(
            "RELAY THROUGHPUT: median {:.0} record changes/s from commit to stream (min {:.0}, max {:.0}; the database's commits included)",
            runs[1], runs[0], runs[2]
        );
        let last = pg::revision(&pool).await.unwrap();
        for (engine, _) in &fleet {
            engine.wait_for(last, None).await.unwrap();
        }
    }

    if fleet.is_empty() {
        return;
    }
    // 4. Commit → visible in every sidecar at `rate` changes/s: 4 writers,
    // `per_txn` changes per transaction.
    let seen: Vec<Seen> = (0..fleet.len()).map(|_| Arc::default()).collect();
    for ((engine, _), seen) in fleet.iter().zip(&seen) {
        let engine = engine.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut last = engine.revision();
            loop {
                if engine.wait_for(last + 1, None).await.is_err() {
                    return;
                }
                last = engine.revision();
                seen.lock().unwrap().push((last, now_secs()));
            }
        });
    }
    let first_revision = pg::revision(&pool).await.unwrap() + 1;
    let commits = support::paced_writers(&url, &ids, rate, secs, per_txn).await;
    let last_revision = pg::revision(&pool).await.unwrap();
    for (engine, _) in &fleet {
        tokio::time::timeout(
            Duration::from_secs(120),
            engine.wait_for(last_revision, None),
        )
        .await
        .expect("every sidecar caught up within 120 s")
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let committed = support::commit_revisions(&pool, &commits, first_revision, last_revision).await;
    let mut all = Vec::new();
    let mut per_sidecar_p99 = Vec::new();
    for seen in &seen {
        let seen = seen.lock().unwrap().clone();
        let mut mine: Vec<f64> = committed
            .iter()
            .filter_map(|(rev, at)| {
                let i = seen.partition_point(|(r, _)| r < rev);
                seen.get(i).map(|(_, t)| (t - at) * 1000.0)
            })
            .collect();
        mine.sort_by(f64::total_cmp);
        per_sidecar_p99.push(percentile(&mine, 0.99));
        all.extend(mine);
    }
    all.sort_by(f64::total_cmp);
    per_sidecar_p99.sort_by(f64::total_cmp);
    println!(
        "COMMIT→VISIBLE in {sidecars} sidecars at {:.0} changes/s for {secs} s ({} transactions of {per_txn} × {sidecars} sidecars): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; per-sidecar p99 from {:.1} to {:.1} ms",
        (committed.len() as u64 * per_txn) as f64 / secs as f64,
        committed.len(),
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(f64::NAN),
        per_sidecar_p99.first().copied().unwrap_or(f64::NAN),
        per_sidecar_p99.last().copied().unwrap_or(f64::NAN),
    );

    // Clean up what this run made in NATS.
    for (_, stop) in &fleet {
        let _ = stop.send(true);
    }
    let _ = js.delete_stream(nats.stream()).await;
    let _ = js.delete_object_store(nats.bucket()).await;
}
