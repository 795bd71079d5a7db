//! The test kit: what several test files need, written once. Each test file
//! includes it with `mod common;` and uses the parts it needs, so the kit
//! allows dead code (every file uses a different part).
//!
//! - [`server`]: permd served in process or as a child process on a free
//!   loopback port, with readiness; clients and bounded test bodies.
//! - [`skip`]: the skip-or-fail rule for optional runtimes (Python, Node,
//!   Helm, PostgreSQL): a printed `SKIPPED` notice on a laptop, a failure
//!   under `CI`.
//! - [`requests`]: request builders (wire and in-process), one request
//!   through every RPC, answer and refusal assertions, bearer-token
//!   metadata.
//! - [`pg`]: a PostgreSQL database of its own per test.
//! - [`tenants`]: the generated-tenant strategy (one generator with knobs)
//!   used by the property, isolation and change tests.
//! - [`changes`]: applying changes to a data file, the slow obvious way.
#![allow(dead_code, unused_imports)]

pub mod changes;
pub mod pg;
pub mod requests;
pub mod server;
pub mod skip;
pub mod tenants;
