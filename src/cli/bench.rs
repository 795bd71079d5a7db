//! `permd bench`: a load generator over real gRPC. It sends BatchCheck
//! requests from `--concurrency` workers for `--duration` seconds, checks
//! every answer (an error or a malformed answer is counted and reported,
//! never ignored), and prints latency percentiles and throughput.
//!
//! Request payloads are built before the clock starts, so the figures are
//! the server's and the transport's, not the cost of building ids.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use uuid::Uuid;

use super::client::{AskArgs, Target, connect, context, principal, status_error};
use crate::pb;
use crate::source::demo::{DEMO_CONTACTS, DEMO_TENANT, contact_id};
use crate::source::generate::{GenSpec, contact_ids, sample};

/// Distinct payloads each worker cycles through.
const PAYLOADS_PER_WORKER: usize = 4;
/// Longest run `--duration` accepts: a load test must stop by itself.
const MAX_DURATION_S: f64 = 3_600.0;

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub target: Target,
    /// `demo` draws ids from the built-in demo tenant; any other tenant is
    /// taken to be one made by `permd gen` (see --gen-contacts, --gen-seed).
    #[arg(long, default_value = DEMO_TENANT)]
    pub tenant: String,
    /// `ID`, `integration:ID` or `automation:ID`; default `carol` on the
    /// demo tenant, `u0` on a generated one.
    #[arg(long)]
    pub principal: Option<String>,
    #[arg(long, default_value = "bulk_send_email")]
    pub action: String,
    /// Records per BatchCheck.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Seconds to run (at most 3600).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// HTTP/2 connections the workers share.
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// Send ids as packed 16-byte UUIDs instead of strings.
    #[arg(long)]
    pub packed: bool,
    /// Send the handles permd gives out for the ids (BatchCheck
    /// `return_handles`, asked once per batch before the clock starts)
    /// instead of the ids, as a client that caches them does.
    #[arg(long, conflicts_with = "packed")]
    pub handles: bool,
    /// Ask for the denials as packed arrays (BatchCheck `packed_denials`)
    /// instead of one message each.
    #[arg(long)]
    pub packed_denials: bool,
    /// Contacts of the generated tenant (`permd gen --contacts`).
    #[arg(long, default_value_t = 1_000_000)]
    pub gen_contacts: usize,
    /// Seed of the generated tenant (`permd gen --seed`).
    #[arg(long, default_value_t = 42)]
    pub gen_seed: u64,
    /// Subscription list for bulk email.
    #[arg(long)]
    pub list: Option<String>,
    /// Fields to be changed (bulk_change_field_values); repeatable.
    #[arg(long = "field")]
    pub fields: Vec<String>,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The server's metrics endpoint (e.g. http://127.0.0.1:9090/metrics):
    /// its `process_cpu_seconds_total` is read before and after the run,
    /// for the server's CPU per record decided, apart from this client's.
    #[arg(long, value_name = "URL")]
    pub server_metrics: Option<String>,
}

impl BenchArgs {
    fn check(&self) -> anyhow::Result<()> {
        if !(self.duration > 0.0 && self.duration <= MAX_DURATION_S) {
            anyhow::bail!("--duration must be between 0 and {MAX_DURATION_S} seconds");
        }
        if self.batch == 0 {
            anyhow::bail!("--batch must be at least 1");
        }
        if !(1..=1024).contains(&self.concurrency) {
            anyhow::bail!("--concurrency must be between 1 and 1024");
        }
        if !(1..=64).contains(&self.connections) {
            anyhow::bail!("--connections must be between 1 and 64");
        }
        Ok(())
    }

    fn principal(&self) -> String {
        self.principal.clone().unwrap_or_else(|| {
            if self.tenant == DEMO_TENANT {
                "carol".to_owned()
            } else {
                "u0".to_owned()
            }
        })
    }

    /// The Contact ids batches are drawn from.
    fn ids(&self) -> Vec<Uuid> {
        if self.tenant == DEMO_TENANT {
            (0..DEMO_CONTACTS).map(contact_id).collect()
        } else {
            contact_ids(&GenSpec {
                contacts: self.gen_contacts,
                seed: self.gen_seed,
                ..GenSpec::default()
            })
        }
    }
}

/// What one run measured; the JSON keys carry their units.
#[derive(Debug, Serialize)]
pub struct Report {
    pub addr: String,
    pub tenant: String,
    pub principal: String,
    pub action: String,
    pub batch: usize,
    pub ids: &'static str,
    /// Denials asked for as packed arrays (`--packed-denials`).
    pub packed_denials: bool,
    pub concurrency: usize,
    pub connections: usize,
    pub duration_s: f64,
    pub requests: u64,
    pub errors: u64,
    pub requests_per_s: f64,
    pub record_decisions_per_s: f64,
    pub allowed_fraction: f64,
    pub unknown_record_fraction: f64,
    pub latency_ms: Latency,
    /// The server's CPU over the run (with --server-metrics).
    pub server_cpu_s: Option<f64>,
    /// The server's CPU per record decided, in nanoseconds.
    pub server_cpu_ns_per_record: Option<f64>,
    /// This client's own CPU over the run (it shares the machine).
    pub client_cpu_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    fn of(mut micros: Vec<u64>) -> Latency {
        micros.sort_unstable();
        let at = |q: f64| -> f64 {
            let i = ((micros.len() as f64 - 1.0) * q).round() as usize;
            micros.get(i).copied().unwrap_or(0) as f64 / 1e3
        };
        let mean = if micros.is_empty() {
            0.0
        } else {
            micros.iter().sum::<u64>() as f64 / micros.len() as f64 / 1e3
        };
        Latency {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: at(1.0),
            mean,
        }
    }
}

/// What one worker saw.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: Vec<String>,
    error_count: u64,
    decisions: u64,
    allowed: u64,
    unknown: u64,
}

impl Tally {
    fn error(&mut self, message: String) {
        self.error_count += 1;
        if self.errors.len() < 5 {
            self.errors.push(message);
        }
    }
}

/// The denials of an answer as (position, reason), from whichever form it
/// has them in; an error when its packed arrays do not pair up.
fn denials(r: &pb::BatchCheckResponse) -> Result<Vec<(u32, i32)>, String> {
    let Some(packed) = &r.packed_denials else {
        return Ok(r.denials.iter().map(|d| (d.position, d.reason)).collect());
    };
    if !r.denials.is_empty() || packed.positions.len() != packed.reasons.len() * 4 {
        return Err(format!(
            "packed denials: {} position bytes for {} reasons (and {} unpacked)",
            packed.positions.len(),
            packed.reasons.len(),
            r.denials.len()
        ));
    }
    Ok(packed
        .positions
        .chunks_exact(4)
        .zip(&packed.reasons)
        .map(|(p, reason)| {
            (
                u32::from_le_bytes([
                    p.first().copied().unwrap_or(0),
                    p.get(1).copied().unwrap_or(0),
                    p.get(2).copied().unwrap_or(0),
                    p.get(3).copied().unwrap_or(0),
                ]),
                i32::from(*reason),
            )
        })
        .collect())
}

/// Checks an answer against its request: how many of its records are
/// unknown, or why it does not fit.
fn checked(batch: usize, r: &pb::BatchCheckResponse, packed_denials: bool) -> Result<u64, String> {
    if packed_denials != r.packed_denials.is_some() {
        return Err(format!(
            "packed_denials asked: {packed_denials}, given: {}",
            r.packed_denials.is_some()
        ));
    }
    let denials = denials(r)?;
    if r.allowed.len() != batch.div_ceil(8) {
        return Err(format!(
            "allowed bitmask has {} bytes for {batch} records",
            r.allowed.len()
        ));
    }
    let set: u32 = r.allowed.iter().map(|b| b.count_ones()).sum();
    if set != r.allowed_count {
        return Err(format!(
            "allowed_count {} but {set} bits set",
            r.allowed_count
        ));
    }
    if r.allowed_count as usize + denials.len() != batch {
        return Err(format!(
            "{} allowed + {} denied != {batch} records",
            r.allowed_count,
            denials.len()
        ));
    }
    // In request order, each position once, denied, with a reason.
    let bad = denials.iter().enumerate().find(|(k, (position, reason))| {
        let byte = r.allowed.get(*position as usize / 8).copied().unwrap_or(0);
        let after_previous = k
            .checked_sub(1)
            .and_then(|p| denials.get(p))
            .is_none_or(|(previous, _)| previous < position);
        !after_previous
            || *position as usize >= batch
            || byte & (1 << (position % 8)) != 0
            || *reason == 0
    });
    if let Some((_, (position, _))) = bad {
        return Err(format!("denial at position {position} is inconsistent"));
    }
    let unknown = pb::Reason::UnknownRecord as i32;
    Ok(denials
        .iter()
        .filter(|(_, reason)| *reason == unknown)
        .count() as u64)
}

fn request(args: &BenchArgs, ids: &[Uuid]) -> anyhow::Result<pb::BatchCheckRequest> {
    let ask = AskArgs {
        target: args.target.clone(),
        tenant: args.tenant.clone(),
        principal: args.principal(),
        object: "contacts".to_owned(),
        action: args.action.clone(),
        channel: None,
        transactional: false,
        list: args.list.clone(),
        fields: args.fields.clone(),
        target_status: None,
    };
    let records = if args.packed || args.handles {
        pb::batch_check_request::Records::PackedRecordIds(pb::PackedIds {
            uuids: ids.iter().flat_map(|id| *id.as_bytes()).collect(),
        })
    } else {
        pb::batch_check_request::Records::RecordIds(pb::StringIds {
            ids: ids.iter().map(Uuid::to_string).collect(),
        })
    };
    Ok(pb::BatchCheckRequest {
        tenant: ask.tenant.clone(),
        principal: Some(principal(&ask.principal)),
        object: ask.object.clone(),
        action: ask.action.clone(),
        records: Some(records),
        context: Some(context(&ask)?),
        return_allowed_ids: false,
        min_revision: 0,
        return_handles: false,
        packed_denials: args.packed_denials,
    })
}

/// `payload` with its ids replaced by the handles permd gives for them; the
/// answer by handles must be the answer by ids, bit for bit.
async fn with_handles(
    client: &mut super::client::Client,
    mut payload: pb::BatchCheckRequest,
) -> anyhow::Result<pb::BatchCheckRequest> {
    payload.return_handles = true;
    let by_ids = client
        .batch_check(payload.clone())
        .await
        .map_err(status_error)
        .context("asking for handles")?
        .into_inner();
    let handles = by_ids
        .handles
        .clone()
        .context("the server gave no handles: is it older than return_handles?")?;
    payload.return_handles = false;
    payload.records = Some(pb::batch_check_request::Records::RecordHandles(handles));
    let by_handles = client
        .batch_check(payload.clone())
        .await
        .map_err(status_error)
        .context("checking by handles")?
        .into_inner();
    if (&by_handles.allowed, denials(&by_handles)) != (&by_ids.allowed, denials(&by_ids)) {
        anyhow::bail!("the answer by handles differs from the answer by ids");
    }
    Ok(payload)
}

async fn worker(
    mut client: super::client::Client,
    payloads: Vec<pb::BatchCheckRequest>,
    batch: usize,
    packed_denials: bool,
    deadline: Instant,
    done: Arc<AtomicU64>,
) -> Tally {
    let mut tally = Tally::default();
    for payload in payloads.iter().cycle() {
        if Instant::now() >= deadline {
            break;
        }
        let message = payload.clone();
        let started = Instant::now();
        let answer = client.batch_check(message).await;
        let elapsed = started.elapsed();
        done.fetch_add(1, Ordering::Relaxed);
        match answer {
            Err(status) => tally.error(status_error(status).to_string()),
            Ok(r) => {
                let r = r.into_inner();
                let unknown = match checked(batch, &r, packed_denials) {
                    Ok(unknown) => unknown,
                    Err(why) => {
                        tally.error(why);
                        continue;
                    }
                };
                tally
                    .latencies_us
                    .push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
                tally.decisions += batch as u64;
                tally.allowed += u64::from(r.allowed_count);
                tally.unknown += unknown;
            }
        }
    }
    tally
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    args.check()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(bench(&args, !std::io::stderr().is_terminal()))?;
    print(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if report.errors > 0 {
        anyhow::bail!("{} of {} requests failed", report.errors, report.requests);
    }
    Ok(())
}

/// Runs the load test; `quiet` hides the progress bar.
pub async fn bench(args: &BenchArgs, quiet: bool) -> anyhow::Result<Report> {
    args.check()?;
    let ids = args.ids();
    let mut clients = Vec::new();
    for _ in 0..args.connections {
        clients.push(connect(&args.target).await?);
    }
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let mut client = clients
            .get(w % clients.len())
            .cloned()
            .context("no connection")?;
        let mut payloads = Vec::with_capacity(PAYLOADS_PER_WORKER);
        for p in 0..PAYLOADS_PER_WORKER {
            let ids = sample(&ids, args.batch, (w * PAYLOADS_PER_WORKER + p) as u64);
            let payload = request(args, &ids)?;
            payloads.push(if args.handles {
                with_handles(&mut client, payload).await?
            } else {
                payload
            });
        }
        workers.push((client, payloads));
    }
    // One checked request first: a wrong tenant or principal fails here,
    // clearly, and the compiled set is warm before the clock starts.
    if let Some((client, payloads)) = workers.first_mut() {
        let first = payloads.first().cloned().context("no payload")?;
        let r = client
            .batch_check(first)
            .await
            .map_err(status_error)
            .context("the first BatchCheck failed")?
            .into_inner();
        if let Err(why) = checked(args.batch, &r, args.packed_denials) {
            anyhow::bail!("the first BatchCheck answered wrongly: {why}");
        }
    }

    let server_cpu_before = match &args.server_metrics {
        Some(url) => Some(server_cpu_seconds(url).await?),
        None => None,
    };
    let client_cpu_before = own_cpu_seconds();
    let duration = Duration::from_secs_f64(args.duration);
    let started = Instant::now();
    let deadline = started + duration;
    let done = Arc::new(AtomicU64::new(0));
    let progress = (!quiet).then(|| {
        let bar = indicatif::ProgressBar::new(duration.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|(client, payloads)| {
            tokio::spawn(worker(
                client,
                payloads,
                args.batch,
                args.packed_denials,
                deadline,
                done.clone(),
            ))
        })
        .collect();
    if let Some(bar) = &progress {
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            bar.set_position(started.elapsed().as_millis() as u64);
            bar.set_message(format!("{} requests", done.load(Ordering::Relaxed)));
        }
    }
    let mut total = Tally::default();
    for task in tasks {
        let t = task.await.context("a bench worker failed")?;
        total.latencies_us.extend(t.latencies_us);
        total.error_count += t.error_count;
        for e in t.errors {
            if total.errors.len() < 5 {
                total.errors.push(e);
            }
        }
        total.decisions += t.decisions;
        total.allowed += t.allowed;
        total.unknown += t.unknown;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let client_cpu_s = own_cpu_seconds()
        .zip(client_cpu_before)
        .map(|(after, before)| after - before);
    let server_cpu_s = match (&args.server_metrics, server_cpu_before) {
        (Some(url), Some(before)) => Some(server_cpu_seconds(url).await? - before),
        _ => None,
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    for e in &total.errors {
        eprintln!("permd bench: error: {e}");
    }
    let ok = total.latencies_us.len() as u64;
    let fraction = |n: u64| {
        if total.decisions == 0 {
            0.0
        } else {
            n as f64 / total.decisions as f64
        }
    };
    Ok(Report {
        addr: args.target.addr.clone(),
        tenant: args.tenant.clone(),
        principal: args.principal(),
        action: args.action.clone(),
        batch: args.batch,
        ids: if args.handles {
            "handles"
        } else if args.packed {
            "packed"
        } else {
            "strings"
        },
        packed_denials: args.packed_denials,
        concurrency: args.concurrency,
        connections: args.connections,
        duration_s: elapsed,
        requests: ok + total.error_count,
        errors: total.error_count,
        requests_per_s: ok as f64 / elapsed,
        record_decisions_per_s: total.decisions as f64 / elapsed,
        allowed_fraction: fraction(total.allowed),
        unknown_record_fraction: fraction(total.unknown),
        latency_ms: Latency::of(total.latencies_us),
        server_cpu_s,
        server_cpu_ns_per_record: server_cpu_s
            .filter(|_| total.decisions > 0)
            .map(|cpu| cpu * 1e9 / total.decisions as f64),
        client_cpu_s,
    })
}

/// `process_cpu_seconds_total` from a Prometheus text endpoint, read with
/// one plain HTTP/1.0 GET (the server's metrics listener, on loopback or
/// in the cluster).
async fn server_cpu_seconds(url: &str) -> anyhow::Result<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bad_url = || {
        anyhow::anyhow!(
            "--server-metrics {url}: give an http:// URL of the server's metrics endpoint, e.g. http://127.0.0.1:9090/metrics"
        )
    };
    let rest = url.strip_prefix("http://").ok_or_else(bad_url)?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "metrics"), |(h, p)| (h, p));
    if host.is_empty() {
        return Err(bad_url());
    }
    let read = async {
        let mut stream = tokio::net::TcpStream::connect(host).await?;
        stream
            .write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await?;
        let mut body = Vec::new();
        stream
            .take(MAX_METRICS_BYTES)
            .read_to_end(&mut body)
            .await?;
        anyhow::Ok(body)
    };
    let body = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| anyhow::anyhow!("--server-metrics {url}: no answer within 5 s"))?
        .with_context(|| format!("--server-metrics {url}"))?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--server-metrics {url}: no process_cpu_seconds_total in the answer (is it permd's /metrics?)"
            )
        })
}

/// Largest metrics page read.
const MAX_METRICS_BYTES: u64 = 16 << 20;

/// This process's user + system CPU so far, from /proc (Linux).
fn own_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15: 11 and 12 after the name.
    let total = ticks(11)? + ticks(12)?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| total / per_second as f64)
}

fn print(r: &Report) {
    println!(
        "permd bench: {} {} {} on contacts, batch {} ({} ids{}), concurrency {}, {} connections, {:.1} s",
        r.tenant,
        r.principal,
        r.action,
        r.batch,
        r.ids,
        if r.packed_denials {
            ", packed denials"
        } else {
            ""
        },
        r.concurrency,
        r.connections,
        r.duration_s
    );
    println!(
        "  requests   {} ok, {} errors, {:.0} requests/s",
        r.requests - r.errors,
        r.errors,
        r.requests_per_s
    );
    println!(
        "  decisions  {:.2} million record-decisions/s, {:.1}% allowed",
        r.record_decisions_per_s / 1e6,
        r.allowed_fraction * 100.0
    );
    println!(
        "  latency    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        r.latency_ms.p50, r.latency_ms.p90, r.latency_ms.p99, r.latency_ms.max
    );
    if let (Some(cpu), Some(per_record)) = (r.server_cpu_s, r.server_cpu_ns_per_record) {
        println!(
            "  server CPU {cpu:.2} s, {per_record:.1} ns per record decided{}",
            r.client_cpu_s
                .map(|c| format!(" (this client: {c:.2} s)"))
                .unwrap_or_default()
        );
    }
    if r.unknown_record_fraction > 0.5 {
        println!(
            "  warning: {:.0}% of records are UNKNOWN_RECORD: does --tenant/--gen-contacts/--gen-seed match the served data?",
            r.unknown_record_fraction * 100.0
        );
    }
}
