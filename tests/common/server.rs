//! permd served for a test, and the processes around it.
//!
//! - [`TestServer`]: `serve_full` in this process on `127.0.0.1:<ephemeral>`,
//!   set up by a [`ServerBuilder`] (limits, TLS, readiness, Admin) and
//!   stopped when dropped; the engine it serves stays at hand, so a test can
//!   compare the wire answer with the in-process one.
//! - [`Serve`] / [`ServeProcess`]: the real `permd serve` binary as a child
//!   process on a free port, killed when dropped, with a bounded wait until
//!   it answers.
//! - [`bounded`]: every async test body runs under a time limit, so a hang
//!   is a failure instead of a stuck CI job.
//! - The demo tenant's data and engines, and what the demo engine answers
//!   for the example clients' request.
//! - Other child processes run to their end within a limit
//!   ([`output_within`], [`run_to_end`]) and scratch directories.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use permd::index::{DEFAULT_MAX_BATCH, Engine, PrincipalKind, Snapshot};
use permd::model::{ActionContext, DataFile};
use permd::pb::{admin_client::AdminClient, authorizer_client::AuthorizerClient};
use permd::server::{AdminService, Extras, Limits, serve_full};
use permd::source::demo::{DEMO_TENANT, contact_id, demo_data};
use permd::source::postgres::feed::Readiness;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, ServerTlsConfig};

use super::requests::question;

/// No test body may run longer than this (see [`bounded`]).
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// No single RPC of a [`TestServer::channel`] may take longer than this.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a `permd serve` child may take to answer (see [`ServeProcess`]).
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients accept answers this large: 100,000 ids come back in one message.
const CLIENT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Time limits
// ---------------------------------------------------------------------------

/// Runs a test body under [`TEST_TIMEOUT`].
pub async fn bounded(body: impl Future<Output = ()>) {
    bounded_by(TEST_TIMEOUT, body).await;
}

/// Runs a test body under `limit`: for tests that install or run a runtime
/// (Node, Python), which take longer than [`TEST_TIMEOUT`].
pub async fn bounded_by(limit: Duration, body: impl Future<Output = ()>) {
    tokio::time::timeout(limit, body)
        .await
        .expect("test exceeded its time limit");
}

// ---------------------------------------------------------------------------
// The demo tenant
// ---------------------------------------------------------------------------

/// The demo data, generated once per test binary (it is 10,800 records).
pub fn demo_file() -> &'static DataFile {
    static DATA: OnceLock<DataFile> = OnceLock::new();
    DATA.get_or_init(demo_data)
}

/// A new engine over the demo tenant at revision 1: for tests that change
/// it (Admin writes) or must not share it.
pub fn demo_engine() -> Arc<Engine> {
    Arc::new(Engine::new(
        Snapshot::build(demo_file(), 1),
        DEFAULT_MAX_BATCH,
    ))
}

/// One engine over the demo tenant, shared by every test of a binary that
/// only reads it, so each test does not build its own.
pub fn shared_demo_engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE.get_or_init(demo_engine).clone()
}

/// What the engine answers in-process to the example clients' request
/// (`bulk_send_email` on the first `count` demo Contacts): the clients
/// print the same request's answer, so the two must agree.
pub struct DemoAnswer {
    pub allowed: u64,
    /// Denial reasons by name, with their counts.
    pub histogram: BTreeMap<String, u64>,
    pub revision: u64,
}

/// See [`DemoAnswer`]; `list` is the subscription list asked about.
pub fn demo_answer(engine: &Engine, principal: &str, list: Option<&str>, count: u64) -> DemoAnswer {
    let ids: Vec<uuid::Uuid> = (0..count).map(contact_id).collect();
    let mut q = question(
        DEMO_TENANT,
        PrincipalKind::User,
        principal,
        "contacts",
        "bulk_send_email",
    );
    q.ctx = ActionContext {
        subscription_list: list.map(str::to_owned),
        ..ActionContext::default()
    };
    let a = engine
        .batch_check(&q, &ids, time::OffsetDateTime::now_utc())
        .unwrap();
    let mut histogram = BTreeMap::new();
    for (_, reason) in &a.denials {
        *histogram.entry(reason.as_str().to_owned()).or_insert(0) += 1;
    }
    DemoAnswer {
        allowed: u64::from(a.allowed_count),
        histogram,
        revision: a.revision,
    }
}

/// The example clients' `--json` report (Python and Node print the same
/// shape) says what the engine computes for `count` Contacts.
#[track_caller]
pub fn assert_client_report(report: &serde_json::Value, count: u64, answer: &DemoAnswer) {
    let services: Vec<&str> = report["services"]
        .as_array()
        .expect("services is a list")
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert!(
        services.contains(&"permd.v1.Authorizer"),
        "reflection (v1alpha) lists the Authorizer: {services:?}"
    );
    assert_eq!(report["health"], "SERVING");
    assert_eq!(report["count"], count);
    assert_eq!(report["revision"], answer.revision);
    assert_eq!(report["allowed_count"], answer.allowed, "{report}");
    assert_eq!(
        report["allowed_bits"], answer.allowed,
        "bitmask agrees: {report}"
    );
    assert_eq!(report["denied_count"], count - answer.allowed);
    let got: BTreeMap<String, u64> = report["denials"]
        .as_object()
        .expect("denials is an object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("a count")))
        .collect();
    assert_eq!(got, answer.histogram, "denial reasons by name");
}

// ---------------------------------------------------------------------------
// permd in this process
// ---------------------------------------------------------------------------

/// permd's gRPC server in this process on an ephemeral loopback port. The
/// serving task is aborted when this is dropped, so a failing test does not
/// leave it running; [`TestServer::begin_shutdown`] and
/// [`TestServer::stopped`] test the graceful path instead.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The engine being served: the in-process answers to compare with.
    pub engine: Arc<Engine>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// How a [`TestServer`] is set up; every setting defaults to what
/// `permd serve` does without flags (file mode: always ready, no Admin).
pub struct ServerBuilder {
    engine: Arc<Engine>,
    limits: Limits,
    tls: Option<ServerTlsConfig>,
    readiness: Option<watch::Receiver<Readiness>>,
    admin: Option<(String, Option<PgPool>)>,
}

impl ServerBuilder {
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_message_bytes = bytes;
        self
    }

    pub fn tls(mut self, tls: ServerTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Health and readiness follow a change feed's state.
    pub fn readiness(mut self, readiness: watch::Receiver<Readiness>) -> Self {
        self.readiness = Some(readiness);
        self
    }

    /// Serves the Admin service with `token`; with a pool, writes go
    /// through to PostgreSQL.
    pub fn admin(mut self, token: &str, database: Option<PgPool>) -> Self {
        self.admin = Some((token.to_owned(), database));
        self
    }

    pub async fn start(self) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let extras = Extras {
            readiness: self.readiness,
            admin: self.admin.map(|(token, database)| {
                AdminService::new(self.engine.clone(), database, token).unwrap()
            }),
            ..Extras::default()
        };
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(serve_full(
            self.engine.clone(),
            listener,
            self.limits,
            self.tls,
            extras,
            async move {
                let _ = rx.await;
            },
        ));
        TestServer {
            addr,
            engine: self.engine,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }
}

impl TestServer {
    /// Serves `engine` with the defaults.
    pub async fn start(engine: Arc<Engine>) -> TestServer {
        Self::builder(engine).start().await
    }

    /// Serves `engine` with the defaults, and a client of it: what most
    /// tests start with.
    pub async fn with_client(engine: Arc<Engine>) -> (TestServer, AuthorizerClient<Channel>) {
        let server = Self::start(engine).await;
        let client = server.client().await;
        (server, client)
    }

    pub fn builder(engine: Arc<Engine>) -> ServerBuilder {
        ServerBuilder {
            engine,
            limits: Limits::default(),
            tls: None,
            readiness: None,
            admin: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A plaintext HTTP/2 connection; each RPC on it is bounded by
    /// [`RPC_TIMEOUT`].
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.url())
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(RPC_TIMEOUT)
            .connect()
            .await
            .unwrap()
    }

    /// An Authorizer client on a connection of its own.
    pub async fn client(&self) -> AuthorizerClient<Channel> {
        authorizer(self.channel().await)
    }

    /// An Admin client on a connection of its own.
    pub async fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel().await)
    }

    /// Resolves the shutdown future: the server stops accepting and drains
    /// what is in flight.
    pub fn begin_shutdown(&mut self) {
        self.shutdown
            .take()
            .expect("shutdown begins once")
            .send(())
            .unwrap();
    }

    /// Waits (at most `within`) for `serve` to return after
    /// [`TestServer::begin_shutdown`]; its own result.
    pub async fn stopped(&mut self, within: Duration) -> anyhow::Result<()> {
        let handle = self.handle.take().expect("stopped is awaited once");
        tokio::time::timeout(within, handle)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task did not panic")
    }

    /// Shuts down gracefully and requires `serve` to return Ok within 15 s.
    pub async fn shut_down(mut self) {
        self.begin_shutdown();
        self.stopped(Duration::from_secs(15))
            .await
            .expect("serve returns Ok");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}

/// Asserts health says SERVING for the Authorizer.
pub async fn assert_serving(channel: Channel) {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "permd.v1.Authorizer".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);
}

/// A client on a connection of its own that grants only HTTP/2's default
/// 64 KiB windows: with nobody reading, a large stream stays open.
pub async fn slow_reader(url: String) -> AuthorizerClient<Channel> {
    let channel = Endpoint::from_shared(url)
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    AuthorizerClient::new(channel)
}

/// Whether a LookupRecords stream is admitted within two seconds of
/// retrying: a stream permit given back is noticed at the server's next
/// send.
pub async fn stream_admitted(
    client: &mut AuthorizerClient<Channel>,
    request: permd::pb::LookupRecordsRequest,
) -> bool {
    for _ in 0..100 {
        if client.lookup_records(request.clone()).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// An Authorizer client that accepts the largest answers permd sends.
pub fn authorizer(channel: Channel) -> AuthorizerClient<Channel> {
    AuthorizerClient::new(channel)
        .max_decoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
        .max_encoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
}

// ---------------------------------------------------------------------------
// permd as a child process
// ---------------------------------------------------------------------------

/// A port nobody listens on right now, for a child process to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `permd serve --listen 127.0.0.1:<free port>`, with `--no-metrics` unless
/// [`Serve::metrics`] asks for a scrape port (the default metrics port
/// would collide between tests running at once).
pub struct Serve {
    command: Command,
    port: u16,
    metrics_port: Option<u16>,
}

impl Serve {
    pub fn new() -> Serve {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_permd"));
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .kill_on_drop(true);
        Serve {
            command,
            port,
            metrics_port: None,
        }
    }

    pub fn args<'a>(mut self, args: impl IntoIterator<Item = &'a str>) -> Self {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self
    }

    /// Serves `/metrics` on a free port of its own.
    pub fn metrics(mut self) -> Self {
        self.metrics_port = Some(free_port());
        self
    }

    /// Discards what the process prints on stdout (its logs), for tests
    /// that start several.
    pub fn quiet(mut self) -> Self {
        self.command.stdout(Stdio::null());
        self
    }

    /// Writes the process's logs (stderr) to `path`.
    pub fn log_to(mut self, path: &std::path::Path) -> Self {
        self.command.stderr(std::fs::File::create(path).unwrap());
        self
    }

    pub fn spawn(mut self) -> ServeProcess {
        match self.metrics_port {
            Some(port) => self
                .command
                .args(["--metrics-listen", &format!("127.0.0.1:{port}")]),
            None => self.command.arg("--no-metrics"),
        };
        ServeProcess {
            child: self.command.spawn().unwrap(),
            port: self.port,
            metrics_port: self.metrics_port,
        }
    }
}

impl Default for Serve {
    fn default() -> Self {
        Serve::new()
    }
}

/// Resident memory of a process now (VmRSS of `/proc/<pid>/status`), in MiB.
pub fn resident_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmRSS")
}

/// The most a process has had resident so far (VmHWM), in MiB.
pub fn peak_resident_mib(pid: u32) -> f64 {
    proc_status_mib(pid, "VmHWM")
}

fn proc_status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    kib / 1024.0
}

/// A running `permd serve` child, killed when dropped.
pub struct ServeProcess {
    pub child: Child,
    pub port: u16,
    pub metrics_port: Option<u16>,
}

impl ServeProcess {
    /// The process's resident memory now, in MiB.
    pub fn resident_mib(&self) -> f64 {
        resident_mib(self.child.id().unwrap())
    }
    /// The process's peak resident memory so far, in MiB.
    pub fn peak_resident_mib(&self) -> f64 {
        peak_resident_mib(self.child.id().unwrap())
    }
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A connection once the process answers, within [`START_TIMEOUT`].
    pub async fn channel(&self) -> Channel {
        self.channel_within(START_TIMEOUT).await
    }

    /// A connection once the process answers, within `limit` (a process that
    /// first loads a database takes longer).
    pub async fn channel_within(&self, limit: Duration) -> Channel {
        let started = Instant::now();
        loop {
            let endpoint = Endpoint::from_shared(self.url())
                .unwrap()
                .connect_timeout(Duration::from_secs(5));
            if let Ok(channel) = endpoint.connect().await {
                return channel;
            }
            assert!(
                started.elapsed() < limit,
                "permd serve on {} came up within {} s",
                self.url(),
                limit.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An Authorizer client, once the process answers.
    pub async fn client(&self) -> AuthorizerClient<Channel> {
        authorizer(self.channel().await)
    }
}

// ---------------------------------------------------------------------------
// Other child processes and files
// ---------------------------------------------------------------------------

/// A path in this repository (tests run from elsewhere too).
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Runs `command` to its end, from the repository root with no stdin,
/// killed if it takes longer than `limit`. `Err` says why it did not
/// finish (`what` names it); a failing exit status is still `Ok`.
pub async fn output_within(
    mut command: Command,
    what: &str,
    limit: Duration,
) -> Result<Output, String> {
    command
        .current_dir(repo_path(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match tokio::time::timeout(limit, command.output()).await {
        Err(_) => Err(format!(
            "`{what}` did not finish within {} s",
            limit.as_secs()
        )),
        Ok(Err(e)) => Err(format!("cannot run `{what}`: {e}")),
        Ok(Ok(out)) => Ok(out),
    }
}

/// A command for this build's permd binary.
pub fn permd() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_permd"))
}

/// Runs a short command to its end: success, stdout, stderr.
pub fn run_to_end(command: &mut std::process::Command) -> (bool, String, String) {
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A directory of this test process's own under the temp dir
/// (`permd-<name>-<pid>`, so runs at once do not meet); the test removes it
/// when it passes, so a failure leaves it to look at.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("permd-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the metrics (probe) port answers to `request`, status line first.
pub async fn metrics_get(port: u16, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

/// A scrape of `/metrics` on `port`.
pub async fn scrape(port: u16) -> String {
    metrics_get(port, b"GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n").await
}

/// The value of the first sample line of a scrape starting with `prefix`.
pub fn metric_value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
