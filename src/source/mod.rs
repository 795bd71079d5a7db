//! Where data comes from: a snapshot file (YAML or JSON), the built-in demo
//! tenant or a generated one, PostgreSQL and NATS. Sources produce a
//! validated [`crate::model::DataFile`], or — where a whole tenant would
//! not fit beside its index — hand records one at a time to [`stream`],
//! which checks and indexes each as it comes.

pub mod backoff;
pub mod changelog;
pub mod demo;
pub mod file;
pub mod generate;
pub mod nats;
pub mod postgres;
mod rng;
pub mod snapshot;
pub mod stream;

pub use file::{LoadError, load_file, load_file_bounded, load_snapshot_file, parse_str};
