//! Request validation and conversion between the wire types and the domain:
//! everything a request says is parsed here once, with errors that name the
//! field (and position) to fix.

use tonic::Status;
use uuid::Uuid;

use crate::index::engine::{FieldMask, PrincipalRef, Question};
use crate::index::{PrincipalKind, RecordHandles};
use crate::model::data::EmailStatus;
use crate::model::{ActionContext, Channel, FieldLevel, Reason};
use crate::pb;
use crate::telemetry::metrics::record_refusal;

/// Bounds on what a request may name, checked before any work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Longest tenant, principal id, object, action, list or field name.
    pub max_name_bytes: usize,
    /// Most `context.fields`.
    pub max_context_fields: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_name_bytes: super::limits::DEFAULT_MAX_NAME_BYTES,
            max_context_fields: super::limits::DEFAULT_MAX_CONTEXT_FIELDS,
        }
    }
}

impl From<&super::Limits> for Bounds {
    fn from(l: &super::Limits) -> Self {
        Bounds {
            max_name_bytes: l.max_name_bytes,
            max_context_fields: l.max_context_fields,
        }
    }
}

impl Bounds {
    /// A name within `max_name_bytes`; the error quotes only its start.
    pub fn name<'a>(&self, field: &str, value: &'a str) -> Result<&'a str, Status> {
        if value.len() > self.max_name_bytes {
            record_refusal("max_name_bytes");
            return Err(Status::invalid_argument(format!(
                "{field} is {} bytes, above the limit of {} (max_name_bytes): {}",
                value.len(),
                self.max_name_bytes,
                quote(value)
            )));
        }
        Ok(value)
    }
}

/// At most the first 100 characters of a value the caller sent, quoted,
/// with how much was left out: an error never echoes a whole input.
pub fn quote(value: &str) -> String {
    const SHOWN: usize = 100;
    match value.char_indices().nth(SHOWN) {
        Some((at, _)) => format!(
            "'{}…' ({} bytes)",
            value.get(..at).unwrap_or_default(),
            value.len()
        ),
        None => format!("'{value}'"),
    }
}

pub fn tenant(tenant: &str, bounds: &Bounds) -> Result<String, Status> {
    if tenant.is_empty() {
        return Err(Status::invalid_argument("tenant is required"));
    }
    Ok(bounds.name("tenant", tenant)?.to_owned())
}

pub fn principal(p: Option<&pb::Principal>, bounds: &Bounds) -> Result<PrincipalRef, Status> {
    let p = p.ok_or_else(|| Status::invalid_argument("principal is required: {kind, id}"))?;
    if p.id.is_empty() {
        return Err(Status::invalid_argument("principal.id is required"));
    }
    let kind = match pb::principal::Kind::try_from(p.kind) {
        Ok(pb::principal::Kind::Unspecified | pb::principal::Kind::User) => PrincipalKind::User,
        Ok(pb::principal::Kind::Integration) => PrincipalKind::Integration,
        Ok(pb::principal::Kind::Automation) => PrincipalKind::Automation,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "principal.kind {} is unknown; use USER, INTEGRATION or AUTOMATION",
                p.kind
            )));
        }
    };
    Ok(PrincipalRef {
        kind,
        id: bounds.name("principal.id", &p.id)?.to_owned(),
    })
}

/// The action context; `fields` deduplicated (first mention kept): they
/// are a set, and a repeated one would only cost memory.
pub fn context(ctx: Option<&pb::ActionContext>, bounds: &Bounds) -> Result<ActionContext, Status> {
    let Some(ctx) = ctx else {
        return Ok(ActionContext::default());
    };
    let channel = match pb::Channel::try_from(ctx.channel) {
        Ok(pb::Channel::Unspecified) => None,
        Ok(pb::Channel::Email) => Some(Channel::Email),
        Ok(pb::Channel::Text) => Some(Channel::Text),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "context.channel {} is unknown; use EMAIL or TEXT",
                ctx.channel
            )));
        }
    };
    let target_email_status = match ctx.target_email_status.as_str() {
        "" => None,
        s => Some(EmailStatus::parse(s).ok_or_else(|| {
            Status::invalid_argument(format!(
                "context.target_email_status {} is unknown; use one of: {}",
                quote(s),
                EmailStatus::ALL.map(EmailStatus::as_str).join(", ")
            ))
        })?),
    };
    if ctx.fields.len() > bounds.max_context_fields {
        record_refusal("max_context_fields");
        return Err(Status::invalid_argument(format!(
            "context.fields has {} fields, above the limit of {} (max_context_fields)",
            ctx.fields.len(),
            bounds.max_context_fields
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(ctx.fields.len());
    let mut fields = Vec::with_capacity(ctx.fields.len());
    for (i, field) in ctx.fields.iter().enumerate() {
        bounds.name(&format!("context.fields[{i}]"), field)?;
        if seen.insert(field.as_str()) {
            fields.push(field.clone());
        }
    }
    let list = bounds.name("context.subscription_list", &ctx.subscription_list)?;
    Ok(ActionContext {
        channel,
        transactional: ctx.transactional,
        subscription_list: (!list.is_empty()).then(|| list.to_owned()),
        fields,
        target_email_status,
    })
}

pub fn question(
    tenant_id: &str,
    p: Option<&pb::Principal>,
    object: &str,
    action: &str,
    ctx: Option<&pb::ActionContext>,
    min_revision: u64,
    bounds: &Bounds,
) -> Result<Question, Status> {
    Ok(Question {
        tenant: tenant(tenant_id, bounds)?,
        principal: principal(p, bounds)?,
        object: bounds.name("object", object)?.to_owned(),
        action: bounds.name("action", action)?.to_owned(),
        ctx: context(ctx, bounds)?,
        min_revision,
    })
}

pub fn uuid(field: &str, s: &str) -> Result<Uuid, Status> {
    parse_uuid(s).ok_or_else(|| not_a_uuid(field, s))
}

/// Parses a UUID in any of its textual forms (hyphenated, simple, braced,
/// urn; either case). SIMD where the CPU has it: at ~6 ns instead of ~25 ns
/// per id, parsing no longer dominates a BatchCheck of string ids.
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    use uuid_simd::UuidExt;
    // uuid-simd refuses a few forms the uuid crate reads (an upper-case
    // `URN:UUID:` prefix, found by fuzzing); only refusals pay for the
    // second parser.
    Uuid::parse(s.as_bytes())
        .ok()
        .or_else(|| Uuid::try_parse(s).ok())
}

fn not_a_uuid(field: &str, s: &str) -> Status {
    Status::invalid_argument(format!("{field}: {} is not a UUID", quote(s)))
}

/// Decodes string ids, naming the first malformed position.
pub fn string_ids(field: &str, ids: &[String]) -> Result<Vec<Uuid>, Status> {
    // A plain loop: collecting `Result<Uuid, Status>` moves a Status-sized
    // value per id, which costs more than parsing the id.
    let mut out = Vec::with_capacity(ids.len());
    for (i, s) in ids.iter().enumerate() {
        match parse_uuid(s) {
            Some(id) => out.push(id),
            None => return Err(not_a_uuid(&format!("{field}[{i}]"), s)),
        }
    }
    Ok(out)
}

/// Decodes packed 16-byte ids.
pub fn packed_ids(field: &str, bytes: &[u8]) -> Result<Vec<Uuid>, Status> {
    if !bytes.len().is_multiple_of(16) {
        return Err(Status::invalid_argument(format!(
            "{field}: {} bytes is not a whole number of 16-byte UUIDs (the last one has {} bytes)",
            bytes.len(),
            bytes.len() % 16
        )));
    }
    Ok(bytes
        .chunks_exact(16)
        .map(|c| Uuid::from_bytes(<[u8; 16]>::try_from(c).unwrap_or_default()))
        .collect())
}

/// Handles as BatchCheck gave them out: 4 bytes each, little-endian.
pub fn handles(field: &str, h: &pb::RecordHandles) -> Result<RecordHandles, Status> {
    if !h.ordinals.len().is_multiple_of(4) {
        return Err(Status::invalid_argument(format!(
            "{field}.ordinals: {} bytes is not a whole number of 4-byte handles (send them as BatchCheck returned them)",
            h.ordinals.len()
        )));
    }
    Ok(RecordHandles {
        space: h.space,
        ords: h
            .ordinals
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(<[u8; 4]>::try_from(c).unwrap_or([0xff; 4])))
            .collect(),
    })
}

/// The handles of an answer, as the wire carries them.
pub fn to_handles(h: &RecordHandles) -> pb::RecordHandles {
    pb::RecordHandles {
        space: h.space,
        ordinals: h.ords.iter().flat_map(|o| o.to_le_bytes()).collect(),
    }
}

/// The denials of an answer as `PackedDenials`: positions as little-endian
/// u32s, reasons one byte each (`Reason` is `repr(u8)`, its numbers the
/// proto's).
pub fn packed_denials(denials: &[(u32, Reason)]) -> pb::PackedDenials {
    let mut positions = Vec::with_capacity(denials.len() * 4);
    let mut reasons = Vec::with_capacity(denials.len());
    for (position, reason) in denials {
        positions.extend_from_slice(&position.to_le_bytes());
        reasons.push(*reason as u8);
    }
    pb::PackedDenials { positions, reasons }
}

pub fn reason(r: Option<Reason>) -> i32 {
    r.map_or(0, |r| r as i32)
}

pub fn field_mask(mask: &FieldMask) -> pb::FieldMask {
    pb::FieldMask {
        fields: mask
            .iter()
            .map(|(name, level)| {
                let level = match level {
                    FieldLevel::None => pb::FieldLevel::None,
                    FieldLevel::View => pb::FieldLevel::View,
                    FieldLevel::Edit => pb::FieldLevel::Edit,
                };
                (name.clone(), level as i32)
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn fast_uuid_parse_agrees_with_the_uuid_crate(s in "[0-9a-fA-F-]{30,40}|[ -~]{0,40}") {
            prop_assert_eq!(parse_uuid(&s), Uuid::try_parse(&s).ok());
        }

        #[test]
        fn every_uuid_round_trips_in_every_form(v: u128) {
            let id = Uuid::from_u128(v);
            let forms = [
                id.hyphenated().to_string(),
                id.hyphenated().to_string().to_uppercase(),
                id.simple().to_string(),
                id.braced().to_string(),
                id.urn().to_string(),
            ];
            for form in forms {
                prop_assert_eq!(parse_uuid(&form), Some(id));
            }
        }
    }

    #[test]
    fn an_upper_case_urn_prefix_is_read_as_the_uuid_crate_reads_it() {
        let s = "URN:UUID:D0000000-0000-4000-8000-00000000FF61";
        assert_eq!(parse_uuid(s), Uuid::try_parse(s).ok());
        assert!(parse_uuid(s).is_some());
    }

    #[test]
    fn quotes_stop_after_a_hundred_characters_on_a_char_boundary() {
        assert_eq!(quote("acme"), "'acme'");
        let long = "é".repeat(15_000);
        let q = quote(&long);
        assert!(q.starts_with(&format!("'{}…'", "é".repeat(100))), "{q}");
        assert!(q.ends_with("(30000 bytes)"), "{q}");
    }

    #[test]
    fn names_and_context_are_bounded_and_fields_deduplicated() {
        let bounds = Bounds {
            max_name_bytes: 8,
            max_context_fields: 3,
        };
        let status = tenant(&"t".repeat(9), &bounds).err();
        assert!(
            status.is_some_and(|s| s.code() == tonic::Code::InvalidArgument
                && s.message().contains("max_name_bytes"))
        );
        let ctx = |fields: &[&str]| pb::ActionContext {
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            ..pb::ActionContext::default()
        };
        let many = context(Some(&ctx(&["a", "b", "c", "d"])), &bounds).err();
        assert!(many.is_some_and(|s| s.message().contains("max_context_fields")));
        let long = context(Some(&ctx(&["a", "much_too_long"])), &bounds).err();
        assert!(long.is_some_and(|s| s.message().contains("context.fields[1]")));
        let deduped = context(Some(&ctx(&["b", "a", "b"])), &bounds).ok();
        assert_eq!(
            deduped.map(|c| c.fields),
            Some(vec!["b".to_owned(), "a".to_owned()])
        );
    }

    #[test]
    fn misplaced_hyphens_are_not_uuids() {
        for s in [
            "c0000000-0000-4000-8000-00000000000-",
            "c0000000-0000-4000-8000-0000-0000000",
            "c0000000-0000-4000-8000-00000000000g",
            "c0000000-0000-4000-8000-00000000000é",
        ] {
            assert_eq!(parse_uuid(s), None, "{s}");
            assert_eq!(Uuid::try_parse(s).ok(), None, "{s}");
        }
    }
}
