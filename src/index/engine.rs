//! The engine: the current snapshot of every tenant, swapped whole when data
//! changes (readers never wait for a writer), and the cache of compiled
//! answers keyed by revision. Every read-side question enters here.

use std::sync::Arc;

use arc_swap::ArcSwap;
use moka::sync::Cache;
use rustc_hash::FxHashMap;
use time::OffsetDateTime;
use uuid::Uuid;

use super::change::{ApplyError, by_tenant};
use super::compile::{Compiled, Effective};
use super::error::QueryError;
use super::ids::UNKNOWN;
use super::tenant::{Principal, PrincipalKind, RecordOrd, TenantIndex};
use crate::model::change::{ChangeOp, Entity, EntityKind};
use crate::model::data::DataFile;
use crate::model::{AccessLevel, Action, ActionContext, Channel, FieldLevel, Reason};

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

/// Who asks, as the request names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PrincipalRef {
    pub kind: PrincipalKind,
    pub id: String,
}

/// One question as the request states it, before resolution.
#[derive(Clone, Debug)]
pub struct Question {
    pub tenant: String,
    pub principal: PrincipalRef,
    pub object: String,
    pub action: String,
    pub ctx: ActionContext,
    pub min_revision: u64,
}

/// A question with every name resolved against one snapshot.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub revision: u64,
    pub tenant: Arc<TenantIndex>,
    pub principal_ref: PrincipalRef,
    pub principal: Principal,
    pub object: usize,
    pub action: Action,
    pub ctx: ActionContext,
}

/// One field and the principal's level on it.
pub type FieldMask = Vec<(String, FieldLevel)>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchAnswer {
    /// Bit `i % 8` of byte `i / 8` is set iff position `i` is allowed.
    pub allowed: Vec<u8>,
    pub allowed_count: u32,
    /// Denied positions in request order with their first reason.
    pub denials: Vec<(u32, Reason)>,
    pub field_mask: FieldMask,
    pub revision: u64,
}

impl BatchAnswer {
    pub fn is_allowed(&self, position: usize) -> bool {
        self.allowed
            .get(position / 8)
            .is_some_and(|b| b & (1 << (position % 8)) != 0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub reason: Option<Reason>,
    pub field_mask: FieldMask,
    pub revision: u64,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.reason.is_none()
    }
}

/// Level 1 flags of one object (R16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectFlags {
    pub object: String,
    pub view: bool,
    pub edit: bool,
    pub remove: bool,
    pub create_records: bool,
    pub single_actions: Vec<Action>,
    pub bulk_actions: Vec<Action>,
    pub field_mask: FieldMask,
}

/// Per-record flags (R17).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordFlags {
    pub record_id: Uuid,
    pub view: bool,
    pub edit: bool,
    pub remove: bool,
    /// Empty unless the record can be viewed.
    pub field_mask: FieldMask,
}

/// A compiled answer is cached across revisions: it stays valid while the
/// versions of its object and principal stay the same, so a record change
/// recompiles only answers on that object, and a group change only the
/// answers of that group's principals.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    tenant: String,
    principal: PrincipalRef,
    object: usize,
    action: Action,
    ctx: ActionContext,
}

#[derive(Clone, Debug)]
struct CacheEntry {
    object_version: u64,
    principal_version: u64,
    compiled: Arc<Compiled>,
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
}

impl Engine {
    pub fn new(snapshot: Snapshot, max_batch: usize) -> Engine {
        Self::record_published(snapshot.revision, &snapshot.tenants);
        let cache = Cache::builder()
            // Weighed by the allowed bitmap's size; 256 MiB of compiled sets.
            .weigher(|_k, v: &CacheEntry| {
                u32::try_from(v.compiled.allowed.heap_bytes() + 256).unwrap_or(u32::MAX)
            })
            .max_capacity(256 * 1024 * 1024)
            .support_invalidation_closures()
            .build();
        let (published, _) = tokio::sync::watch::channel(snapshot.revision);
        Engine {
            snapshot: ArcSwap::from_pointee(snapshot),
            writer: std::sync::Mutex::new(()),
            cache,
            max_batch,
            published,
            sized_at: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Exports the revision, its publish time and the size of each tenant
    /// in `changed` (the others kept theirs).
    fn record_published<'a>(
        revision: u64,
        changed: impl IntoIterator<Item = (&'a String, &'a Arc<TenantIndex>)>,
    ) {
        use crate::server::metrics::{PUBLISHED, REVISION, TENANT_BYTES, TENANT_RECORDS};
        metrics::gauge!(REVISION).set(revision as f64);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::gauge!(PUBLISHED).set(now);
        for (id, tenant) in changed {
            metrics::gauge!(TENANT_BYTES, "tenant" => id.clone()).set(tenant.heap_bytes() as f64);
            metrics::gauge!(TENANT_RECORDS, "tenant" => id.clone())
                .set(tenant.record_count() as f64);
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
        Self::record_published(snapshot.revision, &snapshot.tenants);
        let revision = snapshot.revision;
        self.snapshot.store(Arc::new(snapshot));
        // A snapshot built afresh shares nothing with the cached answers.
        self.cache.invalidate_all();
        self.published.send_replace(revision);
    }

    /// Applies changes as one new revision (all of them or none) and
    /// returns it: the next revision in memory.
    pub fn apply(&self, changes: &[crate::model::change::Change]) -> Result<u64, ApplyError> {
        self.apply_as(changes, None)
    }

    /// Applies changes as revision `revision` (a database revision), or as
    /// the next one. Readers see the old revision or the new one, never a
    /// part. Only cached answers whose object or principal the changes
    /// touched are dropped.
    pub fn apply_as(
        &self,
        changes: &[crate::model::change::Change],
        revision: Option<u64>,
    ) -> Result<u64, ApplyError> {
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
        Self::record_published(
            revision,
            published.iter().filter(|_| sized).map(|(t, i)| (t, i)),
        );
        self.snapshot
            .store(Arc::new(Snapshot { revision, tenants }));
        // Answers of untouched objects and principals stay cached; the
        // version check keeps any other stale one from being served, and
        // dropping them here keeps memory flat under a change stream.
        let touched: FxHashMap<String, Arc<TenantIndex>> = published.into_iter().collect();
        let gone: Vec<String> = changed
            .into_iter()
            .filter(|t| !touched.contains_key(t))
            .collect();
        let _ = self.cache.invalidate_entries_if(move |key, entry| {
            if gone.contains(&key.tenant) {
                return true;
            }
            let Some(tenant) = touched.get(&key.tenant) else {
                return false;
            };
            let object = tenant.objects.get(key.object).map(|o| o.version);
            let principal = tenant
                .principal(key.principal.kind, &key.principal.id)
                .map(|p| p.version);
            object != Some(entry.object_version) || principal != Some(entry.principal_version)
        });
        self.published.send_replace(revision);
        Ok(revision)
    }

    /// Would these changes apply? Checks them against the current snapshot
    /// exactly as `apply` would, without publishing anything.
    pub fn check_changes(
        &self,
        changes: &[crate::model::change::Change],
    ) -> Result<(), ApplyError> {
        let current = self.snapshot();
        Self::changed_tenants(&current, changes, current.revision + 1).map(|_| ())
    }

    /// Every tenant after the changes, and which tenants changed.
    #[allow(clippy::type_complexity)]
    fn changed_tenants(
        current: &Snapshot,
        changes: &[crate::model::change::Change],
        revision: u64,
    ) -> Result<(FxHashMap<String, Arc<TenantIndex>>, Vec<String>), ApplyError> {
        let mut tenants = current.tenants.clone();
        let mut changed: Vec<String> = Vec::new();
        let grouped = by_tenant(changes);
        // Tenants in the order their first change came, so errors name
        // the first problem.
        let mut order: Vec<&str> = Vec::new();
        for change in changes {
            if !order.contains(&change.tenant.as_str()) {
                order.push(&change.tenant);
            }
        }
        for tenant in order {
            let Some(list) = grouped.get(tenant) else {
                continue;
            };
            let mut index: Option<TenantIndex> = tenants.get(tenant).map(|t| (**t).clone());
            let mut pending: Vec<&crate::model::change::Change> = Vec::new();
            let flush = |index: &mut Option<TenantIndex>,
                         pending: &mut Vec<&crate::model::change::Change>|
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

    fn tenant_and_principal(
        &self,
        tenant: &str,
        principal: &PrincipalRef,
        min_revision: u64,
    ) -> Result<(Arc<Snapshot>, Arc<TenantIndex>, Principal), QueryError> {
        let snapshot = self.snapshot();
        if min_revision > snapshot.revision {
            return Err(QueryError::RevisionNotReached {
                current: snapshot.revision,
                wanted: min_revision,
            });
        }
        let tenant_index = snapshot
            .tenants
            .get(tenant)
            .cloned()
            .ok_or_else(|| QueryError::UnknownTenant(tenant.to_owned()))?;
        let resolved = tenant_index
            .principal(principal.kind, &principal.id)
            .cloned()
            .ok_or_else(|| QueryError::UnknownPrincipal {
                kind: principal.kind.as_str(),
                id: principal.id.clone(),
                tenant: tenant.to_owned(),
            })?;
        Ok((snapshot, tenant_index, resolved))
    }

    fn object_of(tenant: &TenantIndex, object: &str) -> Result<usize, QueryError> {
        tenant
            .object_index(object)
            .ok_or_else(|| QueryError::UnknownObject {
                object: object.to_owned(),
                tenant: tenant.id.clone(),
                valid: tenant.object_names(),
            })
    }

    /// Resolves every name in the question and checks the context it carries.
    pub fn resolve(&self, q: &Question) -> Result<Resolved, QueryError> {
        let (snapshot, tenant, principal) =
            self.tenant_and_principal(&q.tenant, &q.principal, q.min_revision)?;
        let object = Self::object_of(&tenant, &q.object)?;
        let action = Action::parse(&q.action).ok_or_else(|| QueryError::UnknownAction {
            action: q.action.clone(),
            valid: Action::names(),
        })?;
        let object_index = tenant
            .objects
            .get(object)
            .ok_or_else(|| QueryError::UnknownObject {
                object: q.object.clone(),
                tenant: tenant.id.clone(),
                valid: tenant.object_names(),
            })?;
        if action.contacts_only() && object_index.contact.is_none() {
            return Err(QueryError::ActionNotOnObject {
                action: action.as_str(),
                object: q.object.clone(),
            });
        }
        action
            .check_context(&q.ctx)
            .map_err(QueryError::InvalidContext)?;
        for need in action.field_needs(&q.ctx) {
            if object_index.field_index(&need.field).is_none() {
                return Err(QueryError::UnknownField {
                    field: need.field,
                    object: q.object.clone(),
                    valid: object_index.fields.join(", "),
                });
            }
        }
        Ok(Resolved {
            revision: snapshot.revision,
            tenant,
            principal_ref: q.principal.clone(),
            principal,
            object,
            action,
            ctx: q.ctx.clone(),
        })
    }

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
            metrics::counter!(crate::server::metrics::CACHE, "result" => "hit").increment(1);
            return hit.compiled;
        }
        metrics::counter!(crate::server::metrics::CACHE, "result" => "miss").increment(1);
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

    fn field_mask(tenant: &TenantIndex, object: usize, levels: &[FieldLevel]) -> FieldMask {
        let fields = tenant
            .objects
            .get(object)
            .map(|o| o.fields.as_slice())
            .unwrap_or_default();
        fields.iter().cloned().zip(levels.iter().copied()).collect()
    }

    /// Answers one action for many records, one answer per request position.
    pub fn batch_check(
        &self,
        q: &Question,
        ids: &[Uuid],
        now: OffsetDateTime,
    ) -> Result<BatchAnswer, QueryError> {
        if ids.len() > self.max_batch {
            return Err(QueryError::BatchTooLarge {
                size: ids.len(),
                limit: self.max_batch,
            });
        }
        let r = self.resolve(q)?;
        if r.action.is_record_less() {
            return Err(QueryError::RecordLessAction(r.action.as_str()));
        }
        let compiled = self.compiled(&r, now);
        let object = r
            .tenant
            .objects
            .get(r.object)
            .ok_or(QueryError::Internal("object index out of range"))?;
        let mut ords = vec![0; ids.len()];
        object.ids.get_many(ids, &mut ords);
        let mut allowed = vec![0u8; ids.len().div_ceil(8)];
        let mut allowed_count = 0u32;
        let mut denials = Vec::new();
        for ((chunk, byte), first) in ords.chunks(8).zip(&mut allowed).zip((0u32..).step_by(8)) {
            for (bit, &ord) in (0u32..).zip(chunk) {
                let pos = first + bit;
                if ord == UNKNOWN {
                    denials.push((pos, Reason::UnknownRecord));
                } else if compiled.allows(ord) {
                    *byte |= 1 << bit;
                    allowed_count += 1;
                } else {
                    denials.push((pos, compiled.reason(object, ord)));
                }
            }
        }
        Ok(BatchAnswer {
            allowed,
            allowed_count,
            denials,
            field_mask: Self::field_mask(&r.tenant, r.object, &compiled.field_mask),
            revision: r.revision,
        })
    }

    /// Answers one action for one record, or for none (`create`, `upload`).
    pub fn check(
        &self,
        q: &Question,
        record: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<Decision, QueryError> {
        let r = self.resolve(q)?;
        self.decide(&r, record, now)
    }

    /// One decision on a question already resolved against one snapshot.
    pub(crate) fn decide(
        &self,
        r: &Resolved,
        record: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<Decision, QueryError> {
        let object = r
            .tenant
            .objects
            .get(r.object)
            .ok_or(QueryError::Internal("object index out of range"))?;
        match (r.action.is_record_less(), record) {
            (true, Some(_)) => Err(QueryError::RecordLessAction(r.action.as_str())),
            (false, None) => Err(QueryError::RecordRequired(r.action.as_str())),
            (true, None) => {
                let eff = Effective::of(&r.tenant, &r.principal, r.object);
                let reason = record_less_reason(&eff, r.action);
                let mask = if eff.visible() {
                    eff.fields.clone()
                } else {
                    vec![FieldLevel::Hidden; eff.fields.len()]
                };
                Ok(Decision {
                    reason,
                    field_mask: Self::field_mask(&r.tenant, r.object, &mask),
                    revision: r.revision,
                })
            }
            (false, Some(id)) => {
                let compiled = self.compiled(r, now);
                let reason = match object.ord(&id) {
                    Some(ord) if compiled.allows(ord) => None,
                    Some(ord) => Some(compiled.reason(object, ord)),
                    None => Some(Reason::UnknownRecord),
                };
                Ok(Decision {
                    reason,
                    field_mask: Self::field_mask(&r.tenant, r.object, &compiled.field_mask),
                    revision: r.revision,
                })
            }
        }
    }

    /// Every record the action is allowed on, as ids in ordinal order.
    pub fn lookup(
        &self,
        q: &Question,
        now: OffsetDateTime,
    ) -> Result<(Vec<Uuid>, u64), QueryError> {
        let r = self.resolve(q)?;
        if r.action.is_record_less() {
            return Err(QueryError::RecordLessAction(r.action.as_str()));
        }
        let compiled = self.compiled(&r, now);
        let object = r
            .tenant
            .objects
            .get(r.object)
            .ok_or(QueryError::Internal("object index out of range"))?;
        let ids = compiled
            .allowed
            .iter()
            .filter_map(|ord| object.id(ord))
            .collect();
        Ok((ids, r.revision))
    }

    /// Level 1 flags of one object, or of every object the principal sees (R16).
    pub fn object_access(
        &self,
        tenant: &str,
        principal: &PrincipalRef,
        object: Option<&str>,
        min_revision: u64,
    ) -> Result<(Vec<ObjectFlags>, bool, u64), QueryError> {
        let (snapshot, tenant_index, resolved) =
            self.tenant_and_principal(tenant, principal, min_revision)?;
        let objects: Vec<usize> = match object {
            Some(name) => vec![Self::object_of(&tenant_index, name)?],
            None => (0..tenant_index.objects.len()).collect(),
        };
        let flags = objects
            .into_iter()
            .filter_map(|oi| {
                let eff = Effective::of(&tenant_index, &resolved, oi);
                let object = tenant_index.objects.get(oi)?;
                if !eff.visible() {
                    return None;
                }
                let possible: Vec<Action> = Action::ALL
                    .into_iter()
                    .filter(|a| a.toggle().is_some())
                    .filter(|a| !a.contacts_only() || object.contact.is_some())
                    .filter(|a| {
                        // An action is listed if some context of it could
                        // pass: send_single_message by email or by text.
                        Self::contexts_of(*a).iter().any(|ctx| {
                            eff.toggle_on(*a)
                                && eff.best_level() >= a.level(ctx)
                                && eff.fields_allow(object, *a, ctx)
                        })
                    })
                    .collect();
                let (bulk, single) = possible.into_iter().partition(|a| a.is_bulk());
                Some(ObjectFlags {
                    object: object.name.clone(),
                    view: eff.view_object,
                    edit: eff.edit_settings,
                    remove: eff.delete_object,
                    create_records: eff.best_level() >= AccessLevel::Edit,
                    single_actions: single,
                    bulk_actions: bulk,
                    field_mask: Self::field_mask(&tenant_index, oi, &eff.fields),
                })
            })
            .collect();
        let create_objects = resolved.admin
            || resolved
                .groups
                .iter()
                .filter_map(|g| tenant_index.groups.get(*g))
                .any(|g| g.create_objects);
        Ok((flags, create_objects, snapshot.revision))
    }

    /// The contexts under which ObjectAccess asks whether an action is
    /// possible at all.
    fn contexts_of(action: Action) -> Vec<ActionContext> {
        match action {
            Action::SendSingleMessage => [Channel::Email, Channel::Text]
                .into_iter()
                .map(|channel| ActionContext {
                    channel: Some(channel),
                    ..ActionContext::default()
                })
                .collect(),
            _ => vec![ActionContext::default()],
        }
    }

    /// Per-record view / edit / remove flags and field masks (R17).
    pub fn record_access(
        &self,
        tenant: &str,
        principal: &PrincipalRef,
        object: &str,
        ids: &[Uuid],
        min_revision: u64,
        now: OffsetDateTime,
    ) -> Result<(Vec<RecordFlags>, u64), QueryError> {
        if ids.len() > self.max_batch {
            return Err(QueryError::BatchTooLarge {
                size: ids.len(),
                limit: self.max_batch,
            });
        }
        let question = |action: Action| Question {
            tenant: tenant.to_owned(),
            principal: principal.clone(),
            object: object.to_owned(),
            action: action.as_str().to_owned(),
            ctx: ActionContext::default(),
            min_revision,
        };
        let view = self.resolve(&question(Action::View))?;
        let compiled = |r: &Resolved| self.compiled(r, now);
        let (view_c, edit_c, remove_c) = (
            compiled(&view),
            compiled(&Resolved {
                action: Action::Edit,
                ..view.clone()
            }),
            compiled(&Resolved {
                action: Action::Archive,
                ..view.clone()
            }),
        );
        let object_index = view
            .tenant
            .objects
            .get(view.object)
            .ok_or(QueryError::Internal("object index out of range"))?;
        let mask = Self::field_mask(&view.tenant, view.object, &view_c.field_mask);
        let flags = ids
            .iter()
            .map(|id| {
                let ord: Option<RecordOrd> = object_index.ord(id);
                let has = |c: &Compiled| ord.is_some_and(|o| c.allows(o));
                let view = has(&view_c);
                RecordFlags {
                    record_id: *id,
                    view,
                    edit: view && has(&edit_c),
                    remove: view && has(&remove_c),
                    field_mask: if view { mask.clone() } else { Vec::new() },
                }
            })
            .collect();
        Ok((flags, view.revision))
    }

    /// The allowed set of a question, for callers that stream it.
    pub fn allowed_set(
        &self,
        q: &Question,
        now: OffsetDateTime,
    ) -> Result<(Resolved, Arc<Compiled>), QueryError> {
        let r = self.resolve(q)?;
        if r.action.is_record_less() {
            return Err(QueryError::RecordLessAction(r.action.as_str()));
        }
        let compiled = self.compiled(&r, now);
        Ok((r, compiled))
    }
}

/// `create` and `upload`: edit in some scope, and the toggle (R5, table).
pub(crate) fn record_less_reason(eff: &Effective, action: Action) -> Option<Reason> {
    if !eff.visible() {
        Some(Reason::ObjectNotVisible)
    } else if eff.best_level() < AccessLevel::Edit {
        Some(Reason::NoRecordAccess)
    } else if !eff.toggle_on(action) {
        Some(Reason::ActionNotPermitted)
    } else {
        None
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
