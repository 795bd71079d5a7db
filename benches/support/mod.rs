//! What the PostgreSQL benches (feed, fleet) share: their settings from the
//! environment, percentiles, and the bench database, created and loaded
//! once, then reused.
#![allow(dead_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use permd::model::data::{ContactState, EmailStatus};
use permd::source::generate::{GenSpec, generate};
use permd::source::postgres as pg;
use sqlx::{Connection, PgConnection, PgPool};

/// A bench's `main`: runs `run` on a 2-worker runtime with warn-level logs
/// (RUST_LOG overrides), only under `cargo bench`: `cargo test` runs bench
/// targets too, and these need a database and minutes.
pub fn bench_main<F: std::future::Future<Output = ()>>(name: &str, run: impl FnOnce() -> F) {
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name} bench: run with `cargo bench --bench {name}`");
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// PERMD_BENCH_DATABASE_URL (default
/// postgres://postgres@127.0.0.1:5432/permd_bench).
pub fn database_url() -> String {
    std::env::var("PERMD_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/permd_bench".to_owned())
}

/// The bench database at `url`, created, migrated and holding `spec`'s
/// tenant (loaded only when its Contact count differs; the load's own
/// changelog pruned).
pub async fn bench_database(url: &str, spec: &GenSpec) -> PgPool {
    let (base, name) = url.rsplit_once('/').unwrap();
    let mut admin = PgConnection::connect(&format!("{base}/postgres"))
        .await
        .expect("PostgreSQL must be reachable for this bench");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !exists {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    let pool = pg::connect(url).await.unwrap();
    pg::migrate(&pool).await.unwrap();
    let have: i64 =
        sqlx::query_scalar("SELECT count(*) FROM permd.records WHERE object = 'contacts'")
            .fetch_one(&pool)
            .await
            .unwrap();
    if have != spec.contacts as i64 {
        let started = Instant::now();
        let data = generate(spec);
        println!("loading {} contacts (once) ...", spec.contacts);
        pg::load(&pool, &data).await.unwrap();
        pg::prune(&pool, Duration::ZERO).await.unwrap();
        println!("loaded in {:.1} s", started.elapsed().as_secs_f64());
    }
    pool
}

/// 4 writers changing `per_txn` Contacts of tenant `bench` per
/// one-statement transaction, paced to `rate` changes/s in all, for
/// `secs`. Returns each commit as (transaction id, wall time it returned).
pub async fn paced_writers(
    url: &str,
    ids: &[uuid::Uuid],
    rate: f64,
    secs: u64,
    per_txn: u64,
) -> Vec<(String, f64)> {
    let writers = 4u64;
    let per_writer = rate / per_txn as f64 / writers as f64;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let ids = std::sync::Arc::new(ids.to_vec());
    let mut tasks = Vec::new();
    for w in 0..writers {
        let url = url.to_owned();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = PgConnection::connect(&url).await.unwrap();
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_writer));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0u64;
            let mut commits: Vec<(String, f64)> = Vec::new();
            while Instant::now() < deadline {
                tick.tick().await;
                let chunk: Vec<uuid::Uuid> = (0..per_txn)
                    .map(|k| {
                        ids[((w * 1_000_003 + (n * per_txn + k) * 7919) % ids.len() as u64)
                            as usize]
                    })
                    .collect();
                // A new address each time: an update that changes nothing
                // writes no changelog entry and would not be measured.
                let state = ContactState {
                    email: Some(format!("w{w}n{n}t{}@example.com", now_secs())),
                    email_status: EmailStatus::ALL[(n % 4) as usize],
                    ..ContactState::default()
                };
                // One statement, one transaction: when it returns, the
                // commit has.
                let xids: Vec<String> = sqlx::query_scalar(
                    "UPDATE permd.records SET contact = $1 WHERE tenant = 'bench' AND id = ANY($2) \
                     RETURNING pg_current_xact_id()::text",
                )
                .bind(serde_json::to_value(&state).unwrap())
                .bind(&chunk)
                .fetch_all(&mut conn)
                .await
                .unwrap();
                if let Some(xid) = xids.into_iter().next() {
                    commits.push((xid, now_secs()));
                }
                n += 1;
            }
            commits
        }));
    }
    let mut commits = Vec::new();
    for t in tasks {
        commits.extend(t.await.unwrap());
    }
    commits
}

/// The revision each commit got, by transaction id, with its commit time,
/// for the revisions `first..=last`.
pub async fn commit_revisions(
    pool: &PgPool,
    commits: &[(String, f64)],
    first: u64,
    last: u64,
) -> std::collections::BTreeMap<u64, f64> {
    let revision_of: std::collections::HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT xid::text, revision FROM permd.transactions WHERE revision >= $1 AND revision <= $2",
    )
    .bind(first as i64)
    .bind(last as i64)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    commits
        .iter()
        .filter_map(|(xid, at)| revision_of.get(xid).map(|r| (*r as u64, *at)))
        .collect()
}
