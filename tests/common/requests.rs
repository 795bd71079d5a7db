//! Requests, built the short way: principals, ids in string and packed form,
//! the Authorizer's request messages for the demo tenant (a test changes the
//! field it is about with struct update), in-process [`Question`]s and
//! answers, one request sent through any of the six RPCs ([`AnyRequest`]),
//! [`answered`] and [`assert_status`] for what comes back, and bearer-token
//! metadata for the Admin service.
//!
//! The builders fill only what a request needs to be valid, so what a test
//! sets by hand is what it is testing.

use std::time::Duration;

use permd::index::{BatchAnswer, PrincipalKind, PrincipalRef, Question};
use permd::model::{ActionContext, Reason};
use permd::pb::{self, authorizer_client::AuthorizerClient};
use permd::source::demo::{DEMO_TENANT, contact_id};
use tonic::transport::Channel;
use tonic::{Code, Status};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Principals and ids
// ---------------------------------------------------------------------------

/// A principal on the wire; an `Option` because a request may lack one
/// (`None` tests exactly that).
pub fn principal(kind: pb::principal::Kind, id: &str) -> Option<pb::Principal> {
    Some(pb::Principal {
        kind: kind as i32,
        id: id.to_owned(),
    })
}

/// The principal kind most tests ask for.
pub fn user(id: &str) -> Option<pb::Principal> {
    principal(pb::principal::Kind::User, id)
}

/// Ids as the string form sends them.
pub fn strings(ids: &[Uuid]) -> Vec<String> {
    ids.iter().map(Uuid::to_string).collect()
}

/// Ids as the packed form sends them: 16 big-endian bytes each.
pub fn packed(ids: &[Uuid]) -> Vec<u8> {
    ids.iter().flat_map(|id| *id.as_bytes()).collect()
}

/// The inverse of [`packed`]; the bytes must be whole UUIDs.
#[track_caller]
pub fn unpack(bytes: &[u8]) -> Vec<Uuid> {
    assert_eq!(bytes.len() % 16, 0, "packed ids must be whole UUIDs");
    bytes
        .chunks_exact(16)
        .map(|c| Uuid::from_slice(c).unwrap())
        .collect()
}

/// The first `n` demo Contacts.
pub fn demo_contacts(n: u64) -> Vec<Uuid> {
    (0..n).map(contact_id).collect()
}

// ---------------------------------------------------------------------------
// Authorizer requests on the demo tenant
// ---------------------------------------------------------------------------

/// BatchCheck with string ids.
pub fn batch(
    who: Option<pb::Principal>,
    object: &str,
    action: &str,
    ids: &[Uuid],
) -> pb::BatchCheckRequest {
    batch_strings(who, object, action, strings(ids))
}

/// BatchCheck with packed ids.
pub fn batch_packed(
    who: Option<pb::Principal>,
    object: &str,
    action: &str,
    ids: &[Uuid],
) -> pb::BatchCheckRequest {
    batch_bytes(who, object, action, packed(ids))
}

/// A BatchCheck with string ids as it is, then with the same ids packed:
/// both forms must get the same answer.
pub fn both_forms(strings_form: pb::BatchCheckRequest) -> [pb::BatchCheckRequest; 2] {
    let Some(pb::batch_check_request::Records::RecordIds(ids)) = &strings_form.records else {
        panic!("both_forms takes a BatchCheck with string ids");
    };
    let ids: Vec<Uuid> = ids.ids.iter().map(|id| id.parse().unwrap()).collect();
    let packed_form = pb::BatchCheckRequest {
        records: Some(pb::batch_check_request::Records::PackedRecordIds(
            pb::PackedIds {
                uuids: packed(&ids),
            },
        )),
        ..strings_form.clone()
    };
    [strings_form, packed_form]
}

/// BatchCheck with string ids exactly as given: any spelling, or not UUIDs.
pub fn batch_strings(
    who: Option<pb::Principal>,
    object: &str,
    action: &str,
    ids: Vec<String>,
) -> pb::BatchCheckRequest {
    pb::BatchCheckRequest {
        tenant: DEMO_TENANT.to_owned(),
        principal: who,
        object: object.to_owned(),
        action: action.to_owned(),
        records: Some(pb::batch_check_request::Records::RecordIds(pb::StringIds {
            ids,
        })),
        ..Default::default()
    }
}

/// BatchCheck with packed bytes exactly as given: whole UUIDs or not.
pub fn batch_bytes(
    who: Option<pb::Principal>,
    object: &str,
    action: &str,
    uuids: Vec<u8>,
) -> pb::BatchCheckRequest {
    pb::BatchCheckRequest {
        records: Some(pb::batch_check_request::Records::PackedRecordIds(
            pb::PackedIds { uuids },
        )),
        ..batch_strings(who, object, action, Vec::new())
    }
}

/// Check of the record `id`: a [`Uuid`], or any string, so a test can
/// send one that is not a UUID ("" for a record-less action).
pub fn check(
    who: Option<pb::Principal>,
    object: &str,
    action: &str,
    id: impl ToString,
) -> pb::CheckRequest {
    pb::CheckRequest {
        tenant: DEMO_TENANT.to_owned(),
        principal: who,
        object: object.to_owned(),
        action: action.to_owned(),
        record_id: id.to_string(),
        ..Default::default()
    }
}

/// The Explain of what `check` asks: the same question, explained.
pub fn explain_of(check: pb::CheckRequest) -> pb::ExplainRequest {
    let pb::CheckRequest {
        tenant,
        principal,
        object,
        action,
        record_id,
        context,
        min_revision,
    } = check;
    pb::ExplainRequest {
        tenant,
        principal,
        object,
        action,
        record_id,
        context,
        min_revision,
    }
}

/// LookupRecords in the server's default pages.
pub fn lookup(who: Option<pb::Principal>, object: &str, action: &str) -> pb::LookupRecordsRequest {
    pb::LookupRecordsRequest {
        tenant: DEMO_TENANT.to_owned(),
        principal: who,
        object: object.to_owned(),
        action: action.to_owned(),
        ..Default::default()
    }
}

/// LookupRecords in pages of `page_size` ids per message (0: the default).
pub fn lookup_pages(
    who: Option<pb::Principal>,
    object: &str,
    action: &str,
    page_size: u32,
) -> pb::LookupRecordsRequest {
    pb::LookupRecordsRequest {
        page_size,
        ..lookup(who, object, action)
    }
}

/// ObjectAccess; an empty `object` asks about every object.
pub fn object_access(who: Option<pb::Principal>, object: &str) -> pb::ObjectAccessRequest {
    pb::ObjectAccessRequest {
        tenant: DEMO_TENANT.to_owned(),
        principal: who,
        object: object.to_owned(),
        min_revision: 0,
    }
}

/// RecordAccess; ids are strings so a test can send malformed ones.
pub fn record_access(
    who: Option<pb::Principal>,
    object: &str,
    record_ids: Vec<String>,
) -> pb::RecordAccessRequest {
    pb::RecordAccessRequest {
        tenant: DEMO_TENANT.to_owned(),
        principal: who,
        object: object.to_owned(),
        record_ids,
        min_revision: 0,
    }
}

// ---------------------------------------------------------------------------
// Calls that must be answered
// ---------------------------------------------------------------------------

/// The answer of a call that must be answered (the answer may allow or
/// deny); a refusal fails the test at the caller's line, with its status:
/// `answered(c.check(req).await)`.
#[track_caller]
pub fn answered<T>(res: Result<tonic::Response<T>, Status>) -> T {
    match res {
        Ok(answer) => answer.into_inner(),
        Err(status) => panic!("refused: {status:?}"),
    }
}

// ---------------------------------------------------------------------------
// In-process questions
// ---------------------------------------------------------------------------

/// Who an in-process question is asked for.
pub fn principal_ref(kind: PrincipalKind, id: &str) -> PrincipalRef {
    PrincipalRef {
        kind,
        id: id.to_owned(),
    }
}

/// The engine's question, with no context and no revision requirement.
pub fn question(
    tenant: &str,
    kind: PrincipalKind,
    who: &str,
    object: &str,
    action: &str,
) -> Question {
    Question {
        tenant: tenant.to_owned(),
        principal: principal_ref(kind, who),
        object: object.to_owned(),
        action: action.to_owned(),
        ctx: ActionContext::default(),
        min_revision: 0,
    }
}

/// An in-process BatchCheck answer as one reason per position (`None`:
/// allowed), once its bitmask, allowed count and denials agree.
#[track_caller]
pub fn reasons_by_position(answer: &BatchAnswer, len: usize) -> Vec<Option<Reason>> {
    let mut out: Vec<Option<Reason>> = vec![None; len];
    for &(pos, reason) in &answer.denials {
        assert!(out[pos as usize].is_none(), "position {pos} denied twice");
        out[pos as usize] = Some(reason);
    }
    for (pos, r) in out.iter().enumerate() {
        assert_eq!(answer.is_allowed(pos), r.is_none(), "bitmask at {pos}");
    }
    assert_eq!(
        answer.allowed_count as usize,
        out.iter().filter(|r| r.is_none()).count(),
        "allowed_count"
    );
    out
}

/// A demo user's question: what [`batch`] and [`check`] ask over the wire.
pub fn demo_question(who: &str, object: &str, action: &str) -> Question {
    question(DEMO_TENANT, PrincipalKind::User, who, object, action)
}

// ---------------------------------------------------------------------------
// One request through any RPC
// ---------------------------------------------------------------------------

/// Every RPC of the Authorizer, by name.
pub const EVERY_RPC: [&str; 6] = [
    "Check",
    "BatchCheck",
    "LookupRecords",
    "ObjectAccess",
    "RecordAccess",
    "Explain",
];
/// The RPCs that take an action.
pub const ACTION_RPCS: [&str; 4] = ["Check", "BatchCheck", "LookupRecords", "Explain"];

/// What the six RPCs have in common, so one bad tenant, principal, object,
/// action or context can be sent through each and must be refused alike.
#[derive(Clone, Debug)]
pub struct AnyRequest {
    pub tenant: String,
    pub principal: Option<pb::Principal>,
    pub object: String,
    pub action: String,
    pub context: Option<pb::ActionContext>,
    pub min_revision: u64,
    /// The record of the RPCs that take one.
    pub record: Uuid,
}

impl AnyRequest {
    /// `view` on demo Contact 1: valid for any demo user who exists.
    pub fn demo(principal: Option<pb::Principal>) -> AnyRequest {
        AnyRequest {
            tenant: DEMO_TENANT.to_owned(),
            principal,
            object: "contacts".to_owned(),
            action: "view".to_owned(),
            context: None,
            min_revision: 0,
            record: contact_id(1),
        }
    }

    /// The same request about `action` on `object`.
    pub fn on(self, object: &str, action: &str) -> AnyRequest {
        AnyRequest {
            object: object.to_owned(),
            action: action.to_owned(),
            ..self
        }
    }

    /// Sends the request through `rpc` (a name of [`EVERY_RPC`]); an error
    /// of LookupRecords may also arrive as the stream's first item.
    pub async fn send(&self, c: &mut AuthorizerClient<Channel>, rpc: &str) -> Result<(), Status> {
        let id = self.record.to_string();
        match rpc {
            "Check" => c
                .check(pb::CheckRequest {
                    context: self.context.clone(),
                    min_revision: self.min_revision,
                    tenant: self.tenant.clone(),
                    principal: self.principal.clone(),
                    ..check(None, &self.object, &self.action, &id)
                })
                .await
                .map(drop),
            "BatchCheck" => c
                .batch_check(pb::BatchCheckRequest {
                    context: self.context.clone(),
                    min_revision: self.min_revision,
                    tenant: self.tenant.clone(),
                    principal: self.principal.clone(),
                    ..batch(None, &self.object, &self.action, &[self.record])
                })
                .await
                .map(drop),
            "LookupRecords" => {
                let r = c
                    .lookup_records(pb::LookupRecordsRequest {
                        context: self.context.clone(),
                        min_revision: self.min_revision,
                        tenant: self.tenant.clone(),
                        principal: self.principal.clone(),
                        ..lookup(None, &self.object, &self.action)
                    })
                    .await;
                match r {
                    Ok(resp) => resp.into_inner().message().await.map(drop),
                    Err(e) => Err(e),
                }
            }
            "ObjectAccess" => c
                .object_access(pb::ObjectAccessRequest {
                    min_revision: self.min_revision,
                    tenant: self.tenant.clone(),
                    principal: self.principal.clone(),
                    ..object_access(None, &self.object)
                })
                .await
                .map(drop),
            "RecordAccess" => c
                .record_access(pb::RecordAccessRequest {
                    min_revision: self.min_revision,
                    tenant: self.tenant.clone(),
                    principal: self.principal.clone(),
                    ..record_access(None, &self.object, vec![id])
                })
                .await
                .map(drop),
            "Explain" => c
                .explain(explain_of(pb::CheckRequest {
                    context: self.context.clone(),
                    min_revision: self.min_revision,
                    tenant: self.tenant.clone(),
                    principal: self.principal.clone(),
                    ..check(None, &self.object, &self.action, &id)
                }))
                .await
                .map(drop),
            other => panic!("no RPC {other}"),
        }
    }

    /// Sends the request through each of `rpcs`: each must fail with `code`
    /// and a message naming every needle.
    pub async fn assert_refused(
        &self,
        c: &mut AuthorizerClient<Channel>,
        rpcs: &[&str],
        code: Code,
        needles: &[&str],
    ) {
        assert!(!rpcs.is_empty(), "no RPC to send through");
        for rpc in rpcs {
            assert_refused_as(rpc, self.send(c, rpc).await, code, needles);
        }
    }
}

// ---------------------------------------------------------------------------
// Status assertions
// ---------------------------------------------------------------------------

/// Asserts the status code and that the message names each of `needles`:
/// a refusal must say what to fix.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(res: Result<T, Status>, code: Code, needles: &[&str]) {
    assert_refused_as("the call", res, code, needles);
}

/// [`assert_status`], naming `what` was called in each failure.
#[track_caller]
fn assert_refused_as<T: std::fmt::Debug>(
    what: &str,
    res: Result<T, Status>,
    code: Code,
    needles: &[&str],
) {
    let status = match res {
        Ok(v) => panic!("{what}: expected {code:?} naming {needles:?}, got OK: {v:?}"),
        Err(s) => s,
    };
    assert_eq!(
        status.code(),
        code,
        "{what}: wrong code; message: {}",
        status.message()
    );
    for needle in needles {
        assert!(
            status.message().contains(needle),
            "{what}: message {:?} does not mention {needle:?}",
            status.message()
        );
    }
}

// ---------------------------------------------------------------------------
// Admin: bearer tokens
// ---------------------------------------------------------------------------

/// `message` with `authorization: Bearer <token>` (none for `None`), and a
/// 10 s deadline so a hung Admin call fails the test instead of stalling it.
pub fn authorized<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(10));
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}
