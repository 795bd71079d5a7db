//! The generated gRPC types, behind one door (`crate::pb`). The rest of the
//! crate converts to domain types at the server edge.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![allow(missing_docs, clippy::doc_markdown, clippy::large_enum_variant)]

tonic::include_proto!("permd.v1");

/// Encoded descriptors of `permd.v1`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("permd_descriptor");
