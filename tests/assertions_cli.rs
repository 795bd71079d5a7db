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
    assert!(
        out.contains("field birthday: expected edit, got view"),
        "{out}"
    );
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

/// Writes one assertion file on the demo data and runs `permd test` on it.
fn run_one(name: &str, yaml: &str) -> (bool, String, String) {
    let dir = scratch_dir(name);
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let outcome = permd_test(&[file.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    outcome
}

#[test]
fn model_v2_answers_show_in_the_diff() {
    // Wrong on purpose, each with a v2 answer: the sender gate (frank's
    // outgoing email is blocked), unarchive on a live record, the retired
    // view_archived.
    let (ok, out, _) = run_one(
        "v2",
        "data: demo\ntests:\n  - name: sender\n    principal: frank\n    action: bulk_send_email\n    expect:\n      c0000000-0000-4000-8000-000000000001: ALLOWED\n  - name: live\n    principal: ada\n    action: unarchive\n    expect:\n      c0000000-0000-4000-8000-000000000001: ALLOWED\n  - name: retired\n    principal: alice\n    action: view_archived\n    expect:\n      c0000000-0000-4000-8000-000000000001: ALLOWED\n",
    );
    assert!(!ok);
    assert!(out.contains("3 of 3 assertions failed"), "{out}");
    for line in [
        "record c0000000-0000-4000-8000-000000000001: expected ALLOWED, got SENDER_BLOCKED",
        "record c0000000-0000-4000-8000-000000000001: expected ALLOWED, got NOT_ARCHIVED",
        "'view_archived' is retired in model v2",
    ] {
        assert!(out.contains(line), "{line:?} not in {out}");
    }
}

#[test]
fn a_v1_field_level_is_refused_saying_what_v2_calls_it() {
    let (ok, _, err) = run_one(
        "hidden",
        "data: demo\ntests:\n  - principal: alice\n    action: view\n    expect: {c0000000-0000-4000-8000-000000000001: ALLOWED}\n    field_mask: {birthday: hidden}\n",
    );
    assert!(!ok);
    assert!(
        err.contains("tests[0].field_mask") && err.contains("'hidden'") && err.contains("'none'"),
        "{err}"
    );
}

#[test]
fn the_field_mask_is_read_from_an_allowed_record() {
    // c…000 has no email (NO_EMAIL, denied, empty mask); c…001 is allowed,
    // and alice's birthday is view there.
    let (ok, out, _) = run_one(
        "mask",
        "data: demo\ntests:\n  - principal: alice\n    action: bulk_send_email\n    expect:\n      c0000000-0000-4000-8000-000000000000: NO_EMAIL\n      c0000000-0000-4000-8000-000000000001: ALLOWED\n    field_mask: {birthday: edit}\n",
    );
    assert!(!ok);
    assert!(
        out.contains("field birthday: expected edit, got view"),
        "{out}"
    );
}
