//! Record links, both ways, kept by id so a link to a record that does not
//! exist yet takes effect when it is created, as in a rebuild. What a
//! record change needs to update one-hop associations (R9).
//!
//! Each direction is a compact table built once (sorted ids, offsets, the
//! linked ids: ~20 bytes per id and 16 per link, where hash maps of vectors
//! took ~125 bytes per id) shared by every revision, plus the ids changed
//! since, folded back into a new table when they grow many: a change never
//! copies the whole table.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use uuid::Uuid;

/// Changed ids kept beside the table before it is rebuilt.
const FOLD_AFTER: usize = 4_096;

/// Record links: `forward` as each record wrote them, `back` who links to
/// each id.
#[derive(Clone, Debug, Default)]
pub struct Links {
    forward: LinkTable,
    back: LinkTable,
}

impl Links {
    /// From every record's links, each record once.
    pub fn build(mut forward: Vec<(Uuid, Vec<Uuid>)>) -> Links {
        forward.retain(|(_, to)| !to.is_empty());
        let mut back: Vec<(Uuid, Uuid)> = forward
            .iter()
            .flat_map(|(from, to)| to.iter().map(move |to| (*to, *from)))
            .collect();
        // Stable: each record's links keep the order it wrote them in.
        forward.sort_by_key(|(from, _)| *from);
        back.sort_by_key(|(to, _)| *to);
        Links {
            forward: LinkTable::of_lists(forward.iter().map(|(k, v)| (*k, v.as_slice()))),
            back: LinkTable::of_pairs(&back),
        }
    }

    /// The ids `from` links to, in the order it wrote them.
    pub fn forward(&self, from: &Uuid) -> &[Uuid] {
        self.forward.get(from)
    }

    /// The ids that link to `to`.
    pub fn back(&self, to: &Uuid) -> &[Uuid] {
        self.back.get(to)
    }

    /// Records `from`'s links (it had none before).
    pub fn add(&mut self, from: Uuid, to: Vec<Uuid>) {
        if to.is_empty() {
            return;
        }
        for id in &to {
            let mut sources = self.back.get(id).to_vec();
            sources.push(from);
            self.back.set(*id, sources);
        }
        self.forward.set(from, to);
    }

    /// Forgets `from`'s links and returns them.
    pub fn remove(&mut self, from: &Uuid) -> Vec<Uuid> {
        let to = self.forward.get(from).to_vec();
        if to.is_empty() {
            return to;
        }
        self.forward.set(*from, Vec::new());
        for id in &to {
            let mut sources = self.back.get(id).to_vec();
            if let Some(at) = sources.iter().position(|s| s == from) {
                sources.swap_remove(at);
            }
            self.back.set(*id, sources);
        }
        to
    }

    /// Every record linked with `id`, either way.
    pub fn neighbors(&self, id: &Uuid) -> impl Iterator<Item = &Uuid> {
        self.forward(id).iter().chain(self.back(id))
    }

    pub fn heap_bytes(&self) -> usize {
        self.forward.heap_bytes() + self.back.heap_bytes()
    }
}

/// One direction: id → linked ids.
#[derive(Clone, Debug, Default)]
struct LinkTable {
    base: Arc<Table>,
    /// Ids whose lists changed since `base` was built; an empty list is a
    /// removed one.
    changed: FxHashMap<Uuid, Box<[Uuid]>>,
}

/// Sorted ids and their lists: `values[offsets[i]..offsets[i + 1]]` are
/// the ids `keys[i]` links with.
#[derive(Debug, Default)]
struct Table {
    keys: Vec<Uuid>,
    offsets: Vec<u32>,
    values: Vec<Uuid>,
}

impl Table {
    fn get(&self, key: &Uuid) -> &[Uuid] {
        let Ok(i) = self.keys.binary_search(key) else {
            return &[];
        };
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&from), Some(&to)) => self
                .values
                .get(from as usize..to as usize)
                .unwrap_or_default(),
            _ => &[],
        }
    }
}

impl LinkTable {
    /// From lists sorted by id, each id once.
    fn of_lists<'a>(lists: impl Iterator<Item = (Uuid, &'a [Uuid])>) -> LinkTable {
        let mut table = Table::default();
        table.offsets.push(0);
        for (key, values) in lists {
            if values.is_empty() {
                continue;
            }
            table.keys.push(key);
            table.values.extend_from_slice(values);
            table
                .offsets
                .push(u32::try_from(table.values.len()).unwrap_or(u32::MAX));
        }
        table.keys.shrink_to_fit();
        table.offsets.shrink_to_fit();
        table.values.shrink_to_fit();
        LinkTable {
            base: Arc::new(table),
            changed: FxHashMap::default(),
        }
    }

    /// From (id, linked id) pairs sorted by id.
    fn of_pairs(pairs: &[(Uuid, Uuid)]) -> LinkTable {
        let groups = pairs.chunk_by(|a, b| a.0 == b.0);
        let lists: Vec<(Uuid, Vec<Uuid>)> = groups
            .filter_map(|g| Some((g.first()?.0, g.iter().map(|p| p.1).collect())))
            .collect();
        Self::of_lists(lists.iter().map(|(k, v)| (*k, v.as_slice())))
    }

    fn get(&self, key: &Uuid) -> &[Uuid] {
        match self.changed.get(key) {
            Some(values) => values,
            None => self.base.get(key),
        }
    }

    fn set(&mut self, key: Uuid, values: Vec<Uuid>) {
        self.changed.insert(key, values.into_boxed_slice());
        if self.changed.len() > FOLD_AFTER {
            self.fold();
        }
    }

    /// Rebuilds the table with every change in it.
    fn fold(&mut self) {
        let mut lists: Vec<(Uuid, &[Uuid])> = self
            .base
            .keys
            .iter()
            .filter(|k| !self.changed.contains_key(k))
            .map(|k| (*k, self.base.get(k)))
            .chain(self.changed.iter().map(|(k, v)| (*k, &**v)))
            .collect();
        lists.sort_by_key(|(k, _)| *k);
        *self = Self::of_lists(lists.into_iter());
    }

    fn heap_bytes(&self) -> usize {
        self.base.keys.capacity() * 16
            + self.base.offsets.capacity() * 4
            + self.base.values.capacity() * 16
            + self
                .changed
                .values()
                .map(|v| v.len() * 16 + 40)
                .sum::<usize>()
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
                let mut back = links.back(i).to_vec();
                back.sort_unstable();
                (*i, (links.forward(i).to_vec(), back))
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
                    links.forward.fold();
                    links.back.fold();
                }
            }
            let rebuilt = Links::build(truth.into_iter().collect());
            prop_assert_eq!(as_maps(&links, &ids), as_maps(&rebuilt, &ids));
        }
    }

    #[test]
    fn a_removed_record_links_to_nothing_and_nobody_links_from_it() {
        let mut links = Links::build(vec![(id(1), vec![id(2), id(3)]), (id(4), vec![id(2)])]);
        assert_eq!(links.forward(&id(1)), &[id(2), id(3)]);
        let mut back = links.back(&id(2)).to_vec();
        back.sort_unstable();
        assert_eq!(back, vec![id(1), id(4)]);
        assert_eq!(links.remove(&id(1)), vec![id(2), id(3)]);
        assert!(links.forward(&id(1)).is_empty());
        assert_eq!(links.back(&id(2)), &[id(4)]);
        assert!(links.back(&id(3)).is_empty());
        assert_eq!(links.neighbors(&id(2)).count(), 1);
    }
}
