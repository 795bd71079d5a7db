//! The `permd.v1.Admin` service: writes of any entity, in one transaction,
//! to PostgreSQL (which every sidecar then follows) or, in file mode, to
//! this process's memory. Served only when an admin token is configured,
//! and every call must present it as a bearer token.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::auth::BearerToken;
use crate::index::{ApplyError, Engine};
use crate::model::change::{Change, Entity, EntityKind};
use crate::pb::{self, admin_server::Admin};
use crate::telemetry::metrics::RpcTimer;

/// How long Write waits for this permd to apply its own write from the
/// database before answering anyway (the revision is still exact).
const OWN_WRITE_WAIT: Duration = Duration::from_secs(5);

/// Most mutations one Write may carry.
pub const MAX_MUTATIONS: usize = 100_000;

pub struct AdminService {
    engine: Arc<Engine>,
    database: Option<PgPool>,
    token: BearerToken,
}

impl AdminService {
    /// An empty token would let anyone in: refused before serving.
    pub fn new(
        engine: Arc<Engine>,
        database: Option<PgPool>,
        token: String,
    ) -> anyhow::Result<AdminService> {
        Ok(AdminService {
            engine,
            database,
            token: BearerToken::new(&token, "admin token", "--admin-token / PERMD_ADMIN_TOKEN")?,
        })
    }

    fn authorize(&self, metadata: &MetadataMap) -> Result<(), Status> {
        self.token.check(metadata)
    }
}

/// The mutations as changes; the error names the first bad one.
pub fn changes_of(mutations: &[pb::Mutation]) -> Result<Vec<Change>, Status> {
    if mutations.len() > MAX_MUTATIONS {
        return Err(Status::invalid_argument(format!(
            "mutations: {} exceed the limit of {MAX_MUTATIONS} per Write; split them",
            mutations.len()
        )));
    }
    mutations
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let at = format!("mutations[{i}]");
            if m.tenant.trim().is_empty() {
                return Err(Status::invalid_argument(format!("{at}.tenant is empty")));
            }
            let kind = EntityKind::parse(&m.entity).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "{at}.entity '{}' is not an entity; entities are: {}",
                    m.entity,
                    EntityKind::names()
                ))
            })?;
            match &m.op {
                Some(pb::mutation::Op::UpsertJson(json)) => {
                    let entity = Entity::from_json(kind, json).map_err(|e| {
                        Status::invalid_argument(format!(
                            "{at}.upsert_json is not a valid {}: {e}",
                            kind.as_str()
                        ))
                    })?;
                    if kind != EntityKind::Tenant && entity.key().trim().is_empty() {
                        return Err(Status::invalid_argument(format!(
                            "{at}.upsert_json: the {} has an empty id",
                            kind.as_str()
                        )));
                    }
                    entity_rules(&at, &m.tenant, &entity)?;
                    Ok(Change::upsert(&m.tenant, entity))
                }
                Some(pb::mutation::Op::DeleteKey(key)) => {
                    if kind == EntityKind::Record {
                        Change::record_key(key).map_err(|e| {
                            Status::invalid_argument(format!("{at}.delete_key: {e}"))
                        })?;
                    }
                    Ok(Change::delete(&m.tenant, kind, key.clone()))
                }
                None => Err(Status::invalid_argument(format!(
                    "{at}: set upsert_json or delete_key"
                ))),
            }
        })
        .collect()
}

/// The rules one entity must keep on its own
/// (`model::validate::entity_problems`), checked here so the error names
/// the mutation. Rules that need the rest of the tenant are checked when
/// the changes are applied.
fn entity_rules(at: &str, tenant: &str, entity: &Entity) -> Result<(), Status> {
    match crate::model::validate::entity_problems(entity).first() {
        Some(problem) => Err(Status::invalid_argument(format!(
            "{at}.upsert_json.{problem} (tenant '{tenant}', {} '{}')",
            entity.kind().as_str(),
            entity.key()
        ))),
        None => Ok(()),
    }
}

/// Most keys named in one audit line; the rest are counted.
const AUDIT_KEYS: usize = 100;

/// What an audit line says a Write changed: counts per operation and
/// entity kind (`upsert record=3, delete user=1`), and the keys
/// (`tenant/kind/key`), at most [`AUDIT_KEYS`] of them.
fn audit_summary(changes: &[Change]) -> (String, String) {
    let mut counts = std::collections::BTreeMap::<(&str, &str), usize>::new();
    for change in changes {
        let op = match change.op {
            crate::model::change::ChangeOp::Upsert(_) => "upsert",
            crate::model::change::ChangeOp::Delete { .. } => "delete",
        };
        *counts.entry((op, change.kind().as_str())).or_default() += 1;
    }
    let counts = counts
        .iter()
        .map(|((op, kind), n)| format!("{op} {kind}={n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut keys = changes
        .iter()
        .take(AUDIT_KEYS)
        .map(|c| format!("{}/{}/{}", c.tenant, c.kind().as_str(), c.key()))
        .collect::<Vec<_>>()
        .join(" ");
    if changes.len() > AUDIT_KEYS {
        keys.push_str(&format!(" … and {} more", changes.len() - AUDIT_KEYS));
    }
    (counts, keys)
}

fn status_of(e: &ApplyError) -> Status {
    match e {
        ApplyError::UnknownTenant(_) | ApplyError::UnknownObject { .. } => {
            Status::not_found(e.to_string())
        }
        ApplyError::ObjectHasRecords { .. } => Status::failed_precondition(e.to_string()),
        ApplyError::ObjectFull { .. } => Status::resource_exhausted(e.to_string()),
        ApplyError::Invalid { .. } | ApplyError::InvalidTenant { .. } => {
            Status::invalid_argument(e.to_string())
        }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn write(
        &self,
        request: Request<pb::WriteRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        let timer = RpcTimer::start("Write");
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let result = self.write_audited(request).await;
        timer.finish(super::authorizer::code_label(
            result.as_ref().err().map(Status::code),
        ));
        if let Err(status) = &result {
            // Refused writes are audited too: who tried, and why not.
            tracing::warn!(
                target: "audit",
                peer,
                code = super::authorizer::code_label(Some(status.code())),
                error = status.message(),
                "Admin.Write refused"
            );
        }
        result
    }

    async fn revision(
        &self,
        request: Request<pb::RevisionRequest>,
    ) -> Result<Response<pb::RevisionResponse>, Status> {
        let timer = RpcTimer::start("Revision");
        let result = self.revision_of(request).await;
        timer.finish(super::authorizer::code_label(
            result.as_ref().err().map(Status::code),
        ));
        result
    }
}

impl AdminService {
    async fn write_audited(
        &self,
        request: Request<pb::WriteRequest>,
    ) -> Result<Response<pb::WriteResponse>, Status> {
        self.authorize(request.metadata())?;
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let req = request.into_inner();
        let changes = changes_of(&req.mutations)?;
        let (counts, keys) = audit_summary(&changes);
        let count = u32::try_from(changes.len()).unwrap_or(u32::MAX);
        let revision = match &self.database {
            None => {
                let engine = self.engine.clone();
                tokio::task::spawn_blocking(move || engine.apply(&changes))
                    .await
                    .map_err(|e| Status::internal(format!("write task failed: {e}")))?
                    .map_err(|e| status_of(&e))?
            }
            Some(pool) => {
                // Refuse what the index would refuse before it reaches the
                // database: a bad row there would stop every follower.
                let engine = self.engine.clone();
                let checked = changes.clone();
                tokio::task::spawn_blocking(move || engine.check_changes(&checked))
                    .await
                    .map_err(|e| Status::internal(format!("write task failed: {e}")))?
                    .map_err(|e| status_of(&e))?;
                let revision = super::super::source::postgres::write_transaction(pool, &changes)
                    .await
                    .map_err(|e| {
                        Status::unavailable(format!("writing to PostgreSQL failed: {e:#}"))
                    })?;
                // Read-your-writes on this sidecar too.
                let deadline = tokio::time::Instant::now() + OWN_WRITE_WAIT;
                let _ = self.engine.wait_for(revision, Some(deadline)).await;
                revision
            }
        };
        tracing::info!(
            target: "audit",
            peer,
            token = %self.token.fingerprint(),
            revision,
            mutations = count,
            counts = %counts,
            keys = %keys,
            "Admin.Write applied"
        );
        Ok(Response::new(pb::WriteResponse {
            revision,
            mutations: count,
        }))
    }

    async fn revision_of(
        &self,
        request: Request<pb::RevisionRequest>,
    ) -> Result<Response<pb::RevisionResponse>, Status> {
        self.authorize(request.metadata())?;
        let database_revision = match &self.database {
            Some(pool) => crate::source::postgres::revision(pool).await.unwrap_or(0),
            None => 0,
        };
        Ok(Response::new(pb::RevisionResponse {
            revision: self.engine.revision(),
            database: self.database.is_some(),
            database_revision,
        }))
    }
}
