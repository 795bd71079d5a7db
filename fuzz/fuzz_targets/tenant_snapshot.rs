//! Tenant snapshots as a NATS-mode sidecar reads them from the object store
//! (src/source/snapshot.rs): any bytes, e.g. a damaged or forged object.
//!
//! - `decode` and `meta` never panic: they refuse or return a tenant;
//! - a decoded tenant encodes back to bytes that decode to the same tenant
//!   and header (the relay and the sidecar agree on the format);
//! - validating a decoded tenant (what the sidecar does next) never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use permd::model::DataFile;
use permd::model::validate::validate;
use permd::source::snapshot::{decode, encode, meta};

fuzz_target!(|data: &[u8]| {
    let header = meta(data);
    let Ok((m, tenant)) = decode(data) else {
        return;
    };
    assert_eq!(header.as_ref().ok(), Some(&m), "meta and decode agree");
    let again = encode(&tenant, m.revision, m.stream_seq);
    let (m2, back) = decode(&again).expect("a re-encoded snapshot decodes");
    assert_eq!(back, tenant);
    assert_eq!((m2.revision, m2.stream_seq, m2.records), (m.revision, m.stream_seq, m.records));
    let _ = validate(&DataFile {
        tenants: vec![tenant],
    });
});
