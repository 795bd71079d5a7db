//! Runs the Node.js example client (examples/node/client.js, @permd/client)
//! against a permd served in-process on an ephemeral loopback port, and checks
//! what it prints against the engine's own answer for the same request.
//!
//! `npm ci --prefix examples/node` runs first when `examples/node/node_modules`
//! is missing or incomplete; its `prepare` script installs and builds the
//! `@permd/client` package (clients/node) that client.js uses. Without node
//! 20+, or when npm ci fails (no network), the test prints a `SKIPPED` notice
//! and passes, unless the `CI` environment variable is set: there a missing
//! client is a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::server::{
    DemoAnswer, TestServer, assert_client_report, bounded_by, demo_answer, demo_engine,
    output_within, repo_path,
};
use common::skip;
use permd::source::demo::DEMO_TENANT;
use tokio::process::Command;

const NODE: &str = "node";
const NPM: &str = "npm";
const MIN_NODE_MAJOR: u32 = 20;
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(240);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
const SKIP_NOTICE: &str =
    "SKIPPED: node client not runnable (needs node >= 20 and `npm ci --prefix examples/node`)";

fn example_dir() -> PathBuf {
    repo_path("examples/node")
}

/// The first `lines` lines of a tool's stderr, without stack frames.
fn head(bytes: &[u8], lines: usize) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("    at "))
        .take(lines)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether node 20+ runs and the client's packages are installed, running
/// `npm ci` when they are not. `Err` says why the client cannot run.
async fn node_ready() -> Result<(), String> {
    let mut version = Command::new(NODE);
    version.arg("--version");
    let out = output_within(version, "node --version", Duration::from_secs(30)).await?;
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major: Option<u32> = printed
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok());
    match major {
        Some(m) if out.status.success() && m >= MIN_NODE_MAJOR => {}
        _ => {
            return Err(format!(
                "`node --version` printed {printed:?}; need v{MIN_NODE_MAJOR}+"
            ));
        }
    }

    // npm writes node_modules/.package-lock.json when an install completes,
    // so a half-finished install is redone rather than trusted; an install
    // from before client.js used @permd/client, or without its build, too.
    let installed = example_dir().join("node_modules/.package-lock.json");
    let package = example_dir().join("node_modules/@permd/client/dist/cjs/index.js");
    if installed.exists() && package.exists() {
        return Ok(());
    }
    let mut ci = Command::new(NPM);
    ci.args(["ci", "--prefix", "examples/node", "--no-audit", "--no-fund"]);
    let out = output_within(ci, "npm ci --prefix examples/node", NPM_CI_TIMEOUT).await?;
    if !out.status.success() {
        return Err(format!(
            "`npm ci --prefix examples/node` failed ({}):\n{}",
            out.status,
            head(&out.stderr, 6)
        ));
    }
    for file in [&installed, &package] {
        if !file.exists() {
            return Err(format!(
                "npm ci succeeded but {} is missing",
                file.display()
            ));
        }
    }
    Ok(())
}

/// Runs client.js against `addr`; returns its exit status, stdout and stderr.
async fn client(addr: SocketAddr, extra: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(NODE);
    cmd.arg(example_dir().join("client.js"))
        .args(["--addr", &addr.to_string()])
        .args(extra);
    let out = output_within(cmd, "node examples/node/client.js", CLIENT_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("client.js {extra:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs client.js and requires it to succeed; returns what it printed.
async fn client_ok(addr: SocketAddr, extra: &[&str]) -> String {
    let (ok, stdout, stderr) = client(addr, extra).await;
    assert!(
        ok,
        "client.js {extra:?} failed:\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// The text client.py prints after the service list, for this answer: the
/// health line, the summary, then reasons by count (descending), then name.
fn expected_text(principal: &str, count: u64, a: &DemoAnswer) -> String {
    let mut text = format!(
        "health of permd.v1.Authorizer: SERVING\n\
         {principal} bulk_send_email on {count} contacts of {DEMO_TENANT} \
         (revision {}): {} allowed, {} denied\n",
        a.revision,
        a.allowed,
        count - a.allowed
    );
    let mut reasons: Vec<(&String, &u64)> = a.histogram.iter().collect();
    reasons.sort_by(|(ra, na), (rb, nb)| nb.cmp(na).then(ra.cmp(rb)));
    for (reason, n) in reasons {
        writeln!(text, "  {reason:<22} {n:>6}").unwrap();
    }
    text
}

/// Splits the text report into the services listed and the rest.
fn services_and_rest(stdout: &str) -> (Vec<&str>, &str) {
    let body = stdout
        .strip_prefix("services (reflection v1alpha):\n")
        .unwrap_or_else(|| panic!("no service list first:\n{stdout}"));
    let rest_at = body
        .find("health of ")
        .unwrap_or_else(|| panic!("no health line:\n{stdout}"));
    let services = body[..rest_at]
        .lines()
        .map(|l| l.strip_prefix("  ").expect("service lines are indented"))
        .collect();
    (services, &body[rest_at..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_client_sees_what_the_engine_computes() {
    bounded_by(Duration::from_secs(420), async {
        if skip::available(node_ready().await, "the node client", SKIP_NOTICE).is_none() {
            return;
        }
        let server = TestServer::start(demo_engine()).await;
        let addr = server.addr;

        // Text output, string ids, 10,000 Contacts, the defaults (carol, no
        // list); then Alice on the `newsletter` list, where list opt-outs
        // show. The whole report after the service list must be exactly
        // what the engine's answer renders to.
        for (principal, list) in [("carol", None), ("alice", Some("newsletter"))] {
            let mut extra = vec!["--count", "10000"];
            if principal != "carol" {
                extra.extend(["--principal", principal]);
            }
            if let Some(list) = list {
                extra.extend(["--list", list]);
            }
            let stdout = client_ok(addr, &extra).await;
            let (services, rest) = services_and_rest(&stdout);
            assert!(
                services.contains(&"permd.v1.Authorizer")
                    && services.contains(&"grpc.health.v1.Health"),
                "reflection (v1alpha) lists the Authorizer and Health: {services:?}"
            );
            let answer = demo_answer(&server.engine, principal, list, 10_000);
            assert_eq!(answer.revision, 1);
            assert!(
                !answer.histogram.is_empty() && answer.allowed > 0,
                "a mixed answer"
            );
            if list.is_some() {
                assert!(
                    answer.histogram.contains_key("OPTED_OUT_OF_LIST"),
                    "the list matters: {:?}",
                    answer.histogram
                );
            }
            assert_eq!(rest, expected_text(principal, 10_000, &answer), "{extra:?}");
        }

        // --json with packed ids and a count that is not a multiple of 8:
        // the same assertions as tests/python_client.rs.
        let count = 1_237u64;
        let stdout = client_ok(addr, &["--count", "1237", "--packed", "--json"]).await;
        let report: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("client.js printed no JSON ({e}):\n{stdout}"));
        let answer = demo_answer(&server.engine, "carol", None, count);
        assert_client_report(&report, count, &answer);

        // A refused call exits non-zero naming the status code and message.
        let (ok, stdout, stderr) = client(addr, &["--count", "3", "--tenant", "nope"]).await;
        assert!(!ok, "unknown tenant must fail:\n{stdout}");
        assert!(
            stderr.contains("NOT_FOUND") && stderr.contains("nope"),
            "status name and message on stderr: {stderr}"
        );

        server.shut_down().await;
    })
    .await;
}
