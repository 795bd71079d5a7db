//! Rows of permd's tables as JSON, both ways. PostgreSQL hands every row
//! over as `to_jsonb(row)` — at bootstrap and in the changelog's payload —
//! so one decoder serves both, and a follower can never read a row
//! differently from how it bootstrapped it. Writes go the other way through
//! `jsonb_populate_recordset`.

use serde_json::{Map, Value};

use crate::model::change::{Entity, EntityKind};

/// One table of the schema (migrations/).
pub struct Table {
    pub kind: EntityKind,
    pub name: &'static str,
    /// The key column inside the tenant (`id`, or `name` for objects).
    pub key: &'static str,
    /// Every column but `tenant` and the key.
    pub columns: &'static [&'static str],
}

pub const TABLES: [Table; 8] = [
    Table {
        kind: EntityKind::Tenant,
        name: "tenants",
        key: "id",
        columns: &["email_configured", "sms_configured"],
    },
    Table {
        kind: EntityKind::Object,
        name: "objects",
        key: "name",
        columns: &[
            "fields",
            "team_fields",
            "relationships",
            "association_source",
        ],
    },
    Table {
        kind: EntityKind::Group,
        name: "groups",
        key: "id",
        columns: &["create_objects", "objects"],
    },
    Table {
        kind: EntityKind::Role,
        name: "roles",
        key: "id",
        columns: &["groups"],
    },
    Table {
        kind: EntityKind::User,
        name: "users",
        key: "id",
        columns: &["admin", "roles", "groups", "service_account", "email_inbox"],
    },
    Table {
        kind: EntityKind::Integration,
        name: "integrations",
        key: "id",
        columns: &["user_id"],
    },
    Table {
        kind: EntityKind::Automation,
        name: "automations",
        key: "id",
        columns: &["run_as_user", "run_as_integration"],
    },
    Table {
        kind: EntityKind::Record,
        name: "records",
        key: "id",
        columns: &[
            "object",
            "owner",
            "teams",
            "interactions",
            "links",
            "archived",
            "contact",
        ],
    },
];

pub fn table(kind: EntityKind) -> &'static Table {
    // TABLES holds every kind; the fallback is never taken.
    TABLES.iter().find(|t| t.kind == kind).unwrap_or(&TABLES[0])
}

/// Decodes one row (`to_jsonb(row)` of the entity's table) into its tenant
/// and entity. Unknown columns are refused, like unknown keys in a file.
pub fn decode(kind: EntityKind, row: Value) -> Result<(String, Entity), String> {
    let Value::Object(mut row) = row else {
        return Err(format!("a {} row must be a JSON object", kind.as_str()));
    };
    let tenant_column = if kind == EntityKind::Tenant {
        "id"
    } else {
        "tenant"
    };
    let tenant = match row.remove(tenant_column) {
        Some(Value::String(t)) => t,
        _ => return Err(format!("the row has no text column '{tenant_column}'")),
    };
    // Columns that are NULL in the row are absent in the file format.
    row.retain(|_, v| !v.is_null());
    match kind {
        EntityKind::Integration => {
            // The v2 table has no such column (the model v2 migration
            // drops it): a row that has one was not written by this schema.
            if row.contains_key("groups") {
                return Err(
                    "an integration row has no groups in model v2: integrations act as their user"
                        .to_owned(),
                );
            }
            rename(&mut row, "user_id", "user");
        }
        EntityKind::Automation => {
            let target = match (row.remove("run_as_user"), row.remove("run_as_integration")) {
                (Some(user), None) => ("user", user),
                (None, Some(integration)) => ("integration", integration),
                _ => {
                    return Err(
                        "exactly one of run_as_user and run_as_integration must be set".to_owned(),
                    );
                }
            };
            let mut run_as = Map::new();
            run_as.insert(target.0.to_owned(), target.1);
            row.insert("run_as".to_owned(), Value::Object(run_as));
        }
        _ => {}
    }
    let entity = Entity::from_value(kind, Value::Object(row))?;
    Ok((tenant, entity))
}

fn rename(row: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = row.remove(from) {
        row.insert(to.to_owned(), v);
    }
}

/// Encodes an entity as a row of its table, every column present (NULL
/// where the file format leaves it out), for `jsonb_populate_recordset`.
pub fn encode(tenant: &str, entity: &Entity) -> Value {
    let mut row = match serde_json::from_str::<Value>(&entity.to_json()) {
        Ok(Value::Object(row)) => row,
        _ => Map::new(),
    };
    match entity {
        Entity::Tenant(_) => {
            row.insert("id".to_owned(), Value::String(tenant.to_owned()));
        }
        Entity::Integration(_) => {
            rename(&mut row, "user", "user_id");
            row.entry("user_id").or_insert(Value::Null);
            row.insert("tenant".to_owned(), Value::String(tenant.to_owned()));
        }
        Entity::Automation(a) => {
            row.remove("run_as");
            let (user, integration) = match &a.run_as {
                crate::model::data::RunAs::User(u) => (Value::String(u.clone()), Value::Null),
                crate::model::data::RunAs::Integration(i) => {
                    (Value::Null, Value::String(i.clone()))
                }
            };
            row.insert("run_as_user".to_owned(), user);
            row.insert("run_as_integration".to_owned(), integration);
            row.insert("tenant".to_owned(), Value::String(tenant.to_owned()));
        }
        _ => {
            row.insert("tenant".to_owned(), Value::String(tenant.to_owned()));
        }
    }
    // Columns the file format skips when empty take their defaults here,
    // so an unchanged entity encodes to exactly the stored row.
    let t = table(entity.kind());
    for column in t.columns {
        row.entry(*column).or_insert_with(|| default_of(column));
    }
    Value::Object(row)
}

fn default_of(column: &str) -> Value {
    match column {
        "teams" | "links" | "objects" => Value::Object(Map::new()),
        "interactions" | "fields" | "team_fields" | "relationships" | "groups" | "roles" => {
            Value::Array(Vec::new())
        }
        "archived" | "admin" | "create_objects" | "email_configured" | "sms_configured"
        | "service_account" => Value::Bool(false),
        "association_source" => Value::String("direct".to_owned()),
        "email_inbox" => Value::String("connected".to_owned()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::source::demo;

    #[test]
    fn every_entity_of_the_demo_survives_encode_then_decode() {
        let data = demo::demo_data();
        let t = &data.tenants[0];
        let mut entities: Vec<Entity> = vec![Entity::Tenant(Default::default())];
        entities.extend(t.objects.iter().cloned().map(Entity::Object));
        entities.extend(t.groups.iter().cloned().map(Entity::Group));
        entities.extend(t.roles.iter().cloned().map(Entity::Role));
        entities.extend(t.users.iter().cloned().map(Entity::User));
        entities.extend(t.integrations.iter().cloned().map(Entity::Integration));
        entities.extend(t.automations.iter().cloned().map(Entity::Automation));
        entities.extend(t.records.iter().cloned().map(Entity::Record));
        for entity in entities {
            let row = encode(&t.id, &entity);
            let (tenant, back) = decode(entity.kind(), row.clone()).unwrap();
            assert_eq!(tenant, t.id);
            assert_eq!(back, entity, "{row}");
        }
    }

    #[test]
    fn a_row_with_an_unknown_column_or_a_wrong_type_is_refused() {
        let row = serde_json::json!({"tenant": "t", "id": "g", "objects": {}, "colour": 1});
        let err = decode(EntityKind::Group, row).unwrap_err();
        assert!(err.contains("colour"), "{err}");
        let row = serde_json::json!({"tenant": "t", "id": "u", "admin": "yes"});
        assert!(decode(EntityKind::User, row).is_err());
        assert!(decode(EntityKind::User, serde_json::json!([1])).is_err());
        let row = serde_json::json!({"tenant": "t", "id": "a"});
        assert!(decode(EntityKind::Automation, row).is_err());
    }
}
