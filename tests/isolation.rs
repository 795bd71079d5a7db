//! Tenant isolation: nothing of one tenant may decide, count or show up in
//! an answer about another ("Entities": nothing ever crosses tenants).
//!
//! The property: generated data files hold 2–3 tenants that deliberately
//! share user, group, role, integration and automation ids, object and
//! field names, and record UUIDs — the same UUID a Contact in one tenant
//! and a deal (or an archived Contact with another owner and other state)
//! in the next; records name users that exist only in another tenant and
//! link to records that exist only in another tenant. For every tenant T,
//! every answer of one engine over the whole file must equal the answer of
//! an engine built from a file holding **only T** (the strongest oracle: if
//! T's answers do not change when every other tenant is deleted, nothing of
//! them got in), through every entry point: BatchCheck, Check (with and
//! without a record), LookupRecords, ObjectAccess, RecordAccess and Explain,
//! errors included. Each case asks three principal ids (drawn from every
//! tenant's, plus one nobody has) about every object name (likewise) and
//! `view` plus up to eight generated actions, each with a generated context
//! (sometimes invalid, then the refusal must be equal too); Check and
//! Explain go record by record for every third action. Questions are
//! interleaved across tenants so the shared compiled-answer cache sees the
//! same principal, object, action and context for every tenant in turn.
//! Then a record change is applied to one tenant (after a change naming
//! another tenant's record, which must be refused) and every tenant is
//! compared again.
//!
//! Independently of the oracle: an id that is not a record of T's object is
//! always UNKNOWN_RECORD, LookupRecords returns only T's records, and no
//! Explain text, group list or error message about T names a user, group,
//! role, principal, object, field, record id or tenant that only other
//! tenants have (unless the request itself named it).
//!
//! A second part runs a fixed two-tenant file over real gRPC on loopback:
//! three servers (both tenants, each alone) must give identical responses
//! for BatchCheck, LookupRecords (streamed), Explain, Check, ObjectAccess
//! and RecordAccess; an unknown tenant is NOT_FOUND naming it.
//!
//! `PROPTEST_CASES` sets the number of generated cases (default 256).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use common::requests::{
    AnyRequest, EVERY_RPC, batch, batch_packed, check, explain_of, lookup, object_access,
    principal, question, record_access, strings,
};
use common::server::{TestServer, bounded_by};
use common::tenants::{
    self, ContactSpec, CtxSpec, Foreign, Links, Name, Pool, RecordIds, Shape, TenantSpec,
    build_ctx, build_file, contact_spec, contact_state, ctx_spec, fixed, own_id, principals,
    shared_id, tenant_spec, yaml,
};
use permd::index::explain::Explanation;
use permd::index::{
    ApplyError, BatchAnswer, Engine, PrincipalKind, PrincipalRef, QueryError, Question,
    RecordHandles, Snapshot,
};
use permd::model::change::{Change, Entity};
use permd::model::data::{DataFile, Tenant};
use permd::model::validate::{object_fields, validate};
use permd::model::{Action, ActionContext, Reason};
use permd::pb::{self, authorizer_client::AuthorizerClient};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use time::OffsetDateTime;
use time::macros::datetime;
use tonic::transport::Channel as GrpcChannel;
use tonic::{Code, Status};
use uuid::Uuid;

// ===========================================================================
// The generated file: 2–3 tenants drawing names and record UUIDs from pools
// they share, plus one name of each kind that only the tenant has.
// ===========================================================================

const TENANTS: [&str; 3] = ["t-alpha", "t-beta", "t-gamma"];
const SHARED_USERS: [&str; 4] = ["user-ann", "user-bob", "user-cat", "user-dan"];
/// Plain fields objects may declare, besides the tenant's own.
const SHARED_FIELDS: [&str; 4] = ["first_name", "stage", "priority", "region"];
/// The team field and relationship field names; every tenant uses the same.
const TEAM_FIELD: &str = "team";
const LINK_FIELD: &str = "link";
const N_SHARED_IDS: usize = 6;
const N_OWN_IDS: usize = 3;
/// The instant every question is asked at.
const NOW: OffsetDateTime = datetime!(2030-01-01 00:00 UTC);

/// The generator's knobs for this file. Every kind of name comes from a
/// pool the tenants share plus the tenant's own (`<kind>-only-<tenant>`);
/// object slots are contacts (always), two shared custom objects and one
/// of the tenant's own; record ids are mostly shared UUIDs. A record names
/// users of the shared pool, the tenant's own, or the next tenant's own
/// (which never exists in this tenant: a dangling reference that must
/// associate nobody), and links to any UUID of any tenant.
fn shape() -> Shape {
    let drawn = |shared: &[&str], own: &'static str, count| {
        let mut names = fixed(shared);
        names.push(Name::Own(own));
        Pool::drawn(names, count)
    };
    let mut fields = fixed(&SHARED_FIELDS);
    fields.push(Name::Own("field"));
    let mut objects = fixed(&["contacts", "deals", "tickets"]);
    objects.push(Name::Own("obj"));
    let mut strangers = fixed(&SHARED_USERS);
    strangers.extend([Name::Own("user"), Name::NextOwn("user")]);
    Shape {
        tenants: TENANTS.map(str::to_owned).to_vec(),
        objects,
        object_present: 0.5,
        // Every tenant lists contacts, so no tenant's Contact fields are
        // names only other tenants have.
        contacts_listed: 1.0,
        fields,
        team_fields: fixed(&[TEAM_FIELD]),
        relationship_fields: fixed(&[LINK_FIELD]),
        groups: drawn(&["group-sales", "group-ops", "group-mkt"], "group", 1..=4),
        roles: drawn(&["role-rep", "role-lead"], "role", 0..=2),
        users: drawn(&SHARED_USERS, "user", 1..=5),
        integrations: drawn(&["key-sync"], "key", 0..=2),
        automations: drawn(&["auto-drip"], "auto", 0..=2),
        admin: 0.15,
        records: 0..=14,
        record_ids: RecordIds::Drawn {
            shared: N_SHARED_IDS,
            own: N_OWN_IDS,
        },
        strangers,
        // A third of the names on records are strangers'.
        stranger_share: 86,
        links: Links {
            dangling_below: 0,
            foreign_below: 0x8000,
            foreign: Foreign::AnyId,
        },
        archived: 0.2,
        ..Shape::default()
    }
}

#[derive(Clone, Debug)]
struct ChangeSpec {
    tenant: u8,
    record: u8,
    archive: bool,
    contact: ContactSpec,
}

#[derive(Clone, Debug)]
struct Scenario {
    tenants: Vec<TenantSpec>,
    principals: Vec<u8>,
    /// Indexes into `Action::ALL` of the actions asked (besides `view`).
    actions: Vec<u8>,
    ctxs: Vec<CtxSpec>,
    /// Which tenant is asked first for each question.
    rotate: u8,
    change: ChangeSpec,
}

prop_compose! {
    fn change_spec()(
        tenant in any::<u8>(),
        record in any::<u8>(),
        archive in any::<bool>(),
        contact in contact_spec(shape().contact),
    ) -> ChangeSpec {
        ChangeSpec { tenant, record, archive, contact }
    }
}

prop_compose! {
    fn scenario()(
        tenants in vec(tenant_spec(&shape()), 2..=3),
        principals in vec(any::<u8>(), 3),
        actions in vec(any::<u8>(), 8),
        ctxs in vec(ctx_spec(), 3),
        rotate in any::<u8>(),
        change in change_spec(),
    ) -> Scenario {
        Scenario { tenants, principals, actions, ctxs, rotate, change }
    }
}

/// Every UUID any tenant may hold: shared ones first, then each tenant's own.
fn universe() -> Vec<Uuid> {
    shape().universe()
}

// ===========================================================================
// What a tenant has, and what only others have
// ===========================================================================

/// Every name and id of a tenant that could show up in a text.
fn tokens(t: &Tenant) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    out.insert(t.id.clone());
    out.extend(t.users.iter().map(|u| u.id.clone()));
    out.extend(t.groups.iter().map(|g| g.id.clone()));
    out.extend(t.roles.iter().map(|r| r.id.clone()));
    out.extend(t.integrations.iter().map(|i| i.id.clone()));
    out.extend(t.automations.iter().map(|a| a.id.clone()));
    out.insert("contacts".to_owned());
    for o in &t.objects {
        out.insert(o.name.clone());
        out.extend(object_fields(o));
    }
    out.extend(t.records.iter().map(|r| r.id.to_string()));
    // Users named only on records (owner, team, interaction) are not the
    // tenant's: a name there that only another tenant has stays foreign.
    // Generic words that also occur in Explain's fixed texts.
    out.remove(TEAM_FIELD);
    out.remove(LINK_FIELD);
    out
}

/// What appears in no way in tenant `t` but does in another tenant.
fn foreign_tokens(file: &DataFile, t: usize) -> BTreeSet<String> {
    let mine = tokens(&file.tenants[t]);
    file.tenants
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != t)
        .flat_map(|(_, other)| tokens(other))
        .filter(|tok| !mine.contains(tok))
        .collect()
}

/// Every principal any tenant has, plus one nobody has.
fn all_principals(file: &DataFile) -> Vec<PrincipalRef> {
    let mut out: BTreeSet<(PrincipalKind, String)> = BTreeSet::new();
    for t in &file.tenants {
        out.extend(principals(t).into_iter().map(|p| (p.kind, p.id)));
    }
    out.insert((PrincipalKind::User, "user-nobody".to_owned()));
    out.into_iter()
        .map(|(kind, id)| PrincipalRef { kind, id })
        .collect()
}

/// Every object name any tenant has, plus one nobody has.
fn all_objects(file: &DataFile) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    out.insert("contacts".to_owned());
    for t in &file.tenants {
        out.extend(t.objects.iter().map(|o| o.name.clone()));
    }
    out.insert("obj-nowhere".to_owned());
    out.into_iter().collect()
}

/// Every field name any tenant has on any object, plus one nobody has. The
/// shared custom fields come first: the first is what a generated
/// `bulk_change_field_values` context names when it names none, a field
/// some tenants' objects have and others' lack.
fn all_fields(file: &DataFile) -> Vec<String> {
    let mut rest: BTreeSet<String> = ["email", "email_status", "tags", "mobile_phone"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    for t in &file.tenants {
        for o in &t.objects {
            rest.extend(object_fields(o));
        }
    }
    rest.insert("field-nowhere".to_owned());
    let mut out: Vec<String> = SHARED_FIELDS.map(str::to_owned).to_vec();
    out.extend(
        rest.into_iter()
            .filter(|f| !SHARED_FIELDS.contains(&f.as_str())),
    );
    out
}

// ===========================================================================
// Comparing the engine over every tenant with each tenant alone
// ===========================================================================

type Outcome = Result<(), TestCaseError>;

/// What a run covered.
#[derive(Default)]
struct Coverage {
    /// Answers compared, per entry point.
    compared: BTreeMap<&'static str, usize>,
    /// BatchCheck positions allowed, and denied, in the tenant asked.
    allowed: usize,
    denied: usize,
    /// A shared UUID answered differently in two tenants for the same
    /// principal id, object name, action and context: the cases where a
    /// leak would show.
    shared_id_differs: usize,
}

struct World {
    file: DataFile,
    /// Over every tenant.
    all: Engine,
    /// One per tenant, over that tenant alone.
    alone: Vec<Engine>,
    foreign: Vec<BTreeSet<String>>,
    /// Per tenant, per object name: its record ids.
    records_of: Vec<BTreeMap<String, BTreeSet<Uuid>>>,
    principals: Vec<PrincipalRef>,
    objects: Vec<String>,
    fields: Vec<String>,
    /// Every id asked about, in every tenant: every UUID of every tenant,
    /// an id nobody has, and repeats.
    batch: Vec<Uuid>,
    /// The ids Check and Explain are asked about one by one: the shared
    /// ids, the first own id of each tenant, and the id nobody has.
    probes: Vec<Uuid>,
}

fn engine(file: &DataFile, revision: u64) -> Engine {
    Engine::new(Snapshot::build(file, revision), 10_000)
}

impl World {
    fn build(s: &Scenario) -> Result<World, TestCaseError> {
        let n = s.tenants.len();
        let file = build_file(&s.tenants, &shape());
        let report = validate(&file);
        prop_assert!(
            report.errors.is_empty(),
            "generator produced an invalid file: {:?}\n{}",
            report.errors,
            yaml(&file)
        );
        let alone = file
            .tenants
            .iter()
            .map(|t| {
                engine(
                    &DataFile {
                        tenants: vec![t.clone()],
                    },
                    1,
                )
            })
            .collect();
        let records_of = file
            .tenants
            .iter()
            .map(|t| {
                let mut m: BTreeMap<String, BTreeSet<Uuid>> = BTreeMap::new();
                for r in &t.records {
                    m.entry(r.object.clone()).or_default().insert(r.id);
                }
                m
            })
            .collect();
        let mut batch = universe();
        batch.push(Uuid::from_u128(0xffff_0000_0000_4000_8000_0000_0000_0001));
        batch.extend_from_slice(&universe()[..3]);
        let mut probes: Vec<Uuid> = (0..N_SHARED_IDS).map(shared_id).collect();
        probes.extend((0..TENANTS.len()).map(|t| own_id(t, 0)));
        probes.push(batch[N_SHARED_IDS + TENANTS.len() * N_OWN_IDS]);
        Ok(World {
            all: engine(&file, 1),
            alone,
            foreign: (0..n).map(|t| foreign_tokens(&file, t)).collect(),
            records_of,
            principals: all_principals(&file),
            objects: all_objects(&file),
            fields: all_fields(&file),
            batch,
            probes,
            file,
        })
    }

    fn describe(&self, t: usize, what: &str) -> String {
        format!(
            "tenant {}: {what}\n--- data file ---\n{}",
            TENANTS[t],
            yaml(&self.file)
        )
    }

    fn is_record(&self, t: usize, object: &str, id: &Uuid) -> bool {
        self.records_of[t]
            .get(object)
            .is_some_and(|ids| ids.contains(id))
    }

    /// No text about tenant `t` may name what only other tenants have,
    /// except what the request itself named (cut out of the text first, so
    /// a foreign name inside a requested one does not count).
    fn no_foreign_text(&self, t: usize, text: &str, asked: &[&str], what: &str) -> Outcome {
        let mut asked: Vec<&str> = asked.iter().copied().filter(|a| !a.is_empty()).collect();
        asked.sort_by_key(|a| std::cmp::Reverse(a.len()));
        let mut rest = text.to_owned();
        for a in asked {
            rest = rest.replace(a, "\u{1f}");
        }
        for tok in &self.foreign[t] {
            prop_assert!(
                !rest.contains(tok.as_str()),
                "{what} names '{tok}', which only another tenant has: {text}\n{}",
                self.describe(t, what)
            );
        }
        Ok(())
    }

    fn no_foreign_error<T>(
        &self,
        t: usize,
        r: &Result<T, QueryError>,
        asked: &[&str],
        what: &str,
    ) -> Outcome {
        if let Err(e) = r {
            self.no_foreign_text(t, &e.to_string(), asked, what)?;
        }
        Ok(())
    }

    fn no_foreign_explain(
        &self,
        t: usize,
        r: &Result<Explanation, QueryError>,
        asked: &[&str],
        what: &str,
    ) -> Outcome {
        match r {
            Ok(x) => {
                for s in &x.steps {
                    self.no_foreign_text(t, &s.detail, asked, what)?;
                }
                self.no_foreign_text(t, &x.groups.join(","), asked, what)
            }
            Err(_) => self.no_foreign_error(t, r, asked, what),
        }
    }
}

fn same<T: PartialEq + Debug>(got: &T, want: &T, what: impl FnOnce() -> String) -> Outcome {
    if got != want {
        return Err(TestCaseError::fail(format!(
            "{}\n  with every tenant: {got:?}\n  tenant alone:      {want:?}",
            what()
        )));
    }
    Ok(())
}

/// Principal `p` asks tenant `t`.
fn ask(t: usize, p: &PrincipalRef, object: &str, action: Action, ctx: &ActionContext) -> Question {
    Question {
        ctx: ctx.clone(),
        ..question(TENANTS[t], p.kind, &p.id, object, action.as_str())
    }
}

/// One question about tenant `t` through every record entry point, against
/// the tenant-alone engine and the independent checks. `deep` adds Check
/// and Explain per id.
fn compare_question(
    w: &World,
    t: usize,
    q: &Question,
    deep: bool,
    cov: &mut Coverage,
) -> Result<Option<Vec<Option<Reason>>>, TestCaseError> {
    let alone = &w.alone[t];
    let what = |entry: &str| {
        format!(
            "{entry}: {:?} '{}' {} {} ctx {:?}",
            q.principal.kind, q.principal.id, q.object, q.action, q.ctx
        )
    };
    let mut asked: Vec<&str> = vec![
        q.principal.id.as_str(),
        q.object.as_str(),
        q.action.as_str(),
    ];
    asked.extend(q.ctx.fields.iter().map(String::as_str));

    // Handles name each engine's own id tables: the answers must agree,
    // the handles cannot.
    let without_handles = |a: BatchAnswer| BatchAnswer {
        handles: RecordHandles::default(),
        ..a
    };
    let got = w.all.batch_check(q, &w.batch, NOW).map(without_handles);
    let want = alone.batch_check(q, &w.batch, NOW).map(without_handles);
    same(&got, &want, || w.describe(t, &what("BatchCheck")))?;
    w.no_foreign_error(t, &got, &asked, &what("BatchCheck error"))?;
    *cov.compared.entry("BatchCheck").or_default() += 1;
    let reasons = match &got {
        Ok(a) => {
            let mut reasons: Vec<Option<Reason>> = vec![None; w.batch.len()];
            for (pos, r) in &a.denials {
                reasons[*pos as usize] = Some(*r);
            }
            for (pos, id) in w.batch.iter().enumerate() {
                if !w.is_record(t, &q.object, id) {
                    prop_assert_eq!(
                        reasons[pos],
                        Some(Reason::UnknownRecord),
                        "{} is not a {} record of this tenant\n{}",
                        id,
                        &q.object,
                        w.describe(t, &what("BatchCheck"))
                    );
                }
                if reasons[pos].is_none() {
                    cov.allowed += 1;
                } else {
                    cov.denied += 1;
                }
            }
            Some(reasons)
        }
        Err(_) => None,
    };

    let got = w.all.lookup(q, NOW);
    let want = alone.lookup(q, NOW);
    same(&got, &want, || w.describe(t, &what("LookupRecords")))?;
    *cov.compared.entry("LookupRecords").or_default() += 1;
    if let Ok((ids, _)) = &got {
        for id in ids {
            prop_assert!(
                w.is_record(t, &q.object, id),
                "LookupRecords returned {}, not a {} record of this tenant\n{}",
                id,
                &q.object,
                w.describe(t, &what("LookupRecords"))
            );
        }
    }

    // Record-less Check (create, upload; refused for every other action).
    let got = w.all.check(q, None, NOW);
    let want = alone.check(q, None, NOW);
    same(&got, &want, || w.describe(t, &what("Check without record")))?;
    *cov.compared.entry("Check").or_default() += 1;
    let got = w.all.explain(q, None, NOW);
    let want = alone.explain(q, None, NOW);
    same(&got, &want, || {
        w.describe(t, &what("Explain without record"))
    })?;
    w.no_foreign_explain(t, &got, &asked, &what("Explain without record"))?;

    if !deep {
        return Ok(reasons);
    }
    for id in &w.probes {
        let id_text = id.to_string();
        let mut asked = asked.clone();
        asked.push(&id_text);
        let got = w.all.check(q, Some(*id), NOW);
        let want = alone.check(q, Some(*id), NOW);
        same(&got, &want, || w.describe(t, &what(&format!("Check {id}"))))?;
        *cov.compared.entry("Check").or_default() += 1;
        let got = w.all.explain(q, Some(*id), NOW);
        let want = alone.explain(q, Some(*id), NOW);
        same(&got, &want, || {
            w.describe(t, &what(&format!("Explain {id}")))
        })?;
        w.no_foreign_explain(t, &got, &asked, &what(&format!("Explain {id}")))?;
        *cov.compared.entry("Explain").or_default() += 1;
    }
    Ok(reasons)
}

/// ObjectAccess and RecordAccess of one principal in tenant `t`.
fn compare_access(w: &World, t: usize, p: &PrincipalRef, cov: &mut Coverage) -> Outcome {
    let alone = &w.alone[t];
    let tenant = TENANTS[t];
    let what = |entry: String| format!("{entry}: {:?} '{}'", p.kind, p.id);
    let got = w.all.object_access(tenant, p, None, 0);
    let want = alone.object_access(tenant, p, None, 0);
    same(&got, &want, || {
        w.describe(t, &what("ObjectAccess(all)".into()))
    })?;
    w.no_foreign_error(t, &got, &[&p.id], &what("ObjectAccess error".into()))?;
    if let Ok((flags, _, _)) = &got {
        let mine: BTreeSet<&str> = w.file.tenants[t]
            .objects
            .iter()
            .map(|o| o.name.as_str())
            .chain(["contacts"])
            .collect();
        for f in flags {
            prop_assert!(
                mine.contains(f.object.as_str()),
                "ObjectAccess lists '{}', not an object of this tenant\n{}",
                &f.object,
                w.describe(t, &what("ObjectAccess".into()))
            );
        }
    }
    *cov.compared.entry("ObjectAccess").or_default() += 1;
    for object in &w.objects {
        let got = w.all.object_access(tenant, p, Some(object), 0);
        let want = alone.object_access(tenant, p, Some(object), 0);
        same(&got, &want, || {
            w.describe(t, &what(format!("ObjectAccess({object})")))
        })?;
        w.no_foreign_error(
            t,
            &got,
            &[&p.id, object],
            &what("ObjectAccess error".into()),
        )?;
        let got = w.all.record_access(tenant, p, object, &w.batch, 0, NOW);
        let want = alone.record_access(tenant, p, object, &w.batch, 0, NOW);
        same(&got, &want, || {
            w.describe(t, &what(format!("RecordAccess({object})")))
        })?;
        w.no_foreign_error(
            t,
            &got,
            &[&p.id, object],
            &what("RecordAccess error".into()),
        )?;
        if let Ok((flags, _)) = &got {
            for f in flags {
                if !w.is_record(t, object, &f.record_id) {
                    prop_assert!(
                        !f.view && !f.edit && !f.remove && !f.unarchive && f.field_mask.is_empty(),
                        "RecordAccess flags {:?} on an id that is not a {} record here\n{}",
                        f,
                        object,
                        w.describe(t, &what("RecordAccess".into()))
                    );
                }
            }
        }
        *cov.compared.entry("RecordAccess").or_default() += 1;
    }
    Ok(())
}

/// Every chosen principal, object and action, asked of every tenant in turn
/// (so the shared cache holds the same key for the other tenants).
fn compare_everything(w: &World, s: &Scenario, deep: bool, cov: &mut Coverage) -> Outcome {
    let n = w.file.tenants.len();
    let mut chosen: Vec<&PrincipalRef> = Vec::new();
    for k in &s.principals {
        let p = &w.principals[*k as usize % w.principals.len()];
        if !chosen.contains(&p) {
            chosen.push(p);
        }
    }
    let order: Vec<usize> = (0..n).map(|i| (i + s.rotate as usize) % n).collect();
    for p in &chosen {
        for &t in &order {
            compare_access(w, t, p, cov)?;
        }
        for object in &w.objects {
            for (ai, action) in Action::ALL.into_iter().enumerate().filter(|(ai, _)| {
                *ai == 0
                    || s.actions
                        .iter()
                        .any(|k| *k as usize % Action::ALL.len() == *ai)
            }) {
                let spec = &s.ctxs[ai % s.ctxs.len()];
                let ctx = build_ctx(spec, action, &w.fields, spec.raw);
                let mut answers: Vec<(usize, Vec<Option<Reason>>)> = Vec::new();
                for &t in &order {
                    let q = ask(t, p, object, action, &ctx);
                    // Explain and Check per id for every third action:
                    // BatchCheck already covers every id.
                    let deep = deep && ai % 3 == 0;
                    if let Some(r) = compare_question(w, t, &q, deep, cov)? {
                        answers.push((t, r));
                    }
                }
                // Where a leak would show: one shared UUID, answered
                // differently by two tenants.
                for (i, (_, a)) in answers.iter().enumerate() {
                    for (_, b) in answers.iter().skip(i + 1) {
                        cov.shared_id_differs +=
                            (0..N_SHARED_IDS).filter(|k| a[*k] != b[*k]).count();
                    }
                }
            }
        }
    }
    Ok(())
}

/// Applies one record change to one tenant of the shared engine (and of
/// that tenant's own engine), then compares every tenant again: the others
/// must answer exactly as before.
fn change_one_tenant(w: &World, s: &Scenario, cov: &mut Coverage) -> Outcome {
    let n = w.file.tenants.len();
    let t = s.change.tenant as usize % n;
    let tenant = &w.file.tenants[t];
    let Some(record) = (!tenant.records.is_empty())
        .then(|| &tenant.records[s.change.record as usize % tenant.records.len()])
    else {
        return Ok(());
    };
    let mut changed = record.clone();
    if record.object == "contacts" && !s.change.archive {
        changed.contact = Some(contact_state(
            &s.change.contact,
            record.id,
            &shape().contact,
        ));
    } else {
        changed.archived = !record.archived;
    }
    let change = Change::upsert(TENANTS[t], Entity::Record(changed));
    let mut elsewhere = change.clone();
    elsewhere.tenant = "t-nowhere".to_owned();
    prop_assert_eq!(
        w.all.apply(std::slice::from_ref(&elsewhere)),
        Err(ApplyError::UnknownTenant("t-nowhere".to_owned()))
    );
    prop_assert_eq!(w.all.revision(), 1);
    let revision = w.all.apply(std::slice::from_ref(&change));
    prop_assert_eq!(revision, Ok(2));
    prop_assert_eq!(w.alone[t].apply(&[change]), Ok(2));
    // The other tenants' own engines: same data, next revision.
    for (i, e) in w.alone.iter().enumerate() {
        if i != t {
            let current = e.snapshot();
            e.publish(Snapshot {
                revision: 2,
                tenants: current.tenants.clone(),
            });
        }
    }
    compare_everything(w, s, false, cov)
}

#[test]
fn no_answer_about_one_tenant_depends_on_or_reveals_another() {
    let cases = tenants::cases(256);
    let coverage = Mutex::new(Coverage::default());
    let started = Instant::now();
    let result = tenants::runner(cases, 2048).run(&scenario(), |s| {
        let mut cov = Coverage::default();
        let w = World::build(&s)?;
        compare_everything(&w, &s, true, &mut cov)?;
        change_one_tenant(&w, &s, &mut cov)?;
        let mut total = coverage.lock().unwrap();
        for (k, v) in cov.compared {
            *total.compared.entry(k).or_default() += v;
        }
        total.allowed += cov.allowed;
        total.denied += cov.denied;
        total.shared_id_differs += cov.shared_id_differs;
        Ok(())
    });
    if let Err(e) = result {
        panic!("tenant isolation: {e}");
    }
    let cov = coverage.into_inner().unwrap();
    eprintln!(
        "tenant isolation: {cases} cases in {:.1?}; compared {:?}; positions allowed {}, denied {}; shared ids answered differently across tenants {}",
        started.elapsed(),
        cov.compared,
        cov.allowed,
        cov.denied,
        cov.shared_id_differs
    );
    // The generator must produce the situations a leak would show in.
    if cases >= 32 {
        assert!(cov.allowed > 0, "no position was ever allowed");
        assert!(
            cov.shared_id_differs > 0,
            "no shared UUID was ever answered differently by two tenants"
        );
        for entry in [
            "BatchCheck",
            "LookupRecords",
            "Check",
            "Explain",
            "ObjectAccess",
            "RecordAccess",
        ] {
            assert!(
                cov.compared.get(entry).copied().unwrap_or(0) > 0,
                "{entry} never compared"
            );
        }
    }
}

// ===========================================================================
// A fixed two-tenant file: unknown tenants, and the whole thing over gRPC
// ===========================================================================

/// alpha and beta share user, group, role and integration ids, object
/// names and record UUIDs; beta grants far more (ann is an admin there, the
/// shared group reaches every record at remove), and the same UUIDs are
/// other records with other teams, owners, states and archived flags.
const TWO_TENANTS: &str = r#"
tenants:
  - id: alpha
    email_configured: true
    sms_configured: false
    objects:
      - name: contacts
        fields: [first_name]
        team_fields: [team]
      - name: deals
        fields: [stage]
    groups:
      - id: sales
        objects:
          contacts:
            view_object: true
            associated_records: edit
            create_record: true
            actions: [export, bulk_export, bulk_send_email]
            default_for_new_field: view
            fields: {first_name: edit}
      - id: ops
        objects:
          deals: {view_object: true, associated_records: view, fields: {stage: view}}
    roles: [{id: rep, groups: [sales]}]
    users:
      - {id: ann, roles: [rep]}
      - {id: bob, groups: [ops]}
      - {id: alpha-carl, roles: [rep], groups: [ops]}
    # The key of ann, who has exactly the groups of beta's key's user bob.
    integrations: [{id: sync, user: ann}]
    automations: [{id: drip, run_as: {user: ann}}]
    records:
      - id: 5a5a0000-0000-4000-8000-000000000001
        object: contacts
        teams: {team: [ann]}
        contact: {email: a1@example.com, email_status: opted_in}
      - id: 5a5a0000-0000-4000-8000-000000000002
        object: contacts
        teams: {team: [alpha-carl, ann]}
        archived: true
        contact: {email: a2@example.com, email_status: unsubscribed_all}
      - id: 5a5a0000-0000-4000-8000-000000000003
        object: contacts
        teams: {team: [beta-dora]}
        contact: {email: a3@example.com, email_status: opted_in}
      - id: 5a5a0000-0000-4000-8000-000000000004
        object: deals
        owner: bob
      - id: aaaa0000-0000-4000-8000-000000000001
        object: contacts
        interactions: [ann]
        contact: {email_status: opted_in}

  - id: beta
    email_configured: true
    sms_configured: true
    objects:
      - name: contacts
        fields: [first_name, beta_secret]
        team_fields: [team]
      - name: deals
        fields: [stage]
      - name: beta-projects
    groups:
      - id: sales
        create_objects: true
        objects:
          contacts:
            view_object: true
            all_records: remove
            associated_records: remove
            create_record: true
            unarchive_associated: true
            unarchive_all: true
            actions: [export, bulk_export, bulk_send_email, bulk_archive, bulk_change_tags]
            default_for_new_field: edit
          deals:
            view_object: true
            all_records: remove
            associated_records: remove
            create_record: true
            unarchive_associated: true
            unarchive_all: true
            default_for_new_field: edit
          beta-projects: {view_object: true, all_records: view, associated_records: view}
      - id: beta-vip
        objects:
          contacts:
            view_object: true
            all_records: remove
            associated_records: remove
            create_record: true
            unarchive_associated: true
            unarchive_all: true
            default_for_new_field: edit
    roles: [{id: rep, groups: [sales, beta-vip]}]
    users:
      - {id: ann, admin: true}
      - {id: bob, roles: [rep]}
      - {id: beta-dora, roles: [rep]}
    integrations: [{id: sync, user: bob}]
    automations: [{id: drip, run_as: {user: ann}}]
    records:
      - id: 5a5a0000-0000-4000-8000-000000000001
        object: contacts
        teams: {team: [bob]}
        archived: true
        contact: {email: b1@example.com, email_status: unsubscribed_all}
      - id: 5a5a0000-0000-4000-8000-000000000002
        object: contacts
        teams: {team: [ann]}
        contact: {email: b2@example.com, email_status: opted_in}
      - id: 5a5a0000-0000-4000-8000-000000000003
        object: deals
        owner: ann
      - id: 5a5a0000-0000-4000-8000-000000000004
        object: contacts
        teams: {team: [bob]}
        contact: {email: b4@example.com, email_status: opted_in}
      - id: bbbb0000-0000-4000-8000-000000000001
        object: contacts
        teams: {team: [ann]}
        contact: {email: bb@example.com, email_status: opted_in}
      - id: bbbb0000-0000-4000-8000-000000000002
        object: beta-projects
        owner: ann
"#;

const S1: Uuid = Uuid::from_u128(0x5a5a_0000_0000_4000_8000_0000_0000_0001);
const S2: Uuid = Uuid::from_u128(0x5a5a_0000_0000_4000_8000_0000_0000_0002);
const S3: Uuid = Uuid::from_u128(0x5a5a_0000_0000_4000_8000_0000_0000_0003);
const S4: Uuid = Uuid::from_u128(0x5a5a_0000_0000_4000_8000_0000_0000_0004);
const ALPHA_ONLY: Uuid = Uuid::from_u128(0xaaaa_0000_0000_4000_8000_0000_0000_0001);
const BETA_ONLY: Uuid = Uuid::from_u128(0xbbbb_0000_0000_4000_8000_0000_0000_0001);
const BETA_PROJECT: Uuid = Uuid::from_u128(0xbbbb_0000_0000_4000_8000_0000_0000_0002);
/// Every id either tenant has, and one neither has.
const FIXED_IDS: [Uuid; 8] = [
    S1,
    S2,
    S3,
    S4,
    ALPHA_ONLY,
    BETA_ONLY,
    BETA_PROJECT,
    Uuid::from_u128(0xffff_0000_0000_4000_8000_0000_0000_0001),
];
/// What only beta has: no answer about alpha may name it.
const BETA_ONLY_TOKENS: [&str; 7] = [
    "beta",
    "beta-dora",
    "beta-vip",
    "beta_secret",
    "beta-projects",
    "bbbb0000-0000-4000-8000-000000000001",
    "bbbb0000-0000-4000-8000-000000000002",
];

fn two_tenant_file() -> DataFile {
    permd::source::parse_str(TWO_TENANTS, false, Path::new("two-tenants.yaml"))
        .unwrap_or_else(|e| panic!("the two-tenant file does not load: {e}"))
        .0
}

fn only(file: &DataFile, id: &str) -> DataFile {
    DataFile {
        tenants: file
            .tenants
            .iter()
            .filter(|t| t.id == id)
            .cloned()
            .collect(),
    }
}

fn pref(kind: PrincipalKind, id: &str) -> PrincipalRef {
    PrincipalRef {
        kind,
        id: id.to_owned(),
    }
}

#[test]
fn unknown_tenant_is_not_found_naming_it_at_every_entry_point() {
    let e = engine(&two_tenant_file(), 1);
    let ann = pref(PrincipalKind::User, "ann");
    // Exact names: no case folding, no trimming, no prefix match.
    for tenant in ["gamma", "Alpha", "alpha ", "alph", "", "alpha,beta"] {
        let want = QueryError::UnknownTenant(tenant.to_owned());
        let q = question(tenant, PrincipalKind::User, "ann", "contacts", "view");
        assert_eq!(e.batch_check(&q, &[S1], NOW).unwrap_err(), want);
        assert_eq!(e.check(&q, Some(S1), NOW).unwrap_err(), want);
        assert_eq!(e.lookup(&q, NOW).unwrap_err(), want);
        assert_eq!(e.explain(&q, Some(S1), NOW).unwrap_err(), want);
        assert_eq!(e.object_access(tenant, &ann, None, 0).unwrap_err(), want);
        assert_eq!(
            e.record_access(tenant, &ann, "contacts", &[S1], 0, NOW)
                .unwrap_err(),
            want
        );
        assert_eq!(want.to_string(), format!("tenant '{tenant}' not found"));
    }
}

#[test]
fn the_fixed_two_tenant_file_answers_each_tenant_from_its_own_data() {
    // Spot checks with the expected answer written out, so that the oracle
    // comparison of the gRPC test is known to compare different answers.
    let e = engine(&two_tenant_file(), 1);
    let user =
        |tenant, who, object, action| question(tenant, PrincipalKind::User, who, object, action);
    use Reason::*;
    // (tenant, user, object, action, record, answer)
    let rows = [
        // S1: ann's live Contact in alpha (her team); bob's archived Contact
        // in beta.
        ("alpha", "ann", "contacts", "view", S1, None),
        ("beta", "ann", "contacts", "view", S1, Some(Archived)),
        // S2: archived in alpha (ann on its team); ann's live Contact in
        // beta, where she is an admin.
        ("alpha", "ann", "contacts", "view", S2, Some(Archived)),
        // alpha's sales has no unarchive control (R10).
        (
            "alpha",
            "ann",
            "contacts",
            "unarchive",
            S2,
            Some(NoRecordAccess),
        ),
        ("beta", "bob", "contacts", "unarchive", S1, None),
        (
            "beta",
            "ann",
            "contacts",
            "unarchive",
            S2,
            Some(NotArchived),
        ),
        ("beta", "ann", "contacts", "archive", S2, None),
        // S3: a Contact in alpha whose team names beta's user (dangling in
        // alpha), a deal in beta.
        ("alpha", "ann", "contacts", "view", S3, Some(NoRecordAccess)),
        ("alpha", "ann", "deals", "view", S3, Some(UnknownRecord)),
        ("beta", "bob", "deals", "view", S3, None),
        // S4: bob's deal in alpha; bob's Contact in beta.
        ("alpha", "bob", "deals", "view", S4, None),
        ("alpha", "bob", "contacts", "view", S4, Some(UnknownRecord)),
        ("beta", "bob", "contacts", "view", S4, None),
        // The other tenant's own records are unknown here, even to beta's
        // admin.
        (
            "alpha",
            "ann",
            "contacts",
            "view",
            BETA_ONLY,
            Some(UnknownRecord),
        ),
        (
            "beta",
            "ann",
            "contacts",
            "view",
            ALPHA_ONLY,
            Some(UnknownRecord),
        ),
    ];
    for (tenant, who, object, action, id, want) in rows {
        let q = user(tenant, who, object, action);
        assert_eq!(
            e.check(&q, Some(id), NOW).unwrap().reason,
            want,
            "{tenant}: {who} {action} on {object} {id}"
        );
    }
    // beta-dora is not a principal of alpha at all.
    let q = user("alpha", "beta-dora", "contacts", "view");
    assert_eq!(
        e.check(&q, Some(S3), NOW).unwrap_err(),
        QueryError::UnknownPrincipal {
            kind: "user",
            id: "beta-dora".to_owned(),
            tenant: "alpha".to_owned(),
        }
    );
    // beta-projects is not an object of alpha, and the message lists only
    // alpha's objects.
    let q = user("alpha", "ann", "beta-projects", "view");
    assert_eq!(
        e.check(&q, Some(BETA_PROJECT), NOW).unwrap_err(),
        QueryError::UnknownObject {
            object: "beta-projects".to_owned(),
            tenant: "alpha".to_owned(),
            valid: "contacts, deals".to_owned(),
        }
    );
    // beta_secret is a field of beta's Contacts only.
    let mut q = user("alpha", "ann", "contacts", "edit");
    q.ctx.fields = vec!["beta_secret".to_owned()];
    assert_eq!(
        e.check(&q, Some(S1), NOW).unwrap_err(),
        QueryError::UnknownField {
            field: "beta_secret".to_owned(),
            object: "contacts".to_owned(),
            valid: "email, email_status, mobile_phone, tags, timezone, birthday, first_name, team"
                .to_owned(),
        }
    );
    // ObjectAccess: alpha's ann is no admin and cannot create objects.
    let (flags, create_objects, _) = e
        .object_access("alpha", &pref(PrincipalKind::User, "ann"), None, 0)
        .unwrap();
    assert!(!create_objects);
    assert_eq!(
        flags.iter().map(|f| f.object.as_str()).collect::<Vec<_>>(),
        vec!["contacts"]
    );
}

// --------------------------------------------------------------- gRPC ---

/// The gRPC test's time limit: it asks three servers some thousand times.
const GRPC_TEST_TIMEOUT: StdDuration = StdDuration::from_secs(120);

async fn serve(file: &DataFile) -> TestServer {
    TestServer::start(Arc::new(engine(file, 1))).await
}

type Client = AuthorizerClient<GrpcChannel>;

/// Every page of a LookupRecords stream, as sent.
async fn lookup_pages(
    c: &mut Client,
    req: pb::LookupRecordsRequest,
) -> Result<Vec<pb::LookupRecordsResponse>, Status> {
    let mut stream = c.lookup_records(req).await?.into_inner();
    let mut pages = Vec::new();
    while let Some(page) = stream.message().await? {
        pages.push(page);
    }
    Ok(pages)
}

fn status_of<T>(r: &Result<T, Status>) -> Option<(Code, String)> {
    r.as_ref().err().map(|s| (s.code(), s.message().to_owned()))
}

/// The server holding both tenants, and the one holding only the tenant
/// asked about.
struct Servers {
    both: Client,
    alone: Client,
}

impl Servers {
    /// Sends `req` through `rpc` to both servers: the two results must be
    /// equal, both the same message or both the same status code and
    /// message. Returns what the server holding both answered.
    async fn ask<Req: Clone, Resp: PartialEq + Debug>(
        &mut self,
        req: Req,
        rpc: impl AsyncFn(&mut Client, Req) -> Result<Resp, Status>,
        what: &str,
    ) -> Result<Resp, Status> {
        let got = rpc(&mut self.both, req.clone()).await;
        let want = rpc(&mut self.alone, req).await;
        assert_eq!(status_of(&got), status_of(&want), "{what}: status");
        if let (Ok(g), Ok(w)) = (&got, &want) {
            assert_eq!(g, w, "{what}: response");
        }
        got
    }

    /// [`Servers::ask`], for a test that needs no more than the equality.
    async fn same<Req: Clone, Resp: PartialEq + Debug>(
        &mut self,
        req: Req,
        rpc: impl AsyncFn(&mut Client, Req) -> Result<Resp, Status>,
        what: &str,
    ) {
        let _answer = self.ask(req, rpc, what).await;
    }
}

#[track_caller]
fn assert_no_beta_text(text: &str, what: &str) {
    for tok in BETA_ONLY_TOKENS {
        assert!(!text.contains(tok), "{what}: names beta's '{tok}': {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_answers_about_a_tenant_equal_a_server_holding_only_that_tenant() {
    bounded_by(GRPC_TEST_TIMEOUT, async {
        let file = two_tenant_file();
        let both = serve(&file).await;
        let alpha_alone = serve(&only(&file, "alpha")).await;
        let beta_alone = serve(&only(&file, "beta")).await;
        let mut c_both = both.client().await;
        use pb::principal::Kind;
        let principals = [
            (Kind::User, "ann"),
            (Kind::User, "bob"),
            (Kind::User, "alpha-carl"),
            (Kind::User, "beta-dora"),
            (Kind::Integration, "sync"),
            (Kind::Automation, "drip"),
        ];
        let actions = [
            ("view", None),
            ("edit", Some(vec!["first_name".to_owned()])),
            ("archive", None),
            ("unarchive", None),
            ("bulk_export", None),
            ("bulk_send_email", None),
            ("bulk_change_tags", None),
            ("edit", Some(vec!["beta_secret".to_owned()])),
        ];
        let objects = ["contacts", "deals", "beta-projects"];
        let mut compared = 0usize;
        for (tenant, alone) in [("alpha", &alpha_alone), ("beta", &beta_alone)] {
            let mut servers = Servers {
                both: c_both.clone(),
                alone: alone.client().await,
            };
            let file_tenant = file.tenants.iter().find(|t| t.id == tenant).unwrap();
            for (kind, who) in principals {
                let p = || principal(kind, who);
                for object in objects {
                    for (action, fields) in &actions {
                        let context = fields.as_ref().map(|f| pb::ActionContext {
                            fields: f.clone(),
                            ..Default::default()
                        });
                        let what =
                            format!("{tenant}: {kind:?} {who} {action} {fields:?} on {object}");
                        // BatchCheck, string ids and packed, allowed ids returned.
                        for req in [
                            batch(p(), object, action, &FIXED_IDS),
                            batch_packed(p(), object, action, &FIXED_IDS),
                        ] {
                            let req = pb::BatchCheckRequest {
                                tenant: tenant.to_owned(),
                                context: context.clone(),
                                return_allowed_ids: true,
                                ..req
                            };
                            let got = servers
                                .ask(req, batch_check, &format!("BatchCheck {what}"))
                                .await;
                            if let Ok(resp) = got {
                                // Ids the tenant does not have are UNKNOWN_RECORD.
                                for d in &resp.denials {
                                    let id = FIXED_IDS[d.position as usize];
                                    let known = file_tenant
                                        .records
                                        .iter()
                                        .any(|r| r.id == id && r.object == object);
                                    if !known {
                                        assert_eq!(
                                            d.reason,
                                            pb::Reason::UnknownRecord as i32,
                                            "{what}: {id}"
                                        );
                                    }
                                }
                                compared += 1;
                            }
                        }
                        // LookupRecords, streamed in pages of 2, strings and packed.
                        for packed in [false, true] {
                            let req = pb::LookupRecordsRequest {
                                tenant: tenant.to_owned(),
                                context: context.clone(),
                                page_size: 2,
                                packed,
                                ..lookup(p(), object, action)
                            };
                            let what = format!("LookupRecords {what}");
                            servers.same(req, lookup_pages, &what).await;
                        }
                        // Check and Explain on every id.
                        for id in FIXED_IDS {
                            let req = pb::CheckRequest {
                                tenant: tenant.to_owned(),
                                context: context.clone(),
                                ..check(p(), object, action, id)
                            };
                            let check_what = format!("Check {what} {id}");
                            servers.same(req.clone(), check_rpc, &check_what).await;
                            let what = format!("Explain {what} {id}");
                            let got = servers.ask(explain_of(req), explain_rpc, &what).await;
                            let asked_beta_id = BETA_ONLY_TOKENS.contains(&id.to_string().as_str());
                            let asked_beta_name = who.starts_with("beta")
                                || object.starts_with("beta")
                                || fields.iter().flatten().any(|f| f.starts_with("beta"));
                            if tenant == "alpha" && !asked_beta_id && !asked_beta_name {
                                match &got {
                                    Ok(x) => {
                                        for s in &x.steps {
                                            assert_no_beta_text(&s.detail, &what);
                                        }
                                        assert_no_beta_text(&x.groups.join(","), &what);
                                    }
                                    Err(s) => assert_no_beta_text(s.message(), &what),
                                }
                            }
                        }
                    }
                }
                // ObjectAccess, all objects and each; RecordAccess on every id.
                for object in ["", "contacts", "deals", "beta-projects"] {
                    let req = pb::ObjectAccessRequest {
                        tenant: tenant.to_owned(),
                        ..object_access(p(), object)
                    };
                    let what = format!("ObjectAccess {tenant} {who} {object:?}");
                    servers.same(req, object_access_rpc, &what).await;
                }
                for object in objects {
                    let req = pb::RecordAccessRequest {
                        tenant: tenant.to_owned(),
                        ..record_access(p(), object, strings(&FIXED_IDS))
                    };
                    let what = format!("RecordAccess {tenant} {who} {object}");
                    servers.same(req, record_access_rpc, &what).await;
                }
            }
        }
        assert!(
            compared > 100,
            "only {compared} BatchCheck answers compared"
        );
        // The same question about the shared ids gets different answers in
        // the two tenants: the comparison above was not vacuous.
        let mut differ = 0usize;
        for action in ["view", "bulk_export", "archive"] {
            let ask = |tenant: &str| pb::BatchCheckRequest {
                tenant: tenant.to_owned(),
                ..batch(principal(Kind::User, "ann"), "contacts", action, &FIXED_IDS)
            };
            let a = c_both.batch_check(ask("alpha")).await.unwrap().into_inner();
            let b = c_both.batch_check(ask("beta")).await.unwrap().into_inner();
            if a.denials != b.denials {
                differ += 1;
            }
        }
        assert_eq!(differ, 3, "alpha and beta answered ann alike");
        // Unknown tenant: NOT_FOUND naming it, through every RPC.
        let gamma = AnyRequest {
            tenant: "gamma".to_owned(),
            record: S1,
            ..AnyRequest::demo(principal(Kind::User, "ann"))
        };
        gamma
            .assert_refused(
                &mut c_both,
                &EVERY_RPC,
                Code::NotFound,
                &["tenant 'gamma' not found"],
            )
            .await;
    })
    .await;
}

// The RPCs `Servers::ask` sends through, answering the response message.

async fn batch_check(
    c: &mut Client,
    r: pb::BatchCheckRequest,
) -> Result<pb::BatchCheckResponse, Status> {
    c.batch_check(r).await.map(tonic::Response::into_inner)
}

async fn check_rpc(c: &mut Client, r: pb::CheckRequest) -> Result<pb::CheckResponse, Status> {
    c.check(r).await.map(tonic::Response::into_inner)
}

async fn explain_rpc(c: &mut Client, r: pb::ExplainRequest) -> Result<pb::ExplainResponse, Status> {
    c.explain(r).await.map(tonic::Response::into_inner)
}

async fn object_access_rpc(
    c: &mut Client,
    r: pb::ObjectAccessRequest,
) -> Result<pb::ObjectAccessResponse, Status> {
    c.object_access(r).await.map(tonic::Response::into_inner)
}

async fn record_access_rpc(
    c: &mut Client,
    r: pb::RecordAccessRequest,
) -> Result<pb::RecordAccessResponse, Status> {
    c.record_access(r).await.map(tonic::Response::into_inner)
}
