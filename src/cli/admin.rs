//! `permd admin write` and `permd admin revision`: the Admin service from
//! the command line (the server needs --admin-token; pass it as --token).

use anyhow::Context;
use serde::Deserialize;

use super::client::{Target, status_error};
use crate::pb::{self, admin_client::AdminClient};

#[derive(clap::Subcommand, Debug)]
pub enum AdminCommand {
    /// Apply mutations in one transaction: a YAML or JSON list of
    /// `{tenant, entity, upsert: {…}}` or `{tenant, entity, delete: KEY}`
    /// (`-` reads stdin). Prints the revision that holds them.
    Write {
        #[command(flatten)]
        target: Target,
        file: std::path::PathBuf,
    },
    /// The revision this permd serves (and, following PostgreSQL, the
    /// database's).
    Revision {
        #[command(flatten)]
        target: Target,
    },
}

/// One mutation as a file writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MutationFile {
    tenant: String,
    entity: String,
    #[serde(default)]
    upsert: Option<serde_json::Value>,
    #[serde(default)]
    delete: Option<String>,
}

pub async fn run(command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Write { target, file } => {
            let text = super::access::read_input(&file)?;
            let mutations = mutations(&text)
                .with_context(|| format!("{} is not a list of mutations", file.display()))?;
            let mut client = client(&target).await?;
            let r = client
                .write(pb::WriteRequest { mutations })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("wrote {} mutations: revision {}", r.mutations, r.revision);
        }
        AdminCommand::Revision { target } => {
            let r = client(&target)
                .await?
                .revision(pb::RevisionRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            if r.database {
                println!(
                    "revision {} (database at revision {})",
                    r.revision, r.database_revision
                );
            } else {
                println!("revision {}", r.revision);
            }
        }
    }
    Ok(())
}

async fn client(
    target: &Target,
) -> anyhow::Result<
    AdminClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            super::client::Bearer,
        >,
    >,
> {
    if target.token.is_none() {
        anyhow::bail!("Admin needs permd's admin token: pass it with --token (or PERMD_TOKEN)");
    }
    let (channel, bearer) = target.channel().await?;
    Ok(AdminClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// The wire mutations of a YAML or JSON list.
fn mutations(text: &str) -> anyhow::Result<Vec<pb::Mutation>> {
    let parsed: Vec<MutationFile> = serde_yaml::from_str(text)?;
    parsed
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let op = match (m.upsert, m.delete) {
                (Some(entity), None) => {
                    pb::mutation::Op::UpsertJson(serde_json::to_string(&entity)?)
                }
                (None, Some(key)) => pb::mutation::Op::DeleteKey(key),
                _ => anyhow::bail!("mutation {i}: give exactly one of `upsert` and `delete`"),
            };
            Ok(pb::Mutation {
                tenant: m.tenant,
                entity: m.entity,
                op: Some(op),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    #[test]
    fn reads_upserts_and_deletes_and_refuses_both_or_neither() {
        let m = super::mutations(
            "- {tenant: demo, entity: tag, upsert: {id: vip}}\n- {tenant: demo, entity: tag, delete: old}\n",
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert!(super::mutations("- {tenant: demo, entity: tag}").is_err());
        assert!(super::mutations("- {tenant: demo, entity: tag, upsert: {}, delete: x}").is_err());
        assert!(super::mutations("- {tenant: demo, entity: tag, delete: x, extra: 1}").is_err());
    }
}
