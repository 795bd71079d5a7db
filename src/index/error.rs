//! Why a question cannot be answered. Each message says what to fix; the
//! server maps the variants to gRPC codes in one place.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum QueryError {
    #[error("tenant '{0}' not found")]
    UnknownTenant(String),
    #[error("{kind} '{id}' not found in tenant '{tenant}'")]
    UnknownPrincipal {
        kind: &'static str,
        id: String,
        tenant: String,
    },
    #[error("unknown object '{object}'; objects of tenant '{tenant}' are: {valid}")]
    UnknownObject {
        object: String,
        tenant: String,
        valid: String,
    },
    /// The message says what to ask instead (see `Action::unknown`).
    #[error("{message}")]
    UnknownAction { message: String },
    #[error("action '{action}' exists only on contacts, not on '{object}'")]
    ActionNotOnObject {
        action: &'static str,
        object: String,
    },
    #[error("unknown field '{field}' on {object}; fields are: {valid}")]
    UnknownField {
        field: String,
        object: String,
        valid: String,
    },
    #[error("{0}")]
    InvalidContext(String),
    #[error(
        "batch of {size} records exceeds the limit of {limit}; split it into batches of at most {limit}"
    )]
    BatchTooLarge { size: usize, limit: usize },
    #[error("action '{0}' acts on the object, not on records: use Check without record_id")]
    RecordLessAction(&'static str),
    #[error("action '{0}' needs a record_id")]
    RecordRequired(&'static str),
    #[error("this server is at revision {current}; the request needs min_revision {wanted}")]
    RevisionNotReached { current: u64, wanted: u64 },
    #[error(
        "tenant '{tenant}' is held at revision {held} by a change it cannot apply ({reason}); the request needs min_revision {wanted}: fix that row, and the tenant catches up by itself"
    )]
    TenantHeld {
        tenant: String,
        held: u64,
        wanted: u64,
        reason: String,
    },
    #[error(
        "record_handles were not given out for object '{object}' of tenant '{tenant}' by this permd's index as it is now: they are another object's or tenant's, another permd's (each sidecar has its own), or from before this permd restarted or reloaded the tenant; send the ids again with return_handles and use the new handles"
    )]
    StaleHandles { tenant: String, object: String },
    #[error("internal error: {0}")]
    Internal(&'static str),
}
