//! Plain bitsets over an object's ordinals, beside the roaring bitmaps.
//! Compiled answers are dense: probing one record (a batch position, a
//! denied record's reason) is one load instead of roaring's container
//! search, and compiling is a few word-wise passes (~20 µs per million
//! records each) instead of converting a roaring result bit by bit. The
//! cost is 1 bit per record of the object (125 KB per million records) per
//! cached answer and per indexed state set.
//!
//! A set is a list of 8 KB chunks (65,536 records each) shared between
//! copies: a change to one record of a million-record object copies the
//! one chunk it lands in, not the whole set, and an operation between two
//! copies of the same chunk skips it.

use std::sync::Arc;

use roaring::RoaringBitmap;

use super::ord::RecordOrd;

/// Words per chunk: 65,536 records, 8 KB.
const CHUNK_WORDS: usize = 1024;
const CHUNK_BITS: usize = CHUNK_WORDS * 64;

/// Every chunk but the last holds `CHUNK_WORDS` words; the last holds at
/// least the words it uses (exactly those when built by [`DenseSet::of`], a
/// power of two once grown), so a small object's set is a few bytes and a
/// growing one is copied only as it doubles.
type Chunk = Arc<[u64]>;

fn zero_chunk(len: usize) -> Chunk {
    vec![0; len].into()
}

/// The length of the chunk holding `used` words.
fn chunk_len(used: usize) -> usize {
    used.max(1).next_power_of_two().min(CHUNK_WORDS)
}

/// A plain bitset over an object's ordinals. Probing it is two loads (the
/// chunk, the word), where roaring's `contains` first searches its
/// containers: this is the set the hot path probes once per record.
#[derive(Clone, Debug, Default)]
pub struct DenseSet {
    chunks: Vec<Chunk>,
    /// Words in use: bits past them are always clear.
    words: usize,
}

impl DenseSet {
    pub fn of(set: &RoaringBitmap, universe: usize) -> DenseSet {
        let words = universe.div_ceil(64);
        let mut flat = vec![0u64; words];
        for ord in set {
            if let Some(w) = flat.get_mut(ord as usize / 64) {
                *w |= 1 << (ord % 64);
            }
        }
        DenseSet::from_words(&flat)
    }

    fn from_words(flat: &[u64]) -> DenseSet {
        let chunks = flat.chunks(CHUNK_WORDS).map(Chunk::from).collect();
        DenseSet {
            chunks,
            words: flat.len(),
        }
    }

    /// No record of a universe of `universe` records.
    pub fn empty(universe: usize) -> DenseSet {
        let mut set = DenseSet::default();
        set.grow(universe);
        set
    }

    /// Makes room for a universe of `universe` records; new ones are out.
    pub fn grow(&mut self, universe: usize) {
        let words = universe.div_ceil(64);
        if words <= self.words {
            return;
        }
        let full = words / CHUNK_WORDS;
        // Full chunks added here are one shared zero chunk: written ones
        // are copied apart.
        let zero = zero_chunk(CHUNK_WORDS);
        for i in 0..words.div_ceil(CHUNK_WORDS) {
            let len = if i < full {
                CHUNK_WORDS
            } else {
                chunk_len(words - i * CHUNK_WORDS)
            };
            match self.chunks.get_mut(i) {
                Some(chunk) if chunk.len() < len => {
                    let mut bigger = vec![0; len];
                    if let Some(head) = bigger.get_mut(..chunk.len()) {
                        head.copy_from_slice(chunk);
                    }
                    *chunk = bigger.into();
                }
                Some(_) => {}
                None if len == CHUNK_WORDS => self.chunks.push(zero.clone()),
                None => self.chunks.push(zero_chunk(len)),
            }
        }
        self.words = words;
    }

    /// The word holding `ord`, made this set's own, if `ord` is in range.
    fn word_mut(&mut self, ord: RecordOrd) -> Option<&mut u64> {
        let at = ord as usize;
        if at / 64 >= self.words {
            return None;
        }
        let chunk = self.chunks.get_mut(at / CHUNK_BITS)?;
        Arc::make_mut(chunk).get_mut((at / 64) % CHUNK_WORDS)
    }

    pub fn insert(&mut self, ord: RecordOrd) {
        if let Some(w) = self.word_mut(ord) {
            *w |= 1 << (ord % 64);
        }
    }

    /// Adds or removes one record; a chunk is copied only when the record's
    /// membership changes.
    pub fn set(&mut self, ord: RecordOrd, member: bool) {
        if self.contains(ord) == member {
            return;
        }
        if let Some(w) = self.word_mut(ord) {
            if member {
                *w |= 1 << (ord % 64);
            } else {
                *w &= !(1 << (ord % 64));
            }
        }
    }

    /// Adds records given in increasing order (each chunk made this set's
    /// own once, not per record).
    pub fn insert_sorted(&mut self, ords: &[RecordOrd]) {
        self.update_sorted(ords.iter().copied(), |w, bit| *w |= bit);
    }

    /// Sets or clears (`update`) the bit of each of `ords`, which come in
    /// increasing order: each chunk is made this set's own once.
    fn update_sorted(
        &mut self,
        ords: impl Iterator<Item = RecordOrd>,
        update: impl Fn(&mut u64, u64),
    ) {
        let words = self.words;
        let mut chunks = self.chunks.iter_mut().enumerate();
        let mut current: Option<(usize, &mut [u64])> = None;
        let mut previous: Option<RecordOrd> = None;
        for ord in ords {
            debug_assert!(
                previous.is_none_or(|p| p <= ord),
                "ordinals in non-decreasing order"
            );
            previous = Some(ord);
            let at = ord as usize;
            if at / 64 >= words {
                break;
            }
            let want = at / CHUNK_BITS;
            if current.as_ref().is_none_or(|(i, _)| *i != want) {
                current = chunks
                    .by_ref()
                    .find(|(i, _)| *i == want)
                    .map(|(i, c)| (i, Arc::make_mut(c)));
            }
            if let Some((_, chunk)) = current.as_mut()
                && let Some(w) = chunk.get_mut((at / 64) % CHUNK_WORDS)
            {
                update(w, 1 << (ord % 64));
            }
        }
    }

    /// Applies `op` to each of this set's words with the same word of
    /// `other` (0 past its end), chunk by chunk; `clear_same` and
    /// `clear_missing` say whether a chunk both share, or one `other` lacks,
    /// becomes empty (otherwise it stays as it is).
    fn combine(
        &mut self,
        other: &DenseSet,
        clear_same: bool,
        clear_missing: bool,
        op: impl Fn(u64, u64) -> u64,
    ) {
        for (i, chunk) in self.chunks.iter_mut().enumerate() {
            match other.chunks.get(i) {
                Some(theirs) if Arc::ptr_eq(chunk, theirs) => {
                    if clear_same {
                        *chunk = zero_chunk(chunk.len());
                    }
                }
                Some(theirs) => {
                    let mine = Arc::make_mut(chunk);
                    let n = mine.len().min(theirs.len());
                    let (head, tail) = mine.split_at_mut(n);
                    for (w, o) in head.iter_mut().zip(theirs.iter()) {
                        *w = op(*w, *o);
                    }
                    for w in tail {
                        *w = op(*w, 0);
                    }
                }
                None => {
                    if clear_missing {
                        *chunk = zero_chunk(chunk.len());
                    }
                }
            }
        }
    }

    /// Keeps only records also in `other`.
    pub fn and(&mut self, other: &DenseSet) {
        self.combine(other, false, true, |w, o| w & o);
    }

    /// Removes the records in `other`.
    pub fn and_not(&mut self, other: &DenseSet) {
        self.combine(other, true, false, |w, o| w & !o);
    }

    /// Adds the records in `other` (within this set's universe).
    pub fn or(&mut self, other: &DenseSet) {
        self.combine(other, false, false, |w, o| w | o);
        self.clear_past_end();
    }

    /// Clears the words of the last chunk past `words` (an `or` with a
    /// larger set may have set them).
    fn clear_past_end(&mut self) {
        let used = self.words - self.chunks.len().saturating_sub(1) * CHUNK_WORDS;
        if let Some(last) = self.chunks.last_mut()
            && last
                .get(used..)
                .is_some_and(|rest| rest.iter().any(|w| *w != 0))
            && let Some(rest) = Arc::make_mut(last).get_mut(used..)
        {
            rest.fill(0);
        }
    }

    /// Removes the records of a (sparse) roaring bitmap.
    pub fn remove_all(&mut self, set: &RoaringBitmap) {
        self.update_sorted(set.iter(), |w, bit| *w &= !bit);
    }

    pub fn clear(&mut self) {
        for chunk in &mut self.chunks {
            *chunk = zero_chunk(chunk.len());
        }
    }

    fn all_words(&self) -> impl Iterator<Item = &u64> + '_ {
        self.chunks.iter().flat_map(|c| c.iter()).take(self.words)
    }

    pub fn is_empty(&self) -> bool {
        self.all_words().all(|w| *w == 0)
    }

    pub fn len(&self) -> u64 {
        self.all_words().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The records in the set, in ordinal order.
    pub fn iter(&self) -> impl Iterator<Item = RecordOrd> + '_ {
        self.iter_from(0)
    }

    /// The records in the set from ordinal `start` on, in ordinal order:
    /// what a paged reader resumes from.
    pub fn iter_from(&self, start: RecordOrd) -> impl Iterator<Item = RecordOrd> + '_ {
        let first = start as usize / 64;
        // From the chunk holding `start`, not by walking every word before
        // it: a paged reader resumes in O(1).
        let words = self
            .chunks
            .get(first / CHUNK_WORDS..)
            .unwrap_or_default()
            .iter()
            .flat_map(|c| c.iter())
            .skip(first % CHUNK_WORDS)
            .take(self.words.saturating_sub(first));
        bits_from(words, start)
    }

    /// The set as one flat bitset, for probing: one load per probe
    /// instead of two (compiled answers, probed once per batch position).
    pub fn freeze(&self) -> FlatSet {
        FlatSet {
            words: self.all_words().copied().collect(),
        }
    }

    #[inline]
    pub fn contains(&self, ord: RecordOrd) -> bool {
        let at = ord as usize;
        self.chunks
            .get(at / CHUNK_BITS)
            .and_then(|c| c.get((at / 64) % CHUNK_WORDS))
            .is_some_and(|w| w & (1 << (ord % 64)) != 0)
    }

    /// Heap bytes held; a chunk shared with other sets counts in each (an
    /// overstatement, the safe side for a memory figure).
    pub fn heap_bytes(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| c.len() * size_of::<u64>())
            .sum::<usize>()
            + self.chunks.capacity() * size_of::<Chunk>()
    }
}

/// The ordinals of the set bits of `words`, the first of which is the
/// word holding `start`, from `start` on.
fn bits_from<'a>(
    words: impl Iterator<Item = &'a u64> + 'a,
    start: RecordOrd,
) -> impl Iterator<Item = RecordOrd> + 'a {
    let first = start / 64;
    let skip_low = start % 64;
    (first..)
        .zip(words)
        .map(move |(i, &word)| {
            if i == first {
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

/// A [`DenseSet`] frozen into one flat bitset: what a compiled answer keeps,
/// since a batch probes it once per position and a probe here is one load.
#[derive(Clone, Debug, Default)]
pub struct FlatSet {
    words: Vec<u64>,
}

impl FlatSet {
    #[inline]
    pub fn contains(&self, ord: RecordOrd) -> bool {
        self.words
            .get(ord as usize / 64)
            .is_some_and(|w| w & (1 << (ord % 64)) != 0)
    }

    pub fn len(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = RecordOrd> + '_ {
        self.iter_from(0)
    }

    /// As [`DenseSet::iter_from`].
    pub fn iter_from(&self, start: RecordOrd) -> impl Iterator<Item = RecordOrd> + '_ {
        let first = start as usize / 64;
        bits_from(self.words.get(first..).unwrap_or_default().iter(), start)
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

    /// An object of a few records holds a few words, not an 8 KB chunk;
    /// growing it a record at a time keeps every member.
    #[test]
    fn a_small_set_is_small_and_grows_intact() {
        let mut set = DenseSet::empty(100);
        assert!(set.heap_bytes() <= 2 * 8 + 64, "{}", set.heap_bytes());
        for ord in 0..70_000u32 {
            set.grow(ord as usize + 1);
            if ord % 3 == 0 {
                set.insert(ord);
            }
        }
        assert_eq!(set.len(), 70_000u64.div_ceil(3));
        assert!(set.iter().all(|o| o % 3 == 0));
        // A full chunk, then the tail's power of two (70,000 - 65,536
        // records: 70 words, 128 allocated), and the chunk list.
        assert!(
            set.heap_bytes() <= (1024 + 128) * 8 + 64,
            "{}",
            set.heap_bytes()
        );
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
            let frozen = da.freeze();
            prop_assert_eq!(frozen.len(), ra.len());
            for start in [0u32, 1, 63, 64, 65, 350, 699, 700, 5_000] {
                let from: Vec<u32> = da.iter_from(start).collect();
                let expected: Vec<u32> = ra.iter().filter(|o| *o >= start).collect();
                prop_assert_eq!(&from, &expected, "from {}", start);
                let frozen_from: Vec<u32> = frozen.iter_from(start).collect();
                prop_assert_eq!(frozen_from, expected, "frozen, from {}", start);
            }
            for o in 0..universe as u32 + 64 {
                prop_assert_eq!(frozen.contains(o), ra.contains(o));
            }
            for o in 0..universe as u32 {
                prop_assert_eq!(da.contains(o), ra.contains(o));
            }
        }

        /// Over several chunks, between sets of different universes, and
        /// between copies sharing chunks: the same algebra, and a write to
        /// one copy never shows in another.
        #[test]
        fn chunked_sets_equal_roaring_and_copies_stay_apart(
            a in proptest::collection::vec(0u32..200_000, 0..400),
            b in proptest::collection::vec(0u32..200_000, 0..400),
            flip in 0u32..200_000,
        ) {
            let (ua, ub) = (200_000, 140_000);
            let (ra, da) = both(&a, ua);
            let (rb, db) = both(&b, ub);
            let collect = |d: &DenseSet| d.iter().collect::<RoaringBitmap>();
            let mut and = da.clone();
            and.and(&db);
            prop_assert_eq!(collect(&and), &ra & &rb);
            let mut or = db.clone();
            or.or(&da);
            // A set holds whole words: its universe rounded up to 64.
            let in_b: RoaringBitmap = (0..ub.div_ceil(64) as u32 * 64).collect();
            prop_assert_eq!(collect(&or), &(&ra | &rb) & &in_b);
            let mut and_not = da.clone();
            and_not.and_not(&db);
            prop_assert_eq!(collect(&and_not), &ra - &rb);
            // Copies share chunks until written.
            let mut copy = da.clone();
            copy.set(flip, !da.contains(flip));
            prop_assert_eq!(collect(&da), ra.clone());
            prop_assert_eq!(copy.contains(flip), !ra.contains(flip));
            let mut same = da.clone();
            same.and(&da);
            prop_assert_eq!(collect(&same), ra.clone());
            same.or(&da);
            prop_assert_eq!(collect(&same), ra.clone());
            same.and_not(&da);
            prop_assert!(same.is_empty());
            let mut sorted: Vec<u32> = b.iter().copied().filter(|o| (*o as usize) < ua).collect();
            sorted.sort_unstable();
            let mut inserted = da.clone();
            inserted.insert_sorted(&sorted);
            let rsorted: RoaringBitmap = sorted.iter().copied().collect();
            prop_assert_eq!(collect(&inserted), &ra | &rsorted);
            prop_assert_eq!(collect(&da), ra.clone());
            let mut grown = db.clone();
            grown.grow(ua);
            prop_assert_eq!(collect(&grown), rb.clone());
            grown.insert(ua as u32 - 1);
            prop_assert!(grown.contains(ua as u32 - 1) && !db.contains(ua as u32 - 1));
        }
    }
}
