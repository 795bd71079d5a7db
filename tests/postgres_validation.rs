//! One definition of a valid row: the database's own checks
//! (migrations/20261202000002_validate_rows.sql) and permd's
//! (`rows::decode` + `model::validate::entity_problems`) give the same
//! verdict on every group and record of generated tenants and on each of
//! them broken in the ways writers break them (README "Bad data holds back
//! only its tenant"). Against the real PostgreSQL; skipped with a notice
//! without one, failed under `CI`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::pg::TestDb;
use permd::model::change::{Entity, EntityKind};
use permd::model::validate::entity_problems;
use permd::source::demo::demo_data;
use permd::source::generate::{GenSpec, generate};
use permd::source::postgres::rows::{decode, encode, table};
use serde_json::{Value, json};
use sqlx::PgPool;

/// permd's verdict on a row: it decodes, and keeps the entity's own rules.
fn permd_accepts(kind: EntityKind, row: &Value) -> Result<(), String> {
    let (_, entity) = decode(kind, row.clone())?;
    match entity_problems(&entity).into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

/// The database's verdict: the row inserted alone, then rolled back.
async fn database_accepts(pool: &PgPool, kind: EntityKind, row: &Value) -> Result<(), String> {
    let name = table(kind).name;
    let sql = format!(
        "INSERT INTO permd.{name} SELECT * FROM jsonb_populate_record(NULL::permd.{name}, $1)"
    );
    let mut tx = pool.begin().await.unwrap();
    let outcome = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(row)
        .execute(&mut *tx)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    tx.rollback().await.unwrap();
    outcome
}

/// Each way a writer breaks a row, applied to a copy of `row`: the
/// broken rows (those the change applies to).
fn broken(kind: EntityKind, row: &Value) -> Vec<(&'static str, Value)> {
    type Edit = fn(&mut Value) -> bool;
    let edits: Vec<(&'static str, Edit)> = match kind {
        EntityKind::Record => vec![
            ("contact key typo", |r| {
                set_in(r, &["contact", "emial"], json!("x@example.com"))
            }),
            ("email_status unknown", |r| {
                set_in(r, &["contact", "email_status"], json!("bogus"))
            }),
            ("email_status null", |r| {
                set_in(r, &["contact", "email_status"], Value::Null)
            }),
            ("email_valid not a bool", |r| {
                set_in(r, &["contact", "email_valid"], json!("yes"))
            }),
            ("suppressed_until not a date", |r| {
                set_in(
                    r,
                    &["contact", "suppressed_until"],
                    json!("2026-13-99T00:00:00Z"),
                )
            }),
            ("suppressed_until without suppression", |r| {
                set_in(
                    r,
                    &["contact", "suppressed_until"],
                    json!("2030-01-01T00:00:00Z"),
                ) && set_in(r, &["contact", "suppressed"], json!(false))
                    && set_in(r, &["contact", "email_status"], json!("opted_in"))
            }),
            ("opted_out_lists not a list", |r| {
                set_in(r, &["contact", "opted_out_lists"], json!("newsletter"))
            }),
            ("mobile_phone a number", |r| {
                set_in(r, &["contact", "mobile_phone"], json!(5))
            }),
            ("contact not a map", |r| set(r, "contact", json!([1]))),
            ("owner on a Contact", |r| {
                r["object"] == "contacts" && set(r, "owner", json!("u1"))
            }),
            ("contact state on another object", |r| {
                r["object"] != "contacts" && set(r, "contact", json!({"email": "a@b.c"}))
            }),
            ("team not a list", |r| {
                set(r, "teams", json!({"account_team": "u1"}))
            }),
            ("team member not a name", |r| {
                set(r, "teams", json!({"account_team": [1]}))
            }),
            ("link not a record id", |r| {
                set(r, "links", json!({"contacts": ["not-a-uuid"]}))
            }),
        ],
        _ => vec![
            ("v1 level delete", |r| {
                set_in(r, &["objects", "contacts", "all_records"], json!("delete"))
            }),
            ("associated_records left out", |r| {
                r.pointer_mut("/objects/contacts")
                    .and_then(Value::as_object_mut)
                    .and_then(|m| m.remove("associated_records"))
                    .is_some()
            }),
            ("create_record with associated view", |r| {
                set_in(r, &["objects", "contacts", "all_records"], json!("view"))
                    && set_in(
                        r,
                        &["objects", "contacts", "associated_records"],
                        json!("view"),
                    )
                    && set_in(r, &["objects", "contacts", "create_record"], json!(true))
                    && set_in(r, &["objects", "contacts", "fields"], json!({}))
            }),
            ("bulk_data_upload without create_record", |r| {
                set_in(r, &["objects", "contacts", "create_record"], json!(false))
                    && set_in(r, &["objects", "contacts", "bulk_data_upload"], json!(true))
            }),
            ("unarchive_all alone", |r| {
                set_in(
                    r,
                    &["objects", "contacts", "unarchive_associated"],
                    json!(false),
                ) && set_in(r, &["objects", "contacts", "unarchive_all"], json!(true))
            }),
            ("v1 toggle upload", |r| {
                set_in(r, &["objects", "contacts", "actions"], json!(["upload"]))
            }),
            ("v1 set all", |r| {
                set_in(r, &["objects", "contacts", "fields"], json!({"*": "view"}))
            }),
            ("v1 field level hidden", |r| {
                set_in(
                    r,
                    &["objects", "contacts", "fields"],
                    json!({"birthday": "hidden"}),
                )
            }),
            ("email view under an edit scope", |r| {
                set_in(
                    r,
                    &["objects", "contacts", "associated_records"],
                    json!("edit"),
                ) && set_in(
                    r,
                    &["objects", "contacts", "fields"],
                    json!({"email": "view"}),
                )
            }),
            ("email edit under view scopes", |r| {
                set_in(r, &["objects", "contacts", "all_records"], json!("none"))
                    && set_in(
                        r,
                        &["objects", "contacts", "associated_records"],
                        json!("view"),
                    )
                    && set_in(r, &["objects", "contacts", "create_record"], json!(false))
                    && set_in(
                        r,
                        &["objects", "contacts", "bulk_data_upload"],
                        json!(false),
                    )
                    && set_in(
                        r,
                        &["objects", "contacts", "fields"],
                        json!({"email": "edit"}),
                    )
            }),
            ("created edit on a custom object", |r| {
                r.pointer("/objects/obj0").is_some()
                    && set_in(
                        r,
                        &["objects", "obj0", "fields"],
                        json!({"created": "edit"}),
                    )
            }),
            ("Contacts-only toggle elsewhere", |r| {
                r.pointer("/objects/obj0").is_some()
                    && set_in(
                        r,
                        &["objects", "obj0", "actions"],
                        json!(["bulk_send_email"]),
                    )
            }),
            ("unknown setting", |r| {
                set_in(r, &["objects", "contacts", "colour"], json!(1))
            }),
            ("switch not a bool", |r| {
                set_in(r, &["objects", "contacts", "view_object"], json!("yes"))
            }),
            ("default level unknown", |r| {
                set_in(
                    r,
                    &["objects", "contacts", "default_for_new_field"],
                    json!("hidden"),
                )
            }),
        ],
    };
    edits
        .into_iter()
        .filter_map(|(what, edit)| {
            let mut copy = row.clone();
            edit(&mut copy).then_some((what, copy))
        })
        .collect()
}

fn set(row: &mut Value, key: &str, value: Value) -> bool {
    row.as_object_mut()
        .map(|m| m.insert(key.to_owned(), value))
        .is_some()
}

/// Sets `path` inside an existing map (false when the parent is missing).
fn set_in(row: &mut Value, path: &[&str], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut at = row;
    for key in parents {
        match at.get_mut(*key) {
            Some(next) if next.is_object() => at = next,
            _ => return false,
        }
    }
    at.as_object_mut()
        .map(|m| m.insert((*last).to_owned(), value))
        .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_and_permd_agree_on_every_row() {
    let Some(db) = TestDb::create("rowverdict").await else {
        return;
    };
    let pool = PgPool::connect(&db.url).await.unwrap();
    permd::source::postgres::migrate(&pool).await.unwrap();
    let mut tenants = Vec::new();
    for seed in 1..=3 {
        tenants.extend(
            generate(&GenSpec {
                contacts: 60,
                users: 8,
                groups: 12,
                roles: 3,
                custom_objects: 2,
                custom_records_per_contact: 0.5,
                seed,
                ..GenSpec::default()
            })
            .tenants,
        );
    }
    tenants.extend(demo_data().tenants);
    let (mut checked, mut refused) = (0usize, 0usize);
    let mut disagreements = Vec::new();
    for tenant in &tenants {
        sqlx::query("INSERT INTO permd.tenants (id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(&tenant.id)
            .execute(&pool)
            .await
            .unwrap();
        let rows = tenant
            .groups
            .iter()
            .map(|g| {
                (
                    EntityKind::Group,
                    encode(&tenant.id, &Entity::Group(g.clone())),
                )
            })
            .chain(tenant.records.iter().take(120).map(|r| {
                (
                    EntityKind::Record,
                    encode(&tenant.id, &Entity::Record(r.clone())),
                )
            }));
        for (kind, row) in rows {
            let mut cases = vec![("as generated", row.clone())];
            cases.extend(broken(kind, &row));
            for (what, case) in cases {
                let ours = permd_accepts(kind, &case);
                let theirs = database_accepts(&pool, kind, &case).await;
                checked += 1;
                refused += usize::from(ours.is_err());
                if ours.is_ok() != theirs.is_ok() {
                    disagreements.push(format!(
                        "{what}: permd {ours:?}, database {theirs:?}: {case}"
                    ));
                }
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {checked} rows judged differently:\n{}",
        disagreements.len(),
        disagreements[..disagreements.len().min(10)].join("\n")
    );
    assert!(
        refused > checked / 3,
        "the broken rows were mostly refused: {refused} of {checked}"
    );
    println!("{checked} rows, {refused} refused by both");
}
