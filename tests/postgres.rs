//! PostgreSQL as the source of truth, against the real server on
//! 127.0.0.1:5432 (PERMD_TEST_DATABASE_URL overrides): migrations, load,
//! bootstrap, the change feed under concurrent writers whose commits
//! interleave, Admin writes and read-your-writes over gRPC, faults (the
//! database down at start, lost while serving, the changelog pruned past a
//! follower, a row permd cannot read: only its tenant waits) and several
//! sidecar processes.
//!
//! Every test gets its own database, dropped at the end. Without a
//! reachable PostgreSQL the tests print a notice and pass, unless `CI` is
//! set: there a missing database is a failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pg::TestDb;
use common::requests::{authorized, batch, question, user};
use common::server::{Serve, ServeProcess, TestServer, authorizer};
use permd::index::{Engine, PrincipalKind, Question, Snapshot};
use permd::model::data::{ContactState, DataFile, EmailInbox, EmailStatus};
use permd::model::{ActionContext, Channel};
use permd::pb::{self, admin_client::AdminClient};
use permd::source::generate::{GenSpec, generate, record_ids};
use permd::source::postgres::feed::{FeedConfig, Readiness};
use permd::source::postgres::{self as pg};
use sqlx::{Connection, PgConnection, PgPool};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Code;
use uuid::Uuid;

const TOKEN: &str = "test-admin-token-0123456789";
const TENANT: &str = "bench";
/// How long a test waits for a follower to catch up before failing.
const CATCH_UP: Duration = Duration::from_secs(20);

/// A database of its own, migrated, with the small generated tenant loaded.
async fn with_tenant(tag: &str) -> Option<(TestDb, PgPool, DataFile)> {
    let data = small_tenant();
    let (db, pool) = TestDb::loaded(tag, &data).await?;
    Some((db, pool, data))
}

fn small_tenant() -> DataFile {
    let mut data = generate(&GenSpec {
        contacts: 400,
        users: 12,
        groups: 6,
        roles: 4,
        custom_objects: 1,
        custom_records_per_contact: 0.1,
        seed: 21,
        ..GenSpec::default()
    });
    // v2's user columns: a service account, and senders whose outgoing
    // email is off (R13), among the users `answers` asks for.
    for user in &mut data.tenants[0].users {
        match user.id.as_str() {
            "u3" => user.email_inbox = EmailInbox::Blocked,
            "u7" => {
                user.email_inbox = EmailInbox::NotConnected;
                user.service_account = true;
            }
            _ => {}
        }
    }
    data
}

const USERS: [&str; 5] = ["u0", "u1", "u3", "u7", "u11"];

fn user_question(who: &str, action: &str, ctx: ActionContext) -> Question {
    Question {
        ctx,
        ..question(TENANT, PrincipalKind::User, who, "contacts", action)
    }
}

/// Every answer that matters for comparing two engines over the tenant.
fn answers(engine: &Engine, ids: &[Uuid]) -> Vec<String> {
    let now = OffsetDateTime::now_utc();
    let email = ActionContext {
        subscription_list: Some("newsletter".to_owned()),
        ..ActionContext::default()
    };
    let text = ActionContext {
        channel: Some(Channel::Text),
        ..ActionContext::default()
    };
    let mut out = Vec::new();
    for user in USERS {
        for (action, ctx) in [
            ("view", ActionContext::default()),
            ("bulk_send_email", email.clone()),
            ("send_single_message", text.clone()),
            ("archive", ActionContext::default()),
        ] {
            let answer = engine.batch_check(&user_question(user, action, ctx), ids, now);
            out.push(match answer {
                Ok(a) => format!("{user} {action} {:?} {:?}", a.allowed, a.denials),
                Err(e) => format!("{user} {action} error {e}"),
            });
        }
    }
    out
}

/// An engine built from the database as it is now.
async fn engine_from_db(pool: &PgPool) -> Engine {
    let (file, revision) = pg::bootstrap(pool).await.unwrap();
    Engine::new(Snapshot::build(&file, revision), 100_000)
}

/// `engine` answers as one bootstrapped from the database now: a follower
/// that applied every change, in commit order, and lost none.
async fn assert_answers_as_a_bootstrap(engine: &Engine, pool: &PgPool, ids: &[Uuid]) {
    let fresh = engine_from_db(pool).await;
    assert_eq!(
        answers(engine, ids),
        answers(&fresh, ids),
        "the follower answers as a fresh bootstrap"
    );
}

/// Starts a follower in this process.
fn follow(
    url: &str,
    max_staleness: Duration,
) -> (Arc<Engine>, watch::Receiver<Readiness>, watch::Sender<bool>) {
    let engine = Arc::new(Engine::new(Snapshot::default(), 100_000));
    let (readiness, watching) = watch::channel(Readiness::default());
    let (stop, stopped) = watch::channel(false);
    let config = FeedConfig {
        database_url: url.to_owned(),
        max_staleness,
        retention: None,
        poll_interval: Duration::from_millis(200),
    };
    tokio::spawn(pg::feed::run(engine.clone(), config, readiness, stopped));
    (engine, watching, stop)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < CATCH_UP,
            "timed out waiting until {what}"
        );
        // (the caller's closure reads the state it waits on)
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn db_revision(pool: &PgPool) -> u64 {
    pg::revision(pool).await.unwrap()
}

/// Sets one Contact's team (who owns the relationship: Contacts have no
/// owner, R8) and email status in the caller's transaction.
async fn touch(conn: &mut PgConnection, id: Uuid, member: &str, status: EmailStatus) {
    let contact = ContactState {
        email: Some("x@example.com".to_owned()),
        email_status: status,
        ..ContactState::default()
    };
    const SQL: &str = "UPDATE permd.records \
        SET teams = jsonb_build_object('account_team', jsonb_build_array($1::text)), contact = $2 \
        WHERE tenant = $3 AND id = $4";
    sqlx::query(SQL)
        .bind(member)
        .bind(serde_json::to_value(&contact).unwrap())
        .bind(TENANT)
        .bind(id)
        .execute(conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_load_are_idempotent_and_bootstrap_answers_as_the_file() {
    let Some(db) = TestDb::create("load").await else {
        return;
    };
    let pool = pg::connect(&db.url).await.unwrap();
    // Every migration, the model v2 one included.
    let versions: Vec<i64> = pg::MIGRATOR.iter().map(|m| m.version).collect();
    assert!(versions.contains(&20261202000001), "{versions:?}");
    assert_eq!(pg::migrate(&pool).await.unwrap(), versions.len());
    assert_eq!(
        pg::migrate(&pool).await.unwrap(),
        0,
        "a second migrate runs nothing"
    );
    pg::check_schema(&pool).await.unwrap();

    let mut data = small_tenant();
    let first = pg::load(&pool, &data).await.unwrap();
    assert_eq!(
        (first.revision_before, first.revision_after),
        (0, 1),
        "one load, one revision"
    );
    let again = pg::load(&pool, &data).await.unwrap();
    assert_eq!(
        again.revision_after, 1,
        "loading the same file again changes nothing"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM permd.transactions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);

    let ids = record_ids(&data, TENANT, "contacts");
    let from_file = Engine::new(Snapshot::build(&data, 1), 100_000);
    assert_eq!(
        answers(&engine_from_db(&pool).await, &ids),
        answers(&from_file, &ids)
    );
    // v2's users (service_account, email_inbox) and integrations (a user,
    // no groups) come back from the database as they went in.
    let (back, _) = pg::bootstrap(&pool).await.unwrap();
    let by_id = |users: &[permd::model::data::User]| {
        let mut users = users.to_vec();
        users.sort_by(|a, b| a.id.cmp(&b.id));
        users
    };
    assert_eq!(by_id(&back.tenants[0].users), by_id(&data.tenants[0].users));
    assert_eq!(back.tenants[0].integrations, data.tenants[0].integrations);
    let stored: Vec<(String, bool, String)> = sqlx::query_as(
        "SELECT id, service_account, email_inbox FROM permd.users \
         WHERE id IN ('u3', 'u7') ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        stored,
        vec![
            ("u3".to_owned(), false, "blocked".to_owned()),
            ("u7".to_owned(), true, "not_connected".to_owned()),
        ]
    );

    // A changed file: a record and a user gone, a group changed.
    let t = &mut data.tenants[0];
    let gone = t.records.remove(0).id;
    t.users.retain(|u| u.id != "u5");
    t.integrations.clear();
    t.automations.clear();
    let g = t.groups[0]
        .objects
        .entry("contacts".to_owned())
        .or_default();
    // All Records remove, and what the catalog rules then ask (R5, R7).
    g.all_records = permd::model::AccessLevel::Remove;
    g.associated_records = permd::model::AccessLevel::Remove;
    if let Some(email) = g.fields.get_mut("email") {
        *email = permd::model::FieldLevel::Edit;
    }
    let third = pg::load(&pool, &data).await.unwrap();
    assert_eq!(third.revision_after, 2);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM permd.records WHERE id = $1")
        .bind(gone)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "the record the file no longer has is deleted");
    let from_file = Engine::new(Snapshot::build(&data, 2), 100_000);
    assert_eq!(
        answers(&engine_from_db(&pool).await, &ids),
        answers(&from_file, &ids)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_that_commits_after_a_later_one_is_not_lost() {
    let Some((db, pool, data)) = with_tenant("order").await else {
        return;
    };
    let ids = record_ids(&data, TENANT, "contacts");
    let (engine, readiness, _stop) = follow(&db.url, Duration::from_secs(30));
    wait_until("bootstrapped", || readiness.borrow().loaded).await;
    assert_eq!(engine.revision(), 1);

    // A writes first (its changelog row takes the lower sequence number),
    // B writes later and commits first; the follower reads B before A
    // commits. A sequence-number cursor would skip A's row for good.
    let mut a = PgConnection::connect(&db.url).await.unwrap();
    let mut b = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut a).await.unwrap();
    touch(&mut a, ids[0], "u3", EmailStatus::UnsubscribedAll).await;
    sqlx::raw_sql("BEGIN").execute(&mut b).await.unwrap();
    touch(&mut b, ids[1], "u3", EmailStatus::OptedIn).await;
    sqlx::raw_sql("COMMIT").execute(&mut b).await.unwrap();
    wait_until("B applied", || engine.revision() == 2).await;
    sqlx::raw_sql("COMMIT").execute(&mut a).await.unwrap();
    wait_until("A applied", || engine.revision() == 3).await;

    let seqs: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT t.revision, c.seq FROM permd.transactions t JOIN permd.changelog c ON c.xid = t.xid \
         WHERE t.revision > 1 ORDER BY t.revision",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(seqs.len(), 2);
    assert!(
        seqs[0].1 > seqs[1].1,
        "B (revision 2) took a later sequence number than A (revision 3): {seqs:?}"
    );
    assert_answers_as_a_bootstrap(&engine, &pool, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_with_interleaved_commits_lose_and_reorder_nothing() {
    let Some((db, pool, data)) = with_tenant("writers").await else {
        return;
    };
    let ids = record_ids(&data, TENANT, "contacts");
    let (engine, readiness, _stop) = follow(&db.url, Duration::from_secs(30));
    wait_until("bootstrapped", || readiness.borrow().loaded).await;

    // The revisions the follower publishes, sampled: they only go up.
    let watcher = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut seen = vec![engine.revision()];
            for _ in 0..2000 {
                let r = engine.revision();
                if r != *seen.last().unwrap() {
                    seen.push(r);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            seen
        })
    };
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let url = db.url.clone();
            let ids = ids.clone();
            tokio::spawn(async move {
                let mut conn = PgConnection::connect(&url).await.unwrap();
                let mut rng = w * 7919 + 13;
                let mut next = move || {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng
                };
                for _ in 0..25 {
                    sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
                    for _ in 0..1 + next() % 3 {
                        let id = ids[(next() % ids.len() as u64) as usize];
                        let owner = format!("u{}", next() % 12);
                        let status = EmailStatus::ALL[(next() % 5) as usize];
                        touch(&mut conn, id, &owner, status).await;
                        // Hold the transaction open so commits interleave.
                        tokio::time::sleep(Duration::from_millis(next() % 7)).await;
                    }
                    sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let latest = db_revision(&pool).await;
    assert!(latest >= 150, "8 writers × 25 transactions: {latest}");
    wait_until(&format!("caught up to {latest}"), || {
        engine.revision() == latest
    })
    .await;
    assert_answers_as_a_bootstrap(&engine, &pool, &ids).await;
    let seen = watcher.await.unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "revisions only go up: {seen:?}"
    );
}

/// A gRPC server with Admin over one engine fed by a follower, on an
/// ephemeral port; with `db`, Admin writes go through to that database.
async fn grpc_server(
    engine: Arc<Engine>,
    readiness: watch::Receiver<Readiness>,
    db: Option<&str>,
) -> TestServer {
    let pool = db.map(|url| {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy(url)
            .unwrap()
    });
    TestServer::builder(engine)
        .readiness(readiness)
        .admin(TOKEN, pool)
        .start()
        .await
}

fn upsert(entity: &str, json: String) -> pb::Mutation {
    pb::Mutation {
        tenant: TENANT.to_owned(),
        entity: entity.to_owned(),
        op: Some(pb::mutation::Op::UpsertJson(json)),
    }
}

/// One upsert through Admin.Write, with the token.
async fn write_one(
    admin: &mut AdminClient<tonic::transport::Channel>,
    entity: &str,
    json: String,
) -> Result<pb::WriteResponse, tonic::Status> {
    admin
        .write(authorized(
            pb::WriteRequest {
                mutations: vec![upsert(entity, json)],
            },
            Some(TOKEN),
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// `view` on `ids` of the bench tenant, as `who`, at `min_revision`.
fn views(who: &str, ids: &[Uuid], min_revision: u64) -> pb::BatchCheckRequest {
    pb::BatchCheckRequest {
        tenant: TENANT.to_owned(),
        min_revision,
        ..batch(user(who), "contacts", "view", ids)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_writes_through_to_postgres_and_another_sidecar_reads_them_with_min_revision() {
    let Some((db, pool, data)) = with_tenant("admin").await else {
        return;
    };
    let ids = record_ids(&data, TENANT, "contacts");
    let (a_engine, a_ready, _a) = follow(&db.url, Duration::from_secs(30));
    let (b_engine, b_ready, _b) = follow(&db.url, Duration::from_secs(30));
    let a = grpc_server(a_engine.clone(), a_ready, Some(&db.url)).await;
    let b = grpc_server(b_engine.clone(), b_ready.clone(), Some(&db.url)).await;
    wait_until("both bootstrapped", || {
        a_engine.revision() == 1 && b_engine.revision() == 1
    })
    .await;
    let mut admin = a.admin().await;
    let mut reader = b.client().await;

    // No token, a wrong token.
    let write = pb::WriteRequest { mutations: vec![] };
    let e = admin
        .write(authorized(write.clone(), None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = admin
        .write(authorized(write.clone(), Some("not-the-token-at-all")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // u11 (the admin) views ids[0]; archive it.
    let mut record = data.tenants[0]
        .records
        .iter()
        .find(|r| r.id == ids[0])
        .unwrap()
        .clone();
    let before = reader
        .batch_check(views("u11", &ids[..1], 0))
        .await
        .unwrap()
        .into_inner();
    record.archived = true;
    let written = write_one(
        &mut admin,
        "record",
        serde_json::to_string(&record).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(written.revision, 2);
    assert_eq!(db_revision(&pool).await, 2, "written to PostgreSQL");
    // Read-your-writes on the other sidecar.
    let after = reader
        .batch_check(views("u11", &ids[..1], written.revision))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.revision, 2);
    assert_ne!(before.denials, after.denials);
    assert!(
        after
            .denials
            .iter()
            .any(|d| d.reason == pb::Reason::Archived as i32),
        "{after:?}"
    );

    // A revision nobody wrote: refused at the deadline, naming what it has.
    let mut late = tonic::Request::new(views("u11", &ids[..1], 999));
    late.set_timeout(Duration::from_millis(300));
    let e = reader.batch_check(late).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message().contains("applied revision 2"),
        "{}",
        e.message()
    );

    // An invalid write is refused before the database sees it.
    let e = write_one(
        &mut admin,
        "user",
        r#"{"id": "zed", "groups": ["no-such-group"]}"#.to_owned(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("no-such-group"), "{}", e.message());
    assert_eq!(db_revision(&pool).await, 2, "nothing written");
    // So is v1's integration with groups of its own (R1).
    let e = admin
        .write(authorized(
            pb::WriteRequest {
                mutations: vec![upsert(
                    "integration",
                    r#"{"id": "key2", "groups": ["g0"], "user": "u1"}"#.to_owned(),
                )],
            },
            Some(TOKEN),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("act as their user"), "{}", e.message());
    assert_eq!(db_revision(&pool).await, 2, "nothing written");

    // v2's user columns are written through: u0's outgoing email blocked
    // (R13), and the other sidecar answers as the database says.
    let mut u0 = data.tenants[0]
        .users
        .iter()
        .find(|u| u.id == "u0")
        .unwrap()
        .clone();
    u0.email_inbox = EmailInbox::Blocked;
    let written = write_one(&mut admin, "user", serde_json::to_string(&u0).unwrap())
        .await
        .unwrap();
    assert_eq!(written.revision, 3);
    let inbox: String =
        sqlx::query_scalar("SELECT email_inbox FROM permd.users WHERE tenant = $1 AND id = 'u0'")
            .bind(TENANT)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(inbox, "blocked");
    wait_until("the other sidecar applied it", || b_engine.revision() == 3).await;
    assert_answers_as_a_bootstrap(&b_engine, &pool, &ids).await;

    let revision = admin
        .revision(authorized(pb::RevisionRequest {}, Some(TOKEN)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            revision.revision,
            revision.database,
            revision.database_revision
        ),
        (3, true, 3)
    );
}

/// A TCP proxy to PostgreSQL that a test can cut and restore: the database
/// "goes down" for the follower without stopping the shared server.
struct Proxy {
    addr: std::net::SocketAddr,
    up: watch::Sender<bool>,
}

impl Proxy {
    async fn start(up: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = watch::channel(up);
        let target =
            std::env::var("PERMD_TEST_PG_ADDR").unwrap_or_else(|_| "127.0.0.1:5432".to_owned());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let mut rx = rx.clone();
                if !*rx.borrow() {
                    drop(client); // refused
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut cr, &mut sw) => {}
                        _ = tokio::io::copy(&mut sr, &mut cw) => {}
                        _ = rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { addr, up: tx }
    }

    fn url(&self, db: &TestDb) -> String {
        format!("postgres://postgres@{}/{}", self.addr, db.name)
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_down_at_start_then_lost_while_serving_then_back_resumes_without_reload() {
    let Some((db, pool, data)) = with_tenant("faults").await else {
        return;
    };
    let ids = record_ids(&data, TENANT, "contacts");
    let proxy = Proxy::start(false).await;
    let (engine, readiness, _stop) = follow(&proxy.url(&db), Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !readiness.borrow().loaded && !readiness.borrow().serving,
        "no snapshot while down"
    );
    let server = grpc_server(engine.clone(), readiness.clone(), None).await;
    let mut client = server.client().await;
    let e = client
        .batch_check(views("u0", &ids[..1], 0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let status = |h: tonic_health::pb::HealthCheckResponse| h.status;
    let ask = tonic_health::pb::HealthCheckRequest {
        service: "permd.v1.Authorizer".to_owned(),
    };
    assert_eq!(
        status(health.check(ask.clone()).await.unwrap().into_inner()),
        2,
        "NOT_SERVING"
    );

    proxy.set(true);
    wait_until("bootstrapped after the database came up", || {
        readiness.borrow().serving
    })
    .await;
    assert_eq!(
        status(health.check(ask.clone()).await.unwrap().into_inner()),
        1,
        "SERVING"
    );
    assert_eq!(engine.revision(), 1);

    // Lost while serving: answers go on from the last snapshot; past the
    // max staleness (1 s) health turns NOT_SERVING.
    proxy.set(false);
    let mut writer = PgConnection::connect(&db.url).await.unwrap();
    touch(&mut writer, ids[0], "u11", EmailStatus::OptedIn).await;
    assert_eq!(db_revision(&pool).await, 2);
    let served = client
        .batch_check(views("u0", &ids[..1], 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(served.revision, 1, "the last snapshot keeps serving");
    wait_until("NOT_SERVING past max staleness", || {
        !readiness.borrow().serving
    })
    .await;
    assert_eq!(
        status(health.check(ask.clone()).await.unwrap().into_inner()),
        2
    );
    assert_eq!(engine.revision(), 1);

    // Back: resumes from revision 1 by the changelog (no reload).
    proxy.set(true);
    wait_until("caught up after reconnecting", || {
        engine.revision() == 2 && readiness.borrow().serving
    })
    .await;
    assert_eq!(
        readiness.borrow().snapshots,
        1,
        "resumed without a full reload"
    );
    assert_answers_as_a_bootstrap(&engine, &pool, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_a_pruned_changelog_reloads_and_a_bad_row_holds_back_only_its_tenant() {
    let Some((db, pool, data)) = with_tenant("prune").await else {
        return;
    };
    let ids = record_ids(&data, TENANT, "contacts");
    let proxy = Proxy::start(true).await;
    let (engine, readiness, _stop) = follow(&proxy.url(&db), Duration::from_secs(60));
    wait_until("bootstrapped", || readiness.borrow().loaded).await;
    proxy.set(false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut writer = PgConnection::connect(&db.url).await.unwrap();
    for (i, id) in ids[..5].iter().enumerate() {
        touch(&mut writer, *id, &format!("u{i}"), EmailStatus::OptedOut).await;
    }
    assert_eq!(db_revision(&pool).await, 6);
    let through = pg::prune(&pool, Duration::ZERO).await.unwrap();
    assert_eq!(through, 5, "all but the latest transaction pruned");
    proxy.set(true);
    // The reload publishes revision 6 a moment before it counts the
    // snapshot: wait for both, or this reads the count in between.
    wait_until("reloaded past the pruned changelog", || {
        engine.revision() == 6 && readiness.borrow().snapshots >= 2
    })
    .await;
    assert_eq!(readiness.borrow().snapshots, 2, "one full reload");
    assert_answers_as_a_bootstrap(&engine, &pool, &ids).await;

    // A second tenant arrives (revision 7).
    sqlx::raw_sql(
        "INSERT INTO permd.tenants (id) VALUES ('other'); \
         INSERT INTO permd.users (tenant, id) VALUES ('other', 'zoe')",
    )
    .execute(&mut writer)
    .await
    .unwrap();
    let zoe = || common::requests::principal_ref(PrincipalKind::User, "zoe");
    wait_until("the second tenant applied", || engine.revision() == 7).await;

    // A Contact state permd cannot read is refused by the database itself,
    // naming the record and the problem, and reaches no changelog.
    let poison = format!(
        "UPDATE permd.records SET contact = '{{\"emial\": \"x@example.com\"}}' \
         WHERE tenant = 'bench' AND id = '{}'",
        ids[0]
    );
    let refused = sqlx::raw_sql(sqlx::AssertSqlSafe(poison.clone()))
        .execute(&mut writer)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains(&ids[0].to_string()) && refused.contains("emial"),
        "{refused}"
    );
    assert_eq!(db_revision(&pool).await, 7);
    // A writer of another version gets it in anyway (revision 8): only that
    // tenant is held, at revision 7, and its later changes wait (revision
    // 9); the other tenant goes on (revision 10).
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET LOCAL permd.skip_validation = 'on'; {poison}"
    )))
    .execute(&mut writer)
    .await
    .unwrap();
    touch(&mut writer, ids[9], "u2", EmailStatus::OptedIn).await;
    sqlx::raw_sql("UPDATE permd.users SET admin = true WHERE tenant = 'other' AND id = 'zoe'")
        .execute(&mut writer)
        .await
        .unwrap();
    assert_eq!(db_revision(&pool).await, 10);
    wait_until("the other tenant moved on", || engine.revision() == 10).await;
    let held = engine.held();
    let bench = held.get(TENANT).expect("bench is held");
    assert_eq!(bench.revision, 7, "held at its last good revision");
    assert!(bench.reason.contains("emial"), "{}", bench.reason);
    let (_, _, other_revision) = engine.object_access("other", &zoe(), None, 10).unwrap();
    assert_eq!(other_revision, 10);
    let now = OffsetDateTime::now_utc();
    let view = user_question("u0", "view", ActionContext::default());
    assert_eq!(engine.batch_check(&view, &ids, now).unwrap().revision, 7);
    let waiting = Question {
        min_revision: 9,
        ..view.clone()
    };
    let refused = engine
        .batch_check(&waiting, &ids, now)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("held at revision 7") && refused.contains("emial"),
        "{refused}"
    );
    assert!(readiness.borrow().serving, "health stays SERVING");

    // Repairing the row resumes the tenant by itself, with the change that
    // waited behind it: as a fresh bootstrap would answer.
    let repair = format!(
        "UPDATE permd.records SET contact = '{{\"email\": \"x@example.com\"}}' \
         WHERE tenant = 'bench' AND id = '{}'",
        ids[0]
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(repair))
        .execute(&mut writer)
        .await
        .unwrap();
    wait_until("the held tenant resumed", || {
        engine.revision() == 11 && engine.held().is_empty()
    })
    .await;
    assert_eq!(
        engine.batch_check(&waiting, &ids, now).unwrap().revision,
        11
    );
    assert_answers_as_a_bootstrap(&engine, &pool, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_breaks_a_catalog_rule_holds_back_only_its_tenant_until_repaired() {
    let Some((db, pool, data)) = with_tenant("heldgroup").await else {
        return;
    };
    let ids = record_ids(&data, TENANT, "contacts");
    let (engine, readiness, _stop) = follow(&db.url, Duration::from_secs(60));
    wait_until("bootstrapped", || readiness.borrow().loaded).await;
    let mut writer = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO permd.tenants (id) VALUES ('other'); \
         INSERT INTO permd.users (tenant, id) VALUES ('other', 'zoe')",
    )
    .execute(&mut writer)
    .await
    .unwrap();
    let start = db_revision(&pool).await;
    wait_until("the second tenant applied", || engine.revision() == start).await;

    // Decodes, but breaks R5b: it cannot be applied. Then a change of each
    // tenant.
    // (Past the database's own check, as a writer of another version.)
    sqlx::raw_sql(
        "SET LOCAL permd.skip_validation = 'on'; \
         UPDATE permd.groups SET objects = jsonb_set(objects, '{contacts}', (objects->'contacts') \
            || '{\"associated_records\": \"view\", \"all_records\": \"view\", \"create_record\": true}') \
         WHERE tenant = 'bench' AND id = 'g0'",
    )
    .execute(&mut writer)
    .await
    .unwrap();
    touch(&mut writer, ids[3], "u1", EmailStatus::OptedIn).await;
    sqlx::raw_sql("UPDATE permd.users SET admin = true WHERE tenant = 'other' AND id = 'zoe'")
        .execute(&mut writer)
        .await
        .unwrap();
    let last = db_revision(&pool).await;
    wait_until("the other tenant moved on", || engine.revision() == last).await;
    let held = engine.held();
    let bench = held.get(TENANT).expect("bench is held");
    assert_eq!(bench.revision, start, "held at its last good revision");
    assert!(bench.reason.contains("R5b"), "{}", bench.reason);

    // The group rewritten within the rules: the tenant resumes by itself.
    sqlx::raw_sql(
        "UPDATE permd.groups SET objects = jsonb_set(objects, '{contacts}', (objects->'contacts') \
            || '{\"associated_records\": \"edit\"}') \
         WHERE tenant = 'bench' AND id = 'g0'",
    )
    .execute(&mut writer)
    .await
    .unwrap();
    let repaired = db_revision(&pool).await;
    wait_until("the held tenant resumed", || {
        engine.revision() == repaired && engine.held().is_empty()
    })
    .await;
    assert_answers_as_a_bootstrap(&engine, &pool, &ids).await;

    // A record moved to an object that does not exist fails on apply
    // itself; rewriting the same record repairs it: the bad version is
    // replaced, not replayed before the good one.
    let set_object = |object: &str| {
        format!(
            "UPDATE permd.records SET object = '{object}' WHERE tenant = 'bench' AND id = '{}'",
            ids[5]
        )
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET LOCAL permd.skip_validation = 'on'; {}",
        set_object("nope")
    )))
    .execute(&mut writer)
    .await
    .unwrap();
    let bad = db_revision(&pool).await;
    wait_until("held again", || {
        engine.revision() == bad && engine.held().contains_key(TENANT)
    })
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(set_object("contacts")))
        .execute(&mut writer)
        .await
        .unwrap();
    let fixed = db_revision(&pool).await;
    wait_until("resumed again", || {
        engine.revision() == fixed && engine.held().is_empty()
    })
    .await;
    assert_answers_as_a_bootstrap(&engine, &pool, &ids).await;
}

/// A `permd serve` child process on the database at `url`, with Admin.
fn sidecar(url: &str) -> ServeProcess {
    Serve::new()
        .env("PERMD_DATABASE_URL", url)
        .env("PERMD_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .quiet()
        .spawn()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sidecar_processes_reach_the_same_revision_with_identical_answers() {
    let Some((db, pool, data)) = with_tenant("sidecars").await else {
        return;
    };
    let ids = record_ids(&data, TENANT, "contacts");
    let sidecars: Vec<ServeProcess> = (0..3).map(|_| sidecar(&db.url)).collect();
    // A stream of changes from 4 concurrent writers while they start.
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let url = db.url.clone();
            let ids = ids.clone();
            tokio::spawn(async move {
                let mut conn = PgConnection::connect(&url).await.unwrap();
                for n in 0..40u64 {
                    let id = ids[((w * 97 + n * 31) % ids.len() as u64) as usize];
                    sqlx::raw_sql("BEGIN").execute(&mut conn).await.unwrap();
                    touch(
                        &mut conn,
                        id,
                        &format!("u{}", (w + n) % 12),
                        EmailStatus::ALL[(n % 5) as usize],
                    )
                    .await;
                    tokio::time::sleep(Duration::from_millis(n % 3)).await;
                    sqlx::raw_sql("COMMIT").execute(&mut conn).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let latest = db_revision(&pool).await;
    assert_eq!(latest, 1 + 4 * 40);
    let mut all = Vec::new();
    for s in &sidecars {
        // Each loads the database first: it may take up to CATCH_UP.
        let channel = s.channel_within(CATCH_UP).await;
        let mut admin = AdminClient::new(channel.clone());
        let started = Instant::now();
        loop {
            let r = admin
                .revision(authorized(pb::RevisionRequest {}, Some(TOKEN)))
                .await;
            if r.as_ref().is_ok_and(|r| r.get_ref().revision == latest) {
                break;
            }
            assert!(started.elapsed() < CATCH_UP, "{} stuck at {r:?}", s.url());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut client = authorizer(channel);
        let mut answers = Vec::new();
        for user in USERS {
            let a = client
                .batch_check(views(user, &ids, latest))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(a.revision, latest);
            answers.push((a.allowed, a.denials));
        }
        all.push(answers);
    }
    assert!(
        all.iter().all(|a| *a == all[0]),
        "the three sidecars answer alike"
    );
    let reference = engine_from_db(&pool).await;
    let now = OffsetDateTime::now_utc();
    for (user, answer) in USERS.iter().zip(&all[0]) {
        let r = reference
            .batch_check(
                &user_question(user, "view", ActionContext::default()),
                &ids,
                now,
            )
            .unwrap();
        assert_eq!(
            answer.0, r.allowed,
            "{user}: the sidecars answer as a fresh bootstrap"
        );
    }
}

/// A sidecar bootstraps straight into its index (each row checked and
/// indexed as it arrives): it answers as the data read whole does, and a
/// row that got past the database's checks (a writer of another version)
/// is refused at bootstrap with its record and the problem named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_bootstrap_answers_as_the_data_read_whole_and_names_a_bad_row() {
    let Some((db, pool, data)) = with_tenant("streamed").await else {
        return;
    };
    let ids = record_ids(&data, TENANT, "contacts");
    let streamed = pg::bootstrap_snapshot(&pool).await.unwrap();
    assert_eq!(streamed.records, data.tenants[0].records.len());
    assert_eq!(streamed.revision, db_revision(&pool).await);
    let streamed = Engine::new(streamed.snapshot, 100_000);
    let whole = engine_from_db(&pool).await;
    assert_eq!(answers(&streamed, &ids), answers(&whole, &ids));
    assert_eq!(
        answers(&streamed, &ids),
        answers(&Engine::new(Snapshot::build(&data, 1), 100_000), &ids)
    );

    let mut writer = PgConnection::connect(&db.url).await.unwrap();
    // Each write gets past the database's checks; each bootstrap refuses.
    for (set, needles) in [
        (
            r#"teams = '{"nope": ["u1"]}'"#,
            vec![
                "is invalid".to_owned(),
                format!("records[id={}].teams.nope", ids[3]),
                "not a team field".to_owned(),
            ],
        ),
        (
            r#"teams = '{}', contact = '{"emial": "x@example.com"}'"#,
            vec![ids[3].to_string(), "emial".to_owned()],
        ),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET LOCAL permd.skip_validation = 'on'; \
             UPDATE permd.records SET {set} WHERE tenant = 'bench' AND id = '{}'",
            ids[3]
        )))
        .execute(&mut writer)
        .await
        .unwrap();
        let refused = format!("{:#}", pg::bootstrap_snapshot(&pool).await.err().unwrap());
        assert!(
            needles.iter().all(|n| refused.contains(n.as_str())),
            "{refused}"
        );
    }
}
