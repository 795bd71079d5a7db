//! Principals (users, integrations, automations) and permission groups,
//! resolved against one tenant: group settings with objects and fields as
//! indexes, and each principal as the groups that decide its access.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::index::ord::UserIdx;
use crate::model::data::{EmailInbox, RunAs, Tenant};
use crate::model::{AccessLevel, FieldLevel};

/// The three kinds of principal (docs/model.md "Principal").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalKind {
    User,
    Integration,
    Automation,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Integration => "integration",
            Self::Automation => "automation",
        }
    }
}

/// A principal resolved to what decides its access.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Principal {
    /// Indexes into [`TenantIndex::groups`], sorted and deduplicated.
    pub groups: Vec<usize>,
    pub admin: bool,
    /// The user whose associations count as the principal's (R8).
    pub associated_user: Option<UserIdx>,
    /// The sender's inbox, for the email gate (R13).
    pub inbox: EmailInbox,
    /// The revision at which what this principal may do last changed:
    /// cached answers of the principal are valid while it stays the same.
    pub version: u64,
}

/// A permission group's settings, with objects and fields resolved to indexes.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupGrants {
    pub id: String,
    pub create_objects: bool,
    /// Per object index; `None` where the group says nothing of the object.
    pub objects: Vec<Option<ObjectGrant>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectGrant {
    pub view_object: bool,
    pub edit_settings: bool,
    pub delete_object: bool,
    pub all_records: AccessLevel,
    pub associated_records: AccessLevel,
    pub create_record: bool,
    pub bulk_data_upload: bool,
    pub unarchive_associated: bool,
    pub unarchive_all: bool,
    /// Bits of [`crate::model::Toggle::bit`].
    pub toggles: u32,
    /// Per field index of the object.
    pub fields: Vec<FieldLevel>,
}

pub(crate) fn build_groups(
    tenant: &Tenant,
    objects: &[Vec<String>],
    object_by_name: &FxHashMap<String, usize>,
) -> Vec<GroupGrants> {
    tenant
        .groups
        .iter()
        .map(|group| {
            let mut grants: Vec<Option<ObjectGrant>> = vec![None; objects.len()];
            for (name, perms) in &group.objects {
                let Some(&oi) = object_by_name.get(name) else {
                    continue;
                };
                let Some(object_fields) = objects.get(oi) else {
                    continue;
                };
                let fields = object_fields
                    .iter()
                    .map(|f| perms.field_level(name, f))
                    .collect();
                let grant = ObjectGrant {
                    view_object: perms.view_object,
                    edit_settings: perms.edit_settings,
                    delete_object: perms.delete_object,
                    all_records: perms.all_records,
                    associated_records: perms.associated_records,
                    create_record: perms.create_record,
                    bulk_data_upload: perms.bulk_data_upload,
                    unarchive_associated: perms.unarchive_associated,
                    unarchive_all: perms.unarchive_all,
                    toggles: perms.actions.iter().fold(0, |bits, t| bits | t.bit()),
                    fields,
                };
                if let Some(slot) = grants.get_mut(oi) {
                    *slot = Some(grant);
                }
            }
            GroupGrants {
                id: group.id.clone(),
                create_objects: group.create_objects,
                objects: grants,
            }
        })
        .collect()
}

pub(crate) fn build_principals(
    tenant: &Tenant,
    groups: &[GroupGrants],
    user_by_id: &FxHashMap<String, UserIdx>,
) -> FxHashMap<(PrincipalKind, String), Principal> {
    let group_by_id: FxHashMap<&str, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (g.id.as_str(), i))
        .collect();
    let role_groups: BTreeMap<&str, &[String]> = tenant
        .roles
        .iter()
        .map(|r| (r.id.as_str(), r.groups.as_slice()))
        .collect();
    let resolve = |names: &mut dyn Iterator<Item = &String>| -> Vec<usize> {
        let mut ids: Vec<usize> = names
            .filter_map(|n| group_by_id.get(n.as_str()).copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut principals = FxHashMap::default();
    for user in &tenant.users {
        let from_roles = user
            .roles
            .iter()
            .flat_map(|r| role_groups.get(r.as_str()).copied().unwrap_or_default());
        let principal = Principal {
            groups: resolve(&mut from_roles.chain(&user.groups)),
            admin: user.admin,
            associated_user: user_by_id.get(user.id.as_str()).copied(),
            inbox: user.email_inbox,
            version: 0,
        };
        principals.insert((PrincipalKind::User, user.id.clone()), principal);
    }
    // An integration is an API key of its user: it acts as that user (R8).
    // One whose user is unknown resolves to nothing (validation refuses
    // it), so it answers NOT_FOUND rather than some access.
    for integration in &tenant.integrations {
        let owner = integration
            .user
            .as_ref()
            .and_then(|u| principals.get(&(PrincipalKind::User, u.clone())).cloned());
        if let Some(principal) = owner {
            principals.insert(
                (PrincipalKind::Integration, integration.id.clone()),
                principal,
            );
        }
    }
    for automation in &tenant.automations {
        let target = match &automation.run_as {
            RunAs::User(id) => (PrincipalKind::User, id.clone()),
            RunAs::Integration(id) => (PrincipalKind::Integration, id.clone()),
        };
        // An automation whose target is unknown resolves to nothing: validation
        // refuses such files, and a missing principal answers NOT_FOUND.
        if let Some(principal) = principals.get(&target).cloned() {
            principals.insert(
                (PrincipalKind::Automation, automation.id.clone()),
                principal,
            );
        }
    }
    principals
}
