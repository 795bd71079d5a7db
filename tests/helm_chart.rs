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

mod common;

use std::time::Duration;

use common::server::{output_within, repo_path};
use common::skip;
use tokio::process::Command;

const SKIP_NOTICE: &str = "SKIPPED: python helm-python-sdk / kubernetes-validate not installed \
     (pip install -r tests/helm/requirements.txt)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_chart_lints_renders_and_validates() {
    let ready = skip::python_imports("helm_python, kubernetes_validate, yaml").await;
    let what = "the helm chart test's Python packages";
    if skip::available(ready, what, SKIP_NOTICE).is_none() {
        return;
    }

    let mut cmd = Command::new("python3");
    cmd.arg(repo_path("tests/helm/test_chart.py"))
        .arg("-v")
        .env("PERMD_BIN", env!("CARGO_BIN_EXE_permd"));
    let out = output_within(cmd, "test_chart.py", Duration::from_secs(300))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
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
