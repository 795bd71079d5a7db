//! Record links, both ways, kept by id so a link to a record that does not
//! exist yet takes effect when it is created, as in a rebuild. What a
//! record change needs to update one-hop associations (R9).
//!
//! Both directions share one compact base built at once (each direction:
//! sorted ids, offsets kept narrow as the users table's are (one byte per
//! id while each block of 32 ids holds under 256 links; a record linked by
//! thousands widens its half's offsets to two or four bytes), and per link
//! the position of the linked id among the other direction's ids, 4 bytes
//! where a copy of the id took 16), shared by
//! every revision, plus the ids changed since, folded back into a new base
//! when they grow many: a change never copies the whole base.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use uuid::Uuid;

use crate::index::narrow::Offsets;

/// Changed ids kept beside the base before it is rebuilt.
const FOLD_AFTER: usize = 4_096;

/// Record links: forward as each record wrote them, back who links to each
/// id.
#[derive(Clone, Debug, Default)]
pub struct Links {
    base: Arc<Base>,
    /// Ids whose lists changed since `base` was built; an empty list is a
    /// removed one.
    forward_changed: FxHashMap<Uuid, Box<[Uuid]>>,
    back_changed: FxHashMap<Uuid, Box<[Uuid]>>,
}

/// `forward` lists name positions in `back.keys` (every linked id is a key
/// there) and `back` lists positions in `forward.keys` (every linking id).
#[derive(Debug, Default)]
struct Base {
    forward: Half,
    back: Half,
}

/// Sorted ids and their lists: `values[offsets[i]..offsets[i + 1]]` are
/// the positions, among the other half's keys, of the ids `keys[i]` links
/// with.
#[derive(Debug, Default)]
struct Half {
    keys: Vec<Uuid>,
    offsets: Offsets,
    values: Vec<u32>,
}

impl Half {
    fn positions(&self, key: &Uuid) -> &[u32] {
        let Ok(i) = self.keys.binary_search(key) else {
            return &[];
        };
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(from), Some(to)) => self
                .values
                .get(from as usize..to as usize)
                .unwrap_or_default(),
            _ => &[],
        }
    }

    fn heap_bytes(&self) -> usize {
        self.keys.capacity() * 16 + self.offsets.heap_bytes() + self.values.capacity() * 4
    }
}

/// The ids a record links with, as [`Links::forward`] and [`Links::back`]
/// give them.
#[derive(Clone, Debug)]
pub enum Linked<'a> {
    /// A list changed since the base was built.
    Ids(std::slice::Iter<'a, Uuid>),
    /// Positions among the other half's keys.
    Positions(std::slice::Iter<'a, u32>, &'a [Uuid]),
}

impl Iterator for Linked<'_> {
    type Item = Uuid;

    fn next(&mut self) -> Option<Uuid> {
        match self {
            Linked::Ids(ids) => ids.next().copied(),
            Linked::Positions(at, keys) => {
                let at = *at.next()?;
                keys.get(at as usize).copied()
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Linked::Ids(ids) => ids.size_hint(),
            Linked::Positions(at, _) => at.size_hint(),
        }
    }
}

impl Links {
    /// From every record's links, each record once. One sort of the links
    /// by linked id gives both halves: each link learns its linked id's
    /// position as the back keys are laid out (a binary search per link
    /// instead would be a cache miss per step, ~0.3 s for a million-Contact
    /// tenant's load).
    pub fn build(mut forward: Vec<(Uuid, Vec<Uuid>)>) -> Links {
        forward.retain(|(_, to)| !to.is_empty());
        forward.sort_by_key(|(from, _)| *from);
        let mut forward_half = Half::default();
        forward_half.offsets.push(0);
        // (linked id, position of the linking id, position of the link in
        // the forward values); stable, so each id's linking ids keep the
        // order of the forward keys.
        let mut back: Vec<(Uuid, u32, u32)> = Vec::new();
        for (i, (from, to)) in forward.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            forward_half.keys.push(*from);
            for id in to {
                let link = u32::try_from(back.len()).unwrap_or(u32::MAX);
                back.push((*id, i, link));
            }
            forward_half
                .offsets
                .push(u32::try_from(back.len()).unwrap_or(u32::MAX));
        }
        drop(forward);
        forward_half.values = vec![0; back.len()];
        back.sort_by_key(|(to, _, _)| *to);

        let mut back_half = Half::default();
        back_half.offsets.push(0);
        for group in back.chunk_by(|a, b| a.0 == b.0) {
            let Some((key, _, _)) = group.first() else {
                continue;
            };
            let at = u32::try_from(back_half.keys.len()).unwrap_or(u32::MAX);
            back_half.keys.push(*key);
            for &(_, from, link) in group {
                back_half.values.push(from);
                if let Some(value) = forward_half.values.get_mut(link as usize) {
                    *value = at;
                }
            }
            back_half
                .offsets
                .push(u32::try_from(back_half.values.len()).unwrap_or(u32::MAX));
        }
        drop(back);
        for half in [&mut forward_half, &mut back_half] {
            half.keys.shrink_to_fit();
            half.offsets.shrink_to_fit();
            half.values.shrink_to_fit();
        }
        Links {
            base: Arc::new(Base {
                forward: forward_half,
                back: back_half,
            }),
            forward_changed: FxHashMap::default(),
            back_changed: FxHashMap::default(),
        }
    }

    /// The ids `from` links to, in the order it wrote them.
    pub fn forward(&self, from: &Uuid) -> Linked<'_> {
        match self.forward_changed.get(from) {
            Some(ids) => Linked::Ids(ids.iter()),
            None => Linked::Positions(
                self.base.forward.positions(from).iter(),
                &self.base.back.keys,
            ),
        }
    }

    /// The ids that link to `to`.
    pub fn back(&self, to: &Uuid) -> Linked<'_> {
        match self.back_changed.get(to) {
            Some(ids) => Linked::Ids(ids.iter()),
            None => Linked::Positions(self.base.back.positions(to).iter(), &self.base.forward.keys),
        }
    }

    /// Records `from`'s links (it had none before).
    pub fn add(&mut self, from: Uuid, to: Vec<Uuid>) {
        if to.is_empty() {
            return;
        }
        for id in &to {
            let mut sources: Vec<Uuid> = self.back(id).collect();
            sources.push(from);
            self.back_changed.insert(*id, sources.into());
        }
        self.forward_changed.insert(from, to.into());
        self.fold_when_many();
    }

    /// Forgets `from`'s links and returns them.
    pub fn remove(&mut self, from: &Uuid) -> Vec<Uuid> {
        let to: Vec<Uuid> = self.forward(from).collect();
        if to.is_empty() {
            return to;
        }
        self.forward_changed.insert(*from, Box::default());
        for id in &to {
            let mut sources: Vec<Uuid> = self.back(id).collect();
            if let Some(at) = sources.iter().position(|s| s == from) {
                sources.swap_remove(at);
            }
            self.back_changed.insert(*id, sources.into());
        }
        to
    }

    /// Every record linked with `id`, either way.
    pub fn neighbors(&self, id: &Uuid) -> impl Iterator<Item = Uuid> + '_ {
        self.forward(id).chain(self.back(id))
    }

    pub fn heap_bytes(&self) -> usize {
        let changed =
            |m: &FxHashMap<Uuid, Box<[Uuid]>>| m.values().map(|v| v.len() * 16 + 40).sum::<usize>();
        self.base.forward.heap_bytes()
            + self.base.back.heap_bytes()
            + changed(&self.forward_changed)
            + changed(&self.back_changed)
    }

    fn fold_when_many(&mut self) {
        if self.forward_changed.len().max(self.back_changed.len()) > FOLD_AFTER {
            self.fold();
        }
    }

    /// Rebuilds the base with every change in it, from the forward lists
    /// alone (the back lists are their inverse).
    fn fold(&mut self) {
        let forward: Vec<(Uuid, Vec<Uuid>)> = self
            .base
            .forward
            .keys
            .iter()
            .filter(|k| !self.forward_changed.contains_key(k))
            .map(|k| (*k, self.forward(k).collect()))
            .chain(self.forward_changed.iter().map(|(k, v)| (*k, v.to_vec())))
            .collect();
        *self = Links::build(forward);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn id(n: u8) -> Uuid {
        Uuid::from_u128(u128::from(n))
    }

    /// What the links say, as plain maps, for comparing.
    fn as_maps(links: &Links, ids: &[Uuid]) -> BTreeMap<Uuid, (Vec<Uuid>, Vec<Uuid>)> {
        ids.iter()
            .map(|i| {
                let mut back: Vec<Uuid> = links.back(i).collect();
                back.sort_unstable();
                (*i, (links.forward(i).collect::<Vec<_>>(), back))
            })
            .filter(|(_, (f, b))| !f.is_empty() || !b.is_empty())
            .collect()
    }

    proptest! {
        /// Built whole, or changed record by record (folding on the way),
        /// the tables say the same as a map of what each record links to.
        #[test]
        fn changes_and_folds_agree_with_a_rebuild(
            steps in proptest::collection::vec((0u8..40, proptest::collection::vec(0u8..60, 0..4)), 0..300),
        ) {
            let ids: Vec<Uuid> = (0..60).map(id).collect();
            let mut truth: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
            let mut links = Links::default();
            for (n, (from, to)) in steps.iter().enumerate() {
                let (from, to): (Uuid, Vec<Uuid>) = (id(*from), to.iter().map(|t| id(*t)).collect());
                links.remove(&from);
                links.add(from, to.clone());
                truth.insert(from, to);
                if n % 50 == 49 {
                    links.fold();
                }
            }
            let rebuilt = Links::build(truth.into_iter().collect());
            prop_assert_eq!(as_maps(&links, &ids), as_maps(&rebuilt, &ids));
        }
    }

    /// One id linked from 70,000 records: its half's offsets widen past
    /// one and two bytes, and every list still reads whole.
    #[test]
    fn a_record_linked_by_many_reads_every_link() {
        let hub = Uuid::from_u128(u128::MAX);
        let many: Vec<(Uuid, Vec<Uuid>)> = (0..70_000u128)
            .map(|n| {
                (
                    Uuid::from_u128(n + 1),
                    vec![hub, Uuid::from_u128(n + 1_000_000)],
                )
            })
            .collect();
        let links = Links::build(many.clone());
        let mut back: Vec<Uuid> = links.back(&hub).collect();
        back.sort_unstable();
        let want: Vec<Uuid> = many.iter().map(|(from, _)| *from).collect();
        assert_eq!(back, want);
        for (from, to) in many.iter().step_by(997) {
            assert_eq!(&links.forward(from).collect::<Vec<_>>(), to);
            for other in to.iter().filter(|t| **t != hub) {
                assert_eq!(links.back(other).collect::<Vec<_>>(), [*from]);
            }
        }
    }

    #[test]
    fn a_removed_record_links_to_nothing_and_nobody_links_from_it() {
        let mut links = Links::build(vec![(id(1), vec![id(2), id(3)]), (id(4), vec![id(2)])]);
        assert_eq!(links.forward(&id(1)).collect::<Vec<_>>(), [id(2), id(3)]);
        let mut back: Vec<Uuid> = links.back(&id(2)).collect();
        back.sort_unstable();
        assert_eq!(back, vec![id(1), id(4)]);
        assert_eq!(links.remove(&id(1)), vec![id(2), id(3)]);
        assert_eq!(links.forward(&id(1)).count(), 0);
        assert_eq!(links.back(&id(2)).collect::<Vec<_>>(), [id(4)]);
        assert_eq!(links.back(&id(3)).count(), 0);
        assert_eq!(links.neighbors(&id(2)).count(), 1);
    }
}
