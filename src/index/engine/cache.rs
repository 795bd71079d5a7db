//! The compiled-answer cache. A compiled answer stays valid while the
//! versions of its object and principal stay the same, so a record change
//! recompiles only answers on that object, and a group change only the
//! answers of that group's principals.

use std::sync::Arc;

use moka::sync::Cache;
use time::OffsetDateTime;

use super::{Engine, PrincipalRef, Resolved};
use crate::index::compile::Compiled;
use crate::model::{Action, ActionContext};
use crate::telemetry::metrics;

/// What a compiled answer depends on besides the versions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct CacheKey {
    pub(super) tenant: String,
    pub(super) principal: PrincipalRef,
    pub(super) object: usize,
    action: Action,
    ctx: ActionContext,
}

/// An answer and the versions it was compiled at.
#[derive(Clone, Debug)]
pub(super) struct CacheEntry {
    pub(super) object_version: u64,
    pub(super) principal_version: u64,
    /// The object's id table: a compiled set is over its ordinals, and a
    /// table built anew (a reload, even at the same revision) numbers
    /// records differently. Without it an answer compiled from the old
    /// snapshot, inserted after the reload cleared the cache, would be read
    /// against the new ordinals.
    object_space: u64,
    compiled: Arc<Compiled>,
}

/// Default bound on the cache's bytes (keys and answers).
pub const DEFAULT_MAX_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// Bytes an entry holds besides its key and answer (moka's node, the
/// `Arc`s): a generous round figure.
const ENTRY_OVERHEAD: usize = 256;

impl CacheKey {
    fn heap_bytes(&self) -> usize {
        self.tenant.len()
            + self.principal.id.len()
            + self.ctx.subscription_list.as_ref().map_or(0, String::len)
            + self
                .ctx
                .fields
                .iter()
                .map(|f| f.len() + size_of::<String>())
                .sum::<usize>()
    }
}

/// The cache, weighed by what each entry really holds — key included, so
/// no request can make an entry large and cheap.
pub(super) fn new_cache(max_bytes: u64) -> Cache<CacheKey, CacheEntry> {
    Cache::builder()
        .weigher(|k: &CacheKey, v: &CacheEntry| {
            let bytes = k.heap_bytes() + v.compiled.heap_bytes() + ENTRY_OVERHEAD;
            u32::try_from(bytes).unwrap_or(u32::MAX)
        })
        .max_capacity(max_bytes)
        .support_invalidation_closures()
        .build()
}

impl Engine {
    /// Bytes the compiled-answer cache holds now, as its weigher counts
    /// them (keys included); never above `max_cache_bytes` for long.
    pub fn cache_bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }

    /// The compiled answer for a resolved record question, from the cache
    /// when it is still exact at `now`.
    pub fn compiled(&self, r: &Resolved, now: OffsetDateTime) -> Arc<Compiled> {
        let key = CacheKey {
            tenant: r.tenant.id.clone(),
            principal: r.principal_ref.clone(),
            object: r.object,
            action: r.action,
            ctx: r.action.relevant_context(&r.ctx),
        };
        let object = r.tenant.objects.get(r.object);
        let object_version = object.map_or(0, |o| o.version);
        let object_space = object.map_or(0, |o| o.ids.space());
        let principal_version = r.principal.version;
        if let Some(hit) = self.cache.get(&key).filter(|e| {
            e.object_version == object_version
                && e.object_space == object_space
                && e.principal_version == principal_version
                && e.compiled.fresh_at(now)
        }) {
            metrics::record_cache(true);
            return hit.compiled;
        }
        metrics::record_cache(false);
        let compiled = Arc::new(Compiled::build(
            &r.tenant,
            &r.principal,
            r.object,
            r.action,
            &key.ctx,
            now,
        ));
        self.cache.insert(
            key,
            CacheEntry {
                object_version,
                principal_version,
                object_space,
                compiled: compiled.clone(),
            },
        );
        compiled
    }
}
