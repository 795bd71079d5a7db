//! Process metrics in Prometheus' standard names (`process_*`, as every
//! official client library exports them) plus `permd_build_info` and the
//! peak resident set, read from `/proc/self` at each scrape: a sidecar's
//! memory and CPU are what a pod's limits are set from.

use std::fmt::Write as _;

/// The text appended to `/metrics`; empty parts where `/proc` is absent.
pub fn render() -> String {
    let mut out = String::with_capacity(2048);
    metric(
        &mut out,
        "permd_build_info",
        "gauge",
        "Always 1; the labels say which build is running.",
        &format!(
            "{{version=\"{}\",commit=\"{}\"}}",
            env!("CARGO_PKG_VERSION"),
            env!("PERMD_GIT_COMMIT")
        ),
        1.0,
    );
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(rss) = status_kib(&status, "VmRSS:") {
        metric(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            "",
            rss,
        );
    }
    if let Some(size) = status_kib(&status, "VmSize:") {
        metric(
            &mut out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            "",
            size,
        );
    }
    if let Some(peak) = status_kib(&status, "VmHWM:") {
        metric(
            &mut out,
            "permd_process_peak_resident_bytes",
            "gauge",
            "Highest resident memory since start (VmHWM): what a memory limit must allow, loads included.",
            "",
            peak,
        );
    }
    if let Some((cpu, start)) = cpu_and_start() {
        metric(
            &mut out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            "",
            cpu,
        );
        metric(
            &mut out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            "",
            start,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        metric(
            &mut out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            "",
            fds.count() as f64,
        );
    }
    if let Some(max) = max_open_files() {
        metric(
            &mut out,
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            "",
            max,
        );
    }
    out
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, labels: &str, value: f64) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{labels} {value}\n"
    );
}

/// A `VmXXX:   1234 kB` line of /proc/self/status, in bytes.
fn status_kib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line
        .get(key.len()..)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024.0)
}

/// CPU seconds (user + system) and the start time as unix seconds, from
/// /proc/self/stat and the boot time in /proc/stat.
fn cpu_and_start() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may hold spaces and parentheses.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0]: utime is 14, stime 15, starttime 22.
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let ticks = clock_ticks();
    let cpu = (field(14)? + field(15)?) / ticks;
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some((cpu, boot + field(22)? / ticks))
}

fn clock_ticks() -> f64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if ticks > 0 {
            return ticks as f64;
        }
    }
    100.0
}

/// The soft open-files limit, from /proc/self/limits.
fn max_open_files() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.get("Max open files".len()..)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    #[test]
    fn renders_the_standard_process_metrics_from_proc() {
        let text = super::render();
        assert!(text.contains("permd_build_info{version=\""), "{text}");
        if std::path::Path::new("/proc/self/stat").exists() {
            for name in [
                "process_resident_memory_bytes",
                "process_virtual_memory_bytes",
                "permd_process_peak_resident_bytes",
                "process_cpu_seconds_total",
                "process_start_time_seconds",
                "process_open_fds",
                "process_max_fds",
            ] {
                let line = text
                    .lines()
                    .find(|l| l.starts_with(&format!("{name} ")))
                    .unwrap_or_else(|| panic!("no {name} in {text}"));
                let value: f64 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{line}"));
                // A test process may not have used a clock tick of CPU yet.
                assert!(
                    value >= 0.0 && (value > 0.0 || name.contains("cpu")),
                    "{line}"
                );
            }
        }
    }
}
