//! The `permd.v1.Authorizer` service: validates each request at the edge,
//! asks the engine, and converts the answer back to the wire.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prost::Message;
use time::OffsetDateTime;
use tonic::{Request, Response, Status};

use super::convert::{self, Bounds};
use super::limits::{Admitted, Gate, Limits, deadline_of};
use crate::index::Engine;
use crate::index::compile::Compiled;
use crate::index::engine::Resolved;
use crate::pb::{self, authorizer_server::Authorizer};
use crate::source::postgres::feed::Readiness;
use crate::telemetry::metrics::{RpcTimer, record_batch, record_refusal};

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
}

/// Which permit a request needs once it may start.
#[derive(Clone, Copy)]
enum Kind {
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
        }
    }

    /// Admits a request: loaded, its `min_revision` reached (waiting
    /// without a compute permit), then a permit of its kind. A request
    /// parked on a revision never keeps another one from being answered.
    async fn admit<T>(&self, request: &Request<T>, kind: Kind) -> Result<Admitted, Status>
    where
        T: HasMinRevision,
    {
        let deadline = deadline_of(request.metadata());
        let min_revision = request.get_ref().min_revision();
        self.ready(min_revision, deadline).await?;
        match kind {
            Kind::Unary => self.gate.request(deadline),
            Kind::Stream => self.gate.stream(deadline),
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

/// Runs one RPC's work and records how long it took, labelled with the
/// status code it ended with (a call dropped before it ends is counted as
/// Cancelled).
async fn timed<T>(
    method: &'static str,
    work: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let timer = RpcTimer::start(method);
    let result = work.await;
    timer.finish(code_label(result.as_ref().err().map(Status::code)));
    result
}

/// The gRPC status code as the `code` label spells it (as gRPC's own
/// Prometheus interceptors do: `OK`, `InvalidArgument`, …).
fn code_label(code: Option<tonic::Code>) -> &'static str {
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
        timed("Check", async move {
            let _admitted = self.admit(&request, Kind::Unary).await?;
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
            Ok(Response::new(pb::CheckResponse {
                allowed: d.allowed(),
                reason: convert::reason(d.reason),
                field_mask: Some(convert::field_mask(&d.field_mask)),
                revision: d.revision,
            }))
        })
        .await
    }

    async fn batch_check(
        &self,
        request: Request<pb::BatchCheckRequest>,
    ) -> Result<Response<pb::BatchCheckResponse>, Status> {
        timed("BatchCheck", async move {
            let admitted = self.admit(&request, Kind::Unary).await?;
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
            let limit = self.gate.limits().max_message_bytes;
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
                let size = ids.len();
                let response = pb::BatchCheckResponse {
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
                };
                fits(response, limit, "BatchCheck", Some(size))
            })
            .await
        })
        .await
    }

    type LookupRecordsStream = Pages;

    async fn lookup_records(
        &self,
        request: Request<pb::LookupRecordsRequest>,
    ) -> Result<Response<Self::LookupRecordsStream>, Status> {
        timed("LookupRecords", async move {
            let admitted = self.admit(&request, Kind::Stream).await?;
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
            let limits = self.gate.limits();
            let pages = Pages::new(
                admitted,
                resolved,
                compiled,
                page,
                req.packed,
                limits.max_message_bytes,
            );
            pages.watch(limits.idle_timeout);
            Ok(Response::new(pages))
        })
        .await
    }

    async fn object_access(
        &self,
        request: Request<pb::ObjectAccessRequest>,
    ) -> Result<Response<pb::ObjectAccessResponse>, Status> {
        timed("ObjectAccess", async move {
            let _admitted = self.admit(&request, Kind::Unary).await?;
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
            fits(
                response,
                self.gate.limits().max_message_bytes,
                "ObjectAccess",
                None,
            )
        })
        .await
    }

    async fn record_access(
        &self,
        request: Request<pb::RecordAccessRequest>,
    ) -> Result<Response<pb::RecordAccessResponse>, Status> {
        timed("RecordAccess", async move {
            let admitted = self.admit(&request, Kind::Unary).await?;
            let req = request.into_inner();
            let tenant = convert::tenant(&req.tenant, &self.bounds)?;
            let principal = convert::principal(req.principal.as_ref(), &self.bounds)?;
            self.bounds.name("object", &req.object)?;
            self.check_batch_size("record_ids", req.record_ids.len())?;
            let ids = convert::string_ids("record_ids", &req.record_ids)?;
            let engine = self.engine.clone();
            let limit = self.gate.limits().max_message_bytes;
            blocking(admitted, move || {
                let (flags, revision) = engine.record_access(
                    &tenant,
                    &principal,
                    &req.object,
                    &ids,
                    req.min_revision,
                    now(),
                )?;
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
                fits(response, limit, "RecordAccess", Some(req.record_ids.len()))
            })
            .await
        })
        .await
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        timed("Explain", async move {
            let _admitted = self.admit(&request, Kind::Unary).await?;
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
            fits(
                response,
                self.gate.limits().max_message_bytes,
                "Explain",
                None,
            )
        })
        .await
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
        let ords = self.compiled.allowed.iter_from(self.next);
        let mut ids: Vec<uuid::Uuid> = Vec::with_capacity(page.min(4_096));
        let (mut taken, mut last) = (0, 0);
        for ord in ords.take(page) {
            (taken, last) = (taken + 1, ord);
            if let Some(id) = object.id(ord) {
                ids.push(id);
            }
        }
        self.next = if taken == page {
            last.saturating_add(1)
        } else {
            u32::MAX
        };
        if ids.is_empty() {
            self.next = u32::MAX;
            return None;
        }
        let revision = self.resolved.revision;
        Some(if self.packed {
            pb::LookupRecordsResponse {
                record_ids: None,
                packed_record_ids: Some(pb::PackedIds {
                    uuids: ids.iter().flat_map(|id| *id.as_bytes()).collect(),
                }),
                revision,
            }
        } else {
            pb::LookupRecordsResponse {
                record_ids: Some(pb::StringIds {
                    ids: ids.iter().map(|id| id.to_string()).collect(),
                }),
                packed_record_ids: None,
                revision,
            }
        })
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
