//! One tenant's data in the shape the hot path wants: record UUIDs interned
//! to dense `u32` ordinals per object, and every record-level fact the rules
//! read (live, archived, who is associated, Contact state) as a roaring
//! bitmap over those ordinals. Built once per revision ([`build`]), then
//! read-only; a change copies only what it touches (`src/index/change.rs`).
//!
//! - this file: [`TenantIndex`];
//! - [`links`]: record links, both ways, in compact tables;
//! - [`object`]: one object's records and their sets;
//! - [`contact`]: the Contact state sets (R12–R15);
//! - [`principal`]: principals and group grants, resolved to indexes;
//! - [`build`]: building all of it from a validated tenant.

mod build;
mod contact;
mod links;
mod object;
mod principal;

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::model::data::Tenant;

pub use super::ord::{RecordOrd, UserIdx};
pub use build::TenantBuilder;
pub(crate) use build::intern_user;
pub(crate) use contact::index_contact;
pub use contact::{ContactIndex, ContactProbes};
pub use links::Links;
pub use object::{ObjectIndex, RecordUsers, Validity};
pub use principal::{GroupGrants, ObjectGrant, Principal, PrincipalKind};
pub(crate) use principal::{build_groups, build_principals};

/// Inserts `ord` into a sparse `set` (one user's records, a list's
/// opt-outs). A build adds ordinals in increasing order, and appending one
/// above every other skips the search an insert makes.
#[inline]
pub(crate) fn add_ord(set: &mut roaring::RoaringBitmap, ord: RecordOrd) {
    if set.try_push(ord).is_err() {
        set.insert(ord);
    }
}

/// A tenant, ready to answer. Cloning is cheap: objects are shared, and a
/// change copies only the object it touches (`src/index/change.rs`).
#[derive(Clone, Debug)]
pub struct TenantIndex {
    pub id: String,
    pub email_configured: bool,
    pub sms_configured: bool,
    pub objects: Vec<Arc<ObjectIndex>>,
    object_by_name: FxHashMap<String, usize>,
    pub groups: Arc<Vec<GroupGrants>>,
    /// Every user name the tenant's users and records mention, interned:
    /// a record may name a user before the user exists (R8).
    pub users: Arc<Vec<String>>,
    pub(crate) user_by_name: Arc<FxHashMap<String, UserIdx>>,
    pub(crate) principals: Arc<FxHashMap<(PrincipalKind, String), Principal>>,
    /// The tenant without its records (objects, groups, roles, principals):
    /// what a principal-side change is validated against and rebuilt from.
    pub(crate) meta: Arc<Tenant>,
    /// The meta copy's objects as permissions see them (with `contacts`).
    pub(crate) defs: Arc<Vec<crate::model::data::ObjectDef>>,
    /// Record links as written, by id, and who links to each id: what a
    /// record change needs to update one-hop associations (R9).
    pub(crate) links: Arc<Links>,
}

impl TenantIndex {
    /// Approximate heap bytes of the index (ids, sets, dense copies,
    /// links), for the per-tenant memory metric.
    pub fn heap_bytes(&self) -> usize {
        let objects: usize = self
            .objects
            .iter()
            .map(|o| {
                let sets: usize = o
                    .direct
                    .values()
                    .map(|s| &**s)
                    .chain(o.related.values().map(|s| &**s))
                    .map(|b| b.serialized_size())
                    .sum();
                let contact = o.contact.as_ref().map_or(0, |c| {
                    c.opted_out_lists
                        .values()
                        .map(|b| b.serialized_size())
                        .sum::<usize>()
                        + c.status.heap_bytes()
                        + 5 * o.live_dense.heap_bytes()
                });
                o.ids.heap_bytes()
                    + sets
                    + contact
                    + 2 * o.live_dense.heap_bytes()
                    + o.users.heap_bytes()
            })
            .sum();
        objects + self.links.heap_bytes()
    }

    /// Records of every object (deleted ones not counted).
    pub fn record_count(&self) -> usize {
        self.objects
            .iter()
            .map(|o| (o.live_dense.len() + o.archived_dense.len()) as usize)
            .sum()
    }

    /// Sets every version to `revision`: a tenant built afresh shares no
    /// cached answer with what it replaces.
    pub fn stamp(&mut self, revision: u64) {
        for object in &mut self.objects {
            Arc::make_mut(object).version = revision;
        }
        for principal in Arc::make_mut(&mut self.principals).values_mut() {
            principal.version = revision;
        }
    }

    pub(crate) fn object_by_name(&self) -> &FxHashMap<String, usize> {
        &self.object_by_name
    }

    /// Replaces the objects (in their new order) and the name lookup.
    pub(crate) fn set_objects(&mut self, objects: Vec<Arc<ObjectIndex>>) {
        self.object_by_name = objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.name.clone(), i))
            .collect();
        self.objects = objects;
    }

    pub fn object_index(&self, name: &str) -> Option<usize> {
        self.object_by_name.get(name).copied()
    }

    pub fn object_names(&self) -> String {
        self.objects
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn principal(&self, kind: PrincipalKind, id: &str) -> Option<&Principal> {
        self.principals.get(&(kind, id.to_owned()))
    }
}
