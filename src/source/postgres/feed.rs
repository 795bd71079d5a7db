//! The follower: keeps an engine in step with PostgreSQL.
//!
//! 1. Connect, check the schema and bootstrap one consistent snapshot,
//!    retrying with backoff while the database is down; health stays
//!    NOT_SERVING until the first snapshot is published.
//! 2. LISTEN for the changelog's wake-ups, then read every transaction after
//!    the revision held, in revision order, and apply them as one new
//!    revision (the last one's). A poll every `poll_interval` covers lost
//!    notifications.
//! 3. When the database goes away, keep serving the last snapshot, export
//!    how stale it is, and turn NOT_SERVING past `max_staleness`. On
//!    reconnect, resume from the revision held; reload whole only if the
//!    changelog was pruned past it.
//! 4. A changelog row that cannot be decoded or applied holds back only its
//!    tenant (`apply_batch`): it answers at its last good revision, its
//!    later changes wait, every other tenant moves on, and it resumes by
//!    itself once a later change repairs the entity. The feed stops only if
//!    a revision is missing from the changelog without being pruned.
//!    (A bootstrap or reload still needs every row readable.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use super::{Malformed, changes_after, check_schema, connect, pruned_through, redact};
use crate::index::Engine;
use crate::source::backoff::Backoff;
use crate::source::changelog::{Holds, apply_batch};
use crate::telemetry::metrics::{
    FEED_ERRORS, FEED_RELOADS, FEED_STALENESS, FEED_STOPPED, FEED_TRANSACTIONS,
    TENANT_HELD_SECONDS, TENANT_STUCK,
};

/// The channel the changelog trigger notifies.
pub const CHANNEL: &str = "permd_changes";

/// Transactions read per changelog query.
const READ_TRANSACTIONS: u64 = 2_000;

#[derive(Clone, Debug)]
pub struct FeedConfig {
    pub database_url: String,
    /// Health turns NOT_SERVING when the last contact with the database is
    /// older than this.
    pub max_staleness: Duration,
    /// Changelog older than this is pruned (by one sidecar at a time);
    /// `None` keeps it forever.
    pub retention: Option<Duration>,
    /// Poll even without a notification this often.
    pub poll_interval: Duration,
}

/// What the server reads of the feed: whether a snapshot was ever loaded
/// (requests before that are UNAVAILABLE) and whether health says SERVING.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    pub loaded: bool,
    pub serving: bool,
    /// Whole snapshots loaded so far: 1 after the bootstrap, more only if
    /// the changelog was pruned past the revision held.
    pub snapshots: u32,
}

enum Fault {
    Database(anyhow::Error),
    Malformed(Malformed),
}

impl From<anyhow::Error> for Fault {
    fn from(e: anyhow::Error) -> Self {
        Fault::Database(e)
    }
}

impl From<sqlx::Error> for Fault {
    fn from(e: sqlx::Error) -> Self {
        Fault::Database(e.into())
    }
}

/// Follows the database until `shutdown` turns true.
pub async fn run(
    engine: Arc<Engine>,
    config: FeedConfig,
    readiness: watch::Sender<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    let url = redact(&config.database_url);
    let mut backoff = Backoff::up_to(Duration::from_secs(10));
    let pool = loop {
        match first_snapshot(&engine, &config).await {
            Ok(pool) => break pool,
            Err(e) => {
                let wait = backoff.delay();
                tracing::warn!(database = %url, error = format!("{e:#}"), retry_in_ms = wait.as_millis() as u64,
                    "no snapshot from PostgreSQL yet; health stays NOT_SERVING");
                metrics::counter!(FEED_ERRORS, "kind" => "bootstrap").increment(1);
                if sleep_or_shutdown(wait, &mut shutdown).await {
                    return;
                }
            }
        }
    };
    tracing::info!(database = %url, revision = engine.revision(), "bootstrapped from PostgreSQL; following the changelog");
    readiness.send_replace(Readiness {
        loaded: true,
        serving: true,
        snapshots: 1,
    });

    let mut last_contact = Instant::now();
    let mut listener: Option<PgListener> = None;
    let mut stopped: Option<Malformed> = None;
    let mut holds = Holds::default();
    let mut last_prune = Instant::now();
    let mut lost_logged = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        if stopped.is_none() {
            if listener.is_none() {
                listener = listen(&pool).await.ok();
            }
            match catch_up(&pool, &engine, &readiness, &mut holds).await {
                Ok(()) => {
                    if lost_logged || !readiness.borrow().serving {
                        tracing::info!(
                            revision = engine.revision(),
                            "PostgreSQL is back; resumed from the revision held, no reload needed"
                        );
                    }
                    lost_logged = false;
                    last_contact = Instant::now();
                    backoff = Backoff::up_to(Duration::from_secs(10));
                    readiness.send_if_modified(|r| !std::mem::replace(&mut r.serving, true));
                }
                Err(Fault::Malformed(m)) => {
                    tracing::error!(revision = m.revision, error = %m.message,
                        "the change feed STOPPED: the changelog lost a revision; serving revision {} until permd is restarted",
                        engine.revision());
                    metrics::gauge!(FEED_STOPPED).set(1.0);
                    metrics::counter!(FEED_ERRORS, "kind" => "malformed").increment(1);
                    stopped = Some(m);
                }
                Err(Fault::Database(e)) => {
                    metrics::counter!(FEED_ERRORS, "kind" => "database").increment(1);
                    listener = None;
                    if !lost_logged {
                        tracing::warn!(database = %url, error = format!("{e:#}"), revision = engine.revision(),
                            "lost PostgreSQL; serving the last snapshot and retrying");
                        lost_logged = true;
                    }
                }
            }
        }
        let stale = last_contact.elapsed();
        metrics::gauge!(FEED_STALENESS).set(stale.as_secs_f64());
        for (tenant, held) in engine.held().iter() {
            metrics::gauge!(TENANT_HELD_SECONDS, "tenant" => tenant.clone())
                .set(held.since.elapsed().as_secs_f64());
        }
        // A max_staleness of 0 never turns health NOT_SERVING.
        if !config.max_staleness.is_zero()
            && stale > config.max_staleness
            && readiness.borrow().serving
        {
            tracing::error!(
                stale_secs = stale.as_secs(),
                max_staleness_secs = config.max_staleness.as_secs(),
                revision = engine.revision(),
                "snapshot older than max_staleness: health is NOT_SERVING"
            );
            readiness.send_modify(|r| r.serving = false);
        }
        if let Some(retention) = config.retention
            && stopped.is_none()
            && last_prune.elapsed() > Duration::from_secs(60)
        {
            last_prune = Instant::now();
            if let Err(e) = super::prune(&pool, retention).await {
                tracing::warn!(error = format!("{e:#}"), "pruning the changelog failed");
            }
        }
        // Wait for a notification, the poll interval, or the retry backoff.
        let wait = if lost_logged {
            backoff.delay()
        } else {
            config.poll_interval
        };
        let woke = async {
            match listener.as_mut() {
                Some(l) => match l.recv().await {
                    // One read serves every notification queued so far.
                    Ok(_) => while l.next_buffered().is_some() {},
                    // The listener reconnects on its next use; do not spin.
                    Err(_) => tokio::time::sleep(wait).await,
                },
                None => tokio::time::sleep(wait).await,
            }
        };
        tokio::select! {
            () = woke => {}
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn first_snapshot(engine: &Engine, config: &FeedConfig) -> anyhow::Result<PgPool> {
    let pool = connect(&config.database_url).await?;
    check_schema(&pool).await?;
    reload(&pool, engine).await?;
    Ok(pool)
}

/// Bootstraps a whole snapshot and publishes it.
async fn reload(pool: &PgPool, engine: &Engine) -> anyhow::Result<()> {
    let started = Instant::now();
    let _loading = crate::memory::Loading::start();
    let super::Bootstrapped {
        snapshot,
        revision,
        records,
        warnings,
    } = super::bootstrap_snapshot(pool).await?;
    for w in &warnings {
        tracing::warn!(problem = %w, "data in PostgreSQL");
    }
    engine.publish(snapshot);
    crate::memory::settle();
    tracing::info!(
        revision,
        records,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "snapshot loaded from PostgreSQL"
    );
    Ok(())
}

async fn listen(pool: &PgPool) -> anyhow::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Applies every committed transaction after the engine's revision.
async fn catch_up(
    pool: &PgPool,
    engine: &Arc<Engine>,
    readiness: &watch::Sender<Readiness>,
    holds: &mut Holds,
) -> Result<(), Fault> {
    loop {
        let held = engine.revision();
        let started = Instant::now();
        let read = changes_after(pool, held, READ_TRANSACTIONS).await?;
        if read.latest <= held {
            return Ok(());
        }
        let read_us = started.elapsed().as_micros() as u64;
        let batch = read.transactions;
        let Some(&(first, _)) = batch.first() else {
            return gap(pool, engine, held, readiness, holds).await;
        };
        if first != held + 1 {
            return gap(pool, engine, held, readiness, holds).await;
        }
        // Revisions are gap-free; a hole inside the batch is a hole in
        // the changelog.
        let contiguous = batch
            .iter()
            .zip(held + 1..)
            .all(|((revision, _), want)| *revision == want);
        if !contiguous {
            return gap(pool, engine, held, readiness, holds).await;
        }
        let last = batch.last().map_or(held, |(r, _)| *r);
        let count = batch.len();
        let changes: usize = batch.iter().map(|(_, c)| c.len()).sum();
        // Applying is CPU work of milliseconds: off the async workers, so
        // the gRPC side is not held up by it.
        let applier = engine.clone();
        let malformed = read.malformed;
        let mut moved = std::mem::take(holds);
        *holds = tokio::task::spawn_blocking(move || {
            apply_batch(&applier, batch, &malformed, last, &mut moved);
            moved
        })
        .await
        .map_err(|e| Fault::Database(anyhow::anyhow!("apply task failed: {e}")))?;
        metrics::counter!(FEED_TRANSACTIONS).increment(count as u64);
        tracing::debug!(
            from = held + 1,
            to = last,
            transactions = count,
            changes,
            read_us,
            elapsed_us = started.elapsed().as_micros() as u64,
            "applied"
        );
        if (count as u64) < READ_TRANSACTIONS {
            return Ok(());
        }
    }
}

/// The changelog does not hold the revisions after `held`: pruned past us
/// (reload whole), or a revision vanished that nobody pruned (stop).
async fn gap(
    pool: &PgPool,
    engine: &Engine,
    held: u64,
    readiness: &watch::Sender<Readiness>,
    holds: &mut Holds,
) -> Result<(), Fault> {
    let pruned = pruned_through(pool).await?;
    if pruned > held {
        tracing::warn!(
            held,
            pruned_through = pruned,
            "the changelog was pruned past the revision held: reloading the whole snapshot"
        );
        metrics::counter!(FEED_RELOADS).increment(1);
        reload(pool, engine).await?;
        // A whole snapshot holds every tenant at its revision.
        for tenant in holds.keys() {
            metrics::gauge!(TENANT_STUCK, "tenant" => tenant.clone()).set(0.0);
            metrics::gauge!(TENANT_HELD_SECONDS, "tenant" => tenant.clone()).set(0.0);
        }
        holds.clear();
        readiness.send_modify(|r| r.snapshots += 1);
        return Ok(());
    }
    Err(Fault::Malformed(Malformed {
        revision: held + 1,
        seq: 0,
        tenant: String::new(),
        entity: String::new(),
        key: String::new(),
        message: format!(
            "revision {} is missing from permd.transactions but the changelog is pruned only through {pruned}",
            held + 1
        ),
    }))
}

/// Sleeps, or returns true early if shutdown was asked for.
async fn sleep_or_shutdown(wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}
