//! Changelog rows as the follower reads them from PostgreSQL: any entity
//! name, op, key, tenant and payload (`to_jsonb(row)` of any shape; a
//! writer bypassing permd can put anything there). Input is text, one field
//! per line: entity, op, key, tenant, then the payload (the rest).
//!
//! - `decode_change` never panics; it refuses or returns a change;
//! - a decoded upsert encodes back to a row that decodes to the same
//!   entity (the bootstrap and the feed read rows the same way);
//! - checking the change against the demo tenant never panics.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use permd::index::{Engine, Snapshot};
use permd::model::change::ChangeOp;
use permd::source::demo::demo_data;
use permd::source::postgres::decode_change;
use permd::source::postgres::rows::{decode, encode};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(Snapshot::build(&demo_data(), 1), 1000))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(5, '\n');
    let entity = lines.next().unwrap_or_default();
    let op = lines.next().unwrap_or_default();
    let key = lines.next().unwrap_or_default();
    let tenant = lines.next().unwrap_or_default();
    let payload = lines.next();
    let Ok(change) = decode_change(tenant, entity, key, op, payload) else {
        return;
    };
    if let ChangeOp::Upsert(entity) = &change.op {
        let row = encode(&change.tenant, entity);
        let (back_tenant, back) = decode(entity.kind(), row.clone())
            .unwrap_or_else(|e| panic!("re-encoded row does not decode: {e}: {row}"));
        assert_eq!(back_tenant, change.tenant);
        assert_eq!(&back, entity, "round trip changed the entity: {row}");
    }
    let _ = engine().check_changes(std::slice::from_ref(&change));
});
