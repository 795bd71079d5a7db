//! The fleet end to end, with real processes (docs/fleet.md): PostgreSQL →
//! two `permd relay` → a nats-server of the test's own (JetStream, file
//! storage in a scratch dir) → 20 `permd serve --nats-url` on loopback.
//!
//! Without `nats-server` on PATH, or PostgreSQL, the tests print a notice
//! and pass, unless `CI` is set (CI has both: there it is a failure).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::pg::TestDb;
use common::requests::{batch, demo_contacts, user};
use common::server::{
    ServeProcess, TestServer, authorizer, bounded_by, demo_file, free_port, scratch_dir,
};
use common::skip;
use permd::index::{Engine, Snapshot};
use permd::model::data::DataFile;
use permd::pb;
use permd::source::postgres as pg;
use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};
use uuid::Uuid;

const SIDECARS: usize = 20;
const WRITERS: usize = 4;
const TRANSACTIONS: usize = 40;
/// Every wait here is bounded by this.
const CATCH_UP: Duration = Duration::from_secs(150);

/// The demo tenant, and a copy of it as `acme`: two tenants.
fn two_tenants() -> DataFile {
    let demo = demo_file().tenants[0].clone();
    let mut acme = demo.clone();
    acme.id = "acme".to_owned();
    DataFile {
        tenants: vec![demo, acme],
    }
}

/// A nats-server with JetStream on a port and store of the test's own.
struct Nats {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
}

impl Nats {
    async fn start(store: &Path) -> Nats {
        let mut nats = Nats {
            child: None,
            port: free_port(),
            store: store.to_owned(),
        };
        nats.restart().await;
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (if running) and starts it again on the same port and store.
    async fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nats-server listens"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Whether nats-server can run here.
async fn nats_server() -> Option<()> {
    let probe = Command::new("nats-server")
        .arg("--version")
        .output()
        .await
        .map_err(|e| e.to_string())
        .and_then(|o| {
            if o.status.success() {
                Ok(())
            } else {
                Err("nats-server --version failed".to_owned())
            }
        });
    skip::available(
        probe,
        "nats-server",
        "SKIPPED: nats-server not found (Debian: apt-get install nats-server)",
    )
}

/// A `permd relay` whose log goes to `log`.
fn relay(db: &str, nats: &Nats, prefix: &str, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_permd"))
        .args([
            "relay",
            "--database-url",
            db,
            "--nats-url",
            &nats.url(),
            "--nats-prefix",
            prefix,
        ])
        .args([
            "--no-metrics",
            "--snapshot-every",
            "25",
            "--snapshot-interval",
            "2s",
            "--stream-max-age",
            "1h",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A `permd serve --nats-url` whose log goes to `log`. Both ports are
/// the kernel's pick (`:0`), read back from the log: ports picked by the
/// test could be taken by another process before the sidecar binds them.
async fn sidecar(nats: &Nats, prefix: &str, extra: &[&str], log: &Path) -> ServeProcess {
    let child = Command::new(env!("CARGO_BIN_EXE_permd"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args(["--nats-url", &nats.url(), "--nats-prefix", prefix])
        .args(extra.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let port_after = |text: &str, key: &str| -> Option<u16> {
        let at = text.find(key)? + key.len();
        text[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let (Some(port), Some(metrics)) = (
            port_after(&text, "permd serving listen=127.0.0.1:"),
            port_after(&text, "metrics on /metrics metrics=127.0.0.1:"),
        ) {
            return ServeProcess {
                child,
                port,
                metrics_port: Some(metrics),
            };
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the sidecar logged its ports within 30 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The last lines of a log, for a failure message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// The revision a sidecar answers `tenant` at (0 before it has data).
async fn answered_revision(s: &ServeProcess, tenant: &str) -> u64 {
    let Ok(channel) = tonic::transport::Endpoint::from_shared(s.url())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
    else {
        return 0;
    };
    let request = pb::BatchCheckRequest {
        tenant: tenant.to_owned(),
        ..batch(user("carol"), "contacts", "view", &demo_contacts(1))
    };
    authorizer(channel)
        .batch_check(request)
        .await
        .map_or(0, |r| r.into_inner().revision)
}

async fn wait_for_revision(sidecars: &[(ServeProcess, PathBuf)], tenant: &str, revision: u64) {
    let started = Instant::now();
    for (i, (s, log)) in sidecars.iter().enumerate() {
        loop {
            let at = answered_revision(s, tenant).await;
            if at >= revision {
                break;
            }
            assert!(
                started.elapsed() < CATCH_UP,
                "sidecar {i} answers {tenant} at revision {at}, not {revision}, after {} s; its log ends:\n{}",
                CATCH_UP.as_secs(),
                tail(log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A counter of a sidecar's /metrics (0 when absent).
async fn metric(s: &ServeProcess, name: &str) -> f64 {
    let port = s.metrics_port.unwrap();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Connections to the database by permd processes, from pg_stat_activity.
async fn permd_connections(conn: &mut PgConnection, db: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'permd'",
    )
    .bind(db)
    .fetch_one(conn)
    .await
    .unwrap()
}

/// A writer's connection, named so it is not counted as permd's.
async fn writer(url: &str) -> PgConnection {
    PgConnection::connect(&format!("{url}?application_name=fleet-test-writer"))
        .await
        .unwrap()
}

/// The BatchCheck answers of a few principals and actions over every
/// Contact of both tenants, as comparable text.
async fn answers(url: String, ids: &[Uuid], tenants: &[&str]) -> Vec<String> {
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    let mut client = authorizer(channel);
    let mut out = Vec::new();
    for tenant in tenants {
        for who in ["carol", "dave", "alice", "erin"] {
            for action in ["view", "edit", "archive"] {
                let request = pb::BatchCheckRequest {
                    tenant: (*tenant).to_owned(),
                    ..batch(user(who), "contacts", action, ids)
                };
                out.push(match client.batch_check(request).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        let mask: std::collections::BTreeMap<_, _> =
                            r.field_mask.map(|m| m.fields).unwrap_or_default().into_iter().collect();
                        let denied: Vec<(u32, i32)> = r.denials.iter().map(|d| (d.position, d.reason)).collect();
                        format!(
                            "{tenant} {who} {action}: {} allowed (mask {:016x}), {} denied (reasons {:016x}), fields {mask:?}",
                            r.allowed_count,
                            digest(&r.allowed),
                            denied.len(),
                            digest(&denied)
                        )
                    }
                    Err(e) => format!("{tenant} {who} {action}: {:?} {}", e.code(), e.message()),
                });
            }
        }
    }
    out
}

/// A short fingerprint of a long answer.
fn digest(value: &impl std::hash::Hash) -> u64 {
    use std::hash::{DefaultHasher, Hasher};
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Transaction `i` of writer `w`: flips one Contact of each tenant between
/// live and archived, so every transaction touches both tenants.
fn transaction(w: usize, i: usize) -> String {
    let n = (w * TRANSACTIONS + i) as u64;
    let id = demo_contacts(n + 1)[n as usize];
    format!(
        "UPDATE permd.records SET archived = NOT archived WHERE tenant = 'demo' AND id = '{id}'; \
         UPDATE permd.records SET archived = NOT archived WHERE tenant = 'acme' AND id = '{id}';"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sidecars_follow_postgres_through_two_relays_and_nats() {
    bounded_by(Duration::from_secs(600), async {
        if nats_server().await.is_none() {
            return;
        }
        let Some((db, pool)) = TestDb::loaded("fleet", &two_tenants()).await else {
            return;
        };
        pool.close().await;
        let scratch = scratch_dir("fleet");
        let mut nats = Nats::start(&scratch.join("jetstream")).await;
        let prefix = format!("fleet{}", std::process::id());
        let logs = [scratch.join("relay-a.log"), scratch.join("relay-b.log")];
        let mut relays = vec![
            Some(relay(&db.url, &nats, &prefix, &logs[0])),
            Some(relay(&db.url, &nats, &prefix, &logs[1])),
        ];

        // 19 sidecars now (one serving only `demo`); the 20th joins late.
        let mut sidecars: Vec<(ServeProcess, PathBuf)> = Vec::with_capacity(SIDECARS);
        for i in 0..SIDECARS - 1 {
            let extra: &[&str] = if i == 0 { &["--tenants", "demo"] } else { &[] };
            let log = scratch.join(format!("sidecar-{i}.log"));
            sidecars.push((sidecar(&nats, &prefix, extra, &log).await, log));
        }
        wait_for_revision(&sidecars, "demo", 1).await;
        wait_for_revision(&sidecars[1..], "acme", 1).await;
        let mut watcher = writer(&db.url).await;
        let connections_with_sidecars = permd_connections(&mut watcher, &db.name).await;

        // 4 writers × 40 transactions; meanwhile: the active relay dies,
        // nats-server restarts, a sidecar starts late.
        let done = Arc::new(AtomicUsize::new(0));
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let url = db.url.clone();
            let done = done.clone();
            writers.push(tokio::spawn(async move {
                let mut conn = writer(&url).await;
                for i in 0..TRANSACTIONS {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(transaction(w, i)))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
            }));
        }
        let progress = |n: usize| {
            let done = done.clone();
            async move {
                while done.load(Ordering::SeqCst) < n {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };

        progress(40).await;
        let active = (0..2)
            .find(|&i| {
                std::fs::read_to_string(&logs[i])
                    .unwrap_or_default()
                    .contains("active: took the relay lease")
            })
            .expect("one relay is active");
        let mut killed = relays[active].take().unwrap();
        killed.kill().await.unwrap();
        let killed_at = Instant::now();
        let standby = &logs[1 - active];
        while !std::fs::read_to_string(standby)
            .unwrap_or_default()
            .contains("active: took the relay lease")
        {
            assert!(killed_at.elapsed() < Duration::from_secs(5), "the standby takes over within 5 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let takeover = killed_at.elapsed();

        progress(80).await;
        nats.restart().await;

        progress(120).await;
        let log = scratch.join(format!("sidecar-{}.log", SIDECARS - 1));
        sidecars.push((sidecar(&nats, &prefix, &[], &log).await, log));

        for w in writers {
            w.await.unwrap();
        }
        let mut check = writer(&db.url).await;
        let final_revision: i64 = sqlx::query_scalar("SELECT value FROM permd.revision")
            .fetch_one(&mut check)
            .await
            .unwrap();
        let final_revision = final_revision as u64;
        assert_eq!(final_revision, 1 + (WRITERS * TRANSACTIONS) as u64);
        wait_for_revision(&sidecars, "demo", final_revision).await;
        wait_for_revision(&sidecars[1..], "acme", final_revision).await;

        // No sidecar reloaded: a relay failover and a NATS restart are
        // resumed from the stream.
        for (i, (s, log)) in sidecars.iter().enumerate() {
            assert_eq!(metric(s, "permd_feed_reloads_total").await, 0.0, "sidecar {i} reloaded:\n{}", tail(log));
        }
        // PostgreSQL sees the relays only.
        let connections = permd_connections(&mut check, &db.name).await;
        assert!(
            connections_with_sidecars <= 2 * 6 && connections <= 2 * 6,
            "{connections_with_sidecars} permd connections with {} sidecars, {connections} at the end",
            SIDECARS - 1
        );

        // Every sidecar answers as a fresh bootstrap from PostgreSQL.
        let (file, revision) = pg::bootstrap(&pg::connect(&db.url).await.unwrap()).await.unwrap();
        assert_eq!(revision, final_revision);
        let fresh = TestServer::start(Arc::new(Engine::new(Snapshot::build(&file, revision), 100_000))).await;
        let ids = demo_contacts(10_000);
        let want = answers(fresh.url(), &ids, &["demo", "acme"]).await;
        assert!(want.iter().any(|a| a.contains("acme carol view") && !a.contains("NotFound")));
        for (i, (s, _)) in sidecars.iter().enumerate() {
            let tenants: &[&str] = if i == 0 { &["demo"] } else { &["demo", "acme"] };
            let got = answers(s.url(), &ids, tenants).await;
            let expected: Vec<&String> = want.iter().filter(|a| tenants.iter().any(|t| a.starts_with(&format!("{t} ")))).collect();
            assert_eq!(got.iter().collect::<Vec<_>>(), expected, "sidecar {i}");
        }
        // The sidecar serving only `demo` holds nothing of `acme`.
        let only_demo = answers(sidecars[0].0.url(), &ids[..1], &["acme"]).await;
        assert!(only_demo.iter().all(|a| a.contains("NotFound")), "{only_demo:?}");

        eprintln!(
            "fleet: {SIDECARS} sidecars reached revision {final_revision}; standby took over in {} ms; \
             {connections} permd connections to PostgreSQL (relays only), {connections_with_sidecars} with the sidecars running",
            takeover.as_millis()
        );
        drop(relays);
        drop(nats);
        let _ = std::fs::remove_dir_all(&scratch);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_row_holds_only_its_tenant_in_nats_mode_and_a_repair_resumes_it() {
    bounded_by(Duration::from_secs(300), async {
        if nats_server().await.is_none() {
            return;
        }
        let Some((db, pool)) = TestDb::loaded("fleetpoison", &two_tenants()).await else {
            return;
        };
        pool.close().await;
        let scratch = scratch_dir("fleetpoison");
        let nats = Nats::start(&scratch.join("jetstream")).await;
        let prefix = format!("poison{}", std::process::id());
        let _relay = relay(&db.url, &nats, &prefix, &scratch.join("relay.log"));
        let log = scratch.join("sidecar.log");
        let sidecars = vec![(sidecar(&nats, &prefix, &[], &log).await, log)];
        wait_for_revision(&sidecars, "acme", 1).await;
        let s = &sidecars[0].0;
        let mut w = writer(&db.url).await;
        let id = demo_contacts(1)[0];

        // The database refuses the row; forced in (a writer of another
        // version), it holds back only `acme`.
        let poison = format!(
            "UPDATE permd.records SET contact = '{{\"emial\": \"x@example.com\"}}' WHERE tenant = 'acme' AND id = '{id}'"
        );
        assert!(sqlx::raw_sql(sqlx::AssertSqlSafe(poison.clone())).execute(&mut w).await.is_err());
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET LOCAL permd.skip_validation = 'on'; {poison}")))
            .execute(&mut w)
            .await
            .unwrap(); // revision 2
        sqlx::raw_sql(sqlx::AssertSqlSafe(transaction(0, 1))).execute(&mut w).await.unwrap(); // 3: both tenants
        wait_for_revision(&sidecars, "demo", 3).await;
        assert_eq!(answered_revision(s, "acme").await, 1, "acme answers at its last good revision");
        let started = Instant::now();
        while metric(s, "permd_tenant_stuck{tenant=\"acme\"}").await != 1.0 {
            assert!(started.elapsed() < CATCH_UP, "permd_tenant_stuck{{tenant=\"acme\"}} is 1");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Repairing the row resumes it, with the change that waited.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "UPDATE permd.records SET contact = '{{\"email\": \"x@example.com\"}}' WHERE tenant = 'acme' AND id = '{id}'"
        )))
        .execute(&mut w)
        .await
        .unwrap(); // 4
        wait_for_revision(&sidecars, "acme", 4).await;
        assert_eq!(metric(s, "permd_tenant_stuck{tenant=\"acme\"}").await, 0.0);
        let (file, revision) = pg::bootstrap(&pg::connect(&db.url).await.unwrap()).await.unwrap();
        let fresh = TestServer::start(Arc::new(Engine::new(Snapshot::build(&file, revision), 100_000))).await;
        let ids = demo_contacts(10_000);
        assert_eq!(
            answers(s.url(), &ids, &["demo", "acme"]).await,
            answers(fresh.url(), &ids, &["demo", "acme"]).await
        );
        drop(nats);
        let _ = std::fs::remove_dir_all(&scratch);
    })
    .await;
}
