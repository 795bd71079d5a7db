//! `Explain`: every layer of one decision, with the groups that granted or
//! failed it, for admins asking "why can't she see this record?". The final
//! answer is the engine's own (`Engine::check`), so Explain can never
//! disagree with Check; the steps describe how it got there.

use time::OffsetDateTime;
use uuid::Uuid;

use super::compile::Effective;
use super::engine::{Engine, Question};
use super::error::QueryError;
use super::tenant::{ObjectGrant, ObjectIndex, Principal, TenantIndex};
use crate::model::data::{AssociationSource, EmailStatus};
use crate::model::{ActionContext, Gate, Reason};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub layer: &'static str,
    pub passed: bool,
    pub reason: Option<Reason>,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub reason: Option<Reason>,
    pub steps: Vec<Step>,
    pub groups: Vec<String>,
    pub revision: u64,
}

impl Explanation {
    pub fn allowed(&self) -> bool {
        self.reason.is_none()
    }
}

fn step(layer: &'static str, passed: bool, reason: Reason, detail: String) -> Step {
    Step {
        layer,
        passed,
        reason: (!passed).then_some(reason),
        detail,
    }
}

fn names(list: Vec<&str>) -> String {
    if list.is_empty() {
        "no group".to_owned()
    } else {
        list.join(", ")
    }
}

impl Engine {
    /// Explains one decision layer by layer.
    pub fn explain(
        &self,
        q: &Question,
        record: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Result<Explanation, QueryError> {
        // One snapshot for both the decision and the steps that explain it.
        let r = self.resolve(q)?;
        let decision = self.decide(&r, record, now)?;
        let tenant = &r.tenant;
        let object = tenant
            .objects
            .get(r.object)
            .ok_or(QueryError::Internal("object index out of range"))?;
        let eff = Effective::of(tenant, &r.principal, r.object);
        let grants: Vec<(&str, &ObjectGrant)> = r
            .principal
            .groups
            .iter()
            .filter_map(|&g| tenant.groups.get(g))
            .filter_map(|g| {
                g.objects
                    .get(r.object)
                    .and_then(Option::as_ref)
                    .map(|grant| (g.id.as_str(), grant))
            })
            .collect();
        let admin = r.principal.admin;
        let by = |pred: &dyn Fn(&ObjectGrant) -> bool| -> String {
            if admin {
                return "admin user: every permission".to_owned();
            }
            names(
                grants
                    .iter()
                    .filter(|(_, g)| pred(g))
                    .map(|(id, _)| *id)
                    .collect(),
            )
        };

        let mut steps = vec![Step {
            layer: "principal",
            passed: true,
            reason: None,
            detail: format!(
                "{} '{}'{}; groups: {}",
                r.principal_ref.kind.as_str(),
                r.principal_ref.id,
                if admin { " (admin)" } else { "" },
                names(
                    r.principal
                        .groups
                        .iter()
                        .filter_map(|&g| tenant.groups.get(g))
                        .map(|g| g.id.as_str())
                        .collect()
                )
            ),
        }];
        let ord = record.and_then(|id| object.ord(&id));
        if let Some(id) = record {
            steps.push(step(
                "record",
                ord.is_some(),
                Reason::UnknownRecord,
                match ord {
                    Some(_) => format!("{id} is a {} record", object.name),
                    None => format!(
                        "{id} is not a {} record of tenant '{}'",
                        object.name, tenant.id
                    ),
                },
            ));
        }
        steps.push(step(
            "visibility",
            eff.visible(),
            Reason::ObjectNotVisible,
            format!(
                "view_object from: {}; record access from: {}",
                by(&|g| g.view_object),
                by(&|g| g.all_records > crate::model::AccessLevel::None
                    || g.associated_records > crate::model::AccessLevel::None)
            ),
        ));
        let level = r.action.level(&r.ctx);
        if r.action.is_record_less() {
            steps.push(step(
                "scope",
                eff.best_level() >= crate::model::AccessLevel::Edit,
                Reason::NoRecordAccess,
                format!(
                    "needs edit in some scope; best level {} from: {}",
                    eff.best_level().as_str(),
                    by(&|g| {
                        g.all_records.max(g.associated_records) >= crate::model::AccessLevel::Edit
                    })
                ),
            ));
        }
        if let Some(ord) = ord {
            let archived = object.archived.contains(ord);
            steps.push(step(
                "archived",
                !archived || r.action.reaches_archived(),
                Reason::Archived,
                match (archived, r.action.reaches_archived()) {
                    (false, _) => "record is live".to_owned(),
                    (true, true) => {
                        format!("record is archived; {} may reach it", r.action.as_str())
                    }
                    (true, false) => {
                        "record is archived; only view_archived and unarchive reach it".to_owned()
                    }
                },
            ));
            let (associated, how) = association(object, &r.principal, ord);
            let all_ok = eff.all_records >= level;
            let assoc_ok = eff.associated_records >= level && associated;
            steps.push(step(
                "scope",
                all_ok || assoc_ok,
                Reason::NoRecordAccess,
                format!(
                    "needs {}; All Records {} (from {}); My Associated Records {} (from {}); {}",
                    level.as_str(),
                    eff.all_records.as_str(),
                    by(&|g| g.all_records >= level),
                    eff.associated_records.as_str(),
                    by(&|g| g.associated_records >= level),
                    how
                ),
            ));
        }
        if let Some(toggle) = r.action.toggle() {
            steps.push(step(
                "toggle",
                eff.toggle_on(r.action),
                Reason::ActionNotPermitted,
                format!(
                    "{} is on in: {}",
                    toggle.as_str(),
                    by(&|g| g.toggles & toggle.bit() != 0)
                ),
            ));
        }
        for need in r.action.field_needs(&r.ctx) {
            let fi = object.field_index(&need.field);
            let have = fi
                .and_then(|i| eff.fields.get(i))
                .copied()
                .unwrap_or_default();
            steps.push(step(
                "field",
                have >= need.level,
                Reason::FieldRestricted,
                format!(
                    "{} needs {}, has {} (from: {})",
                    need.field,
                    need.level.as_str(),
                    have.as_str(),
                    by(&|g| fi
                        .and_then(|i| g.fields.get(i))
                        .is_some_and(|l| *l >= need.level))
                ),
            ));
        }
        if let (Some(ord), Some(gate)) = (ord, r.action.gate(&r.ctx)) {
            steps.extend(gate_steps(tenant, object, ord, gate, &r.ctx, now));
        }
        Ok(Explanation {
            reason: decision.reason,
            steps,
            groups: r
                .principal
                .groups
                .iter()
                .filter_map(|&g| tenant.groups.get(g))
                .map(|g| g.id.clone())
                .collect(),
            revision: decision.revision,
        })
    }
}

/// Whether and how the principal is associated with the record (R8, R9).
fn association(object: &ObjectIndex, principal: &Principal, ord: u32) -> (bool, String) {
    let Some(user) = principal.associated_user else {
        return (
            false,
            "the principal runs as no user, so it is associated with no record".to_owned(),
        );
    };
    let direct = object.direct.get(&user).is_some_and(|s| s.contains(ord));
    let related = object.related.get(&user).is_some_and(|s| s.contains(ord));
    let (counts, source) = match object.source {
        AssociationSource::Direct => (direct, "direct"),
        AssociationSource::Related => (related, "related"),
        AssociationSource::Both => (direct || related, "both"),
    };
    (
        counts,
        format!(
            "association source {source}: directly associated (owner, team field or interaction): {}; through a related record: {}",
            yes_no(direct),
            yes_no(related)
        ),
    )
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn gate_steps(
    tenant: &TenantIndex,
    object: &ObjectIndex,
    ord: u32,
    gate: Gate,
    ctx: &ActionContext,
    now: OffsetDateTime,
) -> Vec<Step> {
    let Some(c) = &object.contact else {
        return Vec::new();
    };
    let suppressed = c.is_suppressed_at(ord, now);
    let base = c.status.get(ord as usize).copied().unwrap_or_default();
    let unsubscribed = base == EmailStatus::UnsubscribedAll;
    let in_set = |s: &roaring::RoaringBitmap| s.contains(ord);
    let mut steps = Vec::new();
    match gate {
        Gate::Email => {
            steps.push(step(
                "gate",
                in_set(&c.valid_email),
                Reason::NoEmail,
                "has a valid email".to_owned(),
            ));
            steps.push(step(
                "gate",
                !suppressed,
                Reason::Suppressed,
                "not suppressed now".to_owned(),
            ));
            steps.push(step(
                "gate",
                !unsubscribed || ctx.transactional,
                Reason::Unsubscribed,
                format!(
                    "email status {}; message is {}",
                    base.as_str(),
                    if ctx.transactional {
                        "transactional"
                    } else {
                        "marketing"
                    }
                ),
            ));
            if let Some(list) = &ctx.subscription_list {
                let out = c.opted_out_lists.get(list).is_some_and(in_set);
                steps.push(step(
                    "gate",
                    !out,
                    Reason::OptedOutOfList,
                    format!("not opted out of list '{list}'"),
                ));
            }
            steps.push(step(
                "gate",
                tenant.email_configured,
                Reason::EmailNotConfigured,
                "tenant has an email integration".to_owned(),
            ));
        }
        Gate::Sms => {
            steps.push(step(
                "gate",
                in_set(&c.valid_mobile),
                Reason::NoMobile,
                "has a valid mobile number".to_owned(),
            ));
            steps.push(step(
                "gate",
                !in_set(&c.sms_opted_out),
                Reason::SmsOptedOut,
                "not opted out of SMS".to_owned(),
            ));
            steps.push(step(
                "gate",
                tenant.sms_configured,
                Reason::SmsNotConfigured,
                "tenant has SMS set up".to_owned(),
            ));
        }
        Gate::Subscription { bulk } => {
            let target = ctx.target_email_status.unwrap_or_default();
            steps.push(step(
                "gate",
                !suppressed && target != EmailStatus::Suppressed,
                Reason::SystemManaged,
                format!(
                    "suppression is system-managed; contact suppressed now: {}, target {}",
                    yes_no(suppressed),
                    target.as_str()
                ),
            ));
            if bulk {
                steps.push(step(
                    "gate",
                    !(unsubscribed && target == EmailStatus::OptedIn),
                    Reason::SingleRecordOnly,
                    format!(
                        "{} → {} is allowed one record at a time only",
                        base.as_str(),
                        target.as_str()
                    ),
                ));
            }
        }
    }
    steps
}
