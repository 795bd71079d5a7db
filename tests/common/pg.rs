//! A PostgreSQL database of its own for each test, on the real server at
//! 127.0.0.1:5432 (`PERMD_TEST_DATABASE_URL` overrides), dropped when the
//! test ends, so tests run at once and a failed run leaves nothing behind.
//! Without a reachable server the [`skip`](super::skip) rule applies.

use std::sync::atomic::{AtomicUsize, Ordering};

use permd::model::data::DataFile;
use permd::source::postgres as pg;
use sqlx::{Connection, PgConnection, PgPool};

use super::skip;

/// The maintenance database, where test databases are created and dropped.
pub fn admin_url() -> String {
    std::env::var("PERMD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The feed's logs, in the test's captured output: shown when it fails.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("permd=info")
        .try_init();
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// An empty database named after `tag`; `None` (after a printed notice)
    /// when PostgreSQL is not reachable and `CI` is not set.
    pub async fn create(tag: &str) -> Option<TestDb> {
        logs();
        static N: AtomicUsize = AtomicUsize::new(0);
        let reached = PgConnection::connect(&admin_url())
            .await
            .map_err(|e| e.to_string());
        let mut admin = skip::available(
            reached,
            &format!("PostgreSQL at {}", admin_url()),
            &format!(
                "SKIPPED: PostgreSQL not reachable at {}; set PERMD_TEST_DATABASE_URL",
                admin_url()
            ),
        )?;
        let name = format!(
            "permd_test_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        drop_database(&mut admin, &name).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let base = admin_url();
        let url = match base.rfind('/') {
            Some(at) => format!("{}/{name}", &base[..at]),
            None => panic!("PERMD_TEST_DATABASE_URL has no database part: {base}"),
        };
        Some(TestDb { name, url })
    }

    /// Migrated, with `data` loaded (at revision 1).
    pub async fn loaded(tag: &str, data: &DataFile) -> Option<(TestDb, PgPool)> {
        let db = TestDb::create(tag).await?;
        let pool = pg::connect(&db.url).await.unwrap();
        pg::migrate(&pool).await.unwrap();
        pg::load(&pool, data).await.unwrap();
        Some((db, pool))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A runtime of its own: Drop may run inside a test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = drop_database(&mut admin, &name).await;
                }
            });
        })
        .join();
    }
}

/// Drops `name`, closing its connections first (a feed may still hold one).
async fn drop_database(admin: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(admin)
    .await
    .map(drop)
}
