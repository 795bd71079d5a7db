//! The snapshot format: everything permd knows about a tenant, as read from a
//! YAML or JSON file (README "Data format"). Unknown keys are errors so a typo
//! never silently drops a grant.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::action::Toggle;
use super::level::{AccessLevel, FieldLevel};

/// Name of the built-in Contacts object.
pub const CONTACTS: &str = "contacts";

/// System fields every Contact has (docs/model.md "Contact").
pub const CONTACT_SYSTEM_FIELDS: [&str; 6] = [
    "email",
    "email_status",
    "mobile_phone",
    "tags",
    "timezone",
    "birthday",
];

/// Decodes JSON in the data-file shape: the one decoder of data files and
/// Admin writes, so both refuse exactly the same inputs (a duplicate key
/// among them: serde_json's own `Value` would keep the last silently). On
/// error, the path inside the document and the problem.
pub fn from_json_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, (String, String)> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if e.inner().is_syntax() || e.inner().is_eof() {
            (".".to_owned(), format!("not JSON: {}", e.inner()))
        } else {
            (e.path().to_string(), e.inner().to_string())
        }
    })?;
    de.end().map_err(|e| (".".to_owned(), e.to_string()))?;
    Ok(value)
}

/// A map whose keys are unique: a repeated key (`objects: {contacts: …,
/// contacts: …}`) is an error, not the last one silently winning, in every
/// format the data is read from.
fn unique_keys<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map with unique keys")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("duplicate key '{key}'")));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Unique(std::marker::PhantomData))
}

/// System fields every custom object has (R7: `created` is at most `view`).
pub const CUSTOM_SYSTEM_FIELDS: [&str; 1] = ["created"];

/// v1's "set all" key in a group's field permissions; v2 has
/// `default_for_new_field` instead, and the key is refused with that hint.
pub const V1_ALL_FIELDS: &str = "*";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    pub tenants: Vec<Tenant>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub id: String,
    #[serde(default)]
    pub email_configured: bool,
    #[serde(default)]
    pub sms_configured: bool,
    /// Custom objects, and optionally `contacts` to add fields or
    /// relationships to it; `contacts` exists even when not listed.
    #[serde(default)]
    pub objects: Vec<ObjectDef>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub roles: Vec<Role>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub integrations: Vec<Integration>,
    #[serde(default)]
    pub automations: Vec<Automation>,
    #[serde(default)]
    pub records: Vec<Record>,
}

impl Tenant {
    /// Everything but the records: small, and all a principal-side change
    /// needs.
    pub fn clone_without_records(&self) -> Tenant {
        Tenant {
            id: self.id.clone(),
            email_configured: self.email_configured,
            sms_configured: self.sms_configured,
            objects: self.objects.clone(),
            groups: self.groups.clone(),
            roles: self.roles.clone(),
            users: self.users.clone(),
            integrations: self.integrations.clone(),
            automations: self.automations.clone(),
            records: Vec::new(),
        }
    }
}

/// Where "My Associated Records" looks for the principal (R9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssociationSource {
    #[default]
    Direct,
    Related,
    Both,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectDef {
    pub name: String,
    /// Plain fields. For `contacts` the system fields are added.
    #[serde(default)]
    pub fields: Vec<String>,
    /// Team-association fields: fields that hold users (R8).
    #[serde(default)]
    pub team_fields: Vec<String>,
    /// Relationship fields, each to one other object.
    #[serde(default)]
    pub relationships: Vec<Relationship>,
    #[serde(default)]
    pub association_source: AssociationSource,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relationship {
    pub field: String,
    pub object: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub id: String,
    /// Level 1, global (R2).
    #[serde(default)]
    pub create_objects: bool,
    /// Per object name.
    #[serde(default, deserialize_with = "unique_keys")]
    pub objects: BTreeMap<String, ObjectPermissions>,
}

/// A group's settings on one object (R2–R7). The catalog rules between
/// them (R5, R5b, R7) are checked by `validate`, which names the rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectPermissions {
    #[serde(default)]
    pub view_object: bool,
    #[serde(default)]
    pub edit_settings: bool,
    #[serde(default)]
    pub delete_object: bool,
    #[serde(default)]
    pub all_records: AccessLevel,
    /// Never `none` (R5): absent reads as `none` and is refused, so a
    /// missing setting is never guessed.
    #[serde(default)]
    pub associated_records: AccessLevel,
    /// `create` needs it; only with `associated_records` ≥ edit (R5b).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_record: bool,
    /// `upload` needs it; only with `create_record` (R5b).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bulk_data_upload: bool,
    /// `unarchive` on archived records the principal is associated with (R10).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unarchive_associated: bool,
    /// `unarchive` on every archived record; only with
    /// `unarchive_associated` (R5b).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unarchive_all: bool,
    /// Single-record and bulk action toggles that are on.
    #[serde(default)]
    pub actions: Vec<Toggle>,
    /// The level of every field not named in `fields` (R7).
    #[serde(default)]
    pub default_for_new_field: FieldLevel,
    /// Per field name.
    #[serde(default, deserialize_with = "unique_keys")]
    pub fields: BTreeMap<String, FieldLevel>,
}

impl ObjectPermissions {
    /// The highest record level either scope gives.
    pub fn best_scope(&self) -> AccessLevel {
        self.all_records.max(self.associated_records)
    }

    /// This group's level on a field of `object` before the union (R7): the
    /// stated level, else `default_for_new_field`, held to the catalog's
    /// rules for Contact `email` (edit when a scope is ≥ edit, at most view
    /// otherwise) and custom objects' `created` (at most view).
    pub fn field_level(&self, object: &str, field: &str) -> FieldLevel {
        if let Some(level) = self.fields.get(field) {
            return *level;
        }
        let default = self.default_for_new_field;
        match (object == CONTACTS, field) {
            (true, "email") if self.best_scope() >= AccessLevel::Edit => FieldLevel::Edit,
            (true, "email") => default.min(FieldLevel::View),
            (false, "created") => default.min(FieldLevel::View),
            _ => default,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub id: String,
    /// Default permission groups of every user with this role.
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Additional permission groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// A non-human user that automations and integrations run as.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub service_account: bool,
    /// The sender gate of R13.
    #[serde(default, skip_serializing_if = "EmailInbox::is_connected")]
    pub email_inbox: EmailInbox,
}

/// Whether a user can send email (R13's sender gate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailInbox {
    #[default]
    Connected,
    /// No inbox connected: `EMAIL_NOT_CONFIGURED`.
    NotConnected,
    /// An admin blocked the user's outgoing email: `SENDER_BLOCKED`.
    Blocked,
}

impl EmailInbox {
    pub fn is_connected(&self) -> bool {
        *self == Self::Connected
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::NotConnected => "not_connected",
            Self::Blocked => "blocked",
        }
    }
}

/// An API key of a user: it acts with exactly that user's groups, admin
/// flag and associations (R8).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integration {
    pub id: String,
    /// Required; kept optional here so its absence is reported by
    /// `validate` with the rest of the file's problems.
    #[serde(default)]
    pub user: Option<String>,
    /// v1's own groups: read only to be refused with what v2 expects.
    #[serde(default, skip_serializing)]
    pub groups: Option<serde::de::IgnoredAny>,
}

/// An automation acts exactly as the user or integration it runs as.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Automation {
    pub id: String,
    pub run_as: RunAs,
}

/// Whose permissions an automation runs with. Written as a map with exactly
/// one key, `run_as: {user: alice}` or `run_as: {integration: sync}`, which
/// reads the same in YAML and JSON (serde_yaml's own enum form would need
/// YAML tags).
#[derive(Clone, Debug, PartialEq)]
pub enum RunAs {
    User(String),
    Integration(String),
}

impl Serialize for RunAs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (key, id) = match self {
            Self::User(id) => ("user", id),
            Self::Integration(id) => ("integration", id),
        };
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(key, id)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for RunAs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RunAsVisitor)
    }
}

struct RunAsVisitor;

impl<'de> serde::de::Visitor<'de> for RunAsVisitor {
    type Value = RunAs;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a map with exactly one key, `user` or `integration`, e.g. {user: alice}")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RunAs, A::Error> {
        use serde::de::Error;
        let Some((key, id)) = map.next_entry::<String, String>()? else {
            return Err(A::Error::custom(
                "run_as is empty: name `user` or `integration`",
            ));
        };
        if map.next_key::<String>()?.is_some() {
            return Err(A::Error::custom(
                "run_as names more than one principal: keep exactly one of `user` or `integration`",
            ));
        }
        match key.as_str() {
            "user" => Ok(RunAs::User(id)),
            "integration" => Ok(RunAs::Integration(id)),
            other => Err(A::Error::unknown_field(other, &["user", "integration"])),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub id: Uuid,
    pub object: String,
    /// The owner team-selector field of a custom-object record (R8).
    /// Contacts have no owner: `validate` refuses it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Team-association field name → users.
    #[serde(default, skip_serializing_if = "Teams::is_empty")]
    pub teams: Teams,
    /// Users who acted on the record (R8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interactions: Vec<String>,
    /// Relationship field name → linked record ids.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub links: BTreeMap<String, Vec<Uuid>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub archived: bool,
    /// Contact state; only on `contacts` records (absent = no email, no mobile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<ContactState>,
}

/// A record's team fields and the users in each, sorted by field. Most
/// records name one or two fields: a sorted list costs a few dozen bytes
/// where a `BTreeMap` allocates a ~540-byte node per record (half a gigabyte
/// of peak memory while a million-Contact file loads).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Teams(Vec<(String, Vec<String>)>);

impl Teams {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// From fields already sorted and unique (as a snapshot stores them);
    /// anything else is refused, never re-sorted.
    pub fn from_sorted(fields: Vec<(String, Vec<String>)>) -> Result<Teams, String> {
        if fields.windows(2).any(|w| matches!(w, [a, b] if a.0 >= b.0)) {
            return Err("team fields are not sorted and unique".to_owned());
        }
        Ok(Teams(fields))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Vec<String>)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Vec<String>> {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn get(&self, field: &str) -> Option<&Vec<String>> {
        self.0.iter().find(|(k, _)| k == field).map(|(_, v)| v)
    }

    /// Adds `user` to `field` (created if the record has none), once.
    pub fn add_member(&mut self, field: &str, user: String) {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(field)) {
            Ok(at) => {
                if let Some((_, members)) = self.0.get_mut(at)
                    && !members.contains(&user)
                {
                    members.push(user);
                }
            }
            Err(at) => self.0.insert(at, (field.to_owned(), vec![user])),
        }
    }
}

impl From<BTreeMap<String, Vec<String>>> for Teams {
    fn from(map: BTreeMap<String, Vec<String>>) -> Self {
        Teams(map.into_iter().collect())
    }
}

impl Serialize for Teams {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Teams {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Teams;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of team field to users, with unique keys")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Teams, A::Error> {
                let mut out: Vec<(String, Vec<String>)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    match out.binary_search_by(|(k, _)| k.cmp(&key)) {
                        Ok(_) => {
                            return Err(serde::de::Error::custom(format!("duplicate key '{key}'")));
                        }
                        Err(at) => out.insert(at, (key, map.next_value()?)),
                    }
                }
                Ok(Teams(out))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Email subscription status (R12). `suppressed` in a file is a permanent
/// suppression; a soft bounce is `suppressed: true` with `suppressed_until`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailStatus {
    #[default]
    NotOptedIn,
    OptedIn,
    OptedOut,
    UnsubscribedAll,
    Suppressed,
}

impl EmailStatus {
    pub const ALL: [EmailStatus; 5] = [
        Self::NotOptedIn,
        Self::OptedIn,
        Self::OptedOut,
        Self::UnsubscribedAll,
        Self::Suppressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotOptedIn => "not_opted_in",
            Self::OptedIn => "opted_in",
            Self::OptedOut => "opted_out",
            Self::UnsubscribedAll => "unsubscribed_all",
            Self::Suppressed => "suppressed",
        }
    }

    pub fn parse(s: &str) -> Option<EmailStatus> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// The communication state of a Contact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A present but undeliverable address counts as no email.
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub email_valid: bool,
    #[serde(default)]
    pub email_status: EmailStatus,
    /// Suppressed (hard or soft bounce, complaint). With `suppressed_until`
    /// the suppression ends at that instant without any data change (R13).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub suppressed_until: Option<OffsetDateTime>,
    /// Subscription lists the Contact opted out of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opted_out_lists: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub mobile_valid: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sms_opted_out: bool,
}

fn yes() -> bool {
    true
}

impl ContactState {
    /// R13: a valid address is present.
    pub fn has_valid_email(&self) -> bool {
        self.email_valid && self.email.as_deref().is_some_and(|e| !e.trim().is_empty())
    }

    /// R14: a valid mobile number is present.
    pub fn has_valid_mobile(&self) -> bool {
        self.mobile_valid
            && self
                .mobile_phone
                .as_deref()
                .is_some_and(|m| !m.trim().is_empty())
    }

    /// Suppressed at `now`: a permanent suppression, or one whose expiry is
    /// still in the future.
    pub fn is_suppressed_at(&self, now: OffsetDateTime) -> bool {
        let flagged = self.suppressed || self.email_status == EmailStatus::Suppressed;
        flagged && self.suppressed_until.is_none_or(|until| now < until)
    }

    /// The status as users see it at `now`: `suppressed` while suppressed,
    /// else the subscription status underneath (an expired `suppressed`
    /// status falls back to `not_opted_in`).
    pub fn email_status_at(&self, now: OffsetDateTime) -> EmailStatus {
        if self.is_suppressed_at(now) {
            EmailStatus::Suppressed
        } else if self.email_status == EmailStatus::Suppressed {
            EmailStatus::NotOptedIn
        } else {
            self.email_status
        }
    }
}
