//! NATS mode (`permd serve --nats-url`): a sidecar with no database
//! connection. It loads, from the object store, the snapshots of the
//! tenants it serves that the newest manifest names, then follows the
//! change stream from the manifest's position, with the direct feed's
//! revision semantics:
//! one global revision, every transaction applied whole and in order, a
//! change that cannot be applied holding back only its tenant
//! (`changelog::apply_batch`, the same code as the PostgreSQL feed).
//!
//! - Revisions in the stream are contiguous (the relay publishes every
//!   one), so a revision that arrives out of turn is a gap: the stream's
//!   retention passed this sidecar. It reloads from the newest snapshots,
//!   logged and counted in `permd_feed_reloads_total`.
//! - Staleness is the time since the relay's heartbeat last named a
//!   revision this sidecar holds; past `max_staleness` health turns
//!   NOT_SERVING, as it does when PostgreSQL is unreachable in direct mode.
//! - When NATS goes away the sidecar keeps serving what it has, and resumes
//!   from the next stream message when NATS is back (no reload).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use rustc_hash::FxHashMap;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio_stream::StreamExt;

use super::{Heartbeat, NatsConfig, Part, decode_part, retry_backoff};
use crate::index::{Engine, Snapshot};
use crate::source::changelog::{ChangelogRead, Holds, RawChange, Transaction, apply_batch};
use crate::source::postgres::feed::Readiness;
use crate::source::snapshot::{Piece, SnapshotError};
use crate::telemetry::metrics::{
    FEED_ERRORS, FEED_RELOADS, FEED_STALENESS, FEED_TRANSACTIONS, RELAY_HEARTBEAT_REVISION,
    TENANT_HELD_SECONDS, TENANT_STUCK,
};

/// Transactions applied as one batch at most.
const BATCH_TRANSACTIONS: usize = 2_000;

#[derive(Clone, Debug)]
pub struct FollowConfig {
    pub nats: NatsConfig,
    /// Serve only these tenants (`--tenants`); `None` serves all.
    pub tenants: Option<HashSet<String>>,
    pub max_staleness: Duration,
}

impl FollowConfig {
    fn serves(&self, tenant: &str) -> bool {
        self.tenants.as_ref().is_none_or(|t| t.contains(tenant))
    }
}

/// What a load from snapshots gives: where to follow the stream from, and
/// each tenant's snapshot revision (its changes up to it are in already).
struct Loaded {
    start_seq: u64,
    manifest_revision: u64,
    floors: FxHashMap<String, u64>,
}

/// Follows NATS until `shutdown` turns true.
pub async fn run(
    engine: Arc<Engine>,
    config: FollowConfig,
    readiness: watch::Sender<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    let url = super::redact(&config.nats.url);
    let mut backoff = retry_backoff();
    let (client, mut loaded) = loop {
        match first_load(&engine, &config).await {
            Ok(ok) => break ok,
            Err(e) => {
                let wait = backoff.delay();
                tracing::warn!(nats = %url, error = format!("{e:#}"), retry_in_ms = wait.as_millis() as u64,
                    "no snapshot from NATS yet; health stays NOT_SERVING");
                metrics::counter!(FEED_ERRORS, "kind" => "bootstrap").increment(1);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    };
    readiness.send_replace(Readiness {
        loaded: true,
        serving: true,
        snapshots: 1,
    });
    let js = jetstream::new(client.clone());
    let mut follower = Follower {
        engine,
        config,
        holds: Holds::default(),
        confirmed_at: Instant::now(),
        heartbeat: 0,
        last_seq: loaded.start_seq,
        assembling: None,
        batch: Vec::new(),
        floors: std::mem::take(&mut loaded.floors),
        manifest_revision: loaded.manifest_revision,
    };
    let mut heartbeats = client
        .subscribe(follower.config.nats.heartbeat())
        .await
        .ok();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_reload: Option<Instant> = None;
    let mut last_message = Instant::now();
    let mut last_recreate = Instant::now();
    let mut last_manifest_check = Instant::now();
    let mut reload_backoff = retry_backoff();
    'consume: loop {
        let stream = async {
            let stream = js.get_stream(follower.config.nats.stream()).await?;
            let consumer = stream
                .create_consumer(OrderedConfig {
                    filter_subject: follower.config.nats.changes_wildcard(),
                    deliver_policy: DeliverPolicy::ByStartSequence {
                        start_sequence: follower.last_seq + 1,
                    },
                    ..Default::default()
                })
                .await?;
            anyhow::Ok(consumer.messages().await?)
        };
        let mut messages = match stream.await {
            Ok(m) => m,
            Err(e) => {
                metrics::counter!(FEED_ERRORS, "kind" => "nats").increment(1);
                let wait = backoff.delay();
                tracing::warn!(nats = %url, error = format!("{e:#}"), "cannot follow the change stream; serving what is loaded and retrying");
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue 'consume,
                    _ = shutdown.changed() => return,
                }
            }
        };
        loop {
            tokio::select! {
                next = messages.next() => match next {
                    Some(Ok(first)) => {
                        backoff = retry_backoff();
                        last_message = Instant::now();
                        let mut gap = follower.receive(&first);
                        // Take whatever else is ready, then apply it as one batch.
                        while gap.is_none() && follower.batch.len() < BATCH_TRANSACTIONS {
                            match futures_now(messages.next()) {
                                Some(Some(Ok(m))) => gap = follower.receive(&m),
                                _ => break,
                            }
                        }
                        follower.apply().await;
                        if let Some(reason) = gap {
                            tracing::warn!(reason = %reason, revision = follower.engine.revision(),
                                "gap in the change stream (its retention passed this sidecar): reloading from the newest snapshots");
                            metrics::counter!(FEED_RELOADS).increment(1);
                            // The same gap again right after a reload: the
                            // newest snapshots are behind the stream too; wait
                            // for the relay's next round rather than spin.
                            if last_reload.is_some_and(|t: Instant| t.elapsed() < Duration::from_secs(30)) {
                                let wait = reload_backoff.delay();
                                tracing::warn!(wait_ms = wait.as_millis() as u64, "gap again right after a reload: waiting for newer snapshots");
                                tokio::select! {
                                    () = tokio::time::sleep(wait) => {}
                                    _ = shutdown.changed() => return,
                                }
                            } else {
                                reload_backoff = retry_backoff();
                            }
                            last_reload = Some(Instant::now());
                            match follower.reload().await {
                                Ok(l) => {
                                    loaded = l;
                                    follower.last_seq = loaded.start_seq;
                                    readiness.send_modify(|r| r.snapshots += 1);
                                }
                                Err(e) => {
                                    metrics::counter!(FEED_ERRORS, "kind" => "reload").increment(1);
                                    tracing::error!(error = format!("{e:#}"), "reload from snapshots failed; retrying");
                                    let wait = backoff.delay();
                                    tokio::select! {
                                        () = tokio::time::sleep(wait) => {}
                                        _ = shutdown.changed() => return,
                                    }
                                }
                            }
                            continue 'consume;
                        }
                    }
                    Some(Err(e)) => {
                        metrics::counter!(FEED_ERRORS, "kind" => "nats").increment(1);
                        tracing::warn!(error = %e, revision = follower.engine.revision(), "the change stream failed; resuming from the last message held");
                        continue 'consume;
                    }
                    None => continue 'consume,
                },
                beat = next_heartbeat(&mut heartbeats) => {
                    if let Some(revision) = beat {
                        follower.heartbeat = revision;
                        metrics::gauge!(RELAY_HEARTBEAT_REVISION).set(revision as f64);
                        if follower.engine.revision() >= revision {
                            follower.confirmed_at = Instant::now();
                        }
                    } else {
                        heartbeats = client.subscribe(follower.config.nats.heartbeat()).await.ok();
                    }
                }
                _ = tick.tick() => {
                    follower.report(&readiness);
                    // The relay says there is more and nothing came for
                    // 10 s: the consumer may be gone; make a new one.
                    if follower.heartbeat > follower.engine.revision()
                        && last_message.elapsed() > Duration::from_secs(10)
                        && last_recreate.elapsed() > Duration::from_secs(10)
                    {
                        tracing::warn!(revision = follower.engine.revision(), heartbeat_revision = follower.heartbeat,
                            "the relay is ahead and no change arrived for 10 s: following the stream anew");
                        last_recreate = Instant::now();
                        continue 'consume;
                    }
                    // A tenant served here that was left out when this
                    // sidecar loaded (its data did not validate then) is
                    // taken in once a manifest names it.
                    if last_manifest_check.elapsed() > Duration::from_secs(30) {
                        last_manifest_check = Instant::now();
                        if let Some(missing) = follower.missing_tenant(&client).await {
                            tracing::info!(tenant = %missing, "the manifest names a tenant this sidecar does not hold: reloading from the snapshots");
                            metrics::counter!(FEED_RELOADS).increment(1);
                            match follower.reload().await {
                                Ok(l) => {
                                    follower.last_seq = l.start_seq;
                                    readiness.send_modify(|r| r.snapshots += 1);
                                }
                                Err(e) => tracing::warn!(error = format!("{e:#}"), "reload failed; trying again later"),
                            }
                            continue 'consume;
                        }
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Polls a future once: its value if it is ready now.
fn futures_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

async fn next_heartbeat(sub: &mut Option<async_nats::Subscriber>) -> Option<u64> {
    match sub {
        Some(s) => {
            let m = s.next().await?;
            serde_json::from_slice::<Heartbeat>(&m.payload)
                .ok()
                .map(|h| h.revision)
        }
        None => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            None
        }
    }
}

struct Follower {
    engine: Arc<Engine>,
    config: FollowConfig,
    holds: Holds,
    /// When the relay's heartbeat last named a revision held here.
    confirmed_at: Instant,
    heartbeat: u64,
    /// The stream sequence of the last message taken.
    last_seq: u64,
    /// The revision whose parts are arriving: (revision, parts, rows, next part).
    assembling: Option<(u64, u32, Vec<RawChange>, u32)>,
    /// Whole transactions not applied yet.
    batch: Vec<Transaction>,
    /// Each tenant's snapshot revision.
    floors: FxHashMap<String, u64>,
    /// The revision of the manifest last loaded or looked at.
    manifest_revision: u64,
}

impl Follower {
    /// The revision the next transaction must have.
    fn expected(&self) -> u64 {
        self.batch
            .last()
            .map_or_else(|| self.engine.revision(), |t| t.revision)
            + 1
    }

    /// Takes one stream message; returns why the stream has a gap, if it
    /// has one.
    fn receive(&mut self, message: &jetstream::Message) -> Option<String> {
        if let Ok(info) = message.info() {
            self.last_seq = info.stream_sequence;
        }
        let part = match decode_part(message.headers.as_ref(), &message.payload) {
            Ok(p) => p,
            Err(e) => {
                // Only a relay writes here; a message it could not have
                // written means the stream cannot be trusted past it.
                metrics::counter!(FEED_ERRORS, "kind" => "malformed").increment(1);
                return Some(format!("message {} does not decode: {e}", self.last_seq));
            }
        };
        let Part {
            revision,
            index,
            count,
            rows,
        } = part;
        let expected = self.expected();
        if revision < expected {
            return None; // in the snapshot already, or a duplicate
        }
        if revision > expected {
            return Some(format!("revision {revision} arrived, {expected} was next"));
        }
        let (r, n, held, next) = self
            .assembling
            .get_or_insert_with(|| (revision, count, Vec::new(), 1));
        if *r != revision || *n != count || index != *next {
            if index < *next && *r == revision {
                return None; // a part again
            }
            let why = format!(
                "revision {revision}: part {index}/{count} arrived, part {next}/{n} was next"
            );
            self.assembling = None;
            return Some(why);
        }
        held.extend(rows);
        *next += 1;
        if index == count
            && let Some((revision, _, rows, _)) = self.assembling.take()
        {
            self.batch.push(Transaction { revision, rows });
        }
        None
    }

    /// Applies the whole transactions received.
    async fn apply(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let last = batch.last().map_or(0, |t| t.revision);
        let count = batch.len();
        let config = self.config.clone();
        let engine = self.engine.clone();
        let floors: FxHashMap<String, u64> = self.floors.clone();
        let mut holds = std::mem::take(&mut self.holds);
        let applied = tokio::task::spawn_blocking(move || {
            let batch: Vec<Transaction> = batch
                .into_iter()
                .map(|mut t| {
                    // A tenant's changes up to its snapshot are in it.
                    t.rows
                        .retain(|r| floors.get(&r.tenant).is_none_or(|f| t.revision > *f));
                    t
                })
                .collect();
            let read = ChangelogRead::decode(last, batch, |t| config.serves(t));
            apply_batch(
                &engine,
                read.transactions,
                &read.malformed,
                last,
                &mut holds,
            );
            holds
        })
        .await;
        match applied {
            Ok(holds) => self.holds = holds,
            Err(e) => tracing::error!(error = %e, "applying changes failed"),
        }
        metrics::counter!(FEED_TRANSACTIONS).increment(count as u64);
        if self.engine.revision() >= self.heartbeat {
            self.confirmed_at = Instant::now();
        }
    }

    /// Staleness, health and held tenants, each second.
    fn report(&self, readiness: &watch::Sender<Readiness>) {
        let stale = self.confirmed_at.elapsed();
        metrics::gauge!(FEED_STALENESS).set(stale.as_secs_f64());
        for (tenant, held) in self.engine.held().iter() {
            metrics::gauge!(TENANT_HELD_SECONDS, "tenant" => tenant.clone())
                .set(held.since.elapsed().as_secs_f64());
        }
        // A max_staleness of 0 never turns health NOT_SERVING.
        let serving = self.config.max_staleness.is_zero() || stale <= self.config.max_staleness;
        if serving != readiness.borrow().serving {
            if serving {
                tracing::info!(
                    revision = self.engine.revision(),
                    "current with the relay again: health is SERVING"
                );
            } else {
                tracing::error!(
                    stale_secs = stale.as_secs(),
                    revision = self.engine.revision(),
                    heartbeat_revision = self.heartbeat,
                    "not confirmed current with the relay for longer than max_staleness: health is NOT_SERVING"
                );
            }
            readiness.send_modify(|r| r.serving = serving);
        }
    }

    /// A tenant the newest manifest names, that this sidecar serves and
    /// does not hold.
    async fn missing_tenant(&self, client: &async_nats::Client) -> Option<String> {
        let store = jetstream::new(client.clone())
            .get_object_store(self.config.nats.bucket())
            .await
            .ok()?;
        let manifest = read_manifest(&store, Duration::from_secs(10)).await.ok()?;
        // One look per manifest: a tenant deleted after the manifest was
        // written is still named in it, and must not reload us again.
        if manifest.revision <= self.manifest_revision {
            return None;
        }
        let held = self.engine.snapshot();
        manifest
            .tenants
            .into_iter()
            .find(|t| self.config.serves(t) && !held.tenants.contains_key(t))
    }

    async fn reload(&mut self) -> anyhow::Result<Loaded> {
        let client = self.config.nats.connect("permd sidecar (reload)").await?;
        let loaded = load(&self.engine, &self.config, &client).await?;
        for tenant in self.holds.keys() {
            metrics::gauge!(TENANT_STUCK, "tenant" => tenant.clone()).set(0.0);
            metrics::gauge!(TENANT_HELD_SECONDS, "tenant" => tenant.clone()).set(0.0);
        }
        self.holds.clear();
        self.assembling = None;
        self.batch.clear();
        self.floors = loaded.floors.clone();
        self.manifest_revision = loaded.manifest_revision;
        Ok(loaded)
    }
}

async fn first_load(
    engine: &Engine,
    config: &FollowConfig,
) -> anyhow::Result<(async_nats::Client, Loaded)> {
    let client = config.nats.connect("permd sidecar").await?;
    let loaded = load(engine, config, &client).await?;
    Ok((client, loaded))
}

/// A snapshot is read in pieces of this size, and at most this many wait
/// for the decoder: the download stays a few MB ahead of it.
const PIECE_BYTES: usize = 256 * 1024;
const PIECES_IN_FLIGHT: usize = 16;

/// Loads the newest snapshot of every tenant served and publishes them as
/// one engine snapshot at the manifest's revision.
async fn load(
    engine: &Engine,
    config: &FollowConfig,
    client: &async_nats::Client,
) -> anyhow::Result<Loaded> {
    let started = Instant::now();
    let _loading = crate::memory::Loading::start();
    let js = jetstream::new(client.clone());
    let bucket = config.nats.bucket();
    let store = js
        .get_object_store(&bucket)
        .await
        .with_context(|| {
            format!(
                "no snapshot bucket '{bucket}' in NATS yet (is a `permd relay` running with --nats-prefix {}?)",
                config.nats.prefix
            )
        })?;
    let manifest = read_manifest(&store, Duration::from_secs(30)).await.with_context(|| {
        format!("no snapshot manifest in the bucket '{bucket}' yet (a relay writes it after its first snapshot round)")
    })?;
    let names: Vec<String> = manifest
        .tenants
        .iter()
        .filter(|t| config.serves(t))
        .cloned()
        .collect();
    if let Some(wanted) = &config.tenants {
        for t in wanted {
            if !names.contains(t) {
                tracing::warn!(tenant = %t, "no snapshot of this tenant (--tenants): it is served once its changes arrive");
            }
        }
    }
    let mut tenants = Vec::with_capacity(names.len());
    let mut metas = Vec::with_capacity(names.len());
    let mut bytes_read = 0usize;
    // Where the time goes, for the log: until the last byte arrived
    // (decoding and indexing run meanwhile), then what indexing had left.
    let (mut fetch, mut after_download) = (Duration::ZERO, Duration::ZERO);
    for name in names {
        let fetching = Instant::now();
        // A read that overlaps the relay replacing the object can wait for
        // chunks that are gone: bound it, and the load is retried.
        let mut object = tokio::time::timeout(
            Duration::from_secs(10),
            store.get(super::tenant_object(&name)),
        )
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 10 s"))
        .and_then(|got| got.map_err(anyhow::Error::from))
        .with_context(|| format!("reading the snapshot of tenant '{name}'"))?;
        let size = object.info().size;
        let limit = Duration::from_secs(10) + Duration::from_millis(size as u64 / 10_000);
        // Pieces go to the decoder as they arrive: decoding and indexing
        // overlap the download instead of waiting for its last byte.
        let (pieces, arriving) = tokio::sync::mpsc::channel::<Piece>(PIECES_IN_FLIGHT);
        let download = tokio::spawn(async move {
            let read = async {
                let mut received = 0usize;
                loop {
                    let mut piece = vec![0u8; PIECE_BYTES];
                    let n = object.read(&mut piece).await?;
                    if n == 0 {
                        anyhow::ensure!(
                            received == size,
                            "{received} bytes arrived, the object store said {size}"
                        );
                        return anyhow::Ok(received);
                    }
                    received += n;
                    anyhow::ensure!(
                        received <= size,
                        "more bytes arrived than the object store said ({size})"
                    );
                    piece.truncate(n);
                    if pieces.send(Ok(piece)).await.is_err() {
                        // The decoder stopped (at a problem): it says why.
                        return Ok(received);
                    }
                }
            };
            let outcome = match tokio::time::timeout(limit, read).await {
                Ok(Ok(received)) => Ok(received),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(_) => Err(format!(
                    "took longer than {} s (replaced while read?)",
                    limit.as_secs()
                )),
            };
            if let Err(why) = &outcome {
                let _ = pieces
                    .send(Err(SnapshotError::Unreadable(why.clone())))
                    .await;
            }
            (outcome, Instant::now())
        });
        let decoded = tokio::task::spawn_blocking(move || {
            let mut arriving = arriving;
            let pieces = std::iter::from_fn(move || arriving.blocking_recv());
            crate::source::stream::index_snapshot_stream(pieces, size)
        })
        .await?;
        let (downloaded, arrived) = download.await?;
        let decoded =
            decoded.with_context(|| format!("the snapshot of tenant '{name}' cannot be served"))?;
        bytes_read += downloaded
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("reading the snapshot of tenant '{name}'"))?;
        fetch += arrived.duration_since(fetching);
        after_download += arrived.elapsed();
        metas.push(decoded.0);
        tenants.push(decoded.1);
    }
    let indexing = Instant::now();
    // Every snapshot named is current at the manifest's revision (a newer
    // one, from a round being written, at its own).
    let revision = manifest.revision;
    let start_seq = manifest.stream_seq;
    let floors = metas
        .iter()
        .map(|m| (m.tenant.clone(), m.revision.max(manifest.revision)))
        .collect();
    let records: u64 = metas.iter().map(|m| m.records).sum();
    let snapshot = Snapshot {
        revision,
        tenants: tenants
            .into_iter()
            .map(|mut index| {
                index.stamp(revision);
                (index.id.clone(), std::sync::Arc::new(index))
            })
            .collect(),
    };
    engine.publish(snapshot);
    crate::memory::settle();
    tracing::info!(
        tenants = metas.len(),
        records,
        revision,
        stream_seq = start_seq,
        bytes = bytes_read,
        fetch_ms = fetch.as_millis() as u64,
        after_download_ms = after_download.as_millis() as u64,
        index_ms = indexing.elapsed().as_millis() as u64,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "loaded from NATS snapshots; following the change stream"
    );
    Ok(Loaded {
        start_seq,
        manifest_revision: manifest.revision,
        floors,
    })
}

/// The newest manifest in the bucket, read within `limit`.
async fn read_manifest(
    store: &jetstream::object_store::ObjectStore,
    limit: Duration,
) -> anyhow::Result<super::Manifest> {
    let read = async {
        let mut object = store.get(super::MANIFEST_OBJECT).await?;
        let mut bytes = Vec::new();
        object.read_to_end(&mut bytes).await?;
        anyhow::Ok(serde_json::from_slice::<super::Manifest>(&bytes)?)
    };
    tokio::time::timeout(limit, read)
        .await
        .map_err(|_| anyhow::anyhow!("took longer than {} s", limit.as_secs()))?
}
