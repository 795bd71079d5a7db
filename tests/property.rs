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
//! The generated groups keep the catalog rules of model v2 (R5, R5b, R7),
//! often at their edges; a few of them break one rule each, and then
//! `validate` must refuse the file with an error per broken rule that names
//! the tenant, the group, the object, the setting and the rule, exactly as
//! the reference's own catalog check finds them. The answers are then
//! compared on the same tenant with the breaks taken out. Two more
//! properties hold `validate` to the catalog rules one group at a time:
//! each rule broken alone is refused, and valid groups at the edges of the
//! rules are accepted (and answered as the reference answers).
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
    self, BASE, Break, CtxSpec, PermSpec, Shape, TenantSpec, build_ctx, catalog_break, ctx_spec,
    mirror, mirror_id, perm_spec, permissions, repaired, tenant_spec, yaml,
};
use permd::index::PrincipalKind;
use permd::index::engine::{Engine, PrincipalRef, Question, Snapshot};
use permd::model::data::{
    ContactState, DataFile, EmailInbox, EmailStatus, Group, Integration, ObjectDef,
    ObjectPermissions, Record, Relationship, Tenant, User, from_json_str,
};
use permd::model::validate::{Problem, Report, validate};
use permd::model::{AccessLevel, Action, ActionContext, Channel, FieldLevel, Reason, Toggle};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reference::{CatalogRule, Kind};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const TENANT: &str = "acme";
const DECOY: &str = "decoy";
/// How often a generated group's entry for an object breaks one catalog
/// rule: a file is refused in a few cases in ten.
const CATALOG_BREAKS: f64 = 0.03;

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
        tenant in tenant_spec(&shape()),
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

/// The kit's default shape (one tenant, `acme`, every feature), with a few
/// catalog breaks.
fn shape() -> Shape {
    Shape {
        catalog_breaks: CATALOG_BREAKS,
        ..Shape::default()
    }
}

/// The tenant, and its [`mirror`] (every user an admin, other record ids):
/// nothing of the mirror may leak into answers about the tenant.
fn build_file(s: &TenantSpec) -> DataFile {
    let t = tenants::build(s, &shape(), 0);
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
    /// Cases whose file as generated was refused for catalog breaks.
    refused_cases: usize,
    /// Per catalog rule, how many broken entries were refused.
    broken_rules: BTreeMap<CatalogRule, usize>,
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
    /// The catalog rules the case as generated broke (its file refused),
    /// before they were taken out.
    broken: Vec<CatalogRule>,
}

impl World {
    fn build(s: &Scenario) -> Result<World, TestCaseError> {
        // As generated: refused iff some group breaks a catalog rule, with
        // one error per broken rule.
        let file = build_file(&s.tenant);
        let report = validate(&file);
        let broken = catalog_refusal_matches_the_reference(&file, &report)?;
        // Then answered without the breaks.
        let file = if broken.is_empty() {
            file
        } else {
            build_file(&repaired(&s.tenant))
        };
        let mut later: Vec<OffsetDateTime> = s.later.iter().map(|q| quarter_hours(*q)).collect();
        later.sort();
        later.dedup();
        let mut w = World::over(file, &s.principals, later)?;
        w.broken = broken;
        Ok(w)
    }

    /// A world over a file that must be valid, asking as the principals
    /// `picks` choose (each an index into every principal of the first
    /// tenant, modulo their number).
    fn over(
        file: DataFile,
        picks: &[u16],
        later: Vec<OffsetDateTime>,
    ) -> Result<World, TestCaseError> {
        let report = validate(&file);
        prop_assert!(
            report.errors.is_empty(),
            "generator produced an invalid file: {:?}\n{}",
            report.errors,
            yaml(&file)
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
        for v in picks {
            let p = everyone[*v as usize % everyone.len()].clone();
            if !chosen.contains(&p) {
                chosen.push(p);
            }
        }
        Ok(World {
            file,
            engine,
            objects,
            ids_of,
            chosen,
            later,
            outcomes: Default::default(),
            broken: Vec::new(),
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

        // The same batch by the handles it gave: the same answer, bit for bit.
        let by_handles = self
            .engine
            .batch_check_handles(&q, &batch.handles, now)
            .map_err(|e| TestCaseError::fail(format!("handles refused: {e}")))?;
        prop_assert_eq!(&by_handles.allowed, &batch.allowed, "BatchCheck by handles");
        prop_assert_eq!(&by_handles.denials, &batch.denials, "BatchCheck by handles");

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
            // A denied Check shows no field (choice 2).
            let want_mask = if expected[pos].is_none() {
                mask.clone()
            } else {
                Vec::new()
            };
            prop_assert_eq!(
                sorted(&d.field_mask),
                sorted(&want_mask),
                "Check field mask\n{}",
                self.describe(p, object, action, ctx, now)
            );
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
        let mask = reference::check_mask(t, who, object, expected).unwrap();
        prop_assert_eq!(
            sorted(&got.field_mask),
            sorted(&mask),
            "Check mask (no record)\n{}",
            self.describe(p, object, action, ctx, now)
        );
        self.explain(p, object, action, ctx, None, expected, now)?;
        Ok(true)
    }

    /// Every action of `Action::ALL`, two contexts each (from `specs`, three
    /// of them), for every chosen principal and every object: BatchCheck,
    /// Check, Explain, LookupRecords. The actions compared on a valid
    /// request.
    fn every_action(&self, specs: &[CtxSpec]) -> Result<BTreeSet<&'static str>, TestCaseError> {
        let w = self;
        let n = specs.len();
        let mut compared: BTreeSet<&'static str> = BTreeSet::new();
        for p in &w.chosen {
            for (object, fields) in &w.objects {
                let ids = w.batch_ids(object);
                for (ai, action) in Action::ALL.into_iter().enumerate() {
                    // The first context is always made valid; the second may be
                    // left invalid, and then the engine must refuse it.
                    let first = build_ctx(&specs[ai % n], action, fields, false);
                    let spec = &specs[(ai + 1) % n];
                    let second = build_ctx(spec, action, fields, spec.raw);
                    let mut ctxs = vec![first];
                    if !ctxs.contains(&second) {
                        ctxs.push(second);
                    }
                    for (k, ctx) in ctxs.iter().enumerate() {
                        let valid = if reference::record_less(action) {
                            w.record_less_action(p, object, action, ctx, BASE)?
                        } else {
                            let valid =
                                w.record_action(p, object, action, ctx, &ids, BASE, k == 0)?;
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
        Ok(compared)
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
            let g_flags = (g.record_id, g.view, g.edit, g.remove, g.unarchive);
            let w_flags = (w.record_id, w.view, w.edit, w.remove, w.unarchive);
            prop_assert_eq!(
                g_flags,
                w_flags,
                "RecordAccess (id, view, edit, remove, unarchive)\n{}",
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
                (
                    g.view,
                    g.edit,
                    g.remove,
                    g.create_record,
                    g.bulk_data_upload,
                    g.unarchive
                ),
                (
                    w.view,
                    w.edit,
                    w.remove,
                    w.create_record,
                    w.bulk_data_upload,
                    w.unarchive
                ),
                "{}: (view, edit, remove, create_record, bulk_data_upload, unarchive)\n{}",
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
    // `view_archived` is retired (R10, choice 18): refused, saying so.
    for p in &w.chosen {
        let q = Question {
            action: "view_archived".to_owned(),
            ..question(p, "contacts", Action::View, &ActionContext::default())
        };
        let ids = w.batch_ids("contacts");
        for refused in [
            w.engine.check(&q, ids.first().copied(), BASE).err(),
            w.engine.batch_check(&q, &ids, BASE).err(),
            w.engine.lookup(&q, BASE).err(),
        ] {
            prop_assert!(
                refused
                    .as_ref()
                    .is_some_and(|e| e.to_string().contains("retired")),
                "view_archived answered, or refused without saying it is retired: {:?}",
                refused
            );
        }
    }

    let compared = w.every_action(&s.ctxs)?;
    let mut tally = tally.lock().unwrap();
    for a in compared {
        *tally.cases_per_action.entry(a).or_default() += 1;
    }
    if !w.broken.is_empty() {
        tally.refused_cases += 1;
    }
    for rule in &w.broken {
        *tally.broken_rules.entry(*rule).or_default() += 1;
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
    eprintln!(
        "cases refused for catalog breaks (then compared without them): {}",
        tally.refused_cases
    );
    eprintln!("broken rules refused (each in the tenant and in its mirror):");
    for (rule, n) in &tally.broken_rules {
        eprintln!("  {rule:?} ({}) {n}", rule.rule());
    }
    if cases >= 500 {
        for rule in CatalogRule::ALL {
            assert!(
                tally.broken_rules.contains_key(&rule),
                "the generator never broke {rule:?}"
            );
        }
        for r in Reason::ALL {
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
        teams: Default::default(),
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
                ..User::default()
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
// ObjectAccess: what the flags promise must be able to succeed (choice 8).
// ===========================================================================

/// One user whose only group grants `view` on every contact and the
/// `send_single_message` toggle, with `fields` as the field levels.
fn messaging_tenant(fields: &[(&str, FieldLevel)]) -> DataFile {
    let perms = ObjectPermissions {
        all_records: AccessLevel::View,
        associated_records: AccessLevel::View,
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
                groups: vec!["messaging".to_owned()],
                ..User::default()
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
    // view"; choice 8: "what can succeed on some record").
    assert_eq!(
        listed(&[]),
        (
            false,
            vec![Some(Reason::FieldRestricted), Some(Reason::FieldRestricted)]
        )
    );
}

// ===========================================================================
// The catalog rules (R5, R5b, R7): `validate` refuses a group that breaks
// one, with an error naming the tenant, the group, the object, the setting
// and the rule, and accepts groups at the edges of the rules.
// ===========================================================================

/// Whether `message` names rule `id` (`R5` is not named by `R5b`).
fn names_rule(message: &str, id: &str) -> bool {
    message.match_indices(id).any(|(i, _)| {
        message[i + id.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_ascii_alphanumeric())
    })
}

/// Whether `e` is the refusal of `b`, a broken rule of tenant `ti`: at the
/// group's entry for the object, naming tenant, group, object, setting and
/// rule.
fn refuses(e: &Problem, file: &DataFile, ti: usize, b: &reference::CatalogBreak) -> bool {
    let t = &file.tenants[ti];
    let Some(gi) = t.groups.iter().position(|g| g.id == b.group) else {
        return false;
    };
    let entry = format!("tenants[{ti}].groups[{gi}].objects.{}", b.object);
    let m = &e.message;
    (e.path == entry || e.path.starts_with(&format!("{entry}.")))
        && m.contains(&format!("tenant '{}'", t.id))
        && m.contains(&format!("group '{}'", b.group))
        && m.contains(&format!("object '{}'", b.object))
        && m.contains(b.rule.control())
        && names_rule(m, b.rule.rule())
}

/// `validate` refuses `file` with exactly one error per catalog rule the
/// reference finds broken (every tenant, the decoy included), each naming
/// it. Returns the rules broken.
fn catalog_refusal_matches_the_reference(
    file: &DataFile,
    report: &Report,
) -> Result<Vec<CatalogRule>, TestCaseError> {
    let mut want = Vec::new();
    for (ti, t) in file.tenants.iter().enumerate() {
        for b in reference::catalog_breaks(t) {
            want.push((ti, b));
        }
    }
    prop_assert_eq!(
        report.errors.len(),
        want.len(),
        "validate's errors {:?}\nvs the catalog rules the reference finds broken {:?}\n{}",
        &report.errors,
        &want,
        yaml(file)
    );
    for (ti, b) in &want {
        prop_assert!(
            report.errors.iter().any(|e| refuses(e, file, *ti, b)),
            "no error names tenant, group, object, setting and rule of {:?} (tenant {}): {:?}",
            b,
            ti,
            &report.errors
        );
    }
    for e in &report.errors {
        prop_assert!(
            want.iter().any(|(ti, b)| refuses(e, file, *ti, b)),
            "an error for no broken catalog rule: {}",
            e
        );
    }
    Ok(want.into_iter().map(|(_, b)| b.rule).collect())
}

/// One group's entry for one object, at the edges of the catalog rules or
/// breaking one, in a small tenant that exercises what it gives.
#[derive(Clone, Debug)]
struct EdgeCase {
    perms: PermSpec,
    /// On `contacts`, or on the custom object `deals`.
    contacts: bool,
    /// The rule broken (`Break::on` the object) when a rule is broken.
    broken: Break,
    /// `associated_records` left out of the data rather than `none`.
    missing: bool,
    /// The sender's inbox: the group's user's.
    inbox: EmailInbox,
    /// A second group of the user, on the other object (valid).
    other: PermSpec,
    ctxs: Vec<CtxSpec>,
}

prop_compose! {
    fn edge_case()(
        perms in perm_spec(0.0),
        contacts in any::<bool>(),
        broken in catalog_break(),
        missing in any::<bool>(),
        inbox in tenants::email_inbox([1, 1, 1]),
        other in perm_spec(0.0),
        ctxs in vec(ctx_spec(), 3),
    ) -> EdgeCase {
        EdgeCase { perms, contacts, broken, missing, inbox, other, ctxs }
    }
}

const EDGE_GROUP: &str = "edge-group";

/// The tenant of an edge case: user `ana` holds the edge group (broken by
/// `breaks`, if any) and a valid group on the other object; `key` is her
/// integration, `drip` an automation running as it; `bob` holds nothing.
/// Each object has records ana is associated with (directly or through a
/// link) and records she is not, live and archived.
fn edge_tenant(c: &EdgeCase, breaks: Option<Break>) -> Tenant {
    let contacts = ObjectDef {
        name: "contacts".to_owned(),
        team_fields: vec!["sales_team".to_owned()],
        ..ObjectDef::default()
    };
    let deals = ObjectDef {
        name: "deals".to_owned(),
        fields: vec!["stage".to_owned()],
        team_fields: vec!["team".to_owned()],
        relationships: vec![Relationship {
            field: "contact".to_owned(),
            object: "contacts".to_owned(),
        }],
        association_source: permd::model::data::AssociationSource::Both,
    };
    let (mine, theirs) = if c.contacts {
        (&contacts, &deals)
    } else {
        (&deals, &contacts)
    };
    let edge = PermSpec {
        breaks,
        ..c.perms.clone()
    };
    let other = PermSpec {
        breaks: None,
        ..c.other.clone()
    };
    let group = |id: &str, def: &ObjectDef, p: &PermSpec| Group {
        id: id.to_owned(),
        create_objects: false,
        objects: BTreeMap::from([(def.name.clone(), permissions(p, def))]),
    };
    let record = |id: u128, object: &str, archived: bool| Record {
        id: Uuid::from_u128(id),
        object: object.to_owned(),
        owner: None,
        teams: Default::default(),
        interactions: Vec::new(),
        links: BTreeMap::new(),
        archived,
        contact: None,
    };
    let with_ana = |mut r: Record| {
        if r.object == "contacts" {
            r.teams.add_member("sales_team", "ana".to_owned());
            r.contact = Some(deliverable());
        } else {
            r.owner = Some("ana".to_owned());
        }
        r
    };
    let linked = |mut r: Record, to: u128| {
        r.links
            .insert("contact".to_owned(), vec![Uuid::from_u128(to)]);
        r
    };
    let mut records = vec![
        // Contacts: ana's, live and archived; nobody's, live and archived.
        with_ana(record(1, "contacts", false)),
        with_ana(record(2, "contacts", true)),
        Record {
            contact: Some(deliverable()),
            ..record(3, "contacts", false)
        },
        record(4, "contacts", true),
        // Deals: ana's; nobody's but linked to ana's Contact; nobody's.
        with_ana(record(11, "deals", false)),
        with_ana(record(12, "deals", true)),
        linked(record(13, "deals", false), 1),
        linked(record(14, "deals", true), 1),
        record(15, "deals", false),
        record(16, "deals", true),
    ];
    // A Contact associated only through a deal ana owns (contacts are
    // `direct`: this one is not hers).
    records.push(Record {
        contact: Some(deliverable()),
        ..record(5, "contacts", false)
    });
    records.push(linked(with_ana(record(17, "deals", false)), 5));
    Tenant {
        id: TENANT.to_owned(),
        email_configured: true,
        sms_configured: true,
        objects: vec![contacts.clone(), deals.clone()],
        groups: vec![
            group(EDGE_GROUP, mine, &edge),
            group("other", theirs, &other),
        ],
        users: vec![
            User {
                id: "ana".to_owned(),
                groups: vec![EDGE_GROUP.to_owned(), "other".to_owned()],
                email_inbox: c.inbox,
                ..User::default()
            },
            User {
                id: "bob".to_owned(),
                service_account: true,
                ..User::default()
            },
        ],
        integrations: vec![Integration {
            id: "key".to_owned(),
            user: Some("ana".to_owned()),
            groups: None,
        }],
        automations: vec![permd::model::data::Automation {
            id: "drip".to_owned(),
            run_as: permd::model::data::RunAs::Integration("key".to_owned()),
        }],
        records,
        ..Tenant::default()
    }
}

fn rule_of(b: Break) -> CatalogRule {
    match b {
        Break::AssociatedNone => CatalogRule::AssociatedNone,
        Break::AssociatedBelowAll => CatalogRule::AssociatedBelowAll,
        Break::CreateWithoutEdit => CatalogRule::CreateWithoutEdit,
        Break::UploadWithoutCreate => CatalogRule::UploadWithoutCreate,
        Break::UnarchiveAllWithoutAssociated => CatalogRule::UnarchiveAllWithoutAssociated,
        Break::EmailForScope => CatalogRule::EmailForScope,
        Break::CreatedEdit => CatalogRule::CreatedEdit,
    }
}

/// The file of `t` with `associated_records` left out of the edge group's
/// entry, read back as a data file is read.
fn without_associated_records(t: &Tenant, object: &str) -> DataFile {
    let mut json = serde_json::to_value(DataFile {
        tenants: vec![t.clone()],
    })
    .unwrap();
    let entry = &mut json["tenants"][0]["groups"][0]["objects"][object];
    let removed = entry
        .as_object_mut()
        .and_then(|e| e.remove("associated_records"));
    assert!(removed.is_some(), "no associated_records in {entry}");
    from_json_str(&json.to_string()).unwrap()
}

/// Per rule broken (and how: `associated_records` missing, or which
/// level of `email` under which scope), how many cases were refused.
type RefusedTally = Mutex<BTreeMap<String, usize>>;

/// How `rule` was broken, for the tally.
fn how_broken(rule: CatalogRule, missing: bool, object: &str, p: &ObjectPermissions) -> String {
    let mut how = format!("{rule:?} ({})", rule.rule());
    if missing {
        how.push_str(", associated_records missing");
    }
    if rule == CatalogRule::EmailForScope {
        let scope = if p.all_records.max(p.associated_records) >= AccessLevel::Edit {
            "scope ≥ edit"
        } else {
            "scope view"
        };
        let level = p.fields.get("email").map_or("?", |l| l.as_str());
        how.push_str(&format!(", email {level} on {object} with {scope}"));
    }
    how
}

/// A group breaking one catalog rule, every other setting valid: refused
/// by `validate` with one error naming the tenant, the group, the object,
/// the setting and the rule; the reference's catalog check finds the same
/// rule; and the same group written through Admin.Write is refused too.
fn a_group_breaking_one_rule_is_refused(c: &EdgeCase, tally: &RefusedTally) -> Outcome {
    let object = if c.contacts { "contacts" } else { "deals" };
    let rule = rule_of(c.broken.on(object));
    let t = edge_tenant(c, Some(c.broken));
    let found: Vec<CatalogRule> = reference::catalog_breaks(&t)
        .into_iter()
        .map(|b| b.rule)
        .collect();
    prop_assert_eq!(&found, &vec![rule], "the reference's catalog check");
    let missing = c.missing && rule == CatalogRule::AssociatedNone;
    let file = if missing {
        without_associated_records(&t, object)
    } else {
        DataFile {
            tenants: vec![t.clone()],
        }
    };
    let report = validate(&file);
    let broken = catalog_refusal_matches_the_reference(&file, &report)?;
    prop_assert_eq!(broken, vec![rule]);

    // Admin.Write: the same group upserted into a tenant that keeps the
    // rules is refused, and the engine keeps answering as before.
    let valid = DataFile {
        tenants: vec![edge_tenant(c, None)],
    };
    let engine = Engine::new(Snapshot::build(&valid, 1), 100);
    let group = file.tenants[0].groups[0].clone();
    let change =
        permd::model::change::Change::upsert(TENANT, permd::model::change::Entity::Group(group));
    match engine.apply(&[change]) {
        Ok(revision) => {
            return Err(TestCaseError::fail(format!(
                "Admin.Write accepted a group breaking {rule:?} (revision {revision})\n{}",
                yaml(&file)
            )));
        }
        Err(e) => {
            let m = e.to_string();
            prop_assert!(
                m.contains(TENANT)
                    && m.contains(EDGE_GROUP)
                    && m.contains(object)
                    && m.contains(rule.control())
                    && names_rule(&m, rule.rule()),
                "Admin.Write's refusal does not name tenant, group, object, setting and rule of {:?}: {}",
                rule,
                m
            );
        }
    }
    let how = how_broken(rule, missing, object, &t.groups[0].objects[object]);
    *tally.lock().unwrap().entry(how).or_default() += 1;
    Ok(())
}

/// What edges of the catalog rules the valid edge groups reached.
type EdgeTally = Mutex<BTreeMap<String, usize>>;

fn edges_of(object: &str, p: &ObjectPermissions) -> Vec<String> {
    let mut out = Vec::new();
    let mut edge = |on: bool, name: String| {
        if on {
            out.push(name);
        }
    };
    edge(
        p.associated_records == p.all_records,
        format!("associated = all = {}", p.all_records.as_str()),
    );
    edge(
        p.associated_records > p.all_records,
        "associated > all".to_owned(),
    );
    edge(
        p.create_record && p.associated_records == AccessLevel::Edit,
        "create_record with associated = edit".to_owned(),
    );
    edge(
        p.bulk_data_upload,
        "bulk_data_upload (with create_record)".to_owned(),
    );
    edge(
        p.unarchive_associated && !p.unarchive_all,
        "unarchive_associated without unarchive_all".to_owned(),
    );
    edge(
        p.unarchive_all,
        "unarchive_all (with unarchive_associated)".to_owned(),
    );
    edge(
        true,
        format!(
            "default_for_new_field = {}",
            p.default_for_new_field.as_str()
        ),
    );
    let rule_field = if object == "contacts" {
        "email"
    } else {
        "created"
    };
    let scope = if p.all_records.max(p.associated_records) >= AccessLevel::Edit {
        "scope ≥ edit"
    } else {
        "scope view"
    };
    edge(
        true,
        match p.fields.get(rule_field) {
            Some(l) => format!("{object}: {rule_field} stated {}, {scope}", l.as_str()),
            None => format!("{object}: {rule_field} unstated, {scope}"),
        },
    );
    out
}

/// A valid group, often at the edges of the catalog rules: accepted by
/// `validate`, and every answer about it (every action, Check, Explain,
/// LookupRecords, RecordAccess, ObjectAccess), for its user, the user's
/// integration and an automation running as that, equal to the
/// reference's.
fn a_valid_edge_group_is_accepted(c: &EdgeCase, tally: &EdgeTally) -> Outcome {
    let t = edge_tenant(c, None);
    let object = if c.contacts { "contacts" } else { "deals" };
    prop_assert!(reference::catalog_breaks(&t).is_empty());
    let perms = t.groups[0].objects[object].clone();
    let file = DataFile { tenants: vec![t] };
    // ana, key, drip (users first, then integrations, then automations).
    let w = World::over(file, &[0, 2, 3], vec![BASE + Duration::hours(4)])?;
    prop_assert_eq!(
        w.chosen.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![Kind::User, Kind::Integration, Kind::Automation]
    );
    w.every_action(&c.ctxs)?;
    for p in &w.chosen {
        w.object_access(p, None)?;
        for (object, _) in &w.objects {
            w.object_access(p, Some(object))?;
            w.record_access(p, object, &w.batch_ids(object), BASE)?;
        }
    }
    let mut tally = tally.lock().unwrap();
    for e in edges_of(object, &perms) {
        *tally.entry(e).or_default() += 1;
    }
    Ok(())
}

fn run_edge_property(name: &str, property: impl Fn(&EdgeCase) -> Outcome) {
    let cases = cases();
    let started = Instant::now();
    if let Err(e) = tenants::runner(cases, 4096).run(&edge_case(), |c| property(&c)) {
        panic!("{name}: {e}");
    }
    eprintln!("{name}: {cases} cases in {:.1?}", started.elapsed());
}

#[test]
fn groups_breaking_a_catalog_rule_are_refused_naming_tenant_group_object_and_rule() {
    let tally: RefusedTally = Mutex::new(BTreeMap::new());
    run_edge_property("catalog refusals", |c| {
        a_group_breaking_one_rule_is_refused(c, &tally)
    });
    let tally = tally.into_inner().unwrap();
    eprintln!("refused, per rule broken:");
    for (how, n) in &tally {
        eprintln!("  {how:<60} {n}");
    }
    if cases() >= 500 {
        // EmailForScope is counted by how (below).
        let mut want: Vec<String> = CatalogRule::ALL
            .into_iter()
            .filter(|rule| *rule != CatalogRule::EmailForScope)
            .map(|rule| format!("{rule:?} ({})", rule.rule()))
            .collect();
        want.push("AssociatedNone (R5), associated_records missing".to_owned());
        for wrong in [
            "none on contacts with scope ≥ edit",
            "view on contacts with scope ≥ edit",
            "edit on contacts with scope view",
        ] {
            want.push(format!("EmailForScope (R7), email {wrong}"));
        }
        for how in want {
            assert!(tally.contains_key(&how), "never refused '{how}'");
        }
    }
}

#[test]
fn valid_groups_at_the_edges_of_the_catalog_rules_are_accepted() {
    let tally: EdgeTally = Mutex::new(BTreeMap::new());
    run_edge_property("catalog edges", |c| {
        a_valid_edge_group_is_accepted(c, &tally)
    });
    let tally = tally.into_inner().unwrap();
    eprintln!("edges reached (cases):");
    for (edge, n) in &tally {
        eprintln!("  {edge:<55} {n}");
    }
    if cases() >= 500 {
        let mut want: Vec<String> = vec![
            "associated > all".to_owned(),
            "create_record with associated = edit".to_owned(),
            "bulk_data_upload (with create_record)".to_owned(),
            "unarchive_associated without unarchive_all".to_owned(),
            "unarchive_all (with unarchive_associated)".to_owned(),
        ];
        for level in [AccessLevel::View, AccessLevel::Edit, AccessLevel::Remove] {
            want.push(format!("associated = all = {}", level.as_str()));
        }
        for level in FieldLevel::ALL {
            want.push(format!("default_for_new_field = {}", level.as_str()));
        }
        for scope in ["scope ≥ edit", "scope view"] {
            want.push(format!("contacts: email unstated, {scope}"));
            want.push(format!("deals: created unstated, {scope}"));
            want.push(format!("deals: created stated none, {scope}"));
            want.push(format!("deals: created stated view, {scope}"));
        }
        want.push("contacts: email stated edit, scope ≥ edit".to_owned());
        want.push("contacts: email stated none, scope view".to_owned());
        want.push("contacts: email stated view, scope view".to_owned());
        for edge in want {
            assert!(tally.contains_key(&edge), "never reached the edge '{edge}'");
        }
    }
}
