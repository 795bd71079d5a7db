//! `permd serve --config FILE`: the same settings as the flags, in YAML.
//! Precedence is flags > environment (PERMD_*) > file > defaults: a value
//! from the file is used only where clap took the default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::{Deserialize, Serialize};

use super::{LogFormat, ServeArgs};
use crate::source::file::from_yaml;

/// Every key a config file may hold; an unknown key is an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub listen: Option<SocketAddr>,
    pub data: Option<PathBuf>,
    pub max_batch: Option<usize>,
    pub max_message_bytes: Option<usize>,
    pub max_concurrent_requests: Option<usize>,
    pub max_concurrent_streams: Option<usize>,
    pub max_name_bytes: Option<usize>,
    pub max_context_fields: Option<usize>,
    pub max_revision_waiters: Option<usize>,
    pub max_min_revision_wait: Option<Span>,
    pub max_revision_lead: Option<u64>,
    pub max_cache_bytes: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_streams_per_connection: Option<u32>,
    pub max_header_list_bytes: Option<u32>,
    pub max_buffered_request_bytes: Option<usize>,
    pub max_buffered_request_bytes_per_connection: Option<usize>,
    pub request_body_timeout: Option<Span>,
    pub handshake_timeout: Option<Span>,
    pub idle_timeout: Option<Span>,
    pub max_data_file_bytes: Option<u64>,
    pub metrics_listen: Option<SocketAddr>,
    pub no_metrics: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub otlp_endpoint: Option<String>,
    pub database_url: Option<String>,
    pub nats_url: Option<String>,
    pub nats_prefix: Option<String>,
    pub nats_creds: Option<PathBuf>,
    pub nats_token: Option<String>,
    pub tenants: Option<Vec<String>>,
    pub max_staleness: Option<Span>,
    pub changelog_retention: Option<Span>,
    pub admin_token: Option<String>,
    pub api_token: Option<String>,
    pub decision_log: Option<String>,
    pub decision_log_sample: Option<String>,
    pub authzen_listen: Option<SocketAddr>,
    pub authzen_tenant: Option<String>,
}

/// A duration as people write it: `250ms`, `30s`, `5m`, `2h`, `7d`; `0`
/// means none (for a retention: keep forever).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub std::time::Duration);

impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Span, String> {
        let s = s.trim();
        if s == "0" {
            return Ok(Span(std::time::Duration::ZERO));
        }
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("'{s}' is not a duration: write e.g. 500ms, 30s, 5m, 2h or 7d"))?;
        let secs = match unit {
            "ms" => return Ok(Span(std::time::Duration::from_millis(n))),
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => {
                return Err(format!(
                    "'{s}' has no known unit: write e.g. 500ms, 30s, 5m, 2h or 7d"
                ));
            }
        };
        Ok(Span(std::time::Duration::from_secs(secs)))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis();
        match ms {
            0 => write!(f, "0"),
            _ if ms.is_multiple_of(86_400_000) => write!(f, "{}d", ms / 86_400_000),
            _ if ms.is_multiple_of(3_600_000) => write!(f, "{}h", ms / 3_600_000),
            _ if ms.is_multiple_of(60_000) => write!(f, "{}m", ms / 60_000),
            _ if ms.is_multiple_of(1000) => write!(f, "{}s", ms / 1000),
            _ => write!(f, "{ms}ms"),
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl ConfigFile {
    /// Reads a config file; errors name the file, the key and the problem.
    pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        if text.trim().is_empty() {
            return Ok(ConfigFile::default());
        }
        let mut config: ConfigFile = from_yaml(&text).map_err(|(key, message)| {
            anyhow::anyhow!("config file {}: at {key}: {message}", path.display())
        })?;
        // Paths in the file are relative to the file, not to the cwd.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.data,
            &mut config.tls_cert,
            &mut config.tls_key,
            &mut config.tls_client_ca,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Fills every setting that neither a flag nor the environment gave.
    pub fn apply(self, args: &mut ServeArgs, matches: &ArgMatches) {
        let unset = |id: &str| {
            matches!(
                matches.value_source(id),
                None | Some(ValueSource::DefaultValue)
            )
        };
        macro_rules! fill {
            ($field:ident) => {
                if let Some(v) = self.$field {
                    if unset(stringify!($field)) {
                        args.$field = v;
                    }
                }
            };
            (option $field:ident) => {
                if let Some(v) = self.$field {
                    if unset(stringify!($field)) {
                        args.$field = Some(v);
                    }
                }
            };
        }
        fill!(listen);
        fill!(option data);
        fill!(max_batch);
        fill!(max_message_bytes);
        fill!(max_concurrent_requests);
        fill!(max_concurrent_streams);
        fill!(max_name_bytes);
        fill!(max_context_fields);
        fill!(max_revision_waiters);
        fill!(max_min_revision_wait);
        fill!(max_revision_lead);
        fill!(max_cache_bytes);
        fill!(max_connections);
        fill!(max_streams_per_connection);
        fill!(max_header_list_bytes);
        fill!(max_buffered_request_bytes);
        fill!(max_buffered_request_bytes_per_connection);
        fill!(request_body_timeout);
        fill!(handshake_timeout);
        fill!(idle_timeout);
        fill!(max_data_file_bytes);
        fill!(metrics_listen);
        fill!(no_metrics);
        fill!(option tls_cert);
        fill!(option tls_key);
        fill!(option tls_client_ca);
        fill!(log_format);
        fill!(option otlp_endpoint);
        fill!(option database_url);
        fill!(option nats_url);
        fill!(nats_prefix);
        fill!(option nats_creds);
        fill!(option nats_token);
        fill!(option tenants);
        fill!(max_staleness);
        fill!(changelog_retention);
        fill!(option admin_token);
        fill!(option api_token);
        fill!(decision_log);
        fill!(decision_log_sample);
        fill!(option authzen_listen);
        fill!(option authzen_tenant);
    }
}

/// The settings a `serve` runs with, as `--print-config` shows them.
#[derive(Debug, Serialize)]
pub struct Effective<'a> {
    pub listen: SocketAddr,
    pub data: Option<&'a Path>,
    pub max_batch: usize,
    pub max_message_bytes: usize,
    pub max_concurrent_requests: usize,
    pub max_concurrent_streams: usize,
    pub max_name_bytes: usize,
    pub max_context_fields: usize,
    pub max_revision_waiters: usize,
    pub max_min_revision_wait: Span,
    pub max_revision_lead: u64,
    pub max_cache_bytes: u64,
    pub max_connections: usize,
    pub max_streams_per_connection: u32,
    pub max_header_list_bytes: u32,
    pub max_buffered_request_bytes: usize,
    pub max_buffered_request_bytes_per_connection: usize,
    pub request_body_timeout: Span,
    pub handshake_timeout: Span,
    pub idle_timeout: Span,
    pub max_data_file_bytes: u64,
    pub metrics_listen: Option<SocketAddr>,
    pub tls_cert: Option<&'a Path>,
    pub tls_key: Option<&'a Path>,
    pub tls_client_ca: Option<&'a Path>,
    pub log_format: LogFormat,
    pub otlp_endpoint: Option<&'a str>,
    /// Without its password.
    pub database_url: Option<String>,
    /// Without its password.
    pub nats_url: Option<String>,
    pub nats_prefix: &'a str,
    pub tenants: Option<&'a [String]>,
    pub max_staleness: Span,
    pub changelog_retention: Span,
    /// Never printed: only whether one is set.
    pub admin: &'static str,
    /// Never printed: only whether one is set.
    pub api_token: &'static str,
    pub decision_log: &'a str,
    pub decision_log_sample: &'a str,
    pub authzen_listen: Option<SocketAddr>,
    pub authzen_tenant: Option<&'a str>,
}

impl<'a> Effective<'a> {
    pub fn of(args: &'a ServeArgs) -> Effective<'a> {
        Effective {
            listen: args.listen,
            data: args.data.as_deref(),
            max_batch: args.max_batch,
            max_message_bytes: args.max_message_bytes,
            max_concurrent_requests: args.max_concurrent_requests,
            max_concurrent_streams: args.max_concurrent_streams,
            max_name_bytes: args.max_name_bytes,
            max_context_fields: args.max_context_fields,
            max_revision_waiters: args.max_revision_waiters,
            max_min_revision_wait: args.max_min_revision_wait,
            max_revision_lead: args.max_revision_lead,
            max_cache_bytes: args.max_cache_bytes,
            max_connections: args.max_connections,
            max_streams_per_connection: args.max_streams_per_connection,
            max_header_list_bytes: args.max_header_list_bytes,
            max_buffered_request_bytes: args.max_buffered_request_bytes,
            max_buffered_request_bytes_per_connection: args
                .max_buffered_request_bytes_per_connection,
            request_body_timeout: args.request_body_timeout,
            handshake_timeout: args.handshake_timeout,
            idle_timeout: args.idle_timeout,
            max_data_file_bytes: args.max_data_file_bytes,
            metrics_listen: (!args.no_metrics).then_some(args.metrics_listen),
            tls_cert: args.tls_cert.as_deref(),
            tls_key: args.tls_key.as_deref(),
            tls_client_ca: args.tls_client_ca.as_deref(),
            log_format: args.log_format,
            otlp_endpoint: args.otlp_endpoint.as_deref(),
            database_url: args
                .database_url
                .as_deref()
                .map(crate::source::postgres::redact),
            nats_url: args.nats_url.as_deref().map(crate::source::nats::redact),
            nats_prefix: &args.nats_prefix,
            tenants: args.tenants.as_deref(),
            max_staleness: args.max_staleness,
            changelog_retention: args.changelog_retention,
            admin: if args.admin_token.is_some() {
                "enabled (token set)"
            } else {
                "disabled"
            },
            api_token: if args.api_token.is_some() {
                "required (token set)"
            } else {
                "none"
            },
            decision_log: &args.decision_log,
            decision_log_sample: &args.decision_log_sample,
            authzen_listen: args.authzen_listen,
            authzen_tenant: args.authzen_tenant.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Span;
    use std::time::Duration;

    #[test]
    fn spans_parse_and_print_back() {
        for (text, d) in [
            ("250ms", Duration::from_millis(250)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("2h", Duration::from_secs(7200)),
            ("7d", Duration::from_secs(604_800)),
            ("0", Duration::ZERO),
        ] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.0, d);
            assert_eq!(span.to_string(), text);
        }
        for bad in ["", "s", "5", "5x", "-1s", "1.5s"] {
            assert!(bad.parse::<Span>().is_err(), "{bad}");
        }
    }
}
