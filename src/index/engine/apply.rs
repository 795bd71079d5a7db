//! Changes applied as one new revision: all of them or none, readers
//! seeing the old revision or the new one, never a part; only cached
//! answers whose object or principal changed are dropped.

use std::sync::{Arc, Weak};

use rustc_hash::FxHashMap;

use super::{Engine, Snapshot};
use crate::index::change::{ApplyError, by_tenant};
use crate::index::tenant::TenantIndex;
use crate::model::change::{Change, ChangeOp, Entity, EntityKind};
use crate::telemetry::metrics;

impl Engine {
    /// Applies changes as one new revision (all of them or none) and
    /// returns it: the next revision in memory.
    pub fn apply(&self, changes: &[Change]) -> Result<u64, ApplyError> {
        self.apply_as(changes, None)
    }

    /// Applies changes as revision `revision` (a database revision), or as
    /// the next one. Readers see the old revision or the new one, never a
    /// part. Only cached answers whose object or principal the changes
    /// touched are dropped.
    pub fn apply_as(&self, changes: &[Change], revision: Option<u64>) -> Result<u64, ApplyError> {
        let _writing = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.snapshot();
        let revision = revision
            .unwrap_or(current.revision + 1)
            .max(current.revision);
        let (tenants, changed) = Self::changed_tenants(&current, changes, revision)?;
        let published: Vec<(String, Arc<TenantIndex>)> = changed
            .iter()
            .filter_map(|t| tenants.get(t).map(|i| (t.clone(), i.clone())))
            .collect();
        // Sizing a tenant walks all its sets: at most once a second.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let sized = self
            .sized_at
            .swap(now, std::sync::atomic::Ordering::Relaxed)
            != now;
        metrics::record_published(
            revision,
            published.iter().filter(|_| sized).map(|(t, i)| (t, i)),
        );
        self.snapshot
            .store(Arc::new(Snapshot { revision, tenants }));
        // Answers of untouched objects and principals stay cached; the
        // version check keeps any other stale one from being served, and
        // dropping them here keeps memory flat under a change stream.
        // The cache keeps each predicate until its housekeeping has run
        // it, and housekeeping runs only as the cache is used: a predicate
        // that held its revision kept every revision alive while changes
        // streamed in with few questions asked (~130 KB each on a
        // 100,000-Contact tenant: 1.5 GB after 12,000 revisions). It holds
        // a weak reference instead (a revision already replaced needs no
        // predicate of its own: the next one's covers it), and
        // housekeeping is run here at most once a second.
        let touched: FxHashMap<String, Weak<TenantIndex>> = published
            .into_iter()
            .map(|(t, i)| (t, Arc::downgrade(&i)))
            .collect();
        let gone: rustc_hash::FxHashSet<String> = changed
            .into_iter()
            .filter(|t| !touched.contains_key(t))
            .collect();
        let _ = self.cache.invalidate_entries_if(move |key, entry| {
            if gone.contains(&key.tenant) {
                return true;
            }
            let Some(tenant) = touched.get(&key.tenant).and_then(Weak::upgrade) else {
                return false;
            };
            let object = tenant.objects.get(key.object).map(|o| o.version);
            let principal = tenant
                .principal(key.principal.kind, &key.principal.id)
                .map(|p| p.version);
            object != Some(entry.object_version) || principal != Some(entry.principal_version)
        });
        if sized {
            self.cache.run_pending_tasks();
        }
        self.published.send_replace(revision);
        Ok(revision)
    }

    /// Would these changes apply? Checks them against the current snapshot
    /// exactly as `apply` would, without publishing anything.
    pub fn check_changes(&self, changes: &[Change]) -> Result<(), ApplyError> {
        let current = self.snapshot();
        Self::changed_tenants(&current, changes, current.revision + 1).map(|_| ())
    }

    /// Every tenant after the changes, and which tenants changed.
    #[allow(clippy::type_complexity)]
    fn changed_tenants(
        current: &Snapshot,
        changes: &[Change],
        revision: u64,
    ) -> Result<(FxHashMap<String, Arc<TenantIndex>>, Vec<String>), ApplyError> {
        let mut tenants = current.tenants.clone();
        let mut changed: Vec<String> = Vec::new();
        let grouped = by_tenant(changes);
        // Tenants in the order their first change came, so errors name
        // the first problem.
        // (A set beside the list: a write touching many tenants stays
        // linear in them.)
        let mut order: Vec<&str> = Vec::new();
        let mut seen: rustc_hash::FxHashSet<&str> = rustc_hash::FxHashSet::default();
        for change in changes {
            if seen.insert(change.tenant.as_str()) {
                order.push(&change.tenant);
            }
        }
        for tenant in order {
            let Some(list) = grouped.get(tenant) else {
                continue;
            };
            let mut index: Option<TenantIndex> = tenants.get(tenant).map(|t| (**t).clone());
            let mut pending: Vec<&Change> = Vec::new();
            let flush = |index: &mut Option<TenantIndex>,
                         pending: &mut Vec<&Change>|
             -> Result<(), ApplyError> {
                if pending.is_empty() {
                    return Ok(());
                }
                // Deleting inside a tenant that is gone deletes nothing
                // (a tenant delete cascades to its rows in PostgreSQL).
                if index.is_none()
                    && pending
                        .iter()
                        .all(|c| matches!(c.op, ChangeOp::Delete { .. }))
                {
                    pending.clear();
                    return Ok(());
                }
                let current = index
                    .as_ref()
                    .ok_or_else(|| ApplyError::UnknownTenant(tenant.to_owned()))?;
                *index = Some(current.apply(pending, revision)?);
                pending.clear();
                Ok(())
            };
            for change in list {
                match &change.op {
                    ChangeOp::Upsert(Entity::Tenant(settings)) if index.is_none() => {
                        flush(&mut index, &mut pending)?;
                        let mut fresh = TenantIndex::empty(
                            tenant,
                            settings.email_configured,
                            settings.sms_configured,
                        );
                        fresh.stamp(revision);
                        index = Some(fresh);
                    }
                    ChangeOp::Delete {
                        kind: EntityKind::Tenant,
                        ..
                    } => {
                        pending.clear();
                        index = None;
                    }
                    _ => pending.push(change),
                }
            }
            flush(&mut index, &mut pending)?;
            match index {
                Some(index) => {
                    tenants.insert(tenant.to_owned(), Arc::new(index));
                }
                None => {
                    tenants.remove(tenant);
                }
            }
            changed.push(tenant.to_owned());
        }
        Ok((tenants, changed))
    }
}
