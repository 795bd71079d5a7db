//! Changes applied to a live tenant index without a rebuild: a new revision
//! that shares everything the changes do not touch.
//!
//! - A record change copies only its object's sets (the first change of a
//!   batch to an object copies it; the rest of the batch mutates the copy),
//!   moves the record between the sets its new state puts it in, and
//!   recomputes the one-hop associations (R9) of the records linked with it.
//!   Only that object's version moves, so cached answers on other objects
//!   stay valid.
//! - A principal-side change (group, role, user, integration, automation)
//!   edits the tenant's small `meta` copy, validates it like a file, and
//!   rebuilds groups and principals; only principals whose groups or
//!   grants actually changed get a new version.
//! - An object definition or tenant setting change reshapes the objects
//!   (records stay) and moves every version.
//!
//! The result equals `TenantIndex::build` of the changed data; the property
//! test in tests/changes.rs holds it to that.

use std::sync::Arc;

use roaring::RoaringBitmap;
use rustc_hash::{FxHashMap, FxHashSet};
use thiserror::Error;
use uuid::Uuid;

use super::dense::DenseSet;
use super::ids::IdTable;
use super::tenant::{
    ContactIndex, ObjectIndex, RecordOrd, RecordUsers, TenantIndex, UserIdx, build_groups,
    build_principals, index_contact, intern_user,
};
use crate::model::change::{Change, ChangeOp, Entity, EntityKind};
use crate::model::data::{AssociationSource, CONTACTS, DataFile, Record, Tenant};
use crate::model::validate::{object_fields, tenant_objects, validate, validate_record};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ApplyError {
    #[error("unknown tenant '{0}': create it first with a tenant upsert")]
    UnknownTenant(String),
    #[error("unknown object '{object}' in tenant '{tenant}'")]
    UnknownObject { tenant: String, object: String },
    #[error("invalid {kind} '{key}' in tenant '{tenant}': {problems}")]
    Invalid {
        tenant: String,
        kind: &'static str,
        key: String,
        problems: String,
    },
    #[error(
        "object '{object}' of tenant '{tenant}' still has records: delete them before the object"
    )]
    ObjectHasRecords { tenant: String, object: String },
    #[error("tenant '{tenant}' would be invalid after this change: {problems}")]
    InvalidTenant { tenant: String, problems: String },
    #[error("object '{object}' of tenant '{tenant}' holds the most records an object can")]
    ObjectFull { tenant: String, object: String },
}

impl TenantIndex {
    /// An empty tenant, as a tenant upsert creates it.
    pub fn empty(id: &str, email_configured: bool, sms_configured: bool) -> TenantIndex {
        TenantIndex::build(&Tenant {
            id: id.to_owned(),
            email_configured,
            sms_configured,
            ..Tenant::default()
        })
    }

    /// This tenant with `changes` (all of this tenant) applied in order, as
    /// of `revision`; all or nothing.
    pub fn apply(&self, changes: &[&Change], revision: u64) -> Result<TenantIndex, ApplyError> {
        let mut next = self.clone();
        let mut principals_touched = false;
        for change in changes {
            match &change.op {
                ChangeOp::Upsert(Entity::Record(record)) => next.upsert_record(record, revision)?,
                ChangeOp::Delete {
                    kind: EntityKind::Record,
                    key,
                } => {
                    let id = Change::record_key(key).map_err(|problems| ApplyError::Invalid {
                        tenant: self.id.clone(),
                        kind: "record",
                        key: key.clone(),
                        problems,
                    })?;
                    next.delete_record(&id, revision);
                }
                ChangeOp::Upsert(Entity::Tenant(settings)) => {
                    let meta = Arc::make_mut(&mut next.meta);
                    meta.email_configured = settings.email_configured;
                    meta.sms_configured = settings.sms_configured;
                    next.email_configured = settings.email_configured;
                    next.sms_configured = settings.sms_configured;
                    // Every gate on email and SMS may change.
                    next.stamp(revision);
                }
                ChangeOp::Upsert(Entity::Object(_))
                | ChangeOp::Delete {
                    kind: EntityKind::Object,
                    ..
                } => {
                    next.edit_meta(&change.op);
                    next.reshape_objects(revision)?;
                    principals_touched = true;
                }
                // A tenant delete is the engine's: it drops the whole tenant.
                ChangeOp::Delete {
                    kind: EntityKind::Tenant,
                    ..
                } => {}
                op => {
                    next.edit_meta(op);
                    principals_touched = true;
                }
            }
        }
        if principals_touched {
            next.check_meta()?;
            next.rebuild_principals(self, revision);
        }
        Ok(next)
    }

    /// Upserts or deletes one entity of the meta copy by key.
    fn edit_meta(&mut self, op: &ChangeOp) {
        fn put<T>(list: &mut Vec<T>, key: impl Fn(&T) -> &str, entity: Option<&T>, k: &str)
        where
            T: Clone,
        {
            match (list.iter().position(|e| key(e) == k), entity) {
                (Some(at), Some(e)) => {
                    if let Some(slot) = list.get_mut(at) {
                        *slot = e.clone();
                    }
                }
                (None, Some(e)) => list.push(e.clone()),
                (Some(at), None) => {
                    list.remove(at);
                }
                (None, None) => {}
            }
        }
        let meta = Arc::make_mut(&mut self.meta);
        let (kind, key, entity) = match op {
            ChangeOp::Upsert(e) => (e.kind(), e.key(), Some(e)),
            ChangeOp::Delete { kind, key } => (*kind, key.clone(), None),
        };
        let k = key.as_str();
        match kind {
            EntityKind::Object => {
                let e = entity.and_then(|e| match e {
                    Entity::Object(o) => Some(o),
                    _ => None,
                });
                put(&mut meta.objects, |o| &o.name, e, k);
            }
            EntityKind::Group => {
                let e = entity.and_then(|e| match e {
                    Entity::Group(g) => Some(g),
                    _ => None,
                });
                put(&mut meta.groups, |g| &g.id, e, k);
            }
            EntityKind::Role => {
                let e = entity.and_then(|e| match e {
                    Entity::Role(r) => Some(r),
                    _ => None,
                });
                put(&mut meta.roles, |r| &r.id, e, k);
            }
            EntityKind::User => {
                let e = entity.and_then(|e| match e {
                    Entity::User(u) => Some(u),
                    _ => None,
                });
                put(&mut meta.users, |u| &u.id, e, k);
            }
            EntityKind::Integration => {
                let e = entity.and_then(|e| match e {
                    Entity::Integration(i) => Some(i),
                    _ => None,
                });
                put(&mut meta.integrations, |i| &i.id, e, k);
            }
            EntityKind::Automation => {
                let e = entity.and_then(|e| match e {
                    Entity::Automation(a) => Some(a),
                    _ => None,
                });
                put(&mut meta.automations, |a| &a.id, e, k);
            }
            EntityKind::Tenant | EntityKind::Record => {}
        }
    }

    /// Validates the meta copy as a data file would be: a grant naming a
    /// group, role or principal that does not exist refuses the change.
    fn check_meta(&self) -> Result<(), ApplyError> {
        let file = DataFile {
            tenants: vec![(*self.meta).clone()],
        };
        let report = validate(&file);
        if report.errors.is_empty() {
            return Ok(());
        }
        Err(ApplyError::InvalidTenant {
            tenant: self.id.clone(),
            problems: report
                .errors
                .iter()
                .map(|p| p.to_string().replacen("tenants[0].", "", 1))
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    /// Rebuilds groups and principals from the meta copy. A principal keeps
    /// its version (and its cached answers) unless its admin flag, its
    /// inbox, its associated user or the grants of its groups changed.
    fn rebuild_principals(&mut self, before: &TenantIndex, revision: u64) {
        for user in self.meta.users.clone() {
            self.intern(&user.id);
        }
        let fields: Vec<Vec<String>> = self.objects.iter().map(|o| o.fields.clone()).collect();
        let object_by_name = self.object_by_name().clone();
        self.groups = Arc::new(build_groups(&self.meta, &fields, &object_by_name));
        let mut principals = build_principals(&self.meta, &self.groups, &self.user_by_name);
        let same_objects = before.objects.len() == self.objects.len()
            && before
                .objects
                .iter()
                .zip(&self.objects)
                .all(|(a, b)| a.name == b.name && a.fields == b.fields);
        for (key, principal) in &mut principals {
            let old = before.principals.get(key);
            let unchanged = same_objects
                && old.is_some_and(|old| {
                    old.admin == principal.admin
                        && old.inbox == principal.inbox
                        && old.associated_user == principal.associated_user
                        && old.groups.len() == principal.groups.len()
                        && old
                            .groups
                            .iter()
                            .zip(&principal.groups)
                            .all(|(a, b)| before.groups.get(*a) == self.groups.get(*b))
                });
            principal.version = match old {
                Some(old) if unchanged => old.version,
                _ => revision,
            };
        }
        self.principals = Arc::new(principals);
    }

    /// The index of a user name, interned if new (the tables are copied
    /// only then).
    fn intern(&mut self, name: &str) -> UserIdx {
        if let Some(&idx) = self.user_by_name.get(name) {
            return idx;
        }
        intern_user(
            Arc::make_mut(&mut self.users),
            Arc::make_mut(&mut self.user_by_name),
            name,
        )
    }

    /// Brings the objects in line with the meta copy's definitions: new
    /// objects start empty, changed ones keep their records, a deleted one
    /// must have none left. Every version moves (object indexes may shift).
    fn reshape_objects(&mut self, revision: u64) -> Result<(), ApplyError> {
        let defs = tenant_objects(&self.meta);
        for old in &self.objects {
            let has_records = !old.live_dense.is_empty() || !old.archived_dense.is_empty();
            if has_records && !defs.iter().any(|d| d.name == old.name) {
                return Err(ApplyError::ObjectHasRecords {
                    tenant: self.id.clone(),
                    object: old.name.clone(),
                });
            }
        }
        let mut objects = Vec::with_capacity(defs.len());
        let mut resourced = Vec::new();
        for def in &defs {
            let existing = self.objects.iter().find(|o| o.name == def.name).cloned();
            let mut object = existing.unwrap_or_else(|| {
                Arc::new(ObjectIndex {
                    name: def.name.clone(),
                    fields: Vec::new(),
                    source: def.association_source,
                    ids: Arc::new(IdTable::default()),
                    live_dense: DenseSet::default(),
                    archived_dense: DenseSet::default(),
                    direct: Arc::default(),
                    related: Arc::default(),
                    contact: (def.name == CONTACTS).then(ContactIndex::default),
                    users: RecordUsers::default(),
                    version: revision,
                })
            });
            let o = Arc::make_mut(&mut object);
            o.fields = object_fields(def);
            if o.source != def.association_source {
                o.source = def.association_source;
                resourced.push(def.name.clone());
            }
            o.version = revision;
            objects.push(object);
        }
        self.set_objects(objects);
        self.defs = Arc::new(defs);
        // An object that starts looking at related records needs its
        // related sets; one that stops keeps none (as a build would).
        for name in resourced {
            let Some(oi) = self.object_index(&name) else {
                continue;
            };
            let ids: Vec<Uuid> = self
                .objects
                .get(oi)
                .map(|o| {
                    o.live_dense
                        .iter()
                        .chain(o.archived_dense.iter())
                        .filter_map(|ord| o.id(ord))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(o) = self.objects.get_mut(oi) {
                Arc::make_mut(o).related = Arc::default();
            }
            // Starting from empty sets: what each record holds is nothing.
            self.refresh_related(ids.into_iter().collect(), &FxHashMap::default(), revision);
        }
        self.stamp(revision);
        Ok(())
    }

    /// Where a record lives: its object and ordinal, if it exists.
    fn locate(&self, id: &Uuid) -> Option<(usize, RecordOrd)> {
        self.objects
            .iter()
            .enumerate()
            .find_map(|(oi, o)| o.ord(id).map(|ord| (oi, ord)))
    }

    /// Whether the record exists in an object that keeps related sets.
    fn keeps_related(&self, id: &Uuid) -> Option<(usize, RecordOrd)> {
        self.locate(id).filter(|(oi, _)| {
            self.objects
                .get(*oi)
                .is_some_and(|o| o.source != AssociationSource::Direct)
        })
    }

    /// The users a record is associated with through its links (R9): the
    /// direct users of every existing record linked with it, either way —
    /// what its related sets hold.
    fn related_of(&self, id: &Uuid) -> Vec<UserIdx> {
        let mut users: Vec<UserIdx> = self
            .links
            .neighbors(id)
            .filter_map(|n| self.locate(&n))
            .flat_map(|(oj, other)| {
                self.objects
                    .get(oj)
                    .map(|o| o.users.get(other).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    /// The related users of each record in `ids` that keeps related sets,
    /// as they stand now.
    fn related_before(&self, ids: &FxHashSet<Uuid>) -> FxHashMap<Uuid, Vec<UserIdx>> {
        ids.iter()
            .filter(|id| self.keeps_related(id).is_some())
            .map(|id| (*id, self.related_of(id)))
            .collect()
    }

    /// Brings the related sets of `ids` from `before` (what they held) to
    /// what the links and direct users say now.
    fn refresh_related(
        &mut self,
        ids: FxHashSet<Uuid>,
        before: &FxHashMap<Uuid, Vec<UserIdx>>,
        revision: u64,
    ) {
        for id in ids {
            let Some((oi, ord)) = self.keeps_related(&id) else {
                continue;
            };
            let now = self.related_of(&id);
            let old = before.get(&id).map(Vec::as_slice).unwrap_or_default();
            if old == now.as_slice() {
                continue;
            }
            let Some(slot) = self.objects.get_mut(oi) else {
                continue;
            };
            let object = Arc::make_mut(slot);
            object.version = revision;
            move_record(&mut object.related, ord, old, &now);
        }
    }

    fn upsert_record(&mut self, record: &Record, revision: u64) -> Result<(), ApplyError> {
        let invalid = |problems: String| ApplyError::Invalid {
            tenant: self.id.clone(),
            kind: "record",
            key: record.id.to_string(),
            problems,
        };
        let problems = validate_record(&self.defs, record);
        if !problems.is_empty() {
            return Err(invalid(
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        let oi = self
            .object_index(&record.object)
            .ok_or_else(|| ApplyError::UnknownObject {
                tenant: self.id.clone(),
                object: record.object.clone(),
            })?;
        // A link must point at a record of the relationship's object.
        if let Some(def) = self.defs.iter().find(|d| d.name == record.object) {
            for (field, ids) in &record.links {
                let want = def.relationships.iter().find(|r| &r.field == field);
                for id in ids {
                    let Some((oj, _)) = self.locate(id) else {
                        continue;
                    };
                    let have = self.objects.get(oj).map(|o| o.name.as_str());
                    if let (Some(rel), Some(have)) = (want, have)
                        && rel.object != have
                    {
                        return Err(invalid(format!(
                            "record.links.{field}: record {id} is a {have} record, but '{field}' links to {}",
                            rel.object
                        )));
                    }
                }
            }
        }
        // A record that moves to another object leaves the old one first.
        let existed = self.locate(&record.id);
        if let Some((old_oi, _)) = existed
            && old_oi != oi
        {
            self.delete_record(&record.id, revision);
        }
        let existed = existed.filter(|(o, _)| *o == oi).is_some();

        let mut new_users: Vec<UserIdx> = record
            .owner
            .iter()
            .chain(record.teams.values().flatten())
            .chain(&record.interactions)
            .map(|u| self.intern(u))
            .collect();
        new_users.sort_unstable();
        new_users.dedup();
        let new_links: Vec<Uuid> = record.links.values().flatten().copied().collect();

        // Whose related sets this can change, and what they hold now.
        let mut touched: FxHashSet<Uuid> = new_links.iter().copied().collect();
        touched.extend(self.links.forward(&record.id));
        touched.extend(self.links.back(&record.id));
        let mut before = self.related_before(&touched);
        if existed {
            before.extend(self.related_before(&FxHashSet::from_iter([record.id])));
        }
        touched.insert(record.id);

        let tenant = self.id.clone();
        let Some(slot) = self.objects.get_mut(oi) else {
            return Err(ApplyError::UnknownObject {
                tenant,
                object: record.object.clone(),
            });
        };
        let object = Arc::make_mut(slot);
        object.version = revision;
        // The id table is copied only when a new id joins it.
        let ord = match object.ids.get(&record.id) {
            Some(ord) => ord,
            None => {
                Arc::make_mut(&mut object.ids)
                    .insert(record.id)
                    .ok_or_else(|| ApplyError::ObjectFull {
                        tenant: tenant.clone(),
                        object: record.object.clone(),
                    })?
                    .0
            }
        };
        let universe = object.ids.len();
        for dense in object.dense_sets_mut() {
            dense.grow(universe);
        }
        let old_users: Vec<UserIdx> = object.users.get(ord).collect();
        if old_users != new_users {
            move_record(&mut object.direct, ord, &old_users, &new_users);
            object.users.set(ord, new_users);
        }
        object.set_archived(ord, record.archived);
        if let Some(contact) = object.contact.as_mut() {
            index_contact(contact, ord, record.contact.as_ref(), false);
        }

        // The link maps are copied only when this record's links change.
        if !self.links.forward(&record.id).eq(new_links.iter().copied()) {
            let links = Arc::make_mut(&mut self.links);
            links.remove(&record.id);
            links.add(record.id, new_links);
        }
        self.refresh_related(touched, &before, revision);
        Ok(())
    }

    /// Deletes a record; deleting one that does not exist does nothing.
    fn delete_record(&mut self, id: &Uuid, revision: u64) {
        let Some((oi, ord)) = self.locate(id) else {
            return;
        };
        let mut neighbors: FxHashSet<Uuid> = self.links.neighbors(id).collect();
        neighbors.remove(id);
        let before = self.related_before(&neighbors);
        let own_related = if self.keeps_related(id).is_some() {
            self.related_of(id)
        } else {
            Vec::new()
        };
        let Some(slot) = self.objects.get_mut(oi) else {
            return;
        };
        let object = Arc::make_mut(slot);
        object.version = revision;
        object.live_dense.set(ord, false);
        object.archived_dense.set(ord, false);
        let users: Vec<UserIdx> = object.users.get(ord).collect();
        if !users.is_empty() {
            move_record(&mut object.direct, ord, &users, &[]);
            object.users.set(ord, Vec::new());
        }
        move_record(&mut object.related, ord, &own_related, &[]);
        if let Some(contact) = object.contact.as_mut() {
            contact.forget(ord);
        }
        if self.links.forward(id).next().is_some() {
            Arc::make_mut(&mut self.links).remove(id);
        }
        self.refresh_related(neighbors, &before, revision);
    }
}

/// Moves a record in per-user sets (direct or related) from the users in
/// `old` to those in `new`, touching only the users that differ and
/// dropping sets it empties; the map is copied only when something moves.
fn move_record(
    sets: &mut Arc<FxHashMap<UserIdx, Arc<RoaringBitmap>>>,
    ord: RecordOrd,
    old: &[UserIdx],
    new: &[UserIdx],
) {
    if old == new {
        return;
    }
    let sets = Arc::make_mut(sets);
    for user in old.iter().filter(|u| !new.contains(u)) {
        if let Some(set) = sets.get_mut(user) {
            Arc::make_mut(set).remove(ord);
            if set.is_empty() {
                sets.remove(user);
            }
        }
    }
    for user in new.iter().filter(|u| !old.contains(u)) {
        Arc::make_mut(sets.entry(*user).or_default()).insert(ord);
    }
}

impl ObjectIndex {
    fn set_archived(&mut self, ord: RecordOrd, archived: bool) {
        self.live_dense.set(ord, !archived);
        self.archived_dense.set(ord, archived);
    }

    fn dense_sets_mut(&mut self) -> Vec<&mut DenseSet> {
        let mut sets = vec![&mut self.live_dense, &mut self.archived_dense];
        if let Some(contact) = self.contact.as_mut() {
            sets.extend(contact.dense.all_mut());
        }
        sets
    }
}

/// Changes grouped by tenant, in order, keeping each tenant's changes in
/// the order they were written.
pub fn by_tenant(changes: &[Change]) -> FxHashMap<&str, Vec<&Change>> {
    let mut groups: FxHashMap<&str, Vec<&Change>> = FxHashMap::default();
    for change in changes {
        groups
            .entry(change.tenant.as_str())
            .or_default()
            .push(change);
    }
    groups
}
