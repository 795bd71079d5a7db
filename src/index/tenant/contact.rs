//! The Contact state of one tenant as sets over Contact ordinals (R12–R15):
//! valid email and mobile, opt-outs, unsubscribes, suppressions (forever or
//! until a soft bounce ends), as the dense sets a denied record's reason is
//! probed in and compiled answers are built from.

use std::sync::Arc;

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use time::OffsetDateTime;

use super::Validity;
use crate::index::dense::DenseSet;
use crate::index::ord::RecordOrd;
use crate::model::data::EmailStatus;

/// Contact state as sets (R12–R15), dense: the sets a denied record's
/// reason is probed in and compiled answers are built from. Every part is
/// shared between revisions until a change writes it (a dense set's chunk,
/// one list's set, the soft-bounce maps), so applying a change copies
/// kilobytes, not the object's megabytes.
#[derive(Clone, Debug, Default)]
pub struct ContactIndex {
    /// Soft-bounce suppressions, ordered by the instant they end; a
    /// B-tree so one Contact's change is O(log n), not a shift of them all.
    pub suppressed_until: Arc<std::collections::BTreeSet<(OffsetDateTime, RecordOrd)>>,
    /// Each soft-bounced Contact's end instant: finds its entry above.
    pub until_of: Arc<FxHashMap<RecordOrd, OffsetDateTime>>,
    pub opted_out_lists: FxHashMap<String, Arc<RoaringBitmap>>,
    /// Base status per record, for Explain.
    pub status: Statuses,
    /// Valid email and mobile, SMS opt-out, unsubscribed from all (the
    /// status underneath any suppression) and suppressed for good.
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

impl ContactProbes {
    pub fn all_mut(&mut self) -> [&mut DenseSet; 5] {
        let ContactProbes {
            valid_email,
            valid_mobile,
            sms_opted_out,
            unsubscribed_all,
            suppressed_forever,
        } = self;
        [
            valid_email,
            valid_mobile,
            sms_opted_out,
            unsubscribed_all,
            suppressed_forever,
        ]
    }
}

/// Each Contact's base email status, in chunks shared between revisions:
/// a change copies the 64 KB chunk its Contact is in, not a million
/// statuses.
#[derive(Clone, Debug, Default)]
pub struct Statuses {
    chunks: Vec<Arc<Vec<EmailStatus>>>,
}

/// Contacts per [`Statuses`] chunk.
const STATUS_CHUNK: usize = 65_536;

impl Statuses {
    pub fn get(&self, ord: RecordOrd) -> Option<EmailStatus> {
        let at = ord as usize;
        self.chunks
            .get(at / STATUS_CHUNK)?
            .get(at % STATUS_CHUNK)
            .copied()
    }

    /// Sets one Contact's status; Contacts before it that have none get
    /// the default.
    pub fn set(&mut self, ord: RecordOrd, status: EmailStatus) {
        let at = ord as usize;
        if self.get(ord) == Some(status) {
            return;
        }
        while self.chunks.len() <= at / STATUS_CHUNK {
            self.chunks.push(Arc::default());
        }
        let Some(chunk) = self.chunks.get_mut(at / STATUS_CHUNK) else {
            return;
        };
        let chunk = Arc::make_mut(chunk);
        let i = at % STATUS_CHUNK;
        if chunk.len() <= i {
            chunk.resize(i + 1, EmailStatus::default());
        }
        if let Some(slot) = chunk.get_mut(i) {
            *slot = status;
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity()).sum::<usize>()
            + self.chunks.capacity() * size_of::<usize>()
    }
}

impl ContactIndex {
    fn set_status(&mut self, ord: RecordOrd, status: EmailStatus) {
        self.status.set(ord, status);
    }

    /// Removes every fact of one Contact (a deleted record).
    pub(crate) fn forget(&mut self, ord: RecordOrd) {
        for set in self.dense.all_mut() {
            set.set(ord, false);
        }
        self.set_lists(ord, &[], false);
        self.set_until(ord, None);
    }

    /// Puts `ord` on exactly the lists named; only a list it joins or
    /// leaves is copied. A `fresh` ordinal is on no list yet, so the pass
    /// over every list to take it off is skipped: a bulk build stays
    /// O(records) rather than O(records × lists).
    fn set_lists(&mut self, ord: RecordOrd, lists: &[String], fresh: bool) {
        if !fresh {
            for (name, set) in &mut self.opted_out_lists {
                if set.contains(ord) && !lists.contains(name) {
                    Arc::make_mut(set).remove(ord);
                }
            }
        }
        for list in lists {
            let set = self.opted_out_lists.entry(list.clone()).or_default();
            if !set.contains(ord) {
                super::add_ord(Arc::make_mut(set), ord);
            }
        }
    }

    /// Sets when `ord`'s soft-bounce suppression ends (`None`: it has
    /// none); the maps are copied only when that changes.
    fn set_until(&mut self, ord: RecordOrd, until: Option<OffsetDateTime>) {
        let now = self.until_of.get(&ord).copied();
        if now == until {
            return;
        }
        let (by_end, of) = (
            Arc::make_mut(&mut self.suppressed_until),
            Arc::make_mut(&mut self.until_of),
        );
        if let Some(old) = now {
            by_end.remove(&(old, ord));
            of.remove(&ord);
        }
        if let Some(new) = until {
            by_end.insert((new, ord));
            of.insert(ord, new);
        }
    }

    /// Makes room in the dense sets for a universe of `universe` records.
    pub(crate) fn grow(&mut self, universe: usize) {
        for set in self.dense.all_mut() {
            set.grow(universe);
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
        let running = self.suppressed_until.range((Excluded(edge), Unbounded));
        let until = running.clone().next().map(|(until, _)| *until);
        let mut ords: Vec<RecordOrd> = running.map(|(_, ord)| *ord).collect();
        ords.sort_unstable();
        set.insert_sorted(&ords);
        let from = self
            .suppressed_until
            .range((Unbounded, Included(edge)))
            .next_back()
            .map(|(until, _)| *until);
        (set, Validity { from, until })
    }

    pub fn is_suppressed_at(&self, ord: RecordOrd, now: OffsetDateTime) -> bool {
        self.dense.suppressed_forever.contains(ord)
            || self.until_of.get(&ord).is_some_and(|until| now < *until)
    }
}

/// Sets one Contact's facts to those of `state` (none: a Contact with no
/// state, not opted in). The dense sets must already hold `ord`
/// ([`ContactIndex::grow`]); only what differs from before is written.
/// `fresh`: `ord` was just allocated and has no facts yet (a bulk build),
/// so nothing needs taking away.
pub(crate) fn index_contact(
    index: &mut ContactIndex,
    ord: RecordOrd,
    state: Option<&crate::model::data::ContactState>,
    fresh: bool,
) {
    let Some(state) = state else {
        if !fresh {
            index.forget(ord);
        }
        index.set_status(ord, EmailStatus::NotOptedIn);
        return;
    };
    let suppressed = state.suppressed || state.email_status == EmailStatus::Suppressed;
    let probes = &mut index.dense;
    probes.valid_email.set(ord, state.has_valid_email());
    probes.valid_mobile.set(ord, state.has_valid_mobile());
    probes.sms_opted_out.set(ord, state.sms_opted_out);
    probes
        .unsubscribed_all
        .set(ord, state.email_status == EmailStatus::UnsubscribedAll);
    probes
        .suppressed_forever
        .set(ord, suppressed && state.suppressed_until.is_none());
    index.set_until(ord, state.suppressed_until.filter(|_| suppressed));
    index.set_lists(ord, &state.opted_out_lists, fresh);
    let base = match state.email_status {
        EmailStatus::Suppressed => EmailStatus::NotOptedIn,
        other => other,
    };
    index.set_status(ord, base);
}
