//! `permd serve` settings: flags > PERMD_* environment > `--config` file >
//! defaults, and a bad config file fails at start naming the key.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::PathBuf;

use common::server::{permd, run_to_end, scratch_dir};

fn dir(name: &str) -> PathBuf {
    scratch_dir(&format!("config-{name}"))
}

/// `permd serve <args>` with only `env` of the PERMD_* environment (none of
/// the caller's), to its end: success, stdout, stderr.
fn serve(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = permd();
    cmd.arg("serve").args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PERMD_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    run_to_end(&mut cmd)
}

fn setting<'a>(printed: &'a str, key: &str) -> &'a str {
    printed
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("{key} not printed:\n{printed}"))
}

#[test]
fn flags_beat_environment_beat_file_beat_defaults() {
    let d = dir("precedence");
    let file = d.join("permd.yaml");
    std::fs::write(
        &file,
        "listen: 127.0.0.1:7001\nmax_batch: 5000\nmax_concurrent_streams: 3\ndata: tenants/acme.yaml\nlog_format: json\n",
    )
    .unwrap();
    let config = file.to_str().unwrap();
    let (ok, out, err) = serve(
        &["--config", config, "--print-config", "--max-batch", "7"],
        &[("PERMD_LISTEN", "127.0.0.1:7002"), ("PERMD_MAX_BATCH", "9")],
    );
    assert!(ok, "{err}");
    assert_eq!(setting(&out, "max_batch"), "7", "flag over env and file");
    assert_eq!(setting(&out, "listen"), "127.0.0.1:7002", "env over file");
    assert_eq!(
        setting(&out, "max_concurrent_streams"),
        "3",
        "file over default"
    );
    assert_eq!(setting(&out, "max_concurrent_requests"), "256", "default");
    assert_eq!(setting(&out, "log_format"), "json");
    // Paths in the file are relative to the file.
    assert_eq!(
        setting(&out, "data"),
        d.join("tenants/acme.yaml").to_str().unwrap()
    );
    let (ok, out, _) = serve(&["--print-config"], &[]);
    assert!(ok);
    assert_eq!(setting(&out, "listen"), "127.0.0.1:50051");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn a_bad_config_file_fails_at_start_naming_the_key() {
    let d = dir("bad");
    for (text, key, problem) in [
        ("max_bach: 5\n", "max_bach", "unknown field"),
        ("max_batch: -5\n", "max_batch", "invalid"),
        ("listen: nowhere\n", "listen", "invalid"),
        ("log_format: xml\n", "log_format", "unknown variant"),
    ] {
        let file = d.join("bad.yaml");
        std::fs::write(&file, text).unwrap();
        let (ok, _, err) = serve(&["--config", file.to_str().unwrap(), "--print-config"], &[]);
        assert!(!ok, "{text}");
        assert!(
            err.contains("bad.yaml")
                && err.contains(&format!("at {key}:"))
                && err.contains(problem),
            "{text}: {err}"
        );
    }
    let (ok, _, err) = serve(&["--config", d.join("missing.yaml").to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(
        err.contains("cannot read config file") && err.contains("missing.yaml"),
        "{err}"
    );
    std::fs::remove_dir_all(&d).ok();
}
