//! The engine: the current snapshot of every tenant, swapped whole when data
//! changes (readers never wait for a writer), and the cache of compiled
//! answers. Every read-side question enters here.
//!
//! - this file: the [`Snapshot`], the [`Engine`] that publishes it, and
//!   waiting for a revision;
//! - [`question`]: a question as asked, and resolving its names;
//! - [`cache`]: compiled answers, kept while their object and principal
//!   stay the same;
//! - [`query`]: the read-side entry points and their answers;
//! - [`apply`]: changes applied as one new revision.

mod apply;
mod cache;
mod query;
mod question;

use std::sync::Arc;

use arc_swap::ArcSwap;
use moka::sync::Cache;
use rustc_hash::FxHashMap;

use super::tenant::TenantIndex;
use crate::model::data::DataFile;
use crate::telemetry::metrics;

pub use cache::DEFAULT_MAX_CACHE_BYTES;
use cache::{CacheEntry, CacheKey};
pub use query::{BatchAnswer, Decision, FieldMask, ObjectFlags, RecordFlags, RecordHandles};
pub use question::{PrincipalRef, Question, Resolved};

/// Default largest batch a request may carry.
pub const DEFAULT_MAX_BATCH: usize = 100_000;

/// Every tenant at one revision. Immutable once published.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub revision: u64,
    pub tenants: FxHashMap<String, Arc<TenantIndex>>,
}

impl Snapshot {
    /// Indexes every tenant of a validated data file.
    pub fn build(file: &DataFile, revision: u64) -> Snapshot {
        let tenants = file
            .tenants
            .iter()
            .map(|t| {
                let mut index = TenantIndex::build(t);
                index.stamp(revision);
                (t.id.clone(), Arc::new(index))
            })
            .collect();
        Snapshot { revision, tenants }
    }
}

/// Holds the current snapshot and the compiled-answer cache.
pub struct Engine {
    snapshot: ArcSwap<Snapshot>,
    /// Serializes writers (read, change, publish); readers never take it.
    writer: std::sync::Mutex<()>,
    cache: Cache<CacheKey, CacheEntry>,
    max_batch: usize,
    /// Wakes requests waiting for a revision (`min_revision`).
    published: tokio::sync::watch::Sender<u64>,
    /// The second (Unix time) tenant sizes were last exported.
    sized_at: std::sync::atomic::AtomicU64,
    /// Tenants held back at an older revision by a change they cannot
    /// apply (the change feed's, `src/source/postgres/feed.rs`); every
    /// other tenant moves on.
    held: ArcSwap<FxHashMap<String, HeldTenant>>,
}

/// A tenant answering at `revision` while later changes wait for a
/// change that makes them apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldTenant {
    pub revision: u64,
    /// What could not be applied, for errors and logs.
    pub reason: String,
    /// When it was first held: how stale its answers are.
    pub since: std::time::Instant,
}

impl Engine {
    pub fn new(snapshot: Snapshot, max_batch: usize) -> Engine {
        Self::with_cache_bytes(snapshot, max_batch, DEFAULT_MAX_CACHE_BYTES)
    }

    /// An engine whose compiled-answer cache holds at most `max_cache_bytes`.
    pub fn with_cache_bytes(snapshot: Snapshot, max_batch: usize, max_cache_bytes: u64) -> Engine {
        metrics::record_published(snapshot.revision, &snapshot.tenants);
        let cache = cache::new_cache(max_cache_bytes);
        let (published, _) = tokio::sync::watch::channel(snapshot.revision);
        Engine {
            snapshot: ArcSwap::from_pointee(snapshot),
            writer: std::sync::Mutex::new(()),
            cache,
            max_batch,
            published,
            sized_at: std::sync::atomic::AtomicU64::new(0),
            held: ArcSwap::from_pointee(FxHashMap::default()),
        }
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub fn revision(&self) -> u64 {
        self.snapshot.load().revision
    }

    /// Publishes a new snapshot; in-flight readers keep the one they hold.
    pub fn publish(&self, snapshot: Snapshot) {
        let _writing = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        metrics::record_published(snapshot.revision, &snapshot.tenants);
        let revision = snapshot.revision;
        self.snapshot.store(Arc::new(snapshot));
        // A snapshot built afresh holds every tenant at its revision.
        self.held.store(Arc::new(FxHashMap::default()));
        // A snapshot built afresh shares nothing with the cached answers.
        self.cache.invalidate_all();
        self.published.send_replace(revision);
    }

    /// Holds `tenant` at `revision`: it keeps answering there, with that
    /// revision, while the snapshot moves on for every other tenant.
    pub fn hold(&self, tenant: &str, revision: u64, reason: String) {
        let mut held = (**self.held.load()).clone();
        let since = held
            .get(tenant)
            .map_or_else(std::time::Instant::now, |h| h.since);
        held.insert(
            tenant.to_owned(),
            HeldTenant {
                revision,
                reason,
                since,
            },
        );
        self.held.store(Arc::new(held));
    }

    /// Lets a held tenant answer at the snapshot's revision again.
    pub fn release(&self, tenant: &str) {
        let mut held = (**self.held.load()).clone();
        if held.remove(tenant).is_some() {
            self.held.store(Arc::new(held));
        }
    }

    /// The tenants held back, and where.
    pub fn held(&self) -> Arc<FxHashMap<String, HeldTenant>> {
        self.held.load_full()
    }

    /// Waits until revision `wanted` is published, or `deadline` passes.
    /// Returns the revision held when it gave up.
    pub async fn wait_for(
        &self,
        wanted: u64,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), u64> {
        let mut rx = self.published.subscribe();
        let reached = rx.wait_for(|r| *r >= wanted);
        let outcome = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, reached).await.ok(),
            None => Some(reached.await),
        };
        match outcome {
            Some(Ok(_)) => Ok(()),
            _ => Err(self.revision()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Toggle;

    #[test]
    fn every_toggle_names_an_action_that_names_it_back() {
        for t in Toggle::ALL {
            assert_eq!(t.action().toggle(), Some(t));
        }
    }
}
