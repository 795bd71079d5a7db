//! `permd migrate-data`: a v1 data file becomes v2 where the mapping is
//! mechanical, and what needs a person is listed by entity with exit
//! status 1 (docs/model.md "Migrating v1 data"). The mapping itself is
//! unit-tested in src/model/migrate.rs; this is the command a user runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::server::{permd, run_to_end, scratch_dir};

const MECHANICAL_V1: &str = r#"
tenants:
  - id: acme
    email_configured: true
    objects:
      - {name: deals, fields: [name]}
    groups:
      - id: sales
        objects:
          contacts:
            view_object: true
            all_records: view
            associated_records: delete
            actions: [export, upload]
            fields: {"*": edit, birthday: hidden}
          deals: {all_records: delete, associated_records: none, fields: {"*": view}}
    users:
      - {id: alice, groups: [sales]}
    integrations:
      - {id: sync, groups: [sales]}
    records:
      - {id: a0000000-0000-4000-8000-000000000001, object: deals, owner: alice}
"#;

#[test]
fn a_mechanical_v1_file_becomes_a_v2_file_that_loads() {
    let dir = scratch_dir("migrate-mechanical");
    let input = dir.join("v1.yaml");
    let output = dir.join("v2.yaml");
    std::fs::write(&input, MECHANICAL_V1).unwrap();
    let (ok, _, stderr) = run_to_end(
        permd()
            .arg("migrate-data")
            .arg(&input)
            .arg("--out")
            .arg(&output),
    );
    assert!(ok, "{stderr}");
    assert!(stderr.contains("the result loads"), "{stderr}");
    let v2 = std::fs::read_to_string(&output).unwrap();
    for expected in [
        "associated_records: remove",
        "create_record: true",
        "bulk_data_upload: true",
        "unarchive_associated: true",
        "unarchive_all: true",
        "default_for_new_field: edit",
        "birthday: none",
        "service_account: true",
        "integration-sync",
    ] {
        assert!(v2.contains(expected), "missing {expected:?} in:\n{v2}");
    }
    for v1_only in ["delete", "hidden", "'*'", "upload\n"] {
        assert!(!v2.contains(v1_only), "{v1_only:?} left in:\n{v2}");
    }
    let (ok, stdout, stderr) = run_to_end(permd().arg("validate").arg(&output));
    assert!(ok, "{stdout}{stderr}");
    // Running it again on its own output changes nothing.
    let again = dir.join("again.yaml");
    let (ok, _, stderr) = run_to_end(
        permd()
            .arg("migrate-data")
            .arg(&output)
            .arg("--out")
            .arg(&again),
    );
    assert!(ok, "{stderr}");
    assert_eq!(std::fs::read_to_string(&again).unwrap(), v2);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn what_needs_a_person_is_listed_by_entity_and_exits_1() {
    let dir = scratch_dir("migrate-unmapped");
    let output = dir.join("v2.json");
    let input = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1-small.yaml");
    let (ok, stdout, stderr) = run_to_end(
        permd()
            .arg("migrate-data")
            .arg(input)
            .arg("--out")
            .arg(&output),
    );
    assert!(!ok, "{stdout}{stderr}");
    let unmapped: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("NOT MAPPED: "))
        .collect();
    assert_eq!(unmapped.len(), 4, "{stderr}");
    for named in [
        "group 'marketing', object 'contacts': email",
        "group 'schema_admins', object 'companies'",
        "integration 'crm-sync'",
        "2 contacts records have an owner",
    ] {
        assert!(
            unmapped.iter().any(|l| l.contains(named)),
            "{named:?} not in {unmapped:#?}"
        );
    }
    // The rest is written (as JSON, from the extension) for the person to finish.
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(written["tenants"][0]["id"], "acme");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_file_that_is_not_a_document_is_an_error_naming_it() {
    let dir = scratch_dir("migrate-garbage");
    let input = dir.join("bad.yaml");
    std::fs::write(&input, "tenants: [\n").unwrap();
    let (ok, _, stderr) = run_to_end(permd().arg("migrate-data").arg(&input));
    assert!(!ok);
    assert!(stderr.contains("bad.yaml"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
