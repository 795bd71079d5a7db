//! The `permd.v1.Admin` service: writes of any entity, in one transaction,
//! to PostgreSQL (which every sidecar then follows) or, in file mode, to
//! this process's memory. Served only when an admin token is configured,
//! and every call must present it as a bearer token.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::index::{ApplyError, Engine};
use crate::model::change::{Change, Entity, EntityKind};
use crate::pb::{self, admin_server::Admin};

/// How long Write waits for this permd to apply its own write from the
/// database before answering anyway (the revision is still exact).
const OWN_WRITE_WAIT: Duration = Duration::from_secs(5);

/// Most mutations one Write may carry.
pub const MAX_MUTATIONS: usize = 100_000;

pub struct AdminService {
    engine: Arc<Engine>,
    database: Option<PgPool>,
    token: String,
}

impl AdminService {
    /// An empty token would let anyone in: refused before serving.
    pub fn new(
        engine: Arc<Engine>,
        database: Option<PgPool>,
        token: String,
    ) -> anyhow::Result<AdminService> {
        if token.trim().len() < 16 {
            anyhow::bail!(
                "the admin token must be at least 16 characters (--admin-token / PERMD_ADMIN_TOKEN)"
            );
        }
        Ok(AdminService {
            engine,
            database,
            token,
        })
    }

    fn authorize(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(value) = metadata.get("authorization") else {
            return Err(Status::unauthenticated(
                "Admin needs the header `authorization: Bearer <admin token>`",
            ));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header must be `Bearer <admin token>`")
            })?;
        if !constant_time_eq(presented.trim().as_bytes(), self.token.as_bytes()) {
            return Err(Status::permission_denied(
                "the admin token presented is not this permd's admin token",
            ));
        }
        Ok(())
    }
}

/// Compares without an early exit, so timing does not reveal how much of a
/// guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
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
        self.authorize(request.metadata())?;
        let req = request.into_inner();
        let changes = changes_of(&req.mutations)?;
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
        tracing::info!(revision, mutations = count, "Admin.Write applied");
        Ok(Response::new(pb::WriteResponse {
            revision,
            mutations: count,
        }))
    }

    async fn revision(
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

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123", b""));
    }
}
