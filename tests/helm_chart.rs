//! Runs tests/helm/test_chart.py: lints and renders the Helm chart in
//! helm/permd with a real Helm library (PyPI `helm-python-sdk`), validates
//! every rendered object against the Kubernetes API schemas
//! (`kubernetes-validate`), and checks the chart against this build's permd
//! binary (its `serve` settings and defaults, `validate` on the rendered data
//! files, `serve` started with the rendered environment on loopback).
//!
//! Without those Python packages the test prints a notice and passes, unless
//! the `CI` environment variable is set: CI installs the requirements, so
//! there a missing module is a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

const PYTHON: &str = "python3";
const SKIP_NOTICE: &str = "SKIPPED: python helm-python-sdk / kubernetes-validate not installed \
     (pip install -r tests/helm/requirements.txt)";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Prints past libtest's output capture, so the notice shows on a pass.
fn notice(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Whether python3 can import what the chart test needs. `Err` says why not.
async fn python_ready() -> Result<(), String> {
    let run = Command::new(PYTHON)
        .args(["-c", "import helm_python, kubernetes_validate, yaml"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(60), run).await {
        Err(_) => Err(format!("`{PYTHON} -c import helm_python ...` timed out")),
        Ok(Err(e)) => Err(format!("cannot run {PYTHON}: {e}")),
        Ok(Ok(out)) if !out.status.success() => {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
        Ok(Ok(_)) => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_chart_lints_renders_and_validates() {
    if let Err(why) = python_ready().await {
        if std::env::var_os("CI").is_some() {
            panic!(
                "CI is set but the helm chart test's Python packages are unusable: {why}\n{SKIP_NOTICE}"
            );
        }
        notice(&format!("{SKIP_NOTICE}\n  ({why})"));
        return;
    }

    let mut cmd = Command::new(PYTHON);
    cmd.arg(repo().join("tests/helm/test_chart.py"))
        .arg("-v")
        .env("PERMD_BIN", env!("CARGO_BIN_EXE_permd"))
        .current_dir(repo())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("test_chart.py finished within 300 s")
        .expect("test_chart.py started");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tests/helm/test_chart.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    // unittest reports on stderr; a run that skipped the checks against the
    // binary would not have tested what this file promises.
    assert!(
        !stderr.contains("PERMD_BIN not set"),
        "the checks against the permd binary were skipped:\n{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.trim() == "OK"),
        "no unittest OK line:\n{stderr}"
    );
}
