//! Changes applied to a data file, the slow obvious way: what a test keeps
//! beside an engine it sends changes to, so that it can rebuild an engine
//! from the changed data or ask the reference evaluator about it. The
//! engine's incremental path is what is tested; this is the yardstick, so it
//! shares nothing with `permd::index` and only replaces, adds and removes
//! whole entities by key.
//!
//! - [`apply`]: one change to a [`DataFile`].
//! - [`ChangedData`]: a data file with changes applied as they are sent,
//!   which finds a record by id without a scan (a soak sends thousands of
//!   changes to 100,000 Contacts).

use std::collections::HashMap;

use permd::model::change::{Change, ChangeOp, Entity, EntityKind};
use permd::model::data::{DataFile, Record, Tenant};
use uuid::Uuid;

/// Applies one change as the writer meant it: an upsert replaces the entity
/// with the same key or adds it, a delete removes it (deleting what is not
/// there changes nothing, like the engine). A tenant upsert sets the
/// settings, creating the tenant if it is new; a tenant delete drops it with
/// everything in it.
///
/// Panics on an upsert into a tenant the file does not have: the engine
/// refuses that change, so a test has no business keeping it.
pub fn apply(data: &mut DataFile, change: &Change) {
    let at = data.tenants.iter().position(|t| t.id == change.tenant);
    match (&change.op, at) {
        (ChangeOp::Upsert(Entity::Tenant(s)), None) => data.tenants.push(Tenant {
            id: change.tenant.clone(),
            email_configured: s.email_configured,
            sms_configured: s.sms_configured,
            ..Tenant::default()
        }),
        (
            ChangeOp::Delete {
                kind: EntityKind::Tenant,
                ..
            },
            Some(at),
        ) => {
            data.tenants.remove(at);
        }
        (ChangeOp::Delete { .. }, None) => {}
        (ChangeOp::Upsert(_), None) => panic!(
            "a change to tenant '{}', which the data file does not have",
            change.tenant
        ),
        (_, Some(at)) => apply_to_tenant(&mut data.tenants[at], change),
    }
}

/// [`apply`] inside the tenant the change names.
fn apply_to_tenant(t: &mut Tenant, change: &Change) {
    match &change.op {
        ChangeOp::Upsert(entity) => match entity {
            Entity::Tenant(s) => {
                t.email_configured = s.email_configured;
                t.sms_configured = s.sms_configured;
            }
            Entity::Object(o) => upsert(&mut t.objects, |x| x.name.clone(), o),
            Entity::Group(g) => upsert(&mut t.groups, |x| x.id.clone(), g),
            Entity::Role(r) => upsert(&mut t.roles, |x| x.id.clone(), r),
            Entity::User(u) => upsert(&mut t.users, |x| x.id.clone(), u),
            Entity::Integration(i) => upsert(&mut t.integrations, |x| x.id.clone(), i),
            Entity::Automation(a) => upsert(&mut t.automations, |x| x.id.clone(), a),
            Entity::Record(r) => upsert(&mut t.records, |x| x.id, r),
        },
        ChangeOp::Delete { kind, key } => match kind {
            EntityKind::Tenant => unreachable!("`apply` drops the whole tenant"),
            EntityKind::Object => t.objects.retain(|x| x.name != *key),
            EntityKind::Group => t.groups.retain(|x| x.id != *key),
            EntityKind::Role => t.roles.retain(|x| x.id != *key),
            EntityKind::User => t.users.retain(|x| x.id != *key),
            EntityKind::Integration => t.integrations.retain(|x| x.id != *key),
            EntityKind::Automation => t.automations.retain(|x| x.id != *key),
            EntityKind::Record => {
                let id = Uuid::parse_str(key)
                    .unwrap_or_else(|e| panic!("record key '{key}' is not a UUID: {e}"));
                t.records.retain(|x| x.id != id);
            }
        },
    }
}

/// Replaces the item of `list` with the same key as `item`, or adds it.
fn upsert<T: Clone, K: PartialEq>(list: &mut Vec<T>, key: impl Fn(&T) -> K, item: &T) {
    let k = key(item);
    match list.iter().position(|x| key(x) == k) {
        Some(at) => list[at] = item.clone(),
        None => list.push(item.clone()),
    }
}

/// A data file kept in step with an engine: every change sent to the engine
/// is applied here too, so the end of a run can compare the engine with the
/// reference evaluator (or a rebuild) on the same data. A record upsert of a
/// known record replaces it where it stands, found through an index rather
/// than a scan, so the copy neither slows a long run down nor grows with the
/// number of changes; everything else goes through [`apply`].
pub struct ChangedData {
    data: DataFile,
    /// Per tenant (by position in the file) and record id: the record's
    /// position in that tenant's records.
    at: HashMap<(usize, Uuid), usize>,
    applied: usize,
}

impl ChangedData {
    pub fn new(data: DataFile) -> ChangedData {
        let mut changed = ChangedData {
            data,
            at: HashMap::new(),
            applied: 0,
        };
        changed.reindex();
        changed
    }

    fn reindex(&mut self) {
        self.at = self
            .data
            .tenants
            .iter()
            .enumerate()
            .flat_map(|(t, tenant)| {
                tenant
                    .records
                    .iter()
                    .enumerate()
                    .map(move |(i, r)| ((t, r.id), i))
            })
            .collect();
    }

    fn tenant_at(&self, tenant: &str) -> Option<usize> {
        self.data.tenants.iter().position(|t| t.id == tenant)
    }

    pub fn apply(&mut self, change: &Change) {
        self.applied += 1;
        let t = self.tenant_at(&change.tenant);
        if let (ChangeOp::Upsert(Entity::Record(r)), Some(t)) = (&change.op, t) {
            let records = &mut self.data.tenants[t].records;
            match self.at.get(&(t, r.id)) {
                Some(&i) => records[i] = r.clone(),
                None => {
                    self.at.insert((t, r.id), records.len());
                    records.push(r.clone());
                }
            }
            return;
        }
        apply(&mut self.data, change);
        // Removing a record or a tenant moves what came after it.
        if matches!(change.op, ChangeOp::Delete { .. }) {
            self.reindex();
        }
    }

    /// The record `id` of `tenant`, as the changes so far left it.
    #[track_caller]
    pub fn record(&self, tenant: &str, id: Uuid) -> &Record {
        let t = self
            .tenant_at(tenant)
            .unwrap_or_else(|| panic!("no tenant '{tenant}'"));
        let i = self
            .at
            .get(&(t, id))
            .unwrap_or_else(|| panic!("no record {id} in tenant '{tenant}'"));
        &self.data.tenants[t].records[*i]
    }

    /// How many changes were applied.
    pub fn applied(&self) -> usize {
        self.applied
    }

    pub fn data(&self) -> &DataFile {
        &self.data
    }

    pub fn into_data(self) -> DataFile {
        self.data
    }
}
