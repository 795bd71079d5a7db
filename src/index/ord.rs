//! The ordinal types every part of the index speaks: a record's dense
//! ordinal inside its object, a user's index inside its tenant, and the
//! ordinal that means "no such record". The id table, the dense sets and the
//! tenant index all depend on this module and on nothing of each other's.

/// Dense ordinal of a record inside its tenant and object (`0..n`).
pub type RecordOrd = u32;
/// Index of a user inside its tenant.
pub type UserIdx = u32;
/// The ordinal a batch lookup gives an unknown id (and an empty id-table
/// slot's): never a real record's.
pub const UNKNOWN: RecordOrd = RecordOrd::MAX;
