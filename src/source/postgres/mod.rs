//! PostgreSQL as the source of truth: permd's schema (migrations/), loading
//! a snapshot file into it, writing changes through it, and reading it back
//! — a consistent bootstrap and the changelog in revision order. The
//! follower that keeps an engine in step lives in `feed.rs`.

pub mod feed;
pub mod rows;

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
// Dynamic SQL here is built only from the static table and column names
// of `rows::TABLES`; every value is a bind parameter.
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Row};

use crate::model::change::{Change, ChangeOp, Entity, EntityKind};
use crate::model::data::{DataFile, Tenant};
use rows::{TABLES, decode, encode, table};

pub use crate::source::changelog::{
    ChangelogRead, Malformed, RawChange, Transaction, decode_change,
};

/// The migrations in migrations/, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Rows per statement when writing many entities of one kind.
const WRITE_CHUNK: usize = 5_000;

/// Connects a small pool. Fails fast (5 s) so callers can retry with
/// their own backoff.
pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url
        .parse()
        .with_context(|| format!("database URL '{}' is not valid", redact(url)))?;
    // JIT compiles a plan in ~0.4 s: far more than any query here takes.
    let options = options.application_name("permd").options([("jit", "off")]);
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    // postgres://user:password@host/db → postgres://user:***@host/db
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = url.get(scheme_end..).unwrap_or_default();
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    let userinfo = rest.get(..at).unwrap_or_default();
    match userinfo.split_once(':') {
        Some((user, _)) => format!(
            "{}{user}:***{}",
            url.get(..scheme_end).unwrap_or_default(),
            rest.get(at..).unwrap_or_default()
        ),
        None => url.to_owned(),
    }
}

/// Applies every migration not yet applied; returns how many ran.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<usize> {
    let before = applied_migrations(pool).await;
    MIGRATOR
        .run(pool)
        .await
        .context("running permd's migrations")?;
    Ok(applied_migrations(pool).await.saturating_sub(before))
}

async fn applied_migrations(pool: &PgPool) -> usize {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_or(0, |n| usize::try_from(n).unwrap_or(0))
}

/// Refuses to go on when the schema is missing or older than this binary.
pub async fn check_schema(pool: &PgPool) -> anyhow::Result<()> {
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    let applied: Option<i64> = sqlx::query_scalar(
        "SELECT max(version) FROM _sqlx_migrations WHERE success",
    )
    .fetch_one(pool)
    .await
    .map_err(|_| {
        anyhow::anyhow!(
            "permd's schema is not in this database: run `permd migrate --database-url …` first"
        )
    })?;
    match applied {
        Some(v) if v >= latest => Ok(()),
        _ => anyhow::bail!(
            "permd's schema in this database is older than this binary (latest migration {latest}): run `permd migrate --database-url …`"
        ),
    }
}

/// The current revision (the last committed transaction's).
pub async fn revision(pool: &PgPool) -> anyhow::Result<u64> {
    let v: i64 = sqlx::query_scalar("SELECT value FROM permd.revision")
        .fetch_one(pool)
        .await
        .context("reading permd.revision")?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// Writes changes inside the caller's transaction: upserts through
/// `jsonb_populate_recordset` (a row that would not change is left alone,
/// so it logs nothing), deletes by key. Runs of one kind and operation go
/// in one statement; later changes to a key win over earlier ones.
pub async fn write(conn: &mut PgConnection, changes: &[Change]) -> anyhow::Result<()> {
    let mut start = 0;
    while start < changes.len() {
        let Some(first) = changes.get(start) else {
            break;
        };
        let is_delete = matches!(first.op, ChangeOp::Delete { .. });
        let kind = first.kind();
        let end = changes
            .iter()
            .skip(start)
            .position(|c| c.kind() != kind || matches!(c.op, ChangeOp::Delete { .. }) != is_delete)
            .map_or(changes.len(), |n| start + n);
        let run = changes.get(start..end).unwrap_or_default();
        for chunk in run.chunks(WRITE_CHUNK) {
            if is_delete {
                delete_rows(conn, kind, chunk).await?;
            } else {
                upsert_rows(conn, kind, chunk).await?;
            }
        }
        start = end;
    }
    Ok(())
}

async fn upsert_rows(
    conn: &mut PgConnection,
    kind: EntityKind,
    run: &[Change],
) -> anyhow::Result<()> {
    // The last write of a key wins; one statement may not touch a row twice.
    let mut rows: Vec<Value> = Vec::with_capacity(run.len());
    let mut seen = std::collections::HashMap::new();
    for change in run {
        let ChangeOp::Upsert(entity) = &change.op else {
            continue;
        };
        let row = encode(&change.tenant, entity);
        match seen.get(&(change.tenant.clone(), entity.key())) {
            Some(&at) => {
                if let Some(slot) = rows.get_mut(at) {
                    *slot = row;
                }
            }
            None => {
                seen.insert((change.tenant.clone(), entity.key()), rows.len());
                rows.push(row);
            }
        }
    }
    let t = table(kind);
    let conflict = if kind == EntityKind::Tenant {
        "id".to_owned()
    } else {
        format!("tenant, {}", t.key)
    };
    let set: Vec<String> = t
        .columns
        .iter()
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let mine: Vec<String> = t.columns.iter().map(|c| format!("x.{c}")).collect();
    let theirs: Vec<String> = t.columns.iter().map(|c| format!("EXCLUDED.{c}")).collect();
    let sql = format!(
        "INSERT INTO permd.{name} AS x SELECT * FROM jsonb_populate_recordset(NULL::permd.{name}, $1) \
         ON CONFLICT ({conflict}) DO UPDATE SET {set} WHERE ({mine}) IS DISTINCT FROM ({theirs})",
        name = t.name,
        set = set.join(", "),
        mine = mine.join(", "),
        theirs = theirs.join(", "),
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(Value::Array(rows))
        .execute(&mut *conn)
        .await
        .with_context(|| format!("writing {} rows", t.name))?;
    Ok(())
}

async fn delete_rows(
    conn: &mut PgConnection,
    kind: EntityKind,
    run: &[Change],
) -> anyhow::Result<()> {
    let t = table(kind);
    let tenants: Vec<String> = run.iter().map(|c| c.tenant.clone()).collect();
    let keys: Vec<String> = run.iter().map(Change::key).collect();
    let sql = if kind == EntityKind::Tenant {
        "DELETE FROM permd.tenants WHERE id = ANY($1)".to_owned()
    } else {
        let key = if kind == EntityKind::Record {
            "k.key::uuid"
        } else {
            "k.key"
        };
        format!(
            "DELETE FROM permd.{name} x USING unnest($1::text[], $2::text[]) AS k(tenant, key) \
             WHERE x.tenant = k.tenant AND x.{col} = {key}",
            name = t.name,
            col = t.key,
        )
    };
    if kind == EntityKind::Record {
        for key in &keys {
            Change::record_key(key).map_err(anyhow::Error::msg)?;
        }
    }
    let query = sqlx::query(AssertSqlSafe(sql)).bind(tenants);
    let query = if kind == EntityKind::Tenant {
        query
    } else {
        query.bind(keys)
    };
    query
        .execute(&mut *conn)
        .await
        .with_context(|| format!("deleting {} rows", t.name))?;
    Ok(())
}

/// What a load did.
#[derive(Debug, PartialEq, Eq)]
pub struct Loaded {
    pub revision_before: u64,
    pub revision_after: u64,
}

/// Makes the database hold exactly the file's tenants, in one transaction:
/// every entity of the file upserted, every entity of those tenants that
/// the file no longer has deleted. Tenants not in the file are left alone.
/// Loading the same file twice changes nothing (no revision).
pub async fn load(pool: &PgPool, file: &DataFile) -> anyhow::Result<Loaded> {
    let revision_before = revision(pool).await?;
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    for tenant in &file.tenants {
        write(&mut tx, &upserts_of(tenant)).await?;
        for t in &TABLES {
            if t.kind == EntityKind::Tenant {
                continue;
            }
            let keep: Vec<String> = keys_of(tenant, t.kind);
            let key = if t.kind == EntityKind::Record {
                "x.id::text"
            } else {
                &format!("x.{}", t.key)
            };
            let sql = format!(
                "DELETE FROM permd.{name} x WHERE x.tenant = $1 AND NOT ({key} = ANY($2))",
                name = t.name,
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(&tenant.id)
                .bind(keep)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("removing {} the file no longer has", t.name))?;
        }
    }
    tx.commit().await.context("committing the load")?;
    Ok(Loaded {
        revision_before,
        revision_after: revision(pool).await?,
    })
}

fn upserts_of(t: &Tenant) -> Vec<Change> {
    let id = t.id.as_str();
    let mut changes = vec![Change::upsert(
        id,
        Entity::Tenant(crate::model::change::TenantSettings {
            email_configured: t.email_configured,
            sms_configured: t.sms_configured,
        }),
    )];
    changes.extend(
        t.objects
            .iter()
            .map(|o| Change::upsert(id, Entity::Object(o.clone()))),
    );
    changes.extend(
        t.groups
            .iter()
            .map(|g| Change::upsert(id, Entity::Group(g.clone()))),
    );
    changes.extend(
        t.roles
            .iter()
            .map(|r| Change::upsert(id, Entity::Role(r.clone()))),
    );
    changes.extend(
        t.users
            .iter()
            .map(|u| Change::upsert(id, Entity::User(u.clone()))),
    );
    changes.extend(
        t.integrations
            .iter()
            .map(|i| Change::upsert(id, Entity::Integration(i.clone()))),
    );
    changes.extend(
        t.automations
            .iter()
            .map(|a| Change::upsert(id, Entity::Automation(a.clone()))),
    );
    changes.extend(
        t.records
            .iter()
            .map(|r| Change::upsert(id, Entity::Record(r.clone()))),
    );
    changes
}

fn keys_of(t: &Tenant, kind: EntityKind) -> Vec<String> {
    match kind {
        EntityKind::Tenant => Vec::new(),
        EntityKind::Object => t.objects.iter().map(|o| o.name.clone()).collect(),
        EntityKind::Group => t.groups.iter().map(|g| g.id.clone()).collect(),
        EntityKind::Role => t.roles.iter().map(|r| r.id.clone()).collect(),
        EntityKind::User => t.users.iter().map(|u| u.id.clone()).collect(),
        EntityKind::Integration => t.integrations.iter().map(|i| i.id.clone()).collect(),
        EntityKind::Automation => t.automations.iter().map(|a| a.id.clone()).collect(),
        EntityKind::Record => t.records.iter().map(|r| r.id.to_string()).collect(),
    }
}

/// Writes changes in one transaction and returns the revision it got (the
/// current one when nothing actually changed).
pub async fn write_transaction(pool: &PgPool, changes: &[Change]) -> anyhow::Result<u64> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    write(&mut tx, changes).await?;
    let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await.context("committing the write")?;
    let stamped: Option<i64> =
        sqlx::query_scalar("SELECT revision FROM permd.transactions WHERE xid = $1::xid8")
            .bind(&xid)
            .fetch_optional(pool)
            .await?;
    match stamped {
        Some(r) => Ok(u64::try_from(r).unwrap_or(0)),
        None => revision(pool).await,
    }
}

/// The transactions after `after` (at most `limit` of them) and the latest
/// revision, in one statement, so both come from one snapshot: every
/// transaction up to `latest` is in it unless pruned. A revision missing
/// in between therefore means the changelog was pruned past `after`.
pub async fn changes_after(pool: &PgPool, after: u64, limit: u64) -> anyhow::Result<ChangelogRead> {
    let (latest, rows) = rows_after(pool, after, limit).await?;
    Ok(ChangelogRead::decode(latest, rows, |_| true))
}

/// `changes_after` as the rows stand, undecoded: what the relay forwards.
pub async fn rows_after(
    pool: &PgPool,
    after: u64,
    limit: u64,
) -> anyhow::Result<(u64, Vec<Transaction>)> {
    // The lateral subquery (fenced by OFFSET 0) keeps the plan an index
    // lookup per transaction: a hash join would scan the whole changelog.
    let rows = sqlx::query(
        "SELECT r.value, x.revision, x.seq, x.tenant, x.entity, x.key, x.op, x.payload \
         FROM permd.revision r LEFT JOIN LATERAL ( \
           SELECT t.revision, c.seq, c.tenant, c.entity, c.key, c.op, c.payload::text AS payload \
           FROM (SELECT revision, xid FROM permd.transactions \
                 WHERE revision > $1 AND revision <= $1 + $2) t \
           CROSS JOIN LATERAL (SELECT * FROM permd.changelog c WHERE c.xid = t.xid OFFSET 0) c \
         ) x ON true \
         ORDER BY x.revision, x.seq",
    )
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .context("reading the changelog")?;
    let mut latest = 0;
    let mut transactions: Vec<Transaction> = Vec::new();
    for row in rows {
        let value: i64 = row.try_get(0)?;
        latest = u64::try_from(value).unwrap_or(0);
        let Some(revision) = row.try_get::<Option<i64>, _>(1)? else {
            continue;
        };
        let revision = u64::try_from(revision).unwrap_or(0);
        let raw = RawChange {
            seq: row.try_get(2)?,
            tenant: row.try_get(3)?,
            entity: row.try_get(4)?,
            key: row.try_get(5)?,
            op: row.try_get(6)?,
            payload: row.try_get(7)?,
        };
        match transactions.last_mut() {
            Some(t) if t.revision == revision => t.rows.push(raw),
            _ => transactions.push(Transaction {
                revision,
                rows: vec![raw],
            }),
        }
    }
    Ok((latest, transactions))
}

/// How far the changelog has been pruned: revisions at or below it are gone.
pub async fn pruned_through(pool: &PgPool) -> anyhow::Result<u64> {
    let v: i64 = sqlx::query_scalar("SELECT pruned_through FROM permd.revision")
        .fetch_one(pool)
        .await?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// Deletes changelog transactions committed more than `retention` ago
/// (never the latest one) and returns how far the changelog is now pruned.
/// Safe to run from every sidecar at once: the first takes an advisory
/// lock, the others skip.
pub async fn prune(pool: &PgPool, retention: Duration) -> anyhow::Result<u64> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(1885696621)")
        .fetch_one(&mut *tx)
        .await
        .unwrap_or(false);
    if locked {
        let secs = retention.as_secs_f64();
        let through: Option<i64> = sqlx::query_scalar(
            "SELECT max(revision) FROM permd.transactions \
             WHERE committed_at < clock_timestamp() - make_interval(secs => $1) \
             AND revision < (SELECT value FROM permd.revision)",
        )
        .bind(secs)
        .fetch_one(&mut *tx)
        .await?;
        if let Some(through) = through {
            sqlx::query(
                "DELETE FROM permd.changelog c USING permd.transactions t \
                 WHERE c.xid = t.xid AND t.revision <= $1",
            )
            .bind(through)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM permd.transactions WHERE revision <= $1")
                .bind(through)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE permd.revision SET pruned_through = greatest(pruned_through, $1)")
                .bind(through)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    pruned_through(pool).await
}

/// Record reads run this many ways at once, on one exported snapshot.
const BOOTSTRAP_PARTS: u64 = 2;

/// Every tenant as of one consistent snapshot, and the revision that
/// snapshot is at ([`bootstrap_stream`]), as one data file: for the relay
/// (which encodes it) and tests. A sidecar indexes as it reads instead
/// ([`bootstrap_snapshot`]).
pub async fn bootstrap(pool: &PgPool) -> anyhow::Result<(DataFile, u64)> {
    let (catalog, catalog_read) = tokio::sync::oneshot::channel::<Vec<Tenant>>();
    let (records, mut records_read) = tokio::sync::mpsc::channel(RECORD_BATCHES_IN_FLIGHT);
    let collect = async {
        let Ok(mut tenants) = catalog_read.await else {
            return Vec::new();
        };
        let at: std::collections::HashMap<String, usize> = tenant_positions(&tenants);
        while let Some(batch) = records_read.recv().await {
            for (tenant, record) in batch {
                if let Some(t) = at.get(&tenant).and_then(|&i| tenants.get_mut(i)) {
                    t.records.push(record);
                }
            }
        }
        tenants
    };
    let (revision, tenants) = tokio::join!(bootstrap_stream(pool, catalog, records), collect);
    Ok((DataFile { tenants }, revision?))
}

fn tenant_positions(tenants: &[Tenant]) -> std::collections::HashMap<String, usize> {
    tenants
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.clone(), i))
        .collect()
}

/// What a sidecar's bootstrap from PostgreSQL gives: the index of every
/// tenant, the revision, the records read and the warnings to log.
pub struct Bootstrapped {
    pub snapshot: crate::index::Snapshot,
    pub revision: u64,
    pub records: usize,
    pub warnings: Vec<crate::model::validate::Problem>,
}

/// Bootstraps straight into the index: each record is checked and
/// indexed as its row arrives, then dropped, so the peak is the index's
/// build rather than every row and record at once (1.3 GB for a million
/// Contacts). Invalid data is refused with every problem listed.
pub async fn bootstrap_snapshot(pool: &PgPool) -> anyhow::Result<Bootstrapped> {
    use crate::model::validate::validate;
    let (catalog, catalog_read) = tokio::sync::oneshot::channel::<Vec<Tenant>>();
    let (records, mut records_read) = tokio::sync::mpsc::channel::<
        Vec<(String, crate::model::data::Record)>,
    >(RECORD_BATCHES_IN_FLIGHT);
    let indexing = tokio::task::spawn_blocking(move || {
        let Ok(tenants) = catalog_read.blocking_recv() else {
            anyhow::bail!("the bootstrap stopped before its catalog was read");
        };
        let file = DataFile { tenants };
        let report = validate(&file);
        if !report.errors.is_empty() {
            // Hanging up stops the readers.
            drop(records_read);
            return Ok(Err(report.errors));
        }
        let mut count = 0usize;
        let rows = std::iter::from_fn(|| records_read.blocking_recv())
            .flatten()
            .inspect(|_| count += 1);
        let indexed = crate::source::stream::index_tenants(&file.tenants, rows);
        // Every record was dropped on this thread: return its free pages
        // while the heap is still this thread's own.
        crate::memory::settle();
        Ok(indexed.map(|(builders, mut warnings)| {
            let mut all = report.warnings;
            all.append(&mut warnings);
            (file.tenants, builders, all, count)
        }))
    });
    let read = bootstrap_stream(pool, catalog, records).await;
    let (revision, indexed) = match (read, indexing.await?) {
        (Ok(revision), Ok(indexed)) => (revision, indexed),
        // The readers stopped because the data is invalid: say why.
        (Err(e), Ok(Err(errors))) if e.is::<ConsumerStopped>() => (0, Err(errors)),
        // Reading failed first (the consumer then saw no catalog).
        (Err(e), _) => return Err(e),
        (Ok(_), Err(e)) => return Err(e),
    };
    let (metas, builders, warnings, records) = match indexed {
        Ok(built) => built,
        Err(errors) => {
            let problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
            let at = if revision > 0 {
                format!(" at revision {revision}")
            } else {
                String::new()
            };
            anyhow::bail!(
                "the data in PostgreSQL{at} is invalid: {}",
                problems.join("; ")
            );
        }
    };
    let snapshot = tokio::task::spawn_blocking(move || crate::index::Snapshot {
        revision,
        tenants: metas
            .iter()
            .zip(builders)
            .map(|(meta, builder)| {
                let mut index = builder.finish(meta);
                index.stamp(revision);
                (meta.id.clone(), std::sync::Arc::new(index))
            })
            .collect(),
    })
    .await?;
    Ok(Bootstrapped {
        snapshot,
        revision,
        records,
        warnings,
    })
}

/// The consumer of a bootstrap hung up (it found the data invalid, or
/// failed): the readers stop, and the consumer's reason is the error.
#[derive(Debug, thiserror::Error)]
#[error("the bootstrap's consumer stopped")]
struct ConsumerStopped;

/// Batches of records queued between the readers and their consumer.
const RECORD_BATCHES_IN_FLIGHT: usize = 4;
/// Records per batch.
const RECORD_BATCH: usize = 1024;

/// Reads every tenant as of one consistent snapshot (one REPEATABLE READ,
/// read only transaction) and returns the revision that snapshot is at.
/// The tenants without their records go to `catalog` first; then the
/// records — the bulk — to `records` in batches, as (tenant, record), read
/// as typed columns by `BOOTSTRAP_PARTS` connections at once, each a range
/// of the table's pages, all in the snapshot the first transaction exports
/// (as `pg_dump -j` does). A consumer that hangs up stops the reading.
async fn bootstrap_stream(
    pool: &PgPool,
    catalog: tokio::sync::oneshot::Sender<Vec<Tenant>>,
    records: tokio::sync::mpsc::Sender<Vec<(String, crate::model::data::Record)>>,
) -> anyhow::Result<u64> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
        .fetch_one(&mut *tx)
        .await
        .context("exporting the bootstrap snapshot")?;
    let revision: i64 = sqlx::query_scalar("SELECT value FROM permd.revision")
        .fetch_one(&mut *tx)
        .await
        .context("reading permd.revision")?;
    let pages: i64 = sqlx::query_scalar(
        "SELECT (pg_relation_size('permd.records') / current_setting('block_size')::bigint)",
    )
    .fetch_one(&mut *tx)
    .await?;
    let per_part = (u64::try_from(pages).unwrap_or(0) / BOOTSTRAP_PARTS).max(1);
    // Started before the catalog is read; they wait on the queue until
    // the consumer has the catalog.
    let parts: Vec<_> = (0..BOOTSTRAP_PARTS)
        .map(|k| {
            let pool = pool.clone();
            let snapshot = snapshot.clone();
            let records = records.clone();
            let from = k * per_part;
            let to = (k + 1 < BOOTSTRAP_PARTS).then_some((k + 1) * per_part);
            tokio::spawn(async move { read_records(&pool, &snapshot, from, to, records).await })
        })
        .collect();
    drop(records);

    let mut tenants: Vec<Tenant> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut tenant_index = |tenants: &mut Vec<Tenant>, id: &str| -> usize {
        if let Some(&i) = at.get(id) {
            return i;
        }
        at.insert(id.to_owned(), tenants.len());
        tenants.push(Tenant {
            id: id.to_owned(),
            ..Tenant::default()
        });
        tenants.len() - 1
    };
    for t in TABLES.iter().filter(|t| t.kind != EntityKind::Record) {
        // Ordered so a snapshot reads the same every time.
        let sql = format!(
            "SELECT to_jsonb(x)::text FROM permd.{name} x ORDER BY {order}",
            name = t.name,
            order = if t.kind == EntityKind::Tenant {
                "id".to_owned()
            } else {
                format!("tenant, {}", t.key)
            }
        );
        let rows = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql))
            .fetch_all(&mut *tx)
            .await?;
        for text in rows {
            let row: Value = serde_json::from_str(&text)
                .with_context(|| format!("a {} row is not JSON", t.name))?;
            let (tenant_id, entity) = decode(t.kind, row)
                .map_err(|e| anyhow::anyhow!("a row of permd.{} cannot be read: {e}", t.name))?;
            let i = tenant_index(&mut tenants, &tenant_id);
            let Some(tenant) = tenants.get_mut(i) else {
                continue;
            };
            match entity {
                Entity::Tenant(s) => {
                    tenant.email_configured = s.email_configured;
                    tenant.sms_configured = s.sms_configured;
                }
                Entity::Object(o) => tenant.objects.push(o),
                Entity::Group(g) => tenant.groups.push(g),
                Entity::Role(r) => tenant.roles.push(r),
                Entity::User(u) => tenant.users.push(u),
                Entity::Integration(i) => tenant.integrations.push(i),
                Entity::Automation(a) => tenant.automations.push(a),
                Entity::Record(_) => {}
            }
        }
    }
    if catalog.send(tenants).is_err() {
        return Err(ConsumerStopped.into());
    }
    // The first part to fail stops the others: its error is the answer,
    // not what the others would read after it.
    let mut parts = parts.into_iter();
    while let Some(part) = parts.next() {
        let done = match part.await {
            Ok(read) => read,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = done {
            parts.for_each(|p| p.abort());
            return Err(e);
        }
    }
    // The exported snapshot lives as long as this transaction: commit only
    // after every part has read.
    tx.commit().await?;
    Ok(u64::try_from(revision).unwrap_or(0))
}

/// The records on pages `[from, to)` of permd.records, in `snapshot`,
/// sent to `out` in batches as their rows arrive.
async fn read_records(
    pool: &PgPool,
    snapshot: &str,
    from: u64,
    to: Option<u64>,
    out: tokio::sync::mpsc::Sender<Vec<(String, crate::model::data::Record)>>,
) -> anyhow::Result<()> {
    use tokio_stream::StreamExt;
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    sqlx::query(AssertSqlSafe(format!(
        "SET TRANSACTION SNAPSHOT '{}'",
        snapshot.replace('\'', "")
    )))
    .execute(&mut *tx)
    .await
    .context("joining the bootstrap snapshot")?;
    let range = match to {
        Some(to) => format!("ctid >= '({from},0)'::tid AND ctid < '({to},0)'::tid"),
        None => format!("ctid >= '({from},0)'::tid"),
    };
    let sql = format!(
        "SELECT tenant, id, object, owner, teams::text, interactions, links::text, archived, contact::text \
         FROM permd.records WHERE {range}"
    );
    let stopped = || anyhow::Error::from(ConsumerStopped);
    {
        let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(&mut *tx);
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        while let Some(row) = rows.next().await {
            let row = row?;
            let id: uuid::Uuid = row.try_get(1)?;
            let record =
                record_of(&row).with_context(|| format!("record {id} in permd.records"))?;
            batch.push((row.try_get::<String, _>(0)?, record));
            if batch.len() == RECORD_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(RECORD_BATCH));
                out.send(full).await.map_err(|_| stopped())?;
            }
        }
        out.send(batch).await.map_err(|_| stopped())?;
    }
    tx.commit().await?;
    Ok(())
}

/// One permd.records row (typed columns) as a record.
fn record_of(row: &sqlx::postgres::PgRow) -> anyhow::Result<crate::model::data::Record> {
    fn json_or_default<T: serde::de::DeserializeOwned + Default>(text: &str) -> anyhow::Result<T> {
        if text == "{}" || text == "[]" {
            return Ok(T::default());
        }
        Ok(serde_json::from_str(text)?)
    }
    let teams: String = row.try_get(4)?;
    let links: String = row.try_get(6)?;
    let contact: Option<String> = row.try_get(8)?;
    Ok(crate::model::data::Record {
        id: row.try_get(1)?,
        object: row.try_get(2)?,
        owner: row.try_get(3)?,
        teams: json_or_default(&teams).context("column teams")?,
        interactions: row.try_get(5)?,
        links: json_or_default(&links).context("column links")?,
        archived: row.try_get(7)?,
        contact: contact
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .context("column contact")?,
    })
}
