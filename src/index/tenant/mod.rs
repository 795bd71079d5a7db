//! One tenant's data in the shape the hot path wants: record UUIDs interned
//! to dense `u32` ordinals per object, and every record-level fact the rules
//! read (live, archived, who is associated, Contact state) as a roaring
//! bitmap over those ordinals. Built once per revision ([`build`]), then
//! read-only; a change copies only what it touches (`src/index/change.rs`).
//!
//! - this file: [`TenantIndex`] and its record [`Links`];
//! - [`object`]: one object's records and their sets;
//! - [`contact`]: the Contact state sets (R12–R15);
//! - [`principal`]: principals and group grants, resolved to indexes;
//! - [`build`]: building all of it from a validated tenant.

mod build;
mod contact;
mod object;
mod principal;

use std::sync::Arc;

use rustc_hash::FxHashMap;
use uuid::Uuid;

use crate::model::data::Tenant;

pub use super::ord::{RecordOrd, UserIdx};
pub(crate) use build::intern_user;
pub(crate) use contact::index_contact;
pub use contact::{ContactIndex, ContactProbes};
pub use object::{ObjectIndex, RecordUsers, Validity};
pub use principal::{GroupGrants, ObjectGrant, Principal, PrincipalKind};
pub(crate) use principal::{build_groups, build_principals};

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

/// Record links, both ways. Kept by id so a link to a record that does
/// not exist yet takes effect when it is created, as in a rebuild.
#[derive(Clone, Debug, Default)]
pub struct Links {
    pub forward: FxHashMap<Uuid, Vec<Uuid>>,
    pub back: FxHashMap<Uuid, Vec<Uuid>>,
}

impl TenantIndex {
    /// Approximate heap bytes of the index (ids, sets, dense copies), for
    /// the per-tenant memory metric.
    pub fn heap_bytes(&self) -> usize {
        self.objects
            .iter()
            .map(|o| {
                let sets: usize = [&o.live, &o.archived]
                    .into_iter()
                    .chain(o.direct.values().map(|s| &**s))
                    .chain(o.related.values().map(|s| &**s))
                    .map(|b| b.serialized_size())
                    .sum();
                let contact = o.contact.as_ref().map_or(0, |c| {
                    [
                        &c.valid_email,
                        &c.valid_mobile,
                        &c.sms_opted_out,
                        &c.unsubscribed_all,
                        &c.suppressed_forever,
                    ]
                    .into_iter()
                    .chain(c.opted_out_lists.values())
                    .map(|b| b.serialized_size())
                    .sum::<usize>()
                        + c.status.capacity()
                        + 5 * o.live_dense.heap_bytes()
                });
                o.ids.heap_bytes()
                    + sets
                    + contact
                    + 2 * o.live_dense.heap_bytes()
                    + o.users.heap_bytes()
            })
            .sum()
    }

    /// Records of every object (deleted ones not counted).
    pub fn record_count(&self) -> usize {
        self.objects
            .iter()
            .map(|o| (o.live.len() + o.archived.len()) as usize)
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

impl Links {
    /// Records `from`'s links (it had none before).
    pub fn add(&mut self, from: Uuid, to: Vec<Uuid>) {
        if to.is_empty() {
            return;
        }
        for id in &to {
            self.back.entry(*id).or_default().push(from);
        }
        self.forward.insert(from, to);
    }

    /// Forgets `from`'s links and returns them.
    pub fn remove(&mut self, from: &Uuid) -> Vec<Uuid> {
        let to = self.forward.remove(from).unwrap_or_default();
        for id in &to {
            if let Some(sources) = self.back.get_mut(id) {
                if let Some(at) = sources.iter().position(|s| s == from) {
                    sources.swap_remove(at);
                }
                if sources.is_empty() {
                    self.back.remove(id);
                }
            }
        }
        to
    }

    /// Every record linked with `id`, either way.
    pub fn neighbors(&self, id: &Uuid) -> impl Iterator<Item = &Uuid> {
        self.forward
            .get(id)
            .into_iter()
            .flatten()
            .chain(self.back.get(id).into_iter().flatten())
    }
}
