//! Changes applied to a data file, the slow obvious way: what a test keeps
//! beside an engine it sends changes to, so that it can rebuild an engine
//! from the changed data or ask the reference evaluator about it. The
//! engine's incremental path is what is tested; this is the yardstick, so it
//! shares nothing with `permd::index` and only replaces, adds and removes
//! whole entities by key.
//!
//! - [`apply`]: one change to a [`DataFile`].

use permd::model::change::{Change, ChangeOp, Entity, EntityKind};
use permd::model::data::{DataFile, Tenant};
use uuid::Uuid;

/// Applies one change as the writer meant it: an upsert replaces the entity
/// with the same key or adds it, a delete removes it (deleting what is not
/// there changes nothing, like the engine). A tenant upsert sets the
/// settings, creating the tenant if it is new; a tenant delete drops it with
/// everything in it.
///
/// Panics on an upsert into a tenant the file does not have: the engine
/// refuses that change, so a test has no business keeping it.
pub fn apply(data: &mut DataFile, change: &Change) {
    let at = data.tenants.iter().position(|t| t.id == change.tenant);
    match (&change.op, at) {
        (ChangeOp::Upsert(Entity::Tenant(s)), None) => data.tenants.push(Tenant {
            id: change.tenant.clone(),
            email_configured: s.email_configured,
            sms_configured: s.sms_configured,
            ..Tenant::default()
        }),
        (
            ChangeOp::Delete {
                kind: EntityKind::Tenant,
                ..
            },
            Some(at),
        ) => {
            data.tenants.remove(at);
        }
        (ChangeOp::Delete { .. }, None) => {}
        (ChangeOp::Upsert(_), None) => panic!(
            "a change to tenant '{}', which the data file does not have",
            change.tenant
        ),
        (_, Some(at)) => apply_to_tenant(&mut data.tenants[at], change),
    }
}

/// [`apply`] inside the tenant the change names.
fn apply_to_tenant(t: &mut Tenant, change: &Change) {
    match &change.op {
        ChangeOp::Upsert(entity) => match entity {
            Entity::Tenant(s) => {
                t.email_configured = s.email_configured;
                t.sms_configured = s.sms_configured;
            }
            Entity::Object(o) => upsert(&mut t.objects, |x| x.name.clone(), o),
            Entity::Group(g) => upsert(&mut t.groups, |x| x.id.clone(), g),
            Entity::Role(r) => upsert(&mut t.roles, |x| x.id.clone(), r),
            Entity::User(u) => upsert(&mut t.users, |x| x.id.clone(), u),
            Entity::Integration(i) => upsert(&mut t.integrations, |x| x.id.clone(), i),
            Entity::Automation(a) => upsert(&mut t.automations, |x| x.id.clone(), a),
            Entity::Record(r) => upsert(&mut t.records, |x| x.id, r),
        },
        ChangeOp::Delete { kind, key } => match kind {
            EntityKind::Tenant => unreachable!("`apply` drops the whole tenant"),
            EntityKind::Object => t.objects.retain(|x| x.name != *key),
            EntityKind::Group => t.groups.retain(|x| x.id != *key),
            EntityKind::Role => t.roles.retain(|x| x.id != *key),
            EntityKind::User => t.users.retain(|x| x.id != *key),
            EntityKind::Integration => t.integrations.retain(|x| x.id != *key),
            EntityKind::Automation => t.automations.retain(|x| x.id != *key),
            EntityKind::Record => {
                let id = Uuid::parse_str(key)
                    .unwrap_or_else(|e| panic!("record key '{key}' is not a UUID: {e}"));
                t.records.retain(|x| x.id != id);
            }
        },
    }
}

/// Replaces the item of `list` with the same key as `item`, or adds it.
fn upsert<T: Clone, K: PartialEq>(list: &mut Vec<T>, key: impl Fn(&T) -> K, item: &T) {
    let k = key(item);
    match list.iter().position(|x| key(x) == k) {
        Some(at) => list[at] = item.clone(),
        None => list.push(item.clone()),
    }
}
