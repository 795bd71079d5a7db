//! The AuthZEN Authorization API 1.0 over HTTP/1.1 and JSON
//! (docs/authzen.md is the contract): evaluations become the Authorizer's
//! own Check and BatchCheck calls, a resource search pages through
//! LookupRecords' set. Every call goes through the Authorizer service
//! itself, so limits, admission, metrics and the decision log are the
//! gRPC API's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{Map, Value};
use tonic::{Code, Request, Status};

use super::authorizer::AuthorizerService;
use crate::net::Acceptor;
use crate::pb::{self, authorizer_server::Authorizer};

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Most connections open at once on this listener.
const MAX_CONNECTIONS: usize = 1024;
const DEFAULT_PAGE: u64 = 1_000;
const MAX_PAGE: u64 = 10_000;

const EVALUATION: &str = "/access/v1/evaluation";
const EVALUATIONS: &str = "/access/v1/evaluations";
const SEARCH: &str = "/access/v1/search/resource";
const METADATA: &str = "/.well-known/authzen-configuration";

const CONTEXT_KEYS: [&str; 6] = [
    "channel",
    "transactional",
    "subscription_list",
    "fields",
    "target_email_status",
    "min_revision",
];

/// The listener's shared state.
pub struct AuthZen {
    authorizer: Arc<AuthorizerService>,
    default_tenant: Option<String>,
}

type Body = Full<Bytes>;

/// Serves AuthZEN on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    authorizer: Arc<AuthorizerService>,
    default_tenant: Option<String>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let state = Arc::new(AuthZen {
        authorizer,
        default_tenant,
    });
    tokio::pin!(shutdown);
    let mut acceptor = Acceptor::new(listener, MAX_CONNECTIONS, "authzen");
    loop {
        let (stream, slot) = tokio::select! {
            () = &mut shutdown => return,
            accepted = acceptor.accept() => accepted,
        };
        let state = state.clone();
        let peer = stream.peer_addr().ok();
        let local = stream.local_addr().ok();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(state.handle(request, peer, local).await)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(64 * 1024)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = connection.await;
        });
    }
}

/// A refusal of the whole request: an HTTP error status.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn invalid(message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_ARGUMENT",
            message: message.into(),
        }
    }
}

/// The HTTP status and code name of a gRPC status (grpc-gateway's mapping,
/// FAILED_PRECONDITION included as 400).
fn http_of(code: Code) -> (StatusCode, &'static str) {
    match code {
        Code::Ok => (StatusCode::OK, "OK"),
        Code::InvalidArgument => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        Code::FailedPrecondition => (StatusCode::BAD_REQUEST, "FAILED_PRECONDITION"),
        Code::OutOfRange => (StatusCode::BAD_REQUEST, "OUT_OF_RANGE"),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        Code::PermissionDenied => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        Code::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        Code::AlreadyExists | Code::Aborted => (StatusCode::CONFLICT, "ABORTED"),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED"),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        Code::DeadlineExceeded => (StatusCode::GATEWAY_TIMEOUT, "DEADLINE_EXCEEDED"),
        Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, "UNIMPLEMENTED"),
        Code::Cancelled => (StatusCode::REQUEST_TIMEOUT, "CANCELLED"),
        Code::Internal | Code::Unknown | Code::DataLoss => {
            (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL")
        }
    }
}

impl From<Status> for Refusal {
    fn from(s: Status) -> Refusal {
        let (status, code) = http_of(s.code());
        Refusal {
            status,
            code,
            message: s.message().to_owned(),
        }
    }
}

/// An error inside one decision: `context.error` of a closed decision.
#[derive(Clone, Debug, Serialize)]
struct ItemError {
    status: u16,
    code: &'static str,
    message: String,
}

impl From<Refusal> for ItemError {
    fn from(r: Refusal) -> ItemError {
        ItemError {
            status: r.status.as_u16(),
            code: r.code,
            message: r.message,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
struct DecisionContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ItemError>,
}

#[derive(Clone, Debug, Serialize)]
struct Decision {
    decision: bool,
    context: DecisionContext,
}

impl Decision {
    fn answered(allowed: bool, reason: i32, revision: u64) -> Decision {
        Decision {
            decision: allowed,
            context: DecisionContext {
                reason: (!allowed).then(|| reason_name(reason)),
                revision: Some(revision),
                error: None,
            },
        }
    }

    fn failed(error: ItemError) -> Decision {
        Decision {
            decision: false,
            context: DecisionContext {
                error: Some(error),
                ..DecisionContext::default()
            },
        }
    }
}

fn reason_name(code: i32) -> &'static str {
    pb::Reason::try_from(code).map_or("REASON_UNSPECIFIED", |r| r.as_str_name())
}

/// One question, validated: what a Check or a BatchCheck element asks.
#[derive(Clone, Debug)]
struct Question {
    tenant: String,
    principal: pb::Principal,
    object: String,
    action: String,
    /// `""` for record-less actions.
    record: String,
    context: pb::ActionContext,
    min_revision: u64,
    /// The context as sent, for grouping and for page tokens.
    context_key: String,
}

impl Question {
    /// What elements answered by one BatchCheck share.
    fn group(&self) -> (String, i32, String, String, String, String) {
        (
            self.tenant.clone(),
            self.principal.kind,
            self.principal.id.clone(),
            self.object.clone(),
            self.action.clone(),
            self.context_key.clone(),
        )
    }
}

impl AuthZen {
    async fn handle(
        &self,
        request: http::Request<Incoming>,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> http::Response<Body> {
        let request_id = request.headers().get("x-request-id").cloned();
        // GETs and bodiless requests leave nothing unread.
        let request_had_body = request.method() != Method::GET
            && request.method() != Method::HEAD
            && request
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() != b"0");
        let mut response = match self.route(request, peer, local).await {
            Ok(response) => response,
            Err(refusal) => error_response(&refusal),
        };
        // A refusal sent before the body was read leaves the body unread,
        // and hyper then closes the connection: say so, or a client that
        // pools connections sends its next request into a closed one.
        if !self_read_body(&response) && request_had_body {
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(id) = request_id {
            response.headers_mut().insert("x-request-id", id);
        }
        response
    }

    async fn route(
        &self,
        request: http::Request<Incoming>,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
    ) -> Result<http::Response<Body>, Refusal> {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        if path == METADATA {
            if method != Method::GET && method != Method::HEAD {
                return Err(not_allowed("GET"));
            }
            return metadata(request.headers());
        }
        self.authenticate(request.headers())?;
        if ![EVALUATION, EVALUATIONS, SEARCH].contains(&path.as_str()) {
            return Err(Refusal {
                status: StatusCode::NOT_FOUND,
                code: "NOT_FOUND",
                message: format!(
                    "no endpoint {path}; permd's AuthZEN endpoints are POST {EVALUATION}, POST {EVALUATIONS}, POST {SEARCH} and GET {METADATA}"
                ),
            });
        }
        if method != Method::POST {
            return Err(not_allowed("POST"));
        }
        let (body, headers) = read_json(request).await?;
        let meta = Meta::of(&headers, peer, local);
        let mut response = self
            .answer(&path, &body, &meta)
            .await
            .unwrap_or_else(|refusal| error_response(&refusal));
        response.extensions_mut().insert(BodyRead);
        Ok(response)
    }

    /// The answer to a request whose body was read whole.
    async fn answer(
        &self,
        path: &str,
        body: &Map<String, Value>,
        meta: &Meta,
    ) -> Result<http::Response<Body>, Refusal> {
        Ok(match path {
            EVALUATION => {
                let q = self.question(body, "")?;
                json_response(StatusCode::OK, &self.evaluate_one(q, meta).await?)
            }
            EVALUATIONS => json_response(StatusCode::OK, &self.evaluations(body, meta).await?),
            _ => json_response(StatusCode::OK, &self.search(body, meta).await?),
        })
    }

    /// With `--api-token`, the bearer token; without, nothing.
    fn authenticate(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(token) = self.authorizer.token() else {
            return Ok(());
        };
        let header = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        token.check_header(header).map_err(|s| Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHENTICATED",
            message: s.message().to_owned(),
        })
    }

    /// A single evaluation: a denial with `context.error` for what the data
    /// lacks (NOT_FOUND), an HTTP error for anything else.
    async fn evaluate_one(&self, q: Question, meta: &Meta) -> Result<Decision, Refusal> {
        let request = meta.request(pb::CheckRequest {
            tenant: q.tenant,
            principal: Some(q.principal),
            object: q.object,
            action: q.action,
            record_id: q.record,
            context: Some(q.context),
            min_revision: q.min_revision,
        });
        match self.authorizer.check(request).await {
            Ok(r) => {
                let r = r.into_inner();
                Ok(Decision::answered(r.allowed, r.reason, r.revision))
            }
            Err(s) if names_unknown(&s) => Ok(Decision::failed(not_found(s))),
            Err(s) => Err(s.into()),
        }
    }

    async fn evaluations(&self, body: &Map<String, Value>, meta: &Meta) -> Result<Answer, Refusal> {
        let semantic = match body.get("options") {
            None | Some(Value::Null) => "execute_all",
            Some(Value::Object(options)) => match options.get("evaluations_semantic") {
                None | Some(Value::Null) => "execute_all",
                Some(Value::String(s))
                    if [
                        "execute_all",
                        "deny_on_first_deny",
                        "permit_on_first_permit",
                    ]
                    .contains(&s.as_str()) =>
                {
                    s.as_str()
                }
                Some(other) => {
                    return Err(Refusal::invalid(format!(
                        "options.evaluations_semantic {} is not one of execute_all, deny_on_first_deny, permit_on_first_permit",
                        quote_value(other)
                    )));
                }
            },
            Some(_) => return Err(Refusal::invalid("options must be an object")),
        };
        let elements = match body.get("evaluations") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => return Err(Refusal::invalid("evaluations must be an array")),
        };
        if elements.is_empty() {
            let q = self.question(body, "")?;
            let decision = self.evaluate_one(q, meta).await?;
            return Ok(Answer::One(decision));
        }
        let max = self.authorizer.max_batch();
        if elements.len() > max {
            return Err(Refusal::invalid(format!(
                "evaluations: {} elements exceed the limit of {max} (max_batch); split them",
                elements.len()
            )));
        }
        // Defaults must each be valid on their own.
        let defaults = Defaults::of(body, self)?;
        let mut questions: Vec<Result<Question, ItemError>> = Vec::with_capacity(elements.len());
        for (i, element) in elements.iter().enumerate() {
            let Value::Object(element) = element else {
                return Err(Refusal::invalid(format!(
                    "evaluations[{i}] must be an object"
                )));
            };
            let mut merged = Map::new();
            for key in ["subject", "action", "resource", "context"] {
                if let Some(v) = element.get(key).or_else(|| defaults.raw.get(key)) {
                    merged.insert(key.to_owned(), v.clone());
                }
            }
            questions.push(
                self.question(&merged, &format!("evaluations[{i}]."))
                    .map_err(ItemError::from),
            );
        }
        let min_revision = questions
            .iter()
            .filter_map(|q| q.as_ref().ok().map(|q| q.min_revision))
            .max()
            .unwrap_or(0);
        let mut decisions: Vec<Option<Decision>> = vec![None; questions.len()];
        // Groups of record questions, asked by one BatchCheck each.
        let mut groups: HashMap<_, Vec<usize>> = HashMap::new();
        let mut order = Vec::new();
        for (i, q) in questions.iter().enumerate() {
            match q {
                Err(e) => {
                    if let Some(slot) = decisions.get_mut(i) {
                        *slot = Some(Decision::failed(e.clone()));
                    }
                }
                Ok(q) if q.record.is_empty() => {
                    let mut q = q.clone();
                    q.min_revision = min_revision;
                    let decision = match self.evaluate_one(q, meta).await {
                        Ok(d) => d,
                        Err(r)
                            if r.status == StatusCode::BAD_REQUEST
                                && r.code == "INVALID_ARGUMENT" =>
                        {
                            Decision::failed(ItemError::from(with_path(r, i)))
                        }
                        Err(r) => return Err(r),
                    };
                    if let Some(slot) = decisions.get_mut(i) {
                        *slot = Some(decision);
                    }
                }
                Ok(q) => {
                    let key = q.group();
                    if !groups.contains_key(&key) {
                        order.push(key.clone());
                    }
                    groups.entry(key).or_default().push(i);
                }
            }
        }
        for key in order {
            let members = groups.remove(&key).unwrap_or_default();
            let Some(Ok(first)) = members.first().and_then(|i| questions.get(*i)) else {
                continue;
            };
            let ids = members
                .iter()
                .filter_map(|i| questions.get(*i)?.as_ref().ok().map(|q| q.record.clone()))
                .collect();
            let request = meta.request(pb::BatchCheckRequest {
                tenant: first.tenant.clone(),
                principal: Some(first.principal.clone()),
                object: first.object.clone(),
                action: first.action.clone(),
                records: Some(pb::batch_check_request::Records::RecordIds(pb::StringIds {
                    ids,
                })),
                context: Some(first.context.clone()),
                return_allowed_ids: false,
                min_revision,
                return_handles: false,
                packed_denials: false,
            });
            match self.authorizer.batch_check(request).await {
                Ok(r) => {
                    let r = r.into_inner();
                    let denied: HashMap<u32, i32> =
                        r.denials.iter().map(|d| (d.position, d.reason)).collect();
                    for (position, i) in members.iter().enumerate() {
                        let reason = denied.get(&(position as u32)).copied();
                        if let Some(slot) = decisions.get_mut(*i) {
                            *slot = Some(Decision::answered(
                                reason.is_none(),
                                reason.unwrap_or(0),
                                r.revision,
                            ));
                        }
                    }
                }
                Err(s) if matches!(s.code(), Code::NotFound | Code::InvalidArgument) => {
                    let error = if names_unknown(&s) {
                        not_found(s)
                    } else {
                        ItemError::from(Refusal::from(s))
                    };
                    for i in &members {
                        if let Some(slot) = decisions.get_mut(*i) {
                            *slot = Some(Decision::failed(error.clone()));
                        }
                    }
                }
                Err(s) => return Err(s.into()),
            }
        }
        let mut answered: Vec<Decision> = decisions.into_iter().flatten().collect();
        let stop = match semantic {
            "deny_on_first_deny" => answered.iter().position(|d| !d.decision),
            "permit_on_first_permit" => answered.iter().position(|d| d.decision),
            _ => None,
        };
        if let Some(stop) = stop {
            answered.truncate(stop + 1);
        }
        Ok(Answer::Many {
            evaluations: answered,
        })
    }

    async fn search(&self, body: &Map<String, Value>, meta: &Meta) -> Result<SearchPage, Refusal> {
        let subject = required(body, "subject", "")?;
        let (tenant, principal) = self.subject(subject, "subject.")?;
        let action = action(required(body, "action", "")?, "action.")?;
        let resource = object(required(body, "resource", "")?, "resource")?;
        let object = match resource.get("type") {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            Some(Value::String(_)) => return Err(Refusal::invalid("resource.type is empty")),
            Some(other) if !other.is_null() => {
                return Err(Refusal::invalid(format!(
                    "resource.type must be a string, not {}",
                    quote_value(other)
                )));
            }
            _ => return Err(Refusal::invalid("resource.type is missing")),
        };
        refuse_context_in_properties(resource, "resource")?;
        let (context, min_revision, context_key) = context(body.get("context"), "context")?;
        let (limit_given, token) = match body.get("page") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(page)) => {
                let limit = match page.get("limit") {
                    None | Some(Value::Null) => None,
                    Some(Value::Number(n)) => match n.as_u64() {
                        Some(n) if (1..=MAX_PAGE).contains(&n) => Some(n),
                        _ => {
                            return Err(Refusal::invalid(format!(
                                "page.limit {n} is not an integer from 1 to {MAX_PAGE}"
                            )));
                        }
                    },
                    Some(other) => {
                        return Err(Refusal::invalid(format!(
                            "page.limit {} is not an integer from 1 to {MAX_PAGE}",
                            quote_value(other)
                        )));
                    }
                };
                let token = match page.get("token") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(t)) if t.is_empty() => None,
                    Some(Value::String(t)) => Some(t.clone()),
                    Some(other) => {
                        return Err(Refusal::invalid(format!(
                            "page.token {} is not a token: send the next_token of the previous page",
                            quote_value(other)
                        )));
                    }
                };
                (limit, token)
            }
            Some(_) => return Err(Refusal::invalid("page must be an object")),
        };
        let fingerprint = format!(
            "{tenant}\u{0}{}\u{0}{}\u{0}{object}\u{0}{action}\u{0}{context_key}",
            principal.kind, principal.id
        );
        let (from, limit) = match &token {
            None => (None, limit_given.unwrap_or(DEFAULT_PAGE)),
            Some(token) => {
                let (cursor, space, limit) = read_token(token, &fingerprint)?;
                if limit_given.is_some_and(|l| l != limit) {
                    return Err(Refusal::invalid(
                        "page.token was issued for another request: its page.limit was different; send the same limit, or none",
                    ));
                }
                (Some((cursor, space)), limit)
            }
        };
        let request = meta.request(pb::LookupRecordsRequest {
            tenant,
            principal: Some(principal),
            object: object.clone(),
            action,
            context: Some(context),
            page_size: limit as u32,
            packed: false,
            min_revision,
        });
        match self.authorizer.lookup_page(request, from).await {
            Ok(page) => Ok(SearchPage {
                page: PageInfo {
                    next_token: page
                        .next
                        .map(|next| write_token(next, page.space, limit, &fingerprint))
                        .unwrap_or_default(),
                    count: page.ids.len() as u64,
                    total: page.total,
                },
                results: page
                    .ids
                    .into_iter()
                    .map(|id| Found {
                        kind: object.clone(),
                        id,
                    })
                    .collect(),
                context: DecisionContext {
                    revision: Some(page.revision),
                    ..DecisionContext::default()
                },
            }),
            Err(s) if names_unknown(&s) => Ok(SearchPage {
                page: PageInfo::default(),
                results: Vec::new(),
                context: DecisionContext {
                    error: Some(not_found(s)),
                    ..DecisionContext::default()
                },
            }),
            Err(s) => Err(s.into()),
        }
    }

    /// One evaluation's members, validated. `at` prefixes member paths in
    /// messages (`evaluations[3].`).
    fn question(&self, body: &Map<String, Value>, at: &str) -> Result<Question, Refusal> {
        let (tenant, principal) =
            self.subject(required(body, "subject", at)?, &format!("{at}subject."))?;
        let action = action(required(body, "action", at)?, &format!("{at}action."))?;
        let (object, record) = resource(required(body, "resource", at)?, &format!("{at}resource"))?;
        let (context, min_revision, context_key) =
            context(body.get("context"), &format!("{at}context"))?;
        Ok(Question {
            tenant,
            principal,
            object,
            action,
            record,
            context,
            min_revision,
            context_key,
        })
    }

    /// The tenant and the principal of a `subject`.
    fn subject(&self, subject: &Value, at: &str) -> Result<(String, pb::Principal), Refusal> {
        let subject = object(subject, at.trim_end_matches('.'))?;
        let kind = match string(subject, "type", at)?.as_str() {
            "user" => pb::principal::Kind::User,
            "integration" => pb::principal::Kind::Integration,
            "automation" => pb::principal::Kind::Automation,
            other => {
                return Err(Refusal::invalid(format!(
                    "{at}type '{}' is not a principal kind: user, integration or automation",
                    clip(other)
                )));
            }
        };
        let id = string(subject, "id", at)?;
        if id.is_empty() {
            return Err(Refusal::invalid(format!("{at}id is empty")));
        }
        let named = match subject.get("properties") {
            None | Some(Value::Null) => None,
            Some(Value::Object(p)) => match p.get("tenant") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
                Some(other) => {
                    return Err(Refusal::invalid(format!(
                        "{at}properties.tenant {} must be a non-empty string",
                        quote_value(other)
                    )));
                }
            },
            Some(_) => {
                return Err(Refusal::invalid(format!(
                    "{at}properties must be an object"
                )));
            }
        };
        let tenant = named
            .or_else(|| self.default_tenant.clone())
            .ok_or_else(|| {
                Refusal::invalid(format!(
                    "no tenant: set {at}properties.tenant or start permd with --authzen-tenant"
                ))
            })?;
        Ok((
            tenant,
            pb::Principal {
                kind: kind as i32,
                id,
            },
        ))
    }
}

/// The top-level defaults of an evaluations request, each checked alone.
struct Defaults<'a> {
    raw: &'a Map<String, Value>,
}

impl<'a> Defaults<'a> {
    fn of(body: &'a Map<String, Value>, zen: &AuthZen) -> Result<Defaults<'a>, Refusal> {
        if let Some(s) = body.get("subject").filter(|v| !v.is_null()) {
            zen.subject(s, "subject.")?;
        }
        if let Some(a) = body.get("action").filter(|v| !v.is_null()) {
            action(a, "action.")?;
        }
        if let Some(r) = body.get("resource").filter(|v| !v.is_null()) {
            resource(r, "resource")?;
        }
        context(body.get("context"), "context")?;
        Ok(Defaults { raw: body })
    }
}

fn required<'a>(body: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a Value, Refusal> {
    match body.get(key) {
        None | Some(Value::Null) => Err(Refusal::invalid(format!("{at}{key} is missing"))),
        Some(v) => Ok(v),
    }
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, Refusal> {
    value.as_object().ok_or_else(|| {
        Refusal::invalid(format!(
            "{at} must be an object, not {}",
            quote_value(value)
        ))
    })
}

fn string(map: &Map<String, Value>, key: &str, at: &str) -> Result<String, Refusal> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(Refusal::invalid(format!("{at}{key} is missing"))),
        Some(other) => Err(Refusal::invalid(format!(
            "{at}{key} must be a string, not {}",
            quote_value(other)
        ))),
    }
}

fn action(value: &Value, at: &str) -> Result<String, Refusal> {
    let action = object(value, at.trim_end_matches('.'))?;
    refuse_context_in_properties(action, at.trim_end_matches('.'))?;
    let name = string(action, "name", at)?;
    if name.is_empty() {
        return Err(Refusal::invalid(format!("{at}name is empty")));
    }
    Ok(name)
}

/// The object and record id of an evaluation's `resource`.
fn resource(value: &Value, at: &str) -> Result<(String, String), Refusal> {
    let resource = object(value, at)?;
    refuse_context_in_properties(resource, at)?;
    let kind = string(resource, "type", &format!("{at}."))?;
    if kind.is_empty() {
        return Err(Refusal::invalid(format!("{at}.type is empty")));
    }
    let id = string(resource, "id", &format!("{at}."))?;
    if !id.is_empty() && super::convert::parse_uuid(&id).is_none() {
        return Err(Refusal::invalid(format!(
            "{at}.id: '{}' is not a UUID",
            clip(&id)
        )));
    }
    Ok((kind, id))
}

/// A context key put in `action.properties` or `resource.properties`
/// would be ignored there; refused, so the question asked is the one meant.
fn refuse_context_in_properties(map: &Map<String, Value>, at: &str) -> Result<(), Refusal> {
    if let Some(Value::Object(p)) = map.get("properties")
        && let Some(key) = CONTEXT_KEYS.iter().find(|k| p.contains_key(**k))
    {
        return Err(Refusal::invalid(format!(
            "{at}.properties.{key} is a context key: move it into context"
        )));
    }
    Ok(())
}

/// The action context, the `min_revision`, and a canonical text of the
/// context for grouping and tokens.
fn context(value: Option<&Value>, at: &str) -> Result<(pb::ActionContext, u64, String), Refusal> {
    let mut ctx = pb::ActionContext::default();
    let mut min_revision = 0;
    let map = match value {
        None | Some(Value::Null) => return Ok((ctx, 0, String::new())),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(Refusal::invalid(format!(
                "{at} must be an object, not {}",
                quote_value(other)
            )));
        }
    };
    let mut canonical: Vec<(String, String)> = Vec::new();
    for (key, v) in map {
        if v.is_null() {
            continue;
        }
        let bad = |want: &str| {
            Refusal::invalid(format!("{at}.{key} must be {want}, not {}", quote_value(v)))
        };
        match key.as_str() {
            "channel" => {
                ctx.channel = match v.as_str() {
                    Some("email") => pb::Channel::Email as i32,
                    Some("text") => pb::Channel::Text as i32,
                    _ => return Err(bad("\"email\" or \"text\"")),
                }
            }
            "transactional" => ctx.transactional = v.as_bool().ok_or_else(|| bad("a boolean"))?,
            "subscription_list" => {
                ctx.subscription_list = v.as_str().ok_or_else(|| bad("a string"))?.to_owned()
            }
            "target_email_status" => {
                ctx.target_email_status = v.as_str().ok_or_else(|| bad("a string"))?.to_owned()
            }
            "fields" => {
                let items = v.as_array().ok_or_else(|| bad("an array of strings"))?;
                ctx.fields = items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        f.as_str().map(str::to_owned).ok_or_else(|| {
                            Refusal::invalid(format!(
                                "{at}.fields[{i}] must be a string, not {}",
                                quote_value(f)
                            ))
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "min_revision" => {
                min_revision = v.as_u64().ok_or_else(|| bad("a non-negative integer"))?;
                continue;
            }
            other => {
                return Err(Refusal::invalid(format!(
                    "{at}.{} is not a context key; the keys are: {}",
                    clip(other),
                    CONTEXT_KEYS.join(", ")
                )));
            }
        }
        canonical.push((key.clone(), v.to_string()));
    }
    canonical.sort();
    let key = canonical
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\u{1}");
    Ok((ctx, min_revision, key))
}

/// An evaluations answer: one Decision when the request had no
/// `evaluations`, else the list.
#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    One(Decision),
    Many { evaluations: Vec<Decision> },
}

#[derive(Serialize)]
struct SearchPage {
    page: PageInfo,
    results: Vec<Found>,
    context: DecisionContext,
}

#[derive(Default, Serialize)]
struct PageInfo {
    next_token: String,
    count: u64,
    total: u64,
}

#[derive(Serialize)]
struct Found {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

/// `<cursor>.<space>.<limit>.<check>`: the cursor is an ordinal of the id
/// table `space` names, so it is refused against any other (a restart, a
/// reload); the check is a digest of the request the token answers and of
/// the rest of the token, so a token changed by one character, or sent with
/// another request, is refused instead of read as another position.
fn write_token(cursor: u32, space: u64, limit: u64, fingerprint: &str) -> String {
    format!(
        "{cursor}.{space:x}.{limit}.{}",
        token_check(cursor, space, limit, fingerprint)
    )
}

fn read_token(token: &str, fingerprint: &str) -> Result<(u32, u64, u64), Refusal> {
    let refuse = || {
        Refusal::invalid(
            "page.token was not issued by permd, or was issued for another request (another subject, action, resource type, context or limit); send the next_token of the previous page with the same request",
        )
    };
    let mut parts = token.split('.');
    let (Some(cursor), Some(space), Some(limit), Some(check), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(refuse());
    };
    let cursor: u32 = cursor.parse().map_err(|_| refuse())?;
    let space = u64::from_str_radix(space, 16).map_err(|_| refuse())?;
    let limit: u64 = limit.parse().map_err(|_| refuse())?;
    if !(1..=MAX_PAGE).contains(&limit) || check != token_check(cursor, space, limit, fingerprint) {
        return Err(refuse());
    }
    Ok((cursor, space, limit))
}

fn token_check(cursor: u32, space: u64, limit: u64, fingerprint: &str) -> String {
    let text = format!("permd-authzen-page\u{0}{cursor}\u{0}{space}\u{0}{limit}\u{0}{fingerprint}");
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest
        .as_ref()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the Authorizer call carries from the HTTP request: the peer (for
/// the decision log), the request id and trace context, the token.
struct Meta {
    headers: Vec<(
        &'static str,
        tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    )>,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
}

impl Meta {
    fn of(headers: &HeaderMap, peer: Option<SocketAddr>, local: Option<SocketAddr>) -> Meta {
        let mut carried = Vec::new();
        for name in ["authorization", "x-request-id", "traceparent"] {
            if let Some(value) = headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
            {
                carried.push((name, value));
            }
        }
        Meta {
            headers: carried,
            peer,
            local,
        }
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        for (name, value) in &self.headers {
            request.metadata_mut().insert(*name, value.clone());
        }
        request
            .extensions_mut()
            .insert(tonic::transport::server::TcpConnectInfo {
                local_addr: self.local,
                remote_addr: self.peer,
            });
        request
    }
}

/// Checks the content type and size and parses the body as a JSON object
/// (duplicate keys refused).
async fn read_json(
    request: http::Request<Incoming>,
) -> Result<(Map<String, Value>, HeaderMap), Refusal> {
    let (parts, body) = request.into_parts();
    let json = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Refusal::invalid("Content-Type must be application/json"));
    }
    let too_large = || Refusal {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "RESOURCE_EXHAUSTED",
        message: format!("the body is larger than {MAX_BODY_BYTES} bytes; split the request"),
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let bytes = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                too_large()
            } else {
                Refusal::invalid(format!("cannot read the body: {e}"))
            }
        })?
        .to_bytes();
    let value: StrictValue = serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::invalid(format!("the body is not JSON: {e}")))?;
    match value.0 {
        Value::Object(map) => Ok((map, parts.headers)),
        other => Err(Refusal::invalid(format!(
            "the body must be a JSON object, not {}",
            quote_value(&other)
        ))),
    }
}

fn metadata(headers: &HeaderMap) -> Result<http::Response<Body>, Refusal> {
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !valid_host(host) {
        return Err(Refusal::invalid(format!(
            "the Host header '{}' is not host[:port]",
            clip(host)
        )));
    }
    let base = format!("http://{host}");
    let document = serde_json::json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}{EVALUATION}"),
        "access_evaluations_endpoint": format!("{base}{EVALUATIONS}"),
        "search_resource_endpoint": format!("{base}{SEARCH}"),
    });
    Ok(json_response(StatusCode::OK, &document))
}

/// `host[:port]`: a name, an IPv4 address or a bracketed IPv6 address.
fn valid_host(host: &str) -> bool {
    if host.is_empty() {
        return false;
    }
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        }
    };
    let name_ok = name.is_none_or(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    name_ok && port_ok
}

/// A tenant, principal or object this permd's data does not hold: to
/// AuthZEN, an identifier it does not know, answered with a closed decision
/// (`context.error`, 404) rather than an HTTP error. The gRPC API calls an
/// unknown object INVALID_ARGUMENT; its message is the index's own
/// (`QueryError::UnknownObject`, held to this prefix by a test).
fn names_unknown(s: &Status) -> bool {
    s.code() == Code::NotFound
        || (s.code() == Code::InvalidArgument && s.message().starts_with(UNKNOWN_OBJECT))
}

const UNKNOWN_OBJECT: &str = "unknown object '";

fn not_found(s: Status) -> ItemError {
    ItemError {
        status: 404,
        code: "NOT_FOUND",
        message: s.message().to_owned(),
    }
}

/// Whether the request's body was read before this response: set by
/// `json_response` for answers and refusals made after `read_json`.
fn self_read_body(response: &http::Response<Body>) -> bool {
    response.extensions().get::<BodyRead>().is_some()
}

/// Marks a response made after the request's body was read whole.
#[derive(Clone, Copy)]
struct BodyRead;

fn not_allowed(allow: &'static str) -> Refusal {
    Refusal {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "UNIMPLEMENTED",
        message: format!("use {allow} here"),
    }
}

fn with_path(mut r: Refusal, i: usize) -> Refusal {
    r.message = format!("evaluations[{i}]: {}", r.message);
    r
}

fn error_response(refusal: &Refusal) -> http::Response<Body> {
    let body = serde_json::json!({
        "error": {
            "status": refusal.status.as_u16(),
            "code": refusal.code,
            "message": refusal.message,
        }
    });
    let mut response = json_response(refusal.status, &body);
    let headers = response.headers_mut();
    match refusal.status {
        StatusCode::UNAUTHORIZED => {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"permd\""),
            );
        }
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            let allow = if refusal.message.contains("GET") {
                "GET, HEAD"
            } else {
                "POST"
            };
            headers.insert(http::header::ALLOW, HeaderValue::from_static(allow));
        }
        _ => {}
    }
    response
}

fn json_response(status: StatusCode, body: &impl Serialize) -> http::Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = http::Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A value for a message: JSON, at most 100 characters.
fn quote_value(v: &Value) -> String {
    clip(&v.to_string())
}

fn clip(s: &str) -> String {
    if s.chars().count() <= 100 {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(100).collect::<String>())
    }
}

/// A JSON value whose objects may not repeat a key: `{"id": "a", "id":
/// "b"}` is an ambiguous question, refused rather than read one way.
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<StrictValue, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate key '{}'",
                    clip(&key)
                )));
            }
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_any_change() {
        let t = write_token(42, 0xfeed, 100, "demo\u{0}1\u{0}alice");
        assert_eq!(
            read_token(&t, "demo\u{0}1\u{0}alice").unwrap(),
            (42, 0xfeed, 100)
        );
        assert!(read_token(&t, "demo\u{0}1\u{0}bob").is_err());
        assert!(read_token(&format!("{t}A"), "demo\u{0}1\u{0}alice").is_err());
        assert!(read_token(&t[..t.len() - 1], "demo\u{0}1\u{0}alice").is_err());
        assert!(read_token("43.100.x", "demo\u{0}1\u{0}alice").is_err());
    }

    #[test]
    fn the_index_names_an_unknown_object_as_authzen_expects() {
        let e = crate::index::QueryError::UnknownObject {
            object: "x".into(),
            tenant: "t".into(),
            valid: "contacts".into(),
        };
        assert!(e.to_string().starts_with(UNKNOWN_OBJECT), "{e}");
    }

    #[test]
    fn hosts() {
        for good in [
            "localhost",
            "127.0.0.1:8181",
            "pdp.internal:9999",
            "[::1]:8181",
            "[::1]",
        ] {
            assert!(valid_host(good), "{good}");
        }
        for bad in ["", "pdp internal/x", "a:b", "[::1", "[zz]:1", ":80"] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(serde_json::from_str::<StrictValue>(r#"{"a": 1, "a": 2}"#).is_err());
        assert!(serde_json::from_str::<StrictValue>(r#"{"a": {"b": 1, "b": 1}}"#).is_err());
        assert!(serde_json::from_str::<StrictValue>(r#"{"a": [{"b": 1}, {"b": 2}]}"#).is_ok());
    }
}
