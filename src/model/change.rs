//! A change to the permission data: an upsert or a delete of one entity of
//! one tenant. Admin.Write carries these, the PostgreSQL changelog decodes to
//! them, and the index applies them (src/index/change.rs). Entities keep the
//! snapshot file's shape, so a client writes the same JSON it would put in a
//! data file.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::data::{Automation, Group, Integration, ObjectDef, Record, Role, User};

/// The tenant-wide settings (a tenant row without its contents).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    #[serde(default)]
    pub email_configured: bool,
    #[serde(default)]
    pub sms_configured: bool,
}

/// One entity, whole, as an upsert writes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Entity {
    Tenant(TenantSettings),
    Object(ObjectDef),
    Group(Group),
    Role(Role),
    User(User),
    Integration(Integration),
    Automation(Automation),
    Record(Record),
}

/// The kinds of entity, as the API and the changelog name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntityKind {
    Tenant,
    Object,
    Group,
    Role,
    User,
    Integration,
    Automation,
    Record,
}

impl EntityKind {
    pub const ALL: [EntityKind; 8] = [
        Self::Tenant,
        Self::Object,
        Self::Group,
        Self::Role,
        Self::User,
        Self::Integration,
        Self::Automation,
        Self::Record,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Object => "object",
            Self::Group => "group",
            Self::Role => "role",
            Self::User => "user",
            Self::Integration => "integration",
            Self::Automation => "automation",
            Self::Record => "record",
        }
    }

    pub fn parse(s: &str) -> Option<EntityKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl Entity {
    pub fn kind(&self) -> EntityKind {
        match self {
            Self::Tenant(_) => EntityKind::Tenant,
            Self::Object(_) => EntityKind::Object,
            Self::Group(_) => EntityKind::Group,
            Self::Role(_) => EntityKind::Role,
            Self::User(_) => EntityKind::User,
            Self::Integration(_) => EntityKind::Integration,
            Self::Automation(_) => EntityKind::Automation,
            Self::Record(_) => EntityKind::Record,
        }
    }

    /// The entity's key inside its tenant: a name, an id, a record UUID;
    /// empty for the tenant itself.
    pub fn key(&self) -> String {
        match self {
            Self::Tenant(_) => String::new(),
            Self::Object(o) => o.name.clone(),
            Self::Group(g) => g.id.clone(),
            Self::Role(r) => r.id.clone(),
            Self::User(u) => u.id.clone(),
            Self::Integration(i) => i.id.clone(),
            Self::Automation(a) => a.id.clone(),
            Self::Record(r) => r.id.to_string(),
        }
    }

    /// Decodes an entity of `kind` from its snapshot-file JSON with the
    /// data files' own decoder ([`super::data::from_json_str`]): unknown
    /// and repeated keys are refused exactly as a file's are.
    pub fn from_json(kind: EntityKind, json: &str) -> Result<Entity, String> {
        Self::decode(kind, JsonText(json))
    }

    /// Decodes an entity of `kind` from a JSON value in the snapshot-file
    /// shape (a database row); the error names the path of the first problem.
    pub fn from_value(kind: EntityKind, value: serde_json::Value) -> Result<Entity, String> {
        Self::decode(kind, value)
    }

    fn decode(kind: EntityKind, input: impl Decode) -> Result<Entity, String> {
        Ok(match kind {
            EntityKind::Tenant => Self::Tenant(input.decode()?),
            EntityKind::Object => Self::Object(input.decode()?),
            EntityKind::Group => Self::Group(input.decode()?),
            EntityKind::Role => Self::Role(input.decode()?),
            EntityKind::User => Self::User(input.decode()?),
            EntityKind::Integration => Self::Integration(input.decode()?),
            EntityKind::Automation => Self::Automation(input.decode()?),
            EntityKind::Record => Self::Record(input.decode()?),
        })
    }

    /// The entity as snapshot-file JSON.
    pub fn to_json(&self) -> String {
        let value = match self {
            Self::Tenant(t) => serde_json::to_string(t),
            Self::Object(o) => serde_json::to_string(o),
            Self::Group(g) => serde_json::to_string(g),
            Self::Role(r) => serde_json::to_string(r),
            Self::User(u) => serde_json::to_string(u),
            Self::Integration(i) => serde_json::to_string(i),
            Self::Automation(a) => serde_json::to_string(a),
            Self::Record(r) => serde_json::to_string(r),
        };
        // Serializing these plain structs cannot fail.
        value.unwrap_or_default()
    }
}

/// One change of one tenant.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub tenant: String,
    pub op: ChangeOp,
}

// Upserts are the common case; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum ChangeOp {
    Upsert(Entity),
    /// Deletes the entity of this kind and key; deleting what does not
    /// exist is not an error (deletes are idempotent, like upserts).
    Delete {
        kind: EntityKind,
        key: String,
    },
}

impl Change {
    pub fn upsert(tenant: &str, entity: Entity) -> Change {
        Change {
            tenant: tenant.to_owned(),
            op: ChangeOp::Upsert(entity),
        }
    }

    pub fn delete(tenant: &str, kind: EntityKind, key: impl Into<String>) -> Change {
        Change {
            tenant: tenant.to_owned(),
            op: ChangeOp::Delete {
                kind,
                key: key.into(),
            },
        }
    }

    pub fn kind(&self) -> EntityKind {
        match &self.op {
            ChangeOp::Upsert(e) => e.kind(),
            ChangeOp::Delete { kind, .. } => *kind,
        }
    }

    pub fn key(&self) -> String {
        match &self.op {
            ChangeOp::Upsert(e) => e.key(),
            ChangeOp::Delete { key, .. } => key.clone(),
        }
    }

    /// The record id a record delete names.
    pub fn record_key(key: &str) -> Result<Uuid, String> {
        Uuid::try_parse(key).map_err(|e| format!("record key '{key}' is not a UUID: {e}"))
    }
}

/// One entity's input, in either form an entity arrives in.
trait Decode {
    fn decode<T: serde::de::DeserializeOwned>(self) -> Result<T, String>;
}

/// JSON text (an Admin write).
struct JsonText<'a>(&'a str);

impl Decode for JsonText<'_> {
    fn decode<T: serde::de::DeserializeOwned>(self) -> Result<T, String> {
        super::data::from_json_str(self.0).map_err(|(path, message)| located(&path, message))
    }
}

/// A parsed JSON value (a database row's jsonb).
impl Decode for serde_json::Value {
    fn decode<T: serde::de::DeserializeOwned>(self) -> Result<T, String> {
        // The fast path reads the value in place; only a refused one is
        // read again to name the path of the problem.
        if let Ok(v) = T::deserialize(&self) {
            return Ok(v);
        }
        serde_path_to_error::deserialize(self)
            .map_err(|e| located(&e.path().to_string(), e.inner().to_string()))
    }
}

/// A decoding problem, with its path unless it is the whole entity.
fn located(path: &str, message: String) -> String {
    if path == "." {
        message
    } else {
        format!("at {path}: {message}")
    }
}
