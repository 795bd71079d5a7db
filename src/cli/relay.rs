//! `permd relay` and `permd snapshot`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use super::{LogFormat, config::Span, shutdown_signal};
use crate::source::nats::NatsConfig;
use crate::source::nats::relay::RelayConfig;

#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// The database whose changelog is published.
    #[arg(long, env = "PERMD_DATABASE_URL")]
    pub database_url: String,
    #[arg(long, env = "PERMD_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Names the stream (`<PREFIX>_CHANGES`), the snapshot bucket
    /// (`<prefix>-snapshots`), the subjects (`<prefix>.changes.<tenant>`)
    /// and the lease; sidecars use the same.
    #[arg(long, env = "PERMD_NATS_PREFIX", default_value = "permd")]
    pub nats_prefix: String,
    /// A NATS credentials file (.creds), e.g. mounted from a Secret.
    #[arg(long, env = "PERMD_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    #[arg(long, env = "PERMD_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// Snapshot the tenants that changed after this many revisions…
    #[arg(long, env = "PERMD_SNAPSHOT_EVERY", default_value_t = 10_000)]
    pub snapshot_every: u64,
    /// …or this long after the last snapshot, whichever comes first.
    #[arg(long, env = "PERMD_SNAPSHOT_INTERVAL", default_value = "5m")]
    pub snapshot_interval: Span,
    /// The snapshot format to write (1 or 2, the newest). Sidecars read
    /// every format up to their own: upgrade them first, or run new relays
    /// with the format of the oldest sidecar until they are.
    #[arg(long, env = "PERMD_SNAPSHOT_FORMAT", default_value_t = crate::source::snapshot::FORMAT,
          value_parser = clap::value_parser!(u32).range(i64::from(crate::source::snapshot::OLDEST_FORMAT)..=i64::from(crate::source::snapshot::FORMAT)))]
    pub snapshot_format: u32,
    /// How long the stream keeps changes; a sidecar further behind reloads
    /// from a snapshot. Keep it well above --snapshot-interval.
    #[arg(long, env = "PERMD_STREAM_MAX_AGE", default_value = "24h")]
    pub stream_max_age: Span,
    /// Prune changelog older than this (every minute, while active): in
    /// NATS mode no sidecar does. `0` keeps it forever.
    #[arg(long, env = "PERMD_CHANGELOG_RETENTION", default_value = "7d")]
    pub changelog_retention: Span,
    #[arg(long, env = "PERMD_METRICS_LISTEN", default_value = "127.0.0.1:9091")]
    pub metrics_listen: SocketAddr,
    #[arg(long, env = "PERMD_NO_METRICS")]
    pub no_metrics: bool,
    #[arg(long, env = "PERMD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

pub fn run(args: RelayArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let _in_runtime = runtime.enter();
    let _telemetry = crate::telemetry::init(args.log_format == LogFormat::Json, None)?;
    if args.snapshot_every == 0 || args.snapshot_interval.0.is_zero() {
        anyhow::bail!("--snapshot-every and --snapshot-interval must be above 0");
    }
    if args.stream_max_age.0 < args.snapshot_interval.0 * 2 {
        anyhow::bail!(
            "--stream-max-age ({}) must be at least twice --snapshot-interval ({}): a sidecar that falls behind the stream reloads from a snapshot, which must be newer than what the stream dropped",
            args.stream_max_age,
            args.snapshot_interval
        );
    }
    let mut nats = NatsConfig::new(&args.nats_url, &args.nats_prefix)?;
    nats.creds = args.nats_creds;
    nats.token = args.nats_token;
    let config = RelayConfig {
        database_url: args.database_url,
        nats,
        snapshot_every: args.snapshot_every,
        snapshot_interval: args.snapshot_interval.0,
        snapshot_format: args.snapshot_format,
        stream_max_age: args.stream_max_age.0,
        poll_interval: std::time::Duration::from_secs(1),
        changelog_retention: (!args.changelog_retention.0.is_zero())
            .then_some(args.changelog_retention.0),
    };
    let metrics_handle = if args.no_metrics {
        None
    } else {
        Some(crate::telemetry::metrics::install().context("cannot install the metrics recorder")?)
    };
    let shutdown = shutdown_signal();
    runtime.block_on(async move {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        if let Some(handle) = metrics_handle {
            let listener = tokio::net::TcpListener::bind(args.metrics_listen)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen for metrics on {} (--metrics-listen, or --no-metrics)",
                        args.metrics_listen
                    )
                })?;
            tracing::info!(metrics = %listener.local_addr()?, "metrics on /metrics");
            let mut done = stopped.clone();
            tokio::spawn(crate::server::metrics_endpoint::serve(
                listener,
                handle,
                None,
                async move {
                    let _ = done.wait_for(|s| *s).await;
                },
            ));
        }
        tracing::info!(
            database = %crate::source::postgres::redact(&config.database_url),
            nats = %crate::source::nats::redact(&config.nats.url),
            stream = %config.nats.stream(),
            bucket = %config.nats.bucket(),
            "permd relay starting"
        );
        let relay = tokio::spawn(crate::source::nats::relay::run(config, stopped));
        shutdown.await;
        let _ = stop.send(true);
        relay.await.context("the relay task failed")?
    })
}

#[derive(clap::Args, Debug)]
pub struct SnapshotArgs {
    /// A snapshot file to read and check.
    pub file: Option<PathBuf>,
    /// Write snapshots of this data file's tenants instead (one file per
    /// tenant, `<tenant>.snapshot`, into --out).
    #[arg(long, requires = "out", conflicts_with = "file")]
    pub from_data: Option<PathBuf>,
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The revision to stamp written snapshots with.
    #[arg(long, default_value_t = 1)]
    pub revision: u64,
}

pub fn snapshot(args: SnapshotArgs) -> anyhow::Result<()> {
    if let (Some(data), Some(out)) = (&args.from_data, &args.out) {
        let (file, _) = crate::source::load_file(data)?;
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        for tenant in &file.tenants {
            let started = Instant::now();
            let bytes = crate::source::snapshot::encode(tenant, args.revision, 0);
            let path = out.join(format!(
                "{}.snapshot",
                crate::source::nats::subject_token(&tenant.id)
            ));
            std::fs::write(&path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "{}: tenant '{}', {} records, {} bytes ({:.1} per record), encoded in {} ms",
                path.display(),
                tenant.id,
                tenant.records.len(),
                bytes.len(),
                bytes.len() as f64 / tenant.records.len().max(1) as f64,
                started.elapsed().as_millis()
            );
        }
        return Ok(());
    }
    let Some(path) = &args.file else {
        anyhow::bail!(
            "give a snapshot file to check, or --from-data FILE --out DIR to write snapshots"
        );
    };
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // As a sidecar loads it; when that fails, the whole check below lists
    // every problem.
    let started = Instant::now();
    if let Ok((meta, index)) = crate::source::stream::index_snapshot(&bytes) {
        let loaded = started.elapsed();
        drop(index);
        println!(
            "{}; loaded as a sidecar loads it (decode, check, index) in {} ms",
            checked(path, &meta),
            loaded.as_millis()
        );
        return Ok(());
    }
    let started = Instant::now();
    let (meta, tenant) =
        crate::source::snapshot::decode(&bytes).with_context(|| format!("{}", path.display()))?;
    let decoded = started.elapsed();
    let file = crate::model::DataFile {
        tenants: vec![tenant],
    };
    let report = crate::model::validate::validate(&file);
    let validated = started.elapsed();
    if !report.errors.is_empty() {
        for e in &report.errors {
            println!("error: {e}");
        }
        anyhow::bail!(
            "{}: {} problem(s); a sidecar would not serve this tenant",
            path.display(),
            report.errors.len()
        );
    }
    let index = crate::index::Snapshot::build(&file, meta.revision);
    let built = started.elapsed();
    drop(index);
    println!(
        "{}; decode {} ms, validate {} ms, index {} ms",
        checked(path, &meta),
        decoded.as_millis(),
        (validated - decoded).as_millis(),
        (built - validated).as_millis()
    );
    Ok(())
}

/// What `permd snapshot FILE` says of a snapshot that passed.
fn checked(path: &std::path::Path, meta: &crate::source::snapshot::SnapshotMeta) -> String {
    format!(
        "{}: ok: tenant '{}', revision {}, stream sequence {}, {} records, {} bytes",
        path.display(),
        meta.tenant,
        meta.revision,
        meta.stream_seq,
        meta.records,
        meta.bytes
    )
}
