//! The gRPC server: `permd.v1.Authorizer`, `grpc.health.v1.Health` and
//! server reflection (v1 and v1alpha) on one listener, with graceful
//! shutdown.

mod admin;
pub mod auth;
mod authorizer;
pub mod authzen;
mod budget;
pub mod connections;
pub mod convert;
mod error;
pub mod limits;
pub mod metrics_endpoint;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::transport::ServerTlsConfig;

pub use admin::AdminService;
pub use authorizer::AuthorizerService;
pub use limits::Limits;

use crate::index::Engine;
use crate::pb::admin_server::AdminServer;
use crate::pb::authorizer_server::AuthorizerServer;
use crate::source::postgres::feed::Readiness;

/// What a server built on a database (or with Admin) adds to the basics.
#[derive(Default)]
pub struct Extras {
    /// The change feed's state: health follows it, and requests before the
    /// first snapshot are UNAVAILABLE. `None`: always ready (file mode).
    pub readiness: Option<tokio::sync::watch::Receiver<Readiness>>,
    /// The Admin service, when an admin token is configured.
    pub admin: Option<AdminService>,
    /// Health statuses shared with another listener (the probe port);
    /// a server of its own when `None`.
    pub health: Option<tonic_health::server::HealthReporter>,
    /// `--api-token`: the Authorizer's callers must present it.
    pub api_token: Option<auth::BearerToken>,
    /// `--decision-log`: a line per Authorizer call.
    pub decisions: Option<Arc<crate::telemetry::decisions::DecisionLog>>,
    /// The Authorizer, when another listener (AuthZEN) shares it; built
    /// from the fields above when `None`.
    pub authorizer: Option<Arc<AuthorizerService>>,
}

/// Largest request message accepted: 100,000 string ids are ~4 MB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// HTTP/2 flow-control windows: one BatchCheck of 10,000 string ids is
/// ~400 KB, far above the protocol's 64 KiB default.
pub const STREAM_WINDOW_BYTES: u32 = 4 * 1024 * 1024;
pub const CONNECTION_WINDOW_BYTES: u32 = 16 * 1024 * 1024;

/// Serves until `shutdown` resolves, then drains in-flight RPCs, with the
/// default limits except the message size.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    max_message_bytes: usize,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let limits = Limits {
        max_message_bytes,
        ..Limits::default()
    };
    serve_with_limits(engine, listener, limits, shutdown).await
}

/// Serves until `shutdown` resolves, then drains in-flight RPCs, without TLS.
pub async fn serve_with_limits(
    engine: Arc<Engine>,
    listener: TcpListener,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    serve_with(engine, listener, limits, None, shutdown).await
}

/// Serves until `shutdown` resolves, then drains in-flight RPCs. With `tls`
/// every connection is TLS (and mutual TLS if it names a client CA).
pub async fn serve_with(
    engine: Arc<Engine>,
    listener: TcpListener,
    limits: Limits,
    tls: Option<ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    serve_full(engine, listener, limits, tls, Extras::default(), shutdown).await
}

/// Serves until `shutdown` resolves, then drains in-flight RPCs; with a
/// change feed's readiness, health follows it; with an Admin service, it
/// is served on the same listener.
pub async fn serve_full(
    engine: Arc<Engine>,
    listener: TcpListener,
    limits: Limits,
    tls: Option<ServerTlsConfig>,
    extras: Extras,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let max_message_bytes = limits.max_message_bytes;
    let health_reporter = extras.health.clone().unwrap_or_default();
    let health_service = tonic_health::pb::health_server::HealthServer::new(
        tonic_health::server::HealthService::from_health_reporter(health_reporter.clone()),
    );
    let serving = extras.readiness.as_ref().is_none_or(|r| r.borrow().serving);
    set_health(&health_reporter, serving).await;
    let draining = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(mut readiness) = extras.readiness.clone() {
        let reporter = health_reporter.clone();
        let draining = draining.clone();
        tokio::spawn(async move {
            while readiness.changed().await.is_ok() {
                let serving = readiness.borrow().serving;
                if !draining.load(std::sync::atomic::Ordering::SeqCst) {
                    set_health(&reporter, serving).await;
                }
            }
        });
    }
    let with_admin = extras.admin.is_some();
    let reflection_v1 = reflection(with_admin)
        .build_v1()?
        .max_decoding_message_size(REFLECTION_MAX_MESSAGE);
    let reflection_v1alpha = reflection(with_admin)
        .build_v1alpha()?
        .max_decoding_message_size(REFLECTION_MAX_MESSAGE);
    let admin = extras.admin.map(|a| {
        AdminServer::new(a)
            .max_decoding_message_size(max_message_bytes)
            .max_encoding_message_size(max_message_bytes)
    });
    let authorizer = AuthorizerServer::from_arc(extras.authorizer.unwrap_or_else(|| {
        Arc::new(
            AuthorizerService::new(engine, limits, extras.readiness)
                .with_token(extras.api_token)
                .with_decision_log(extras.decisions),
        )
    }))
    .max_decoding_message_size(max_message_bytes)
    .max_encoding_message_size(max_message_bytes);
    let incoming = connections::incoming(listener, &limits);
    // Larger HTTP/2 windows let a 10,000-id request arrive without waiting
    // for window updates; every other HTTP/2 bound is set here on purpose.
    let mut builder = tonic::transport::Server::builder()
        .max_concurrent_streams(Some(limits.max_streams_per_connection))
        .http2_max_header_list_size(Some(limits.max_header_list_bytes))
        .http2_keepalive_interval(Some(limits::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(limits::KEEPALIVE_TIMEOUT));
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .layer(crate::telemetry::TraceLayer)
        .layer(tower::util::MapResponseLayer::new(move |response| {
            limits::rewrite_codec_errors(response, max_message_bytes)
        }))
        .layer(budget::BudgetLayer::new(&limits))
        .initial_stream_window_size(Some(STREAM_WINDOW_BYTES))
        .initial_connection_window_size(Some(CONNECTION_WINDOW_BYTES))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(authorizer)
        .add_optional_service(admin)
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            draining.store(true, std::sync::atomic::Ordering::SeqCst);
            // Draining: load balancers and probes stop sending new work.
            health_reporter
                .set_not_serving::<AuthorizerServer<AuthorizerService>>()
                .await;
        })
        .await?;
    Ok(())
}

/// Largest reflection request: a symbol or file name (they are not counted
/// in the buffered-request budget, so they are bounded here).
const REFLECTION_MAX_MESSAGE: usize = 64 * 1024;

/// Reflection that advertises exactly the services this server runs:
/// `permd.v1.Admin` only when Admin is on.
fn reflection(admin: bool) -> tonic_reflection::server::Builder<'static> {
    let builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("permd.v1.Authorizer")
        .with_service_name("grpc.health.v1.Health");
    if admin {
        builder.with_service_name("permd.v1.Admin")
    } else {
        builder
    }
}

/// Sets the Authorizer's health status (the overall "" one is the
/// reporter's own, SERVING while the process runs).
pub(crate) async fn set_health(reporter: &tonic_health::server::HealthReporter, serving: bool) {
    if serving {
        reporter
            .set_serving::<AuthorizerServer<AuthorizerService>>()
            .await;
    } else {
        reporter
            .set_not_serving::<AuthorizerServer<AuthorizerService>>()
            .await;
    }
}
