//! Where data comes from: a snapshot file (YAML or JSON) or the built-in demo
//! tenant. Sources produce a validated [`crate::model::DataFile`]; indexing
//! is the index's job.

pub mod demo;
pub mod file;

pub use file::{LoadError, load_file, parse_str};
