//! The `permd.v1.Authorizer` service: validates each request at the edge,
//! asks the engine, and converts the answer back to the wire.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert;
use super::limits::{Admitted, Gate, Limits};
use crate::index::Engine;
use crate::pb::{self, authorizer_server::Authorizer};
use crate::source::postgres::feed::Readiness;
use crate::telemetry::metrics::{RpcTimer, record_batch};

/// Largest page LookupRecords streams in one message.
const MAX_PAGE: usize = 100_000;
const DEFAULT_PAGE: usize = 10_000;

/// How long a request without a deadline waits for its `min_revision`.
const DEFAULT_REVISION_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct AuthorizerService {
    engine: Arc<Engine>,
    gate: Gate,
    readiness: Option<tokio::sync::watch::Receiver<Readiness>>,
}

impl AuthorizerService {
    pub fn new(
        engine: Arc<Engine>,
        limits: Limits,
        readiness: Option<tokio::sync::watch::Receiver<Readiness>>,
    ) -> Self {
        AuthorizerService {
            engine,
            gate: Gate::new(limits),
            readiness,
        }
    }

    /// Ready to answer at `min_revision`: a snapshot is loaded, and the
    /// revision is reached — waiting for it up to the request's deadline
    /// (or 5 s without one).
    async fn ready(&self, min_revision: u64, admitted: &Admitted) -> Result<(), Status> {
        if self.readiness.as_ref().is_some_and(|r| !r.borrow().loaded) {
            return Err(Status::unavailable(
                "permd has not loaded its first snapshot from PostgreSQL yet; retry shortly",
            ));
        }
        if min_revision <= self.engine.revision() {
            return Ok(());
        }
        // Give up a little before the caller's deadline, so the caller
        // hears why instead of its own timeout.
        let now = std::time::Instant::now();
        let deadline = admitted.deadline.unwrap_or(now + DEFAULT_REVISION_WAIT);
        let margin = (deadline.saturating_duration_since(now) / 10)
            .min(std::time::Duration::from_millis(100));
        self.engine
            .wait_for(min_revision, Some((deadline - margin).into()))
            .await
            .map_err(|have| {
                Status::failed_precondition(format!(
                    "min_revision {min_revision} not reached before the deadline: this permd has applied revision {have}; retry, or ask without min_revision"
                ))
            })
    }

    fn check_batch_size(&self, field: &str, len: usize) -> Result<(), Status> {
        let limit = self.engine.max_batch();
        if len > limit {
            return Err(Status::invalid_argument(format!(
                "{field}: batch of {len} records exceeds the limit of {limit} (max_batch); split it into batches of at most {limit}"
            )));
        }
        Ok(())
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Runs CPU-bound work off the async workers so a 100,000-record batch never
/// stalls other connections. The work is skipped if the caller's deadline
/// passed while it waited for a thread.
async fn blocking<T: Send + 'static>(
    admitted: Admitted,
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(move || {
        admitted.still_wanted()?;
        let answer = f();
        drop(admitted);
        answer
    })
    .await
    .map_err(|e| Status::internal(format!("request task failed: {e}")))?
}

#[tonic::async_trait]
impl Authorizer for AuthorizerService {
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let _timer = RpcTimer::start("Check");
        let admitted = self.gate.request(request.metadata())?;
        let req = request.into_inner();
        self.ready(req.min_revision, &admitted).await?;
        let q = convert::question(
            &req.tenant,
            req.principal.as_ref(),
            &req.object,
            &req.action,
            req.context.as_ref(),
            req.min_revision,
        )?;
        let record = match req.record_id.as_str() {
            "" => None,
            id => Some(convert::uuid("record_id", id)?),
        };
        let d = self.engine.check(&q, record, now())?;
        Ok(Response::new(pb::CheckResponse {
            allowed: d.allowed(),
            reason: convert::reason(d.reason),
            field_mask: Some(convert::field_mask(&d.field_mask)),
            revision: d.revision,
        }))
    }

    async fn batch_check(
        &self,
        request: Request<pb::BatchCheckRequest>,
    ) -> Result<Response<pb::BatchCheckResponse>, Status> {
        let _timer = RpcTimer::start("BatchCheck");
        let admitted = self.gate.request(request.metadata())?;
        let req = request.into_inner();
        self.ready(req.min_revision, &admitted).await?;
        let q = convert::question(
            &req.tenant,
            req.principal.as_ref(),
            &req.object,
            &req.action,
            req.context.as_ref(),
            req.min_revision,
        )?;
        let ids = match &req.records {
            Some(pb::batch_check_request::Records::RecordIds(s)) => {
                self.check_batch_size("record_ids", s.ids.len())?;
                convert::string_ids("record_ids.ids", &s.ids)?
            }
            Some(pb::batch_check_request::Records::PackedRecordIds(p)) => {
                self.check_batch_size("packed_record_ids", p.uuids.len() / 16)?;
                convert::packed_ids("packed_record_ids.uuids", &p.uuids)?
            }
            None => Vec::new(),
        };
        let engine = self.engine.clone();
        let return_ids = req.return_allowed_ids;
        let records = req.records;
        blocking(admitted, move || {
            let a = engine.batch_check(&q, &ids, now())?;
            record_batch(ids.len(), a.allowed_count, &a.denials);
            // Allowed ids go back exactly as the caller sent them, so a
            // client can match them against its own strings.
            let (allowed_ids, allowed_packed_ids) = match (return_ids, records) {
                (false, _) | (true, None) => (None, None),
                (true, Some(pb::batch_check_request::Records::RecordIds(sent))) => (
                    Some(pb::StringIds {
                        ids: sent
                            .ids
                            .into_iter()
                            .enumerate()
                            .filter(|(i, _)| a.is_allowed(*i))
                            .map(|(_, id)| id)
                            .collect(),
                    }),
                    None,
                ),
                (true, Some(pb::batch_check_request::Records::PackedRecordIds(sent))) => (
                    None,
                    Some(pb::PackedIds {
                        uuids: sent
                            .uuids
                            .chunks_exact(16)
                            .enumerate()
                            .filter(|(i, _)| a.is_allowed(*i))
                            .flat_map(|(_, id)| id.iter().copied())
                            .collect(),
                    }),
                ),
            };
            Ok(Response::new(pb::BatchCheckResponse {
                allowed: a.allowed,
                allowed_count: a.allowed_count,
                denials: a
                    .denials
                    .iter()
                    .map(|(position, reason)| pb::Denial {
                        position: *position,
                        reason: *reason as i32,
                    })
                    .collect(),
                field_mask: Some(convert::field_mask(&a.field_mask)),
                revision: a.revision,
                allowed_ids,
                allowed_packed_ids,
            }))
        })
        .await
    }

    type LookupRecordsStream = ReceiverStream<Result<pb::LookupRecordsResponse, Status>>;

    async fn lookup_records(
        &self,
        request: Request<pb::LookupRecordsRequest>,
    ) -> Result<Response<Self::LookupRecordsStream>, Status> {
        let _timer = RpcTimer::start("LookupRecords");
        let admitted = self.gate.stream(request.metadata())?;
        let req = request.into_inner();
        self.ready(req.min_revision, &admitted).await?;
        let q = convert::question(
            &req.tenant,
            req.principal.as_ref(),
            &req.object,
            &req.action,
            req.context.as_ref(),
            req.min_revision,
        )?;
        let page = match req.page_size as usize {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(Status::invalid_argument(format!(
                    "page_size {n} exceeds the limit of {MAX_PAGE}"
                )));
            }
            n => n,
        };
        let (resolved, compiled) = self.engine.allowed_set(&q, now())?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            // The stream holds its permit until it ends.
            let _admitted = admitted;
            let Some(object) = resolved.tenant.objects.get(resolved.object) else {
                return;
            };
            let mut ords = compiled.allowed.iter();
            loop {
                let ids: Vec<uuid::Uuid> = ords
                    .by_ref()
                    .take(page)
                    .filter_map(|o| object.id(o))
                    .collect();
                if ids.is_empty() {
                    break;
                }
                let message = if req.packed {
                    pb::LookupRecordsResponse {
                        record_ids: None,
                        packed_record_ids: Some(pb::PackedIds {
                            uuids: ids.iter().flat_map(|id| *id.as_bytes()).collect(),
                        }),
                        revision: resolved.revision,
                    }
                } else {
                    pb::LookupRecordsResponse {
                        record_ids: Some(pb::StringIds {
                            ids: ids.iter().map(|id| id.to_string()).collect(),
                        }),
                        packed_record_ids: None,
                        revision: resolved.revision,
                    }
                };
                // The client went away: stop producing.
                if tx.send(Ok(message)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn object_access(
        &self,
        request: Request<pb::ObjectAccessRequest>,
    ) -> Result<Response<pb::ObjectAccessResponse>, Status> {
        let _timer = RpcTimer::start("ObjectAccess");
        let admitted = self.gate.request(request.metadata())?;
        let req = request.into_inner();
        self.ready(req.min_revision, &admitted).await?;
        let tenant = convert::tenant(&req.tenant)?;
        let principal = convert::principal(req.principal.as_ref())?;
        let object = (!req.object.is_empty()).then_some(req.object.as_str());
        let (flags, create_objects, revision) =
            self.engine
                .object_access(&tenant, &principal, object, req.min_revision)?;
        let names = |actions: &[crate::model::Action]| {
            actions.iter().map(|a| a.as_str().to_owned()).collect()
        };
        Ok(Response::new(pb::ObjectAccessResponse {
            objects: flags
                .iter()
                .map(|f| pb::ObjectFlags {
                    object: f.object.clone(),
                    view: f.view,
                    edit: f.edit,
                    remove: f.remove,
                    create_records: f.create_records,
                    single_actions: names(&f.single_actions),
                    bulk_actions: names(&f.bulk_actions),
                    field_mask: Some(convert::field_mask(&f.field_mask)),
                })
                .collect(),
            create_objects,
            revision,
        }))
    }

    async fn record_access(
        &self,
        request: Request<pb::RecordAccessRequest>,
    ) -> Result<Response<pb::RecordAccessResponse>, Status> {
        let _timer = RpcTimer::start("RecordAccess");
        let admitted = self.gate.request(request.metadata())?;
        let req = request.into_inner();
        self.ready(req.min_revision, &admitted).await?;
        let tenant = convert::tenant(&req.tenant)?;
        let principal = convert::principal(req.principal.as_ref())?;
        self.check_batch_size("record_ids", req.record_ids.len())?;
        let ids = convert::string_ids("record_ids", &req.record_ids)?;
        let engine = self.engine.clone();
        blocking(admitted, move || {
            let (flags, revision) = engine.record_access(
                &tenant,
                &principal,
                &req.object,
                &ids,
                req.min_revision,
                now(),
            )?;
            Ok(Response::new(pb::RecordAccessResponse {
                records: flags
                    .iter()
                    .zip(&req.record_ids)
                    .map(|(f, id)| pb::RecordFlags {
                        record_id: id.clone(),
                        view: f.view,
                        edit: f.edit,
                        remove: f.remove,
                        field_mask: Some(convert::field_mask(&f.field_mask)),
                    })
                    .collect(),
                revision,
            }))
        })
        .await
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let _timer = RpcTimer::start("Explain");
        let admitted = self.gate.request(request.metadata())?;
        let req = request.into_inner();
        self.ready(req.min_revision, &admitted).await?;
        let q = convert::question(
            &req.tenant,
            req.principal.as_ref(),
            &req.object,
            &req.action,
            req.context.as_ref(),
            req.min_revision,
        )?;
        let record = match req.record_id.as_str() {
            "" => None,
            id => Some(convert::uuid("record_id", id)?),
        };
        let e = self.engine.explain(&q, record, now())?;
        Ok(Response::new(pb::ExplainResponse {
            allowed: e.allowed(),
            reason: convert::reason(e.reason),
            steps: e
                .steps
                .iter()
                .map(|s| pb::ExplainStep {
                    layer: s.layer.to_owned(),
                    passed: s.passed,
                    reason: convert::reason(s.reason),
                    detail: s.detail.clone(),
                })
                .collect(),
            groups: e.groups,
            revision: e.revision,
        }))
    }
}
