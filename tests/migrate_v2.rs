//! The model v2 migration (migrations/20261202000001_model_v2.sql) on a
//! database v1 filled: v1 rows in, v2 rows out, as one new revision whose
//! changelog a follower can apply to end up with exactly the v2 rows, and
//! data that loads as valid v2. A row only a human can map makes the
//! migration fail with a message naming it, and the database stays on v1.
//!
//! Each test gets its own database on the real server (tests/common/pg.rs);
//! without a reachable PostgreSQL they print SKIPPED and pass, unless `CI`
//! is set.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::pg::TestDb;
use permd::model::change::{ChangeOp, Entity};
use permd::model::data::DataFile;
use permd::model::validate::validate;
use permd::source::postgres::{self as pg, MIGRATOR};
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::migrate::Migrator;

/// The v1 schema: the first migration.
const V1_SCHEMA: i64 = 20261127000001;

/// One tenant as v1 wrote it, all of it mappable: `delete`, `hidden`,
/// `"*"`, `upload` with an edit scope, no associated_records, integrations
/// with groups and with only a user.
const V1_ROWS: &str = r#"
INSERT INTO permd.tenants (id, email_configured) VALUES ('acme', true);
INSERT INTO permd.objects (tenant, name, fields, team_fields) VALUES
    ('acme', 'contacts', '{first_name}', '{sales_team}'),
    ('acme', 'deals', '{amount}', '{}');
INSERT INTO permd.groups (tenant, id, objects) VALUES
    ('acme', 'sales', '{
        "contacts": {"view_object": true, "all_records": "view", "associated_records": "delete",
                     "actions": ["export", "upload"], "fields": {"*": "edit", "birthday": "hidden"}},
        "deals": {"all_records": "view", "fields": {"*": "view"}}}'),
    ('acme', 'ops', '{"deals": {"all_records": "delete", "fields": {"amount": "hidden"}}}');
INSERT INTO permd.roles (tenant, id, groups) VALUES ('acme', 'rep', '{sales}');
INSERT INTO permd.users (tenant, id, admin, roles) VALUES
    ('acme', 'alice', false, '{rep}'),
    ('acme', 'root', true, '{}');
INSERT INTO permd.integrations (tenant, id, groups, user_id) VALUES
    ('acme', 'sync', '{sales,ops}', NULL),
    ('acme', 'hook', '{}', 'alice');
INSERT INTO permd.automations (tenant, id, run_as_integration) VALUES ('acme', 'nurture', 'sync');
INSERT INTO permd.records (tenant, id, object, owner, teams) VALUES
    ('acme', '00000000-0000-4000-8000-000000000001', 'contacts', NULL, '{"sales_team": ["alice"]}'),
    ('acme', '00000000-0000-4000-8000-000000000009', 'deals', 'alice', '{}');
"#;

/// A database at the v1 schema, recorded as such in `_sqlx_migrations`, so
/// the full migrator then runs exactly what came after.
async fn v1_database(tag: &str) -> Option<(TestDb, PgPool)> {
    let db = TestDb::create(tag).await?;
    let pool = pg::connect(&db.url).await.unwrap();
    let first = MIGRATOR
        .iter()
        .find(|m| m.version == V1_SCHEMA)
        .expect("the v1 schema migration")
        .clone();
    Migrator::with_migrations(vec![first])
        .run(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(V1_ROWS).execute(&pool).await.unwrap();
    Some((db, pool))
}

async fn json_of(pool: &PgPool, sql: &'static str) -> Value {
    sqlx::query_scalar::<_, Value>(sql)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Every row the migration may touch, and the schema's shape.
async fn everything(pool: &PgPool) -> Value {
    json_of(
        pool,
        "SELECT jsonb_build_object( \
           'groups', (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.tenant, x.id) FROM permd.groups x), \
           'users', (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.tenant, x.id) FROM permd.users x), \
           'integrations', (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.tenant, x.id) FROM permd.integrations x), \
           'records', (SELECT jsonb_agg(to_jsonb(x) ORDER BY x.tenant, x.id) FROM permd.records x), \
           'changelog', (SELECT count(*) FROM permd.changelog), \
           'columns', (SELECT jsonb_agg(table_name || '.' || column_name ORDER BY table_name, column_name) \
                       FROM information_schema.columns WHERE table_schema = 'permd'))",
    )
    .await
}

/// Whether the bootstrapped file holds exactly this entity.
fn holds(file: &DataFile, tenant: &str, entity: &Entity) -> bool {
    let Some(t) = file.tenants.iter().find(|t| t.id == tenant) else {
        return false;
    };
    match entity {
        Entity::Group(g) => t.groups.contains(g),
        Entity::User(u) => t.users.contains(u),
        Entity::Integration(i) => t.integrations.contains(i),
        other => panic!(
            "the migration changed a {} row: {other:?}",
            other.kind().as_str()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_rows_become_v2_rows_in_one_logged_revision() {
    let Some((_db, pool)) = v1_database("v2_mapped").await else {
        return;
    };
    let before = pg::revision(&pool).await.unwrap();
    MIGRATOR.run(&pool).await.unwrap();
    pg::check_schema(&pool).await.unwrap();

    let groups = json_of(
        &pool,
        "SELECT jsonb_object_agg(id, objects) FROM permd.groups WHERE tenant = 'acme'",
    )
    .await;
    assert_eq!(
        groups,
        json!({
            "sales": {
                "contacts": {"view_object": true, "all_records": "view", "associated_records": "remove",
                             "actions": ["export"], "fields": {"birthday": "none"},
                             "default_for_new_field": "edit", "create_record": true,
                             "bulk_data_upload": true, "unarchive_associated": true},
                // all_records reaches every record: associated_records rises to it
                "deals": {"all_records": "view", "associated_records": "view",
                          "default_for_new_field": "view"}
            },
            "ops": {
                "deals": {"all_records": "remove", "associated_records": "remove",
                          "fields": {"amount": "none"}, "create_record": true,
                          "unarchive_all": true, "unarchive_associated": true}
            }
        })
    );

    let users = json_of(
        &pool,
        "SELECT jsonb_agg(jsonb_build_object('id', id, 'admin', admin, 'roles', roles, 'groups', groups, \
           'service_account', service_account, 'email_inbox', email_inbox) ORDER BY id) \
         FROM permd.users WHERE tenant = 'acme'",
    )
    .await;
    let user = |id: &str, admin: bool, roles: Value, groups: Value, service: bool| {
        json!({"id": id, "admin": admin, "roles": roles, "groups": groups,
               "service_account": service, "email_inbox": "connected"})
    };
    assert_eq!(
        users,
        json!([
            user("alice", false, json!(["rep"]), json!([]), false),
            // v1 gave `hook` no groups: its service account has none either
            user("integration-hook", false, json!([]), json!([]), true),
            user(
                "integration-sync",
                false,
                json!([]),
                json!(["sales", "ops"]),
                true
            ),
            user("root", true, json!([]), json!([]), false),
        ])
    );

    let integrations = json_of(
        &pool,
        "SELECT jsonb_agg(to_jsonb(x) ORDER BY x.id) FROM permd.integrations x",
    )
    .await;
    assert_eq!(
        integrations,
        json!([
            {"tenant": "acme", "id": "hook", "user_id": "integration-hook"},
            {"tenant": "acme", "id": "sync", "user_id": "integration-sync"}
        ])
    );
    let deal_owner = json_of(
        &pool,
        "SELECT to_jsonb(owner) FROM permd.records WHERE object = 'deals'",
    )
    .await;
    assert_eq!(deal_owner, json!("alice"), "owners of custom objects stay");

    // One revision, logged: a follower at `before` that applies it holds
    // exactly what a fresh bootstrap reads.
    let read = pg::changes_after(&pool, before, 100).await.unwrap();
    assert!(
        read.malformed.is_empty(),
        "the migration's changelog does not decode: {:?}",
        read.malformed
    );
    assert_eq!(read.latest, before + 1);
    assert_eq!(read.transactions.len(), 1);
    let (revision, changes) = &read.transactions[0];
    assert_eq!(*revision, before + 1);
    let (file, at) = pg::bootstrap(&pool).await.unwrap();
    assert_eq!(at, before + 1);
    let report = validate(&file);
    assert!(
        report.errors.is_empty(),
        "the migrated data is not valid v2: {:?}",
        report.errors
    );
    let mut logged: Vec<String> = Vec::new();
    for change in changes {
        let ChangeOp::Upsert(entity) = &change.op else {
            panic!("the migration deleted a row: {change:?}");
        };
        assert!(
            holds(&file, &change.tenant, entity),
            "logged {entity:?}, which is not what PostgreSQL holds"
        );
        logged.push(format!("{} {}", change.kind().as_str(), change.key()));
    }
    logged.sort();
    assert_eq!(
        logged,
        [
            "group ops",
            "group sales",
            "integration hook",
            "integration sync",
            "user integration-hook",
            "user integration-sync",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmappable_row_fails_the_migration_and_the_database_stays_v1() {
    let Some((_db, pool)) = v1_database("v2_refused").await else {
        return;
    };
    // No record access on deals (v2 would widen it), and a Contact with an
    // owner (v2 has none).
    sqlx::raw_sql(
        r#"INSERT INTO permd.groups (tenant, id, objects)
               VALUES ('acme', 'lookers', '{"deals": {"view_object": true}}');
           UPDATE permd.records SET owner = 'alice' WHERE object = 'contacts';"#,
    )
    .execute(&pool)
    .await
    .unwrap();
    let before = everything(&pool).await;
    let revision = pg::revision(&pool).await.unwrap();

    let err = MIGRATOR.run(&pool).await.unwrap_err().to_string();
    assert!(err.contains("model v2 migration refused"), "{err}");
    assert!(
        err.contains(
            "tenant 'acme', group 'lookers', object 'deals': the group gives no record access on it"
        ),
        "{err}"
    );
    assert!(err.contains("set associated_records: view"), "{err}");
    assert!(
        err.contains(
            "tenant 'acme': 1 contacts records have an owner \
             (first ids: 00000000-0000-4000-8000-000000000001)"
        ),
        "{err}"
    );

    assert_eq!(everything(&pool).await, before, "the database changed");
    assert_eq!(pg::revision(&pool).await.unwrap(), revision);
    let applied: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(applied, Some(V1_SCHEMA));
    assert!(pg::check_schema(&pool).await.is_err());
}
