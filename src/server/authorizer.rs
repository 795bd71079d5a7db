//! The `permd.v1.Authorizer` service: validates each request at the edge,
//! asks the engine, and converts the answer back to the wire.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prost::Message;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::auth::BearerToken;
use super::convert::{self, Bounds};
use super::limits::{Admitted, Gate, Limits, deadline_of};
use crate::index::compile::Compiled;
use crate::index::engine::Resolved;
use crate::index::{Engine, RecordHandles};
use crate::pb::{self, authorizer_server::Authorizer};
use crate::source::postgres::feed::Readiness;
use crate::telemetry::decisions::{Decision, DecisionLog, Kind, trace_id};
use crate::telemetry::metrics::{RpcTimer, record_batch, record_refusal};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Largest page LookupRecords streams in one message.
const MAX_PAGE: usize = 100_000;
/// Most id bytes in one LookupRecords message, whatever `page_size` says
/// (~27,000 string or 65,536 packed ids): HTTP/2 buffers up to two
/// messages per stream, so this bounds what an unread stream holds.
const MAX_PAGE_BYTES: usize = 1024 * 1024;
const DEFAULT_PAGE: usize = 10_000;

pub struct AuthorizerService {
    engine: Arc<Engine>,
    gate: Gate,
    bounds: Bounds,
    readiness: Option<tokio::sync::watch::Receiver<Readiness>>,
    /// `--api-token`: every call must present it.
    token: Option<BearerToken>,
    decisions: Option<Arc<DecisionLog>>,
}

/// One call in progress: what its metrics and its decision-log line need
/// from the request before the request is consumed.
struct Call {
    timer: RpcTimer,
    started: Instant,
    /// `None` when the decision log is off: nothing is copied then.
    line: Option<Decision>,
}

/// One page of [`AuthorizerService::lookup_page`].
pub struct LookupPage {
    pub ids: Vec<String>,
    /// The cursor of the next page; `None` after the last.
    pub next: Option<u32>,
    /// The id table the cursor is an ordinal of: a cursor is meaningful
    /// only against the same table (see `IdTable::space`).
    pub space: u64,
    pub revision: u64,
    /// Records in the whole set.
    pub total: u64,
}

/// What a call answered, for its decision-log line.
#[derive(Default)]
struct Outcome {
    records: u64,
    allowed: u64,
    denied: BTreeMap<&'static str, u64>,
    revision: Option<u64>,
    /// Single-record calls sample as checks or denials, the rest as batches.
    single: bool,
}

impl Outcome {
    fn single(allowed: bool, reason: Option<crate::model::Reason>, revision: u64) -> Outcome {
        Outcome {
            records: 1,
            allowed: u64::from(allowed),
            denied: reason
                .filter(|_| !allowed)
                .map(|r| BTreeMap::from([(r.as_str(), 1)]))
                .unwrap_or_default(),
            revision: Some(revision),
            single: true,
        }
    }
}

/// Which permit a request needs once it may start.
#[derive(Clone, Copy)]
enum Admission {
    Unary,
    Stream,
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
            bounds: Bounds::from(&limits),
            readiness,
            token: None,
            decisions: None,
        }
    }

    /// Requires `authorization: Bearer <token>` on every call.
    pub fn with_token(mut self, token: Option<BearerToken>) -> Self {
        self.token = token;
        self
    }

    /// Writes a decision-log line per call (sampled; errors always).
    pub fn with_decision_log(mut self, decisions: Option<Arc<DecisionLog>>) -> Self {
        self.decisions = decisions;
        self
    }

    /// The token callers must present, if any.
    pub fn token(&self) -> Option<&BearerToken> {
        self.token.as_ref()
    }

    /// Most records one call may ask about.
    pub fn max_batch(&self) -> usize {
        self.engine.max_batch()
    }

    /// Starts timing a call and, with the decision log on, notes who asked
    /// what: its line is written when the call ends.
    fn call<T: Asks>(&self, method: &'static str, request: &Request<T>) -> Call {
        let line = self.decisions.as_ref().map(|_| {
            let header = |name: &str| {
                request
                    .metadata()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let asked = request.get_ref();
            Decision {
                method,
                trace_id: trace_id(header("traceparent").as_deref()),
                request_id: header("x-request-id"),
                tenant: asked.tenant().to_owned(),
                principal: asked.principal().map_or_else(String::new, principal_name),
                object: asked.object().to_owned(),
                action: asked.action().to_owned(),
                peer: request.remote_addr(),
                ..Decision::default()
            }
        });
        Call {
            timer: RpcTimer::start(method),
            started: Instant::now(),
            line,
        }
    }

    /// Ends a call: its metrics, its decision-log line (sampled by kind;
    /// an error always), and at debug level a log line.
    fn finish<R>(&self, call: Call, result: Result<(R, Outcome), Status>) -> Result<R, Status> {
        let code = code_label(result.as_ref().err().map(Status::code));
        call.timer.finish(code);
        if let Err(status) = &result {
            log_error(call.line.as_ref(), status);
        }
        if let (Some(log), Some(mut line)) = (&self.decisions, call.line) {
            let kind = match &result {
                Err(_) => Kind::Error,
                Ok((_, o)) if !o.single => Kind::Batch,
                Ok((_, o)) if o.allowed == o.records => Kind::Check,
                Ok(_) => Kind::Denial,
            };
            if log.wants(kind) && log.has_room() {
                line.at = Some(std::time::SystemTime::now());
                line.code = code;
                line.latency_us = call.started.elapsed().as_micros() as u64;
                match &result {
                    Err(status) => line.message = Some(status.message().to_owned()),
                    Ok((_, outcome)) => {
                        line.records = outcome.records;
                        line.allowed = outcome.allowed;
                        line.denied = outcome.denied.clone();
                        line.revision = outcome.revision;
                    }
                }
                log.record(line);
            }
        }
        result.map(|(response, _)| response)
    }

    /// Admits a request: loaded, its `min_revision` reached (waiting
    /// without a compute permit), then a permit of its kind. A request
    /// parked on a revision never keeps another one from being answered.
    async fn admit<T>(&self, request: &Request<T>, kind: Admission) -> Result<Admitted, Status>
    where
        T: HasMinRevision,
    {
        if let Some(token) = &self.token {
            token.check(request.metadata())?;
        }
        let deadline = deadline_of(request.metadata());
        let min_revision = request.get_ref().min_revision();
        self.ready(min_revision, deadline).await?;
        match kind {
            Admission::Unary => self.gate.request(deadline),
            Admission::Stream => self.gate.stream(deadline),
        }
    }

    /// Ready to answer at `min_revision`: a snapshot is loaded, and the
    /// revision is reached — waiting for it up to the request's deadline
    /// and at most `max_revision_wait`, among at most
    /// `max_revision_waiters` others. A revision further ahead than
    /// `max_revision_lead` is refused at once: no feed catches up that far
    /// within a request's life.
    async fn ready(&self, min_revision: u64, deadline: Option<Instant>) -> Result<(), Status> {
        if self.readiness.as_ref().is_some_and(|r| !r.borrow().loaded) {
            return Err(Status::unavailable(
                "permd has not loaded its first snapshot (from PostgreSQL or NATS) yet; retry shortly",
            ));
        }
        let current = self.engine.revision();
        if min_revision <= current {
            return Ok(());
        }
        let limits = self.gate.limits();
        if min_revision - current > limits.max_revision_lead {
            record_refusal("max_revision_lead");
            return Err(Status::failed_precondition(format!(
                "min_revision {min_revision} is {} revisions ahead of revision {current}, which this permd has applied; more than {} ahead (max_revision_lead) is refused without waiting: send a revision that a response or Admin.Write returned",
                min_revision - current,
                limits.max_revision_lead
            )));
        }
        let _waiting = self.gate.waiter()?;
        // Give up a little before the caller's deadline, so the caller
        // hears why instead of its own timeout.
        let now = Instant::now();
        let cap = now + limits.max_revision_wait;
        let deadline = deadline.map_or(cap, |d| d.min(cap));
        let margin = (deadline.saturating_duration_since(now) / 10)
            .min(std::time::Duration::from_millis(100));
        self.engine
            .wait_for(min_revision, Some((deadline - margin).into()))
            .await
            .map_err(|have| {
                record_refusal("max_min_revision_wait");
                Status::failed_precondition(format!(
                    "min_revision {min_revision} not reached within the wait (the request's deadline, at most --max-min-revision-wait {:?}): this permd has applied revision {have}; retry, or ask without min_revision",
                    limits.max_revision_wait
                ))
            })
    }

    /// LookupRecords' answer before its first page: admitted (holding a
    /// stream permit), the allowed set resolved.
    async fn pages(
        &self,
        request: Request<pb::LookupRecordsRequest>,
    ) -> Result<(Pages, Outcome), Status> {
        let admitted = self.admit(&request, Admission::Stream).await?;
        let req = request.into_inner();
        let q = convert::question(
            &req.tenant,
            req.principal.as_ref(),
            &req.object,
            &req.action,
            req.context.as_ref(),
            req.min_revision,
            &self.bounds,
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
        let outcome = Outcome {
            records: compiled.allowed.len(),
            allowed: compiled.allowed.len(),
            revision: Some(resolved.revision),
            ..Outcome::default()
        };
        let pages = Pages::new(
            admitted,
            resolved,
            compiled,
            page,
            req.packed,
            self.gate.limits().max_message_bytes,
        );
        Ok((pages, outcome))
    }

    /// One page of LookupRecords, for callers that page by request
    /// (AuthZEN's resource search) instead of by stream: from the first
    /// record, or `from` a cursor a previous page returned with the `space`
    /// of the id table it is an ordinal of (FAILED_PRECONDITION when the
    /// object's table is another now); the ids, the next cursor (`None`
    /// after the last page) and the revision.
    pub async fn lookup_page(
        &self,
        request: Request<pb::LookupRecordsRequest>,
        from: Option<(u32, u64)>,
    ) -> Result<LookupPage, Status> {
        let call = self.call("LookupRecords", &request);
        let result = self.pages(request).await.and_then(|(mut pages, outcome)| {
            let space = pages
                .resolved
                .tenant
                .objects
                .get(pages.resolved.object)
                .map_or(0, |o| o.ids.space());
            pages.next = match from {
                None => 0,
                Some((cursor, of)) if of == space => cursor,
                Some(_) => {
                    return Err(Status::failed_precondition(
                        "page.token is from an index of the records this permd no longer has (it restarted or reloaded the tenant since, or the token is another permd's): its position would skip or repeat records; search again from the first page, without page.token",
                    ));
                }
            };
            let ids = match pages.next_page() {
                Some(page) => page.record_ids.map(|s| s.ids).unwrap_or_default(),
                None => Vec::new(),
            };
            // A full page that happens to be the last says so.
            let next = (pages.next != u32::MAX
                && pages
                    .compiled
                    .allowed
                    .iter_from(pages.next)
                    .next()
                    .is_some())
            .then_some(pages.next);
            let page = LookupPage {
                ids,
                next,
                space,
                revision: pages.resolved.revision,
                total: outcome.records,
            };
            Ok((page, outcome))
        });
        self.finish(call, result)
    }

    fn check_batch_size(&self, field: &str, len: usize) -> Result<(), Status> {
        let limit = self.engine.max_batch();
        if len > limit {
            record_refusal("max_batch");
            return Err(Status::invalid_argument(format!(
                "{field}: batch of {len} records exceeds the limit of {limit} (max_batch); split it into batches of at most {limit}"
            )));
        }
        Ok(())
    }
}

/// The response, or RESOURCE_EXHAUSTED before it is sent when it would
/// exceed `max_message_bytes` (the client would refuse it anyway). For a
/// response about `records` records, the refusal names how many fit.
fn fits<M: Message>(
    response: M,
    limit: usize,
    what: &str,
    records: Option<usize>,
) -> Result<Response<M>, Status> {
    let size = response.encoded_len();
    if size <= limit {
        return Ok(Response::new(response));
    }
    record_refusal("max_message_bytes");
    let advice = match records {
        Some(records) => {
            let fitting = (records as u128 * limit as u128 / size as u128) as usize * 9 / 10;
            format!("send at most {fitting} records per request")
        }
        None => "raise max_message_bytes, or ask about less (one object, fewer fields)".to_owned(),
    };
    Err(Status::resource_exhausted(format!(
        "the {what} response would be {size} bytes, above the limit of {limit} (max_message_bytes); {advice}"
    )))
}

/// An error status, once, in the process log: a server-side failure at
/// WARN (someone should look), a refusal of the caller's request at DEBUG
/// (the caller was told; the decision log keeps it too).
fn log_error(asked: Option<&Decision>, status: &Status) {
    use tonic::Code::*;
    let code = code_label(Some(status.code()));
    let message = status.message();
    let tenant = asked.map_or("", |a| a.tenant.as_str());
    match status.code() {
        Internal | Unknown | DataLoss | Unavailable => {
            tracing::warn!(code, tenant, error = message, "request failed")
        }
        _ => tracing::debug!(code, tenant, error = message, "request refused"),
    }
}

/// `kind:id` of a principal, as the decision log names it.
fn principal_name(p: &pb::Principal) -> String {
    let kind = match pb::principal::Kind::try_from(p.kind) {
        Ok(pb::principal::Kind::Integration) => "integration",
        Ok(pb::principal::Kind::Automation) => "automation",
        _ => "user",
    };
    format!("{kind}:{}", p.id)
}

/// The gRPC status code as the `code` label spells it (as gRPC's own
/// Prometheus interceptors do: `OK`, `InvalidArgument`, …).
pub(crate) fn code_label(code: Option<tonic::Code>) -> &'static str {
    use tonic::Code::*;
    match code {
        None | Some(Ok) => "OK",
        Some(Cancelled) => "Cancelled",
        Some(Unknown) => "Unknown",
        Some(InvalidArgument) => "InvalidArgument",
        Some(DeadlineExceeded) => "DeadlineExceeded",
        Some(NotFound) => "NotFound",
        Some(AlreadyExists) => "AlreadyExists",
        Some(PermissionDenied) => "PermissionDenied",
        Some(ResourceExhausted) => "ResourceExhausted",
        Some(FailedPrecondition) => "FailedPrecondition",
        Some(Aborted) => "Aborted",
        Some(OutOfRange) => "OutOfRange",
        Some(Unimplemented) => "Unimplemented",
        Some(Internal) => "Internal",
        Some(Unavailable) => "Unavailable",
        Some(DataLoss) => "DataLoss",
        Some(Unauthenticated) => "Unauthenticated",
    }
}

/// The records of a BatchCheck: ids, or the handles an earlier answer gave.
enum Asked {
    Ids(Vec<Uuid>),
    Handles(RecordHandles),
}

impl Asked {
    fn len(&self) -> usize {
        match self {
            Asked::Ids(ids) => ids.len(),
            Asked::Handles(h) => h.ords.len(),
        }
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// BatchCheck batches up to this many records are answered on the async
/// worker that decoded them: at most ~0.5 ms of work on a million-record
/// object (a cold compile adds its own), while the other workers keep
/// serving what is queued. Handing each request to the blocking pool
/// instead cost two thread wake-ups and 15% more server CPU per record
/// (`permd bench --server-metrics`, 10,000 packed ids, 84–86 ns against
/// 100–106 at concurrency 8).
const INLINE_RECORDS: usize = 16_384;

/// Runs CPU-bound work on `records` records: in place when there are at
/// most `INLINE_RECORDS`, otherwise on the blocking pool, so a
/// 100,000-record batch never stalls other connections. The work is
/// skipped if the caller's deadline passed before it started.
async fn compute<T: Send + 'static>(
    admitted: Admitted,
    records: usize,
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    if records <= INLINE_RECORDS {
        admitted.still_wanted()?;
        // A panic here must still end as a gRPC status, as one on the
        // blocking pool does, not as a reset stream.
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err(Status::internal("request task panicked")));
    }
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
        let call = self.call("Check", &request);
        let result = async move {
            let _admitted = self.admit(&request, Admission::Unary).await?;
            let req = request.into_inner();
            let q = convert::question(
                &req.tenant,
                req.principal.as_ref(),
                &req.object,
                &req.action,
                req.context.as_ref(),
                req.min_revision,
                &self.bounds,
            )?;
            let record = match req.record_id.as_str() {
                "" => None,
                id => Some(convert::uuid("record_id", id)?),
            };
            let d = self.engine.check(&q, record, now())?;
            let outcome = Outcome::single(d.allowed(), d.reason, d.revision);
            let response = Response::new(pb::CheckResponse {
                allowed: d.allowed(),
                reason: convert::reason(d.reason),
                field_mask: Some(convert::field_mask(&d.field_mask)),
                revision: d.revision,
            });
            Ok((response, outcome))
        }
        .await;
        self.finish(call, result)
    }

    async fn batch_check(
        &self,
        request: Request<pb::BatchCheckRequest>,
    ) -> Result<Response<pb::BatchCheckResponse>, Status> {
        let call = self.call("BatchCheck", &request);
        let logged = call.line.is_some();
        let result = async move {
            let admitted = self.admit(&request, Admission::Unary).await?;
            let req = request.into_inner();
            let q = convert::question(
                &req.tenant,
                req.principal.as_ref(),
                &req.object,
                &req.action,
                req.context.as_ref(),
                req.min_revision,
                &self.bounds,
            )?;
            use pb::batch_check_request::Records;
            let asked = match &req.records {
                Some(Records::RecordIds(s)) => {
                    self.check_batch_size("record_ids", s.ids.len())?;
                    Asked::Ids(convert::string_ids("record_ids.ids", &s.ids)?)
                }
                Some(Records::PackedRecordIds(p)) => {
                    self.check_batch_size("packed_record_ids", p.uuids.len() / 16)?;
                    Asked::Ids(convert::packed_ids("packed_record_ids.uuids", &p.uuids)?)
                }
                Some(Records::RecordHandles(h)) => {
                    self.check_batch_size("record_handles", h.ordinals.len() / 4)?;
                    if req.return_allowed_ids || req.return_handles {
                        return Err(Status::invalid_argument(
                            "return_allowed_ids and return_handles are for records sent as ids; with record_handles, read the allowed bitmask",
                        ));
                    }
                    Asked::Handles(convert::handles("record_handles", h)?)
                }
                None => Asked::Ids(Vec::new()),
            };
            let engine = self.engine.clone();
            let return_ids = req.return_allowed_ids;
            let return_handles = req.return_handles;
            let packed_denials = req.packed_denials;
            let records = req.records;
            let limit = self.gate.limits().max_message_bytes;
            let size = asked.len();
            compute(admitted, size, move || {
                let mut a = match &asked {
                    Asked::Ids(ids) => engine.batch_check(&q, ids, now())?,
                    Asked::Handles(h) => engine.batch_check_handles(&q, h, now())?,
                };
                record_batch(size, a.allowed_count, &a.denials);
                // Allowed ids go back exactly as the caller sent them, so a
                // client can match them against its own strings.
                let (allowed_ids, allowed_packed_ids) = match (return_ids, records) {
                    (true, Some(Records::RecordIds(sent))) => (
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
                    (true, Some(Records::PackedRecordIds(sent))) => (
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
                    _ => (None, None),
                };
                let handles = return_handles.then(|| convert::to_handles(&std::mem::take(&mut a.handles)));
                let mut outcome = Outcome {
                    records: size as u64,
                    allowed: u64::from(a.allowed_count),
                    revision: Some(a.revision),
                    ..Outcome::default()
                };
                if logged {
                    for (_, reason) in &a.denials {
                        *outcome.denied.entry(reason.as_str()).or_default() += 1;
                    }
                }
                let (denials, packed_denials) = if packed_denials {
                    (Vec::new(), Some(convert::packed_denials(&a.denials)))
                } else {
                    let denials = a
                        .denials
                        .iter()
                        .map(|(position, reason)| pb::Denial {
                            position: *position,
                            reason: *reason as i32,
                        })
                        .collect();
                    (denials, None)
                };
                let response = pb::BatchCheckResponse {
                    allowed: a.allowed,
                    allowed_count: a.allowed_count,
                    denials,
                    field_mask: Some(convert::field_mask(&a.field_mask)),
                    revision: a.revision,
                    allowed_ids,
                    allowed_packed_ids,
                    handles,
                    packed_denials,
                };
                Ok((fits(response, limit, "BatchCheck", Some(size))?, outcome))
            })
            .await
        }
        .await;
        self.finish(call, result)
    }

    type LookupRecordsStream = Pages;

    async fn lookup_records(
        &self,
        request: Request<pb::LookupRecordsRequest>,
    ) -> Result<Response<Self::LookupRecordsStream>, Status> {
        let call = self.call("LookupRecords", &request);
        let result = self.pages(request).await.map(|(pages, outcome)| {
            pages.watch(self.gate.limits().idle_timeout);
            (Response::new(pages), outcome)
        });
        self.finish(call, result)
    }

    async fn object_access(
        &self,
        request: Request<pb::ObjectAccessRequest>,
    ) -> Result<Response<pb::ObjectAccessResponse>, Status> {
        let call = self.call("ObjectAccess", &request);
        let result = async move {
            let _admitted = self.admit(&request, Admission::Unary).await?;
            let req = request.into_inner();
            let tenant = convert::tenant(&req.tenant, &self.bounds)?;
            let principal = convert::principal(req.principal.as_ref(), &self.bounds)?;
            let object = self.bounds.name("object", &req.object)?;
            let object = (!object.is_empty()).then_some(object);
            let (flags, create_objects, revision) =
                self.engine
                    .object_access(&tenant, &principal, object, req.min_revision)?;
            let names = |actions: &[crate::model::Action]| {
                actions.iter().map(|a| a.as_str().to_owned()).collect()
            };
            let response = pb::ObjectAccessResponse {
                objects: flags
                    .iter()
                    .map(|f| pb::ObjectFlags {
                        object: f.object.clone(),
                        view: f.view,
                        edit: f.edit,
                        remove: f.remove,
                        create_record: f.create_record,
                        bulk_data_upload: f.bulk_data_upload,
                        unarchive: f.unarchive,
                        single_actions: names(&f.single_actions),
                        bulk_actions: names(&f.bulk_actions),
                        field_mask: Some(convert::field_mask(&f.field_mask)),
                    })
                    .collect(),
                create_objects,
                revision,
            };
            let outcome = Outcome {
                records: flags.len() as u64,
                allowed: flags.iter().filter(|f| f.view).count() as u64,
                revision: Some(revision),
                ..Outcome::default()
            };
            let response = fits(
                response,
                self.gate.limits().max_message_bytes,
                "ObjectAccess",
                None,
            )?;
            Ok((response, outcome))
        }
        .await;
        self.finish(call, result)
    }
    async fn record_access(
        &self,
        request: Request<pb::RecordAccessRequest>,
    ) -> Result<Response<pb::RecordAccessResponse>, Status> {
        let call = self.call("RecordAccess", &request);
        let result = async move {
            let admitted = self.admit(&request, Admission::Unary).await?;
            let req = request.into_inner();
            let tenant = convert::tenant(&req.tenant, &self.bounds)?;
            let principal = convert::principal(req.principal.as_ref(), &self.bounds)?;
            self.bounds.name("object", &req.object)?;
            self.check_batch_size("record_ids", req.record_ids.len())?;
            let ids = convert::string_ids("record_ids", &req.record_ids)?;
            let engine = self.engine.clone();
            let limit = self.gate.limits().max_message_bytes;
            // Per record, RecordAccess compiles four answers and copies a
            // field mask: always off the async workers.
            compute(admitted, usize::MAX, move || {
                let (flags, revision) = engine.record_access(
                    &tenant,
                    &principal,
                    &req.object,
                    &ids,
                    req.min_revision,
                    now(),
                )?;
                let outcome = Outcome {
                    records: flags.len() as u64,
                    allowed: flags.iter().filter(|f| f.view).count() as u64,
                    revision: Some(revision),
                    ..Outcome::default()
                };
                let response = pb::RecordAccessResponse {
                    records: flags
                        .iter()
                        .zip(&req.record_ids)
                        .map(|(f, id)| pb::RecordFlags {
                            record_id: id.clone(),
                            view: f.view,
                            edit: f.edit,
                            remove: f.remove,
                            unarchive: f.unarchive,
                            field_mask: Some(convert::field_mask(&f.field_mask)),
                        })
                        .collect(),
                    revision,
                };
                let response = fits(response, limit, "RecordAccess", Some(req.record_ids.len()))?;
                Ok((response, outcome))
            })
            .await
        }
        .await;
        self.finish(call, result)
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let call = self.call("Explain", &request);
        let result = async move {
            let _admitted = self.admit(&request, Admission::Unary).await?;
            let req = request.into_inner();
            let q = convert::question(
                &req.tenant,
                req.principal.as_ref(),
                &req.object,
                &req.action,
                req.context.as_ref(),
                req.min_revision,
                &self.bounds,
            )?;
            let record = match req.record_id.as_str() {
                "" => None,
                id => Some(convert::uuid("record_id", id)?),
            };
            let e = self.engine.explain(&q, record, now())?;
            let outcome = Outcome {
                single: false,
                ..Outcome::single(e.allowed(), e.reason, e.revision)
            };
            let response = pb::ExplainResponse {
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
            };
            let response = fits(
                response,
                self.gate.limits().max_message_bytes,
                "Explain",
                None,
            )?;
            Ok((response, outcome))
        }
        .await;
        self.finish(call, result)
    }
}

/// LookupRecords' pages, made one at a time when the transport asks for
/// the next: HTTP/2 asks only while the client's flow-control window is
/// open, so a client that stops reading stops production, and at most a
/// page or two per stream is ever buffered. The stream permit is held
/// until the last page is sent or the client goes away (the stream is
/// dropped), so `max_concurrent_streams` bounds open streams, not
/// producers — or until the client has asked for nothing for
/// `idle_timeout`: a watchdog then takes the permit back, and the stream
/// ends with RESOURCE_EXHAUSTED, so stalled readers cannot keep every
/// permit.
pub struct Pages {
    admitted: Arc<std::sync::Mutex<Option<Admitted>>>,
    /// When the transport last asked for a page.
    asked: Arc<std::sync::Mutex<Instant>>,
    resolved: Resolved,
    compiled: Arc<Compiled>,
    /// The first ordinal not yet sent; `u32::MAX` once done.
    next: u32,
    page: usize,
    packed: bool,
    max_message_bytes: usize,
}

impl Pages {
    fn next_page(&mut self) -> Option<pb::LookupRecordsResponse> {
        let object = self.resolved.tenant.objects.get(self.resolved.object)?;
        if self.next == u32::MAX {
            return None;
        }
        // 16 bytes a packed id; 36 characters and 2 bytes of framing a string;
        // within max_message_bytes too, less room for the rest of a message.
        let per_id = if self.packed { 16 } else { 38 };
        let bytes = MAX_PAGE_BYTES.min(self.max_message_bytes.saturating_sub(64));
        let page = self.page.min(bytes / per_id).max(1);
        let ords: Vec<u32> = self
            .compiled
            .allowed
            .iter_from(self.next)
            .take(page)
            .collect();
        self.next = match ords.last() {
            Some(last) if ords.len() == page => last.saturating_add(1),
            _ => u32::MAX,
        };
        let revision = self.resolved.revision;
        let response = if self.packed {
            let mut uuids = Vec::with_capacity(ords.len() * 16);
            object.ids_of(&ords, |id| uuids.extend_from_slice(id.as_bytes()));
            (!uuids.is_empty()).then_some(pb::LookupRecordsResponse {
                record_ids: None,
                packed_record_ids: Some(pb::PackedIds { uuids }),
                revision,
            })
        } else {
            let mut ids = Vec::with_capacity(ords.len());
            object.ids_of(&ords, |id| ids.push(id.to_string()));
            (!ids.is_empty()).then_some(pb::LookupRecordsResponse {
                record_ids: Some(pb::StringIds { ids }),
                packed_record_ids: None,
                revision,
            })
        };
        if response.is_none() {
            self.next = u32::MAX;
        }
        response
    }
}

impl Pages {
    fn new(
        admitted: Admitted,
        resolved: Resolved,
        compiled: Arc<Compiled>,
        page: usize,
        packed: bool,
        max_message_bytes: usize,
    ) -> Pages {
        Pages {
            admitted: Arc::new(std::sync::Mutex::new(Some(admitted))),
            asked: Arc::new(std::sync::Mutex::new(Instant::now())),
            resolved,
            compiled,
            next: 0,
            page,
            packed,
            max_message_bytes,
        }
    }

    /// Takes the permit back once the stream has not been asked for a page
    /// for `stall`; ends when the stream does.
    fn watch(&self, stall: std::time::Duration) {
        let admitted = Arc::downgrade(&self.admitted);
        let asked = self.asked.clone();
        tokio::spawn(async move {
            loop {
                let since = *asked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                tokio::time::sleep_until((since + stall).into()).await;
                let Some(admitted) = admitted.upgrade() else {
                    return;
                };
                let since = *asked
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if since.elapsed() >= stall {
                    admitted
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take();
                    return;
                }
            }
        });
    }
}

impl tokio_stream::Stream for Pages {
    type Item = Result<pb::LookupRecordsResponse, Status>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let lost = this
            .admitted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none();
        if lost {
            if this.next == u32::MAX {
                return Poll::Ready(None);
            }
            this.next = u32::MAX;
            record_refusal("idle_timeout");
            return Poll::Ready(Some(Err(Status::resource_exhausted(
                "this LookupRecords stream was not read for idle_timeout and gave its place back (max_concurrent_streams); read the stream as it comes, or ask again",
            ))));
        }
        *this
            .asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        Poll::Ready(this.next_page().map(Ok))
    }
}

/// The requests that may carry a `min_revision`.
trait HasMinRevision {
    fn min_revision(&self) -> u64;
}

macro_rules! has_min_revision {
    ($($t:ty),*) => {
        $(impl HasMinRevision for $t {
            fn min_revision(&self) -> u64 {
                self.min_revision
            }
        })*
    };
}

has_min_revision!(
    pb::CheckRequest,
    pb::BatchCheckRequest,
    pb::LookupRecordsRequest,
    pb::ObjectAccessRequest,
    pb::RecordAccessRequest,
    pb::ExplainRequest
);

/// Who asked what, as the decision log records it.
trait Asks {
    fn tenant(&self) -> &str;
    fn principal(&self) -> Option<&pb::Principal>;
    fn object(&self) -> &str;
    fn action(&self) -> &str {
        ""
    }
}

macro_rules! asks {
    ($($t:ty),*; $($a:ty),*) => {
        $(impl Asks for $t {
            fn tenant(&self) -> &str { &self.tenant }
            fn principal(&self) -> Option<&pb::Principal> { self.principal.as_ref() }
            fn object(&self) -> &str { &self.object }
            fn action(&self) -> &str { &self.action }
        })*
        $(impl Asks for $a {
            fn tenant(&self) -> &str { &self.tenant }
            fn principal(&self) -> Option<&pb::Principal> { self.principal.as_ref() }
            fn object(&self) -> &str { &self.object }
        })*
    };
}

asks!(
    pb::CheckRequest,
    pb::BatchCheckRequest,
    pb::LookupRecordsRequest,
    pb::ExplainRequest;
    pb::ObjectAccessRequest,
    pb::RecordAccessRequest
);
