//! What the PostgreSQL benches (feed, fleet) share: their settings from the
//! environment, percentiles, and the bench database, created and loaded
//! once, then reused.
#![allow(dead_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use permd::source::generate::{GenSpec, generate};
use permd::source::postgres as pg;
use sqlx::{Connection, PgConnection, PgPool};

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
