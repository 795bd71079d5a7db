//! One object's records: the id table, the live and archived sets, who is
//! associated with each record (directly and through links), and the
//! time window in which a time-dependent answer stays exact.

use std::sync::Arc;

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use time::OffsetDateTime;
use uuid::Uuid;

use super::ContactIndex;
use crate::index::dense::DenseSet;
use crate::index::ids::IdTable;
use crate::index::narrow::{NarrowIter, NarrowVec, Offsets};
use crate::index::ord::{RecordOrd, UserIdx};
use crate::model::data::AssociationSource;

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

/// One object's records. The parts a record change never touches (the id
/// table, the association sets) are shared between revisions.
#[derive(Clone, Debug)]
pub struct ObjectIndex {
    pub name: String,
    /// Every field permissions apply to, in a stable order.
    pub fields: Vec<String>,
    pub source: AssociationSource,
    pub ids: Arc<IdTable>,
    /// Live and archived records: compiled answers start from them. Dense
    /// and chunked, so a change copies only the chunk its record is in.
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
    /// Shared lists: copying the map for a new revision copies pointers.
    changed: FxHashMap<RecordOrd, Arc<[UserIdx]>>,
}

#[derive(Clone, Debug, Default)]
struct UsersTable {
    /// `users[offsets[ord]..offsets[ord + 1]]` are the users of `ord`.
    offsets: Offsets,
    /// Every record's users, end to end, in one or two bytes each while
    /// the tenant's user indexes fit in them: with the offsets, a
    /// million-Contact tenant's table takes ~5.7 MB instead of 9.3.
    users: NarrowVec,
}

/// The users of one record, sorted, as [`RecordUsers::get`] gives them.
pub type Users<'a> = NarrowIter<'a>;

/// Changed records kept beside the table before it is rebuilt.
const FOLD_AFTER: usize = 4_096;

impl RecordUsers {
    /// From the users of each ordinal, in ordinal order.
    pub fn from_lists(lists: &[Vec<UserIdx>]) -> RecordUsers {
        let mut users = RecordUsers::default();
        users.reserve(lists.len());
        for list in lists {
            users.push(list);
        }
        users
    }

    /// Appends the users of the next ordinal, while the table is built
    /// in ordinal order (before any [`RecordUsers::set`]).
    pub fn push(&mut self, users: &[UserIdx]) {
        let base = Arc::make_mut(&mut self.base);
        if base.offsets.is_empty() {
            base.offsets.push(0);
        }
        base.users.extend(users.iter().copied());
        base.offsets
            .push(u32::try_from(base.users.len()).unwrap_or(u32::MAX));
    }

    /// Room for `records` more records of about one user each, before a
    /// build appends them.
    pub fn reserve(&mut self, records: usize) {
        let base = Arc::make_mut(&mut self.base);
        base.offsets.reserve(records.saturating_add(1));
        base.users.reserve(records);
    }

    /// Gives back what growing by doubling left unused.
    pub fn shrink_to_fit(&mut self) {
        let base = Arc::make_mut(&mut self.base);
        base.offsets.shrink_to_fit();
        base.users.shrink_to_fit();
    }

    /// The users of a record, sorted.
    pub fn get(&self, ord: RecordOrd) -> Users<'_> {
        if let Some(users) = self.changed.get(&ord) {
            return Users::U32(users.iter());
        }
        let at = ord as usize;
        match (self.base.offsets.get(at), self.base.offsets.get(at + 1)) {
            (Some(from), Some(to)) => self.base.users.range(from as usize, to as usize),
            _ => Users::U32([].iter()),
        }
    }

    pub fn set(&mut self, ord: RecordOrd, users: Vec<UserIdx>) {
        self.changed.insert(ord, users.into());
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
        // Straight into the new table: a list per record would be a
        // million allocations every FOLD_AFTER changes.
        let mut offsets = Offsets::default();
        offsets.reserve(n + 1);
        let mut users = NarrowVec::default();
        users.reserve(self.base.users.len() + self.changed.len());
        offsets.push(0);
        for ord in 0..n {
            users.extend(self.get(ord as RecordOrd));
            offsets.push(u32::try_from(users.len()).unwrap_or(u32::MAX));
        }
        // Changed records may have more users than before: the list may
        // have grown past what was reserved.
        offsets.shrink_to_fit();
        users.shrink_to_fit();
        *self = RecordUsers {
            base: Arc::new(UsersTable { offsets, users }),
            changed: FxHashMap::default(),
        };
    }

    pub fn heap_bytes(&self) -> usize {
        self.base.offsets.heap_bytes()
            + self.base.users.heap_bytes()
            + self
                .changed
                .values()
                .map(|u| u.len() * 4 + 24)
                .sum::<usize>()
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

    /// [`IdTable::ids_of`].
    pub fn ids_of(&self, ords: &[RecordOrd], out: impl FnMut(Uuid)) {
        self.ids.ids_of(ords, out);
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

#[cfg(test)]
mod tests {
    use super::{FOLD_AFTER, RecordUsers, UserIdx};

    /// Some users past two bytes (`wide_from`), to widen the lists.
    fn read_the_same_before_and_after_folding(wide_from: u32) {
        let lists: Vec<Vec<UserIdx>> = (0..100u32).map(|i| vec![i % 7, 50 + i % 3]).collect();
        let mut users = RecordUsers::from_lists(&lists);
        let mut expected = lists.clone();
        for n in 0..(FOLD_AFTER as u32 + 10) {
            let ord = n % 150; // some beyond the table: new records
            let list = if n >= wide_from {
                vec![n % 11, 70_000 + n]
            } else {
                vec![n % 11]
            };
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
            assert_eq!(&users.get(ord as u32).collect::<Vec<_>>(), list, "{ord}");
        }
        assert_eq!(users.get(10_000).count(), 0);
    }

    #[test]
    fn record_users_read_the_same_before_and_after_folding() {
        read_the_same_before_and_after_folding(u32::MAX);
    }

    #[test]
    fn record_users_widen_when_a_user_index_needs_four_bytes() {
        read_the_same_before_and_after_folding(FOLD_AFTER as u32 - 200);
        let mut users = RecordUsers::from_lists(&[vec![1, 2], vec![65_535]]);
        users.push(&[3, 65_536, 4_000_000]);
        users.push(&[7]);
        let read: Vec<Vec<UserIdx>> = (0..4).map(|o| users.get(o).collect()).collect();
        assert_eq!(
            read,
            [
                vec![1, 2],
                vec![65_535],
                vec![3, 65_536, 4_000_000],
                vec![7]
            ]
        );
    }
}
