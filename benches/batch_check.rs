//! In-process BatchCheck on the generated benchmark tenant (README
//! "Benchmarks"): what the server does per request minus the transport —
//! decoding the ids (strings or packed bytes) and answering the batch.
//!
//! `PERMD_BENCH_CONTACTS` scales the tenant (default 1,000,000 Contacts).
//! Run without `--bench` — as `cargo test` does, since this target has
//! `test = true` — or with `PERMD_BENCH_QUICK=1`, it runs one tiny
//! configuration once: CI's smoke test that the benches still work.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use permd::index::ids::IdTable;
use permd::index::{Engine, PrincipalKind, PrincipalRef, Question, Snapshot};
use permd::model::ActionContext;
use permd::model::change::{Change, Entity};
use permd::model::data::{ContactState, EmailStatus, Record, Teams};
use permd::server::convert::{handles, packed_ids, string_ids, to_handles};
use permd::source::generate::{GenSpec, contact_ids, generate, record_ids, sample};
use time::OffsetDateTime;

struct Workload {
    engine: Engine,
    contacts: Vec<uuid::Uuid>,
    /// The first Contacts' records, for change benchmarks.
    some_records: Vec<Record>,
}

fn workload(contacts: usize) -> Workload {
    let spec = GenSpec {
        contacts,
        ..GenSpec::default()
    };
    let data = generate(&spec);
    let ids = record_ids(&data, &spec.tenant, "contacts");
    let engine = Engine::new(Snapshot::build(&data, 1), 1_000_000);
    let some_records = data
        .tenants
        .first()
        .map(|t| {
            t.records
                .iter()
                .filter(|r| r.object == "contacts")
                .take(1000)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Workload {
        engine,
        contacts: ids,
        some_records,
    }
}

fn question(action: &str) -> Question {
    let ctx = ActionContext::default();
    Question {
        tenant: "bench".to_owned(),
        principal: PrincipalRef {
            kind: PrincipalKind::User,
            id: "u0".to_owned(),
        },
        object: "contacts".to_owned(),
        action: action.to_owned(),
        ctx,
        min_revision: 0,
    }
}

/// The four actions of README "Benchmarks": scope only, scope + email gate,
/// scope + SMS gate, edit scope + field.
const ACTIONS: [&str; 4] = [
    "view",
    "bulk_send_email",
    "bulk_send_text",
    "bulk_change_tags",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn quick() -> bool {
    std::env::var_os("PERMD_BENCH_QUICK").is_some() || !std::env::args().any(|a| a == "--bench")
}

fn batch_check(c: &mut Criterion) {
    let quick = quick();
    let contacts = env_usize(
        "PERMD_BENCH_CONTACTS",
        if quick { 10_000 } else { 1_000_000 },
    );
    let w = workload(contacts);
    let sizes: &[usize] = if quick {
        &[1_000]
    } else {
        &[100, 1_000, 10_000, 100_000]
    };
    let actions: &[&str] = if quick { &ACTIONS[1..2] } else { &ACTIONS };
    let now = OffsetDateTime::now_utc();

    for action in actions {
        let q = question(action);
        let mut group = c.benchmark_group(format!("batch_check_warm/{action}"));
        for &n in sizes {
            let ids = sample(&w.contacts, n, n as u64);
            let strings: Vec<String> = ids.iter().map(uuid::Uuid::to_string).collect();
            let packed: Vec<u8> = ids.iter().flat_map(|id| *id.as_bytes()).collect();
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new("strings", n), &strings, |b, s| {
                b.iter(|| {
                    let ids = string_ids("ids", s).ok().unwrap_or_default();
                    black_box(w.engine.batch_check(&q, &ids, now).ok())
                })
            });
            group.bench_with_input(BenchmarkId::new("packed", n), &packed, |b, p| {
                b.iter(|| {
                    let ids = packed_ids("ids", p).ok().unwrap_or_default();
                    black_box(w.engine.batch_check(&q, &ids, now).ok())
                })
            });
            // The handles an answer gave for these ids, as the wire carries
            // them: no id lookup at all.
            let wire = w
                .engine
                .batch_check(&q, &ids, now)
                .map(|a| to_handles(&a.handles))
                .unwrap_or_default();
            group.bench_with_input(BenchmarkId::new("handles", n), &wire, |b, h| {
                b.iter(|| {
                    let h = handles("handles", h).ok().unwrap_or_default();
                    black_box(w.engine.batch_check_handles(&q, &h, now).ok())
                })
            });
        }
        group.finish();
    }

    // Decoding alone: what string ids cost over packed ones.
    let mut group = c.benchmark_group("decode_ids");
    let n = 10_000.min(contacts);
    let ids = sample(&w.contacts, n, 3);
    let strings: Vec<String> = ids.iter().map(uuid::Uuid::to_string).collect();
    let packed: Vec<u8> = ids.iter().flat_map(|id| *id.as_bytes()).collect();
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(BenchmarkId::new("strings", n), |b| {
        b.iter(|| black_box(string_ids("ids", &strings).ok()))
    });
    group.bench_function(BenchmarkId::new("packed", n), |b| {
        b.iter(|| black_box(packed_ids("ids", &packed).ok()))
    });
    group.finish();

    // Cold: the first call after a revision change compiles the set anew.
    // The new snapshot shares the tenant index, as a revision that touched
    // another tenant would.
    let mut group = c.benchmark_group("batch_check_cold");
    for action in actions {
        let q = question(action);
        let n = 10_000.min(contacts);
        let ids = sample(&w.contacts, n, 7);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new(*action, n), |b| {
            b.iter_batched(
                || {
                    let old = w.engine.snapshot();
                    w.engine.publish(Snapshot {
                        revision: old.revision + 1,
                        tenants: old.tenants.clone(),
                    });
                },
                |()| black_box(w.engine.batch_check(&q, &ids, now).ok()),
                criterion::BatchSize::PerIteration,
            )
        });
    }
    group.finish();

    // One change (a Contact's email status) applied as a new revision, then
    // the first BatchCheck after it, which compiles afresh.
    let mut group = c.benchmark_group("apply_change");
    let q = question("bulk_send_email");
    let n = 10_000.min(contacts);
    let ids = sample(&w.contacts, n, 11);
    let first = w.some_records.first().cloned();
    let mut flip = false;
    let mut change = move || {
        flip = !flip;
        let mut record = first.clone()?;
        record.contact = Some(ContactState {
            email: Some("x@example.com".to_owned()),
            email_status: if flip {
                EmailStatus::UnsubscribedAll
            } else {
                EmailStatus::OptedIn
            },
            ..ContactState::default()
        });
        Some(Change::upsert("bench", Entity::Record(record)))
    };
    // A change that is refused would time the refusal: check both apply.
    let one: Vec<_> = change().into_iter().collect();
    assert!(w.engine.apply(&one).is_ok(), "the one change applies");
    group.bench_function("apply_one_contact_state", |b| {
        b.iter(|| {
            black_box(
                w.engine
                    .apply(&[change()].into_iter().flatten().collect::<Vec<_>>())
                    .ok(),
            )
        })
    });
    // A batch of 1,000 record changes (account team and email status of 1,000
    // Contacts) as one revision: what the change feed applies per poll
    // under load.
    let mut round = 0usize;
    let mut batch = move || {
        round += 1;
        w.some_records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                // Contacts have no owner (R8): their account team changes.
                let mut teams = Teams::default();
                teams.add_member("account_team", format!("u{}", round % 7));
                r.teams = teams;
                r.contact = Some(ContactState {
                    email: Some("x@example.com".to_owned()),
                    email_status: EmailStatus::ALL
                        .get(round % EmailStatus::ALL.len())
                        .copied()
                        .unwrap_or_default(),
                    ..ContactState::default()
                });
                Change::upsert("bench", Entity::Record(r))
            })
            .collect::<Vec<_>>()
    };
    let first_batch = batch();
    let applied = w.engine.apply(&first_batch);
    assert!(
        applied.is_ok(),
        "the batch of 1,000 changes applies: {applied:?}"
    );
    group.throughput(criterion::Throughput::Elements(1000));
    group.bench_function("apply_1000_record_changes", |b| {
        b.iter_batched(
            &mut batch,
            |changes| black_box(w.engine.apply(&changes).ok()),
            criterion::BatchSize::SmallInput,
        )
    });
    group.throughput(criterion::Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("apply_then_batch_check", n), |b| {
        b.iter(|| {
            let applied = w
                .engine
                .apply(&[change()].into_iter().flatten().collect::<Vec<_>>())
                .ok();
            black_box((applied, w.engine.batch_check(&q, &ids, now).ok()))
        })
    });
    group.finish();

    // Building the tenant index from data: what a full reload costs.
    if !quick {
        let spec = GenSpec {
            contacts: contacts / 10,
            ..GenSpec::default()
        };
        let data = Arc::new(generate(&spec));
        let mut group = c.benchmark_group("index_build");
        group.sample_size(10);
        group.throughput(Throughput::Elements(spec.contacts as u64));
        group.bench_function(BenchmarkId::new("contacts", spec.contacts), |b| {
            b.iter(|| black_box(Snapshot::build(&data, 1)))
        });
        group.finish();
    }
}

fn config() -> Criterion {
    let quick = quick();
    let c = Criterion::default().configure_from_args();
    if quick {
        c.sample_size(10)
            .warm_up_time(std::time::Duration::from_millis(100))
            .measurement_time(std::time::Duration::from_millis(300))
    } else {
        c.sample_size(30)
            .warm_up_time(std::time::Duration::from_millis(500))
            .measurement_time(std::time::Duration::from_secs(2))
    }
}

/// The id lookup alone, over a table of the benchmark tenant's size
/// (1,250,000 records): `warm` asks for the same 10,000 ids each time, as
/// `batch_check_warm` does, so their lines stay cached; `cold` walks
/// through 1,250,000 ids drawn at random (with repeats), 10,000 at a time,
/// so each batch misses the caches, as a server's requests for other
/// records do.
fn id_lookup(c: &mut Criterion) {
    let records = if quick() { 20_000 } else { 1_250_000 };
    let mut table = IdTable::with_capacity(records);
    // Random v4 ids, reproducible: those `permd gen` gives its Contacts.
    let ids = contact_ids(&GenSpec {
        contacts: records,
        ..GenSpec::default()
    });
    for id in &ids {
        table.insert(*id);
    }
    table.shrink_to_fit();
    let n = 10_000.min(records);
    let order = sample(&ids, records, 11);
    let mut out = vec![0; n];
    let mut group = c.benchmark_group("id_lookup");
    group.throughput(Throughput::Elements(n as u64));
    let first = order.get(..n).unwrap_or_default();
    group.bench_function(BenchmarkId::new("warm", n), |b| {
        b.iter(|| table.get_many(black_box(first), &mut out))
    });
    let mut at = 0;
    group.bench_function(BenchmarkId::new("cold", n), |b| {
        b.iter(|| {
            let batch = order.get(at..at + n).unwrap_or_default();
            at = if at + 2 * n > order.len() { 0 } else { at + n };
            table.get_many(black_box(batch), &mut out)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = batch_check, id_lookup
}
criterion_main!(benches);
