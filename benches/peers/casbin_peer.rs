//! The two workloads as casbin-rs, ABAC style: the policy rows are
//! docs/model.md's "what each action needs" table (level, toggle, field,
//! gate), the matcher is the rules, and each request carries the principal's
//! effective permissions and the Contact's attributes as structs. A batch is
//! one `enforce` call per record.
//!
//! Why not RBAC rows per group (`g, u0, g0` + `p, g0, …`): casbin's effect
//! is "some row allows", which cannot combine a scope from one group with a
//! toggle from another (R1 unions settings, not decisions). And why not rows
//! per user: casbin scans every row for a denied request, so the cost would
//! grow with the tenant's users. Rows per action do neither.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use casbin::prelude::*;
use permd::model::AccessLevel;
use permd::model::FieldLevel;
use serde::Serialize;
use uuid::Uuid;

use super::facts::{ContactFacts, Effective};

pub const MODEL: &str = r#"
[request_definition]
r = sub, obj, act

[policy_definition]
p = act, level, toggle, field, field_level, gate

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.act == p.act && !r.obj.archived && (p.level in r.sub.all_levels || (p.level in r.sub.assoc_levels && r.sub.id in r.obj.associated)) && (p.toggle == "-" || p.toggle in r.sub.toggles) && (p.field == "-" || (p.field_level == "view" && p.field in r.sub.fields_view) || (p.field_level == "edit" && p.field in r.sub.fields_edit)) && (p.gate != "email" || (r.obj.valid_email && !r.obj.suppressed && !r.obj.unsubscribed_all))
"#;

/// docs/model.md's table, the rows of the two workload actions: action,
/// level, toggle, field, field level, gate (`-` = none).
pub const POLICY: [[&str; 6]; 2] = [
    ["view", "view", "-", "-", "-", "-"],
    [
        "bulk_send_email",
        "view",
        "bulk_send_email",
        "email",
        "view",
        "email",
    ],
];

/// The principal as a request attribute: its effective permissions (R1).
#[derive(Clone, Debug, Hash, Serialize)]
pub struct Subject {
    pub id: String,
    /// Levels the All Records scope reaches (`edit` reaches view and edit).
    pub all_levels: Vec<String>,
    /// Levels My Associated Records reaches.
    pub assoc_levels: Vec<String>,
    pub toggles: Vec<String>,
    /// Fields at view or better, and at edit.
    pub fields_view: Vec<String>,
    pub fields_edit: Vec<String>,
}

/// A Contact as a request attribute.
#[derive(Clone, Debug, Hash, Serialize)]
pub struct ContactObj {
    pub archived: bool,
    pub valid_email: bool,
    pub suppressed: bool,
    pub unsubscribed_all: bool,
    pub associated: Vec<String>,
}

fn reached(level: AccessLevel) -> Vec<String> {
    [AccessLevel::View, AccessLevel::Edit, AccessLevel::Remove]
        .into_iter()
        .filter(|l| level >= *l)
        .map(|l| l.as_str().to_owned())
        .collect()
}

impl Subject {
    pub fn of(eff: &Effective) -> Subject {
        let fields_at = |min: FieldLevel| {
            eff.fields
                .iter()
                .filter(|(_, l)| **l >= min)
                .map(|(f, _)| (*f).to_owned())
                .collect()
        };
        Subject {
            id: eff.user.clone(),
            all_levels: reached(eff.all_records),
            assoc_levels: reached(eff.associated_records),
            toggles: eff.toggles.iter().map(|t| t.as_str().to_owned()).collect(),
            fields_view: fields_at(FieldLevel::View),
            fields_edit: fields_at(FieldLevel::Edit),
        }
    }
}

pub struct CasbinPeer {
    enforcer: Enforcer,
    /// casbin keeps no entities: the caller looks the attributes up.
    contacts: HashMap<Uuid, ContactObj>,
    pub setup: Vec<(&'static str, Duration)>,
}

impl CasbinPeer {
    pub fn build(contacts: &[ContactFacts]) -> anyhow::Result<CasbinPeer> {
        let mut setup = Vec::new();
        let t = Instant::now();
        let store: HashMap<Uuid, ContactObj> = contacts
            .iter()
            .map(|c| {
                let obj = ContactObj {
                    archived: c.archived,
                    valid_email: c.valid_email,
                    suppressed: c.suppressed,
                    unsubscribed_all: c.unsubscribed_all,
                    associated: c.associated.iter().cloned().collect(),
                };
                (c.id, obj)
            })
            .collect();
        setup.push(("attribute map (contacts)", t.elapsed()));

        // Enforcer::new and add_policies are async; a current-thread
        // runtime is enough (runtime-tokio feature, no file I/O).
        let t = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        let enforcer = runtime.block_on(async {
            let model = DefaultModel::from_str(MODEL).await?;
            let mut e = Enforcer::new(model, MemoryAdapter::default()).await?;
            let rows = POLICY
                .iter()
                .map(|row| row.iter().map(|s| (*s).to_owned()).collect())
                .collect();
            e.add_policies(rows).await?;
            Ok::<_, casbin::Error>(e)
        })?;
        setup.push(("model parsing + enforcer build + policy rows", t.elapsed()));
        Ok(CasbinPeer {
            enforcer,
            contacts: store,
            setup,
        })
    }

    /// One decision per record: look the Contact's attributes up, then
    /// `enforce`. An unknown id is denied, as permd denies it.
    pub fn batch(&self, sub: &Subject, action: &str, ids: &[Uuid]) -> anyhow::Result<Vec<bool>> {
        ids.iter()
            .map(|id| match self.contacts.get(id) {
                Some(obj) => self
                    .enforcer
                    .enforce((sub, obj, action))
                    .map_err(|e| anyhow!("casbin enforce: {e}")),
                None => Ok(false),
            })
            .collect()
    }
}
