//! `permd check` and `permd explain`: a gRPC client of a running permd, for
//! admins and for the README's tour.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use anyhow::Context;

use crate::index::{PrincipalKind, PrincipalRef};
use crate::pb::{self, authorizer_client::AuthorizerClient};
use crate::source::demo::contact_id;

/// Which permd to ask, and how to prove who is asking: every client
/// command takes these.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Target {
    /// Address of a running permd: `host:port`, `http://…`, or `https://…`
    /// for TLS.
    #[arg(long, env = "PERMD_ADDR", default_value = "http://127.0.0.1:50051")]
    pub addr: String,
    /// CA certificate (PEM) that signed permd's certificate; makes the
    /// connection TLS.
    #[arg(long, env = "PERMD_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), for a permd that requires mutual TLS.
    #[arg(long, env = "PERMD_TLS_CLIENT_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "PERMD_TLS_CLIENT_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name to verify in permd's certificate, when it is not the host of
    /// --addr.
    #[arg(long, env = "PERMD_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// Bearer token sent on every call: permd's --api-token (or, for
    /// `permd admin`, its --admin-token).
    #[arg(long, env = "PERMD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// What to ask and whom.
#[derive(clap::Args, Debug, Clone)]
pub struct AskArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(long, default_value = "demo")]
    pub tenant: String,
    /// `ID` for a user, or `integration:ID`, `automation:ID`.
    #[arg(long)]
    pub principal: String,
    #[arg(long, default_value = "contacts")]
    pub object: String,
    #[arg(long, default_value = "view")]
    pub action: String,
    /// `email` or `text` (send_single_message).
    #[arg(long)]
    pub channel: Option<String>,
    /// Transactional mail (may reach unsubscribed Contacts).
    #[arg(long)]
    pub transactional: bool,
    /// Subscription list the message goes out on.
    #[arg(long)]
    pub list: Option<String>,
    /// Fields to be changed (edit, bulk_change_field_values); repeatable.
    #[arg(long = "field")]
    pub fields: Vec<String>,
    /// Target email status of a subscription change.
    #[arg(long)]
    pub target_status: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub ask: AskArgs,
    /// Also ask for the first N Contacts of the built-in demo tenant.
    #[arg(long, default_value_t = 0)]
    pub demo_contacts: u64,
    /// Exit status 1 when any record is denied (0 when all are allowed, 2
    /// when permd could not be asked): for scripts and CI gates.
    #[arg(long)]
    pub exit_code: bool,
    /// Record ids (UUIDs). None for `create` / `upload`.
    pub records: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub ask: AskArgs,
    /// Record id (UUID); omit for `create` / `upload`.
    pub record: Option<String>,
}

/// The principal of a command line, in the wire form.
pub(crate) fn principal(spec: &str) -> pb::Principal {
    let parsed = PrincipalRef::parse(spec);
    let kind = match parsed.kind {
        PrincipalKind::User => pb::principal::Kind::User,
        PrincipalKind::Integration => pb::principal::Kind::Integration,
        PrincipalKind::Automation => pb::principal::Kind::Automation,
    };
    pb::Principal {
        kind: kind as i32,
        id: parsed.id,
    }
}

pub(crate) fn context(a: &AskArgs) -> anyhow::Result<pb::ActionContext> {
    let channel = match a.channel.as_deref() {
        None => pb::Channel::Unspecified,
        Some("email") => pb::Channel::Email,
        Some("text") => pb::Channel::Text,
        Some(other) => anyhow::bail!("--channel {other}: use email or text"),
    };
    Ok(pb::ActionContext {
        channel: channel as i32,
        transactional: a.transactional,
        subscription_list: a.list.clone().unwrap_or_default(),
        fields: a.fields.clone(),
        target_email_status: a.target_status.clone().unwrap_or_default(),
    })
}

pub(crate) fn reason_name(code: i32) -> &'static str {
    pb::Reason::try_from(code).map_or("UNKNOWN_REASON", |r| r.as_str_name())
}

/// An Authorizer client that sends the token, if any, on every call.
pub(crate) type Client = AuthorizerClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub(crate) struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl Target {
    /// A connected channel (TLS with --tls-ca or an https address) and the
    /// interceptor that presents the token.
    pub(crate) async fn channel(&self) -> anyhow::Result<(Channel, Bearer)> {
        let addr = if self.addr.contains("://") {
            self.addr.clone()
        } else {
            format!("http://{}", self.addr)
        };
        let mut endpoint = tonic::transport::Endpoint::from_shared(addr.clone())
            .with_context(|| format!("{addr} is not a valid address"))?
            .tcp_nodelay(true)
            .initial_stream_window_size(crate::server::STREAM_WINDOW_BYTES)
            .initial_connection_window_size(crate::server::CONNECTION_WINDOW_BYTES);
        let tls = self.tls_ca.is_some() || addr.starts_with("https://");
        if tls {
            let Some(ca) = &self.tls_ca else {
                anyhow::bail!(
                    "{addr} is TLS: name the CA that signed permd's certificate with --tls-ca"
                );
            };
            let read = |path: &PathBuf| {
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
            };
            let mut config = tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?));
            if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
                config = config.identity(tonic::transport::Identity::from_pem(
                    read(cert)?,
                    read(key)?,
                ));
            }
            if let Some(name) = &self.tls_server_name {
                config = config.domain_name(name.clone());
            }
            endpoint = endpoint
                .tls_config(config)
                .context("the TLS settings (--tls-ca, --tls-cert, --tls-key)")?;
        }
        let token = match &self.token {
            None => None,
            Some(token) => Some(
                format!("Bearer {}", token.trim())
                    .parse()
                    .context("--token holds characters a header cannot carry")?,
            ),
        };
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to permd at {addr}"))?;
        Ok((channel, Bearer(token)))
    }
}

pub(crate) async fn connect(target: &Target) -> anyhow::Result<Client> {
    let (channel, bearer) = target.channel().await?;
    Ok(AuthorizerClient::with_interceptor(channel, bearer)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

pub(crate) fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

/// Asks, prints the answer and says whether every record was allowed.
pub async fn check(args: CheckArgs) -> anyhow::Result<bool> {
    let a = &args.ask;
    let mut client = connect(&a.target).await?;
    let mut records = args.records.clone();
    records.extend((0..args.demo_contacts).map(|n| contact_id(n).to_string()));
    if records.is_empty() {
        let r = client
            .check(pb::CheckRequest {
                tenant: a.tenant.clone(),
                principal: Some(principal(&a.principal)),
                object: a.object.clone(),
                action: a.action.clone(),
                record_id: String::new(),
                context: Some(context(a)?),
                min_revision: 0,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        say!(
            "{} {} on {}: {} (revision {})",
            a.principal,
            a.action,
            a.object,
            if r.allowed {
                "ALLOWED".to_owned()
            } else {
                format!("DENIED {}", reason_name(r.reason))
            },
            r.revision
        );
        return Ok(r.allowed);
    }
    let started = std::time::Instant::now();
    let r = client
        .batch_check(pb::BatchCheckRequest {
            tenant: a.tenant.clone(),
            principal: Some(principal(&a.principal)),
            object: a.object.clone(),
            action: a.action.clone(),
            records: Some(pb::batch_check_request::Records::RecordIds(pb::StringIds {
                ids: records.clone(),
            })),
            context: Some(context(a)?),
            return_allowed_ids: false,
            min_revision: 0,
            return_handles: false,
            packed_denials: false,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let elapsed = started.elapsed();
    let reasons: BTreeMap<i32, usize> = r.denials.iter().fold(BTreeMap::new(), |mut m, d| {
        *m.entry(d.reason).or_default() += 1;
        m
    });
    if records.len() <= 20 {
        let denied: BTreeMap<u32, i32> = r.denials.iter().map(|d| (d.position, d.reason)).collect();
        for (i, id) in records.iter().enumerate() {
            match denied.get(&(i as u32)) {
                None => say!("  {id}  ALLOWED"),
                Some(reason) => say!("  {id}  DENIED {}", reason_name(*reason)),
            }
        }
    }
    say!(
        "{} {} on {} {}: {} allowed, {} denied (revision {}, round trip {:.2} ms)",
        a.principal,
        a.action,
        records.len(),
        a.object,
        r.allowed_count,
        r.denials.len(),
        r.revision,
        elapsed.as_secs_f64() * 1e3
    );
    for (reason, count) in reasons {
        say!("  {:<22} {count}", reason_name(reason));
    }
    if let Some(mask) = &r.field_mask {
        say!("  field mask: {}", super::access::mask_text(mask));
    }
    Ok(r.denials.is_empty())
}

pub async fn explain(args: ExplainArgs) -> anyhow::Result<()> {
    let a = &args.ask;
    let mut client = connect(&a.target).await?;
    let r = client
        .explain(pb::ExplainRequest {
            tenant: a.tenant.clone(),
            principal: Some(principal(&a.principal)),
            object: a.object.clone(),
            action: a.action.clone(),
            record_id: args.record.clone().unwrap_or_default(),
            context: Some(context(a)?),
            min_revision: 0,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    say!(
        "{}: {} {} {} → {}",
        a.tenant,
        a.principal,
        a.action,
        args.record.as_deref().unwrap_or(&a.object),
        if r.allowed {
            "ALLOWED".to_owned()
        } else {
            format!("DENIED {}", reason_name(r.reason))
        }
    );
    for s in &r.steps {
        let mark = if s.passed { "ok  " } else { "FAIL" };
        let why = if s.passed {
            String::new()
        } else {
            format!(" [{}]", reason_name(s.reason))
        };
        say!("  {mark} {:<10} {}{why}", s.layer, s.detail);
    }
    say!("  (revision {})", r.revision);
    Ok(())
}
