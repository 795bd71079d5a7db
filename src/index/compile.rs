//! Compiles one question — (principal, object, action, context) at an
//! instant — into an allowed bitmap, so answering a batch is one bitmap
//! probe per record. Everything per-record that the rules read is already a
//! set in [`ObjectIndex`]; here the rules become set algebra:
//!
//! `allowed = reach(level) ∩ eligible − gate denials`, or empty when a
//! uniform layer (visibility, toggle, field) fails.
//!
//! Denied records are rare enough on the hot path to get their reason by
//! walking the layers in docs/model.md order for that record alone.

use time::OffsetDateTime;

use super::dense::{DenseSet, FlatSet};
use super::tenant::{ContactIndex, ObjectIndex, Principal, RecordOrd, TenantIndex, Validity};
use crate::model::data::{EmailInbox, EmailStatus};
use crate::model::{AccessLevel, Action, ActionContext, Control, FieldLevel, Gate, Reason};

/// A principal's permissions on one object: the union of its groups (R1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effective {
    pub view_object: bool,
    pub edit_settings: bool,
    pub delete_object: bool,
    pub all_records: AccessLevel,
    pub associated_records: AccessLevel,
    pub create_record: bool,
    pub bulk_data_upload: bool,
    pub unarchive_associated: bool,
    pub unarchive_all: bool,
    pub toggles: u32,
    /// Per field index of the object.
    pub fields: Vec<FieldLevel>,
}

impl Effective {
    pub fn of(tenant: &TenantIndex, principal: &Principal, object: usize) -> Effective {
        let field_count = tenant.objects.get(object).map_or(0, |o| o.fields.len());
        if principal.admin {
            // R1: an admin holds every setting of every group on every object.
            return Effective {
                view_object: true,
                edit_settings: true,
                delete_object: true,
                all_records: AccessLevel::Remove,
                associated_records: AccessLevel::Remove,
                create_record: true,
                bulk_data_upload: true,
                unarchive_associated: true,
                unarchive_all: true,
                toggles: u32::MAX,
                fields: vec![FieldLevel::Edit; field_count],
            };
        }
        let mut eff = Effective {
            fields: vec![FieldLevel::None; field_count],
            ..Effective::default()
        };
        let grants = principal
            .groups
            .iter()
            .filter_map(|&g| tenant.groups.get(g))
            .filter_map(|g| g.objects.get(object).and_then(Option::as_ref));
        for grant in grants {
            eff.view_object |= grant.view_object;
            eff.edit_settings |= grant.edit_settings;
            eff.delete_object |= grant.delete_object;
            eff.all_records = eff.all_records.max(grant.all_records);
            eff.associated_records = eff.associated_records.max(grant.associated_records);
            eff.create_record |= grant.create_record;
            eff.bulk_data_upload |= grant.bulk_data_upload;
            eff.unarchive_associated |= grant.unarchive_associated;
            eff.unarchive_all |= grant.unarchive_all;
            eff.toggles |= grant.toggles;
            for (mine, theirs) in eff.fields.iter_mut().zip(&grant.fields) {
                *mine = (*mine).max(*theirs);
            }
        }
        eff
    }

    /// R3: visible iff `view_object` or any record access in some group.
    pub fn visible(&self) -> bool {
        self.view_object
            || self.all_records > AccessLevel::None
            || self.associated_records > AccessLevel::None
    }

    pub fn best_level(&self) -> AccessLevel {
        self.all_records.max(self.associated_records)
    }

    pub fn toggle_on(&self, action: Action) -> bool {
        action.toggle().is_none_or(|t| self.toggles & t.bit() != 0)
    }

    /// Whether the control `create` or `upload` needs is on (R5b).
    pub fn control_on(&self, control: Control) -> bool {
        match control {
            Control::CreateRecord => self.create_record,
            Control::BulkDataUpload => self.bulk_data_upload,
            Control::Unarchive => self.unarchive_associated || self.unarchive_all,
        }
    }

    /// Whether every field the action needs is at its level (R7).
    pub fn fields_allow(&self, object: &ObjectIndex, action: Action, ctx: &ActionContext) -> bool {
        action.field_needs(ctx).iter().all(|need| {
            object
                .field_index(&need.field)
                .and_then(|i| self.fields.get(i))
                .is_some_and(|level| *level >= need.level)
        })
    }
}

/// A Contact state set a gate reads.
#[derive(Clone, Copy, Debug)]
enum StateSet {
    ValidEmail,
    ValidMobile,
    SmsOptedOut,
    UnsubscribedAll,
}

impl StateSet {
    fn dense(self, c: &ContactIndex) -> &DenseSet {
        match self {
            Self::ValidEmail => &c.dense.valid_email,
            Self::ValidMobile => &c.dense.valid_mobile,
            Self::SmsOptedOut => &c.dense.sms_opted_out,
            Self::UnsubscribedAll => &c.dense.unsubscribed_all,
        }
    }
}

/// How a denied record is tested against one gate.
#[derive(Debug)]
enum GateTest {
    /// Denied unless in the set (e.g. valid email).
    NotIn(StateSet),
    /// Denied if in the set (e.g. SMS opted out).
    In(StateSet),
    /// Denied if opted out of the named list.
    OptedOutOf(String),
    /// Denied if in this set, computed at compile time (suppressed now).
    InOwned(DenseSet),
    /// Denied for every record (tenant not configured).
    Always,
}

impl GateTest {
    fn denies(&self, object: &ObjectIndex, ord: RecordOrd) -> bool {
        let contact = object.contact.as_ref();
        match self {
            Self::NotIn(set) => !contact.is_some_and(|c| set.dense(c).contains(ord)),
            Self::In(set) => contact.is_some_and(|c| set.dense(c).contains(ord)),
            Self::OptedOutOf(list) => contact
                .and_then(|c| c.opted_out_lists.get(list))
                .is_some_and(|s| s.contains(ord)),
            Self::InOwned(set) => set.contains(ord),
            Self::Always => true,
        }
    }

    /// Removes the records this test denies from `allowed`.
    fn apply(&self, object: &ObjectIndex, allowed: &mut DenseSet) {
        let contact = object.contact.as_ref();
        match self {
            Self::NotIn(set) => match contact {
                Some(c) => allowed.and(set.dense(c)),
                None => allowed.clear(),
            },
            Self::In(set) => {
                if let Some(c) = contact {
                    allowed.and_not(set.dense(c));
                }
            }
            Self::OptedOutOf(list) => {
                if let Some(s) = contact.and_then(|c| c.opted_out_lists.get(list)) {
                    allowed.remove_all(s);
                }
            }
            Self::InOwned(set) => allowed.and_not(set),
            Self::Always => allowed.clear(),
        }
    }
}

/// Which records the principal's scopes reach at the needed level (R5).
#[derive(Debug)]
enum Reach {
    All,
    Associated(DenseSet),
    Nothing,
}

/// The compiled answer to one question.
#[derive(Debug)]
pub struct Compiled {
    /// Records on which the action is allowed, flat: a batch probes it
    /// once per position.
    pub allowed: FlatSet,
    /// The principal's field mask on the object (R7), per field index.
    pub field_mask: Vec<FieldLevel>,
    /// The instants for which the answer is exact (R13 soft bounces).
    pub validity: Validity,
    plan: Plan,
}

#[derive(Debug)]
enum Plan {
    NotVisible,
    Layers {
        /// `unarchive` denies live records `NOT_ARCHIVED`; every other
        /// action denies archived ones `ARCHIVED` (R10).
        needs_archived: bool,
        reach: Reach,
        /// A layer that fails for every reached record: toggle or field.
        uniform: Option<Reason>,
        gates: Vec<(Reason, GateTest)>,
    },
}

impl Compiled {
    /// Heap bytes the answer holds: what the compiled-answer cache weighs.
    pub fn heap_bytes(&self) -> usize {
        let gates = match &self.plan {
            Plan::NotVisible => 0,
            Plan::Layers { gates, reach, .. } => {
                let reach = match reach {
                    Reach::Associated(set) => set.heap_bytes(),
                    _ => 0,
                };
                reach
                    + gates
                        .iter()
                        .map(|(_, test)| match test {
                            GateTest::InOwned(set) => set.heap_bytes(),
                            GateTest::OptedOutOf(list) => list.len(),
                            _ => 0,
                        })
                        .sum::<usize>()
            }
        };
        self.allowed.heap_bytes() + self.field_mask.len() + gates
    }

    /// Compiles the question. `ctx` has already been validated for the
    /// action (fields exist, required parameters present).
    pub fn build(
        tenant: &TenantIndex,
        principal: &Principal,
        object_idx: usize,
        action: Action,
        ctx: &ActionContext,
        now: OffsetDateTime,
    ) -> Compiled {
        let eff = Effective::of(tenant, principal, object_idx);
        let field_mask = if eff.visible() {
            eff.fields.clone()
        } else {
            vec![FieldLevel::None; eff.fields.len()]
        };
        let Some(object) = tenant.objects.get(object_idx).filter(|_| eff.visible()) else {
            return Compiled {
                allowed: FlatSet::default(),
                field_mask,
                validity: Validity::default(),
                plan: Plan::NotVisible,
            };
        };
        let associated = || match principal.associated_user {
            Some(user) => Reach::Associated(DenseSet::of(&object.associated(user), object.len())),
            None => Reach::Nothing,
        };
        // `unarchive` is reached through its own controls, every other
        // record action through a scope at its level (R5, R10).
        let reach = if action == Action::Unarchive {
            if eff.unarchive_all {
                Reach::All
            } else if eff.unarchive_associated {
                associated()
            } else {
                Reach::Nothing
            }
        } else {
            let level = action.level(ctx);
            if eff.all_records >= level {
                Reach::All
            } else if eff.associated_records >= level {
                associated()
            } else {
                Reach::Nothing
            }
        };
        let uniform = if !eff.toggle_on(action) {
            Some(Reason::ActionNotPermitted)
        } else if !eff.fields_allow(object, action, ctx) {
            Some(Reason::FieldRestricted)
        } else {
            None
        };
        let (gates, validity) = gate_tests(tenant, principal, object, action, ctx, now);

        // Live records for every action, archived ones for `unarchive` only.
        let state = if action.reaches_archived() {
            &object.archived_dense
        } else {
            &object.live_dense
        };
        let mut allowed = match (&reach, uniform) {
            (_, Some(_)) | (Reach::Nothing, _) => DenseSet::empty(object.len()),
            (Reach::All, None) => state.clone(),
            (Reach::Associated(set), None) => {
                let mut set = set.clone();
                set.and(state);
                set
            }
        };
        for (_, test) in &gates {
            test.apply(object, &mut allowed);
        }
        Compiled {
            allowed: allowed.freeze(),
            field_mask,
            validity,
            plan: Plan::Layers {
                needs_archived: action.reaches_archived(),
                reach,
                uniform,
                gates,
            },
        }
    }

    /// Whether the answer still holds at `now`.
    pub fn fresh_at(&self, now: OffsetDateTime) -> bool {
        self.validity.contains(now)
    }

    /// The first reason, in docs/model.md order, that denies a known record.
    /// Called only for records not in `allowed`.
    pub fn reason(&self, object: &ObjectIndex, ord: RecordOrd) -> Reason {
        // A deleted record keeps its ordinal but is no longer a record.
        if !object.exists(ord) {
            return Reason::UnknownRecord;
        }
        let Plan::Layers {
            needs_archived,
            reach,
            uniform,
            gates,
        } = &self.plan
        else {
            return Reason::ObjectNotVisible;
        };
        match (*needs_archived, object.archived_dense.contains(ord)) {
            (false, true) => return Reason::Archived,
            (true, false) => return Reason::NotArchived,
            _ => {}
        }
        let reached = match reach {
            Reach::All => true,
            Reach::Associated(set) => set.contains(ord),
            Reach::Nothing => false,
        };
        if !reached {
            return Reason::NoRecordAccess;
        }
        if let Some(reason) = uniform {
            return *reason;
        }
        gates
            .iter()
            .find(|(_, test)| test.denies(object, ord))
            .map(|(reason, _)| *reason)
            // Not reachable while `allowed` agrees with the layers; if it
            // ever does not, deny rather than guess.
            .unwrap_or(Reason::NoRecordAccess)
    }

    #[inline]
    pub fn allows(&self, ord: RecordOrd) -> bool {
        self.allowed.contains(ord)
    }
}

/// The gate tests of the action in R13–R15 order, and until when they hold.
fn gate_tests(
    tenant: &TenantIndex,
    principal: &Principal,
    object: &ObjectIndex,
    action: Action,
    ctx: &ActionContext,
    now: OffsetDateTime,
) -> (Vec<(Reason, GateTest)>, Validity) {
    let Some(gate) = action.gate(ctx) else {
        return (Vec::new(), Validity::default());
    };
    let (suppressed, validity) = match &object.contact {
        Some(c) => c.suppressed_at(now),
        None => (DenseSet::empty(object.len()), Validity::default()),
    };
    let mut tests = Vec::new();
    match gate {
        Gate::Email => {
            tests.push((Reason::NoEmail, GateTest::NotIn(StateSet::ValidEmail)));
            tests.push((Reason::Suppressed, GateTest::InOwned(suppressed.clone())));
            if !ctx.transactional {
                tests.push((
                    Reason::Unsubscribed,
                    GateTest::In(StateSet::UnsubscribedAll),
                ));
            }
            if let Some(list) = &ctx.subscription_list {
                tests.push((Reason::OptedOutOfList, GateTest::OptedOutOf(list.clone())));
            }
            // The sender: the tenant's email, then the user's own inbox.
            if !tenant.email_configured || principal.inbox == EmailInbox::NotConnected {
                tests.push((Reason::EmailNotConfigured, GateTest::Always));
            }
            if principal.inbox == EmailInbox::Blocked {
                tests.push((Reason::SenderBlocked, GateTest::Always));
            }
        }
        Gate::Sms => {
            tests.push((Reason::NoMobile, GateTest::NotIn(StateSet::ValidMobile)));
            tests.push((Reason::SmsOptedOut, GateTest::In(StateSet::SmsOptedOut)));
            if !tenant.sms_configured {
                tests.push((Reason::SmsNotConfigured, GateTest::Always));
            }
        }
        Gate::Subscription { bulk } => {
            if ctx.target_email_status == Some(EmailStatus::Suppressed) {
                tests.push((Reason::SystemManaged, GateTest::Always));
            }
            tests.push((Reason::SystemManaged, GateTest::InOwned(suppressed.clone())));
            if bulk && ctx.target_email_status == Some(EmailStatus::OptedIn) {
                tests.push((
                    Reason::SingleRecordOnly,
                    GateTest::In(StateSet::UnsubscribedAll),
                ));
            }
        }
    }
    (tests, validity)
}
