//! The index: interned record ids, roaring bitmaps of record facts, compiled
//! per-question allowed sets, and the snapshot that holds them.

pub mod change;
pub mod compile;
pub mod dense;
pub mod engine;
pub mod error;
pub mod explain;
pub mod ids;
pub mod narrow;
pub mod ord;
pub mod tenant;

pub use change::ApplyError;
pub use engine::{
    BatchAnswer, DEFAULT_MAX_BATCH, DEFAULT_MAX_CACHE_BYTES, Decision, Engine, PrincipalRef,
    Question, RecordHandles, Snapshot,
};
pub use error::QueryError;
pub use tenant::{PrincipalKind, TenantIndex};
