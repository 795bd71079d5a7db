//! Building a tenant's index from a tenant that passed validation: two
//! passes over the records (intern ids, state and direct associations; then
//! one-hop associations through links, R9).

use std::sync::Arc;

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use uuid::Uuid;

use super::{
    ContactIndex, Links, ObjectIndex, RecordUsers, TenantIndex, add_ord, build_groups,
    build_principals, index_contact,
};
use crate::index::dense::DenseSet;
use crate::index::ids::IdTable;
use crate::index::ord::{RecordOrd, UNKNOWN, UserIdx};
use crate::model::data::{AssociationSource, CONTACTS, ObjectDef, Record, Tenant};
use crate::model::validate::{object_fields, tenant_objects};

impl TenantIndex {
    /// Builds the index of a tenant that passed [`crate::model::validate`].
    /// Dangling user and record references are skipped (they associate
    /// nobody), so this cannot fail.
    pub fn build(tenant: &Tenant) -> TenantIndex {
        let mut builder = TenantBuilder::new(tenant);
        // The records are all here: size each id table once.
        let mut counts: FxHashMap<&str, usize> = FxHashMap::default();
        for record in &tenant.records {
            *counts.entry(record.object.as_str()).or_default() += 1;
        }
        for (object, records) in counts {
            builder.reserve(object, records);
        }
        for record in &tenant.records {
            builder.add(record);
        }
        builder.finish(tenant)
    }
}

/// A tenant's index built one record at a time, so that a loader can read
/// a million records without holding them all: each record is indexed as
/// it arrives (pass 1: ids, state, direct associations) and dropped; only
/// its links are kept, for the one-hop associations of [`Self::finish`]
/// (pass 2, R9), which need every record's users.
pub struct TenantBuilder {
    /// The objects as permissions see them (with `contacts`), in index order.
    defs: Vec<ObjectDef>,
    object_by_name: FxHashMap<String, usize>,
    objects: Vec<ObjectIndex>,
    users: Vec<String>,
    user_by_name: FxHashMap<String, UserIdx>,
    link_lists: Vec<(Uuid, Vec<Uuid>)>,
    /// Where each of `link_lists`' records was indexed: pass 2 need not
    /// look them up again. It is the record's own place, which for an id
    /// added to two objects is not always where a lookup finds it; a
    /// loader refuses such ids ([`Self::ids_in_two_objects`]) before
    /// [`Self::finish`].
    link_from: Vec<(usize, RecordOrd)>,
    /// Which object holds each id, kept only for tenants of many objects:
    /// with few, asking each object's id table is as fast and costs no
    /// memory (a million-record map would add ~40 MB to the load's peak).
    where_is: Option<FxHashMap<Uuid, u32>>,
}

/// Tenants with more objects than this keep [`TenantBuilder::where_is`].
const SCAN_OBJECTS_UP_TO: usize = 16;

/// The object and ordinal of an indexed id.
fn locate(
    objects: &[ObjectIndex],
    where_is: Option<&FxHashMap<Uuid, u32>>,
    id: &Uuid,
) -> Option<(usize, RecordOrd)> {
    match where_is {
        Some(map) => {
            let oi = *map.get(id)? as usize;
            objects.get(oi)?.ids.get(id).map(|ord| (oi, ord))
        }
        None => objects
            .iter()
            .enumerate()
            .find_map(|(oi, o)| o.ids.get(id).map(|ord| (oi, ord))),
    }
}

impl TenantBuilder {
    /// A builder for records of `meta`'s objects. Of `meta` only the
    /// objects and users are read here (the rest at [`Self::finish`]); its
    /// records, if any, are not added.
    pub fn new(meta: &Tenant) -> TenantBuilder {
        let defs = tenant_objects(meta);
        let object_by_name: FxHashMap<String, usize> = defs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), i))
            .collect();
        let objects = defs
            .iter()
            .map(|def| ObjectIndex {
                name: def.name.clone(),
                fields: object_fields(def),
                source: def.association_source,
                ids: Arc::new(IdTable::default()),
                live_dense: DenseSet::default(),
                archived_dense: DenseSet::default(),
                direct: Arc::default(),
                related: Arc::default(),
                contact: (def.name == CONTACTS).then(ContactIndex::default),
                users: RecordUsers::default(),
                version: 0,
            })
            .collect();
        let where_is = (defs.len() > SCAN_OBJECTS_UP_TO).then(FxHashMap::default);
        let mut builder = TenantBuilder {
            defs,
            object_by_name,
            objects,
            users: Vec::new(),
            user_by_name: FxHashMap::default(),
            link_lists: Vec::new(),
            link_from: Vec::new(),
            where_is,
        };
        for user in &meta.users {
            intern_user(&mut builder.users, &mut builder.user_by_name, &user.id);
        }
        builder
    }

    /// Sizes `object`'s id table (and users table) for `records` records,
    /// before any is added (a table grown one insert at a time rehashes as
    /// it doubles).
    pub fn reserve(&mut self, object: &str, records: usize) {
        let Some(o) = self
            .object_by_name
            .get(object)
            .and_then(|&i| self.objects.get_mut(i))
        else {
            return;
        };
        if o.ids.is_empty() {
            o.ids = Arc::new(IdTable::with_capacity(records));
            o.users.reserve(records);
        }
    }

    /// Records added so far.
    pub fn records(&self) -> usize {
        self.objects.iter().map(|o| o.ids.len()).sum()
    }

    /// The object a record id was indexed in, by name.
    pub fn object_of(&self, id: &Uuid) -> Option<&str> {
        locate(&self.objects, self.where_is.as_ref(), id)
            .and_then(|(oi, _)| self.objects.get(oi))
            .map(|o| o.name.as_str())
    }

    /// [`Self::object_of`] for many ids: `out[i]` names `ids[i]`'s object.
    pub fn objects_of<'a>(&'a self, ids: &[Uuid], out: &mut [Option<&'a str>]) {
        let mut placed = vec![None; ids.len()];
        locate_many(&self.objects, self.where_is.as_ref(), ids, &mut placed);
        for (o, at) in out.iter_mut().zip(placed) {
            *o = at
                .and_then(|(oi, _)| self.objects.get(oi))
                .map(|o| o.name.as_str());
        }
    }

    /// Ids that were added to two objects, at most `max` of them. Empty
    /// when [`Self::add`] refused them already (tenants of many objects);
    /// otherwise each object's ids are probed in every larger object's
    /// table, which for a million Contacts and a few smaller objects is a
    /// few hundred thousand probes instead of several per record.
    pub fn ids_in_two_objects(&self, max: usize) -> Vec<Uuid> {
        let mut found = Vec::new();
        if self.where_is.is_some() {
            return found;
        }
        let mut by_size: Vec<&IdTable> = self.objects.iter().map(|o| o.ids.as_ref()).collect();
        by_size.sort_by_key(|t| t.len());
        let mut ords = vec![UNKNOWN; PROBE_CHUNK];
        for (i, small) in by_size.iter().enumerate() {
            let larger = by_size.get(i + 1..).unwrap_or_default();
            if larger.is_empty() {
                break;
            }
            let ids: Vec<Uuid> = (0..small.len())
                .filter_map(|ord| RecordOrd::try_from(ord).ok().and_then(|o| small.id(o)))
                .collect();
            for chunk in ids.chunks(PROBE_CHUNK) {
                let mut repeated = vec![false; chunk.len()];
                for table in larger {
                    let ords = ords.get_mut(..chunk.len()).unwrap_or_default();
                    table.get_many(chunk, ords);
                    for (r, ord) in repeated.iter_mut().zip(ords.iter()) {
                        *r |= *ord != UNKNOWN;
                    }
                }
                for (id, _) in chunk.iter().zip(&repeated).filter(|(_, r)| **r) {
                    found.push(*id);
                    if found.len() >= max {
                        return found;
                    }
                }
            }
        }
        found
    }

    /// Asks the memory system for the id-table slot `record` will be
    /// interned into, a few records before [`Self::add`] writes it: a
    /// million-record table is far larger than the caches, and the misses
    /// of records asked for ahead overlap where one record's at a time
    /// would not.
    pub fn prefetch(&self, record: &Record) {
        if let Some(o) = self
            .object_by_name
            .get(&record.object)
            .and_then(|&i| self.objects.get(i))
        {
            o.ids.prefetch(&record.id);
        }
    }

    /// Indexes one record; `false` when it is not indexed: its object is
    /// unknown, or its id was added before to the same object (or, with
    /// many objects, to any). Validation refuses all of these, and ids
    /// repeated across objects ([`Self::ids_in_two_objects`]).
    pub fn add(&mut self, record: &Record) -> bool {
        let Some(&oi) = self.object_by_name.get(&record.object) else {
            return false;
        };
        // An id of another object is found here only with `where_is`
        // (one probe); without it, by [`Self::ids_in_two_objects`] once
        // all are added — the same id within one object is refused by its
        // table below.
        if self
            .where_is
            .as_ref()
            .is_some_and(|m| m.contains_key(&record.id))
        {
            return false;
        }
        let mut associated: Vec<UserIdx> = record
            .owner
            .iter()
            .chain(record.teams.values().flatten())
            .chain(&record.interactions)
            .map(|u| intern_user(&mut self.users, &mut self.user_by_name, u))
            .collect();
        associated.sort_unstable();
        associated.dedup();
        let Some(object) = self.objects.get_mut(oi) else {
            return false;
        };
        let Some((ord, true)) = Arc::make_mut(&mut object.ids).insert(record.id) else {
            return false;
        };
        let universe = ord as usize + 1;
        object.live_dense.grow(universe);
        object.archived_dense.grow(universe);
        if record.archived {
            object.archived_dense.insert(ord);
        } else {
            object.live_dense.insert(ord);
        }
        for &user in &associated {
            add_ord(
                Arc::make_mut(Arc::make_mut(&mut object.direct).entry(user).or_default()),
                ord,
            );
        }
        object.users.push(&associated);
        if let Some(contact) = object.contact.as_mut() {
            contact.grow(universe);
            index_contact(contact, ord, record.contact.as_ref(), true);
        }
        if let Some(where_is) = self.where_is.as_mut() {
            where_is.insert(record.id, u32::try_from(oi).unwrap_or(u32::MAX));
        }
        if !record.links.is_empty() {
            self.link_lists.push((
                record.id,
                record.links.values().flatten().copied().collect(),
            ));
            self.link_from.push((oi, ord));
        }
        true
    }

    /// The index, once every record is added; `meta` is the whole tenant
    /// but its records (groups, roles and principals are read here). An id
    /// added to two objects is not refused here: a loader checks
    /// [`Self::ids_in_two_objects`] first (src/source/stream.rs).
    pub fn finish(self, meta: &Tenant) -> TenantIndex {
        let records = self.records();
        let TenantBuilder {
            defs,
            object_by_name,
            mut objects,
            users,
            user_by_name,
            link_lists,
            link_from,
            where_is,
        } = self;
        for object in &mut objects {
            Arc::make_mut(&mut object.ids).shrink_to_fit();
            object.users.shrink_to_fit();
        }

        relate(&mut objects, where_is.as_ref(), &link_lists, &link_from);
        drop(link_from);

        for object in &mut objects {
            compact(&mut object.direct);
            compact(&mut object.related);
        }

        let links = Arc::new(Links::build(link_lists));
        // The lists and tables this pass built and dropped were this
        // thread's.
        crate::memory::settle_after(records);

        let field_lists: Vec<Vec<String>> = objects.iter().map(|o| o.fields.clone()).collect();
        let groups = build_groups(meta, &field_lists, &object_by_name);
        let principals = build_principals(meta, &groups, &user_by_name);
        TenantIndex {
            id: meta.id.clone(),
            email_configured: meta.email_configured,
            sms_configured: meta.sms_configured,
            objects: objects.into_iter().map(Arc::new).collect(),
            object_by_name,
            groups: Arc::new(groups),
            users: Arc::new(users),
            user_by_name: Arc::new(user_by_name),
            principals: Arc::new(principals),
            meta: Arc::new(meta.clone_without_records()),
            defs: Arc::new(defs),
            links,
        }
    }
}

/// Ids looked up in the id tables at a time, with their probes overlapping.
const PROBE_CHUNK: usize = 4096;

/// Pass 2, association through relationships, one hop, both directions
/// (R9): of each linked pair, each side's object (unless it takes direct
/// association only) gets the other record's users. `link_from[i]` is
/// where `link_lists[i]`'s record was indexed. The linked ids are looked
/// up a chunk at a time (a million-record table is a cache miss per id,
/// and a chunk's misses overlap), and each user's set is built from its
/// sorted records at once rather than by inserts in link order.
fn relate(
    objects: &mut [ObjectIndex],
    where_is: Option<&FxHashMap<Uuid, u32>>,
    link_lists: &[(Uuid, Vec<Uuid>)],
    link_from: &[(usize, RecordOrd)],
) {
    let mut gained: Vec<FxHashMap<UserIdx, Gained>> =
        objects.iter().map(|_| FxHashMap::default()).collect();
    // `receiver` gets the users of `giver`.
    let mut give = |objects: &[ObjectIndex],
                    (receiver, at): (usize, RecordOrd),
                    (giver, of): (usize, RecordOrd)| {
        let (Some(object), Some(other), Some(gained)) = (
            objects.get(receiver),
            objects.get(giver),
            gained.get_mut(receiver),
        ) else {
            return;
        };
        if object.source == AssociationSource::Direct {
            return;
        }
        for user in other.users.get(of) {
            gained.entry(user).or_default().push(at);
        }
    };
    let mut linked = link_from
        .iter()
        .zip(link_lists)
        .flat_map(|(from, (_, to))| to.iter().map(move |id| (*from, *id)));
    let mut chunk = Vec::with_capacity(PROBE_CHUNK);
    let mut ids = Vec::with_capacity(PROBE_CHUNK);
    let mut placed = vec![None; PROBE_CHUNK];
    loop {
        chunk.clear();
        chunk.extend(linked.by_ref().take(PROBE_CHUNK));
        if chunk.is_empty() {
            break;
        }
        ids.clear();
        ids.extend(chunk.iter().map(|(_, id)| *id));
        let placed = placed.get_mut(..chunk.len()).unwrap_or_default();
        locate_many(objects, where_is, &ids, placed);
        for ((from, _), to) in chunk.iter().zip(placed.iter()) {
            if let Some(to) = *to {
                give(objects, *from, to);
                give(objects, to, *from);
            }
        }
    }
    for (object, gained) in objects.iter_mut().zip(gained) {
        // `related` is empty until now: pass 1 fills only `direct`.
        let related = Arc::make_mut(&mut object.related);
        for (user, mut gained) in gained {
            gained.settle();
            let entry = Arc::make_mut(related.entry(user).or_default());
            *entry |= gained.set;
        }
    }
}

/// The records one user gains in one object's related sets during
/// [`relate`]: appended as links come, in no order, and folded into a
/// bitmap a few thousand at a time, sorted — inserting each into the
/// bitmap in link order moves array containers' contents at every
/// insert, and keeping every one as a `u32` until the end would hold a
/// popular user's millions of links uncompressed.
#[derive(Default)]
struct Gained {
    pending: Vec<RecordOrd>,
    set: RoaringBitmap,
}

/// Records a [`Gained`] holds unsorted at most.
const PENDING_RECORDS: usize = 4096;

impl Gained {
    fn push(&mut self, ord: RecordOrd) {
        // The same record again (each of its links, or a self link).
        if self.pending.last() == Some(&ord) {
            return;
        }
        self.pending.push(ord);
        if self.pending.len() >= PENDING_RECORDS {
            self.settle();
        }
    }

    fn settle(&mut self) {
        self.pending.sort_unstable();
        self.pending.dedup();
        if let Ok(sorted) = RoaringBitmap::from_sorted_iter(self.pending.drain(..)) {
            self.set |= sorted;
        }
    }
}

/// [`locate`] for many ids: `out[i]` is where `ids[i]` is indexed.
fn locate_many(
    objects: &[ObjectIndex],
    where_is: Option<&FxHashMap<Uuid, u32>>,
    ids: &[Uuid],
    out: &mut [Option<(usize, RecordOrd)>],
) {
    if where_is.is_some() {
        for (id, o) in ids.iter().zip(out.iter_mut()) {
            *o = locate(objects, where_is, id);
        }
        return;
    }
    out.fill(None);
    // The first object holding an id, as `locate` finds it: each object
    // is asked only about the ids no earlier one holds.
    let mut left: Vec<usize> = (0..ids.len()).collect();
    let mut asked = Vec::with_capacity(ids.len());
    let mut ords = vec![UNKNOWN; ids.len()];
    for (oi, object) in objects.iter().enumerate() {
        if left.is_empty() {
            break;
        }
        asked.clear();
        asked.extend(left.iter().filter_map(|&i| ids.get(i).copied()));
        let ords = ords.get_mut(..asked.len()).unwrap_or_default();
        object.ids.get_many(&asked, ords);
        let mut ords = ords.iter();
        left.retain(|&i| match (ords.next(), out.get_mut(i)) {
            (Some(&ord), Some(o)) if ord != UNKNOWN => {
                *o = Some((oi, ord));
                false
            }
            _ => true,
        });
    }
}

/// Copies per-user sets into allocations of their exact size. They grew
/// by pushes while records arrived (a container's vector up to twice its
/// length), among the load's short-lived allocations; the copies are
/// made once the short-lived ones are gone, so they pack together, and the
/// grown originals are freed whole.
fn compact(sets: &mut Arc<FxHashMap<UserIdx, Arc<RoaringBitmap>>>) {
    let packed: FxHashMap<UserIdx, Arc<RoaringBitmap>> = sets
        .iter()
        .map(|(user, set)| (*user, Arc::new(RoaringBitmap::clone(set))))
        .collect();
    *sets = Arc::new(packed);
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

#[cfg(test)]
mod tests {
    use super::{Gained, PENDING_RECORDS};

    /// Past the pending limit, in no order and with repeats, a user's
    /// gained records are the set of those pushed.
    #[test]
    fn gained_records_are_the_set_pushed() {
        let mut gained = Gained::default();
        let mut want = std::collections::BTreeSet::new();
        for n in 0..(3 * PENDING_RECORDS as u32 + 17) {
            let ord = n.wrapping_mul(2_654_435_761) % 50_000;
            gained.push(ord);
            gained.push(ord);
            want.insert(ord);
        }
        assert!(!gained.set.is_empty(), "settled on the way");
        gained.settle();
        assert!(gained.pending.is_empty());
        assert_eq!(
            gained.set.iter().collect::<Vec<_>>(),
            want.into_iter().collect::<Vec<_>>()
        );
    }
}
