//! Interning of record UUIDs to dense ordinals (`0..n`), built for the one
//! lookup every BatchCheck position makes.
//!
//! A batch probes the table at random, so its cost is memory traffic, not
//! instructions. The table is open addressing over 64-byte buckets, one
//! cache line each, of three slots that hold the whole id and its ordinal:
//! a lookup reads its home line, and goes on to the next only when that
//! bucket is full of other ids (~20% of ids at the load kept, ≤ 0.8).
//! Slots of 20 bytes probed one by one (the layout before) straddled lines
//! and spilled into the next line for ~40% of ids, each a second miss
//! waited for in turn. A batch is resolved in small chunks whose home
//! lines are asked for a few chunks ahead, so the CPU keeps many
//! independent misses in flight instead of one at a time.

use std::hash::{BuildHasher, RandomState};

use uuid::Uuid;

use super::ord::{RecordOrd, UNKNOWN};

/// Positions resolved together; enough independent loads to hide latency.
const CHUNK: usize = 32;
/// How many chunks ahead home buckets are prefetched: about one memory
/// latency of work ahead.
const PREFETCH_CHUNKS_AHEAD: usize = 4;
/// How far ahead [`IdTable::ids_of`] asks for buckets: about one memory
/// latency of ids.
const IDS_AHEAD: usize = 32;
/// Slots per bucket: three 16-byte ids and their ordinals fill a line.
const SLOTS: usize = 3;

/// One cache line: up to three ids and their ordinals, filled in order
/// (`UNKNOWN` marks a free slot, and nothing follows one: ids are never
/// removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
struct Bucket {
    keys: [u128; SLOTS],
    ords: [RecordOrd; SLOTS],
}

const EMPTY: Bucket = Bucket {
    keys: [0; SLOTS],
    ords: [UNKNOWN; SLOTS],
};

#[derive(Clone, Debug)]
pub struct IdTable {
    buckets: Vec<Bucket>,
    /// Per ordinal, the slot holding it (`bucket * SLOTS + index`): ordinal
    /// → id without a second copy of the ids.
    slot_of: Vec<u32>,
    /// Per-table seed: which ids collide cannot be chosen from outside.
    seed: u64,
    /// Names this table's ordinals to clients (record handles): a table
    /// that only grows keeps it, so handles stay valid across changes; a
    /// table built anew (a load, a reload, a recreated object) draws
    /// another, so a handle of the old one is refused, never misread.
    space: u64,
}

impl Default for IdTable {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl IdTable {
    pub fn with_capacity(records: usize) -> IdTable {
        IdTable {
            buckets: vec![EMPTY; bucket_count(records)],
            slot_of: Vec::with_capacity(records),
            seed: RandomState::new().hash_one(0x0070_6572_6d64_u64) | 1,
            space: RandomState::new().hash_one(0x0073_7061_6365_u64) | 1,
        }
    }

    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    /// Which table handed out the ordinals (never 0); see [`IdTable::ords`].
    pub fn space(&self) -> u64 {
        self.space
    }

    /// Ordinals a client sent back as handles, checked against this table:
    /// one it never handed out (past its end, or [`UNKNOWN`]) becomes
    /// [`UNKNOWN`].
    pub fn ords(&self, handles: &[RecordOrd], out: &mut [RecordOrd]) {
        let len = self.slot_of.len();
        for (h, o) in handles.iter().zip(out.iter_mut()) {
            *o = if (*h as usize) < len { *h } else { UNKNOWN };
        }
    }

    /// The id of an ordinal.
    pub fn id(&self, ord: RecordOrd) -> Option<Uuid> {
        let slot = *self.slot_of.get(ord as usize)? as usize;
        self.key_at(slot).map(Uuid::from_u128)
    }

    /// The ids of `ords`, in order, to `out` (an ordinal past the end is
    /// skipped). Each is a random read into the buckets: they are asked for
    /// a little ahead, so that their misses overlap.
    pub fn ids_of(&self, ords: &[RecordOrd], mut out: impl FnMut(Uuid)) {
        let slot = |ord: &RecordOrd| self.slot_of.get(*ord as usize).map(|&s| s as usize);
        for ord in ords.iter().take(IDS_AHEAD) {
            if let Some(slot) = slot(ord) {
                self.prefetch_bucket(slot / SLOTS);
            }
        }
        for (i, ord) in ords.iter().enumerate() {
            if let Some(ahead) = ords.get(i + IDS_AHEAD).and_then(slot) {
                self.prefetch_bucket(ahead / SLOTS);
            }
            if let Some(key) = slot(ord).and_then(|s| self.key_at(s)) {
                out(Uuid::from_u128(key));
            }
        }
    }

    /// Interns `id`: its ordinal, and whether it was new. `None` when the
    /// table is full: its slots are numbered in `u32`, so it holds at most
    /// ~1.7 billion ids (a table built larger refuses the ids whose slot
    /// would not fit).
    pub fn insert(&mut self, id: Uuid) -> Option<(RecordOrd, bool)> {
        if let Some(ord) = self.get(&id) {
            return Some((ord, false));
        }
        let ord = RecordOrd::try_from(self.len())
            .ok()
            .filter(|o| *o < UNKNOWN)?;
        if self.len() + 1 > max_records(self.buckets.len()) {
            if bucket_count(self.len() * 2) * SLOTS > u32::MAX as usize {
                return None;
            }
            self.grow();
        }
        let slot = self.place(id.as_u128(), ord)?;
        self.slot_of.push(slot);
        Some((ord, true))
    }

    /// The ordinal of `id`, if interned. (Comparing a bucket's three slots
    /// together and picking the match with conditional moves instead of a
    /// branch per slot was measured 6–20% slower warm and no faster cold:
    /// docs/bench/history.md, UUID → ordinal lookup.)
    pub fn get(&self, id: &Uuid) -> Option<RecordOrd> {
        let key = id.as_u128();
        let mut at = self.home(id);
        for _ in 0..self.buckets.len() {
            let bucket = self.buckets.get(at)?;
            for (k, ord) in bucket.keys.iter().zip(bucket.ords) {
                if ord == UNKNOWN {
                    return None;
                }
                if *k == key {
                    return Some(ord);
                }
            }
            at = self.next(at);
        }
        None
    }

    /// Writes the ordinal of every id into `out` ([`UNKNOWN`] where not
    /// interned). `out` must be as long as `ids`.
    pub fn get_many(&self, ids: &[Uuid], out: &mut [RecordOrd]) {
        let mut ahead = ids.chunks(CHUNK).skip(PREFETCH_CHUNKS_AHEAD);
        for id in ids.iter().take(CHUNK * PREFETCH_CHUNKS_AHEAD) {
            self.prefetch_bucket(self.home(id));
        }
        for (ids, out) in ids.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
            // Ask for a later chunk's lines now: prefetches retire at once,
            // so far more misses overlap than loads alone allow.
            for id in ahead.next().unwrap_or_default() {
                self.prefetch_bucket(self.home(id));
            }
            for (id, o) in ids.iter().zip(out.iter_mut()) {
                *o = self.get(id).unwrap_or(UNKNOWN);
            }
        }
    }

    /// The bucket an id's probe starts at: the hash mapped onto the table
    /// by multiplication (the table's length need not be a power of two).
    #[inline]
    fn home(&self, id: &Uuid) -> usize {
        // A folded multiply of the id's two halves, each keyed by the seed:
        // which ids share a bucket depends on both halves and on the seed,
        // so it cannot be chosen from outside (xoring the halves first, as
        // before, let ids with equal `hi ^ lo` collide whatever the seed).
        let v = id.as_u128();
        let (hi, lo) = ((v >> 64) as u64, v as u64);
        let second = self.seed.rotate_left(32) ^ 0x243F_6A88_85A3_08D3;
        let product = u128::from(lo ^ self.seed) * u128::from(hi ^ second);
        let hash = product as u64 ^ (product >> 64) as u64;
        ((u128::from(hash) * self.buckets.len() as u128) >> 64) as usize
    }

    /// Asks for `id`'s home bucket ahead of an [`IdTable::insert`] or
    /// [`IdTable::get`] of it.
    #[inline]
    pub fn prefetch(&self, id: &Uuid) {
        self.prefetch_bucket(self.home(id));
    }

    #[inline]
    fn prefetch_bucket(&self, at: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(bucket) = self.buckets.get(at) {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: a prefetch is a hint: it reads nothing into the
            // program and cannot fault; the pointer is to a live bucket.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(bucket).cast::<i8>()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }

    #[inline]
    fn next(&self, at: usize) -> usize {
        if at + 1 == self.buckets.len() {
            0
        } else {
            at + 1
        }
    }

    fn key_at(&self, slot: usize) -> Option<u128> {
        key_in(&self.buckets, slot)
    }

    /// Puts a new key in the first free slot of its probe; returns the slot.
    fn place(&mut self, key: u128, ord: RecordOrd) -> Option<u32> {
        let mut at = self.home(&Uuid::from_u128(key));
        for _ in 0..self.buckets.len() {
            let next = self.next(at);
            let bucket = self.buckets.get_mut(at)?;
            if let Some(i) = bucket.ords.iter().position(|o| *o == UNKNOWN) {
                // A slot whose number does not fit is never filled, so no
                // id is ever held where `slot_of` cannot point.
                let slot = u32::try_from(at * SLOTS + i).ok()?;
                if let (Some(k), Some(o)) = (bucket.keys.get_mut(i), bucket.ords.get_mut(i)) {
                    *k = key;
                    *o = ord;
                }
                return Some(slot);
            }
            at = next;
        }
        None
    }

    fn grow(&mut self) {
        self.resize(bucket_count(self.len() * 2));
    }

    /// Sizes the table to its records, as [`IdTable::with_capacity`] would
    /// have: a table grown one insert at a time can hold up to twice the
    /// buckets it needs.
    pub fn shrink_to_fit(&mut self) {
        let fitting = bucket_count(self.len());
        if self.buckets.len() > fitting {
            self.resize(fitting);
        }
        self.slot_of.shrink_to_fit();
    }

    fn resize(&mut self, buckets: usize) {
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; buckets]);
        let slots = std::mem::take(&mut self.slot_of);
        // Every key finds a slot (the table is sized above its records);
        // an ordinal stays in its place whatever happens.
        self.slot_of = slots
            .iter()
            .enumerate()
            .map(|(ord, &slot)| {
                key_in(&old, slot as usize)
                    .and_then(|key| self.place(key, ord as RecordOrd))
                    .unwrap_or(u32::MAX)
            })
            .collect();
    }

    /// Heap bytes held, for memory reports.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * size_of::<Bucket>() + self.slot_of.capacity() * size_of::<u32>()
    }
}

/// The id held in slot `slot` (`bucket * SLOTS + index`) of `buckets`.
fn key_in(buckets: &[Bucket], slot: usize) -> Option<u128> {
    let bucket = buckets.get(slot / SLOTS)?;
    bucket.keys.get(slot % SLOTS).copied()
}

/// The most a table is filled, in percent of its slots. At 80% a lookup
/// of an uncached id costs what it did at 70% (its home line is the miss
/// that counts; ~20% of ids go on to the next line instead of ~15%), a
/// cached one 7–10% more, and a million-Contact tenant's tables take
/// 4.7 MB less (docs/bench/history.md, memory per Contact).
const MAX_LOAD_PERCENT: usize = 80;

/// Records `buckets` buckets hold at a load of at most [`MAX_LOAD_PERCENT`].
fn max_records(buckets: usize) -> usize {
    buckets * SLOTS * MAX_LOAD_PERCENT / 100
}

/// Buckets for `records` at a load of at most [`MAX_LOAD_PERCENT`], at
/// least 8.
fn bucket_count(records: usize) -> usize {
    (records * 100 / (SLOTS * MAX_LOAD_PERCENT) + 1).max(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        // Sequential ids, the worst case for a weak hash.
        Uuid::from_u128(0xc000_0000_0000_4000_8000_0000_0000_0000 | n)
    }

    #[test]
    fn interns_each_id_once_in_order() {
        let mut t = IdTable::default();
        for n in 0..10_000 {
            assert_eq!(t.insert(id(n)), Some((n as RecordOrd, true)));
        }
        assert_eq!(t.insert(id(17)), Some((17, false)));
        assert_eq!(t.len(), 10_000);
        for n in 0..10_000 {
            assert_eq!(t.get(&id(n)), Some(n as RecordOrd));
            assert_eq!(t.id(n as RecordOrd), Some(id(n)));
        }
        assert_eq!(t.get(&id(10_000)), None);
        assert_eq!(t.get(&Uuid::nil()), None);
    }

    #[test]
    fn batch_lookup_equals_single_lookups() {
        let mut t = IdTable::with_capacity(1_000);
        for n in 0..1_000 {
            t.insert(id(n * 7));
        }
        let asked: Vec<Uuid> = (0..3_000).map(|n| id(n * 3)).collect();
        let mut out = vec![0; asked.len()];
        t.get_many(&asked, &mut out);
        for (a, o) in asked.iter().zip(&out) {
            assert_eq!(t.get(a).unwrap_or(UNKNOWN), *o);
        }
        assert!(out.contains(&UNKNOWN));
        assert!(out.iter().any(|o| *o != UNKNOWN));
    }

    #[test]
    fn ids_of_many_ordinals_are_the_ids_of_each() {
        let mut t = IdTable::default();
        for n in 0..1_000 {
            t.insert(id(n * 5));
        }
        // Out of order, repeated, and past the end (skipped).
        let ords: Vec<RecordOrd> = (0..2_000).map(|n| (n * 7919) % 1_100).collect();
        let mut got = Vec::new();
        t.ids_of(&ords, |id| got.push(id));
        let want: Vec<Uuid> = ords.iter().filter_map(|o| t.id(*o)).collect();
        assert_eq!(got, want);
        assert!(want.len() < ords.len());
    }

    #[test]
    fn handles_name_their_table_and_stay_in_range() {
        let mut t = IdTable::default();
        for n in 0..100 {
            t.insert(id(n));
        }
        let space = t.space();
        assert_ne!(space, 0);
        let mut grown = t.clone();
        for n in 100..10_000 {
            grown.insert(id(n));
        }
        // A table that grows keeps its space; a new one draws another.
        assert_eq!(grown.space(), space);
        assert_ne!(IdTable::default().space(), space);
        let mut out = [0; 4];
        t.ords(&[0, 99, 100, UNKNOWN], &mut out);
        assert_eq!(out, [0, 99, UNKNOWN, UNKNOWN]);
    }

    proptest::proptest! {
        /// Inserted one by one (growing on the way) and then shrunk, the
        /// table answers as a map of the same ids, alone and in batches,
        /// for ids it holds and ids it does not.
        #[test]
        fn answers_as_a_map(
            inserted in proptest::collection::vec(0u128..5_000, 0..2_000),
            asked in proptest::collection::vec(0u128..6_000, 0..500),
        ) {
            let mut t = IdTable::default();
            let mut truth = std::collections::HashMap::new();
            for n in &inserted {
                let next = truth.len() as RecordOrd;
                let ord = *truth.entry(*n).or_insert(next);
                proptest::prop_assert_eq!(t.insert(id(*n)).map(|(o, _)| o), Some(ord));
            }
            for table in [t.clone(), { let mut s = t.clone(); s.shrink_to_fit(); s }] {
                let asked: Vec<Uuid> = asked.iter().map(|n| id(*n)).collect();
                let mut out = vec![0; asked.len()];
                table.get_many(&asked, &mut out);
                for (n, o) in asked.iter().zip(&out) {
                    let want = truth.get(&(n.as_u128() & 0xffff_ffff)).copied();
                    proptest::prop_assert_eq!(table.get(n), want);
                    proptest::prop_assert_eq!(*o, want.unwrap_or(UNKNOWN));
                }
                for (n, ord) in &truth {
                    proptest::prop_assert_eq!(table.id(*ord), Some(id(*n)));
                }
            }
        }
    }

    /// Ids built to collide under a hash of `hi ^ lo` spread over the table.
    /// With 416,667 buckets, 1,000 well-hashed ids share one about once
    /// (n²/2m): the bound leaves room for chance at any seed, and the hash
    /// of `hi ^ lo` put them all in 1 bucket. (At 4,762 buckets the mean is
    /// ~902 distinct, and a bound of 900 failed a CI run.)
    #[test]
    fn ids_with_equal_halves_xor_do_not_share_a_bucket() {
        let t = IdTable::with_capacity(1_000_000);
        let homes: std::collections::HashSet<usize> = (0..1_000u64)
            .map(|n| {
                let hi = n.wrapping_mul(0x1234_5678_9abc_def1);
                t.home(&Uuid::from_u64_pair(hi, hi ^ 0x5555))
            })
            .collect();
        assert!(homes.len() > 980, "{} buckets for 1,000 ids", homes.len());
    }

    /// The layout the lookup's cost rests on: a bucket is one cache line.
    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(size_of::<Bucket>(), 64);
        assert_eq!(align_of::<Bucket>(), 64);
        let t = IdTable::with_capacity(1_000_000);
        // 1,000,000 ids at a load of 0.8: 416,667 lines and an ordinal each.
        assert!(t.heap_bytes() <= 416_667 * 64 + 4 * 1_000_000);
    }

    /// The nil id has key 0, as a free slot does: held, it is found in
    /// whichever slot of its bucket it took (or in the next bucket, when
    /// others filled its own); not held, a free slot does not pass for it
    /// (a lookup that compared keys before ordinals would answer `UNKNOWN`'s
    /// slot).
    #[test]
    fn the_nil_id_is_found_only_when_held() {
        for before in 0..=SLOTS {
            let mut t = IdTable::with_capacity(8);
            let home = t.home(&Uuid::nil());
            let sharing: Vec<Uuid> = (1..10_000)
                .map(id)
                .filter(|x| t.home(x) == home)
                .take(before)
                .collect();
            assert_eq!(sharing.len(), before);
            for x in &sharing {
                t.insert(*x);
            }
            assert_eq!(t.get(&Uuid::nil()), None);
            assert_eq!(t.insert(Uuid::nil()), Some((before as RecordOrd, true)));
            assert_eq!(t.get(&Uuid::nil()), Some(before as RecordOrd));
            let mut out = [0; 2];
            t.get_many(&[Uuid::nil(), id(10_000)], &mut out);
            assert_eq!(out, [before as RecordOrd, UNKNOWN]);
        }
    }

    #[test]
    fn empty_table_knows_nothing() {
        let t = IdTable::default();
        let mut out = [0; 3];
        t.get_many(&[id(1), id(2), Uuid::nil()], &mut out);
        assert_eq!(out, [UNKNOWN; 3]);
        assert_eq!(t.get(&id(1)), None);
    }
}
