//! Request decoding: a request-shaped value built by `arbitrary` goes
//! through the server's edge validation (`permd::server::convert`) and then
//! every engine entry point, against the demo tenant (indexed once).
//!
//! Invariants: nothing panics; `convert::parse_uuid` (SIMD) agrees with
//! `uuid::Uuid::try_parse` on every string; `string_ids` / `packed_ids`
//! decode exactly what they are given; a successful BatchCheck has
//! `allowed_count + denials == n` and a bitmask of `ceil(n / 8)` bytes; Check
//! and RecordAccess agree with it.
//!
//! Names (tenant, principal, object, action, list, field, status) are either
//! picked from the demo's vocabulary or free text, so the fuzzer reaches past
//! "unknown tenant". Ids are free text, or a demo/random UUID in one of its
//! textual forms with an optional mutation, so the parser sees near-misses.

#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use permd::index::{DEFAULT_MAX_BATCH, Engine, Snapshot};
use permd::pb;
use permd::server::convert;
use time::OffsetDateTime;
use uuid::Uuid;

const TENANTS: &[&str] = &["demo", "", "Demo", "demo\0"];
const PRINCIPALS: &[&str] = &[
    "ada",
    "alice",
    "bob",
    "erin",
    "carol",
    "dave",
    "warehouse-sync",
    "welcome-series",
    "",
];
const OBJECTS: &[&str] = &["contacts", "companies", "deals", "", "Contacts"];
const ACTIONS: &[&str] = &[
    "view",
    "edit",
    "create",
    "archive",
    "unarchive",
    "view_archived",
    "export",
    "bulk_export",
    "upload",
    "bulk_change_field_values",
    "bulk_archive",
    "modify_automation",
    "bulk_modify_automation",
    "send_single_message",
    "bulk_send_email",
    "bulk_send_survey",
    "bulk_send_text",
    "bulk_change_tags",
    "team_associations",
    "subscription_lists",
    "bulk_manage_subscription",
    "view_timeline",
    "",
];
const LISTS: &[&str] = &["newsletter", "product-updates", ""];
const FIELDS: &[&str] = &[
    "email",
    "email_status",
    "mobile_phone",
    "tags",
    "timezone",
    "birthday",
    "first_name",
    "last_name",
    "job_title",
    "sales_team",
    "company",
    "name",
    "amount",
    "*",
    "",
];
const STATUSES: &[&str] = &[
    "",
    "not_opted_in",
    "opted_in",
    "opted_out",
    "unsubscribed_all",
    "suppressed",
    "SUPPRESSED",
];

/// A name: one of a vocabulary, or anything.
#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Free(String),
}

impl Name {
    fn pick(&self, vocabulary: &[&str]) -> String {
        match self {
            Name::Known(i) => vocabulary
                .get(usize::from(*i) % vocabulary.len())
                .copied()
                .unwrap_or_default()
                .to_owned(),
            Name::Free(s) => s.clone(),
        }
    }
}

/// A record id as a client might write it.
#[derive(Arbitrary, Debug)]
enum IdText {
    Free(String),
    Demo { kind: u8, n: u16, form: Form },
    Any { value: u128, form: Form },
}

#[derive(Arbitrary, Debug)]
struct Form {
    style: u8,
    upper: bool,
    /// Overwrite one byte of the text (near-misses).
    edit: Option<(u8, u8)>,
    /// Cut the text short or pad it.
    cut: Option<u8>,
    pad: Option<String>,
}

impl IdText {
    fn text(&self) -> String {
        let (id, form) = match self {
            IdText::Free(s) => return s.clone(),
            IdText::Demo { kind, n, form } => {
                let n = u64::from(*n);
                let id = match kind % 3 {
                    0 => permd::source::demo::contact_id(n),
                    1 => permd::source::demo::company_id(n),
                    _ => permd::source::demo::deal_id(n),
                };
                (id, form)
            }
            IdText::Any { value, form } => (Uuid::from_u128(*value), form),
        };
        let mut s = match form.style % 4 {
            0 => id.hyphenated().to_string(),
            1 => id.simple().to_string(),
            2 => id.braced().to_string(),
            _ => id.urn().to_string(),
        };
        if form.upper {
            s = s.to_uppercase();
        }
        let mut bytes = s.into_bytes();
        if let Some((at, b)) = form.edit {
            let len = bytes.len();
            if let Some(slot) = bytes.get_mut(usize::from(at) % len.max(1)) {
                *slot = b;
            }
        }
        if let Some(cut) = form.cut {
            bytes.truncate(usize::from(cut));
        }
        if let Some(pad) = &form.pad {
            bytes.extend_from_slice(pad.as_bytes());
        }
        // Keep it a String as the wire would: invalid UTF-8 never reaches
        // the server (prost refuses it), so replace it.
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[derive(Arbitrary, Debug)]
struct Context {
    channel: i32,
    transactional: bool,
    subscription_list: Name,
    fields: Vec<Name>,
    target_email_status: Name,
}

#[derive(Arbitrary, Debug)]
struct Request {
    tenant: Name,
    principal: Option<(i32, Name)>,
    object: Name,
    action: Name,
    context: Option<Context>,
    min_revision: u64,
    record_id: Option<IdText>,
    ids: Vec<IdText>,
    packed: Vec<u8>,
    /// Packed ids made from demo ordinals, so packed batches hit records.
    packed_demo: Vec<u16>,
    /// Seconds after the demo's expired soft bounces.
    now_offset: u32,
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::new(
            Snapshot::build(&permd::source::demo::demo_data(), 1),
            DEFAULT_MAX_BATCH,
        )
    })
}

fuzz_target!(|req: Request| {
    let engine = engine();
    // 2024-01-01 (when the demo's expired soft bounces end) plus up to ~136 years.
    let now = OffsetDateTime::from_unix_timestamp(1_704_067_200 + i64::from(req.now_offset))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);

    // The wire types, as tonic would hand them over.
    let principal = req.principal.as_ref().map(|(kind, id)| pb::Principal {
        kind: *kind,
        id: id.pick(PRINCIPALS),
    });
    let context = req.context.as_ref().map(|c| pb::ActionContext {
        channel: c.channel,
        transactional: c.transactional,
        subscription_list: c.subscription_list.pick(LISTS),
        fields: c.fields.iter().map(|f| f.pick(FIELDS)).collect(),
        target_email_status: c.target_email_status.pick(STATUSES),
    });
    let tenant = req.tenant.pick(TENANTS);
    let object = req.object.pick(OBJECTS);
    let action = req.action.pick(ACTIONS);

    // String ids: the SIMD parser agrees with the uuid crate, id by id.
    let texts: Vec<String> = req.ids.iter().map(IdText::text).collect();
    for s in &texts {
        let fast = convert::parse_uuid(s);
        let reference = Uuid::try_parse(s).ok();
        if let Some(id) = fast {
            assert_eq!(
                Some(id),
                reference,
                "parse_uuid accepted {s:?} as {id}, uuid::Uuid::try_parse says {reference:?}"
            );
        }
        assert_eq!(
            fast, reference,
            "parse_uuid refused {s:?}, uuid::Uuid::try_parse accepts it"
        );
    }
    let string_ids = convert::string_ids("record_ids.ids", &texts);
    match &string_ids {
        Ok(ids) => {
            assert_eq!(ids.len(), texts.len());
            for (id, s) in ids.iter().zip(&texts) {
                assert_eq!(Some(*id), convert::parse_uuid(s));
            }
        }
        Err(status) => {
            assert_eq!(status.code(), tonic_code_invalid_argument());
            assert!(texts.iter().any(|s| convert::parse_uuid(s).is_none()));
        }
    }

    // Packed ids: whole 16-byte ids only, byte for byte.
    let mut packed = req.packed.clone();
    for n in &req.packed_demo {
        packed.extend_from_slice(permd::source::demo::contact_id(u64::from(*n)).as_bytes());
    }
    let packed_ids = convert::packed_ids("packed_record_ids.uuids", &packed);
    match &packed_ids {
        Ok(ids) => {
            assert_eq!(packed.len() % 16, 0);
            assert_eq!(ids.len(), packed.len() / 16);
            let back: Vec<u8> = ids.iter().flat_map(|id| *id.as_bytes()).collect();
            assert_eq!(back, packed);
        }
        Err(status) => {
            assert_eq!(status.code(), tonic_code_invalid_argument());
            assert_ne!(packed.len() % 16, 0);
        }
    }

    let record = req.record_id.as_ref().map(IdText::text);
    if let Some(s) = &record {
        let _ = convert::uuid("record_id", s);
    }

    // The question, as every record RPC builds it.
    let q = convert::question(
        &tenant,
        principal.as_ref(),
        &object,
        &action,
        context.as_ref(),
        req.min_revision,
        &convert::Bounds::default(),
    );
    // ObjectAccess / RecordAccess validate only tenant and principal.
    if let (Ok(t), Ok(p)) = (
        convert::tenant(&tenant, &convert::Bounds::default()),
        convert::principal(principal.as_ref(), &convert::Bounds::default()),
    ) {
        let object_filter = (!object.is_empty()).then_some(object.as_str());
        let _ = engine.object_access(&t, &p, object_filter, req.min_revision);
        if let Ok(ids) = &string_ids {
            let flags = engine.record_access(&t, &p, &object, ids, req.min_revision, now);
            if let Ok((flags, _)) = &flags {
                assert_eq!(flags.len(), ids.len());
                for (f, id) in flags.iter().zip(ids) {
                    assert_eq!(f.record_id, *id);
                    assert!(!f.edit || f.view);
                    assert!(!f.remove || f.view);
                }
            }
        }
    }
    if verbose() {
        eprintln!(
            "{tenant:?} {principal:?} {object:?} {action:?} {context:?}: question {}, string ids {}, packed ids {}",
            outcome(&q),
            outcome(&string_ids),
            outcome(&packed_ids)
        );
    }
    let Ok(q) = q else {
        return;
    };

    for ids in [string_ids.as_ref().ok(), packed_ids.as_ref().ok()]
        .into_iter()
        .flatten()
    {
        let batch = engine.batch_check(&q, ids, now);
        if verbose() {
            eprintln!(
                "  batch of {}: {:?}",
                ids.len(),
                batch.as_ref().map(|b| b.allowed_count)
            );
        }
        let Ok(b) = batch else {
            continue;
        };
        let n = ids.len();
        assert_eq!(
            b.allowed_count as usize + b.denials.len(),
            n,
            "allowed_count + denials != number of ids"
        );
        assert_eq!(
            b.allowed.len(),
            n.div_ceil(8),
            "bitmask length != ceil(n/8)"
        );
        let set: usize = b.allowed.iter().map(|w| w.count_ones() as usize).sum();
        assert_eq!(
            set, b.allowed_count as usize,
            "bitmask popcount != allowed_count"
        );
        let mut last = None;
        for (p, _) in &b.denials {
            assert!((*p as usize) < n);
            assert!(last < Some(*p), "denials out of request order");
            assert!(!b.is_allowed(*p as usize));
            last = Some(*p);
        }
        // A few positions one at a time.
        for (i, id) in ids.iter().enumerate().take(8) {
            let d = engine
                .check(&q, Some(*id), now)
                .unwrap_or_else(|e| panic!("BatchCheck answered, Check refused: {e}"));
            let batch_reason = b
                .denials
                .iter()
                .find(|(p, _)| *p as usize == i)
                .map(|(_, r)| *r);
            assert_eq!(d.reason, batch_reason, "Check vs BatchCheck at {i}");
        }
    }

    let record_uuid = record.as_deref().and_then(convert::parse_uuid);
    if let Ok(d) = engine.check(&q, record_uuid, now) {
        let _ = convert::reason(d.reason);
        let _ = convert::field_mask(&d.field_mask);
        if let Ok(e) = engine.explain(&q, record_uuid, now) {
            assert_eq!(e.reason, d.reason, "Explain vs Check");
        }
    }
    if let Ok((found, revision)) = engine.lookup(&q, now) {
        assert_eq!(revision, 1);
        // No more than the object has (10,000 Contacts is the largest).
        assert!(found.len() <= 10_000);
    }
});

/// `PERMD_FUZZ_VERBOSE=1` prints each request and how far it got.
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("PERMD_FUZZ_VERBOSE").is_some())
}

fn outcome<T, E: std::fmt::Display>(r: &Result<T, E>) -> String {
    match r {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("refused ({e})"),
    }
}

fn tonic_code_invalid_argument() -> tonic::Code {
    tonic::Code::InvalidArgument
}
