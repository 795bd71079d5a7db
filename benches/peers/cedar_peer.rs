//! The two workloads as Cedar (cedar-policy): a schema, one `permit` per
//! action, and an entity store holding every user (with its effective
//! permissions on Contacts as attributes) and every Contact (state and
//! associated users as attributes). A batch is one `is_authorized` call per
//! record.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use uuid::Uuid;

use super::facts::{ContactFacts, Effective, field_number, level_number};

/// Typed attributes, so the validator can check every policy.
pub const SCHEMA: &str = r#"
entity User = {
  "all_records": Long,          // R5 level of the All Records scope: none 0, view 1, edit 2, remove 3
  "associated_records": Long,   // R5 level of My Associated Records
  "toggles": Set<String>,       // R6 toggles that are on
  "fields": {                   // R7 field levels: none 0, view 1, edit 2
    "email": Long, "email_status": Long, "mobile_phone": Long,
    "tags": Long, "timezone": Long, "birthday": Long,
  },
};
entity Contact = {
  "archived": Bool,             // R10
  "has_valid_email": Bool,      // R13 NO_EMAIL
  "suppressed": Bool,           // R13 SUPPRESSED, at the instant the store was built
  "unsubscribed_all": Bool,     // R13 UNSUBSCRIBED (marketing mail)
  "associated": Set<User>,      // R8 + R9 under the object's association source
};
action "view", "bulk_send_email" appliesTo { principal: User, resource: Contact };
"#;

/// docs/model.md's table for the two actions. Visibility (R3) needs no
/// clause: any record access level above none makes the object visible.
pub const POLICIES: &str = r#"
@id("view")
permit (principal is User, action == Action::"view", resource is Contact)
when {
  !resource.archived &&
  (principal.all_records >= 1 ||
   (principal.associated_records >= 1 && resource.associated.contains(principal)))
};

@id("bulk_send_email")
permit (principal is User, action == Action::"bulk_send_email", resource is Contact)
when {
  !resource.archived &&
  (principal.all_records >= 1 ||
   (principal.associated_records >= 1 && resource.associated.contains(principal))) &&
  principal.toggles.contains("bulk_send_email") &&
  principal.fields.email >= 1 &&
  resource.has_valid_email && !resource.suppressed && !resource.unsubscribed_all
};
"#;

pub struct CedarPeer {
    pub policies: PolicySet,
    pub entities: Entities,
    authorizer: Authorizer,
    contact_type: EntityTypeName,
    user_type: EntityTypeName,
    /// What the setup steps cost.
    pub setup: Vec<(&'static str, Duration)>,
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

fn user_entity(ty: &EntityTypeName, eff: &Effective) -> anyhow::Result<Entity> {
    let fields = eff
        .fields
        .iter()
        .map(|(name, level)| {
            (
                (*name).to_owned(),
                RestrictedExpression::new_long(field_number(*level)),
            )
        })
        .collect::<Vec<_>>();
    let attrs = HashMap::from([
        (
            "all_records".to_owned(),
            RestrictedExpression::new_long(level_number(eff.all_records)),
        ),
        (
            "associated_records".to_owned(),
            RestrictedExpression::new_long(level_number(eff.associated_records)),
        ),
        (
            "toggles".to_owned(),
            RestrictedExpression::new_set(
                eff.toggles
                    .iter()
                    .map(|t| RestrictedExpression::new_string(t.as_str().to_owned())),
            ),
        ),
        (
            "fields".to_owned(),
            RestrictedExpression::new_record(fields)?,
        ),
    ]);
    Ok(Entity::new(uid(ty, &eff.user), attrs, HashSet::new())?)
}

fn contact_entity(
    ty: &EntityTypeName,
    user_ty: &EntityTypeName,
    c: &ContactFacts,
) -> anyhow::Result<Entity> {
    let attrs = HashMap::from([
        (
            "archived".to_owned(),
            RestrictedExpression::new_bool(c.archived),
        ),
        (
            "has_valid_email".to_owned(),
            RestrictedExpression::new_bool(c.valid_email),
        ),
        (
            "suppressed".to_owned(),
            RestrictedExpression::new_bool(c.suppressed),
        ),
        (
            "unsubscribed_all".to_owned(),
            RestrictedExpression::new_bool(c.unsubscribed_all),
        ),
        (
            "associated".to_owned(),
            RestrictedExpression::new_set(
                c.associated
                    .iter()
                    .map(|u| RestrictedExpression::new_entity_uid(uid(user_ty, u))),
            ),
        ),
    ]);
    Ok(Entity::new(
        uid(ty, &c.id.to_string()),
        attrs,
        HashSet::new(),
    )?)
}

impl CedarPeer {
    pub fn build(users: &[Effective], contacts: &[ContactFacts]) -> anyhow::Result<CedarPeer> {
        let mut setup = Vec::new();
        let user_type = EntityTypeName::from_str("User")?;
        let contact_type = EntityTypeName::from_str("Contact")?;

        let t = Instant::now();
        let (schema, _warnings) =
            Schema::from_cedarschema_str(SCHEMA).map_err(|e| anyhow!("cedar schema: {e:?}"))?;
        let policies =
            PolicySet::from_str(POLICIES).map_err(|e| anyhow!("cedar policies: {e:?}"))?;
        setup.push(("policy + schema parsing", t.elapsed()));

        let t = Instant::now();
        let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !result.validation_passed() {
            return Err(anyhow!("cedar policies do not validate: {result:?}"));
        }
        setup.push(("policy validation against the schema", t.elapsed()));

        let t = Instant::now();
        let mut entities = Vec::with_capacity(users.len() + contacts.len());
        for eff in users {
            entities.push(user_entity(&user_type, eff)?);
        }
        for c in contacts {
            entities.push(contact_entity(&contact_type, &user_type, c)?);
        }
        let entities =
            Entities::from_entities(entities, Some(&schema)).context("cedar entity store")?;
        setup.push((
            "entity store (users + contacts, schema-checked)",
            t.elapsed(),
        ));

        Ok(CedarPeer {
            policies,
            entities,
            authorizer: Authorizer::new(),
            contact_type,
            user_type,
            setup,
        })
    }

    pub fn user(&self, id: &str) -> EntityUid {
        uid(&self.user_type, id)
    }

    pub fn action(&self, name: &str) -> anyhow::Result<EntityUid> {
        Ok(EntityUid::from_str(&format!("Action::\"{name}\""))?)
    }

    /// The request ids of a batch. Done outside the timed loop, as permd's
    /// ids are decoded to `Uuid`s before `batch_check`.
    pub fn resources(&self, ids: &[Uuid]) -> Vec<EntityUid> {
        ids.iter()
            .map(|id| uid(&self.contact_type, &id.to_string()))
            .collect()
    }

    /// One decision per record: a request, then `is_authorized`.
    pub fn batch(
        &self,
        principal: &EntityUid,
        action: &EntityUid,
        resources: &[EntityUid],
    ) -> anyhow::Result<Vec<bool>> {
        resources
            .iter()
            .map(|resource| {
                let request = Request::new(
                    principal.clone(),
                    action.clone(),
                    resource.clone(),
                    Context::empty(),
                    None,
                )?;
                let response =
                    self.authorizer
                        .is_authorized(&request, &self.policies, &self.entities);
                // A policy that errors (say, a missing attribute) is skipped
                // and the answer silently becomes deny: refuse that.
                if let Some(error) = response.diagnostics().errors().next() {
                    return Err(anyhow!("cedar evaluation error: {error}"));
                }
                Ok(response.decision() == Decision::Allow)
            })
            .collect()
    }
}
