//! permd: a gRPC authorization sidecar for a CRM's permission model.
//!
//! How a request flows:
//!
//! 1. [`server`] receives a gRPC request (`permd.v1.Authorizer`), validates it
//!    once at the edge ([`server::convert`]) and turns it into a domain
//!    [`index::Question`]. Bad input becomes a gRPC status there.
//! 2. [`index::Engine`] resolves tenant, principal, object and action
//!    against the current [`index::Snapshot`] (an immutable `Arc`, swapped
//!    whole on change, so readers never wait).
//! 3. The question is compiled ([`index::compile`]) into an allowed roaring
//!    bitmap — scope ∩ live ∩ state gates — and cached by revision. A batch
//!    is then one interned-id lookup and one bitmap probe per record; only
//!    denied records walk the rule layers for their reason.
//! 4. The answer (bitmask, reasons, field mask, revision) goes back through
//!    [`server`].
//!
//! Where things live (dependencies point down this list, never up):
//! - [`model`]: the permission model of docs/model.md as data — the snapshot
//!   format, levels, actions and what they need, reasons. Pure.
//! - [`telemetry`]: logs, traces, and every metric name with its recording
//!   helpers ([`telemetry::metrics`]), used by the index, sources and server.
//! - [`index`]: the hot path.
//!   - [`index::ord`]: the ordinal types the rest of the index shares;
//!   - [`index::ids`]: UUID → ordinal interning; [`index::dense`]: bitsets;
//!     [`index::narrow`]: per-record numbers in the fewest bytes;
//!   - [`index::tenant`]: one tenant's sets (objects, Contact state,
//!     principals and grants) and how they are built;
//!   - [`index::compile`]: a question compiled to an allowed set;
//!   - [`index::Engine`]: the published snapshot, question resolution, the
//!     compiled-answer cache, the query entry points and change
//!     application, one file each under `index/engine/`;
//!   - [`index::change`]: a tenant after a change; [`index::explain`]: why.
//! - [`source`]: data files, the built-in demo tenant, generated tenants,
//!   PostgreSQL (schema, load, bootstrap, change feed).
//! - [`net`]: accepting connections within bounds (gRPC and metrics ports).
//! - [`server`]: tonic services, validation, limits, TLS, error mapping,
//!   the `/metrics` endpoint.
//! - [`cli`]: the `permd` command line.

pub mod cli;
pub mod index;
pub mod memory;
pub mod model;
pub mod net;
pub mod pb;
pub mod server;
pub mod source;
pub mod telemetry;
