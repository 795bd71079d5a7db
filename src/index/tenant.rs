//! One tenant's data in the shape the hot path wants: record UUIDs interned
//! to dense `u32` ordinals per object, and every record-level fact the rules
//! read (live, archived, who is associated, Contact state) as a roaring
//! bitmap over those ordinals. Built once per revision, then read-only.

use std::collections::BTreeMap;
use std::sync::Arc;

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use time::OffsetDateTime;
use uuid::Uuid;

use super::dense::DenseSet;
use super::ids::IdTable;
use crate::model::data::{AssociationSource, CONTACTS, EmailStatus, RunAs, Tenant};
use crate::model::validate::{object_fields, tenant_objects};
use crate::model::{AccessLevel, FieldLevel};

/// Index of a user inside its tenant.
pub type UserIdx = u32;
/// Dense ordinal of a record inside its tenant and object.
pub type RecordOrd = u32;

/// The time window `[from, until)` in which a time-dependent answer (a soft
/// bounce suppression, R13) stays exact. A cached answer is reused only
/// inside it, so the answer for an instant never depends on which instant
/// was asked about first — even when clocks or racing requests go backwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Validity {
    pub from: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

impl Validity {
    pub fn contains(&self, now: OffsetDateTime) -> bool {
        self.from.is_none_or(|from| from <= now) && self.until.is_none_or(|until| now < until)
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

/// Record links, both ways. Kept by id so a link to a record that does
/// not exist yet takes effect when it is created, as in a rebuild.
#[derive(Clone, Debug, Default)]
pub struct Links {
    pub forward: FxHashMap<Uuid, Vec<Uuid>>,
    pub back: FxHashMap<Uuid, Vec<Uuid>>,
}

/// The three kinds of principal (SEMANTICS.md "Principal").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalKind {
    User,
    Integration,
    Automation,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Integration => "integration",
            Self::Automation => "automation",
        }
    }
}

/// A principal resolved to what decides its access.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Principal {
    /// Indexes into [`TenantIndex::groups`], sorted and deduplicated.
    pub groups: Vec<usize>,
    pub admin: bool,
    /// The user whose associations count as the principal's (R8).
    pub associated_user: Option<UserIdx>,
    /// The revision at which what this principal may do last changed:
    /// cached answers of the principal are valid while it stays the same.
    pub version: u64,
}

/// A permission group's settings, with objects and fields resolved to indexes.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupGrants {
    pub id: String,
    pub create_objects: bool,
    /// Per object index; `None` where the group says nothing of the object.
    pub objects: Vec<Option<ObjectGrant>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectGrant {
    pub view_object: bool,
    pub edit_settings: bool,
    pub delete_object: bool,
    pub all_records: AccessLevel,
    pub associated_records: AccessLevel,
    /// Bits of [`crate::model::Toggle::bit`].
    pub toggles: u32,
    /// Per field index of the object.
    pub fields: Vec<FieldLevel>,
}

/// One object's records. The parts a record change never touches (the id
/// table, the association sets) are shared between revisions.
#[derive(Clone, Debug)]
pub struct ObjectIndex {
    pub name: String,
    /// Every field permissions apply to, in a stable order.
    pub fields: Vec<String>,
    pub source: AssociationSource,
    pub ids: Arc<IdTable>,
    pub live: RoaringBitmap,
    pub archived: RoaringBitmap,
    /// `live` and `archived`, dense: compiled answers start from them.
    pub live_dense: DenseSet,
    pub archived_dense: DenseSet,
    /// Per user: records they own, are on a team field of, or interacted with.
    pub direct: Arc<FxHashMap<UserIdx, Arc<RoaringBitmap>>>,
    /// Per user: records linked (one hop, either direction) to a record
    /// directly associated with them. Only for `related` and `both` sources.
    pub related: Arc<FxHashMap<UserIdx, Arc<RoaringBitmap>>>,
    /// Present on `contacts` only.
    pub contact: Option<ContactIndex>,
    /// Per record, the users it is directly associated with: what a change
    /// needs to move the record between `direct` sets without scanning them.
    pub users: RecordUsers,
    /// The revision at which this object's records last changed: cached
    /// answers on the object are valid while it stays the same.
    pub version: u64,
}

/// The users each record of an object is directly associated with: a
/// compact table built with the index, shared by every revision, plus the
/// records changed since, folded back into a new table when they grow
/// many (so a change never copies the whole table).
#[derive(Clone, Debug, Default)]
pub struct RecordUsers {
    base: Arc<UsersTable>,
    changed: FxHashMap<RecordOrd, Box<[UserIdx]>>,
}

#[derive(Debug, Default)]
struct UsersTable {
    /// `users[offsets[ord]..offsets[ord + 1]]` are the users of `ord`.
    offsets: Vec<u32>,
    users: Vec<UserIdx>,
}

/// Changed records kept beside the table before it is rebuilt.
const FOLD_AFTER: usize = 4_096;

impl RecordUsers {
    /// From the users of each ordinal, in ordinal order.
    pub fn from_lists(lists: &[Vec<UserIdx>]) -> RecordUsers {
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        let mut users = Vec::new();
        offsets.push(0);
        for list in lists {
            users.extend_from_slice(list);
            offsets.push(u32::try_from(users.len()).unwrap_or(u32::MAX));
        }
        RecordUsers {
            base: Arc::new(UsersTable { offsets, users }),
            changed: FxHashMap::default(),
        }
    }

    /// The users of a record, sorted.
    pub fn get(&self, ord: RecordOrd) -> &[UserIdx] {
        if let Some(users) = self.changed.get(&ord) {
            return users;
        }
        let at = ord as usize;
        match (self.base.offsets.get(at), self.base.offsets.get(at + 1)) {
            (Some(&from), Some(&to)) => self
                .base
                .users
                .get(from as usize..to as usize)
                .unwrap_or_default(),
            _ => &[],
        }
    }

    pub fn set(&mut self, ord: RecordOrd, users: Vec<UserIdx>) {
        self.changed.insert(ord, users.into_boxed_slice());
        if self.changed.len() > FOLD_AFTER {
            self.fold();
        }
    }

    fn fold(&mut self) {
        let n = (self.base.offsets.len().saturating_sub(1)).max(
            self.changed
                .keys()
                .map(|&o| o as usize + 1)
                .max()
                .unwrap_or(0),
        );
        let lists: Vec<Vec<UserIdx>> = (0..n)
            .map(|ord| self.get(ord as RecordOrd).to_vec())
            .collect();
        *self = RecordUsers::from_lists(&lists);
    }

    pub fn heap_bytes(&self) -> usize {
        self.base.offsets.capacity() * 4
            + self.base.users.capacity() * 4
            + self
                .changed
                .values()
                .map(|u| u.len() * 4 + 24)
                .sum::<usize>()
    }
}

/// Contact state as sets (R12–R15).
#[derive(Clone, Debug, Default)]
pub struct ContactIndex {
    pub valid_email: RoaringBitmap,
    pub valid_mobile: RoaringBitmap,
    pub sms_opted_out: RoaringBitmap,
    /// Subscription status underneath any suppression.
    pub unsubscribed_all: RoaringBitmap,
    pub suppressed_forever: RoaringBitmap,
    /// Soft-bounce suppressions, ordered by the instant they end; a
    /// B-tree so one Contact's change is O(log n), not a shift of them all.
    pub suppressed_until: std::collections::BTreeSet<(OffsetDateTime, RecordOrd)>,
    /// Each soft-bounced Contact's end instant: finds its entry above.
    pub until_of: FxHashMap<RecordOrd, OffsetDateTime>,
    pub opted_out_lists: FxHashMap<String, RoaringBitmap>,
    /// Base status per record, for Explain.
    pub status: Vec<EmailStatus>,
    /// Dense copies of the sets a denied record's reason is probed in.
    pub dense: ContactProbes,
}

#[derive(Clone, Debug, Default)]
pub struct ContactProbes {
    pub valid_email: DenseSet,
    pub valid_mobile: DenseSet,
    pub sms_opted_out: DenseSet,
    pub unsubscribed_all: DenseSet,
    pub suppressed_forever: DenseSet,
}

impl ContactIndex {
    fn set_status(&mut self, ord: RecordOrd, status: EmailStatus) {
        match self.status.get_mut(ord as usize) {
            Some(slot) => *slot = status,
            None => self.status.push(status),
        }
    }

    /// Removes every fact of one Contact, before it gets new ones.
    pub(crate) fn forget(&mut self, ord: RecordOrd) {
        for set in [
            &mut self.valid_email,
            &mut self.valid_mobile,
            &mut self.sms_opted_out,
            &mut self.unsubscribed_all,
            &mut self.suppressed_forever,
        ] {
            set.remove(ord);
        }
        for set in self.opted_out_lists.values_mut() {
            set.remove(ord);
        }
        if let Some(until) = self.until_of.remove(&ord) {
            self.suppressed_until.remove(&(until, ord));
        }
    }

    /// Brings the dense copies of one Contact's sets in line with the
    /// roaring ones, after a change.
    pub(crate) fn refresh_dense(&mut self, ord: RecordOrd) {
        let pairs = [
            (&self.valid_email, &mut self.dense.valid_email),
            (&self.valid_mobile, &mut self.dense.valid_mobile),
            (&self.sms_opted_out, &mut self.dense.sms_opted_out),
            (&self.unsubscribed_all, &mut self.dense.unsubscribed_all),
            (&self.suppressed_forever, &mut self.dense.suppressed_forever),
        ];
        for (set, dense) in pairs {
            dense.set(ord, set.contains(ord));
        }
    }

    /// The records suppressed at `now`, and the window `[from, until)`
    /// around `now` in which that set stays the same: no soft bounce ends
    /// inside it. Both ends are open (`None`) when no expiry bounds them.
    pub fn suppressed_at(&self, now: OffsetDateTime) -> (DenseSet, Validity) {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        // Entries ending after `now` are running; (now, MAX) sorts after
        // every entry ending at `now`.
        let edge = (now, RecordOrd::MAX);
        let mut set = self.dense.suppressed_forever.clone();
        let mut running = self.suppressed_until.range((Excluded(edge), Unbounded));
        let until = running.next().map(|(until, ord)| {
            set.insert(*ord);
            *until
        });
        for (_, ord) in running {
            set.insert(*ord);
        }
        let from = self
            .suppressed_until
            .range((Unbounded, Included(edge)))
            .next_back()
            .map(|(until, _)| *until);
        (set, Validity { from, until })
    }

    pub fn is_suppressed_at(&self, ord: RecordOrd, now: OffsetDateTime) -> bool {
        self.suppressed_forever.contains(ord)
            || self.until_of.get(&ord).is_some_and(|until| now < *until)
    }
}

impl ObjectIndex {
    /// The ordinal of a record that exists (a deleted record keeps its
    /// ordinal in the id table but is neither live nor archived).
    pub fn ord(&self, id: &Uuid) -> Option<RecordOrd> {
        self.ids.get(id).filter(|&ord| self.exists(ord))
    }

    pub fn exists(&self, ord: RecordOrd) -> bool {
        self.live_dense.contains(ord) || self.archived_dense.contains(ord)
    }

    pub fn id(&self, ord: RecordOrd) -> Option<Uuid> {
        self.ids.id(ord)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f == name)
    }

    /// Records the user counts as associated with under this object's
    /// association source (R9).
    pub fn associated(&self, user: UserIdx) -> RoaringBitmap {
        let empty = RoaringBitmap::new();
        let direct = self.direct.get(&user).map_or(&empty, |s| &**s);
        let related = self.related.get(&user).map_or(&empty, |s| &**s);
        match self.source {
            AssociationSource::Direct => direct.clone(),
            AssociationSource::Related => related.clone(),
            AssociationSource::Both => direct | related,
        }
    }
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
        let mut links = Links::default();
        for record in &tenant.records {
            let Some(&from) = where_is.get(&record.id) else {
                continue;
            };
            links.add(
                record.id,
                record.links.values().flatten().copied().collect(),
            );
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
            links: Arc::new(links),
        }
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

pub(crate) fn index_contact(
    index: &mut ContactIndex,
    ord: RecordOrd,
    state: Option<&crate::model::data::ContactState>,
) {
    let Some(state) = state else {
        index.set_status(ord, EmailStatus::NotOptedIn);
        return;
    };
    if state.has_valid_email() {
        index.valid_email.insert(ord);
    }
    if state.has_valid_mobile() {
        index.valid_mobile.insert(ord);
    }
    if state.sms_opted_out {
        index.sms_opted_out.insert(ord);
    }
    if state.email_status == EmailStatus::UnsubscribedAll {
        index.unsubscribed_all.insert(ord);
    }
    if state.suppressed || state.email_status == EmailStatus::Suppressed {
        match state.suppressed_until {
            None => {
                index.suppressed_forever.insert(ord);
            }
            Some(until) => {
                index.suppressed_until.insert((until, ord));
                index.until_of.insert(ord, until);
            }
        }
    }
    for list in &state.opted_out_lists {
        index
            .opted_out_lists
            .entry(list.clone())
            .or_default()
            .insert(ord);
    }
    let base = match state.email_status {
        EmailStatus::Suppressed => EmailStatus::NotOptedIn,
        other => other,
    };
    index.set_status(ord, base);
}

pub(crate) fn build_groups(
    tenant: &Tenant,
    objects: &[Vec<String>],
    object_by_name: &FxHashMap<String, usize>,
) -> Vec<GroupGrants> {
    tenant
        .groups
        .iter()
        .map(|group| {
            let mut grants: Vec<Option<ObjectGrant>> = vec![None; objects.len()];
            for (name, perms) in &group.objects {
                let Some(&oi) = object_by_name.get(name) else {
                    continue;
                };
                let Some(object_fields) = objects.get(oi) else {
                    continue;
                };
                let default = perms.fields.get(crate::model::data::ALL_FIELDS).copied();
                let fields = object_fields
                    .iter()
                    .map(|f| perms.fields.get(f).copied().or(default).unwrap_or_default())
                    .collect();
                let grant = ObjectGrant {
                    view_object: perms.view_object,
                    edit_settings: perms.edit_settings,
                    delete_object: perms.delete_object,
                    all_records: perms.all_records,
                    associated_records: perms.associated_records,
                    toggles: perms.actions.iter().fold(0, |bits, t| bits | t.bit()),
                    fields,
                };
                if let Some(slot) = grants.get_mut(oi) {
                    *slot = Some(grant);
                }
            }
            GroupGrants {
                id: group.id.clone(),
                create_objects: group.create_objects,
                objects: grants,
            }
        })
        .collect()
}

pub(crate) fn build_principals(
    tenant: &Tenant,
    groups: &[GroupGrants],
    user_by_id: &FxHashMap<String, UserIdx>,
) -> FxHashMap<(PrincipalKind, String), Principal> {
    let group_by_id: FxHashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.as_str(), i))
        .collect();
    let role_groups: BTreeMap<&str, &[String]> = tenant
        .roles
        .iter()
        .map(|r| (r.id.as_str(), r.groups.as_slice()))
        .collect();
    let resolve = |names: &mut dyn Iterator<Item = &String>| -> Vec<usize> {
        let mut ids: Vec<usize> = names
            .filter_map(|n| group_by_id.get(n.as_str()).copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut principals = FxHashMap::default();
    for user in &tenant.users {
        let from_roles = user
            .roles
            .iter()
            .flat_map(|r| role_groups.get(r.as_str()).copied().unwrap_or_default());
        let principal = Principal {
            groups: resolve(&mut from_roles.chain(&user.groups)),
            admin: user.admin,
            associated_user: user_by_id.get(user.id.as_str()).copied(),
            version: 0,
        };
        principals.insert((PrincipalKind::User, user.id.clone()), principal);
    }
    for integration in &tenant.integrations {
        let principal = Principal {
            groups: resolve(&mut integration.groups.iter()),
            admin: false,
            associated_user: integration
                .user
                .as_deref()
                .and_then(|u| user_by_id.get(u).copied()),
            version: 0,
        };
        principals.insert(
            (PrincipalKind::Integration, integration.id.clone()),
            principal,
        );
    }
    for automation in &tenant.automations {
        let target = match &automation.run_as {
            RunAs::User(id) => (PrincipalKind::User, id.clone()),
            RunAs::Integration(id) => (PrincipalKind::Integration, id.clone()),
        };
        // An automation whose target is unknown resolves to nothing: validation
        // refuses such files, and a missing principal answers NOT_FOUND.
        if let Some(principal) = principals.get(&target).cloned() {
            principals.insert(
                (PrincipalKind::Automation, automation.id.clone()),
                principal,
            );
        }
    }
    principals
}

#[cfg(test)]
mod tests {
    use super::{FOLD_AFTER, RecordUsers, UserIdx};

    #[test]
    fn record_users_read_the_same_before_and_after_folding() {
        let lists: Vec<Vec<UserIdx>> = (0..100u32).map(|i| vec![i % 7, 50 + i % 3]).collect();
        let mut users = RecordUsers::from_lists(&lists);
        let mut expected = lists.clone();
        for n in 0..(FOLD_AFTER as u32 + 10) {
            let ord = n % 150; // some beyond the table: new records
            let list = vec![n % 11];
            users.set(ord, list.clone());
            if expected.len() <= ord as usize {
                expected.resize(ord as usize + 1, Vec::new());
            }
            if let Some(slot) = expected.get_mut(ord as usize) {
                *slot = list;
            }
        }
        assert!(users.changed.len() < FOLD_AFTER, "folded");
        for (ord, list) in expected.iter().enumerate() {
            assert_eq!(users.get(ord as u32), list.as_slice(), "{ord}");
        }
        assert_eq!(users.get(10_000), &[] as &[UserIdx]);
    }
}
