//! Checks a parsed [`DataFile`] before anything is indexed, so a bad file is
//! refused whole with the path of each problem (`tenants[0].groups[2].objects
//! .contacts.fields.emial`).
//!
//! Dangling references are handled by what they could do to access:
//! - a user, role or group named in a *grant* (a user's roles and groups, an
//!   integration's groups, an automation's `run_as`) must exist: a typo there
//!   is a configuration mistake, and the load fails;
//! - a user named on a *record* (owner, team field, interaction) or a linked
//!   record id that does not exist is kept out of the index with a warning:
//!   it associates nobody, so it can only narrow access, never widen it.

use std::collections::{HashMap, HashSet};
use std::fmt;

use uuid::Uuid;

use super::data::{
    CONTACT_SYSTEM_FIELDS, CONTACTS, CUSTOM_SYSTEM_FIELDS, DataFile, EmailStatus, ObjectDef,
    ObjectPermissions, RunAs, Tenant, V1_ALL_FIELDS,
};
use super::level::{AccessLevel, FieldLevel};

/// One problem in a data file, located by its path inside the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What validation found: `errors` refuse the file, `warnings` are logged.
#[derive(Debug, Default)]
pub struct Report {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Report {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// The fields of an object as permissions see them: plain fields (plus the
/// system fields: the Contact ones, or `created` on custom objects),
/// team-association fields and relationship fields.
pub fn object_fields(def: &ObjectDef) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    let mut push = |f: &str| {
        if !fields.iter().any(|x| x == f) {
            fields.push(f.to_owned());
        }
    };
    if def.name == CONTACTS {
        CONTACT_SYSTEM_FIELDS.iter().for_each(|f| push(f));
    } else {
        CUSTOM_SYSTEM_FIELDS.iter().for_each(|f| push(f));
    }
    def.fields.iter().for_each(|f| push(f));
    def.team_fields.iter().for_each(|f| push(f));
    def.relationships.iter().for_each(|r| push(&r.field));
    fields
}

/// The tenant's objects with `contacts` always present (first) and merged
/// with its listed definition, if any.
pub fn tenant_objects(tenant: &Tenant) -> Vec<ObjectDef> {
    let mut objects = vec![
        tenant
            .objects
            .iter()
            .find(|o| o.name == CONTACTS)
            .cloned()
            .unwrap_or_else(|| ObjectDef {
                name: CONTACTS.to_owned(),
                ..ObjectDef::default()
            }),
    ];
    objects.extend(
        tenant
            .objects
            .iter()
            .filter(|o| o.name != CONTACTS)
            .cloned(),
    );
    objects
}

fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    names
        .into_iter()
        .map(|n| n.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Most tenants one data file may hold. An empty tenant is ~20 bytes of
/// JSON but kilobytes of index: without a bound, a small file could take
/// all memory.
pub const MAX_TENANTS: usize = 10_000;
/// Most (group, object) pairs in one tenant: each pair is a grant slot in
/// the index, so groups × objects, not their sum, is what memory pays.
pub const MAX_GROUP_OBJECT_PAIRS: usize = 1_000_000;

/// Validates every tenant of the file.
pub fn validate(file: &DataFile) -> Report {
    let mut report = Report::default();
    if file.tenants.len() > MAX_TENANTS {
        report.error(
            "tenants",
            format!(
                "{} tenants, above the limit of {MAX_TENANTS} per data file: split the file, or serve each group of tenants from its own permd",
                file.tenants.len()
            ),
        );
        return report;
    }
    let mut tenant_ids = HashSet::new();
    for (t, tenant) in file.tenants.iter().enumerate() {
        let at = format!("tenants[{t}]");
        if tenant.id.trim().is_empty() {
            report.error(format!("{at}.id"), "tenant id is empty");
        } else if !tenant_ids.insert(tenant.id.as_str()) {
            report.error(
                format!("{at}.id"),
                format!("duplicate tenant id '{}'", tenant.id),
            );
        }
        validate_tenant(&at, tenant, &mut report);
    }
    report
}

/// Checks one record written on its own (Admin.Write, the change feed)
/// against its tenant's objects (as [`tenant_objects`] gives them): the object exists, team and relationship
/// fields are the object's, contact state only on Contacts. Links to other
/// records are the caller's to check, against the records it holds.
pub fn validate_record(objects: &[ObjectDef], record: &super::data::Record) -> Vec<Problem> {
    let tenant = Tenant {
        records: vec![record.clone()],
        ..Tenant::default()
    };
    let mut report = Report::default();
    validate_records("", &tenant, objects, &HashSet::new(), &mut report);
    report
        .errors
        .into_iter()
        .map(|p| Problem {
            path: p.path.replacen(".records[0]", "record", 1),
            ..p
        })
        .collect()
}

fn unique<'a>(
    report: &mut Report,
    at: &str,
    kind: &str,
    ids: impl Iterator<Item = &'a str>,
) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        if id.trim().is_empty() {
            report.error(
                format!("{at}.{kind}[{i}].id"),
                format!("{kind} id is empty"),
            );
        } else if !seen.insert(id) {
            report.error(
                format!("{at}.{kind}[{i}].id"),
                format!("duplicate id '{id}'"),
            );
        }
    }
    seen
}

fn validate_tenant(at: &str, tenant: &Tenant, report: &mut Report) {
    let pairs = tenant.groups.len().saturating_mul(tenant.objects.len() + 1);
    if pairs > MAX_GROUP_OBJECT_PAIRS {
        report.error(
            at,
            format!(
                "{} groups × {} objects is {pairs} grant slots, above the limit of {MAX_GROUP_OBJECT_PAIRS}: merge groups or objects",
                tenant.groups.len(),
                tenant.objects.len() + 1
            ),
        );
        return;
    }
    let objects = tenant_objects(tenant);
    let mut object_names = HashSet::new();
    for (i, o) in tenant.objects.iter().enumerate() {
        if o.name.trim().is_empty() {
            report.error(format!("{at}.objects[{i}].name"), "object name is empty");
        } else if !object_names.insert(o.name.as_str()) {
            report.error(
                format!("{at}.objects[{i}].name"),
                format!("duplicate object '{}'", o.name),
            );
        }
        let mut fields = HashSet::new();
        let declared = o
            .fields
            .iter()
            .chain(&o.team_fields)
            .chain(o.relationships.iter().map(|r| &r.field));
        for f in declared {
            if f == V1_ALL_FIELDS || f.trim().is_empty() {
                report.error(
                    format!("{at}.objects[{i}]"),
                    format!("'{f}' is not a valid field name"),
                );
            } else if !fields.insert(f.as_str()) {
                report.error(
                    format!("{at}.objects[{i}]"),
                    format!("field '{f}' is declared twice"),
                );
            }
        }
        for (r, rel) in o.relationships.iter().enumerate() {
            if !objects.iter().any(|x| x.name == rel.object) {
                report.error(
                    format!("{at}.objects[{i}].relationships[{r}].object"),
                    format!(
                        "unknown object '{}'; objects are: {}",
                        rel.object,
                        list(objects.iter().map(|o| &o.name))
                    ),
                );
            }
        }
    }
    let fields_of: HashMap<&str, Vec<String>> = objects
        .iter()
        .map(|o| (o.name.as_str(), object_fields(o)))
        .collect();
    let object_list = || list(objects.iter().map(|o| &o.name));

    let groups = unique(
        report,
        at,
        "groups",
        tenant.groups.iter().map(|g| g.id.as_str()),
    );
    for (g, group) in tenant.groups.iter().enumerate() {
        for (object, perms) in &group.objects {
            let here = format!("{at}.groups[{g}].objects.{object}");
            let Some(fields) = fields_of.get(object.as_str()) else {
                report.error(
                    here,
                    format!("unknown object '{object}'; objects are: {}", object_list()),
                );
                continue;
            };
            for field in perms.fields.keys() {
                if field != V1_ALL_FIELDS && !fields.contains(field) {
                    report.error(
                        format!("{here}.fields.{field}"),
                        format!(
                            "unknown field '{field}' on {object}; fields are: {}",
                            list(fields)
                        ),
                    );
                }
            }
            for p in object_problems(&group.id, object, perms) {
                report.error(
                    format!("{here}.{}", p.path),
                    format!("tenant '{}', {}", tenant.id, p.message),
                );
            }
        }
    }
    let check_groups = |report: &mut Report, path: String, names: &[String]| {
        for (i, name) in names.iter().enumerate() {
            if !groups.contains(name.as_str()) {
                report.error(format!("{path}[{i}]"), format!("unknown group '{name}'"));
            }
        }
    };
    let roles = unique(
        report,
        at,
        "roles",
        tenant.roles.iter().map(|r| r.id.as_str()),
    );
    for (r, role) in tenant.roles.iter().enumerate() {
        check_groups(report, format!("{at}.roles[{r}].groups"), &role.groups);
    }
    let users = unique(
        report,
        at,
        "users",
        tenant.users.iter().map(|u| u.id.as_str()),
    );
    for (u, user) in tenant.users.iter().enumerate() {
        for (i, role) in user.roles.iter().enumerate() {
            if !roles.contains(role.as_str()) {
                report.error(
                    format!("{at}.users[{u}].roles[{i}]"),
                    format!("unknown role '{role}'"),
                );
            }
        }
        check_groups(report, format!("{at}.users[{u}].groups"), &user.groups);
    }
    let integrations = unique(
        report,
        at,
        "integrations",
        tenant.integrations.iter().map(|i| i.id.as_str()),
    );
    for (i, integration) in tenant.integrations.iter().enumerate() {
        let here = format!("{at}.integrations[{i}]");
        for p in integration_problems(integration) {
            report.error(format!("{here}.{}", p.path), p.message);
        }
        match &integration.user {
            None => report.error(
                format!("{here}.user"),
                format!(
                    "integration '{}' names no user: an integration is an API key of a user and acts as that user (a service account, service_account: true, for a non-human key)",
                    integration.id
                ),
            ),
            Some(user) if !users.contains(user.as_str()) => report.error(
                format!("{here}.user"),
                format!("unknown user '{user}'"),
            ),
            Some(_) => {}
        }
    }
    unique(
        report,
        at,
        "automations",
        tenant.automations.iter().map(|a| a.id.as_str()),
    );
    for (a, automation) in tenant.automations.iter().enumerate() {
        let (known, kind, id) = match &automation.run_as {
            RunAs::User(id) => (users.contains(id.as_str()), "user", id),
            RunAs::Integration(id) => (integrations.contains(id.as_str()), "integration", id),
        };
        if !known {
            report.error(
                format!("{at}.automations[{a}].run_as"),
                format!("unknown {kind} '{id}'"),
            );
        }
    }
    validate_records(at, tenant, &objects, &users, report);
}

fn validate_records(
    at: &str,
    tenant: &Tenant,
    objects: &[ObjectDef],
    users: &HashSet<&str>,
    report: &mut Report,
) {
    let mut object_of: HashMap<Uuid, &str> = HashMap::with_capacity(tenant.records.len());
    let mut checks = RecordChecks::new(at, objects, users);
    for (r, record) in tenant.records.iter().enumerate() {
        let first = object_of
            .insert(record.id, record.object.as_str())
            .is_none();
        checks.record(r, record, first);
    }
    checks.finish(
        |ids, out| {
            for (id, o) in ids.iter().zip(out.iter_mut()) {
                *o = object_of.get(id).copied();
            }
        },
        report,
    );
}

/// The checks of a tenant's records, one record at a time, for a loader
/// that does not hold them all (`src/source/stream.rs`) as for
/// [`validate`]: what can be checked from the record alone is checked as
/// it comes; its links are kept, compactly, until every record is known.
pub struct RecordChecks<'a> {
    at: String,
    objects: &'a [ObjectDef],
    users: &'a HashSet<&'a str>,
    links: Vec<PendingLink>,
    dangling_users: usize,
    report: Report,
    /// Name records by id in problems (`records[id=…]`), where their
    /// position means nothing (rows of a table).
    by_id: bool,
}

/// A link to check once every record is known: record `record` links
/// through `objects[object].relationships[relationship]`, at `position`.
struct PendingLink {
    record: usize,
    from: Uuid,
    object: u32,
    relationship: u32,
    position: u32,
    to: Uuid,
}

impl<'a> RecordChecks<'a> {
    /// Checks for the records of the tenant at `at` (`tenants[3]`), whose
    /// objects are `objects` (as [`tenant_objects`] gives them) and whose
    /// user ids are `users`.
    pub fn new(at: &str, objects: &'a [ObjectDef], users: &'a HashSet<&'a str>) -> Self {
        RecordChecks {
            at: at.to_owned(),
            objects,
            users,
            links: Vec::new(),
            dangling_users: 0,
            report: Report::default(),
            by_id: false,
        }
    }

    /// As [`RecordChecks::new`], naming records by id rather than position.
    pub fn by_id(mut self) -> Self {
        self.by_id = true;
        self
    }

    /// An id that more than one record has, found after the records were
    /// checked one by one (a loader that indexes as it reads finds ids
    /// repeated across objects at the end).
    pub fn duplicate(&mut self, id: &Uuid) {
        self.report.error(
            format!("{}.records[id={id}].id", self.at),
            format!("duplicate record id {id}: two records of different objects have it"),
        );
    }

    /// The first error found so far.
    pub fn first_error(&self) -> Option<&Problem> {
        self.report.errors.first()
    }

    /// Checks record number `r`; `first` is false when its id came before.
    pub fn record(&mut self, r: usize, record: &super::data::Record, first: bool) {
        // The record's path, written only for a problem.
        let (at, by_id) = (&self.at, self.by_id);
        let here = || record_path(at, by_id, r, &record.id);
        if !first {
            self.report.error(
                format!("{}.id", here()),
                format!("duplicate record id {}", record.id),
            );
        }
        let Some((o, def)) = self
            .objects
            .iter()
            .enumerate()
            .find(|(_, o)| o.name == record.object)
        else {
            self.report.error(
                format!("{}.object", here()),
                format!(
                    "unknown object '{}'; objects are: {}",
                    record.object,
                    list(self.objects.iter().map(|o| &o.name))
                ),
            );
            return;
        };
        for team in record.teams.keys() {
            if !def.team_fields.contains(team) {
                self.report.error(
                    format!("{}.teams.{team}", here()),
                    format!(
                        "'{team}' is not a team field of {}; team fields are: {}",
                        def.name,
                        list(&def.team_fields)
                    ),
                );
            }
        }
        for (field, ids) in &record.links {
            let Some(rel) = def.relationships.iter().position(|rel| &rel.field == field) else {
                self.report.error(
                    format!("{}.links.{field}", here()),
                    format!(
                        "'{field}' is not a relationship field of {}; relationship fields are: {}",
                        def.name,
                        list(def.relationships.iter().map(|r| &r.field))
                    ),
                );
                continue;
            };
            for (i, id) in ids.iter().enumerate() {
                self.links.push(PendingLink {
                    record: r,
                    from: record.id,
                    object: u32::try_from(o).unwrap_or(u32::MAX),
                    relationship: u32::try_from(rel).unwrap_or(u32::MAX),
                    position: u32::try_from(i).unwrap_or(u32::MAX),
                    to: *id,
                });
            }
        }
        for p in record_problems(record, def.team_fields.first()) {
            self.report
                .error(format!("{}.{}", here(), p.path), p.message);
        }
        let named_users = record
            .owner
            .iter()
            .chain(record.teams.values().flatten())
            .chain(&record.interactions);
        self.dangling_users += named_users
            .filter(|u| !self.users.contains(u.as_str()))
            .count();
    }

    /// Checks the links against every record and adds the problems to
    /// `report`. `objects_of(ids, out)` names in `out[i]` the object of
    /// `ids[i]` (`None`: no such record); it is asked a chunk of links at a
    /// time, so that a loader's lookups overlap.
    pub fn finish<'r>(
        self,
        mut objects_of: impl FnMut(&[Uuid], &mut [Option<&'r str>]),
        report: &mut Report,
    ) {
        let RecordChecks {
            at,
            objects,
            links,
            dangling_users,
            report: mut mine,
            by_id,
            ..
        } = self;
        let mut dangling_links = 0usize;
        let mut tos = Vec::with_capacity(LINKS_PER_LOOKUP);
        let mut found = vec![None; LINKS_PER_LOOKUP];
        for chunk in links.chunks(LINKS_PER_LOOKUP) {
            tos.clear();
            tos.extend(chunk.iter().map(|link| link.to));
            let found = found.get_mut(..chunk.len()).unwrap_or_default();
            // What the closure leaves unwritten is a dangling link, never
            // the previous chunk's answer.
            found.fill(None);
            objects_of(&tos, found);
            for (link, object) in chunk.iter().zip(found.iter()) {
                let Some(rel) = objects
                    .get(link.object as usize)
                    .and_then(|def| def.relationships.get(link.relationship as usize))
                else {
                    continue;
                };
                match object {
                    None => dangling_links += 1,
                    Some(object) if *object != rel.object => mine.error(
                        format!(
                            "{}.links.{}[{}]",
                            record_path(&at, by_id, link.record, &link.from),
                            rel.field,
                            link.position
                        ),
                        format!(
                            "record {} is a {object} record, but '{}' links to {}",
                            link.to, rel.field, rel.object
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        if dangling_users > 0 {
            mine.warn(
                format!("{at}.records"),
                format!("{dangling_users} owner/team/interaction entries name users that do not exist; they associate nobody"),
            );
        }
        if dangling_links > 0 {
            mine.warn(
                format!("{at}.records"),
                format!(
                    "{dangling_links} links point to records that do not exist; they are ignored"
                ),
            );
        }
        report.errors.append(&mut mine.errors);
        report.warnings.append(&mut mine.warnings);
    }
}

/// Links whose targets [`RecordChecks::finish`] asks about at a time.
const LINKS_PER_LOOKUP: usize = 4096;

fn record_path(at: &str, by_id: bool, r: usize, id: &Uuid) -> String {
    if by_id {
        format!("{at}.records[id={id}]")
    } else {
        format!("{at}.records[{r}]")
    }
}

/// The user ids of a tenant, as [`validate`] checks records against them.
pub fn user_ids(tenant: &Tenant) -> HashSet<&str> {
    tenant.users.iter().map(|u| u.id.as_str()).collect()
}

/// The catalog rules a group's settings on one object break (R5, R5b, R7):
/// the control at fault and a message naming the rule. A group that breaks
/// one is refused, never corrected: which way to correct it is the
/// writer's decision.
pub fn catalog_violations(object: &str, perms: &ObjectPermissions) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut broken = |control: &str, message: String| out.push((control.to_owned(), message));
    let assoc = perms.associated_records;
    if assoc == AccessLevel::None {
        broken(
            "associated_records",
            "associated_records is missing or none; set it to view, edit or remove (R5: My Associated Records is never none)".to_owned(),
        );
    }
    // With `none` the rule above already says what to set.
    if assoc != AccessLevel::None && assoc < perms.all_records {
        broken(
            "associated_records",
            format!(
                "associated_records is {} but all_records is {}; raise associated_records to at least {} (R5: My Associated Records is never below All Records)",
                assoc.as_str(),
                perms.all_records.as_str(),
                perms.all_records.as_str()
            ),
        );
    }
    if perms.create_record && assoc < AccessLevel::Edit {
        broken(
            "create_record",
            format!(
                "create_record is on but associated_records is {}; create_record needs associated_records edit or remove (R5b)",
                assoc.as_str()
            ),
        );
    }
    if perms.bulk_data_upload && !perms.create_record {
        broken(
            "bulk_data_upload",
            "bulk_data_upload is on but create_record is off; bulk data upload needs create_record (R5b)".to_owned(),
        );
    }
    if perms.unarchive_all && !perms.unarchive_associated {
        broken(
            "unarchive_all",
            "unarchive_all is on but unarchive_associated is off; unarchive_all needs unarchive_associated (R5b)".to_owned(),
        );
    }
    if object == CONTACTS
        && let Some(level) = perms.fields.get("email")
    {
        let editable = perms.best_scope() >= AccessLevel::Edit;
        if editable && *level != FieldLevel::Edit {
            broken(
                "fields.email",
                format!(
                    "email is {} but a scope is {}; email must be edit when all_records or associated_records is edit or remove (R7), or left out",
                    level.as_str(),
                    perms.best_scope().as_str()
                ),
            );
        } else if !editable && *level == FieldLevel::Edit {
            broken(
                "fields.email",
                "email is edit but no scope is edit or remove; email is at most view then (R7)"
                    .to_owned(),
            );
        }
    }
    if object != CONTACTS && perms.fields.get("created") == Some(&FieldLevel::Edit) {
        broken(
            "fields.created",
            "created is edit; the created field of a custom object is none or view only (R7)"
                .to_owned(),
        );
    }
    out
}

/// The rules one entity must keep on its own, whatever else its tenant
/// holds: v1 shapes v2 refuses and the catalog's rules, as `path: message`
/// with the path inside the entity. `validate` reports the same problems
/// inside a file; the database keeps the same rules where rows are written
/// (migrations/20261202000002_validate_rows.sql; tests/postgres_validation.rs
/// holds both to the same verdict), and Admin.Write checks them per
/// mutation. Rules that need other entities are `validate`'s alone.
pub fn entity_problems(entity: &super::change::Entity) -> Vec<String> {
    use super::change::Entity;
    let problems = match entity {
        Entity::Group(group) => group
            .objects
            .iter()
            .flat_map(|(object, perms)| {
                object_problems(&group.id, object, perms)
                    .into_iter()
                    .map(move |p| Problem {
                        path: format!("objects.{object}.{}", p.path),
                        ..p
                    })
            })
            .collect(),
        Entity::Integration(integration) => integration_problems(integration),
        Entity::Record(record) => record_problems(record, None),
        _ => Vec::new(),
    };
    problems.iter().map(Problem::to_string).collect()
}

/// A group's settings on one object, on their own: toggles that exist only
/// on Contacts, v1's "set all", and the catalog's rules. Paths are inside
/// the object's settings.
fn object_problems(group: &str, object: &str, perms: &ObjectPermissions) -> Vec<Problem> {
    let who = format!("group '{group}', object '{object}'");
    let mut problems = Vec::new();
    for toggle in &perms.actions {
        if toggle.contacts_only() && object != CONTACTS {
            problems.push(Problem {
                path: "actions".to_owned(),
                message: format!("{who}: '{}' exists only on contacts", toggle.as_str()),
            });
        }
    }
    if perms.fields.contains_key(V1_ALL_FIELDS) {
        problems.push(Problem {
            path: "fields.*".to_owned(),
            message: format!(
                "{who}: '*' is v1's \"set all\": model v2 has default_for_new_field: <level> for every field the group does not name"
            ),
        });
    }
    for (control, message) in catalog_violations(object, perms) {
        problems.push(Problem {
            path: control,
            message: format!("{who}: {message}"),
        });
    }
    problems
}

/// v1's groups of an integration's own (it acts as its user in v2).
fn integration_problems(integration: &super::data::Integration) -> Vec<Problem> {
    if integration.groups.is_none() {
        return Vec::new();
    }
    let owner = match integration.user.as_deref() {
        Some(user) => format!("user '{user}'"),
        None => "the user whose API key it is".to_owned(),
    };
    vec![Problem {
        path: "groups".to_owned(),
        message: format!(
            "integration '{}': integrations act as their user in model v2 and have no groups of their own: give these groups to {owner} (or to a service-account user that owns the key)",
            integration.id
        ),
    }]
}

/// A record on its own: no owner on a Contact, Contact state only on
/// Contacts, a suppression end only with a suppression. `team_field` names
/// a team field of contacts for the owner hint, when known.
fn record_problems(record: &super::data::Record, team_field: Option<&String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    if record.object == CONTACTS
        && let Some(owner) = &record.owner
    {
        problems.push(Problem {
            path: "owner".to_owned(),
            message: format!(
                "contacts have no owner in model v2: put '{owner}' in a team field of contacts{} or in interactions",
                team_field.map(|f| format!(" (e.g. {f})")).unwrap_or_default()
            ),
        });
    }
    match (&record.contact, record.object == CONTACTS) {
        (Some(_), false) => problems.push(Problem {
            path: "contact".to_owned(),
            message: "contact state is only for contacts records".to_owned(),
        }),
        (Some(c), true)
            if c.suppressed_until.is_some()
                && !c.suppressed
                && c.email_status != EmailStatus::Suppressed =>
        {
            problems.push(Problem {
                path: "contact.suppressed_until".to_owned(),
                message: "suppressed_until needs suppressed: true (or email_status: suppressed)"
                    .to_owned(),
            })
        }
        _ => {}
    }
    problems
}
