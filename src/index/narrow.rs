//! Lists of unsigned numbers kept in the narrowest width that holds them
//! all, for the per-record tables of a large tenant.
//!
//! Most of those numbers are small: the user indexes of a tenant of a few
//! thousand users, a record's offset from the start of its block of 32
//! neighbours. One or two bytes each, where a `u32` took four, is several
//! megabytes of a million-Contact sidecar. A list widens whole, once, when
//! a number that does not fit arrives; it never narrows again.

/// Unsigned numbers in 1, 2 or 4 bytes each.
#[derive(Clone, Debug)]
pub enum NarrowVec {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

impl Default for NarrowVec {
    fn default() -> Self {
        NarrowVec::U8(Vec::new())
    }
}

impl NarrowVec {
    pub fn len(&self) -> usize {
        match self {
            NarrowVec::U8(v) => v.len(),
            NarrowVec::U16(v) => v.len(),
            NarrowVec::U32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, at: usize) -> Option<u32> {
        match self {
            NarrowVec::U8(v) => v.get(at).map(|&n| u32::from(n)),
            NarrowVec::U16(v) => v.get(at).map(|&n| u32::from(n)),
            NarrowVec::U32(v) => v.get(at).copied(),
        }
    }

    /// `self[from..to]` (empty where the range is not inside the list).
    pub fn range(&self, from: usize, to: usize) -> NarrowIter<'_> {
        match self {
            NarrowVec::U8(v) => NarrowIter::U8(v.get(from..to).unwrap_or_default().iter()),
            NarrowVec::U16(v) => NarrowIter::U16(v.get(from..to).unwrap_or_default().iter()),
            NarrowVec::U32(v) => NarrowIter::U32(v.get(from..to).unwrap_or_default().iter()),
        }
    }

    pub fn push(&mut self, n: u32) {
        self.widen_for(n);
        match self {
            NarrowVec::U8(v) => v.extend(u8::try_from(n).ok()),
            NarrowVec::U16(v) => v.extend(u16::try_from(n).ok()),
            NarrowVec::U32(v) => v.push(n),
        }
    }

    /// Appends `numbers`, widening the list first if one of them needs it.
    pub fn extend(&mut self, numbers: impl Iterator<Item = u32> + Clone) {
        if let Some(max) = numbers.clone().max() {
            self.widen_for(max);
        }
        match self {
            NarrowVec::U8(v) => v.extend(numbers.filter_map(|n| u8::try_from(n).ok())),
            NarrowVec::U16(v) => v.extend(numbers.filter_map(|n| u16::try_from(n).ok())),
            NarrowVec::U32(v) => v.extend(numbers),
        }
    }

    /// Makes the list wide enough for `n`: every number so far is copied
    /// once into the wider list, which keeps the room reserved (a list
    /// reserved for a build and widened early must not grow by doubling).
    fn widen_for(&mut self, n: u32) {
        let fits = match self {
            NarrowVec::U8(_) => u8::try_from(n).is_ok(),
            NarrowVec::U16(_) => u16::try_from(n).is_ok(),
            NarrowVec::U32(_) => true,
        };
        if fits {
            return;
        }
        // `n` does not fit the present width (above).
        *self = match std::mem::take(self) {
            NarrowVec::U8(v) if u16::try_from(n).is_ok() => NarrowVec::U16(widened(&v)),
            NarrowVec::U8(v) => NarrowVec::U32(widened(&v)),
            NarrowVec::U16(v) => NarrowVec::U32(widened(&v)),
            same => same,
        };
    }

    pub fn reserve(&mut self, more: usize) {
        match self {
            NarrowVec::U8(v) => v.reserve(more),
            NarrowVec::U16(v) => v.reserve(more),
            NarrowVec::U32(v) => v.reserve(more),
        }
    }

    pub fn shrink_to_fit(&mut self) {
        match self {
            NarrowVec::U8(v) => v.shrink_to_fit(),
            NarrowVec::U16(v) => v.shrink_to_fit(),
            NarrowVec::U32(v) => v.shrink_to_fit(),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        match self {
            NarrowVec::U8(v) => v.capacity(),
            NarrowVec::U16(v) => v.capacity() * 2,
            NarrowVec::U32(v) => v.capacity() * 4,
        }
    }
}

/// `narrow`'s numbers in a wider type, with room for as many as it had.
fn widened<A: Copy, B: From<A>>(narrow: &Vec<A>) -> Vec<B> {
    let mut wide = Vec::with_capacity(narrow.capacity());
    wide.extend(narrow.iter().map(|&m| B::from(m)));
    wide
}

/// A run of a [`NarrowVec`] (or of plain `u32`s), as `u32`s.
#[derive(Clone, Debug)]
pub enum NarrowIter<'a> {
    U8(std::slice::Iter<'a, u8>),
    U16(std::slice::Iter<'a, u16>),
    U32(std::slice::Iter<'a, u32>),
}

impl Iterator for NarrowIter<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            NarrowIter::U8(it) => it.next().map(|&n| u32::from(n)),
            NarrowIter::U16(it) => it.next().map(|&n| u32::from(n)),
            NarrowIter::U32(it) => it.next().copied(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            NarrowIter::U8(it) => it.size_hint(),
            NarrowIter::U16(it) => it.size_hint(),
            NarrowIter::U32(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for NarrowIter<'_> {}

/// Records per block of [`Offsets`]: small enough that a block's offsets
/// stay within one byte of its first while its records hold fewer than
/// eight numbers each.
const BLOCK: usize = 32;

/// A non-decreasing list of `u32` (where each record's run starts in a
/// list of runs end to end): each block's first number whole, and every
/// number as its distance from its block's first, in a [`NarrowVec`]. A
/// million records' offsets take ~1.1 MB where `u32`s took 4 MB.
#[derive(Clone, Debug, Default)]
pub struct Offsets {
    firsts: Vec<u32>,
    within: NarrowVec,
}

impl Offsets {
    pub fn len(&self) -> usize {
        self.within.len()
    }

    pub fn is_empty(&self) -> bool {
        self.within.is_empty()
    }

    pub fn get(&self, at: usize) -> Option<u32> {
        let first = *self.firsts.get(at / BLOCK)?;
        Some(first + self.within.get(at)?)
    }

    /// Appends `n`, which is not below the last number (a smaller one is
    /// kept as the last: offsets never go back).
    pub fn push(&mut self, n: u32) {
        let last = self.len().checked_sub(1).and_then(|at| self.get(at));
        let n = last.map_or(n, |last| n.max(last));
        if self.len().is_multiple_of(BLOCK) {
            self.firsts.push(n);
        }
        let first = self.firsts.last().copied().unwrap_or(0);
        self.within.push(n - first);
    }

    pub fn reserve(&mut self, more: usize) {
        self.firsts.reserve(more.div_ceil(BLOCK));
        self.within.reserve(more);
    }

    pub fn shrink_to_fit(&mut self) {
        self.firsts.shrink_to_fit();
        self.within.shrink_to_fit();
    }

    pub fn heap_bytes(&self) -> usize {
        self.firsts.capacity() * 4 + self.within.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(v: &NarrowVec) -> Vec<u32> {
        (0..v.len()).filter_map(|i| v.get(i)).collect()
    }

    #[test]
    fn a_list_widens_whole_when_a_number_needs_it_and_reads_the_same() {
        let mut v = NarrowVec::default();
        let mut want = Vec::new();
        for n in [0, 7, 255, 256, 65_535, 65_536, u32::MAX, 3] {
            v.push(n);
            want.push(n);
            assert_eq!(read(&v), want);
        }
        assert!(matches!(v, NarrowVec::U32(_)));
        let mut w = NarrowVec::default();
        w.extend([1u32, 2].into_iter());
        assert!(matches!(w, NarrowVec::U8(_)));
        w.extend([3u32, 300, 4].into_iter());
        assert!(matches!(w, NarrowVec::U16(_)));
        w.extend([70_000u32].into_iter());
        assert_eq!(read(&w), [1, 2, 3, 300, 4, 70_000]);
        let mut reserved = NarrowVec::default();
        reserved.reserve(1_000);
        reserved.push(1);
        reserved.push(1_000);
        assert!(
            reserved.heap_bytes() >= 2 * 1_000,
            "the room reserved survives widening"
        );
        assert_eq!(w.range(2, 5).collect::<Vec<_>>(), [3, 300, 4]);
        assert_eq!(w.range(5, 99).count(), 0);
        assert_eq!(w.get(6), None);
    }

    #[test]
    fn offsets_read_back_as_pushed_across_blocks_and_widths() {
        for step in [0u32, 1, 3, 9, 300, 70_000] {
            let mut o = Offsets::default();
            let mut want = Vec::new();
            let mut n = 0u32;
            for i in 0..(BLOCK as u32 * 5 + 3) {
                n += if i % 5 == 0 { step } else { 1 };
                o.push(n);
                want.push(n);
            }
            let got: Vec<u32> = (0..o.len()).filter_map(|i| o.get(i)).collect();
            assert_eq!(got, want, "step {step}");
            assert_eq!(o.get(o.len()), None);
        }
        let mut o = Offsets::default();
        o.push(5);
        o.push(2);
        assert_eq!(o.get(1), Some(5), "never goes back");
    }
}
