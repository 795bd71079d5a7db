//! The PostgreSQL figures: bootstrap of a 1,000,000-Contact tenant, change
//! feed throughput, and commit → visible latency at a sustained write rate.
//!
//! `cargo bench --bench feed` (needs PostgreSQL; PERMD_BENCH_DATABASE_URL,
//! default postgres://postgres@127.0.0.1:5432/permd_bench, is created and
//! loaded once, then reused). PERMD_BENCH_CONTACTS sets the tenant size
//! (default 1,000,000), PERMD_BENCH_RATE the write rate (default 1,000
//! changes/s) and PERMD_BENCH_SECS how long it runs (default 20).
//!
//! Commit → visible is measured per transaction as the wall time at which
//! the follower published a revision that holds it, minus the time the
//! writer's one-statement transaction returned (its commit done).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use permd::index::{Engine, Snapshot};
use permd::model::data::EmailStatus;
use permd::source::generate::{GenSpec, contact_ids};
use permd::source::postgres::feed::{FeedConfig, Readiness};
use permd::source::postgres::{self as pg};
use sqlx::{Connection, PgConnection};
use support::{env_or, now_secs, percentile};
use tokio::sync::watch;

/// The follower's own allocator, as `permd serve` runs it (src/main.rs):
/// what a change costs to apply depends on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    support::bench_main("feed", run);
}

async fn run() {
    let url = support::database_url();
    let contacts: usize = env_or("PERMD_BENCH_CONTACTS", 1_000_000);
    let rate: f64 = env_or("PERMD_BENCH_RATE", 1_000.0);
    let secs: u64 = env_or("PERMD_BENCH_SECS", 20);
    let per_txn: u64 = env_or("PERMD_BENCH_PER_TXN", 1u64).max(1);
    let spec = GenSpec {
        contacts,
        ..GenSpec::default()
    };

    // The database, created and loaded once.
    let pool = support::bench_database(&url, &spec).await;

    // 1. Bootstrap: read one consistent snapshot and index it, 3 times,
    //    as a sidecar does (each row indexed as it arrives).
    let mut runs = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let booted = pg::bootstrap_snapshot(&pool).await.unwrap();
        let total = started.elapsed();
        drop(booted);
        permd::memory::settle();
        println!("bootstrap: read and index {:.2} s", total.as_secs_f64());
        runs.push(total.as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    println!(
        "BOOTSTRAP {contacts} contacts: median {:.2} s (min {:.2}, max {:.2})",
        runs[1], runs[0], runs[2]
    );

    // A follower, as `permd serve --database-url` runs it.
    let engine = Arc::new(Engine::new(Snapshot::default(), 100_000));
    let (readiness, ready) = watch::channel(Readiness::default());
    let (_stop, stopped) = watch::channel(false);
    tokio::spawn(pg::feed::run(
        engine.clone(),
        FeedConfig {
            database_url: url.clone(),
            max_staleness: Duration::from_secs(60),
            retention: None,
            poll_interval: Duration::from_secs(1),
        },
        readiness,
        stopped,
    ));
    while !ready.borrow().loaded {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids = contact_ids(&spec);
    // 2. Throughput of the feed's catch-up path (read the changelog,
    // decode, apply as one revision): 100 transactions of 1,000 record
    // changes each, applied to an engine bootstrapped before them.
    {
        let (file, r0) = pg::bootstrap(&pool).await.unwrap();
        let behind = Engine::new(Snapshot::build(&file, r0), 100_000);
        drop(file);
        let mut conn = PgConnection::connect(&url).await.unwrap();
        for t in 0..100u64 {
            let mut tx = conn.begin().await.unwrap();
            let chunk: Vec<uuid::Uuid> = (0..1000)
                .map(|i| ids[((t * 1000 + i) * 7919 % ids.len() as u64) as usize])
                .collect();
            sqlx::query(
                // Contacts have no owner (R8): who they belong to is their
                // account team.
                "UPDATE permd.records SET teams = jsonb_build_object('account_team', jsonb_build_array('u' || (random() * 1999)::int)), \
                 contact = jsonb_set(coalesce(contact, '{}'::jsonb), '{email_status}', to_jsonb($2::text)) \
                 WHERE tenant = 'bench' AND id = ANY($1)",
            )
            .bind(&chunk)
            .bind(EmailStatus::ALL[(t % 4) as usize].as_str())
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
        let mut runs = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let batch = pg::changes_after(&pool, r0, 2_000)
                .await
                .unwrap()
                .transactions;
            let read = started.elapsed();
            let last = batch.last().map(|(r, _)| *r).unwrap();
            let all: Vec<_> = batch.into_iter().flat_map(|(_, c)| c).collect();
            let n = all.len();
            // Apply to a fresh copy each run (the engine shares, so cloning
            // the snapshot is cheap).
            let fresh = Engine::new(
                Snapshot {
                    revision: r0,
                    tenants: behind.snapshot().tenants.clone(),
                },
                100_000,
            );
            let applied_at = Instant::now();
            fresh.apply_as(&all, Some(last)).unwrap();
            let apply = applied_at.elapsed();
            let total = started.elapsed().as_secs_f64();
            println!(
                "feed catch-up: {n} record changes: read+decode {:.2} s, apply {:.2} s = {:.0} changes/s",
                read.as_secs_f64(),
                apply.as_secs_f64(),
                n as f64 / total
            );
            runs.push(n as f64 / total);
        }
        runs.sort_by(f64::total_cmp);
        println!(
            "FEED APPLY: median {:.0} record changes/s (read, decode and apply; min {:.0}, max {:.0})",
            runs[1], runs[0], runs[2]
        );
    }
    while engine.revision() < pg::revision(&pool).await.unwrap() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // 3. Commit → visible at a sustained rate: 4 writers, one change per
    // transaction, paced to `rate` in all.
    let published: Arc<std::sync::Mutex<Vec<(u64, f64)>>> = Arc::default();
    {
        let engine = engine.clone();
        let published = published.clone();
        tokio::spawn(async move {
            let mut last = engine.revision();
            loop {
                let r = engine.revision();
                if r != last {
                    published.lock().unwrap().push((r, now_secs()));
                    last = r;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        });
    }
    let first_revision = engine.revision() + 1;
    let commits = support::paced_writers(&url, &ids, rate, secs, per_txn).await;
    let written = commits.len() as u64 * per_txn;
    let last_revision = pg::revision(&pool).await.unwrap();
    while engine.revision() < last_revision {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let committed = support::commit_revisions(&pool, &commits, first_revision, last_revision).await;
    let published = published.lock().unwrap().clone();
    let mut latencies: Vec<f64> = committed
        .iter()
        .filter_map(|(rev, at)| {
            published
                .iter()
                .find(|(r, _)| *r >= *rev)
                .map(|(_, seen)| (seen - at) * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let achieved = written as f64 / secs as f64;
    println!(
        "COMMIT→VISIBLE at {achieved:.0} changes/s ({per_txn} per transaction) for {secs} s ({} transactions, {} publishes): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        published.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
}
