//! The fleet's fan-out through NATS JetStream (docs/fleet.md): one active
//! `permd relay` tails the PostgreSQL changelog and publishes it; sidecars
//! started with `--nats-url` follow it without any database connection.
//!
//! What is where, for a prefix `P` (`--nats-prefix`, default `permd`):
//! - stream `P_CHANGES` (file storage) with subjects `P.changes.>`: every
//!   changelog transaction in revision order, one message per tenant it
//!   touched (split further when large), on `P.changes.<tenant>`;
//! - object store bucket `P-snapshots`: one snapshot per tenant
//!   (`source::snapshot`) named `tenants/<id>`, and a `manifest` naming
//!   the tenants of the last complete round;
//! - `P.heartbeat` (core NATS): the active relay's published revision, each
//!   second, from which sidecars tell "current" from "relay gone".

pub mod follow;
pub mod relay;

use std::time::Duration;

use anyhow::Context;
use async_nats::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::source::changelog::RawChange;

/// Message headers of the change stream.
pub const REVISION: &str = "Permd-Revision";
pub const TENANT: &str = "Permd-Tenant";
/// `i/n`: this message is part `i` of the `n` that carry the revision.
pub const PART: &str = "Permd-Part";

/// How to reach NATS and which names to use there.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    pub url: String,
    /// Names the stream, the bucket and the subjects, so that several
    /// deployments (or tests) share one NATS without meeting.
    pub prefix: String,
    /// A NATS credentials file (`.creds`), e.g. mounted from a Secret.
    pub creds: Option<std::path::PathBuf>,
    /// A NATS auth token.
    pub token: Option<String>,
}

impl NatsConfig {
    pub fn new(url: &str, prefix: &str) -> anyhow::Result<NatsConfig> {
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            anyhow::bail!(
                "--nats-prefix '{prefix}' must be letters, digits, '_' or '-' (it names a JetStream stream and subjects)"
            );
        }
        Ok(NatsConfig {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            creds: None,
            token: None,
        })
    }

    pub fn stream(&self) -> String {
        format!("{}_CHANGES", self.prefix.replace('-', "_").to_uppercase())
    }

    pub fn bucket(&self) -> String {
        format!("{}-snapshots", self.prefix)
    }

    pub fn changes_wildcard(&self) -> String {
        format!("{}.changes.>", self.prefix)
    }

    pub fn subject(&self, tenant: &str) -> String {
        format!("{}.changes.{}", self.prefix, subject_token(tenant))
    }

    pub fn heartbeat(&self) -> String {
        format!("{}.heartbeat", self.prefix)
    }

    /// Connects; the client reconnects by itself afterwards.
    pub async fn connect(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(10)))
            // Reconnect forever, with the client's own backoff.
            .max_reconnects(None);
        if let Some(path) = &self.creds {
            options = options.credentials_file(path).await.with_context(|| {
                format!("cannot read the NATS credentials file {}", path.display())
            })?;
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        options
            .connect(self.url.as_str())
            .await
            .with_context(|| format!("cannot connect to NATS at {}", redact(&self.url)))
    }
}

/// A NATS URL with any password replaced.
pub fn redact(url: &str) -> String {
    crate::source::postgres::redact(url)
}

/// A tenant id as one subject token: letters, digits, `_` and `-` as they
/// are, every other byte as `%XX`, so no id can split or wildcard a
/// subject.
pub fn subject_token(tenant: &str) -> String {
    let mut out = String::with_capacity(tenant.len());
    for b in tenant.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

/// One message of the change stream, decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    pub revision: u64,
    pub index: u32,
    pub count: u32,
    pub rows: Vec<RawChange>,
}

/// Snapshot objects are named `tenants/<tenant id>`.
pub const TENANT_OBJECT: &str = "tenants/";
/// The object naming the tenants of the last complete snapshot round.
pub const MANIFEST_OBJECT: &str = "manifest";

pub fn tenant_object(tenant: &str) -> String {
    format!("{TENANT_OBJECT}{tenant}")
}

/// What the relay writes after each snapshot round: every tenant whose
/// snapshot is current at `revision` (written then, or unchanged since it
/// was written). A sidecar starts from those snapshots at `revision` and
/// follows the stream after `stream_seq`: a tenant created later arrives
/// through the stream, and the stream needs to hold nothing older than the
/// last round.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub revision: u64,
    pub stream_seq: u64,
    pub tenants: Vec<String>,
}

/// The heartbeat's body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Every revision up to this one is in the stream.
    pub revision: u64,
}

pub fn part_headers(revision: u64, tenant: &str, index: u32, count: u32) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(REVISION, revision.to_string().as_str());
    h.insert(TENANT, tenant);
    h.insert(PART, format!("{index}/{count}").as_str());
    h.insert(
        async_nats::header::NATS_MESSAGE_ID,
        format!("{revision}.{index}").as_str(),
    );
    h
}

/// Reads a stream message; an error says what is wrong with it.
pub fn decode_part(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Part, String> {
    let headers = headers.ok_or("a change message without headers")?;
    let get = |name: &str| {
        headers
            .get(name)
            .map(|v| v.as_str().to_owned())
            .ok_or_else(|| format!("a change message without the {name} header"))
    };
    let revision: u64 = get(REVISION)?
        .parse()
        .map_err(|e| format!("{REVISION} is not a revision: {e}"))?;
    let part = get(PART)?;
    let (index, count) = part
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n.parse::<u32>().ok()?)))
        .filter(|(i, n)| *i >= 1 && i <= n)
        .ok_or_else(|| format!("{PART} '{part}' is not i/n"))?;
    let rows: Vec<RawChange> = serde_json::from_slice(payload)
        .map_err(|e| format!("the change rows do not decode: {e}"))?;
    Ok(Part {
        revision,
        index,
        count,
        rows,
    })
}

/// Splits one transaction into the messages that carry it: per tenant, in
/// the order tenants first appear, each at most `max_bytes` of rows (one
/// larger row goes alone). Returns (tenant, JSON rows) per message.
pub fn split_transaction(rows: &[RawChange], max_bytes: usize) -> Vec<(String, Vec<u8>)> {
    let mut tenants: Vec<&str> = Vec::new();
    for r in rows {
        if !tenants.contains(&r.tenant.as_str()) {
            tenants.push(&r.tenant);
        }
    }
    let mut out = Vec::new();
    for tenant in tenants {
        let mut chunk: Vec<&RawChange> = Vec::new();
        let mut size = 2;
        for r in rows.iter().filter(|r| r.tenant == tenant) {
            let len = serde_json::to_vec(r).map_or(0, |v| v.len()) + 1;
            if !chunk.is_empty() && size + len > max_bytes {
                out.push((
                    tenant.to_owned(),
                    serde_json::to_vec(&chunk).unwrap_or_default(),
                ));
                chunk.clear();
                size = 2;
            }
            chunk.push(r);
            size += len;
        }
        out.push((
            tenant.to_owned(),
            serde_json::to_vec(&chunk).unwrap_or_default(),
        ));
    }
    if out.is_empty() {
        // A transaction without rows still takes its revision.
        out.push((String::new(), b"[]".to_vec()));
    }
    out
}

/// Retries in NATS mode: 100 ms doubling to 5 s.
pub(crate) fn retry_backoff() -> crate::source::backoff::Backoff {
    crate::source::backoff::Backoff::up_to(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn row(tenant: &str, key: &str) -> RawChange {
        RawChange {
            seq: 1,
            tenant: tenant.into(),
            entity: "user".into(),
            key: key.into(),
            op: "delete".into(),
            payload: None,
        }
    }

    #[test]
    fn tenant_ids_never_split_a_subject() {
        assert_eq!(subject_token("acme-1_x"), "acme-1_x");
        assert_eq!(subject_token("a.b*>c d"), "a%2Eb%2A%3Ec%20d");
        assert_eq!(subject_token(""), "%");
        assert_ne!(subject_token("%"), subject_token(""));
    }

    #[test]
    fn a_transaction_splits_per_tenant_and_by_size_and_round_trips() {
        let rows: Vec<RawChange> = (0..50)
            .map(|i| row(if i % 3 == 0 { "b" } else { "a" }, &format!("user-{i}")))
            .collect();
        let parts = split_transaction(&rows, 400);
        assert!(parts.len() > 2, "{} parts", parts.len());
        assert_eq!(parts[0].0, "b");
        let n = parts.len() as u32;
        let mut back = Vec::new();
        for (i, (tenant, body)) in parts.iter().enumerate() {
            let h = part_headers(7, tenant, i as u32 + 1, n);
            let p = decode_part(Some(&h), body).unwrap();
            assert_eq!((p.revision, p.index, p.count), (7, i as u32 + 1, n));
            assert!(p.rows.iter().all(|r| &r.tenant == tenant));
            back.extend(p.rows);
        }
        back.sort_by(|x, y| x.key.cmp(&y.key));
        let mut want = rows.clone();
        want.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(back, want);
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        assert!(decode_part(None, b"[]").unwrap_err().contains("headers"));
        let mut h = part_headers(3, "a", 1, 1);
        h.insert(PART, "2/1");
        assert!(decode_part(Some(&h), b"[]").unwrap_err().contains("i/n"));
        let h = part_headers(3, "a", 1, 1);
        assert!(
            decode_part(Some(&h), b"{")
                .unwrap_err()
                .contains("do not decode")
        );
    }
}
