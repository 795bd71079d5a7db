//! The Contact state of one tenant as sets over Contact ordinals (R12–R15):
//! valid email and mobile, opt-outs, unsubscribes, suppressions (forever or
//! until a soft bounce ends), with dense copies of the sets a denied
//! record's reason is probed in.

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use time::OffsetDateTime;

use super::Validity;
use crate::index::dense::DenseSet;
use crate::index::ord::RecordOrd;
use crate::model::data::EmailStatus;

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
        super::add_dense_ord(&mut index.valid_email, ord);
    }
    if state.has_valid_mobile() {
        super::add_dense_ord(&mut index.valid_mobile, ord);
    }
    if state.sms_opted_out {
        super::add_dense_ord(&mut index.sms_opted_out, ord);
    }
    if state.email_status == EmailStatus::UnsubscribedAll {
        super::add_dense_ord(&mut index.unsubscribed_all, ord);
    }
    if state.suppressed || state.email_status == EmailStatus::Suppressed {
        match state.suppressed_until {
            None => super::add_ord(&mut index.suppressed_forever, ord),
            Some(until) => {
                index.suppressed_until.insert((until, ord));
                index.until_of.insert(ord, until);
            }
        }
    }
    for list in &state.opted_out_lists {
        super::add_ord(index.opted_out_lists.entry(list.clone()).or_default(), ord);
    }
    let base = match state.email_status {
        EmailStatus::Suppressed => EmailStatus::NotOptedIn,
        other => other,
    };
    index.set_status(ord, base);
}
