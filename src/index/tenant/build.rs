//! Building a tenant's index from a tenant that passed validation: two
//! passes over the records (intern ids, state and direct associations; then
//! one-hop associations through links, R9).

use std::sync::Arc;

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use uuid::Uuid;

use super::{
    ContactIndex, ContactProbes, Links, ObjectIndex, RecordUsers, TenantIndex, build_groups,
    build_principals, index_contact,
};
use crate::index::dense::DenseSet;
use crate::index::ids::IdTable;
use crate::index::ord::{RecordOrd, UserIdx};
use crate::model::data::{AssociationSource, CONTACTS, Tenant};
use crate::model::validate::{object_fields, tenant_objects};

impl TenantIndex {
    /// Builds the index of a tenant that passed [`crate::model::validate`].
    /// Dangling user and record references are skipped (they associate
    /// nobody), so this cannot fail.
    pub fn build(tenant: &Tenant) -> TenantIndex {
        let defs = tenant_objects(tenant);
        let object_by_name: FxHashMap<String, usize> = defs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), i))
            .collect();
        // Records per object, counted in one pass, to size each id table.
        let mut record_counts = vec![0usize; defs.len()];
        for record in &tenant.records {
            if let Some(n) = object_by_name
                .get(&record.object)
                .and_then(|&oi| record_counts.get_mut(oi))
            {
                *n += 1;
            }
        }
        let mut objects: Vec<ObjectIndex> = defs
            .iter()
            .zip(&record_counts)
            .map(|(def, &records)| ObjectIndex {
                name: def.name.clone(),
                fields: object_fields(def),
                source: def.association_source,
                ids: Arc::new(IdTable::with_capacity(records)),
                live: RoaringBitmap::new(),
                archived: RoaringBitmap::new(),
                live_dense: DenseSet::default(),
                archived_dense: DenseSet::default(),
                direct: Arc::default(),
                related: Arc::default(),
                contact: (def.name == CONTACTS).then(ContactIndex::default),
                users: RecordUsers::default(),
                version: 0,
            })
            .collect();

        let mut users: Vec<String> = Vec::new();
        let mut user_by_name: FxHashMap<String, UserIdx> = FxHashMap::default();
        for name in tenant
            .users
            .iter()
            .map(|u| &u.id)
            .chain(tenant.records.iter().flat_map(|r| {
                r.owner
                    .iter()
                    .chain(r.teams.values().flatten())
                    .chain(&r.interactions)
            }))
        {
            intern_user(&mut users, &mut user_by_name, name);
        }
        let field_lists: Vec<Vec<String>> = objects.iter().map(|o| o.fields.clone()).collect();
        let groups = build_groups(tenant, &field_lists, &object_by_name);
        let principals = build_principals(tenant, &groups, &user_by_name);
        let user_by_id = &user_by_name;

        // Pass 1: intern ids, record state, direct associations.
        let mut where_is: FxHashMap<Uuid, (usize, RecordOrd)> = FxHashMap::default();
        let mut users_of: Vec<Vec<Vec<UserIdx>>> = vec![Vec::new(); objects.len()];
        for record in &tenant.records {
            let Some(&oi) = object_by_name.get(&record.object) else {
                continue;
            };
            let (Some(object), Some(record_users)) = (objects.get_mut(oi), users_of.get_mut(oi))
            else {
                continue;
            };
            // A repeated id is refused by validation; never index it twice.
            let Some((ord, true)) = Arc::make_mut(&mut object.ids).insert(record.id) else {
                continue;
            };
            where_is.insert(record.id, (oi, ord));
            if record.archived {
                object.archived.insert(ord);
            } else {
                object.live.insert(ord);
            }
            let mut associated: Vec<UserIdx> = record
                .owner
                .iter()
                .chain(record.teams.values().flatten())
                .chain(&record.interactions)
                .filter_map(|u| user_by_id.get(u.as_str()).copied())
                .collect();
            associated.sort_unstable();
            associated.dedup();
            for &user in &associated {
                Arc::make_mut(Arc::make_mut(&mut object.direct).entry(user).or_default())
                    .insert(ord);
            }
            record_users.push(associated);
            if let Some(contact) = object.contact.as_mut() {
                index_contact(contact, ord, record.contact.as_ref());
            }
        }
        for (object, lists) in objects.iter_mut().zip(&users_of) {
            object.users = RecordUsers::from_lists(lists);
        }
        for object in &mut objects {
            let universe = object.len();
            object.live_dense = DenseSet::of(&object.live, universe);
            object.archived_dense = DenseSet::of(&object.archived, universe);
            if let Some(contact) = object.contact.as_mut() {
                contact.dense = ContactProbes {
                    valid_email: DenseSet::of(&contact.valid_email, universe),
                    valid_mobile: DenseSet::of(&contact.valid_mobile, universe),
                    sms_opted_out: DenseSet::of(&contact.sms_opted_out, universe),
                    unsubscribed_all: DenseSet::of(&contact.unsubscribed_all, universe),
                    suppressed_forever: DenseSet::of(&contact.suppressed_forever, universe),
                };
            }
        }

        // Pass 2: association through relationships, one hop, both directions (R9).
        let mut edges: Vec<((usize, RecordOrd), (usize, RecordOrd))> = Vec::new();
        let mut link_lists: Vec<(Uuid, Vec<Uuid>)> = Vec::new();
        for record in &tenant.records {
            let Some(&from) = where_is.get(&record.id) else {
                continue;
            };
            if !record.links.is_empty() {
                link_lists.push((
                    record.id,
                    record.links.values().flatten().copied().collect(),
                ));
            }
            for id in record.links.values().flatten() {
                if let Some(&to) = where_is.get(id) {
                    edges.push((from, to));
                    edges.push((to, from));
                }
            }
        }
        for ((oi, ord), (oj, other)) in edges {
            let Some(object) = objects.get_mut(oi) else {
                continue;
            };
            if object.source == AssociationSource::Direct {
                continue;
            }
            let linked_users = users_of.get(oj).and_then(|u| u.get(other as usize));
            for &user in linked_users.into_iter().flatten() {
                Arc::make_mut(Arc::make_mut(&mut object.related).entry(user).or_default())
                    .insert(ord);
            }
        }

        TenantIndex {
            id: tenant.id.clone(),
            email_configured: tenant.email_configured,
            sms_configured: tenant.sms_configured,
            objects: objects.into_iter().map(Arc::new).collect(),
            object_by_name,
            groups: Arc::new(groups),
            users: Arc::new(users),
            user_by_name: Arc::new(user_by_name),
            principals: Arc::new(principals),
            meta: Arc::new(tenant.clone_without_records()),
            defs: Arc::new(defs),
            links: Arc::new(Links::build(link_lists)),
        }
    }
}

pub(crate) fn intern_user(
    users: &mut Vec<String>,
    user_by_name: &mut FxHashMap<String, UserIdx>,
    name: &str,
) -> UserIdx {
    if let Some(&idx) = user_by_name.get(name) {
        return idx;
    }
    let idx = users.len() as UserIdx;
    users.push(name.to_owned());
    user_by_name.insert(name.to_owned(), idx);
    idx
}
