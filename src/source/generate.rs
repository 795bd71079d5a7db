//! Deterministic tenants at any scale, for benchmarks, load tests and
//! soak runs (`permd gen`). The same [`GenSpec`] gives the same file on every
//! machine, so figures measured on it can be reproduced.
//!
//! Shape: Contacts plus `custom_objects` objects related to them; groups
//! with a spread of scopes, toggles and field levels; roles bundling one to
//! three groups; users with one role and sometimes an extra group. Two
//! principals are fixed so benchmarks can name them: user `u0` (role `r0`,
//! group `g0`: All Records view, every bulk toggle, every field editable) and
//! user `u1` (role `r1`, group `g1`: My Associated Records edit).

use std::collections::BTreeMap;

use time::macros::datetime;
use uuid::Uuid;

use super::rng::Rng;
use crate::model::data::{
    AssociationSource, Automation, CONTACTS, ContactState, DataFile, EmailStatus, Group,
    Integration, ObjectDef, ObjectPermissions, Record, Relationship, Role, RunAs, Tenant, User,
};
use crate::model::{AccessLevel, FieldLevel, Toggle};

/// What to generate. [`GenSpec::default`] is the benchmark tenant of
/// README "Benchmarks".
#[derive(Clone, Debug, PartialEq)]
pub struct GenSpec {
    pub tenant: String,
    pub contacts: usize,
    pub users: usize,
    pub groups: usize,
    pub roles: usize,
    pub custom_objects: usize,
    /// Records of each custom object, per Contact (e.g. 0.05 = 1 per 20).
    pub custom_records_per_contact: f64,
    pub seed: u64,
}

impl Default for GenSpec {
    fn default() -> Self {
        GenSpec {
            tenant: "bench".to_owned(),
            contacts: 1_000_000,
            users: 2_000,
            groups: 50,
            roles: 20,
            custom_objects: 5,
            custom_records_per_contact: 0.05,
            seed: 42,
        }
    }
}

impl GenSpec {
    /// Why the spec cannot be generated, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.users < 2 || self.groups < 2 || self.roles < 2 {
            return Err(
                "gen needs at least 2 users, 2 groups and 2 roles (u0 and u1 are fixed)".to_owned(),
            );
        }
        if !(0.0..=10.0).contains(&self.custom_records_per_contact) {
            return Err("custom records per contact must be between 0 and 10".to_owned());
        }
        if self.tenant.trim().is_empty() {
            return Err("the tenant id must not be empty".to_owned());
        }
        Ok(())
    }
}

const CONTACT_FIELDS: [&str; 4] = ["first_name", "last_name", "job_title", "city"];
const CUSTOM_FIELDS: [&str; 3] = ["name", "amount", "stage"];
const LISTS: [&str; 3] = ["newsletter", "product-updates", "events"];

/// The id of the `n`-th generated record: random-looking (version 4) so hash
/// maps see the ids of real systems, and reproducible from the seed.
fn record_id(rng: &mut Rng) -> Uuid {
    let bits = (u128::from(rng.next()) << 64) | u128::from(rng.next());
    uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid()
}

fn user_id(n: usize) -> String {
    format!("u{n}")
}

/// The Contact ids of the tenant `spec` describes, in file order, without
/// generating the rest: a load test against a generated tenant draws its
/// batches from these (`permd bench --tenant bench`).
pub fn contact_ids(spec: &GenSpec) -> Vec<Uuid> {
    let mut rng = Rng(spec.seed ^ 0xC0C0_7AC7_1D5E_ED00);
    (0..spec.contacts).map(|_| record_id(&mut rng)).collect()
}

/// Generates the tenant `spec` describes, as a data file.
pub fn generate(spec: &GenSpec) -> DataFile {
    let mut rng = Rng(spec.seed ^ 0x9E37_79B9_7F4A_7C15);
    let custom: Vec<String> = (0..spec.custom_objects)
        .map(|i| format!("obj{i}"))
        .collect();
    let objects = objects(&custom);
    let groups = groups(&mut rng, spec.groups, &custom);
    let roles = roles(&mut rng, spec.roles, spec.groups);
    let users = users(&mut rng, spec);

    let mut records = Vec::with_capacity(spec.contacts);
    let contact_ids = contact_ids(spec);
    for (n, id) in contact_ids.iter().enumerate() {
        records.push(contact(&mut rng, spec, *id, n));
    }
    // Bounded by `check`: at most 10 per Contact.
    let per_object = (spec.contacts as f64 * spec.custom_records_per_contact) as usize;
    for object in &custom {
        for _ in 0..per_object {
            let links: Vec<Uuid> = (0..1 + rng.below(3))
                .filter_map(|_| contact_ids.get(rng.below(contact_ids.len())).copied())
                .collect();
            records.push(Record {
                id: record_id(&mut rng),
                object: object.clone(),
                owner: Some(user_id(rng.below(spec.users))),
                teams: team(&mut rng, spec.users, 20, "team").into(),
                interactions: vec![],
                links: if links.is_empty() {
                    BTreeMap::new()
                } else {
                    BTreeMap::from([(CONTACTS.to_owned(), links)])
                },
                archived: rng.chance(2),
                contact: None,
            });
        }
    }

    DataFile {
        tenants: vec![Tenant {
            id: spec.tenant.clone(),
            email_configured: true,
            sms_configured: true,
            objects,
            groups,
            roles,
            users,
            integrations: vec![Integration {
                id: "sync".to_owned(),
                user: Some(user_id(1)),
                groups: None,
            }],
            automations: vec![Automation {
                id: "nurture".to_owned(),
                run_as: RunAs::User(user_id(0)),
            }],
            records,
        }],
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn objects(custom: &[String]) -> Vec<ObjectDef> {
    let mut objects = vec![ObjectDef {
        name: CONTACTS.to_owned(),
        fields: strings(&CONTACT_FIELDS),
        team_fields: strings(&["account_team"]),
        relationships: vec![],
        association_source: AssociationSource::Both,
    }];
    objects.extend(custom.iter().map(|name| ObjectDef {
        name: name.clone(),
        fields: strings(&CUSTOM_FIELDS),
        team_fields: strings(&["team"]),
        relationships: vec![Relationship {
            field: CONTACTS.to_owned(),
            object: CONTACTS.to_owned(),
        }],
        association_source: AssociationSource::Direct,
    }));
    objects
}

const LEVELS: [AccessLevel; 4] = [
    AccessLevel::None,
    AccessLevel::View,
    AccessLevel::Edit,
    AccessLevel::Remove,
];
const FIELD_LEVELS: [FieldLevel; 3] = [FieldLevel::None, FieldLevel::View, FieldLevel::Edit];

/// `g0` and `g1` are the fixed benchmark groups; the rest are drawn.
fn groups(rng: &mut Rng, count: usize, custom: &[String]) -> Vec<Group> {
    let fixed = [
        ObjectPermissions {
            view_object: true,
            all_records: AccessLevel::View,
            associated_records: AccessLevel::Edit,
            create_record: true,
            actions: Toggle::ALL.to_vec(),
            default_for_new_field: FieldLevel::Edit,
            ..ObjectPermissions::default()
        },
        ObjectPermissions {
            view_object: true,
            all_records: AccessLevel::None,
            associated_records: AccessLevel::Edit,
            actions: vec![Toggle::BulkSendEmail, Toggle::BulkChangeTags],
            default_for_new_field: FieldLevel::View,
            ..ObjectPermissions::default()
        },
    ];
    (0..count)
        .map(|n| {
            let mut objects = BTreeMap::new();
            let contacts = match fixed.get(n) {
                Some(p) => p.clone(),
                None => random_permissions(rng, true),
            };
            objects.insert(CONTACTS.to_owned(), contacts);
            for object in custom {
                if n < fixed.len() || rng.chance(60) {
                    objects.insert(object.clone(), random_permissions(rng, false));
                }
            }
            Group {
                id: format!("g{n}"),
                create_objects: rng.chance(10),
                objects,
            }
        })
        .collect()
}

/// Random settings that keep the catalog's rules (R5, R5b, R7), as the
/// platform's own editor would.
fn random_permissions(rng: &mut Rng, contacts: bool) -> ObjectPermissions {
    let all = *rng.pick(&LEVELS[..3]).unwrap_or(&AccessLevel::None);
    let associated = (*rng.pick(&LEVELS[1..]).unwrap_or(&AccessLevel::View)).max(all);
    let create_record = associated >= AccessLevel::Edit && rng.chance(60);
    let unarchive_associated = rng.chance(30);
    let actions = Toggle::ALL
        .into_iter()
        .filter(|t| contacts || !t.contacts_only())
        .filter(|_| rng.chance(40))
        .collect();
    let default_for_new_field = *rng.pick(&FIELD_LEVELS).unwrap_or(&FieldLevel::None);
    let mut fields = BTreeMap::new();
    let names: &[&str] = if contacts {
        &["email", "mobile_phone", "tags", "email_status", "birthday"]
    } else {
        &CUSTOM_FIELDS
    };
    for name in names {
        if rng.chance(30) {
            let mut level = *rng.pick(&FIELD_LEVELS).unwrap_or(&FieldLevel::None);
            if contacts && *name == "email" {
                // R7: edit exactly when a scope is edit or above.
                level = if associated >= AccessLevel::Edit {
                    FieldLevel::Edit
                } else {
                    level.min(FieldLevel::View)
                };
            }
            fields.insert((*name).to_owned(), level);
        }
    }
    ObjectPermissions {
        view_object: rng.chance(80),
        edit_settings: rng.chance(10),
        delete_object: rng.chance(5),
        all_records: all,
        associated_records: associated,
        create_record,
        bulk_data_upload: create_record && rng.chance(50),
        unarchive_associated,
        unarchive_all: unarchive_associated && rng.chance(50),
        actions,
        default_for_new_field,
        fields,
    }
}

/// `r0` = [`g0`], `r1` = [`g1`]; others bundle one to three drawn groups.
fn roles(rng: &mut Rng, count: usize, groups: usize) -> Vec<Role> {
    (0..count)
        .map(|n| {
            let ids = if n < 2 {
                vec![format!("g{n}")]
            } else {
                let mut ids: Vec<String> = (0..1 + rng.below(3))
                    .map(|_| format!("g{}", 2 + rng.below(groups.saturating_sub(2))))
                    .collect();
                ids.sort();
                ids.dedup();
                ids
            };
            Role {
                id: format!("r{n}"),
                groups: ids,
            }
        })
        .collect()
}

fn users(rng: &mut Rng, spec: &GenSpec) -> Vec<User> {
    (0..spec.users)
        .map(|n| {
            let role = if n < 2 { n } else { rng.below(spec.roles) };
            let extra = if n >= 2 && rng.chance(20) {
                vec![format!("g{}", rng.below(spec.groups))]
            } else {
                vec![]
            };
            User {
                id: user_id(n),
                // One admin among the drawn users, as tenants have.
                admin: n == spec.users - 1,
                roles: vec![format!("r{role}")],
                groups: extra,
                ..User::default()
            }
        })
        .collect()
}

/// The team field `field` with one or two users, `percent` of the time.
fn team(rng: &mut Rng, users: usize, percent: u64, field: &str) -> BTreeMap<String, Vec<String>> {
    if !rng.chance(percent) {
        return BTreeMap::new();
    }
    let mut members: Vec<String> = (0..1 + rng.below(2))
        .map(|_| user_id(rng.below(users)))
        .collect();
    members.sort();
    members.dedup();
    BTreeMap::from([(field.to_owned(), members)])
}

fn contact(rng: &mut Rng, spec: &GenSpec, id: Uuid, n: usize) -> Record {
    let mut teams: crate::model::data::Teams = team(rng, spec.users, 40, "account_team").into();
    // Contacts have no owner (R8): the owning rep is an account_team member.
    if let Some(owner) = rng.chance(95).then(|| user_id(rng.below(spec.users))) {
        teams.add_member("account_team", owner);
    }
    let interactions = if rng.chance(30) {
        vec![user_id(rng.below(spec.users))]
    } else {
        vec![]
    };
    Record {
        id,
        object: CONTACTS.to_owned(),
        owner: None,
        teams,
        interactions,
        links: BTreeMap::new(),
        archived: rng.chance(2),
        contact: Some(contact_state(rng, n)),
    }
}

/// About 70% opted in, 10% unsubscribed from all, 3% suppressed (a third of
/// them soft bounces, some over and some running), 5% without a valid
/// email, 20% without a valid mobile, 5% opted out of SMS.
fn contact_state(rng: &mut Rng, n: usize) -> ContactState {
    let roll = rng.below(100);
    let (email_status, suppressed, suppressed_until) = match roll {
        0..=69 => (EmailStatus::OptedIn, false, None),
        70..=79 => (EmailStatus::UnsubscribedAll, false, None),
        80..=86 => (EmailStatus::NotOptedIn, false, None),
        87..=93 => (EmailStatus::OptedOut, false, None),
        94..=96 => (EmailStatus::OptedIn, true, None),
        97 => (
            EmailStatus::OptedIn,
            true,
            Some(datetime!(2024-01-01 00:00 UTC)),
        ),
        _ => (
            EmailStatus::OptedIn,
            true,
            Some(datetime!(2099-01-01 00:00 UTC)),
        ),
    };
    let opted_out_lists = if email_status == EmailStatus::OptedOut || rng.chance(3) {
        rng.pick(&LISTS)
            .map(|l| vec![(*l).to_owned()])
            .unwrap_or_default()
    } else {
        vec![]
    };
    let email_roll = rng.below(100);
    let mobile_roll = rng.below(100);
    ContactState {
        email: (email_roll >= 3).then(|| format!("c{n}@example.com")),
        // 3% no address, 2% an address that bounces.
        email_valid: !(3..5).contains(&email_roll),
        email_status,
        suppressed,
        suppressed_until,
        opted_out_lists,
        mobile_phone: (mobile_roll >= 12).then(|| format!("+1555{n:07}")),
        // 12% no number, 8% one that is not a valid mobile.
        mobile_valid: !(12..20).contains(&mobile_roll),
        sms_opted_out: rng.chance(5),
    }
}

/// The ids of a tenant's records of one object, in file order: what a
/// benchmark draws its batches from.
pub fn record_ids(data: &DataFile, tenant: &str, object: &str) -> Vec<Uuid> {
    data.tenants
        .iter()
        .filter(|t| t.id == tenant)
        .flat_map(|t| &t.records)
        .filter(|r| r.object == object)
        .map(|r| r.id)
        .collect()
}

/// `count` ids drawn from `ids` (with repetition), deterministic per seed.
pub fn sample(ids: &[Uuid], count: usize, seed: u64) -> Vec<Uuid> {
    let mut rng = Rng(seed);
    (0..count)
        .filter_map(|_| ids.get(rng.below(ids.len())).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::validate::validate;

    fn small() -> GenSpec {
        GenSpec {
            contacts: 2_000,
            users: 40,
            groups: 8,
            roles: 5,
            custom_objects: 2,
            ..GenSpec::default()
        }
    }

    #[test]
    fn generated_data_is_valid_and_deterministic() {
        let a = generate(&small());
        let report = validate(&a);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(a, generate(&small()));
        let other_seed = generate(&GenSpec { seed: 7, ..small() });
        assert_ne!(a, other_seed);
    }

    #[test]
    fn generated_sizes_follow_the_spec() {
        let data = generate(&small());
        let tenant = data.tenants.first().cloned().unwrap_or_default();
        assert_eq!(tenant.users.len(), 40);
        assert_eq!(tenant.groups.len(), 8);
        assert_eq!(tenant.roles.len(), 5);
        assert_eq!(tenant.objects.len(), 3);
        assert_eq!(record_ids(&data, "bench", CONTACTS), contact_ids(&small()));
        assert_eq!(record_ids(&data, "bench", "obj1").len(), 100);
        let opted_in = tenant
            .records
            .iter()
            .filter_map(|r| r.contact.as_ref())
            .filter(|c| c.email_status == EmailStatus::OptedIn && !c.suppressed)
            .count();
        assert!((1_300..1_500).contains(&opted_in), "{opted_in}");
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(
            GenSpec {
                users: 1,
                ..small()
            }
            .check()
            .is_err()
        );
        assert!(
            GenSpec {
                custom_records_per_contact: -1.0,
                ..small()
            }
            .check()
            .is_err()
        );
        assert!(small().check().is_ok());
    }
}
