//! `permd test`: the shipped assertion files pass; a wrong expectation is
//! printed as a diff and fails the run; a malformed file names the problem.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::server::{permd, run_to_end, scratch_dir};

/// `permd test <files>` from the repository root, to its end: success,
/// stdout, stderr.
fn permd_test(files: &[&str]) -> (bool, String, String) {
    run_to_end(
        permd()
            .arg("test")
            .args(files)
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    )
}

#[test]
fn the_shipped_assertion_files_pass() {
    let files: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/assertions"))
            .unwrap()
            .map(|e| e.unwrap().path().to_string_lossy().into_owned())
            .filter(|p| p.ends_with(".yaml"))
            .collect();
    assert!(!files.is_empty());
    let refs: Vec<&str> = files.iter().map(String::as_str).collect();
    let (ok, out, err) = permd_test(&refs);
    assert!(ok, "{out}{err}");
    assert!(out.contains("ok "), "{out}");
}

#[test]
fn a_wrong_expectation_is_a_diff_and_a_failure() {
    let dir = scratch_dir("assert");
    let file = dir.join("wrong.yaml");
    std::fs::write(
        &file,
        "data: demo\ntests:\n  - name: wrong on purpose\n    principal: alice\n    action: bulk_send_email\n    expect:\n      c0000000-0000-4000-8000-000000000000: ALLOWED\n      c0000000-0000-4000-8000-000000000001: ALLOWED\n    field_mask: {birthday: edit}\n",
    )
    .unwrap();
    let (ok, out, err) = permd_test(&[file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("FAIL") && out.contains("2 of 3 assertions failed"),
        "{out}"
    );
    assert!(
        out.contains("record c0000000-0000-4000-8000-000000000000: expected ALLOWED, got NO_EMAIL"),
        "{out}"
    );
    assert!(out.contains("field birthday: expected Edit"), "{out}");
    assert!(err.contains("2 assertions failed"), "{err}");

    std::fs::write(
        &file,
        "data: demo\ntests:\n  - principal: alice\n    acton: view\n",
    )
    .unwrap();
    let (ok, _, err) = permd_test(&[file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("wrong.yaml") && err.contains("tests[0]"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
