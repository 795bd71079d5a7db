//! Interning of record UUIDs to dense ordinals (`0..n`), built for the one
//! lookup every BatchCheck position makes.
//!
//! A general hash map keeps key and value in every bucket (~42 bytes per
//! record at its load factor) and resolves one lookup before starting the
//! next. Here the ids live once, in ordinal order, and the table holds only
//! `u64` slots — the ordinal plus 32 bits of the hash as a fingerprint — so
//! a probe rarely touches an id that is not the one asked for. A batch is
//! resolved in two passes over small chunks (find slots, then verify ids) so
//! the CPU has many independent memory loads in flight instead of one.

use std::hash::{BuildHasher, RandomState};

use uuid::Uuid;

use super::tenant::RecordOrd;

/// An empty slot. Ordinals are below `u32::MAX` (the table refuses more).
const EMPTY: u64 = u64::MAX;
/// Positions resolved together; enough independent loads to hide latency.
const CHUNK: usize = 32;
/// The ordinal a batch lookup gives an unknown id.
pub const UNKNOWN: RecordOrd = RecordOrd::MAX;

#[derive(Clone, Debug)]
pub struct IdTable {
    ids: Vec<Uuid>,
    /// `ord << 32 | fingerprint`, or [`EMPTY`]. Length a power of two, at
    /// most half full, probed linearly.
    slots: Vec<u64>,
    /// Per-table seed: which ids collide cannot be chosen from outside.
    seed: u64,
}

impl Default for IdTable {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl IdTable {
    pub fn with_capacity(records: usize) -> IdTable {
        IdTable {
            ids: Vec::with_capacity(records),
            slots: vec![EMPTY; slot_count(records)],
            seed: RandomState::new().hash_one(0x0070_6572_6d64_u64) | 1,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of an ordinal.
    pub fn id(&self, ord: RecordOrd) -> Option<Uuid> {
        self.ids.get(ord as usize).copied()
    }

    /// Interns `id`: its ordinal, and whether it was new. `None` only when
    /// the table already holds `u32::MAX - 1` ids.
    pub fn insert(&mut self, id: Uuid) -> Option<(RecordOrd, bool)> {
        if let Some(ord) = self.get(&id) {
            return Some((ord, false));
        }
        let ord = RecordOrd::try_from(self.ids.len())
            .ok()
            .filter(|o| *o < UNKNOWN)?;
        self.ids.push(id);
        if self.ids.len() * 2 > self.slots.len() {
            self.rehash();
        } else {
            self.place(id, ord);
        }
        Some((ord, true))
    }

    /// The ordinal of `id`, if interned.
    pub fn get(&self, id: &Uuid) -> Option<RecordOrd> {
        let hash = self.hash(id);
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let slot = *self.slots.get(at)?;
            if slot == EMPTY {
                return None;
            }
            if self.holds(slot, hash, id) {
                return Some((slot >> 32) as RecordOrd);
            }
            at = (at + 1) & mask;
        }
    }

    /// Writes the ordinal of every id into `out` ([`UNKNOWN`] where not
    /// interned). `out` must be as long as `ids`.
    pub fn get_many(&self, ids: &[Uuid], out: &mut [RecordOrd]) {
        let mask = self.slots.len() - 1;
        let mut hashes = [0u64; CHUNK];
        let mut first = [EMPTY; CHUNK];
        for (ids, out) in ids.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
            // Pass 1: hash and load each home slot; the loads are
            // independent, so they overlap.
            for ((id, h), f) in ids.iter().zip(&mut hashes).zip(&mut first) {
                *h = self.hash(id);
                *f = self.slots.get(*h as usize & mask).copied().unwrap_or(EMPTY);
            }
            // Pass 2: verify against the id (again independent loads), and
            // probe on only where the home slot was someone else's.
            for (((id, h), f), o) in ids.iter().zip(&hashes).zip(&first).zip(out.iter_mut()) {
                *o = if *f == EMPTY {
                    UNKNOWN
                } else if self.holds(*f, *h, id) {
                    (*f >> 32) as RecordOrd
                } else {
                    self.get(id).unwrap_or(UNKNOWN)
                };
            }
        }
    }

    /// Whether `slot` holds `id`. The fingerprint (the hash's high half; the
    /// low half chose the slot) is compared before the id is touched.
    fn holds(&self, slot: u64, hash: u64, id: &Uuid) -> bool {
        slot as u32 == (hash >> 32) as u32 && self.ids.get((slot >> 32) as usize) == Some(id)
    }

    fn hash(&self, id: &Uuid) -> u64 {
        let v = id.as_u128();
        let (hi, lo) = ((v >> 64) as u64, v as u64);
        let x = (hi ^ self.seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ lo.wrapping_add(self.seed)
                .wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        x ^ (x >> 29)
    }

    fn place(&mut self, id: Uuid, ord: RecordOrd) {
        let hash = self.hash(&id);
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        while let Some(slot) = self.slots.get_mut(at) {
            if *slot == EMPTY {
                *slot = (u64::from(ord) << 32) | (hash >> 32);
                return;
            }
            at = (at + 1) & mask;
        }
    }

    fn rehash(&mut self) {
        self.slots = vec![EMPTY; slot_count(self.ids.len())];
        for ord in 0..self.ids.len() {
            if let Some(id) = self.ids.get(ord).copied() {
                self.place(id, ord as RecordOrd);
            }
        }
    }

    /// Heap bytes held, for memory reports.
    pub fn heap_bytes(&self) -> usize {
        self.ids.capacity() * size_of::<Uuid>() + self.slots.capacity() * size_of::<u64>()
    }
}

/// A power of two at least twice `records` (load ≤ ½), at least 16.
fn slot_count(records: usize) -> usize {
    (records.max(8) * 2).next_power_of_two()
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
    fn empty_table_knows_nothing() {
        let t = IdTable::default();
        let mut out = [0; 3];
        t.get_many(&[id(1), id(2), Uuid::nil()], &mut out);
        assert_eq!(out, [UNKNOWN; 3]);
        assert_eq!(t.get(&id(1)), None);
    }
}
