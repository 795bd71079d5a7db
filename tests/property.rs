//! Property tests: random tenants and random requests, and the engine must
//! answer exactly as the reference evaluator in `tests/reference/` (the
//! rules of docs/model.md and docs/semantics-choices.md written record by
//! record, sharing no code with `permd::index`).
//!
//! Each generated case builds one tenant (plus a decoy tenant, to check that
//! nothing crosses tenants) and then asks, for a few principals and every
//! object, EVERY action of `Action::ALL` with two contexts: BatchCheck
//! (allowed/denied and the reason per position, with unknown and duplicate
//! ids), the field mask, Check, Explain, LookupRecords, RecordAccess and
//! ObjectAccess. Time-dependent actions are asked again at later instants
//! with the same engine, so cached answers must honour the clock.
//!
//! `PROPTEST_CASES` sets the number of cases (default 1000).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod reference;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use common::tenants::{
    self, BASE, CtxSpec, Shape, TenantSpec, build_ctx, ctx_spec, mirror, mirror_id, tenant_spec,
    yaml,
};
use permd::index::PrincipalKind;
use permd::index::engine::{Engine, PrincipalRef, Question, Snapshot};
use permd::model::data::{
    ContactState, DataFile, EmailStatus, Group, ObjectDef, ObjectPermissions, Record, Tenant, User,
};
use permd::model::validate::validate;
use permd::model::{AccessLevel, Action, ActionContext, Channel, FieldLevel, Reason, Toggle};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reference::Kind;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const TENANT: &str = "acme";
const DECOY: &str = "decoy";
const ALL_REASONS: [Reason; 16] = [
    Reason::UnknownRecord,
    Reason::ObjectNotVisible,
    Reason::Archived,
    Reason::NoRecordAccess,
    Reason::ActionNotPermitted,
    Reason::FieldRestricted,
    Reason::NoEmail,
    Reason::Suppressed,
    Reason::Unsubscribed,
    Reason::OptedOutOfList,
    Reason::EmailNotConfigured,
    Reason::NoMobile,
    Reason::SmsOptedOut,
    Reason::SmsNotConfigured,
    Reason::SystemManaged,
    Reason::SingleRecordOnly,
];

// ===========================================================================
// Generated cases: a tenant of the kit's default shape (one tenant, every
// feature, `acme`), the principals and contexts to ask with, and later
// instants to ask again at.
// ===========================================================================

#[derive(Clone, Debug)]
struct Scenario {
    tenant: TenantSpec,
    principals: Vec<u16>,
    ctxs: Vec<CtxSpec>,
    /// Later instants, in quarter hours after `BASE`.
    later: Vec<i64>,
}

prop_compose! {
    fn scenario()(
        tenant in tenant_spec(&Shape::default()),
        principals in vec(any::<u16>(), 2..=3),
        ctxs in vec(ctx_spec(), 3),
        later in vec(1i64..=16, 2),
    ) -> Scenario {
        Scenario { tenant, principals, ctxs, later }
    }
}

fn quarter_hours(q: i64) -> OffsetDateTime {
    BASE + Duration::minutes(15 * q)
}

/// The tenant, and its [`mirror`] (every user an admin, other record ids):
/// nothing of the mirror may leak into answers about the tenant.
fn build_file(s: &TenantSpec) -> DataFile {
    let t = tenants::build(s, &Shape::default(), 0);
    let d = mirror(&t, DECOY);
    DataFile {
        tenants: vec![t, d],
    }
}

// ===========================================================================
// Requests
// ===========================================================================

fn kind_of(k: Kind) -> PrincipalKind {
    match k {
        Kind::User => PrincipalKind::User,
        Kind::Integration => PrincipalKind::Integration,
        Kind::Automation => PrincipalKind::Automation,
    }
}

/// Every principal of the tenant, as the reference names them.
fn all_principals(t: &Tenant) -> Vec<(Kind, String)> {
    let kind = |k| match k {
        PrincipalKind::User => Kind::User,
        PrincipalKind::Integration => Kind::Integration,
        PrincipalKind::Automation => Kind::Automation,
    };
    tenants::principals(t)
        .into_iter()
        .map(|p| (kind(p.kind), p.id))
        .collect()
}

fn question(p: &(Kind, String), object: &str, action: Action, ctx: &ActionContext) -> Question {
    Question {
        tenant: TENANT.to_owned(),
        principal: principal_ref(p),
        object: object.to_owned(),
        action: action.as_str().to_owned(),
        ctx: ctx.clone(),
        min_revision: 0,
    }
}

fn principal_ref(p: &(Kind, String)) -> PrincipalRef {
    PrincipalRef {
        kind: kind_of(p.0),
        id: p.1.clone(),
    }
}

/// Actions whose answer on a Contact can change with the clock alone.
fn time_dependent(action: Action, ctx: &ActionContext) -> bool {
    match action {
        Action::SendSingleMessage => ctx.channel == Some(Channel::Email),
        Action::BulkSendEmail | Action::BulkSendSurvey | Action::BulkManageSubscription => true,
        Action::SubscriptionLists => ctx.target_email_status.is_some(),
        _ => false,
    }
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

type Outcome = Result<(), TestCaseError>;

/// What a run covered.
#[derive(Default)]
struct Coverage {
    /// Per action, the number of cases in which it was compared on a valid
    /// request at least once.
    cases_per_action: BTreeMap<&'static str, usize>,
    /// Per outcome ("allowed" or a reason), how many BatchCheck positions
    /// and record-less Checks had it.
    outcomes: BTreeMap<&'static str, usize>,
}

type Tally = Mutex<Coverage>;

fn outcome(r: Option<Reason>) -> &'static str {
    r.map_or("ALLOWED", Reason::as_str)
}

/// One generated case, built: the data file, an engine over it, and what
/// the requests range over.
struct World {
    file: DataFile,
    engine: Engine,
    /// Every object of the main tenant, and its fields.
    objects: Vec<(String, Vec<String>)>,
    /// Every id of the main tenant's records, per object.
    ids_of: BTreeMap<String, Vec<Uuid>>,
    /// The principals asking in this case.
    chosen: Vec<(Kind, String)>,
    /// Later instants, ascending, for time-dependent actions.
    later: Vec<OffsetDateTime>,
    /// Outcomes compared in this case.
    outcomes: std::cell::RefCell<BTreeMap<&'static str, usize>>,
}

impl World {
    fn build(s: &Scenario) -> Result<World, TestCaseError> {
        let file = build_file(&s.tenant);
        let report = validate(&file);
        prop_assert!(
            report.errors.is_empty(),
            "generator produced an invalid file: {:?}",
            report.errors
        );
        let engine = Engine::new(Snapshot::build(&file, 1), 10_000);
        let tenant = &file.tenants[0];
        let mut objects = Vec::new();
        let mut ids_of = BTreeMap::new();
        for name in reference::object_names(tenant) {
            let def = tenant
                .objects
                .iter()
                .find(|o| o.name == name)
                .cloned()
                .unwrap_or_else(|| ObjectDef {
                    name: name.clone(),
                    ..ObjectDef::default()
                });
            let ids: Vec<Uuid> = tenant
                .records
                .iter()
                .filter(|r| r.object == name)
                .map(|r| r.id)
                .collect();
            ids_of.insert(name.clone(), ids);
            objects.push((name, reference::fields_of(&def)));
        }
        let everyone = all_principals(tenant);
        let mut chosen: Vec<(Kind, String)> = Vec::new();
        for v in &s.principals {
            let p = everyone[*v as usize % everyone.len()].clone();
            if !chosen.contains(&p) {
                chosen.push(p);
            }
        }
        let mut later: Vec<OffsetDateTime> = s.later.iter().map(|q| quarter_hours(*q)).collect();
        later.sort();
        later.dedup();
        Ok(World {
            file,
            engine,
            objects,
            ids_of,
            chosen,
            later,
            outcomes: Default::default(),
        })
    }

    fn tenant(&self) -> &Tenant {
        &self.file.tenants[0]
    }

    fn describe(
        &self,
        p: &(Kind, String),
        object: &str,
        action: Action,
        ctx: &ActionContext,
        now: OffsetDateTime,
    ) -> String {
        format!(
            "principal {:?} '{}', object {object}, action {}, ctx {ctx:?}, now {now}\n--- tenant ---\n{}",
            p.0,
            p.1,
            action.as_str(),
            yaml(self.tenant())
        )
    }

    /// The batch of ids asked about `object`: its records, plus a record of
    /// another object, an id nobody has, a record of the decoy tenant, and
    /// duplicates.
    fn batch_ids(&self, object: &str) -> Vec<Uuid> {
        let own = &self.ids_of[object];
        let mut ids = Vec::new();
        ids.push(Uuid::from_u128(0xffff_ffff_0000_0000_0000_0000_0000_0001));
        if let Some(other) = self
            .ids_of
            .iter()
            .filter(|(name, _)| name.as_str() != object)
            .find_map(|(_, ids)| ids.first())
        {
            ids.push(*other);
        }
        let half = own.len() / 2;
        ids.extend_from_slice(&own[..half]);
        if let Some(first) = own.first() {
            ids.push(mirror_id(*first));
        }
        ids.extend_from_slice(&own[half..]);
        ids.extend(own.iter().take(2).copied());
        ids
    }

    #[allow(clippy::too_many_arguments)]
    /// Asks one record action of the engine in every way it can be asked and
    /// compares with the reference. Returns whether the request was valid.
    fn record_action(
        &self,
        p: &(Kind, String),
        object: &str,
        action: Action,
        ctx: &ActionContext,
        ids: &[Uuid],
        now: OffsetDateTime,
        deep: bool,
    ) -> Result<bool, TestCaseError> {
        let t = self.tenant();
        let q = question(p, object, action, ctx);
        let who = (p.0, p.1.as_str());
        let expected: Vec<_> = ids
            .iter()
            .map(|id| reference::decide(t, who, object, action, ctx, Some(*id), now))
            .collect();
        let batch = self.engine.batch_check(&q, ids, now);
        if expected.iter().any(Result::is_err) {
            prop_assert!(
                expected.iter().all(Result::is_err),
                "reference validity depends on the record"
            );
            prop_assert!(
                batch.is_err(),
                "engine answered an invalid request: {:?}\n{}",
                expected[0],
                self.describe(p, object, action, ctx, now)
            );
            prop_assert!(self.engine.lookup(&q, now).is_err());
            prop_assert!(self.engine.check(&q, ids.first().copied(), now).is_err());
            return Ok(false);
        }
        let expected: Vec<Option<Reason>> = expected.into_iter().map(Result::unwrap).collect();
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                return Err(TestCaseError::fail(format!(
                    "engine refused a valid request: {e}\n{}",
                    self.describe(p, object, action, ctx, now)
                )));
            }
        };
        let mask = reference::field_mask(t, who, object).unwrap();

        // BatchCheck: per position, allowed or the first reason.
        prop_assert_eq!(batch.allowed.len(), ids.len().div_ceil(8));
        let positions: Vec<u32> = batch.denials.iter().map(|(p, _)| *p).collect();
        prop_assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "denials not in request order: {:?}",
            positions
        );
        let denials: HashMap<u32, Reason> = batch.denials.iter().copied().collect();
        for (pos, id) in ids.iter().enumerate() {
            let got = if batch.is_allowed(pos) {
                prop_assert!(
                    !denials.contains_key(&(pos as u32)),
                    "position {} both allowed and denied",
                    pos
                );
                None
            } else {
                match denials.get(&(pos as u32)) {
                    Some(r) => Some(*r),
                    None => {
                        return Err(TestCaseError::fail(format!(
                            "position {pos} neither allowed nor denied"
                        )));
                    }
                }
            };
            prop_assert_eq!(
                got,
                expected[pos],
                "BatchCheck position {} record {}\n{}",
                pos,
                id,
                self.describe(p, object, action, ctx, now)
            );
        }
        let mut outcomes = self.outcomes.borrow_mut();
        for r in &expected {
            *outcomes.entry(outcome(*r)).or_default() += 1;
        }
        drop(outcomes);
        let allowed = expected.iter().filter(|r| r.is_none()).count();
        prop_assert_eq!(batch.allowed_count as usize, allowed);
        prop_assert_eq!(
            sorted(&batch.field_mask),
            sorted(&mask),
            "BatchCheck field mask\n{}",
            self.describe(p, object, action, ctx, now)
        );

        // LookupRecords: exactly the records the action is allowed on.
        let (found, _) = self.engine.lookup(&q, now).unwrap();
        let found: BTreeSet<Uuid> = found.into_iter().collect();
        let want: BTreeSet<Uuid> = ids
            .iter()
            .zip(&expected)
            .filter(|(_, r)| r.is_none())
            .map(|(id, _)| *id)
            .collect();
        prop_assert_eq!(
            found,
            want,
            "LookupRecords\n{}",
            self.describe(p, object, action, ctx, now)
        );

        if !deep {
            return Ok(true);
        }
        // Check without a record is refused; with one, it answers like
        // BatchCheck (a few positions: first, middle, last).
        prop_assert!(self.engine.check(&q, None, now).is_err());
        let mut probes = vec![0, ids.len() / 2, ids.len() - 1];
        probes.dedup();
        for pos in probes {
            let d = self.engine.check(&q, Some(ids[pos]), now).unwrap();
            prop_assert_eq!(
                d.reason,
                expected[pos],
                "Check record {}\n{}",
                ids[pos],
                self.describe(p, object, action, ctx, now)
            );
            prop_assert_eq!(sorted(&d.field_mask), sorted(&mask), "Check field mask");
        }
        // Explain on an allowed record and on a denied record of the object.
        let allowed_pos = expected.iter().position(Option::is_none);
        let denied_pos = expected
            .iter()
            .position(|r| r.is_some_and(|r| r != Reason::UnknownRecord));
        for pos in [allowed_pos, denied_pos].into_iter().flatten() {
            self.explain(p, object, action, ctx, Some(ids[pos]), expected[pos], now)?;
        }
        Ok(true)
    }

    /// Explain's final answer equals Check's (and the reference's), and its
    /// first failing layer names that same reason.
    #[allow(clippy::too_many_arguments)]
    fn explain(
        &self,
        p: &(Kind, String),
        object: &str,
        action: Action,
        ctx: &ActionContext,
        record: Option<Uuid>,
        expected: Option<Reason>,
        now: OffsetDateTime,
    ) -> Outcome {
        let q = question(p, object, action, ctx);
        let check = self.engine.check(&q, record, now).unwrap();
        let e = self.engine.explain(&q, record, now).unwrap();
        prop_assert_eq!(e.reason, check.reason, "Explain vs Check");
        prop_assert_eq!(e.reason, expected, "Explain vs reference");
        let first_failed = e.steps.iter().find(|s| !s.passed).map(|s| s.reason);
        prop_assert_eq!(
            first_failed.flatten(),
            e.reason,
            "Explain's first failing layer vs its answer; steps {:?}\n{}",
            e.steps,
            self.describe(p, object, action, ctx, now)
        );
        prop_assert!(
            e.steps.iter().all(|s| s.passed == s.reason.is_none()),
            "a step that failed without a reason, or passed with one"
        );
        Ok(())
    }

    /// `create` and `upload`: Check without a record; everything else refuses.
    fn record_less_action(
        &self,
        p: &(Kind, String),
        object: &str,
        action: Action,
        ctx: &ActionContext,
        now: OffsetDateTime,
    ) -> Result<bool, TestCaseError> {
        let t = self.tenant();
        let q = question(p, object, action, ctx);
        let who = (p.0, p.1.as_str());
        let expected = reference::decide(t, who, object, action, ctx, None, now);
        let got = self.engine.check(&q, None, now);
        let any_id = self.ids_of[object]
            .first()
            .copied()
            .unwrap_or_else(Uuid::nil);
        prop_assert!(self.engine.check(&q, Some(any_id), now).is_err());
        prop_assert!(self.engine.batch_check(&q, &[any_id], now).is_err());
        prop_assert!(self.engine.lookup(&q, now).is_err());
        let Ok(expected) = expected else {
            prop_assert!(
                got.is_err(),
                "engine answered an invalid record-less request"
            );
            return Ok(false);
        };
        let got = got.unwrap();
        prop_assert_eq!(
            got.reason,
            expected,
            "Check (no record)\n{}",
            self.describe(p, object, action, ctx, now)
        );
        *self
            .outcomes
            .borrow_mut()
            .entry(outcome(expected))
            .or_default() += 1;
        let mask = reference::field_mask(t, who, object).unwrap();
        prop_assert_eq!(
            sorted(&got.field_mask),
            sorted(&mask),
            "Check mask (no record)"
        );
        self.explain(p, object, action, ctx, None, expected, now)?;
        Ok(true)
    }

    fn record_access(
        &self,
        p: &(Kind, String),
        object: &str,
        ids: &[Uuid],
        now: OffsetDateTime,
    ) -> Outcome {
        let who = (p.0, p.1.as_str());
        let want = reference::record_access(self.tenant(), who, object, ids, now).unwrap();
        let (got, _) = self
            .engine
            .record_access(TENANT, &principal_ref(p), object, ids, 0, now)
            .unwrap();
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            let g_flags = (g.record_id, g.view, g.edit, g.remove);
            let w_flags = (w.record_id, w.view, w.edit, w.remove);
            prop_assert_eq!(
                g_flags,
                w_flags,
                "RecordAccess (id, view, edit, remove)\n{}",
                self.describe(p, object, Action::View, &ActionContext::default(), now)
            );
            prop_assert_eq!(
                sorted(&g.field_mask),
                sorted(&w.field_mask),
                "RecordAccess mask"
            );
        }
        Ok(())
    }

    fn object_access(&self, p: &(Kind, String), object: Option<&str>) -> Outcome {
        let who = (p.0, p.1.as_str());
        let (want, want_create) = reference::object_access(self.tenant(), who, object).unwrap();
        let (got, got_create, _) = self
            .engine
            .object_access(TENANT, &principal_ref(p), object, 0)
            .unwrap();
        let here = || {
            format!(
                "ObjectAccess({object:?}) for {:?} '{}'\n--- tenant ---\n{}",
                p.0,
                p.1,
                yaml(self.tenant())
            )
        };
        prop_assert_eq!(got_create, want_create, "create_objects\n{}", here());
        let mut got = got;
        got.sort_by(|a, b| a.object.cmp(&b.object));
        let mut want = want;
        want.sort_by(|a, b| a.object.cmp(&b.object));
        let names = |v: &[String]| v.join(",");
        prop_assert_eq!(
            names(&got.iter().map(|o| o.object.clone()).collect::<Vec<_>>()),
            names(&want.iter().map(|o| o.object.clone()).collect::<Vec<_>>()),
            "visible objects\n{}",
            here()
        );
        for (g, w) in got.iter().zip(&want) {
            prop_assert_eq!(
                (g.view, g.edit, g.remove, g.create_records),
                (w.view, w.edit, w.remove, w.create_records),
                "{}: (view, edit, remove, create_records)\n{}",
                &g.object,
                here()
            );
            let actions = |v: &[Action]| sorted(v).iter().map(|a| a.as_str()).collect::<Vec<_>>();
            for (what, got, want) in [
                ("single", &g.single_actions, &w.single_actions),
                ("bulk", &g.bulk_actions, &w.bulk_actions),
            ] {
                prop_assert_eq!(
                    actions(got),
                    actions(want),
                    "{}: {} actions\n{}",
                    &g.object,
                    what,
                    here()
                );
            }
            prop_assert_eq!(
                sorted(&g.field_mask),
                sorted(&w.field_mask),
                "{}: mask",
                &g.object
            );
        }
        Ok(())
    }
}

/// Every action of `Action::ALL`, two contexts each, for every chosen
/// principal and every object: BatchCheck, Check, Explain, LookupRecords.
fn records_match_the_reference(s: &Scenario, tally: &Tally) -> Outcome {
    let w = World::build(s)?;
    let tenant = w.tenant();

    // Unknown principals are refused, never answered.
    let first_user = tenant.users[0].id.clone();
    for p in [
        (Kind::User, "nobody".to_owned()),
        (Kind::Integration, first_user.clone()),
        (Kind::Automation, first_user),
    ] {
        let ctx = ActionContext::default();
        let q = question(&p, "contacts", Action::View, &ctx);
        let who = (p.0, p.1.as_str());
        let want = reference::decide(tenant, who, "contacts", Action::View, &ctx, None, BASE);
        prop_assert!(want.is_err());
        prop_assert!(w.engine.batch_check(&q, &[Uuid::nil()], BASE).is_err());
        prop_assert!(w.engine.check(&q, Some(Uuid::nil()), BASE).is_err());
        prop_assert!(w.engine.lookup(&q, BASE).is_err());
    }

    let mut compared: BTreeSet<&'static str> = BTreeSet::new();
    for p in &w.chosen {
        for (object, fields) in &w.objects {
            let ids = w.batch_ids(object);
            for (ai, action) in Action::ALL.into_iter().enumerate() {
                // The first context is always made valid; the second may be
                // left invalid, and then the engine must refuse it.
                let first = build_ctx(&s.ctxs[ai % 3], action, fields, false);
                let spec = &s.ctxs[(ai + 1) % 3];
                let second = build_ctx(spec, action, fields, spec.raw);
                let mut ctxs = vec![first];
                if !ctxs.contains(&second) {
                    ctxs.push(second);
                }
                for (k, ctx) in ctxs.iter().enumerate() {
                    let valid = if reference::record_less(action) {
                        w.record_less_action(p, object, action, ctx, BASE)?
                    } else {
                        let valid = w.record_action(p, object, action, ctx, &ids, BASE, k == 0)?;
                        // The same engine, later: cached answers must follow
                        // the clock (a soft bounce ends without data change).
                        if valid && time_dependent(action, ctx) {
                            for now in &w.later {
                                w.record_action(p, object, action, ctx, &ids, *now, false)?;
                            }
                        }
                        valid
                    };
                    if valid {
                        compared.insert(action.as_str());
                    }
                }
            }
        }
    }
    let mut tally = tally.lock().unwrap();
    for a in compared {
        *tally.cases_per_action.entry(a).or_default() += 1;
    }
    for (o, n) in w.outcomes.borrow().iter() {
        *tally.outcomes.entry(o).or_default() += n;
    }
    Ok(())
}

/// ObjectAccess, listing every object and naming each one.
fn object_access_matches_the_reference(s: &Scenario) -> Outcome {
    let w = World::build(s)?;
    let unknown = (Kind::User, "nobody".to_owned());
    prop_assert!(
        w.engine
            .object_access(TENANT, &principal_ref(&unknown), None, 0)
            .is_err()
    );
    for p in &w.chosen {
        w.object_access(p, None)?;
        for (object, _) in &w.objects {
            w.object_access(p, Some(object))?;
        }
    }
    Ok(())
}

/// RecordAccess on every record of every object (plus unknown ids).
fn record_access_matches_the_reference(s: &Scenario) -> Outcome {
    let w = World::build(s)?;
    for p in &w.chosen {
        for (object, _) in &w.objects {
            let ids = w.batch_ids(object);
            w.record_access(p, object, &ids, BASE)?;
        }
    }
    Ok(())
}

fn cases() -> u32 {
    tenants::cases(1000)
}

/// Runs `property` on `cases()` generated scenarios; on failure, panics with
/// proptest's minimal failing case.
fn run_property(name: &str, property: impl Fn(&Scenario) -> Outcome) {
    let cases = cases();
    let started = Instant::now();
    if let Err(e) = tenants::runner(cases, 4096).run(&scenario(), |s| property(&s)) {
        panic!("{name}: {e}");
    }
    eprintln!("{name}: {cases} cases in {:.1?}", started.elapsed());
}

#[test]
fn batch_check_check_explain_and_lookup_match_the_reference_for_every_action() {
    let tally: Tally = Mutex::new(Coverage::default());
    run_property("records", |s| records_match_the_reference(s, &tally));
    let tally = tally.into_inner().unwrap();
    let cases = cases() as usize;
    eprintln!("cases in which each action was compared on a valid request:");
    for (action, n) in &tally.cases_per_action {
        eprintln!("  {action:<26} {n}");
    }
    eprintln!("outcomes compared (BatchCheck positions and record-less Checks):");
    for (o, n) in &tally.outcomes {
        eprintln!("  {o:<26} {n}");
    }
    if cases >= 500 {
        for r in ALL_REASONS {
            assert!(
                tally.outcomes.contains_key(r.as_str()),
                "the generator never produced {}",
                r.as_str()
            );
        }
        assert!(tally.outcomes.contains_key("ALLOWED"));
    }
    let tally = tally.cases_per_action;
    // The run passed, so nothing was shrunk: every case counted once, and
    // every action was compared on a valid request in each of them.
    for action in Action::ALL {
        let n = tally.get(action.as_str()).copied().unwrap_or(0);
        assert!(
            n >= cases,
            "{} compared in only {n} of {cases} cases",
            action.as_str()
        );
    }
}

#[test]
fn object_access_flags_match_the_reference() {
    run_property("object access", object_access_matches_the_reference);
}

#[test]
fn record_access_flags_match_the_reference() {
    run_property("record access", record_access_matches_the_reference);
}

// ===========================================================================
// Time: a soft bounce ends at its expiry, with one engine and its cache.
// ===========================================================================

/// Contact `id`, owned by nobody, in `state`.
fn contact(id: u128, state: ContactState) -> Record {
    Record {
        id: Uuid::from_u128(id),
        object: "contacts".to_owned(),
        owner: None,
        teams: BTreeMap::new(),
        interactions: Vec::new(),
        links: BTreeMap::new(),
        archived: false,
        contact: Some(state),
    }
}

/// A Contact every message can reach: a valid email address, opted in,
/// and a valid mobile phone.
fn deliverable() -> ContactState {
    ContactState {
        email: Some("c@example.com".to_owned()),
        email_valid: true,
        email_status: EmailStatus::OptedIn,
        suppressed: false,
        suppressed_until: None,
        opted_out_lists: Vec::new(),
        mobile_phone: Some("+15550100".to_owned()),
        mobile_valid: true,
        sms_opted_out: false,
    }
}

fn soft_bounce_tenant(until: OffsetDateTime) -> DataFile {
    let email = |email_status, suppressed, suppressed_until| ContactState {
        email_status,
        suppressed,
        suppressed_until,
        mobile_phone: None,
        ..deliverable()
    };
    DataFile {
        tenants: vec![Tenant {
            id: TENANT.to_owned(),
            email_configured: true,
            sms_configured: true,
            users: vec![User {
                id: "boss".to_owned(),
                admin: true,
                roles: Vec::new(),
                groups: Vec::new(),
            }],
            records: vec![
                // Soft bounce on an opted-in Contact.
                contact(1, email(EmailStatus::OptedIn, true, Some(until))),
                // Soft bounce written as the status itself.
                contact(2, email(EmailStatus::Suppressed, false, Some(until))),
                // Permanent suppression, for contrast.
                contact(3, email(EmailStatus::OptedIn, true, None)),
                // Soft bounce ending an hour later.
                contact(
                    4,
                    email(
                        EmailStatus::UnsubscribedAll,
                        true,
                        Some(until + Duration::hours(1)),
                    ),
                ),
            ],
            ..Tenant::default()
        }],
    }
}

#[test]
fn soft_bounce_suppression_denies_before_expiry_and_not_after_with_one_engine() {
    let until = datetime!(2030-06-01 12:00 UTC);
    let file = soft_bounce_tenant(until);
    assert!(validate(&file).errors.is_empty());
    let tenant = &file.tenants[0];
    let engine = Engine::new(Snapshot::build(&file, 1), 100);
    let boss = (Kind::User, "boss".to_owned());
    let ids: Vec<Uuid> = (1..=4).map(Uuid::from_u128).collect();
    let email = ActionContext::default();
    let change = ActionContext {
        target_email_status: Some(EmailStatus::OptedIn),
        ..ActionContext::default()
    };
    let cases = [
        (Action::BulkSendEmail, &email),
        (Action::SubscriptionLists, &change),
    ];
    let instants = [
        until - Duration::hours(1),
        until - Duration::seconds(1),
        until,
        until + Duration::minutes(30),
        until + Duration::hours(1),
        until + Duration::days(1),
    ];
    for (action, ctx) in cases {
        let q = question(&boss, "contacts", action, ctx);
        for now in instants {
            let batch = engine.batch_check(&q, &ids, now).unwrap();
            let (lookup, _) = engine.lookup(&q, now).unwrap();
            for (pos, id) in ids.iter().enumerate() {
                let want = reference::decide(
                    tenant,
                    (boss.0, &boss.1),
                    "contacts",
                    action,
                    ctx,
                    Some(*id),
                    now,
                )
                .unwrap();
                let got = batch
                    .denials
                    .iter()
                    .find(|(p, _)| *p as usize == pos)
                    .map(|(_, r)| *r);
                assert_eq!(got, want, "{} record {id} at {now}", action.as_str());
                assert_eq!(lookup.contains(id), want.is_none());
                let single = engine.check(&q, Some(*id), now).unwrap();
                assert_eq!(
                    single.reason,
                    want,
                    "Check {} {id} at {now}",
                    action.as_str()
                );
            }
        }
    }
    // Spelled out, on a fresh engine and with the clock moving forward only.
    // Record 1: opted in, soft bounce until `until`.
    let engine = Engine::new(Snapshot::build(&file, 1), 100);
    let q = question(&boss, "contacts", Action::BulkSendEmail, &email);
    let at = |now| engine.check(&q, Some(ids[0]), now).unwrap().reason;
    assert_eq!(at(until - Duration::seconds(1)), Some(Reason::Suppressed));
    assert_eq!(at(until), None);
    // Record 4 is unsubscribed underneath: once the bounce ends, marketing
    // mail is UNSUBSCRIBED and transactional mail goes through.
    let q4 = question(&boss, "contacts", Action::BulkSendEmail, &email);
    let later = until + Duration::hours(2);
    assert_eq!(
        engine.check(&q4, Some(ids[3]), later).unwrap().reason,
        Some(Reason::Unsubscribed)
    );
    let transactional = ActionContext {
        transactional: true,
        ..ActionContext::default()
    };
    let qt = question(&boss, "contacts", Action::BulkSendEmail, &transactional);
    assert_eq!(
        engine.check(&qt, Some(ids[3]), until).unwrap().reason,
        Some(Reason::Suppressed)
    );
    assert_eq!(engine.check(&qt, Some(ids[3]), later).unwrap().reason, None);
}

#[test]
fn answers_at_an_earlier_instant_do_not_depend_on_a_later_query() {
    // Asking at a later instant first must not leave a cached answer that is
    // wrong for an earlier instant: the answer is a function of `now`.
    let until = datetime!(2030-06-01 12:00 UTC);
    let file = soft_bounce_tenant(until);
    let engine = Engine::new(Snapshot::build(&file, 1), 100);
    let boss = (Kind::User, "boss".to_owned());
    let q = question(
        &boss,
        "contacts",
        Action::BulkSendEmail,
        &ActionContext::default(),
    );
    let id = Uuid::from_u128(1);
    let after = engine
        .check(&q, Some(id), until + Duration::days(2))
        .unwrap();
    assert_eq!(after.reason, None);
    let before = engine
        .check(&q, Some(id), until - Duration::hours(1))
        .unwrap();
    assert_eq!(
        before.reason,
        Some(Reason::Suppressed),
        "a soft bounce that has not ended yet must deny, whatever was asked before"
    );
}

// ===========================================================================
// ObjectAccess: what the flags promise must be able to succeed (choice 11).
// ===========================================================================

/// One user whose only group grants `view` on every contact and the
/// `send_single_message` toggle, with `fields` as the field levels.
fn messaging_tenant(fields: &[(&str, FieldLevel)]) -> DataFile {
    let perms = ObjectPermissions {
        all_records: AccessLevel::View,
        actions: vec![Toggle::SendSingleMessage],
        fields: fields.iter().map(|(f, l)| ((*f).to_owned(), *l)).collect(),
        ..ObjectPermissions::default()
    };
    DataFile {
        tenants: vec![Tenant {
            id: TENANT.to_owned(),
            email_configured: true,
            sms_configured: true,
            groups: vec![Group {
                id: "messaging".to_owned(),
                create_objects: false,
                objects: BTreeMap::from([("contacts".to_owned(), perms)]),
            }],
            users: vec![User {
                id: "ana".to_owned(),
                admin: false,
                roles: Vec::new(),
                groups: vec!["messaging".to_owned()],
            }],
            records: vec![contact(1, deliverable())],
            ..Tenant::default()
        }],
    }
}

#[test]
fn object_access_lists_send_single_message_only_when_email_or_mobile_phone_is_visible() {
    let ana = (Kind::User, "ana".to_owned());
    let listed = |fields: &[(&str, FieldLevel)]| {
        let file = messaging_tenant(fields);
        assert!(validate(&file).errors.is_empty());
        let engine = Engine::new(Snapshot::build(&file, 1), 100);
        let (flags, _, _) = engine
            .object_access(TENANT, &principal_ref(&ana), Some("contacts"), 0)
            .unwrap();
        // What Check answers for each channel on a deliverable Contact.
        let by_channel: Vec<Option<Reason>> = [Channel::Email, Channel::Text]
            .into_iter()
            .map(|channel| {
                let ctx = ActionContext {
                    channel: Some(channel),
                    ..ActionContext::default()
                };
                let q = question(&ana, "contacts", Action::SendSingleMessage, &ctx);
                engine
                    .check(&q, Some(Uuid::from_u128(1)), BASE)
                    .unwrap()
                    .reason
            })
            .collect();
        let flag = flags[0].single_actions.contains(&Action::SendSingleMessage);
        (flag, by_channel)
    };
    // Email visible: email messages succeed, so the action is listed.
    assert_eq!(
        listed(&[("email", FieldLevel::View)]),
        (true, vec![None, Some(Reason::FieldRestricted)])
    );
    // Mobile Phone visible: text messages succeed, so it is listed.
    assert_eq!(
        listed(&[("mobile_phone", FieldLevel::View)]),
        (true, vec![Some(Reason::FieldRestricted), None])
    );
    // Both hidden: every message is FIELD_RESTRICTED on every record, so
    // the flag must not promise it (table: "Email ≥ view, or Mobile Phone ≥
    // view"; choice 11: "what can succeed on some record").
    assert_eq!(
        listed(&[]),
        (
            false,
            vec![Some(Reason::FieldRestricted), Some(Reason::FieldRestricted)]
        )
    );
}
