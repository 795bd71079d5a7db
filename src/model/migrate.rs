//! Rewrites a v1 data document into model v2 (`permd migrate-data`).
//!
//! The v2 loader refuses every v1 spelling instead of guessing what it
//! meant, so the guessing lives here, once, where it can say what it did:
//! a rewrite that keeps exactly what v1 allowed is done silently; one whose
//! meaning shifts is done and noted; one that needs a human (every v2
//! reading would widen or narrow access) is left as it was, so the loader
//! keeps refusing it until someone decides. The same mapping runs on
//! PostgreSQL in migrations/20261202000001_model_v2.sql: keep them in step.
//!
//! It works on `serde_json::Value`, not on the model's types, because its
//! input is exactly what those types refuse.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// The v2 document and what a human should read before loading it.
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    pub doc: Value,
    /// Rewrites done whose meaning changed slightly.
    pub notes: Vec<String>,
    /// Left as they were: the v2 loader refuses them until someone decides.
    pub unmapped: Vec<String>,
}

const CONTACTS: &str = "contacts";
/// Access levels by rank; v1's `delete` ranks as `remove`.
const LEVELS: [&str; 4] = ["none", "view", "edit", "remove"];
const EDIT: u8 = 2;
const REMOVE: u8 = 3;
/// Group-entry keys v1 never had: an entry with one was written for v2 (or
/// migrated already), so only spellings are fixed in it.
const V2_CONTROLS: [&str; 5] = [
    "create_record",
    "bulk_data_upload",
    "unarchive_associated",
    "unarchive_all",
    "default_for_new_field",
];

/// Migrates `doc` unless it is already v2: a v2 file, or this function's
/// own output, comes back unchanged, and only what is still unmapped is
/// reported again.
pub fn migrate_v1(mut doc: Value) -> Migration {
    let mut report = Migration {
        doc: Value::Null,
        notes: Vec::new(),
        unmapped: Vec::new(),
    };
    if reads_as_v1(&doc) {
        for tenant in items_mut(&mut doc, "tenants") {
            migrate_tenant(tenant, &mut report);
        }
    }
    report.doc = doc;
    report
}

/// The file format has no version, so the document's spellings decide: a
/// v1-only one anywhere (what v2 refuses by name) makes it v1; a v2-only
/// key or level and no v1-only spelling makes it v2. A document with
/// neither reads alike in both models except for create (v1: an edit
/// scope; v2: `create_record`) and integrations without groups; this is
/// the v1 migration, so it takes it as v1, which keeps what v1 allowed. On
/// its own output that is harmless: entries it gave a v2 control are left
/// alone as written for v2, and the rest already reads the same in both.
fn reads_as_v1(doc: &Value) -> bool {
    let (mut v1, mut v2) = (false, false);
    for tenant in items(doc, "tenants") {
        for group in items(tenant, "groups") {
            for entry in group
                .get("objects")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(Map::values)
            {
                v1 |= entry_shows_v1(entry);
                v2 |= entry_shows_v2(entry);
            }
        }
        v1 |= items(tenant, "integrations")
            .any(|i| i.get("groups").is_some() || i.get("user").and_then(Value::as_str).is_none());
        v1 |= items(tenant, "records").any(contact_with_owner);
        v2 |= items(tenant, "users")
            .any(|u| u.get("service_account").is_some() || u.get("email_inbox").is_some());
    }
    v1 || !v2
}

fn entry_shows_v1(entry: &Value) -> bool {
    let level = |key: &str| entry.get(key).and_then(Value::as_str);
    let fields = entry.get("fields").and_then(Value::as_object);
    let actions = entry.get("actions").and_then(Value::as_array);
    let scopes = (
        rank(entry.get("all_records")),
        rank(entry.get("associated_records")),
    );
    level("all_records") == Some("delete")
        || level("associated_records") == Some("delete")
        || fields.is_some_and(|f| {
            f.contains_key("*") || f.values().any(|l| l.as_str() == Some("hidden"))
        })
        || actions.is_some_and(|a| a.iter().any(|t| t.as_str() == Some("upload")))
        || matches!(scopes, (Some(all), Some(assoc)) if assoc == 0 || assoc < all)
}

fn entry_shows_v2(entry: &Value) -> bool {
    let level = |key: &str| entry.get(key).and_then(Value::as_str);
    V2_CONTROLS.iter().any(|k| entry.get(*k).is_some())
        || level("all_records") == Some("remove")
        || level("associated_records") == Some("remove")
}

fn contact_with_owner(record: &Value) -> bool {
    record.get("object").and_then(Value::as_str) == Some(CONTACTS)
        && record.get("owner").is_some_and(|o| !o.is_null())
}

fn migrate_tenant(tenant: &mut Value, report: &mut Migration) {
    let tenant_id = id_of(tenant).to_owned();
    for group in items_mut(tenant, "groups") {
        let group_id = id_of(group).to_owned();
        let Some(objects) = group.get_mut("objects").and_then(Value::as_object_mut) else {
            continue;
        };
        for (object, entry) in objects.iter_mut() {
            let at = format!("tenant '{tenant_id}', group '{group_id}', object '{object}'");
            migrate_entry(&at, object, entry, report);
        }
    }
    migrate_integrations(&tenant_id, tenant, report);
    report_contact_owners(&tenant_id, tenant, report);
}

fn migrate_entry(at: &str, object: &str, entry: &mut Value, report: &mut Migration) {
    let written_for_v2 = entry_shows_v2(entry);
    let Some(e) = entry.as_object_mut() else {
        return;
    };
    respell(e);
    // An unknown level is the loader's to refuse; guessing around it could
    // only hide it.
    let (Some(all), Some(assoc)) = (
        rank(e.get("all_records")),
        rank(e.get("associated_records")),
    ) else {
        return;
    };
    if written_for_v2 {
        return;
    }
    // Associated records are a subset of all records, so raising My
    // Associated Records to All Records never widens access.
    let assoc = assoc.max(all);
    if assoc == 0 {
        report.unmapped.push(format!(
            "{at}: the group gives no record access on it (all_records and associated_records none); \
             v2's My Associated Records is at least view: set associated_records: view \
             (this widens access to associated records) or drop the object from the group"
        ));
    } else if let Some(name) = LEVELS.get(usize::from(assoc)) {
        e.insert("associated_records".to_owned(), Value::from(*name));
    }
    // v1's create and upload needed edit in some scope; unarchive needed
    // delete in a scope reaching the record.
    let edit = all >= EDIT || assoc >= EDIT;
    if edit {
        e.insert("create_record".to_owned(), Value::Bool(true));
    }
    if has_upload(e) {
        if edit {
            remove_upload(e);
            e.insert("bulk_data_upload".to_owned(), Value::Bool(true));
        } else {
            // v1 unions groups: this toggle allowed upload to every member
            // that gets edit on the object from another group.
            report.unmapped.push(format!(
                "{at}: 'upload' is on but no scope of this group is edit or more, so v2 cannot make it \
                 bulk_data_upload (which needs create_record); in v1 it allowed upload to members that \
                 get edit on this object from another group: drop 'upload' from this group, or give the \
                 group a scope at edit (then create_record and bulk_data_upload)"
            ));
        }
    }
    if all == REMOVE {
        e.insert("unarchive_all".to_owned(), Value::Bool(true));
    }
    if assoc == REMOVE {
        e.insert("unarchive_associated".to_owned(), Value::Bool(true));
    }
    check_catalog_fields(at, object, edit, e, report);
}

/// The renames that mean the same in both models.
fn respell(e: &mut Map<String, Value>) {
    for key in ["all_records", "associated_records"] {
        if e.get(key).and_then(Value::as_str) == Some("delete") {
            e.insert(key.to_owned(), Value::from("remove"));
        }
    }
    let Some(fields) = e.get_mut("fields").and_then(Value::as_object_mut) else {
        return;
    };
    for level in fields.values_mut() {
        if level.as_str() == Some("hidden") {
            *level = Value::from("none");
        }
    }
    if e.contains_key("default_for_new_field") {
        return;
    }
    let star = e
        .get_mut("fields")
        .and_then(Value::as_object_mut)
        .and_then(|f| f.remove("*"));
    if let Some(star) = star {
        e.insert("default_for_new_field".to_owned(), star);
        if e.get("fields")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            e.remove("fields");
        }
    }
}

fn has_upload(e: &Map<String, Value>) -> bool {
    e.get("actions")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|t| t.as_str() == Some("upload")))
}

fn remove_upload(e: &mut Map<String, Value>) {
    let Some(actions) = e.get_mut("actions").and_then(Value::as_array_mut) else {
        return;
    };
    actions.retain(|t| t.as_str() != Some("upload"));
    if actions.is_empty() {
        e.remove("actions");
    }
}

/// R7's catalog rules on contacts `email` and custom objects' `created`.
/// v2 fixes email's level from the group's scopes; where v1 gave the group
/// another level (stated, through `"*"`, or hidden by default) v2 would
/// widen or narrow it, so a human decides.
fn check_catalog_fields(
    at: &str,
    object: &str,
    edit: bool,
    e: &Map<String, Value>,
    report: &mut Migration,
) {
    let stated = |field: &str| {
        e.get("fields")
            .and_then(|f| f.get(field))
            .and_then(Value::as_str)
    };
    if object != CONTACTS {
        if stated("created") == Some("edit") {
            report.unmapped.push(format!(
                "{at}: field 'created' is stated 'edit'; in v2 every custom object has a system field \
                 'created' that is at most view (R7): set created: view (or none)"
            ));
        }
        return;
    }
    let (v1, how) = match stated("email") {
        Some(level) => (level, "stated"),
        None => match e.get("default_for_new_field").and_then(Value::as_str) {
            Some(level) => (level, "through '*'"),
            None => ("none", "hidden by default"),
        },
    };
    if edit && v1 != "edit" {
        report.unmapped.push(format!(
            "{at}: email is '{v1}' ({how}), but v2 makes email edit in a group whose all_records or \
             associated_records is edit or more (R7): set email: edit to accept that, or lower the \
             group's record levels to view"
        ));
    } else if !edit && v1 == "edit" {
        report.unmapped.push(format!(
            "{at}: email is 'edit' ({how}), but without edit record access v2 allows email at most view \
             (R7): set email: view (or none) to accept that, or give the group edit record access"
        ));
    }
}

/// v2 integrations act as a user. Each v1 integration becomes (or keeps)
/// a service-account user of its own holding exactly its v1 groups, so no
/// integration gains access by acting as someone else.
fn migrate_integrations(tenant_id: &str, tenant: &mut Value, report: &mut Migration) {
    let mut taken: HashSet<String> = HashSet::new();
    let mut service_accounts: HashSet<String> = HashSet::new();
    for user in items(tenant, "users") {
        taken.insert(id_of(user).to_owned());
        if user.get("service_account") == Some(&Value::Bool(true)) {
            service_accounts.insert(id_of(user).to_owned());
        }
    }
    let mut new_users = Vec::new();
    for integration in items_mut(tenant, "integrations") {
        let id = id_of(integration).to_owned();
        let at = format!("tenant '{tenant_id}', integration '{id}'");
        let service = format!("integration-{id}");
        let Some(i) = integration.as_object_mut() else {
            continue;
        };
        let groups = i
            .get("groups")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let user = i.get("user").and_then(Value::as_str).map(str::to_owned);
        let migrated = !i.contains_key("groups")
            && user.as_deref() == Some(service.as_str())
            && service_accounts.contains(&service);
        if migrated {
            continue;
        }
        if let (false, Some(u)) = (groups.is_empty(), &user) {
            report.unmapped.push(format!(
                "{at}: it has groups of its own ({}) and user '{u}'; v2 integrations act as their user: \
                 give '{u}' these groups, or make a service-account user that holds them and set it as \
                 the integration's user",
                names(&groups)
            ));
            continue;
        }
        if taken.contains(&service) {
            report.unmapped.push(format!(
                "{at}: v2 integrations act as a user, and the migration would make the service-account \
                 user '{service}' for it, but a user '{service}' exists already: rename that user, or set \
                 the integration's user yourself"
            ));
            continue;
        }
        report.notes.push(match &user {
            None if !groups.is_empty() => format!(
                "{at}: its groups ({}) moved to the new service-account user '{service}', which it now \
                 acts as",
                names(&groups)
            ),
            Some(u) => format!(
                "{at}: v1 gave it no permissions (no groups; user '{u}' only associated it with records); \
                 it now acts as the new service-account user '{service}' with no groups; in v2 it could \
                 act as '{u}' instead (user: {u}) if that was meant"
            ),
            None => format!(
                "{at}: it had no groups and no user (no permissions); it now acts as the new \
                 service-account user '{service}' with no groups"
            ),
        });
        let mut new_user = Map::new();
        new_user.insert("id".to_owned(), Value::from(service.as_str()));
        new_user.insert("service_account".to_owned(), Value::Bool(true));
        if !groups.is_empty() {
            new_user.insert("groups".to_owned(), Value::Array(groups));
        }
        i.remove("groups");
        i.insert("user".to_owned(), Value::from(service.as_str()));
        taken.insert(service);
        new_users.push(Value::Object(new_user));
    }
    if new_users.is_empty() {
        return;
    }
    let users = tenant
        .as_object_mut()
        .map(|t| t.entry("users").or_insert_with(|| Value::Array(Vec::new())))
        .and_then(Value::as_array_mut);
    if let Some(users) = users {
        users.extend(new_users);
    }
}

/// One message per tenant: a CRM has many contacts, and they all need the
/// same decision.
fn report_contact_owners(tenant_id: &str, tenant: &Value, report: &mut Migration) {
    let mut owned: Vec<&str> = items(tenant, "records")
        .filter(|r| contact_with_owner(r))
        .map(id_of)
        .collect();
    if owned.is_empty() {
        return;
    }
    owned.sort_unstable();
    let first: Vec<&str> = owned.iter().take(3).copied().collect();
    report.unmapped.push(format!(
        "tenant '{tenant_id}': {} contacts records have an owner (first ids: {}): contacts have no owner \
         in model v2: put the owner in a team field of contacts (e.g. sales_team) or in interactions",
        owned.len(),
        first.join(", ")
    ));
}

/// Rank of a level; absent means `none` (v1's default). `None` for a
/// value that is not a level.
fn rank(level: Option<&Value>) -> Option<u8> {
    match level {
        None | Some(Value::Null) => Some(0),
        Some(Value::String(s)) if s == "delete" => Some(REMOVE),
        Some(Value::String(s)) => LEVELS
            .iter()
            .position(|l| l == s)
            .and_then(|p| u8::try_from(p).ok()),
        Some(_) => None,
    }
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn items_mut<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

fn id_of(v: &Value) -> &str {
    v.get("id").and_then(Value::as_str).unwrap_or("?")
}

fn names(groups: &[Value]) -> String {
    groups
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;
    use serde_json::json;

    fn tenant(extra: Value) -> Value {
        let mut t = json!({"id": "acme"});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        json!({ "tenants": [t] })
    }

    /// A document with one group `g` giving `entry` on `object`.
    fn one_entry(object: &str, entry: Value) -> Value {
        tenant(json!({"groups": [{"id": "g", "objects": {object: entry}}]}))
    }

    fn entry_after(object: &str, entry: Value) -> (Value, Migration) {
        let m = migrate_v1(one_entry(object, entry));
        (
            m.doc["tenants"][0]["groups"][0]["objects"][object].clone(),
            m,
        )
    }

    fn only(messages: &[String]) -> &str {
        assert_eq!(messages.len(), 1, "{messages:#?}");
        &messages[0]
    }

    #[test]
    fn r5_r7_v1_spellings_become_v2_ones() {
        let (e, m) = entry_after(
            "deals",
            json!({"all_records": "delete", "associated_records": "delete",
                   "fields": {"*": "hidden", "amount": "edit", "stage": "hidden"}}),
        );
        assert_eq!(e["all_records"], "remove");
        assert_eq!(e["associated_records"], "remove");
        assert_eq!(e["default_for_new_field"], "none");
        assert_eq!(e["fields"], json!({"amount": "edit", "stage": "none"}));
        assert!(m.notes.is_empty() && m.unmapped.is_empty(), "{m:#?}");
        // A "*" that was the only field leaves no empty map behind.
        let (e, _) = entry_after(
            "deals",
            json!({"associated_records": "view", "fields": {"*": "view"}}),
        );
        assert_eq!(
            e,
            json!({"associated_records": "view", "default_for_new_field": "view"})
        );
    }

    #[test]
    fn r5_associated_records_is_raised_to_all_records_never_lowered() {
        let (e, _) = entry_after(
            "deals",
            json!({"all_records": "edit", "associated_records": "view"}),
        );
        assert_eq!(e["associated_records"], "edit");
        let (e, _) = entry_after("deals", json!({"all_records": "view"}));
        assert_eq!(
            e,
            json!({"all_records": "view", "associated_records": "view"})
        );
        let (e, _) = entry_after(
            "deals",
            json!({"all_records": "view", "associated_records": "edit"}),
        );
        assert_eq!(e["associated_records"], "edit");
    }

    #[test]
    fn r5_an_entry_without_record_access_is_left_for_a_human() {
        let before = json!({"view_object": true, "all_records": "none", "actions": ["export"]});
        let (e, m) = entry_after("deals", before.clone());
        assert_eq!(e, before);
        let msg = only(&m.unmapped);
        assert!(
            msg.starts_with("tenant 'acme', group 'g', object 'deals':"),
            "{msg}"
        );
        assert!(msg.contains("set associated_records: view"), "{msg}");
        assert!(msg.contains("drop the object from the group"), "{msg}");
    }

    #[test]
    fn r5b_create_record_is_on_exactly_when_a_scope_was_edit() {
        let (e, _) = entry_after("deals", json!({"associated_records": "view"}));
        assert_eq!(e.get("create_record"), None);
        let (e, _) = entry_after("deals", json!({"associated_records": "edit"}));
        assert_eq!(e["create_record"], true);
        let (e, _) = entry_after(
            "deals",
            json!({"all_records": "edit", "associated_records": "none"}),
        );
        assert_eq!(e["create_record"], true);
        assert_eq!(e["associated_records"], "edit");
    }

    #[test]
    fn r5b_upload_becomes_bulk_data_upload_where_the_group_can_create() {
        let (e, m) = entry_after(
            "deals",
            json!({"associated_records": "edit", "actions": ["export", "upload"]}),
        );
        assert_eq!(e["actions"], json!(["export"]));
        assert_eq!(e["bulk_data_upload"], true);
        assert_eq!(e["create_record"], true);
        assert!(m.notes.is_empty() && m.unmapped.is_empty(), "{m:#?}");
        let (e, _) = entry_after(
            "deals",
            json!({"all_records": "edit", "associated_records": "view", "actions": ["upload"]}),
        );
        assert_eq!(e.get("actions"), None);
        assert_eq!(e["bulk_data_upload"], true);
    }

    #[test]
    fn r5b_upload_without_an_edit_scope_is_left_for_a_human() {
        // Another group's edit scope made it work in v1 (the union of R1).
        let (e, m) = entry_after(
            "deals",
            json!({"all_records": "view", "associated_records": "view", "actions": ["upload"]}),
        );
        assert_eq!(e["actions"], json!(["upload"]));
        assert_eq!(e.get("bulk_data_upload"), None);
        let msg = only(&m.unmapped);
        assert!(
            msg.starts_with("tenant 'acme', group 'g', object 'deals': 'upload' is on"),
            "{msg}"
        );
        assert!(msg.contains("drop 'upload' from this group"), "{msg}");
        assert!(m.notes.is_empty());
    }

    #[test]
    fn r10_unarchive_follows_the_scope_that_had_delete() {
        let (e, _) = entry_after("deals", json!({"all_records": "delete"}));
        assert_eq!(e["unarchive_all"], true);
        assert_eq!(e["unarchive_associated"], true);
        let (e, _) = entry_after(
            "deals",
            json!({"all_records": "view", "associated_records": "delete"}),
        );
        assert_eq!(e.get("unarchive_all"), None);
        assert_eq!(e["unarchive_associated"], true);
        let (e, _) = entry_after(
            "deals",
            json!({"all_records": "edit", "associated_records": "edit"}),
        );
        assert_eq!(e.get("unarchive_all"), None);
        assert_eq!(e.get("unarchive_associated"), None);
    }

    #[test]
    fn r7_email_at_a_level_v2_would_change_is_left_for_a_human() {
        let cases = [
            // (scopes and fields, what the message says v1 gave)
            (
                json!({"associated_records": "edit", "fields": {"email": "view"}}),
                "'view' (stated)",
            ),
            (
                json!({"all_records": "delete", "fields": {"email": "hidden"}}),
                "'none' (stated)",
            ),
            (
                json!({"associated_records": "edit", "fields": {"*": "view"}}),
                "'view' (through '*')",
            ),
            (
                json!({"associated_records": "edit", "fields": {"tags": "edit"}}),
                "'none' (hidden by default)",
            ),
            (
                json!({"associated_records": "view", "fields": {"email": "edit"}}),
                "'edit' (stated)",
            ),
            (
                json!({"associated_records": "view", "fields": {"*": "edit"}}),
                "'edit' (through '*')",
            ),
        ];
        for (entry, said) in cases {
            let (e, m) = entry_after("contacts", entry.clone());
            let msg = only(&m.unmapped);
            assert!(
                msg.starts_with(&format!(
                    "tenant 'acme', group 'g', object 'contacts': email is {said}"
                )),
                "{entry}: {msg}"
            );
            // Left as it was (v1's `hidden` spelled `none`).
            let was = entry["fields"].get("email").cloned();
            let was = was.map(|l| if l == "hidden" { json!("none") } else { l });
            assert_eq!(e["fields"].get("email"), was.as_ref(), "{entry}");
        }
        let (_, m) = entry_after(
            "contacts",
            json!({"associated_records": "edit", "fields": {"email": "view"}}),
        );
        assert!(only(&m.unmapped).contains("set email: edit"));
        let (_, m) = entry_after(
            "contacts",
            json!({"associated_records": "view", "fields": {"*": "edit"}}),
        );
        assert!(only(&m.unmapped).contains("set email: view"));
    }

    #[test]
    fn r7_email_at_the_level_v2_gives_it_maps_silently() {
        for entry in [
            json!({"associated_records": "edit", "fields": {"*": "edit"}}),
            json!({"associated_records": "edit", "fields": {"email": "edit"}}),
            json!({"all_records": "view", "associated_records": "view", "fields": {"email": "view"}}),
            json!({"associated_records": "view", "fields": {"*": "view"}}),
            json!({"associated_records": "view"}),
        ] {
            let (_, m) = entry_after("contacts", entry.clone());
            assert!(
                m.unmapped.is_empty() && m.notes.is_empty(),
                "{entry}: {m:#?}"
            );
        }
    }

    #[test]
    fn r7_created_stated_edit_on_a_custom_object_is_left_for_a_human() {
        let (e, m) = entry_after(
            "deals",
            json!({"associated_records": "edit", "fields": {"created": "edit"}}),
        );
        assert_eq!(e["fields"]["created"], "edit");
        let msg = only(&m.unmapped);
        assert!(msg.starts_with("tenant 'acme', group 'g', object 'deals': field 'created'"));
        assert!(msg.contains("set created: view"), "{msg}");
        let (_, m) = entry_after(
            "deals",
            json!({"associated_records": "edit", "fields": {"created": "view"}}),
        );
        assert!(m.unmapped.is_empty());
    }

    #[test]
    fn r8_integrations_act_as_a_service_account_of_their_own() {
        let doc = tenant(json!({
            "users": [{"id": "alice", "groups": ["sales"]}],
            "integrations": [
                {"id": "sync", "groups": ["sales", "ops"]},
                {"id": "hook", "groups": [], "user": "alice"},
                {"id": "bare"},
                {"id": "both", "groups": ["sales"], "user": "alice"}
            ]
        }));
        let m = migrate_v1(doc);
        let t = &m.doc["tenants"][0];
        assert_eq!(
            t["integrations"],
            json!([
                {"id": "sync", "user": "integration-sync"},
                {"id": "hook", "user": "integration-hook"},
                {"id": "bare", "user": "integration-bare"},
                {"id": "both", "groups": ["sales"], "user": "alice"}
            ])
        );
        assert_eq!(
            t["users"],
            json!([
                {"id": "alice", "groups": ["sales"]},
                {"id": "integration-sync", "service_account": true, "groups": ["sales", "ops"]},
                {"id": "integration-hook", "service_account": true},
                {"id": "integration-bare", "service_account": true}
            ])
        );
        assert_eq!(m.notes.len(), 3, "{:#?}", m.notes);
        assert!(m.notes[0].starts_with("tenant 'acme', integration 'sync':"));
        assert!(m.notes[1].starts_with("tenant 'acme', integration 'hook':"));
        assert!(m.notes[1].contains("could act as 'alice' instead"));
        assert!(m.notes[2].starts_with("tenant 'acme', integration 'bare':"));
        let msg = only(&m.unmapped);
        assert!(
            msg.starts_with("tenant 'acme', integration 'both':"),
            "{msg}"
        );
        assert!(msg.contains("give 'alice' these groups"), "{msg}");
    }

    #[test]
    fn r8_an_integration_whose_service_account_name_is_taken_is_left_for_a_human() {
        let doc = tenant(json!({
            "users": [{"id": "integration-sync"}],
            "integrations": [{"id": "sync", "groups": ["sales"]}]
        }));
        let m = migrate_v1(doc.clone());
        assert_eq!(m.doc, doc);
        let msg = only(&m.unmapped);
        assert!(
            msg.starts_with("tenant 'acme', integration 'sync':"),
            "{msg}"
        );
        assert!(msg.contains("'integration-sync' exists already"), "{msg}");
    }

    #[test]
    fn r8_owners_of_contacts_are_left_for_a_human_in_one_message_per_tenant() {
        let ids = [
            "00000000-0000-4000-8000-000000000004",
            "00000000-0000-4000-8000-000000000002",
            "00000000-0000-4000-8000-000000000003",
            "00000000-0000-4000-8000-000000000001",
        ];
        let mut records: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "object": "contacts", "owner": "carol"}))
            .collect();
        records.push(json!({"id": "00000000-0000-4000-8000-000000000009", "object": "deals", "owner": "carol"}));
        let doc = tenant(json!({"records": records}));
        let m = migrate_v1(doc.clone());
        assert_eq!(m.doc, doc);
        assert_eq!(
            only(&m.unmapped),
            "tenant 'acme': 4 contacts records have an owner (first ids: \
             00000000-0000-4000-8000-000000000001, 00000000-0000-4000-8000-000000000002, \
             00000000-0000-4000-8000-000000000003): contacts have no owner in model v2: put the owner \
             in a team field of contacts (e.g. sales_team) or in interactions"
        );
    }

    #[test]
    fn objects_users_automations_and_custom_owners_are_unchanged() {
        let doc = tenant(json!({
            "email_configured": true,
            "objects": [{"name": "deals", "fields": ["amount"], "team_fields": ["team"]}],
            "groups": [{"id": "g", "create_objects": true,
                        "objects": {"deals": {"all_records": "delete"}}}],
            "roles": [{"id": "r", "groups": ["g"]}],
            "users": [{"id": "alice", "admin": true, "roles": ["r"]}],
            "automations": [{"id": "a", "run_as": {"user": "alice"}}],
            "records": [{"id": "00000000-0000-4000-8000-000000000009", "object": "deals", "owner": "alice"}]
        }));
        let m = migrate_v1(doc.clone());
        for key in [
            "id",
            "email_configured",
            "objects",
            "roles",
            "users",
            "automations",
            "records",
        ] {
            assert_eq!(m.doc["tenants"][0][key], doc["tenants"][0][key], "{key}");
        }
        assert_eq!(m.doc["tenants"][0]["groups"][0]["create_objects"], true);
    }

    fn v1_sample() -> Value {
        tenant(json!({
            "groups": [{"id": "sales", "objects": {
                "contacts": {"view_object": true, "all_records": "view", "associated_records": "delete",
                             "actions": ["export", "upload"], "fields": {"*": "edit", "birthday": "hidden"}},
                "deals": {"all_records": "view", "fields": {"*": "view"}}
            }}],
            "users": [{"id": "alice", "groups": ["sales"]}],
            "integrations": [{"id": "sync", "groups": ["sales"]}, {"id": "hook", "user": "alice"}],
            "automations": [{"id": "nurture", "run_as": {"integration": "sync"}}],
            "records": [{"id": "00000000-0000-4000-8000-000000000009", "object": "deals", "owner": "alice"}]
        }))
    }

    #[test]
    fn a_migrated_document_is_v2_and_migrating_it_again_changes_nothing() {
        let first = migrate_v1(v1_sample());
        assert!(first.unmapped.is_empty(), "{:#?}", first.unmapped);
        assert_eq!(
            first.doc["tenants"][0]["groups"][0]["objects"],
            json!({
                "contacts": {"view_object": true, "all_records": "view", "associated_records": "remove",
                             "actions": ["export"], "fields": {"birthday": "none"},
                             "default_for_new_field": "edit", "create_record": true,
                             "bulk_data_upload": true, "unarchive_associated": true},
                "deals": {"all_records": "view", "associated_records": "view",
                          "default_for_new_field": "view"}
            })
        );
        let again = migrate_v1(first.doc.clone());
        assert_eq!(again.doc, first.doc);
        assert!(
            again.notes.is_empty() && again.unmapped.is_empty(),
            "{again:#?}"
        );
    }

    #[test]
    fn a_v2_document_is_left_alone_even_where_v1_would_read_it_otherwise() {
        // Edit without create_record and an integration acting as its user
        // are v2 choices; the v2-only keys say it is v2.
        let doc = tenant(json!({
            "groups": [{"id": "g", "objects": {
                "contacts": {"associated_records": "edit", "fields": {"email": "edit"}},
                "deals": {"all_records": "remove", "associated_records": "remove", "create_record": true,
                          "default_for_new_field": "view"}
            }}],
            "users": [{"id": "bot", "service_account": true, "groups": ["g"]}, {"id": "alice"}],
            "integrations": [{"id": "sync", "user": "alice"}],
            "records": [{"id": "00000000-0000-4000-8000-000000000001", "object": "contacts"}]
        }));
        let m = migrate_v1(doc.clone());
        assert_eq!(m.doc, doc);
        assert!(m.notes.is_empty() && m.unmapped.is_empty(), "{m:#?}");
    }

    #[test]
    fn what_is_left_for_a_human_stays_put_when_migrated_again() {
        let mut doc = v1_sample();
        doc["tenants"][0]["groups"][0]["objects"]["companies"] = json!({"view_object": true});
        doc["tenants"][0]["integrations"][1]["groups"] = json!(["sales"]);
        let first = migrate_v1(doc);
        assert_eq!(first.unmapped.len(), 2, "{:#?}", first.unmapped);
        let again = migrate_v1(first.doc.clone());
        assert_eq!(again.doc, first.doc);
        assert_eq!(again.unmapped, first.unmapped);
        assert!(again.notes.is_empty(), "{:#?}", again.notes);
    }

    #[test]
    fn a_document_with_no_sign_of_either_model_is_read_as_v1() {
        let (e, _) = entry_after("deals", json!({"associated_records": "edit"}));
        assert_eq!(e["create_record"], true);
    }

    #[test]
    fn an_entry_written_for_v2_in_a_v1_document_only_gets_respelled() {
        let doc = tenant(json!({"groups": [{"id": "g", "objects": {
            "contacts": {"associated_records": "edit", "create_record": false,
                         "fields": {"email": "edit", "tags": "hidden"}},
            "deals": {"all_records": "delete"}
        }}]}));
        let m = migrate_v1(doc);
        let objects = &m.doc["tenants"][0]["groups"][0]["objects"];
        assert_eq!(
            objects["contacts"],
            json!({"associated_records": "edit", "create_record": false,
                   "fields": {"email": "edit", "tags": "none"}})
        );
        assert_eq!(objects["deals"]["unarchive_all"], true);
    }
}
