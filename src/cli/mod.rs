//! The `permd` command line: `serve`, `check`, `explain`, `validate`, `test`,
//! `gen`, `bench`, `demo-data`, and for PostgreSQL `migrate`, `load`, `prune`.

/// `println!` that stops quietly when the reader has gone
/// (`permd check … | head`) instead of panicking on the broken pipe.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod access;
mod admin;
mod assertions;
mod bench;
mod client;
mod config;
mod migrate_data;
mod relay;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::index::{DEFAULT_MAX_BATCH, Engine, Snapshot};
use crate::server::limits;
use crate::source::generate::{GenSpec, generate};
use crate::source::{demo::demo_data, load_file};

#[derive(Parser, Debug)]
#[command(
    name = "permd",
    version,
    about = "gRPC authorization sidecar: bulk record-level permission checks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the Authorizer gRPC API (plus health and reflection).
    Serve(Box<ServeArgs>),
    /// Ask a running permd whether a principal may act on records (BatchCheck / Check).
    Check(client::CheckArgs),
    /// Ask a running permd why a principal may or may not act on a record.
    Explain(client::ExplainArgs),
    /// List every record a principal may act on (LookupRecords).
    Lookup(access::LookupArgs),
    /// What a principal may do to objects (ObjectAccess) or, given record
    /// ids, to those records (RecordAccess).
    Access(access::AccessArgs),
    /// Write entities or read the revision through the Admin service.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Check a data file and report every problem, without serving it.
    Validate {
        /// YAML or JSON snapshot file.
        file: PathBuf,
    },
    /// Run assertion files: expected decisions and field levels per principal,
    /// action and record; prints every mismatch and exits non-zero on any.
    Test {
        /// Assertion files (YAML); see examples/assertions.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Rewrite a data file written for model v1 into v2: what is mechanical
    /// is mapped, what needs a person is listed (exit status 1).
    MigrateData(migrate_data::MigrateDataArgs),
    /// Publish the PostgreSQL changelog and tenant snapshots to NATS
    /// JetStream, for sidecars serving with --nats-url (docs/fleet.md). Run
    /// two or more: one is active, the others take over when it goes.
    Relay(relay::RelayArgs),
    /// Read a tenant snapshot file (as the relay writes them): check it,
    /// and say what it holds and how long it takes to load.
    Snapshot(relay::SnapshotArgs),
    /// Generate a deterministic tenant at any scale, for benchmarks and load tests.
    Gen(GenArgs),
    /// Load-test a running permd over gRPC and report latency and throughput.
    Bench(bench::BenchArgs),
    /// Print the built-in demo tenant as a data file.
    DemoData {
        #[arg(long, value_enum, default_value_t = Format::Yaml)]
        format: Format,
    },
    /// Create or upgrade permd's schema (`permd.*`) in a PostgreSQL database.
    Migrate {
        #[arg(long, env = "PERMD_DATABASE_URL")]
        database_url: String,
    },
    /// Import a snapshot file into PostgreSQL in one transaction: its tenants
    /// end up holding exactly the file's entities. Loading the same file
    /// again changes nothing.
    Load {
        /// YAML or JSON snapshot file.
        file: PathBuf,
        #[arg(long, env = "PERMD_DATABASE_URL")]
        database_url: String,
    },
    /// Delete changelog transactions older than the retention (sidecars
    /// serving with --changelog-retention do this every minute).
    Prune {
        #[arg(long, env = "PERMD_DATABASE_URL")]
        database_url: String,
        /// Keep this much history, e.g. 7d; `0` prunes all but the latest.
        #[arg(long, default_value = "7d")]
        retention: config::Span,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Yaml,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct GenArgs {
    /// Output file; `.json` writes JSON (fast to load), anything else YAML.
    /// `-` writes JSON to stdout.
    #[arg(long, short)]
    pub out: PathBuf,
    #[arg(long, default_value = "bench")]
    pub tenant: String,
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: usize,
    #[arg(long, default_value_t = 2_000)]
    pub users: usize,
    #[arg(long, default_value_t = 50)]
    pub groups: usize,
    #[arg(long, default_value_t = 20)]
    pub roles: usize,
    /// Custom objects related to Contacts.
    #[arg(long, default_value_t = 5)]
    pub custom_objects: usize,
    /// Records of each custom object per Contact.
    #[arg(long, default_value_t = 0.05)]
    pub custom_records_per_contact: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// How logs are written to stderr.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Settings come from flags, then PERMD_* environment variables, then the
/// `--config` file, then the defaults shown here.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// YAML file with any of these settings (keys as the flags, with `_`:
    /// `max_batch: 5000`). Flags and environment variables win over it.
    #[arg(long, env = "PERMD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the settings this would run with, then exit.
    #[arg(long)]
    pub print_config: bool,
    /// Log format on stderr; `RUST_LOG` sets the level.
    #[arg(long, env = "PERMD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    /// Address to listen on. Loopback by default: permd is a sidecar.
    #[arg(long, env = "PERMD_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Snapshot file (YAML or JSON) to serve; the built-in demo tenant if absent.
    #[arg(long, env = "PERMD_DATA")]
    pub data: Option<PathBuf>,
    /// Most records one BatchCheck or RecordAccess may carry.
    #[arg(long, env = "PERMD_MAX_BATCH", default_value_t = DEFAULT_MAX_BATCH)]
    pub max_batch: usize,
    /// Largest gRPC message accepted or sent, in bytes.
    #[arg(long, env = "PERMD_MAX_MESSAGE_BYTES", default_value_t = crate::server::DEFAULT_MAX_MESSAGE_BYTES)]
    pub max_message_bytes: usize,
    /// Most unary requests answered at once; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "PERMD_MAX_CONCURRENT_REQUESTS", default_value_t = crate::server::limits::DEFAULT_MAX_CONCURRENT_REQUESTS)]
    pub max_concurrent_requests: usize,
    /// Most LookupRecords streams open at once; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "PERMD_MAX_CONCURRENT_STREAMS", default_value_t = crate::server::limits::DEFAULT_MAX_CONCURRENT_STREAMS)]
    pub max_concurrent_streams: usize,
    /// Longest tenant, principal id, object, action, subscription list or
    /// field name a request may carry.
    #[arg(long, env = "PERMD_MAX_NAME_BYTES", default_value_t = limits::DEFAULT_MAX_NAME_BYTES)]
    pub max_name_bytes: usize,
    /// Most `context.fields` in one request.
    #[arg(long, env = "PERMD_MAX_CONTEXT_FIELDS", default_value_t = limits::DEFAULT_MAX_CONTEXT_FIELDS)]
    pub max_context_fields: usize,
    /// Most requests waiting for their `min_revision` at once (they hold
    /// no compute permit while they wait); more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "PERMD_MAX_REVISION_WAITERS", default_value_t = limits::DEFAULT_MAX_REVISION_WAITERS)]
    pub max_revision_waiters: usize,
    /// Longest a request waits for its `min_revision`, whatever its deadline.
    #[arg(long, env = "PERMD_MAX_MIN_REVISION_WAIT", default_value = "5s")]
    pub max_min_revision_wait: config::Span,
    /// A `min_revision` more than this many revisions ahead of the applied
    /// one is refused at once (FAILED_PRECONDITION).
    #[arg(long, env = "PERMD_MAX_REVISION_LEAD", default_value_t = limits::DEFAULT_MAX_REVISION_LEAD)]
    pub max_revision_lead: u64,
    /// Bytes of compiled answers (keys included) kept in the cache.
    #[arg(long, env = "PERMD_MAX_CACHE_BYTES", default_value_t = crate::index::DEFAULT_MAX_CACHE_BYTES)]
    pub max_cache_bytes: u64,
    /// Most client connections open at once; further ones wait in the
    /// listen backlog. `0`: half the open-files limit left after 256.
    #[arg(long, env = "PERMD_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,
    /// Most HTTP/2 streams (concurrent calls) one connection may open.
    #[arg(long, env = "PERMD_MAX_STREAMS_PER_CONNECTION", default_value_t = limits::DEFAULT_MAX_STREAMS_PER_CONNECTION)]
    pub max_streams_per_connection: u32,
    /// Largest header block of one request, in bytes.
    #[arg(long, env = "PERMD_MAX_HEADER_LIST_BYTES", default_value_t = limits::DEFAULT_MAX_HEADER_LIST_BYTES)]
    pub max_header_list_bytes: u32,
    /// Most request bytes received but not yet decoded, across all
    /// connections; a request that would pass it gets RESOURCE_EXHAUSTED.
    #[arg(long, env = "PERMD_MAX_BUFFERED_REQUEST_BYTES", default_value_t = limits::DEFAULT_MAX_BUFFERED_REQUEST_BYTES)]
    pub max_buffered_request_bytes: usize,
    /// Most of those bytes one connection may hold.
    #[arg(long, env = "PERMD_MAX_BUFFERED_REQUEST_BYTES_PER_CONNECTION", default_value_t = limits::DEFAULT_MAX_BUFFERED_REQUEST_BYTES_PER_CONNECTION)]
    pub max_buffered_request_bytes_per_connection: usize,
    /// Time a request's message has to arrive whole; a slower one gets
    /// DEADLINE_EXCEEDED.
    #[arg(long, env = "PERMD_REQUEST_BODY_TIMEOUT", default_value = "10s")]
    pub request_body_timeout: config::Span,
    /// Time a new connection has to send its first bytes.
    #[arg(long, env = "PERMD_HANDSHAKE_TIMEOUT", default_value = "10s")]
    pub handshake_timeout: config::Span,
    /// A connection with no byte either way for this long is closed
    /// (keep-alive pings every 30 s keep a live client's connection busy).
    #[arg(long, env = "PERMD_IDLE_TIMEOUT", default_value = "2m")]
    pub idle_timeout: config::Span,
    /// Largest data file `--data` may name, in bytes.
    #[arg(long, env = "PERMD_MAX_DATA_FILE_BYTES", default_value_t = crate::source::file::DEFAULT_MAX_FILE_BYTES)]
    pub max_data_file_bytes: u64,
    /// Address of the Prometheus `/metrics` endpoint (plain HTTP).
    #[arg(long, env = "PERMD_METRICS_LISTEN", default_value = "127.0.0.1:9090")]
    pub metrics_listen: SocketAddr,
    /// Serve no metrics endpoint.
    #[arg(long, env = "PERMD_NO_METRICS")]
    pub no_metrics: bool,
    /// OTLP/gRPC collector to export a span per RPC to (e.g.
    /// http://otel-collector:4317); no traces when unset.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// TLS certificate (PEM). With --tls-key, every connection is TLS.
    #[arg(long, env = "PERMD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "PERMD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) whose client certificates are required: mutual TLS.
    #[arg(long, env = "PERMD_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Follow PostgreSQL instead of a file: bootstrap a snapshot, then the
    /// changelog (postgres://user:password@host/db).
    #[arg(long, env = "PERMD_DATABASE_URL", conflicts_with = "data")]
    pub database_url: Option<String>,
    /// Follow a `permd relay` through NATS JetStream instead: start from
    /// tenant snapshots, then the change stream; no database connection
    /// (docs/fleet.md), e.g. nats://127.0.0.1:4222.
    #[arg(long, env = "PERMD_NATS_URL", conflicts_with_all = ["data", "database_url"])]
    pub nats_url: Option<String>,
    /// With NATS: the relay's --nats-prefix (names the stream, the
    /// snapshot bucket and the subjects).
    #[arg(long, env = "PERMD_NATS_PREFIX", default_value = "permd")]
    pub nats_prefix: String,
    /// With NATS: a credentials file (.creds), e.g. mounted from a Secret.
    #[arg(long, env = "PERMD_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// With NATS: an auth token.
    #[arg(long, env = "PERMD_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,
    /// With NATS: serve only these tenants (comma-separated), so memory
    /// holds only what this app uses. Default: every tenant.
    #[arg(
        long,
        env = "PERMD_TENANTS",
        value_delimiter = ',',
        requires = "nats_url"
    )]
    pub tenants: Option<Vec<String>>,
    /// With a database or NATS: health turns NOT_SERVING when the snapshot
    /// has not been confirmed current for this long (the database or the
    /// relay unreachable, or the feed stopped); `0`: never.
    #[arg(long, env = "PERMD_MAX_STALENESS", default_value = "30s")]
    pub max_staleness: config::Span,
    /// With a database: prune changelog older than this (one sidecar at a
    /// time, every minute); `0` keeps it forever.
    #[arg(long, env = "PERMD_CHANGELOG_RETENTION", default_value = "7d")]
    pub changelog_retention: config::Span,
    /// Require this bearer token (at least 16 characters) on every
    /// Authorizer and AuthZEN call, for a permd reachable beyond its pod
    /// (mutual TLS, --tls-client-ca, is the other way). Health and metrics
    /// stay open.
    #[arg(long, env = "PERMD_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Decision log: `off`, `stdout`, or a file appended to; one JSON line
    /// per Authorizer call (README "Observability").
    #[arg(long, env = "PERMD_DECISION_LOG", default_value = "off")]
    pub decision_log: String,
    /// Fraction of decision-log lines kept per kind of call: `checks`
    /// (single Checks allowed), `denials` (single Checks denied), `batches`
    /// (every other call). Errors are always logged.
    #[arg(long, env = "PERMD_DECISION_LOG_SAMPLE", default_value = crate::telemetry::decisions::DEFAULT_SAMPLE)]
    pub decision_log_sample: String,
    /// Serve the AuthZEN Authorization API 1.0 (HTTP/JSON) on this address
    /// (docs/authzen.md); off when unset.
    #[arg(long, env = "PERMD_AUTHZEN_LISTEN")]
    pub authzen_listen: Option<SocketAddr>,
    /// With AuthZEN: the tenant of requests whose subject names none.
    #[arg(long, env = "PERMD_AUTHZEN_TENANT")]
    pub authzen_tenant: Option<String>,
    /// Serve the Admin service (writes) to callers presenting this bearer
    /// token (at least 16 characters). Admin is off without it, and in NATS
    /// mode (write to PostgreSQL, or through a direct-mode permd, instead).
    #[arg(
        long,
        env = "PERMD_ADMIN_TOKEN",
        hide_env_values = true,
        conflicts_with = "nats_url"
    )]
    pub admin_token: Option<String>,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("permd: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // `check --exit-code`: 1 means denied, so a failure to ask is 2.
    let failure = match &cli.command {
        Command::Check(args) if args.exit_code => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("permd: {e:#}");
            failure
        }
    }
}

/// Parses the command line and, for `serve`, merges its config file.
fn parse() -> anyhow::Result<Cli> {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| e.exit())?;
    if let (Command::Serve(args), Some(("serve", serve_matches))) =
        (&mut cli.command, matches.subcommand())
        && let Some(path) = args.config.clone()
    {
        config::ConfigFile::load(&path)?.apply(args, serve_matches);
    }
    Ok(cli)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Check(args) = cli.command {
        let _logs = crate::telemetry::init(false, None)?;
        let exit_code = args.exit_code;
        let all_allowed = client_runtime()?.block_on(client::check(args))?;
        return Ok(match (exit_code, all_allowed) {
            (true, false) => ExitCode::from(1),
            _ => ExitCode::SUCCESS,
        });
    }
    run_command(cli).map(|()| ExitCode::SUCCESS)
}

fn run_command(cli: Cli) -> anyhow::Result<()> {
    // `serve` sets up its own logs and traces inside its runtime.
    let _logs = match &cli.command {
        Command::Serve(_) | Command::Relay(_) => None,
        _ => Some(crate::telemetry::init(false, None)?),
    };
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Check(args) => client_runtime()?.block_on(client::check(args)).map(|_| ()),
        Command::Lookup(args) => client_runtime()?.block_on(access::lookup(args)),
        Command::Access(args) => client_runtime()?.block_on(access::access(args)),
        Command::Admin(command) => client_runtime()?.block_on(admin::run(command)),
        Command::Relay(args) => relay::run(args),
        Command::Snapshot(args) => relay::snapshot(args),
        Command::Explain(args) => client_runtime()?.block_on(client::explain(args)),
        Command::Validate { file } => {
            let (data, warnings) = load_file(&file)?;
            for w in &warnings {
                println!("warning: {w}");
            }
            let records: usize = data.tenants.iter().map(|t| t.records.len()).sum();
            println!(
                "{}: ok ({} tenants, {records} records)",
                file.display(),
                data.tenants.len()
            );
            Ok(())
        }
        Command::Test { files } => assertions::run(&files),
        Command::MigrateData(args) => match migrate_data::run(&args)? {
            0 => Ok(()),
            code => std::process::exit(code),
        },
        Command::Gen(args) => gen_file(args),
        Command::Bench(args) => bench::run(args),
        Command::Migrate { database_url } => client_runtime()?.block_on(async {
            let pool = crate::source::postgres::connect(&database_url).await?;
            let ran = crate::source::postgres::migrate(&pool).await?;
            println!(
                "{}: schema up to date ({ran} migration{} applied)",
                crate::source::postgres::redact(&database_url),
                if ran == 1 { "" } else { "s" }
            );
            Ok(())
        }),
        Command::Load { file, database_url } => {
            let (data, warnings) = load_file(&file)?;
            for w in &warnings {
                println!("warning: {w}");
            }
            client_runtime()?.block_on(async {
                let pool = crate::source::postgres::connect(&database_url).await?;
                crate::source::postgres::check_schema(&pool).await?;
                let loaded = crate::source::postgres::load(&pool, &data).await?;
                let records: usize = data.tenants.iter().map(|t| t.records.len()).sum();
                if loaded.revision_after == loaded.revision_before {
                    println!(
                        "{}: already loaded, nothing changed (revision {})",
                        file.display(),
                        loaded.revision_after
                    );
                } else {
                    println!(
                        "{}: loaded {} tenants, {records} records (revision {} → {})",
                        file.display(),
                        data.tenants.len(),
                        loaded.revision_before,
                        loaded.revision_after
                    );
                }
                Ok(())
            })
        }
        Command::Prune {
            database_url,
            retention,
        } => client_runtime()?.block_on(async {
            let pool = crate::source::postgres::connect(&database_url).await?;
            crate::source::postgres::check_schema(&pool).await?;
            let through = crate::source::postgres::prune(&pool, retention.0).await?;
            println!("changelog pruned through revision {through}");
            Ok(())
        }),
        Command::DemoData { format } => {
            let data = demo_data();
            let text = match format {
                Format::Yaml => serde_yaml::to_string(&data)?,
                Format::Json => serde_json::to_string_pretty(&data)?,
            };
            print_stdout(&text)
        }
    }
}

fn gen_file(args: GenArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let spec = GenSpec {
        tenant: args.tenant,
        contacts: args.contacts,
        users: args.users,
        groups: args.groups,
        roles: args.roles,
        custom_objects: args.custom_objects,
        custom_records_per_contact: args.custom_records_per_contact,
        seed: args.seed,
    };
    spec.check().map_err(anyhow::Error::msg)?;
    let data = generate(&spec);
    let records: usize = data.tenants.iter().map(|t| t.records.len()).sum();
    let json = args.out.as_os_str() == "-"
        || args
            .out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let write = |out: &mut dyn Write| -> anyhow::Result<()> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
        if json {
            serde_json::to_writer(&mut out, &data)?;
        } else {
            serde_yaml::to_writer(&mut out, &data)?;
        }
        out.flush()?;
        Ok(())
    };
    if args.out.as_os_str() == "-" {
        write(&mut std::io::stdout().lock())
    } else {
        let mut file = std::fs::File::create(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        write(&mut file).with_context(|| format!("writing {}", args.out.display()))?;
        eprintln!(
            "{}: tenant {} with {} contacts, {records} records in all",
            args.out.display(),
            spec.tenant,
            spec.contacts
        );
        Ok(())
    }
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Writes to stdout; a closed pipe (`permd demo-data | head`) is not an error.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Indexes the data a `serve` serves: the file, or the demo tenant.
fn load_snapshot(path: Option<&std::path::Path>, max_bytes: u64) -> anyhow::Result<Snapshot> {
    match path {
        None => Ok(Snapshot::build(&demo_data(), 1)),
        Some(path) => {
            let (snapshot, warnings) = crate::source::load_snapshot_file(path, max_bytes, 1)?;
            for w in warnings {
                tracing::warn!(file = %path.display(), "{w}");
            }
            Ok(snapshot)
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if args.print_config {
        return print_stdout(serde_yaml::to_string(&config::Effective::of(&args))?.trim_end());
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let _in_runtime = runtime.enter();
    crate::memory::spawn_purger().context("starting the allocator's purge thread")?;
    let _telemetry = crate::telemetry::init(
        args.log_format == LogFormat::Json,
        args.otlp_endpoint.as_deref(),
    )?;
    if args.max_batch == 0 {
        anyhow::bail!("--max-batch must be at least 1");
    }
    // Clap checks these between flags; a config file can still combine them.
    if args.nats_url.is_some() && (args.database_url.is_some() || args.data.is_some()) {
        anyhow::bail!(
            "nats_url cannot be combined with database_url or data (flags, PERMD_* variables or the config file): a sidecar follows one source"
        );
    }
    if args.nats_url.is_some() && args.admin_token.is_some() {
        anyhow::bail!(
            "admin_token cannot be combined with nats_url: in NATS mode writes go to PostgreSQL (or through a direct-mode permd), never to one sidecar's memory"
        );
    }
    if args.tenants.is_some() && args.nats_url.is_none() {
        anyhow::bail!("tenants needs nats_url: only NATS mode serves a subset of the tenants");
    }
    if args.max_concurrent_requests == 0 || args.max_concurrent_streams == 0 {
        anyhow::bail!("--max-concurrent-requests and --max-concurrent-streams must be at least 1");
    }
    if args.max_message_bytes < 1024 {
        anyhow::bail!("--max-message-bytes must be at least 1024");
    }
    let transport = match (&args.tls_cert, &args.tls_client_ca) {
        (None, _) => "plaintext",
        (Some(_), None) => "tls",
        (Some(_), Some(_)) => "mutual tls",
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            crate::server::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            }
            .server_config()?,
        ),
        _ => None,
    };
    let limits = crate::server::Limits {
        max_message_bytes: args.max_message_bytes,
        max_concurrent_requests: args.max_concurrent_requests,
        max_concurrent_streams: args.max_concurrent_streams,
        max_name_bytes: args.max_name_bytes,
        max_context_fields: args.max_context_fields,
        max_revision_waiters: args.max_revision_waiters,
        max_revision_wait: args.max_min_revision_wait.0,
        max_revision_lead: args.max_revision_lead,
        max_connections: args.max_connections,
        max_streams_per_connection: args.max_streams_per_connection,
        max_header_list_bytes: args.max_header_list_bytes,
        max_buffered_request_bytes: args.max_buffered_request_bytes,
        max_buffered_request_bytes_per_connection: args.max_buffered_request_bytes_per_connection,
        request_body_timeout: args.request_body_timeout.0,
        handshake_timeout: args.handshake_timeout.0,
        idle_timeout: args.idle_timeout.0,
    };
    limits
        .validate()
        .map_err(|e| anyhow::anyhow!("{e} (flags, PERMD_* variables or the config file)"))?;
    let api_token = args
        .api_token
        .as_deref()
        .map(|t| {
            crate::server::auth::BearerToken::new(t, "API token", "--api-token / PERMD_API_TOKEN")
        })
        .transpose()?;
    // Before the index is built, so its first revision and sizes are recorded.
    let metrics_handle = if args.no_metrics {
        None
    } else {
        Some(crate::telemetry::metrics::install().context("cannot install the metrics recorder")?)
    };
    // After the recorder, so its counters are exported from the start.
    let sample = crate::telemetry::decisions::Sample::parse(&args.decision_log_sample)
        .map_err(|e| anyhow::anyhow!("--decision-log-sample: {e}"))?;
    let decisions = crate::telemetry::decisions::Sink::parse(&args.decision_log)
        .map(|sink| crate::telemetry::decisions::DecisionLog::start(&sink, sample))
        .transpose()?
        .map(Arc::new);
    let started = std::time::Instant::now();
    let follows = args.database_url.is_some() || args.nats_url.is_some();
    let (engine, records) = match follows {
        // The feed bootstraps in the background; health stays NOT_SERVING
        // until it has.
        true => (
            Arc::new(Engine::with_cache_bytes(
                Snapshot::default(),
                args.max_batch,
                args.max_cache_bytes,
            )),
            0,
        ),
        false => {
            let loading = crate::memory::Loading::start();
            let snapshot = load_snapshot(args.data.as_deref(), args.max_data_file_bytes)?;
            let records: usize = snapshot.tenants.values().map(|t| t.record_count()).sum();
            crate::memory::settle();
            drop(loading);
            let engine = Engine::with_cache_bytes(snapshot, args.max_batch, args.max_cache_bytes);
            (Arc::new(engine), records)
        }
    };
    let shutdown = shutdown_signal();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        // One set of health statuses, served on the API port and on the
        // probe and metrics port.
        let health = tonic_health::server::HealthReporter::new();
        // NOT_SERVING until the API is served: a probe that comes first is
        // told to wait, not that the service does not exist.
        crate::server::set_health(&health, false).await;
        if let Some(handle) = metrics_handle {
            let metrics = tokio::net::TcpListener::bind(args.metrics_listen)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen for metrics on {} (--metrics-listen, or --no-metrics)",
                        args.metrics_listen
                    )
                })?;
            tracing::info!(metrics = %metrics.local_addr()?, probes = "grpc.health.v1 on the same port", "metrics on /metrics");
            tokio::spawn(crate::server::metrics_endpoint::serve(
                metrics,
                handle,
                Some(health.clone()),
                async {
                    let _ = metrics_stopped.await;
                },
            ));
        }
        let (stop_feed, feed_stopped) = tokio::sync::watch::channel(false);
        let mut extras = crate::server::Extras {
            health: Some(health),
            api_token,
            decisions,
            ..Default::default()
        };
        let mut database = None;
        if let Some(url) = &args.database_url {
            let (readiness, watch) = tokio::sync::watch::channel(Default::default());
            extras.readiness = Some(watch);
            let config = crate::source::postgres::feed::FeedConfig {
                database_url: url.clone(),
                max_staleness: args.max_staleness.0,
                retention: (!args.changelog_retention.0.is_zero())
                    .then_some(args.changelog_retention.0),
                poll_interval: std::time::Duration::from_secs(1),
            };
            tokio::spawn(crate::source::postgres::feed::run(
                engine.clone(),
                config,
                readiness,
                feed_stopped.clone(),
            ));
            // Admin writes through its own lazily connected pool.
            database = Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(std::time::Duration::from_secs(5))
                    .connect_lazy(url)
                    .with_context(|| {
                        format!(
                            "database URL '{}' is not valid",
                            crate::source::postgres::redact(url)
                        )
                    })?,
            );
        }
        if let Some(url) = &args.nats_url {
            let (readiness, watch) = tokio::sync::watch::channel(Default::default());
            extras.readiness = Some(watch);
            let mut nats = crate::source::nats::NatsConfig::new(url, &args.nats_prefix)?;
            nats.creds = args.nats_creds.clone();
            nats.token = args.nats_token.clone();
            let config = crate::source::nats::follow::FollowConfig {
                nats,
                tenants: args.tenants.as_ref().map(|t| t.iter().cloned().collect()),
                max_staleness: args.max_staleness.0,
            };
            tokio::spawn(crate::source::nats::follow::run(
                engine.clone(),
                config,
                readiness,
                feed_stopped.clone(),
            ));
        }
        if let Some(address) = args.authzen_listen {
            let authorizer = Arc::new(
                crate::server::AuthorizerService::new(
                    engine.clone(),
                    limits,
                    extras.readiness.clone(),
                )
                .with_token(extras.api_token.clone())
                .with_decision_log(extras.decisions.clone()),
            );
            extras.authorizer = Some(authorizer.clone());
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for AuthZEN on {address} (--authzen-listen)"))?;
            tracing::info!(authzen = %listener.local_addr()?, "AuthZEN on /access/v1");
            let mut stopped = feed_stopped.clone();
            tokio::spawn(crate::server::authzen::serve(
                listener,
                authorizer,
                args.authzen_tenant.clone(),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            ));
        }
        if let Some(token) = &args.admin_token {
            extras.admin = Some(crate::server::AdminService::new(
                engine.clone(),
                database,
                token.clone(),
            )?);
        }
        tracing::info!(
            listen = %listener.local_addr()?,
            transport,
            admin = args.admin_token.is_some(),
            source = match (&args.database_url, &args.nats_url, &args.data) {
                (Some(url), _, _) => crate::source::postgres::redact(url),
                (None, Some(url), _) => format!("NATS {}", crate::source::nats::redact(url)),
                (None, None, Some(p)) => p.display().to_string(),
                (None, None, None) => "built-in demo tenant".to_owned(),
            },
            records,
            revision = engine.revision(),
            load_ms = started.elapsed().as_millis() as u64,
            "permd serving"
        );
        let served =
            crate::server::serve_full(engine, listener, limits, tls, extras, shutdown).await;
        let _ = stop_feed.send(true);
        let _ = stop_metrics.send(());
        served
    })
}

/// Resolves on SIGINT or SIGTERM; the server then drains in-flight RPCs.
///
/// The handlers are registered when this is called, not when it is first
/// polled: a SIGTERM that arrives right after start-up still drains instead
/// of killing the process. Call it inside the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(term) => {},
                () = wait(interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down: draining in-flight requests");
    }
}
