//! What the peers need handed to them as attributes, derived from the data
//! file straight from docs/model.md (no code shared with `src/index/`):
//!
//! - per user, the effective permissions on `contacts` (R1: the union over
//!   the groups of the user's roles plus its additional groups; an admin has
//!   everything);
//! - per Contact, its state at `now` (archived, valid email, suppressed,
//!   unsubscribed from all) and the users associated with it (R8: team
//!   fields, interactions, the owner of a custom-object record; R9: the same on records linked to it, one hop
//!   either direction, as the object's association source says).
//!
//! permd computes the same things inside its index; a peer has to be given
//! them, so deriving them is a setup cost of the peers (reported apart).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use permd::model::data::{
    AssociationSource, CONTACT_SYSTEM_FIELDS, CONTACTS, EmailStatus, Record, Tenant, User,
};
use permd::model::{AccessLevel, FieldLevel, Toggle};
use time::OffsetDateTime;
use uuid::Uuid;

/// A user's effective permissions on `contacts` (R1).
#[derive(Clone, Debug, Default)]
pub struct Effective {
    pub user: String,
    pub view_object: bool,
    pub all_records: AccessLevel,
    pub associated_records: AccessLevel,
    pub toggles: BTreeSet<Toggle>,
    /// Level of each Contact system field (the fields actions name).
    pub fields: BTreeMap<&'static str, FieldLevel>,
}

/// Numeric form of an access level for the peers' comparisons.
pub fn level_number(level: AccessLevel) -> i64 {
    match level {
        AccessLevel::None => 0,
        AccessLevel::View => 1,
        AccessLevel::Edit => 2,
        AccessLevel::Remove => 3,
    }
}

pub fn field_number(level: FieldLevel) -> i64 {
    match level {
        FieldLevel::None => 0,
        FieldLevel::View => 1,
        FieldLevel::Edit => 2,
    }
}

/// R1 for one user on `contacts`.
pub fn effective(tenant: &Tenant, user: &User) -> Effective {
    let mut eff = Effective {
        user: user.id.clone(),
        fields: CONTACT_SYSTEM_FIELDS
            .iter()
            .map(|f| (*f, FieldLevel::None))
            .collect(),
        ..Effective::default()
    };
    if user.admin {
        eff.view_object = true;
        eff.all_records = AccessLevel::Remove;
        eff.associated_records = AccessLevel::Remove;
        eff.toggles = Toggle::ALL.into_iter().collect();
        eff.fields.values_mut().for_each(|l| *l = FieldLevel::Edit);
        return eff;
    }
    let group_ids: BTreeSet<&str> = user
        .roles
        .iter()
        .filter_map(|r| tenant.roles.iter().find(|role| &role.id == r))
        .flat_map(|role| role.groups.iter())
        .chain(&user.groups)
        .map(String::as_str)
        .collect();
    let grants = tenant
        .groups
        .iter()
        .filter(|g| group_ids.contains(g.id.as_str()))
        .filter_map(|g| g.objects.get(CONTACTS));
    for p in grants {
        eff.view_object |= p.view_object;
        eff.all_records = eff.all_records.max(p.all_records);
        eff.associated_records = eff.associated_records.max(p.associated_records);
        eff.toggles.extend(p.actions.iter().copied());
        for (name, level) in eff.fields.iter_mut() {
            // R7: stated, else default_for_new_field under the Email rule.
            *level = (*level).max(p.field_level(CONTACTS, name));
        }
    }
    eff
}

/// One Contact as the peers see it.
#[derive(Clone, Debug)]
pub struct ContactFacts {
    pub id: Uuid,
    pub archived: bool,
    pub valid_email: bool,
    /// Suppressed at the benchmark's `now` (a soft bounce may be over).
    pub suppressed: bool,
    pub unsubscribed_all: bool,
    /// Users associated with the Contact under its association source.
    pub associated: BTreeSet<String>,
}

/// Users directly associated with a record (R8), known users only.
fn direct_users<'a>(record: &'a Record, known: &HashSet<&str>) -> BTreeSet<&'a str> {
    record
        .owner
        .iter()
        .chain(record.teams.values().flatten())
        .chain(&record.interactions)
        .map(String::as_str)
        .filter(|u| known.contains(u))
        .collect()
}

/// Every Contact of the tenant with its state at `now` and its associated
/// users (R8, R9).
pub fn contacts(tenant: &Tenant, now: OffsetDateTime) -> Vec<ContactFacts> {
    let source = tenant
        .objects
        .iter()
        .find(|o| o.name == CONTACTS)
        .map(|o| o.association_source)
        .unwrap_or_default();
    let mut objects: HashSet<&str> = tenant.objects.iter().map(|o| o.name.as_str()).collect();
    objects.insert(CONTACTS);
    let known: HashSet<&str> = tenant.users.iter().map(|u| u.id.as_str()).collect();
    let records: HashMap<Uuid, &Record> = tenant
        .records
        .iter()
        .filter(|r| objects.contains(r.object.as_str()))
        .map(|r| (r.id, r))
        .collect();

    // R9 "related": users directly associated with a record linked to the
    // Contact, one hop, whichever side holds the link.
    let mut related: HashMap<Uuid, BTreeSet<&str>> = HashMap::new();
    if source != AssociationSource::Direct {
        for record in records.values() {
            for linked in record.links.values().flatten() {
                let Some(other) = records.get(linked) else {
                    continue;
                };
                for (contact, neighbour) in [(*record, *other), (*other, *record)] {
                    if contact.object == CONTACTS {
                        related
                            .entry(contact.id)
                            .or_default()
                            .extend(direct_users(neighbour, &known));
                    }
                }
            }
        }
    }

    tenant
        .records
        .iter()
        .filter(|r| r.object == CONTACTS)
        .map(|r| {
            let direct = direct_users(r, &known);
            let linked = related.get(&r.id).cloned().unwrap_or_default();
            let associated: BTreeSet<String> = match source {
                AssociationSource::Direct => direct,
                AssociationSource::Related => linked,
                AssociationSource::Both => direct.union(&linked).copied().collect(),
            }
            .into_iter()
            .map(str::to_owned)
            .collect();
            // A Contact without state has no email (data format).
            let state = r.contact.clone().unwrap_or_default();
            ContactFacts {
                id: r.id,
                archived: r.archived,
                valid_email: state.has_valid_email(),
                suppressed: state.is_suppressed_at(now),
                unsubscribed_all: state.email_status == EmailStatus::UnsubscribedAll,
                associated,
            }
        })
        .collect()
}
