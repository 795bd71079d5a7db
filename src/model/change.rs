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
        use super::data::from_json_str;
        fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
            from_json_str(json).map_err(|(path, message)| {
                if path == "." {
                    message
                } else {
                    format!("at {path}: {message}")
                }
            })
        }
        Ok(match kind {
            EntityKind::Tenant => Self::Tenant(parse(json)?),
            EntityKind::Object => Self::Object(parse(json)?),
            EntityKind::Group => Self::Group(parse(json)?),
            EntityKind::Role => Self::Role(parse(json)?),
            EntityKind::User => Self::User(parse(json)?),
            EntityKind::Integration => Self::Integration(parse(json)?),
            EntityKind::Automation => Self::Automation(parse(json)?),
            EntityKind::Record => Self::Record(parse(json)?),
        })
    }

    /// Decodes an entity of `kind` from a JSON value in the snapshot-file
    /// shape; the error names the path of the first problem.
    pub fn from_value(kind: EntityKind, value: serde_json::Value) -> Result<Entity, String> {
        fn parse<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
            // The fast path reads the value in place; only a refused one is
            // read again to name the path of the problem.
            if let Ok(v) = T::deserialize(&value) {
                return Ok(v);
            }
            serde_path_to_error::deserialize(value).map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    e.inner().to_string()
                } else {
                    format!("at {path}: {}", e.inner())
                }
            })
        }
        Ok(match kind {
            EntityKind::Tenant => Self::Tenant(parse(value)?),
            EntityKind::Object => Self::Object(parse(value)?),
            EntityKind::Group => Self::Group(parse(value)?),
            EntityKind::Role => Self::Role(parse(value)?),
            EntityKind::User => Self::User(parse(value)?),
            EntityKind::Integration => Self::Integration(parse(value)?),
            EntityKind::Automation => Self::Automation(parse(value)?),
            EntityKind::Record => Self::Record(parse(value)?),
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
