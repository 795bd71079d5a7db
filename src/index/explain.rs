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
use crate::model::data::{AssociationSource, EmailInbox, EmailStatus};
use crate::model::{AccessLevel, ActionContext, Control, Gate, Reason};

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
        // What each group gives, including groups below what is needed, so
        // "why not" shows the level that was found and where.
        let found = |what: &dyn Fn(&ObjectGrant) -> String| -> String {
            if admin {
                return "admin user: every permission".to_owned();
            }
            if grants.is_empty() {
                return format!("no group of the principal names {}", object.name);
            }
            grants
                .iter()
                .map(|(id, g)| format!("{id}: {}", what(g)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let on_off = |b: bool| if b { "on" } else { "off" }.to_owned();

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
                by(&|g| g.all_records > AccessLevel::None
                    || g.associated_records > AccessLevel::None)
            ),
        ));
        if let Some(control) = r.action.control().filter(|_| r.action.is_record_less()) {
            let (name, pick): (&str, fn(&ObjectGrant) -> bool) = match control {
                Control::BulkDataUpload => ("bulk_data_upload", |g| g.bulk_data_upload),
                _ => ("create_record", |g| g.create_record),
            };
            steps.push(step(
                "control",
                eff.control_on(control),
                Reason::ActionNotPermitted,
                format!("needs {name} on; found: {}", found(&|g| on_off(pick(g)))),
            ));
        }
        if let Some(ord) = ord {
            let archived = object.archived_dense.contains(ord);
            let unarchive = r.action.reaches_archived();
            steps.push(step(
                "archived",
                archived == unarchive,
                if unarchive {
                    Reason::NotArchived
                } else {
                    Reason::Archived
                },
                match (archived, unarchive) {
                    (false, false) => "record is live".to_owned(),
                    (true, true) => "record is archived; unarchive reaches it".to_owned(),
                    (false, true) => "record is live: there is nothing to unarchive".to_owned(),
                    (true, false) => {
                        "record is archived; only unarchive reaches an archived record".to_owned()
                    }
                },
            ));
            let (associated, how) = association(object, &r.principal, ord);
            if unarchive {
                let assoc_ok = eff.unarchive_associated && associated;
                steps.push(step(
                    "scope",
                    eff.unarchive_all || assoc_ok,
                    Reason::NoRecordAccess,
                    format!(
                        "needs unarchive_all, or unarchive_associated and an association; found unarchive_all: {}; unarchive_associated: {}; {}",
                        found(&|g| on_off(g.unarchive_all)),
                        found(&|g| on_off(g.unarchive_associated)),
                        how
                    ),
                ));
            } else {
                let level = r.action.level(&r.ctx);
                let all_ok = eff.all_records >= level;
                let assoc_ok = eff.associated_records >= level && associated;
                steps.push(step(
                    "scope",
                    all_ok || assoc_ok,
                    Reason::NoRecordAccess,
                    format!(
                        "needs {}; All Records {} (found {}); My Associated Records {} (found {}); {}",
                        level.as_str(),
                        eff.all_records.as_str(),
                        found(&|g| g.all_records.as_str().to_owned()),
                        eff.associated_records.as_str(),
                        found(&|g| g.associated_records.as_str().to_owned()),
                        how
                    ),
                ));
            }
        }
        if let Some(toggle) = r.action.toggle() {
            steps.push(step(
                "toggle",
                eff.toggle_on(r.action),
                Reason::ActionNotPermitted,
                format!(
                    "{} needs to be on; found: {}",
                    toggle.as_str(),
                    found(&|g| on_off(g.toggles & toggle.bit() != 0))
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
                    "{} needs {}, has {} (found {})",
                    need.field,
                    need.level.as_str(),
                    have.as_str(),
                    found(&|g| fi
                        .and_then(|i| g.fields.get(i))
                        .copied()
                        .unwrap_or_default()
                        .as_str()
                        .to_owned())
                ),
            ));
        }
        if let (Some(ord), Some(gate)) = (ord, r.action.gate(&r.ctx)) {
            steps.extend(gate_steps(
                tenant,
                &r.principal,
                object,
                ord,
                gate,
                &r.ctx,
                now,
            ));
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
    // Contacts have no owner (R8): only team fields and interactions.
    let direct_means = if object.contact.is_some() {
        "team field or interaction"
    } else {
        "owner, team field or interaction"
    };
    (
        counts,
        format!(
            "association source {source}: directly associated ({direct_means}): {}; through a related record: {}",
            yes_no(direct),
            yes_no(related)
        ),
    )
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[allow(clippy::too_many_arguments)]
fn gate_steps(
    tenant: &TenantIndex,
    principal: &Principal,
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
    let suppression = match c.until_of.get(&ord) {
        _ if !suppressed => "not suppressed now".to_owned(),
        Some(until) => format!(
            "suppressed until {} (soft bounce)",
            until
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| until.to_string())
        ),
        None => "suppressed permanently (hard bounce or complaint)".to_owned(),
    };
    let base = c.status.get(ord).unwrap_or_default();
    let unsubscribed = base == EmailStatus::UnsubscribedAll;
    let in_set = |s: &crate::index::dense::DenseSet| s.contains(ord);
    let mut steps = Vec::new();
    match gate {
        Gate::Email => {
            steps.push(step(
                "gate",
                in_set(&c.dense.valid_email),
                Reason::NoEmail,
                if in_set(&c.dense.valid_email) {
                    "has a valid email".to_owned()
                } else {
                    "no valid email (none, blank, or marked invalid)".to_owned()
                },
            ));
            steps.push(step(
                "gate",
                !suppressed,
                Reason::Suppressed,
                suppression.clone(),
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
                let out = c.opted_out_lists.get(list).is_some_and(|s| s.contains(ord));
                steps.push(step(
                    "gate",
                    !out,
                    Reason::OptedOutOfList,
                    format!("opted out of list '{list}': {}", yes_no(out)),
                ));
            }
            steps.push(step(
                "gate",
                tenant.email_configured && principal.inbox != EmailInbox::NotConnected,
                Reason::EmailNotConfigured,
                format!(
                    "tenant email configured: {}; sender's inbox: {}",
                    yes_no(tenant.email_configured),
                    principal.inbox.as_str()
                ),
            ));
            steps.push(step(
                "gate",
                principal.inbox != EmailInbox::Blocked,
                Reason::SenderBlocked,
                format!("sender's outgoing email: {}", principal.inbox.as_str()),
            ));
        }
        Gate::Sms => {
            steps.push(step(
                "gate",
                in_set(&c.dense.valid_mobile),
                Reason::NoMobile,
                format!(
                    "valid mobile number: {}",
                    yes_no(in_set(&c.dense.valid_mobile))
                ),
            ));
            steps.push(step(
                "gate",
                !in_set(&c.dense.sms_opted_out),
                Reason::SmsOptedOut,
                format!(
                    "opted out of SMS: {}",
                    yes_no(in_set(&c.dense.sms_opted_out))
                ),
            ));
            steps.push(step(
                "gate",
                tenant.sms_configured,
                Reason::SmsNotConfigured,
                format!("tenant SMS configured: {}", yes_no(tenant.sms_configured)),
            ));
        }
        Gate::Subscription { bulk } => {
            let target = ctx.target_email_status.unwrap_or_default();
            steps.push(step(
                "gate",
                !suppressed && target != EmailStatus::Suppressed,
                Reason::SystemManaged,
                format!(
                    "suppression is system-managed; contact: {suppression}; target {}",
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
