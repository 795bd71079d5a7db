//! `permd relay`: tails the PostgreSQL changelog exactly as the direct feed
//! does and publishes it to JetStream, with per-tenant snapshots beside it.
//!
//! - **One active relay.** Relays take a PostgreSQL advisory lock (session
//!   level) before publishing; the others wait, trying every 500 ms. The
//!   lock lives as long as the active relay's database session: a relay
//!   that dies, or loses its database, loses the lock at once, and a
//!   standby takes over within a second. No clock or TTL to tune, and the
//!   relay that holds the lease is the one that can read the changelog.
//! - **Nothing lost, nothing twice, in order.** A new active relay reads the
//!   last message in the stream to learn what was published (a revision
//!   half-published by a relay that died resumes at its next part), then
//!   publishes from there. Every publish names the stream sequence it
//!   expects to follow (`Nats-Expected-Last-Sequence`), so a relay that
//!   still thinks it is active after losing the lease is refused by the
//!   stream rather than interleaving; it steps down. Message ids
//!   (`<revision>.<part>`) deduplicate a retried publish.
//! - **Snapshots** of every tenant on start, then of the tenants that
//!   changed every `snapshot_every` revisions or `snapshot_interval`: read
//!   in one consistent database snapshot at revision S (in the background,
//!   publishing goes on), written once the stream holds S, stamped with the
//!   stream sequence of S's last message. A tenant whose data does not
//!   validate gets none (and is left out of the manifest), and the relay
//!   says why.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, object_store::ObjectStore, stream::Stream};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio_stream::StreamExt;

use super::{Heartbeat, NatsConfig, retry_backoff, split_transaction};
use crate::model::data::DataFile;
use crate::model::validate::validate;
use crate::source::postgres::{self as pg, feed::CHANNEL};
use crate::telemetry::metrics::{
    RELAY_ACTIVE, RELAY_ERRORS, RELAY_MESSAGES, RELAY_REVISION, RELAY_SNAPSHOTS, RELAY_TRANSACTIONS,
};

/// Transactions read per changelog query.
const READ_TRANSACTIONS: u64 = 2_000;
/// Rows per message at most this many bytes (NATS refuses messages over
/// its max_payload, 1 MiB by default).
const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Revision → stream sequence entries kept for stamping snapshots.
const SEQ_HISTORY: usize = 100_000;

#[derive(Clone, Debug)]
pub struct RelayConfig {
    pub database_url: String,
    pub nats: NatsConfig,
    /// Snapshot the changed tenants after this many revisions…
    pub snapshot_every: u64,
    /// …or this long after the last snapshot, whichever comes first.
    pub snapshot_interval: Duration,
    /// The stream keeps messages this long (a sidecar further behind
    /// reloads from a snapshot).
    pub stream_max_age: Duration,
    /// The snapshot format to write: [`super::super::snapshot::FORMAT`],
    /// or an older one while sidecars that read only that are upgraded.
    pub snapshot_format: u32,
    /// Poll the changelog this often even without a notification.
    pub poll_interval: Duration,
    /// Prune changelog older than this (every minute, while active);
    /// `None` keeps it.
    pub changelog_retention: Option<Duration>,
}

/// Aborts a task when dropped: the heartbeat stops with the active term.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs until `shutdown` turns true: standby until the lease is free, then
/// active until it is lost or an error, then standby again.
pub async fn run(config: RelayConfig, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut backoff = retry_backoff();
    loop {
        match run_once(&config, &mut shutdown).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                metrics::gauge!(RELAY_ACTIVE).set(0.0);
                metrics::counter!(RELAY_ERRORS).increment(1);
                let wait = backoff.delay();
                tracing::warn!(
                    error = format!("{e:#}"),
                    retry_in_ms = wait.as_millis() as u64,
                    "relay not publishing; standing by and retrying"
                );
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The lease key: one per prefix, so deployments sharing a database (or
/// tests) do not wait on each other.
fn lease_key(prefix: &str) -> i64 {
    // FNV-1a: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"permd relay lease:".iter().chain(prefix.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Creates the stream and the bucket if they do not exist.
pub async fn ensure_stream_and_bucket(
    js: &jetstream::Context,
    nats: &NatsConfig,
    max_age: Duration,
) -> anyhow::Result<(Stream, ObjectStore)> {
    let config = jetstream::stream::Config {
        name: nats.stream(),
        subjects: vec![nats.changes_wildcard()],
        storage: jetstream::stream::StorageType::File,
        max_age,
        // At most half the retention: the server refuses a longer window.
        duplicate_window: Duration::from_secs(120).min(max_age / 2),
        ..Default::default()
    };
    let mut stream = js
        .get_or_create_stream(config.clone())
        .await
        .with_context(|| {
            format!(
                "cannot create or open the JetStream stream {}",
                nats.stream()
            )
        })?;
    // A stream made earlier keeps its settings unless told: the retention
    // follows --stream-max-age.
    let held = stream.info().await?.config.clone();
    if held.max_age != max_age {
        tracing::info!(stream = %nats.stream(), from_secs = held.max_age.as_secs(), to_secs = max_age.as_secs(),
            "updating the stream's retention (--stream-max-age); its other settings stay");
        let updated = jetstream::stream::Config {
            max_age,
            duplicate_window: held.duplicate_window.min(max_age / 2),
            ..held
        };
        js.update_stream(updated).await.with_context(|| {
            format!(
                "cannot update the retention of the JetStream stream {}",
                nats.stream()
            )
        })?;
    }
    let store = match js.get_object_store(nats.bucket()).await {
        Ok(store) => store,
        Err(_) => js
            .create_object_store(jetstream::object_store::Config {
                bucket: nats.bucket(),
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .with_context(|| format!("cannot create the object store {}", nats.bucket()))?,
    };
    Ok((stream, store))
}

/// What the stream holds: the last revision fully published, the stream's
/// last sequence, and, when that revision's successor was cut short, how
/// many of its parts are in.
#[derive(Debug, Clone, Copy)]
struct Published {
    revision: u64,
    last_seq: u64,
    partial: Option<(u64, u32)>,
}

async fn published(stream: &mut Stream) -> anyhow::Result<Option<Published>> {
    let state = stream
        .info()
        .await
        .context("reading the stream's state")?
        .state
        .clone();
    if state.messages == 0 {
        return Ok(if state.last_sequence == 0 {
            Some(Published {
                revision: 0,
                last_seq: 0,
                partial: None,
            })
        } else {
            // Everything expired: what was published is unknown.
            None
        });
    }
    let last = stream
        .get_raw_message(state.last_sequence)
        .await
        .context("reading the stream's last message")?;
    let part = super::decode_part(Some(&last.headers), &last.payload)
        .map_err(|e| anyhow::anyhow!("the stream's last message (seq {}): {e}", last.sequence))?;
    Ok(Some(if part.index == part.count {
        Published {
            revision: part.revision,
            last_seq: last.sequence,
            partial: None,
        }
    } else {
        Published {
            revision: part.revision.saturating_sub(1),
            last_seq: last.sequence,
            partial: Some((part.revision, part.index)),
        }
    }))
}

/// The last stream sequence of each recent revision.
#[derive(Default)]
struct SeqHistory(BTreeMap<u64, u64>);

impl SeqHistory {
    fn record(&mut self, revision: u64, seq: u64) {
        self.0.insert(revision, seq);
        while self.0.len() > SEQ_HISTORY {
            self.0.pop_first();
        }
    }

    /// The stream sequence after which revisions past `revision` start.
    fn at(&self, revision: u64) -> Option<u64> {
        self.0.range(..=revision).next_back().map(|(_, s)| *s)
    }
}

async fn run_once(
    config: &RelayConfig,
    shutdown: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    metrics::gauge!(RELAY_ACTIVE).set(0.0);
    let client = config.nats.connect("permd relay").await?;
    let js = jetstream::new(client.clone());
    let (mut stream, store) =
        ensure_stream_and_bucket(&js, &config.nats, config.stream_max_age).await?;
    let pool = pg::connect(&config.database_url).await?;
    pg::check_schema(&pool).await?;

    // Standby: wait for the lease.
    let mut lease = pool.acquire().await?.detach();
    let key = lease_key(&config.nats.prefix);
    let mut said = false;
    loop {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut lease)
            .await
            .context("asking PostgreSQL for the relay lease")?;
        if got {
            break;
        }
        if !said {
            tracing::info!(prefix = %config.nats.prefix, "standby: another relay holds the lease; taking over when it goes");
            said = true;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
    metrics::gauge!(RELAY_ACTIVE).set(1.0);

    let mut state = published(&mut stream).await?;
    let history = Arc::new(Mutex::new(SeqHistory::default()));
    let (published_tx, published_rx) = watch::channel(0u64);
    let mut active = Active {
        js,
        store: store.clone(),
        pool: pool.clone(),
        nats: config.nats.clone(),
        published: 0,
        last_seq: 0,
        partial: None,
        history: history.clone(),
        published_tx,
        snapshots: Arc::new(Mutex::new(SnapshotState {
            format: config.snapshot_format,
            ..SnapshotState::default()
        })),
    };
    match state.take() {
        Some(p) => {
            active.published = p.revision;
            active.last_seq = p.last_seq;
            active.partial = p.partial;
            tracing::info!(revision = p.revision, stream_seq = p.last_seq, partial = ?p.partial,
                "active: took the relay lease; publishing from the stream's last revision");
        }
        None => {
            // The stream expired everything: start from a fresh snapshot.
            let info = stream.info().await?.state.clone();
            active.last_seq = info.last_sequence;
            active.restart_from_snapshot().await?;
            tracing::info!(
                revision = active.published,
                "active: took the relay lease; the stream was empty, restarted from a snapshot"
            );
        }
    }
    active.history_record(active.published);
    let _ = active.published_tx.send(active.published);
    metrics::gauge!(RELAY_REVISION).set(active.published as f64);

    // The heartbeat, each second, on its own task: a long publish does not
    // make the sidecars think the relay is gone.
    // It says "current" only while the loop below has read the changelog
    // within the last 5 s: a relay cut off from PostgreSQL goes quiet, and
    // the sidecars' staleness grows as it should.
    let read_at = Arc::new(std::sync::atomic::AtomicU64::new(unix_millis()));
    let heartbeat = {
        let client = client.clone();
        let subject = config.nats.heartbeat();
        let mut published = published_rx.clone();
        let read_at = read_at.clone();
        tokio::spawn(async move {
            loop {
                let revision = *published.borrow_and_update();
                let fresh = unix_millis()
                    .saturating_sub(read_at.load(std::sync::atomic::Ordering::Relaxed))
                    < 5_000;
                if fresh && let Ok(body) = serde_json::to_vec(&Heartbeat { revision }) {
                    let _ = client.publish(subject.clone(), body.into()).await;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let _stop_heartbeat = AbortOnDrop(heartbeat);

    // Every tenant on start, in the background.
    let mut snapshotting = Some(spawn_snapshot(&active, published_rx.clone()));
    let mut last_snapshot_revision = active.published;
    let mut last_snapshot_at = Instant::now();
    let mut retry_now = false;

    let mut listener = PgListener::connect_with(&pool).await.ok();
    if let Some(l) = listener.as_mut() {
        let _ = l.listen(CHANNEL).await;
    }
    let mut last_prune = Instant::now();
    loop {
        if *shutdown.borrow() {
            metrics::gauge!(RELAY_ACTIVE).set(0.0);
            return Ok(());
        }
        // The lease is held as long as this session answers.
        tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::query("SELECT 1").execute(&mut lease),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 5 s"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .context("the relay lease's database session is gone: stepping down")?;
        active.catch_up().await?;
        read_at.store(unix_millis(), std::sync::atomic::Ordering::Relaxed);
        if let Some(retention) = config.changelog_retention
            && last_prune.elapsed() >= Duration::from_secs(60)
        {
            last_prune = Instant::now();
            if let Err(e) = pg::prune(&pool, retention).await {
                tracing::warn!(error = format!("{e:#}"), "pruning the changelog failed");
            }
        }
        // Snapshots: one at a time.
        if snapshotting.as_ref().is_some_and(|t| t.is_finished())
            && let Some(task) = snapshotting.take()
        {
            match task.await {
                Ok(Ok(n)) => tracing::info!(tenants = n, "snapshots written"),
                Ok(Err(e)) => {
                    metrics::counter!(RELAY_ERRORS).increment(1);
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "writing snapshots failed; again in a second"
                    );
                    retry_now = true;
                }
                Err(e) => {
                    metrics::counter!(RELAY_ERRORS).increment(1);
                    tracing::warn!(error = %e, "the snapshot task failed; again in a second");
                    retry_now = true;
                }
            }
        }
        let due = retry_now
            || active.published > last_snapshot_revision
                && (active.published - last_snapshot_revision >= config.snapshot_every
                    || last_snapshot_at.elapsed() >= config.snapshot_interval);
        if due && snapshotting.is_none() {
            retry_now = false;
            snapshotting = Some(spawn_snapshot(&active, published_rx.clone()));
            last_snapshot_revision = active.published;
            last_snapshot_at = Instant::now();
        }
        let woke = async {
            match listener.as_mut() {
                Some(l) => match l.recv().await {
                    Ok(_) => while l.next_buffered().is_some() {},
                    Err(_) => tokio::time::sleep(config.poll_interval).await,
                },
                None => tokio::time::sleep(config.poll_interval).await,
            }
        };
        tokio::select! {
            () = woke => {}
            () = tokio::time::sleep(config.poll_interval.min(Duration::from_secs(1))) => {}
            _ = shutdown.changed() => {}
        }
    }
}

struct Active {
    js: jetstream::Context,
    store: ObjectStore,
    pool: PgPool,
    nats: NatsConfig,
    /// Every revision up to this one is in the stream.
    published: u64,
    last_seq: u64,
    /// A revision a previous relay published only the first parts of.
    partial: Option<(u64, u32)>,
    history: Arc<Mutex<SeqHistory>>,
    published_tx: watch::Sender<u64>,
    snapshots: Arc<Mutex<SnapshotState>>,
}

/// Which tenants' snapshots are current: a snapshot is rewritten only when
/// its tenant changed after it.
#[derive(Default)]
struct SnapshotState {
    /// The snapshot format written ([`RelayConfig::snapshot_format`]).
    format: u32,
    /// The last revision that changed each tenant (published since this
    /// relay became active).
    last_change: std::collections::HashMap<String, u64>,
    /// The revision of each tenant's snapshot this relay wrote.
    written: std::collections::HashMap<String, u64>,
}

impl SnapshotState {
    fn current(&self, tenant: &str) -> bool {
        self.written
            .get(tenant)
            .is_some_and(|w| *w >= self.last_change.get(tenant).copied().unwrap_or(0))
    }
}

impl Active {
    fn history_record(&self, revision: u64) {
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record(revision, self.last_seq);
    }

    /// Publishes every committed transaction after `published`.
    async fn catch_up(&mut self) -> anyhow::Result<()> {
        loop {
            let (latest, transactions) =
                pg::rows_after(&self.pool, self.published, READ_TRANSACTIONS).await?;
            if latest <= self.published {
                return Ok(());
            }
            let contiguous = transactions
                .first()
                .is_some_and(|t| t.revision == self.published + 1)
                && transactions
                    .windows(2)
                    .all(|w| matches!(w, [a, b] if b.revision == a.revision + 1));
            if !contiguous {
                let pruned = pg::pruned_through(&self.pool).await?;
                if pruned > self.published {
                    tracing::warn!(
                        published = self.published,
                        pruned_through = pruned,
                        "the changelog was pruned past what the stream holds: publishing from a fresh snapshot; sidecars behind it reload"
                    );
                    return self.restart_from_snapshot().await;
                }
                anyhow::bail!(
                    "revision {} is missing from permd.transactions but the changelog is pruned only through {pruned}",
                    self.published + 1
                );
            }
            let count = transactions.len() as u64;
            self.publish(transactions).await?;
            if count < READ_TRANSACTIONS {
                return Ok(());
            }
        }
    }

    /// Publishes transactions, pipelined: every message is sent, then the
    /// acknowledgements are awaited in order.
    async fn publish(&mut self, transactions: Vec<pg::Transaction>) -> anyhow::Result<()> {
        let mut acks = Vec::new();
        let mut expected = self.last_seq;
        let count = transactions.len() as u64;
        for t in &transactions {
            let parts = split_transaction(&t.rows, MAX_MESSAGE_BYTES);
            let n = u32::try_from(parts.len()).unwrap_or(u32::MAX);
            let skip = match self.partial {
                Some((revision, done)) if revision == t.revision => done,
                _ => 0,
            };
            for (i, (tenant, body)) in parts.into_iter().enumerate() {
                let index = u32::try_from(i).unwrap_or(u32::MAX) + 1;
                if index <= skip {
                    continue;
                }
                self.snapshots
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .last_change
                    .insert(tenant.clone(), t.revision);
                let message = jetstream::message::PublishMessage::build()
                    .headers(super::part_headers(t.revision, &tenant, index, n))
                    .payload(body.into())
                    .expected_last_sequence(expected);
                let ack = self
                    .js
                    .send_publish(self.nats.subject(&tenant), message)
                    .await
                    .with_context(|| format!("publishing revision {}", t.revision))?;
                expected += 1;
                acks.push((t.revision, index == n, ack));
            }
        }
        self.partial = None;
        for (revision, last_part, ack) in acks {
            let ack = ack.await.with_context(|| {
                format!(
                    "publishing revision {revision} was not acknowledged (NATS unreachable, or another relay published first): stepping down"
                )
            })?;
            self.last_seq = ack.sequence;
            metrics::counter!(RELAY_MESSAGES).increment(1);
            if last_part {
                self.published = revision;
                self.history_record(revision);
            }
        }
        metrics::counter!(RELAY_TRANSACTIONS).increment(count);
        metrics::gauge!(RELAY_REVISION).set(self.published as f64);
        let _ = self.published_tx.send(self.published);
        Ok(())
    }

    /// The stream cannot continue from what it holds: snapshot every tenant
    /// now, and publish from the snapshot's revision on.
    async fn restart_from_snapshot(&mut self) -> anyhow::Result<()> {
        let (file, revision) = pg::bootstrap(&self.pool).await?;
        let written =
            write_snapshots(&self.store, file, revision, self.last_seq, &self.snapshots).await?;
        tracing::info!(
            revision,
            tenants = written,
            "snapshots written; publishing from them"
        );
        self.published = revision;
        self.partial = None;
        self.history_record(revision);
        let _ = self.published_tx.send(revision);
        Ok(())
    }
}

fn spawn_snapshot(
    active: &Active,
    mut published: watch::Receiver<u64>,
) -> tokio::task::JoinHandle<anyhow::Result<usize>> {
    let state = active.snapshots.clone();
    let pool = active.pool.clone();
    let store = active.store.clone();
    let history = active.history.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let (file, revision) = pg::bootstrap(&pool).await?;
        // Stamp it with the stream position of its revision: wait until
        // the stream holds it.
        published
            .wait_for(|p| *p >= revision)
            .await
            .context("the relay stopped before the stream reached the snapshot's revision")?;
        let seq = history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .at(revision)
            .unwrap_or(0);
        let written = write_snapshots(&store, file, revision, seq, &state).await?;
        tracing::debug!(
            revision,
            tenants = written,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot round done"
        );
        Ok(written)
    })
}

/// Writes the snapshot of every tenant in `file` whose snapshot is not
/// current, deletes those of tenants that are gone, then the manifest of
/// the tenants whose snapshots are current at `revision`. Returns how many
/// were written.
async fn write_snapshots(
    store: &ObjectStore,
    file: DataFile,
    revision: u64,
    stream_seq: u64,
    state: &Mutex<SnapshotState>,
) -> anyhow::Result<usize> {
    let lock = || {
        state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let format = lock().format;
    let present: HashSet<String> = file.tenants.iter().map(|t| t.id.clone()).collect();
    let mut written = 0;
    let mut current: Vec<String> = Vec::new();
    for tenant in file.tenants {
        if lock().current(&tenant.id) {
            current.push(tenant.id);
            continue;
        }
        let id = tenant.id.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let one = DataFile {
                tenants: vec![tenant],
            };
            let report = validate(&one);
            if report.errors.is_empty() {
                Ok(one
                    .tenants
                    .first()
                    .map(|t| super::super::snapshot::encode_format(t, revision, stream_seq, format))
                    .unwrap_or_default())
            } else {
                let problems: Vec<String> = report
                    .errors
                    .iter()
                    .take(5)
                    .map(ToString::to_string)
                    .collect();
                Err(problems.join("; "))
            }
        })
        .await?;
        match encoded {
            Ok(bytes) => {
                let size = bytes.len();
                store
                    .put(super::tenant_object(&id).as_str(), &mut bytes.as_slice())
                    .await
                    .with_context(|| format!("writing the snapshot of tenant '{id}'"))?;
                metrics::counter!(RELAY_SNAPSHOTS).increment(1);
                metrics::gauge!(crate::telemetry::metrics::RELAY_SNAPSHOT_TIME).set(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                );
                lock().written.insert(id.clone(), revision);
                current.push(id.clone());
                tracing::debug!(tenant = %id, revision, stream_seq, bytes = size, "snapshot written");
                written += 1;
            }
            Err(problems) => {
                metrics::counter!(RELAY_ERRORS).increment(1);
                tracing::error!(tenant = %id, revision, problems = %problems,
                    "tenant data does not validate: no current snapshot of it, so sidecars that start now do not serve it until its data is repaired");
            }
        }
    }
    // What the bucket holds now; the snapshots of deleted tenants go.
    let mut list = store.list().await.context("listing snapshots")?;
    let mut gone = Vec::new();
    while let Some(info) = list.next().await {
        let info = info.context("listing snapshots")?;
        let Some(tenant) = info.name.strip_prefix(super::TENANT_OBJECT) else {
            continue;
        };
        if !info.deleted && !present.contains(tenant) {
            lock().written.remove(tenant);
            gone.push(info.name.clone());
        }
    }
    for name in gone {
        store
            .delete(&name)
            .await
            .with_context(|| format!("deleting the snapshot of a deleted tenant ({name})"))?;
    }
    // Last, the manifest: a sidecar loads the tenants it names, so it never
    // starts from a round half written.
    current.sort();
    let manifest = serde_json::to_vec(&super::Manifest {
        revision,
        stream_seq,
        tenants: current,
    })?;
    store
        .put(super::MANIFEST_OBJECT, &mut manifest.as_slice())
        .await
        .context("writing the snapshot manifest")?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_per_prefix() {
        assert_eq!(lease_key("permd"), lease_key("permd"));
        assert_ne!(lease_key("permd"), lease_key("test_1"));
    }

    #[test]
    fn snapshots_are_stamped_with_the_last_sequence_of_their_revision() {
        let mut h = SeqHistory::default();
        h.record(5, 10);
        h.record(6, 12);
        h.record(9, 20);
        assert_eq!(h.at(4), None);
        assert_eq!(h.at(6), Some(12));
        assert_eq!(h.at(8), Some(12));
        assert_eq!(h.at(100), Some(20));
    }
}
