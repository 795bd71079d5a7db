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
    pub metrics_listen: Option<SocketAddr>,
    pub no_metrics: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_client_ca: Option<PathBuf>,
    pub log_format: Option<LogFormat>,
    pub otlp_endpoint: Option<String>,
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
        fill!(metrics_listen);
        fill!(no_metrics);
        fill!(option tls_cert);
        fill!(option tls_key);
        fill!(option tls_client_ca);
        fill!(log_format);
        fill!(option otlp_endpoint);
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
    pub metrics_listen: Option<SocketAddr>,
    pub tls_cert: Option<&'a Path>,
    pub tls_key: Option<&'a Path>,
    pub tls_client_ca: Option<&'a Path>,
    pub log_format: LogFormat,
    pub otlp_endpoint: Option<&'a str>,
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
            metrics_listen: (!args.no_metrics).then_some(args.metrics_listen),
            tls_cert: args.tls_cert.as_deref(),
            tls_key: args.tls_key.as_deref(),
            tls_client_ca: args.tls_client_ca.as_deref(),
            log_format: args.log_format,
            otlp_endpoint: args.otlp_endpoint.as_deref(),
        }
    }
}
