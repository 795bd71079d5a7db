//! The skip-or-fail rule for what a test needs beyond Rust (Python packages,
//! Node, PostgreSQL): on a laptop without it the test prints a `SKIPPED`
//! notice and passes; under `CI` (which installs everything) its absence is
//! a failure, so CI never passes a test that did not run.

use std::io::Write;
use std::time::Duration;

use tokio::process::Command;

use super::server::output_within;

/// Prints past libtest's output capture, so the notice shows on a pass.
pub fn notice(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Whether the `CI` environment variable is set.
pub fn under_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// `Some` when `probe` found what the test needs. Otherwise, under `CI` a
/// failure naming `what` and why; elsewhere `skip_notice` (it starts with
/// `SKIPPED:` and says how to install it) and why on stderr, and `None`:
/// the test returns.
#[track_caller]
pub fn available<T>(probe: Result<T, String>, what: &str, skip_notice: &str) -> Option<T> {
    match probe {
        Ok(found) => Some(found),
        Err(why) if under_ci() => {
            panic!("CI is set but {what} is unusable: {why}\n{skip_notice}")
        }
        Err(why) => {
            notice(&format!("{skip_notice}\n  ({why})"));
            None
        }
    }
}

/// Whether `python3` can import `modules` (comma-separated, as `import`
/// takes them). `Err` says why not.
pub async fn python_imports(modules: &str) -> Result<(), String> {
    let mut command = Command::new("python3");
    command.args(["-c", &format!("import {modules}")]);
    let what = format!("python3 -c 'import {modules}'");
    let out = output_within(command, &what, Duration::from_secs(60)).await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}
