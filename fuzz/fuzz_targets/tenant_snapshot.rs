//! Tenant snapshots as a NATS-mode sidecar reads them from the object store
//! (src/source/snapshot.rs): any bytes, e.g. a damaged or forged object.
//!
//! - `decode` and `meta` never panic: they refuse or return a tenant, both
//!   on the bytes as given and with the checksum recomputed (`reseal`), so
//!   mutations reach the decoder behind the checksum;
//! - decoded as a sidecar downloads it, in pieces (of a size taken from the
//!   input), a snapshot gives what it gives whole: the same tenant, or a
//!   refusal (never a tenant from bytes the whole decoder refuses);
//! - validating a decoded tenant (what the sidecar does next) never panics;
//! - a decoded tenant that validates encodes back to bytes that decode to
//!   the same tenant as the newest format carries it (Contacts without
//!   their addresses, `tenant_as_carried`) and the same header (the relay and the
//!   sidecar agree).

#![no_main]

use libfuzzer_sys::fuzz_target;
use permd::model::DataFile;
use permd::model::validate::validate;
use permd::source::snapshot::{
    Piece, decode, encode, meta, open_stream, reseal, tenant_as_carried,
};

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    reseal(&mut sealed);
    check(&sealed);
});

fn check(data: &[u8]) {
    let header = meta(data);
    let whole = decode(data);
    let piece = data.first().map_or(1, |b| usize::from(*b % 64) + 1);
    let pieces: Vec<Piece> = data.chunks(piece).map(|c| Ok(c.to_vec())).collect();
    let streamed = open_stream(pieces.into_iter(), data.len()).and_then(|(m, mut tenant, records)| {
        tenant.records = records.collect::<Result<_, _>>()?;
        Ok((m, tenant))
    });
    match (&whole, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "whole and in pieces of {piece}"),
        (Err(_), Err(_)) => {}
        _ => panic!("whole: {:?}, in pieces of {piece}: {:?}", whole.is_ok(), streamed.is_ok()),
    }
    let Ok((m, tenant)) = whole else {
        return;
    };
    assert_eq!(header.as_ref().ok(), Some(&m), "meta and decode agree");
    // A sidecar serves only what validates; what it serves must survive
    // the relay's encoding unchanged.
    let file = DataFile {
        tenants: vec![tenant],
    };
    if !validate(&file).errors.is_empty() {
        return;
    }
    let tenant = &file.tenants[0];
    let again = encode(tenant, m.revision, m.stream_seq);
    let (m2, back) = decode(&again).expect("a re-encoded snapshot decodes");
    assert_eq!(back, tenant_as_carried(tenant));
    assert_eq!((m2.revision, m2.stream_seq, m2.records), (m.revision, m.stream_seq, m.records));
}
