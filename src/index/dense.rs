//! Plain bitsets over an object's ordinals, beside the roaring bitmaps.
//! Compiled answers are dense: probing one record (a batch position, a
//! denied record's reason) is one load instead of roaring's container
//! search, and compiling is a few word-wise passes (~20 µs per million
//! records each) instead of converting a roaring result bit by bit. The
//! cost is 1 bit per record of the object (125 KB per million records) per
//! cached answer and per indexed state set.

use roaring::RoaringBitmap;

use super::ord::RecordOrd;

/// A plain bitset over an object's ordinals. Probing it is one load, where
/// roaring's `contains` first searches its containers: this is the set the
/// hot path probes once per record.
#[derive(Clone, Debug, Default)]
pub struct DenseSet {
    words: Vec<u64>,
}

impl DenseSet {
    pub fn of(set: &RoaringBitmap, universe: usize) -> DenseSet {
        let mut words = vec![0u64; universe.div_ceil(64)];
        for ord in set {
            if let Some(w) = words.get_mut(ord as usize / 64) {
                *w |= 1 << (ord % 64);
            }
        }
        DenseSet { words }
    }

    /// No record of a universe of `universe` records.
    pub fn empty(universe: usize) -> DenseSet {
        DenseSet {
            words: vec![0; universe.div_ceil(64)],
        }
    }

    /// Makes room for a universe of `universe` records; new ones are out.
    pub fn grow(&mut self, universe: usize) {
        let words = universe.div_ceil(64);
        if words > self.words.len() {
            self.words.resize(words, 0);
        }
    }

    pub fn insert(&mut self, ord: RecordOrd) {
        if let Some(w) = self.words.get_mut(ord as usize / 64) {
            *w |= 1 << (ord % 64);
        }
    }

    /// Adds or removes one record.
    pub fn set(&mut self, ord: RecordOrd, member: bool) {
        if let Some(w) = self.words.get_mut(ord as usize / 64) {
            if member {
                *w |= 1 << (ord % 64);
            } else {
                *w &= !(1 << (ord % 64));
            }
        }
    }

    /// Keeps only records also in `other`.
    pub fn and(&mut self, other: &DenseSet) {
        let mut theirs = other.words.iter();
        for w in &mut self.words {
            *w &= theirs.next().copied().unwrap_or(0);
        }
    }

    /// Removes the records in `other`.
    pub fn and_not(&mut self, other: &DenseSet) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w &= !o;
        }
    }

    /// Adds the records in `other`.
    pub fn or(&mut self, other: &DenseSet) {
        for (w, o) in self.words.iter_mut().zip(&other.words) {
            *w |= o;
        }
    }

    /// Removes the records of a (sparse) roaring bitmap.
    pub fn remove_all(&mut self, set: &RoaringBitmap) {
        for ord in set {
            if let Some(w) = self.words.get_mut(ord as usize / 64) {
                *w &= !(1 << (ord % 64));
            }
        }
    }

    pub fn clear(&mut self) {
        self.words.fill(0);
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    pub fn len(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The records in the set, in ordinal order.
    pub fn iter(&self) -> impl Iterator<Item = RecordOrd> + '_ {
        self.iter_from(0)
    }

    /// The records in the set from ordinal `start` on, in ordinal order:
    /// what a paged reader resumes from.
    pub fn iter_from(&self, start: RecordOrd) -> impl Iterator<Item = RecordOrd> + '_ {
        let first = start as usize / 64;
        let skip_low = start % 64;
        // A slice, not `skip`: a paged reader resumes in O(1), not by
        // walking every word before its page.
        (first as u32..)
            .zip(self.words.get(first..).unwrap_or_default())
            .map(move |(i, &word)| {
                if i as usize == first {
                    (i, word & (u64::MAX << skip_low))
                } else {
                    (i, word)
                }
            })
            .flat_map(|(i, word)| {
                let mut rest = word;
                std::iter::from_fn(move || {
                    (rest != 0).then(|| {
                        let bit = rest.trailing_zeros();
                        rest &= rest - 1;
                        i * 64 + bit
                    })
                })
            })
    }

    #[inline]
    pub fn contains(&self, ord: RecordOrd) -> bool {
        self.words
            .get(ord as usize / 64)
            .is_some_and(|w| w & (1 << (ord % 64)) != 0)
    }

    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn both(ords: &[u32], universe: usize) -> (RoaringBitmap, DenseSet) {
        let set: RoaringBitmap = ords
            .iter()
            .copied()
            .filter(|o| (*o as usize) < universe)
            .collect();
        let dense = DenseSet::of(&set, universe);
        (set, dense)
    }

    proptest! {
        #[test]
        fn dense_algebra_equals_roaring_algebra(
            a in proptest::collection::vec(0u32..700, 0..300),
            b in proptest::collection::vec(0u32..700, 0..300),
        ) {
            let universe = 700;
            let (ra, da) = both(&a, universe);
            let (rb, db) = both(&b, universe);
            let collect = |d: &DenseSet| d.iter().collect::<RoaringBitmap>();
            prop_assert_eq!(collect(&da), ra.clone());
            let mut and = da.clone();
            and.and(&db);
            prop_assert_eq!(collect(&and), &ra & &rb);
            let mut and_not = da.clone();
            and_not.and_not(&db);
            prop_assert_eq!(collect(&and_not), &ra - &rb);
            let mut or = da.clone();
            or.or(&db);
            prop_assert_eq!(collect(&or), &ra | &rb);
            let mut removed = da.clone();
            removed.remove_all(&rb);
            prop_assert_eq!(collect(&removed), &ra - &rb);
            prop_assert_eq!(da.len(), ra.len());
            for start in [0u32, 1, 63, 64, 65, 350, 699, 700, 5_000] {
                let from: Vec<u32> = da.iter_from(start).collect();
                let expected: Vec<u32> = ra.iter().filter(|o| *o >= start).collect();
                prop_assert_eq!(from, expected, "from {}", start);
            }
            for o in 0..universe as u32 {
                prop_assert_eq!(da.contains(o), ra.contains(o));
            }
        }
    }
}
