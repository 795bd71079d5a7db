//! The permission model of docs/model.md as plain data: what a tenant holds
//! (the snapshot format), access levels, actions and what each one needs,
//! and the deny reasons. Pure: no I/O, no tonic, no tokio.

pub mod action;
pub mod change;
pub mod data;
pub mod level;
pub mod migrate;
pub mod validate;

pub use action::{Action, ActionContext, Channel, Control, FieldNeed, Gate, Reason, Toggle};
pub use data::{DataFile, EmailStatus};
pub use level::{AccessLevel, FieldLevel};
