//! permd beside two general-purpose authorization engines, Cedar
//! (cedar-policy) and casbin-rs, on the same decisions (docs/peers.md).
//!
//! `cargo bench --features peers --bench peers`
//!
//! 1. Generates the benchmark tenant (`PERMD_PEERS_CONTACTS` Contacts,
//!    default 100,000) and builds permd's index, a Cedar entity store and
//!    policy set, and a casbin enforcer from it.
//! 2. Checks that every peer decides exactly as permd on every Contact for
//!    each workload, and on a 2,000-Contact sample for 31 more users; any
//!    difference is printed and the run exits non-zero (a comparison of
//!    different decisions would be void).
//! 3. Times whole batches of sampled Contact ids (`PERMD_PEERS_BATCHES`,
//!    default `100,1000,10000`), `PERMD_PEERS_REPS` repetitions (default 21,
//!    at least 15) interleaved across engines, and prints the medians per
//!    record, the ratios to permd and the one-time setup costs.
//!    `PERMD_PEERS_JSON=path` also writes them as JSON.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use permd::index::{Engine, PrincipalKind, PrincipalRef, Question, Snapshot};
use permd::model::ActionContext;
use permd::source::generate::{GenSpec, generate, record_ids, sample};
use time::OffsetDateTime;
use uuid::Uuid;

#[path = "peers/casbin_peer.rs"]
mod casbin_peer;
#[path = "peers/cedar_peer.rs"]
mod cedar_peer;
#[path = "peers/facts.rs"]
mod facts;

use casbin_peer::{CasbinPeer, Subject};
use cedar_peer::CedarPeer;

/// (principal, action) on `contacts`. `u0`: group g0, All Records view,
/// every toggle, every field editable. `u1`: group g1, My Associated
/// Records edit only.
const WORKLOADS: [(&str, &str); 4] = [
    ("u0", "view"),
    ("u0", "bulk_send_email"),
    ("u1", "view"),
    ("u1", "bulk_send_email"),
];

const ENGINES: [&str; 3] = ["permd", "cedar", "casbin"];

/// Further users whose decisions are verified (not timed), on a sample.
const EXTRA_USERS: usize = 30;
const EXTRA_SAMPLE: usize = 2_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn env_sizes() -> Vec<usize> {
    let mut sizes: Vec<usize> = std::env::var("PERMD_PEERS_BATCHES")
        .ok()
        .map(|v| {
            v.split(',')
                .filter_map(|s| s.trim().replace('_', "").parse().ok())
                .filter(|n| *n > 0)
                .collect()
        })
        .unwrap_or_else(|| vec![100, 1_000, 10_000]);
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

fn question(principal: &str, action: &str) -> Question {
    Question {
        tenant: "bench".to_owned(),
        principal: PrincipalRef {
            kind: PrincipalKind::User,
            id: principal.to_owned(),
        },
        object: "contacts".to_owned(),
        action: action.to_owned(),
        ctx: ActionContext::default(),
        min_revision: 0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} × {cpu}")
}

/// One workload, ready for every engine.
struct Prepared {
    principal: String,
    action: &'static str,
    question: Question,
    cedar_principal: cedar_policy::EntityUid,
    cedar_action: cedar_policy::EntityUid,
    subject: Subject,
}

struct Engines {
    permd: Engine,
    cedar: CedarPeer,
    casbin: CasbinPeer,
    now: OffsetDateTime,
}

impl Engines {
    fn permd(&self, w: &Prepared, ids: &[Uuid]) -> anyhow::Result<Vec<bool>> {
        let answer = self
            .permd
            .batch_check(&w.question, ids, self.now)
            .map_err(|e| anyhow!("permd: {e}"))?;
        Ok((0..ids.len()).map(|i| answer.is_allowed(i)).collect())
    }

    /// Times one whole batch on one engine.
    fn time(
        &self,
        engine: &str,
        w: &Prepared,
        ids: &[Uuid],
        resources: &[cedar_policy::EntityUid],
    ) -> anyhow::Result<Duration> {
        let t = Instant::now();
        match engine {
            "permd" => {
                black_box(
                    self.permd
                        .batch_check(&w.question, ids, self.now)
                        .map_err(|e| anyhow!("permd: {e}"))?,
                );
            }
            "cedar" => {
                black_box(
                    self.cedar
                        .batch(&w.cedar_principal, &w.cedar_action, resources)?,
                );
            }
            _ => {
                black_box(self.casbin.batch(&w.subject, w.action, ids)?);
            }
        }
        Ok(t.elapsed())
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples
        .get(samples.len() / 2)
        .copied()
        .unwrap_or(Duration::ZERO)
}

/// Every Contact, every workload: each peer must decide exactly as permd.
fn verify(e: &Engines, workloads: &[Prepared], ids: &[Uuid], quiet: bool) -> anyhow::Result<bool> {
    if quiet {
        println!(
            "\nverification: {} more principal/action pairs on {} sampled Contacts",
            workloads.len(),
            ids.len()
        );
    } else {
        println!(
            "\nverification: every Contact ({}), decision by decision",
            ids.len()
        );
    }
    let mut checked = 0;
    let mut allowed_total = 0;
    let resources = e.cedar.resources(ids);
    let mut all_equal = true;
    for w in workloads {
        let permd = e.permd(w, ids)?;
        let cedar = e
            .cedar
            .batch(&w.cedar_principal, &w.cedar_action, &resources)?;
        let casbin = e.casbin.batch(&w.subject, w.action, ids)?;
        let allowed = permd.iter().filter(|a| **a).count();
        allowed_total += allowed;
        checked += ids.len();
        if !quiet {
            println!(
                "  {:<3} {:<16} permd allows {allowed:>7}, denies {:>7}",
                w.principal,
                w.action,
                ids.len() - allowed
            );
        }
        for (peer, decisions) in [("cedar", &cedar), ("casbin", &casbin)] {
            let diffs: Vec<(usize, bool, bool)> = permd
                .iter()
                .zip(decisions)
                .enumerate()
                .filter(|(_, (p, d))| p != d)
                .map(|(i, (p, d))| (i, *p, *d))
                .collect();
            if diffs.is_empty() && decisions.len() == permd.len() {
                if !quiet {
                    println!("      {peer:<6} equal on all {}", permd.len());
                }
                continue;
            }
            all_equal = false;
            println!(
                "      {} {} {peer}: DIFFERS on {} of {} records; first ones:",
                w.principal,
                w.action,
                diffs.len(),
                permd.len()
            );
            let answer = e
                .permd
                .batch_check(&w.question, ids, e.now)
                .map_err(|err| anyhow!("permd: {err}"))?;
            for (i, p, d) in diffs.iter().take(10) {
                let reason = answer
                    .denials
                    .iter()
                    .find(|(pos, _)| *pos as usize == *i)
                    .map_or("", |(_, r)| r.as_str());
                let id = ids.get(*i).map(Uuid::to_string).unwrap_or_default();
                println!("        {id}: permd {p} {reason}, {peer} {d}");
            }
        }
    }
    if quiet && all_equal {
        println!(
            "  cedar and casbin equal to permd on all {checked} decisions ({allowed_total} allowed)"
        );
    }
    Ok(all_equal)
}

struct Row {
    principal: String,
    action: &'static str,
    batch: usize,
    /// Median ns per record, in ENGINES order.
    ns: [f64; 3],
}

fn main() -> anyhow::Result<()> {
    let contacts = env_usize("PERMD_PEERS_CONTACTS", 100_000).max(1);
    let reps = env_usize("PERMD_PEERS_REPS", 21).max(15);
    let sizes = env_sizes();
    let largest = sizes.last().copied().unwrap_or(10_000);
    let now = OffsetDateTime::now_utc();
    let date = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let machine = machine();
    println!(
        "peers: {contacts} Contacts, batches {sizes:?}, {reps} repetitions; {machine}; {date}"
    );

    let mut setup: Vec<(String, Duration)> = Vec::new();
    let spec = GenSpec {
        contacts,
        ..GenSpec::default()
    };
    let t = Instant::now();
    let data = generate(&spec);
    println!("generated the tenant in {:.0} ms", ms(t.elapsed()));
    let tenant = data
        .tenants
        .first()
        .context("the generator made no tenant")?;
    let ids = record_ids(&data, &spec.tenant, "contacts");

    let t = Instant::now();
    let permd = Engine::new(Snapshot::build(&data, 1), ids.len().max(largest));
    setup.push((
        "permd: index build (Snapshot::build)".to_owned(),
        t.elapsed(),
    ));

    let t = Instant::now();
    let users: Vec<facts::Effective> = tenant
        .users
        .iter()
        .map(|u| facts::effective(tenant, u))
        .collect();
    let contact_facts = facts::contacts(tenant, now);
    setup.push((
        "peers: attribute derivation (effective permissions, associations, Contact state)"
            .to_owned(),
        t.elapsed(),
    ));

    let cedar = CedarPeer::build(&users, &contact_facts)?;
    setup.extend(
        cedar
            .setup
            .iter()
            .map(|(what, d)| (format!("cedar: {what}"), *d)),
    );
    let casbin = CasbinPeer::build(&contact_facts)?;
    setup.extend(
        casbin
            .setup
            .iter()
            .map(|(what, d)| (format!("casbin: {what}"), *d)),
    );
    drop(contact_facts);

    let mut workloads = Vec::new();
    for (principal, action) in WORKLOADS {
        let eff = users
            .iter()
            .find(|u| u.user == principal)
            .with_context(|| format!("no user {principal} in the generated tenant"))?;
        workloads.push(Prepared {
            principal: principal.to_owned(),
            action,
            question: question(principal, action),
            cedar_principal: cedar.user(principal),
            cedar_action: cedar.action(action)?,
            subject: Subject::of(eff),
        });
    }
    let engines = Engines {
        permd,
        cedar,
        casbin,
        now,
    };

    // permd's first call for a question compiles its allowed set; later
    // calls at the same revision hit the cache (the "warm" figures).
    let batch = sample(&ids, largest, 0x9EE5);
    for w in &workloads {
        let t = Instant::now();
        black_box(engines.permd(w, &batch)?);
        setup.push((
            format!(
                "permd: first {} {} batch of {} (compiles the set)",
                w.principal,
                w.action,
                batch.len()
            ),
            t.elapsed(),
        ));
    }

    // The four workloads exercise few of the rules' combinations (one group
    // each), so the peers are also held to permd for more principals on a
    // sample: users with one to four groups, and the admin.
    let mut extra = Vec::new();
    let admin = tenant.users.iter().find(|u| u.admin).map(|u| u.id.clone());
    let others: Vec<String> = (2..2 + EXTRA_USERS)
        .map(|n| format!("u{n}"))
        .chain(admin)
        .collect();
    for user in &others {
        let Some(eff) = users.iter().find(|u| &u.user == user) else {
            continue;
        };
        for (_, action) in WORKLOADS.into_iter().take(2) {
            extra.push(Prepared {
                principal: user.clone(),
                action,
                question: question(user, action),
                cedar_principal: engines.cedar.user(user),
                cedar_action: engines.cedar.action(action)?,
                subject: Subject::of(eff),
            });
        }
    }
    let extra_ids = sample(&ids, EXTRA_SAMPLE, 4_242);
    let equal =
        verify(&engines, &workloads, &ids, false)? & verify(&engines, &extra, &extra_ids, true)?;
    if !equal {
        eprintln!("peers: a peer's decisions differ from permd's; no figures are valid");
        std::process::exit(1);
    }

    let mut rows = Vec::new();
    for &n in &sizes {
        let ids_n: Vec<Uuid> = batch.iter().take(n).copied().collect();
        let resources = engines.cedar.resources(&ids_n);
        let mut samples: Vec<[Vec<Duration>; 3]> = workloads
            .iter()
            .map(|_| [Vec::new(), Vec::new(), Vec::new()])
            .collect();
        // Warm every engine on every workload once, untimed.
        for w in &workloads {
            for engine in ENGINES {
                engines.time(engine, w, &ids_n, &resources)?;
            }
        }
        for rep in 0..reps {
            for (w, per_engine) in workloads.iter().zip(samples.iter_mut()) {
                // Rotate which engine goes first, so none always runs on
                // caches another left warm or cold.
                for k in 0..ENGINES.len() {
                    let e = (k + rep) % ENGINES.len();
                    let (Some(engine), Some(slot)) = (ENGINES.get(e), per_engine.get_mut(e)) else {
                        continue;
                    };
                    slot.push(engines.time(engine, w, &ids_n, &resources)?);
                }
            }
        }
        for (w, per_engine) in workloads.iter().zip(samples) {
            let ns = per_engine.map(|s| median(s).as_secs_f64() * 1e9 / ids_n.len() as f64);
            rows.push(Row {
                principal: w.principal.clone(),
                action: w.action,
                batch: ids_n.len(),
                ns,
            });
        }
    }

    println!(
        "\nmedian of {reps} whole-batch runs, ns per record (lower is better); ratio = peer / permd"
    );
    println!(
        "{:<24} {:>6} {:>10} {:>10} {:>10} {:>12} {:>13}",
        "workload", "batch", "permd", "cedar", "casbin", "cedar/permd", "casbin/permd"
    );
    for r in &rows {
        let [p, c, k] = r.ns;
        println!(
            "{:<24} {:>6} {:>10.1} {:>10.1} {:>10.1} {:>11.0}× {:>12.0}×",
            format!("{} {}", r.principal, r.action),
            r.batch,
            p,
            c,
            k,
            c / p,
            k / p
        );
    }
    println!(
        "\none-time setup ({contacts} Contacts, {} users)",
        tenant.users.len()
    );
    for (what, d) in &setup {
        println!("  {:>10.1} ms  {what}", ms(*d));
    }

    if let Some(path) = std::env::var_os("PERMD_PEERS_JSON") {
        let json = serde_json::json!({
            "machine": machine,
            "date": date,
            "contacts": contacts,
            "users": tenant.users.len(),
            "repetitions": reps,
            "unit": "median ns per record over whole-batch runs",
            "rows": rows.iter().map(|r| {
                let [p, c, k] = r.ns;
                serde_json::json!({
                    "principal": r.principal,
                    "action": r.action,
                    "batch": r.batch,
                    "permd_ns": p,
                    "cedar_ns": c,
                    "casbin_ns": k,
                    "cedar_over_permd": c / p,
                    "casbin_over_permd": k / p,
                })
            }).collect::<Vec<_>>(),
            "setup_ms": setup.iter().map(|(what, d)| {
                serde_json::json!({ "step": what, "ms": ms(*d) })
            }).collect::<Vec<_>>(),
        });
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.to_string_lossy()))?;
        println!("\nwrote {}", path.to_string_lossy());
    }
    Ok(())
}
