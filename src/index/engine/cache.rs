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
    compiled: Arc<Compiled>,
}

/// The cache, weighed by the allowed bitmap's size: 256 MiB of compiled sets.
pub(super) fn new_cache() -> Cache<CacheKey, CacheEntry> {
    Cache::builder()
        .weigher(|_k, v: &CacheEntry| {
            u32::try_from(v.compiled.allowed.heap_bytes() + 256).unwrap_or(u32::MAX)
        })
        .max_capacity(256 * 1024 * 1024)
        .support_invalidation_closures()
        .build()
}

impl Engine {
    /// The compiled answer for a resolved record question, from the cache
    /// when it is still exact at `now`.
    pub fn compiled(&self, r: &Resolved, now: OffsetDateTime) -> Arc<Compiled> {
        let key = CacheKey {
            tenant: r.tenant.id.clone(),
            principal: r.principal_ref.clone(),
            object: r.object,
            action: r.action,
            ctx: r.ctx.clone(),
        };
        let object_version = r.tenant.objects.get(r.object).map_or(0, |o| o.version);
        let principal_version = r.principal.version;
        if let Some(hit) = self.cache.get(&key).filter(|e| {
            e.object_version == object_version
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
            &r.ctx,
            now,
        ));
        self.cache.insert(
            key,
            CacheEntry {
                object_version,
                principal_version,
                compiled: compiled.clone(),
            },
        );
        compiled
    }
}
