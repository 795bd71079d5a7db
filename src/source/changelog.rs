//! The changelog as every follower sees it: the rows PostgreSQL records per
//! transaction, decoded into changes, and applied so that a change which
//! cannot be applied holds back only its own tenant. The PostgreSQL feed
//! reads the rows from the database; a NATS-mode sidecar receives the same
//! rows from the relay, undecoded, and decodes them itself with the same
//! code, so both modes refuse and hold exactly the same changes.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::index::Engine;
use crate::model::change::{Change, EntityKind};
use crate::source::postgres::rows::decode;
use crate::telemetry::metrics::{FEED_ERRORS, TENANT_HELD_SECONDS, TENANT_STUCK};

/// One changelog row as written, before decoding: `payload` is the row's
/// JSON text (absent on a delete).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawChange {
    pub seq: i64,
    pub tenant: String,
    pub entity: String,
    pub key: String,
    pub op: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
}

/// One committed transaction of the changelog: its revision and its rows in
/// the order they were made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub revision: u64,
    pub rows: Vec<RawChange>,
}

/// A changelog row that does not decode: it holds back its tenant.
#[derive(Debug, Error)]
#[error(
    "malformed changelog row (revision {revision}, seq {seq}, {entity} '{key}' of tenant '{tenant}'): {message}"
)]
pub struct Malformed {
    pub revision: u64,
    pub seq: i64,
    pub tenant: String,
    pub entity: String,
    pub key: String,
    pub message: String,
}

/// Decodes one changelog row into a change; `payload` is the row's JSON
/// text.
pub fn decode_change(
    tenant: &str,
    entity: &str,
    key: &str,
    op: &str,
    payload: Option<&str>,
) -> Result<Change, String> {
    let kind = EntityKind::parse(entity).ok_or_else(|| {
        format!(
            "unknown entity '{entity}'; entities are: {}",
            EntityKind::names()
        )
    })?;
    match (op, payload) {
        ("delete", _) => {
            if kind == EntityKind::Record {
                Change::record_key(key)?;
            }
            Ok(Change::delete(tenant, kind, key))
        }
        ("upsert", Some(text)) => {
            let row: Value =
                serde_json::from_str(text).map_err(|e| format!("the payload is not JSON: {e}"))?;
            let (row_tenant, entity) = decode(kind, row)?;
            if row_tenant != tenant || entity.key() != key {
                return Err(format!(
                    "the payload is {} '{}' of tenant '{row_tenant}', not the row's own key",
                    kind.as_str(),
                    entity.key()
                ));
            }
            Ok(Change::upsert(tenant, entity))
        }
        ("upsert", None) => Err("an upsert without a payload".to_owned()),
        (other, _) => Err(format!("unknown op '{other}'; ops are: upsert, delete")),
    }
}

/// What one read of the changelog saw, in one snapshot.
#[derive(Debug)]
pub struct ChangelogRead {
    /// The latest revision committed when it read.
    pub latest: u64,
    /// The transactions after the revision asked for, in revision order, each
    /// with its changes in the order they were made.
    pub transactions: Vec<(u64, Vec<Change>)>,
    /// Rows that do not decode, in revision order. The read goes on past
    /// them: one bad row holds back only its tenant (feed.rs).
    pub malformed: Vec<Malformed>,
}

impl ChangelogRead {
    /// Decodes the rows of `transactions` whose tenant `keep` accepts (a
    /// sidecar serving some tenants skips the others' rows). Every
    /// transaction stays listed, even one left without changes, so the
    /// revisions stay contiguous.
    pub fn decode(
        latest: u64,
        transactions: Vec<Transaction>,
        keep: impl Fn(&str) -> bool,
    ) -> ChangelogRead {
        let mut read = ChangelogRead {
            latest,
            transactions: Vec::with_capacity(transactions.len()),
            malformed: Vec::new(),
        };
        for t in transactions {
            let mut changes = Vec::with_capacity(t.rows.len());
            for raw in t.rows.into_iter().filter(|r| keep(&r.tenant)) {
                match decode_change(
                    &raw.tenant,
                    &raw.entity,
                    &raw.key,
                    &raw.op,
                    raw.payload.as_deref(),
                ) {
                    Ok(change) => changes.push(change),
                    Err(message) => read.malformed.push(Malformed {
                        revision: t.revision,
                        seq: raw.seq,
                        tenant: raw.tenant,
                        entity: raw.entity,
                        key: raw.key,
                        message,
                    }),
                }
            }
            read.transactions.push((t.revision, changes));
        }
        read
    }
}

/// A tenant held back by a change it cannot apply: its later changes wait
/// here, in order, and are applied the moment they apply as a whole.
#[derive(Debug, Default)]
pub struct Hold {
    pending: Vec<Change>,
    /// Rows that did not decode, as (entity, key): each waits for a later
    /// change of the same entity to replace it.
    undecoded: Vec<(String, String)>,
    /// Changes arrived since the last attempt.
    touched: bool,
}

pub type Holds = FxHashMap<String, Hold>;

/// Applies the transactions in revision order. Without held tenants or bad
/// rows they go as one revision (the last one's). Otherwise each
/// transaction is applied on its own, and a tenant whose changes do not
/// decode or apply is held at the revision before them (`Engine::hold`):
/// it keeps answering there, its later changes wait, and every other tenant
/// moves on. It resumes by itself once its waiting changes apply, i.e. once
/// a later change repaired what was wrong.
pub fn apply_batch(
    engine: &Engine,
    batch: Vec<(u64, Vec<Change>)>,
    malformed: &[Malformed],
    last: u64,
    holds: &mut Holds,
) {
    if holds.is_empty() && malformed.is_empty() {
        let all: Vec<_> = batch.iter().flat_map(|(_, c)| c.iter().cloned()).collect();
        if engine.apply_as(&all, Some(last)).is_ok() {
            return;
        }
    }
    for (revision, changes) in batch {
        for m in malformed.iter().filter(|m| m.revision == revision) {
            let reason = format!(
                "revision {revision}: {} '{}' does not decode: {}",
                m.entity, m.key, m.message
            );
            hold(engine, holds, &m.tenant, revision, &reason, Vec::new());
            if let Some(h) = holds.get_mut(&m.tenant) {
                h.undecoded.push((m.entity.clone(), m.key.clone()));
            }
        }
        let mut free: Vec<Change> = Vec::new();
        for change in changes {
            match holds.get_mut(&change.tenant) {
                Some(h) => {
                    let (entity, key) = (change.kind().as_str(), change.key());
                    h.undecoded.retain(|(e, k)| !(e == entity && *k == key));
                    h.pending.push(change);
                    h.touched = true;
                }
                None => free.push(change),
            }
        }
        if engine.apply_as(&free, Some(revision)).is_err() {
            // Tenant by tenant: those that apply go on, the others are held.
            for (tenant, list) in crate::index::change::by_tenant(&free) {
                let list: Vec<Change> = list.into_iter().cloned().collect();
                if let Err(e) = engine.apply_as(&list, Some(revision)) {
                    let reason = format!("revision {revision}: {e}");
                    hold(engine, holds, tenant, revision, &reason, list);
                }
            }
        }
        // A held tenant whose waiting changes now apply resumes.
        for (tenant, h) in holds.iter_mut() {
            if !h.touched || !h.undecoded.is_empty() {
                continue;
            }
            h.touched = false;
            compact(&mut h.pending);
            match engine.apply_as(&h.pending, Some(revision)) {
                Ok(_) => {
                    h.pending.clear();
                    engine.release(tenant);
                    metrics::gauge!(TENANT_STUCK, "tenant" => tenant.clone()).set(0.0);
                    metrics::gauge!(TENANT_HELD_SECONDS, "tenant" => tenant.clone()).set(0.0);
                    tracing::info!(tenant = %tenant, revision, "tenant resumed: the changes that held it back apply now");
                }
                Err(e) => engine.hold(
                    tenant,
                    engine.held().get(tenant).map_or(revision, |h| h.revision),
                    format!("revision {revision}: {e}"),
                ),
            }
        }
        holds.retain(|_, h| !h.pending.is_empty() || !h.undecoded.is_empty());
        // The revision is applied even when nothing in it applied here: the
        // held tenants answer at their own, everyone else at this one.
        if engine.revision() < revision {
            let _ = engine.apply_as(&[], Some(revision));
        }
    }
}

/// Keeps only the last change of each entity, in the order of those last
/// changes. A change carries its whole entity, so the result is the same,
/// and a bad change that a later one replaced is gone rather than failing
/// every retry.
fn compact(pending: &mut Vec<Change>) {
    // A tenant delete drops everything before it: order matters there.
    if pending
        .iter()
        .any(|c| c.kind() == crate::model::change::EntityKind::Tenant)
    {
        return;
    }
    let mut seen = rustc_hash::FxHashSet::default();
    let mut kept: Vec<Change> = Vec::with_capacity(pending.len());
    for change in pending.drain(..).rev() {
        if seen.insert((change.kind(), change.key())) {
            kept.push(change);
        }
    }
    kept.reverse();
    *pending = kept;
}

/// Holds `tenant` at the revision before `revision` (or keeps it where it
/// is held), with `pending` waiting.
fn hold(
    engine: &Engine,
    holds: &mut Holds,
    tenant: &str,
    revision: u64,
    reason: &str,
    pending: Vec<Change>,
) {
    let h = holds.entry(tenant.to_owned()).or_default();
    h.pending.extend(pending);
    let at = engine
        .held()
        .get(tenant)
        .map_or(revision.saturating_sub(1), |held| held.revision);
    engine.hold(tenant, at, reason.to_owned());
    metrics::gauge!(TENANT_STUCK, "tenant" => tenant.to_owned()).set(1.0);
    metrics::counter!(FEED_ERRORS, "kind" => "held").increment(1);
    tracing::error!(tenant = %tenant, held_at = at, reason = %reason,
        "tenant HELD at its last good revision: a change cannot be applied; other tenants go on, and it resumes by itself once a later change repairs it");
}
