//! `permd test FILE...`: assertion files, like `zed validate` or Cerbos
//! policy tests. Each file names its data (a snapshot file, or `demo`) and
//! lists expected decisions per principal, action and record, and optionally
//! field levels. Every mismatch is printed; any makes the run exit non-zero.
//!
//! ```yaml
//! data: ../data/small.yaml        # relative to this file; or `demo`
//! tenant: acme                    # may be left out when the data has one
//! now: 2026-11-27T12:00:00Z       # optional: the instant decisions are made at
//! tests:
//!   - name: marketing mail skips the unreachable
//!     principal: carol            # user; or integration:ID, automation:ID
//!     action: bulk_send_email
//!     object: contacts            # the default
//!     context: {list: newsletter}
//!     expect:
//!       c0000000-0000-4000-8000-000000000001: ALLOWED
//!       c0000000-0000-4000-8000-000000000000: NO_EMAIL
//!     field_mask: {email: view, birthday: none}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::index::{Engine, PrincipalRef, Question, Snapshot};
use crate::model::data::EmailStatus;
use crate::model::{ActionContext, Channel, FieldLevel};
use crate::source::demo::{DEMO_TENANT, demo_data};
use crate::source::file::from_yaml;
use crate::source::load_file;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertionFile {
    data: String,
    tenant: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    now: Option<OffsetDateTime>,
    tests: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: Option<String>,
    principal: String,
    action: String,
    #[serde(default = "contacts")]
    object: String,
    #[serde(default)]
    context: Context_,
    /// Record id → `ALLOWED` or a reason. For `create`/`upload`, the key
    /// `none` stands for "no record".
    #[serde(default)]
    expect: BTreeMap<String, String>,
    #[serde(default)]
    field_mask: BTreeMap<String, FieldLevel>,
}

fn contacts() -> String {
    "contacts".to_owned()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Context_ {
    channel: Option<String>,
    #[serde(default)]
    transactional: bool,
    list: Option<String>,
    #[serde(default)]
    fields: Vec<String>,
    target_status: Option<String>,
}

impl Context_ {
    fn to_model(&self) -> anyhow::Result<ActionContext> {
        let channel = match self.channel.as_deref() {
            None => None,
            Some("email") => Some(Channel::Email),
            Some("text") => Some(Channel::Text),
            Some(other) => anyhow::bail!("context.channel '{other}': use email or text"),
        };
        let target_email_status =
            match self.target_status.as_deref() {
                None => None,
                Some(s) => Some(EmailStatus::parse(s).with_context(|| {
                    format!("context.target_status '{s}' is not an email status")
                })?),
            };
        Ok(ActionContext {
            channel,
            transactional: self.transactional,
            subscription_list: self.list.clone(),
            fields: self.fields.clone(),
            target_email_status,
        })
    }
}

/// What one file's run found.
pub struct Outcome {
    pub checked: usize,
    pub failures: Vec<String>,
}

/// Runs one assertion file.
pub fn run_file(path: &Path) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read assertion file {}", path.display()))?;
    let file: AssertionFile = from_yaml(&text)
        .map_err(|(at, message)| anyhow::anyhow!("{}: at {at}: {message}", path.display()))?;
    let data = if file.data == DEMO_TENANT {
        demo_data()
    } else {
        let data_path: PathBuf = path.parent().unwrap_or(Path::new(".")).join(&file.data);
        load_file(&data_path)?.0
    };
    let tenant = match (&file.tenant, data.tenants.as_slice()) {
        (Some(t), _) => t.clone(),
        (None, [only]) => only.id.clone(),
        (None, _) => anyhow::bail!(
            "{}: the data has several tenants; name one with `tenant:`",
            path.display()
        ),
    };
    let engine = Engine::new(Snapshot::build(&data, 1), usize::MAX);
    let now = file.now.unwrap_or_else(OffsetDateTime::now_utc);
    let mut outcome = Outcome {
        checked: 0,
        failures: Vec::new(),
    };
    for (i, case) in file.tests.iter().enumerate() {
        let label = case.name.clone().unwrap_or_else(|| format!("tests[{i}]"));
        let q = Question {
            tenant: tenant.clone(),
            principal: PrincipalRef::parse(&case.principal),
            object: case.object.clone(),
            action: case.action.clone(),
            ctx: case
                .context
                .to_model()
                .with_context(|| format!("{}: {label}", path.display()))?,
            min_revision: 0,
        };
        let who = format!("{} {} on {}", case.principal, case.action, case.object);
        for (record, expected) in &case.expect {
            outcome.checked += 1;
            let id = match record.as_str() {
                "none" => None,
                s => Some(Uuid::try_parse(s).with_context(|| {
                    format!("{}: {label}: '{s}' is not a record id", path.display())
                })?),
            };
            let got = match engine.check(&q, id, now) {
                Ok(d) => d.reason.map_or("ALLOWED", |r| r.as_str()).to_owned(),
                Err(e) => format!("error: {e}"),
            };
            if !got.eq_ignore_ascii_case(expected) {
                outcome.failures.push(format!(
                    "{label}: {who}, record {record}: expected {expected}, got {got}"
                ));
            }
        }
        if !case.field_mask.is_empty() {
            // The principal's mask on the object (R7), as ObjectAccess gives
            // it: a denied Check shows no field, so no record is asked.
            match engine.object_access(&tenant, &q.principal, Some(&case.object), 0) {
                Ok((flags, _, _)) => {
                    let visible = flags.first();
                    for (field, level) in &case.field_mask {
                        outcome.checked += 1;
                        let got = match visible {
                            Some(f) => f
                                .field_mask
                                .iter()
                                .find(|(name, _)| name == field)
                                .map(|(_, l)| *l),
                            // An invisible object shows every field as none.
                            None => Some(FieldLevel::None),
                        };
                        if got != Some(*level) {
                            outcome.failures.push(format!(
                                "{label}: {who}, field {field}: expected {}, got {}",
                                level.as_str(),
                                got.map_or("no such field", FieldLevel::as_str)
                            ));
                        }
                    }
                }
                Err(e) => outcome
                    .failures
                    .push(format!("{label}: {who}: field mask: error: {e}")),
            }
        }
    }
    Ok(outcome)
}

/// `permd test`: every file, every failure; Err if any failed.
pub fn run(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut failed = 0;
    for file in files {
        let outcome = run_file(file)?;
        if outcome.failures.is_empty() {
            println!("ok    {} ({} assertions)", file.display(), outcome.checked);
        } else {
            println!(
                "FAIL  {} ({} of {} assertions failed)",
                file.display(),
                outcome.failures.len(),
                outcome.checked
            );
            for f in &outcome.failures {
                println!("      {f}");
            }
            failed += outcome.failures.len();
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} assertions failed");
    }
    Ok(())
}
