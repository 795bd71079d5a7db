//! Where data comes from: a snapshot file (YAML or JSON), the built-in demo
//! tenant or a generated one. Sources produce a validated [`crate::model::DataFile`]; indexing
//! is the index's job.

pub mod backoff;
pub mod changelog;
pub mod demo;
pub mod file;
pub mod generate;
pub mod nats;
pub mod postgres;
mod rng;
pub mod snapshot;

pub use file::{LoadError, load_file, load_file_bounded, parse_str};
