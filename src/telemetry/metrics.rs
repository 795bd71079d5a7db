//! Prometheus metrics: what an SRE watches — latency per RPC, batch sizes,
//! decisions by outcome, compiled-set cache hits, revision, snapshot age,
//! index memory per tenant and the change feed — served as text on
//! `/metrics`. Every metric name and recording helper lives here, below
//! the index, the sources and the server that all record them.
//!
//! The recorder is process-global (the `metrics` facade), installed once.
//! Snapshot age is exported as the publish time (`…_timestamp_seconds`), the
//! Prometheus idiom: `time() - permd_snapshot_published_timestamp_seconds`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::model::Reason;

pub const RPC_SECONDS: &str = "permd_rpc_duration_seconds";
pub const BATCH_RECORDS: &str = "permd_batch_records";
pub const DECISIONS: &str = "permd_record_decisions_total";
pub const CACHE: &str = "permd_compiled_cache_total";
pub const REVISION: &str = "permd_revision";
pub const PUBLISHED: &str = "permd_snapshot_published_timestamp_seconds";
pub const TENANT_BYTES: &str = "permd_tenant_index_bytes";
pub const TENANT_RECORDS: &str = "permd_tenant_records";
/// Requests refused by a limit, by the setting that refused them.
pub const REFUSALS: &str = "permd_refusals_total";
/// Accept errors per listener and kind (`open_files_limit`, `other`).
pub const ACCEPT_ERRORS: &str = "permd_accept_errors_total";
pub const FEED_STALENESS: &str = "permd_feed_staleness_seconds";
pub const FEED_TRANSACTIONS: &str = "permd_feed_transactions_total";
pub const FEED_ERRORS: &str = "permd_feed_errors_total";
pub const FEED_RELOADS: &str = "permd_feed_reloads_total";
pub const FEED_STOPPED: &str = "permd_feed_stopped";
pub const TENANT_STUCK: &str = "permd_tenant_stuck";
pub const TENANT_HELD_SECONDS: &str = "permd_tenant_held_seconds";
/// `permd relay`: 1 while this relay holds the lease and publishes.
pub const RELAY_ACTIVE: &str = "permd_relay_active";
pub const RELAY_REVISION: &str = "permd_relay_published_revision";
pub const RELAY_TRANSACTIONS: &str = "permd_relay_transactions_total";
pub const RELAY_MESSAGES: &str = "permd_relay_messages_total";
pub const RELAY_SNAPSHOTS: &str = "permd_relay_snapshots_total";
/// Unix time of the newest tenant snapshot this relay wrote.
pub const RELAY_SNAPSHOT_TIME: &str = "permd_relay_snapshot_timestamp_seconds";
/// Decision log lines, by result (`written`, `dropped`).
pub const DECISION_LOG_LINES: &str = "permd_decision_log_lines_total";
pub const RELAY_ERRORS: &str = "permd_relay_errors_total";
/// A NATS-mode sidecar: the stream revision the last relay heartbeat named.
pub const RELAY_HEARTBEAT_REVISION: &str = "permd_relay_heartbeat_revision";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (once per process) and returns its handle; `None`
/// if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(RPC_SECONDS.to_owned()),
                    &[
                        0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
                        0.05, 0.1, 0.25, 1.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(BATCH_RECORDS.to_owned()),
                        &[1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0],
                    )
                })
                .ok()
                .and_then(|b| b.install_recorder().ok())
                .inspect(|_| describe())
        })
        .clone()
}

/// `# HELP` text and units for every metric permd records.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        RPC_SECONDS,
        Unit::Seconds,
        "Time to answer one RPC, by method."
    );
    describe_histogram!(BATCH_RECORDS, Unit::Count, "Records per BatchCheck.");
    describe_counter!(
        DECISIONS,
        "Record decisions: ALLOWED, or the reason a record was denied."
    );
    describe_counter!(
        CACHE,
        "Compiled-answer cache lookups, by result (hit or miss)."
    );
    describe_gauge!(REVISION, "Revision of the snapshot being served.");
    describe_gauge!(
        PUBLISHED,
        Unit::Seconds,
        "Unix time the served snapshot was published; its age is time() minus this."
    );
    describe_gauge!(
        TENANT_BYTES,
        Unit::Bytes,
        "Approximate heap bytes of a tenant's index."
    );
    describe_gauge!(
        TENANT_RECORDS,
        Unit::Count,
        "Records of a tenant (deleted ones not counted)."
    );
    describe_counter!(
        REFUSALS,
        "Requests refused by a limit, by the setting that refused them."
    );
    describe_counter!(
        ACCEPT_ERRORS,
        "Failed accepts, by listener and kind; permd pauses after each."
    );
    describe_gauge!(
        FEED_STALENESS,
        Unit::Seconds,
        "Time since the snapshot was last confirmed current with PostgreSQL (or, in NATS mode, with the relay's heartbeat)."
    );
    describe_counter!(
        FEED_TRANSACTIONS,
        "Database transactions applied by the change feed."
    );
    describe_counter!(
        FEED_ERRORS,
        "Change feed errors, by kind (bootstrap, database, malformed)."
    );
    describe_counter!(
        FEED_RELOADS,
        "Whole-snapshot reloads after the changelog (or the NATS stream) no longer held the revisions after the one held."
    );
    describe_gauge!(
        FEED_STOPPED,
        "1 when the change feed stopped: a revision is missing from the changelog though it was not pruned."
    );
    describe_gauge!(
        TENANT_HELD_SECONDS,
        "How long a held tenant has answered at its last good revision (0 when not held)."
    );
    describe_gauge!(
        RELAY_ACTIVE,
        "1 while this relay holds the lease and publishes the changelog."
    );
    describe_gauge!(
        RELAY_REVISION,
        "The last revision this relay published to the stream in full."
    );
    describe_counter!(
        RELAY_TRANSACTIONS,
        "Changelog transactions published to the stream."
    );
    describe_counter!(
        RELAY_MESSAGES,
        "Stream messages published (one per tenant of a transaction, more when large)."
    );
    describe_counter!(
        RELAY_SNAPSHOTS,
        "Tenant snapshots written to the object store."
    );
    describe_gauge!(
        RELAY_SNAPSHOT_TIME,
        Unit::Seconds,
        "Unix time of the newest tenant snapshot this relay wrote; sidecars that start now begin there."
    );
    describe_counter!(
        DECISION_LOG_LINES,
        "Decision log lines, by result: written, or dropped because the sink fell behind (requests never wait for it)."
    );
    describe_counter!(
        RELAY_ERRORS,
        "Relay errors: lost database or NATS, refused publishes, snapshots not written."
    );
    describe_gauge!(
        RELAY_HEARTBEAT_REVISION,
        "NATS mode: the revision the relay's last heartbeat said the stream holds."
    );
    describe_gauge!(
        TENANT_STUCK,
        "1 while a tenant is held at an older revision by a change it cannot apply; its later changes wait, other tenants go on."
    );
}

/// Times one RPC; records on drop, so early returns count too.
pub struct RpcTimer {
    method: &'static str,
    /// The status code label; `Cancelled` unless the RPC finished.
    code: &'static str,
    started: std::time::Instant,
}

impl RpcTimer {
    pub fn start(method: &'static str) -> RpcTimer {
        RpcTimer {
            method,
            code: "Cancelled",
            started: std::time::Instant::now(),
        }
    }

    /// Records the RPC as ended with `code`.
    pub fn finish(mut self, code: &'static str) {
        self.code = code;
    }
}

impl Drop for RpcTimer {
    fn drop(&mut self) {
        metrics::histogram!(RPC_SECONDS, "method" => self.method, "code" => self.code)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// Counts a batch's outcomes: allowed, and denied per reason.
pub fn record_batch(size: usize, allowed: u32, denials: &[(u32, Reason)]) {
    metrics::histogram!(BATCH_RECORDS).record(size as f64);
    metrics::counter!(DECISIONS, "outcome" => "ALLOWED").increment(u64::from(allowed));
    let mut per_reason = [0u64; 32];
    for (_, reason) in denials {
        if let Some(n) = per_reason.get_mut(*reason as usize) {
            *n += 1;
        }
    }
    for reason in Reason::ALL {
        if let Some(&n) = per_reason.get(reason as usize).filter(|n| **n > 0) {
            metrics::counter!(DECISIONS, "outcome" => reason.as_str()).increment(n);
        }
    }
}

/// Exports a published revision, its publish time and the size of each
/// tenant in `changed` (the others kept theirs).
pub fn record_published<'a>(
    revision: u64,
    changed: impl IntoIterator<Item = (&'a String, &'a std::sync::Arc<crate::index::TenantIndex>)>,
) {
    metrics::gauge!(REVISION).set(revision as f64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    metrics::gauge!(PUBLISHED).set(now);
    for (id, tenant) in changed {
        metrics::gauge!(TENANT_BYTES, "tenant" => id.clone()).set(tenant.heap_bytes() as f64);
        metrics::gauge!(TENANT_RECORDS, "tenant" => id.clone()).set(tenant.record_count() as f64);
    }
}

/// Counts one request refused by the limit `setting` (its flag's name
/// with `_`): what an alert on starvation or abuse watches.
pub fn record_refusal(setting: &'static str) {
    metrics::counter!(REFUSALS, "setting" => setting).increment(1);
}

/// Counts one compiled-answer cache lookup.
pub fn record_cache(hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!(CACHE, "result" => result).increment(1);
}
