//! The one place where domain errors become gRPC statuses.

use tonic::Status;

use crate::index::QueryError;

impl From<QueryError> for Status {
    fn from(e: QueryError) -> Status {
        let message = e.to_string();
        match e {
            QueryError::UnknownTenant(_) | QueryError::UnknownPrincipal { .. } => {
                Status::not_found(message)
            }
            QueryError::UnknownObject { .. }
            | QueryError::UnknownAction { .. }
            | QueryError::ActionNotOnObject { .. }
            | QueryError::UnknownField { .. }
            | QueryError::InvalidContext(_)
            | QueryError::BatchTooLarge { .. }
            | QueryError::RecordLessAction(_)
            | QueryError::RecordRequired(_) => Status::invalid_argument(message),
            QueryError::RevisionNotReached { .. }
            | QueryError::TenantHeld { .. }
            | QueryError::StaleHandles { .. } => Status::failed_precondition(message),
            QueryError::Internal(_) => Status::internal(message),
        }
    }
}
