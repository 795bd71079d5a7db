//! Logs and traces. Logs go to stderr (pretty or JSON); with an OTLP
//! endpoint (`--otlp-endpoint` / `OTEL_EXPORTER_OTLP_ENDPOINT`) every RPC is
//! also a span exported over OTLP/gRPC, child of the caller's span when the
//! request carries W3C trace context (`traceparent`). Prometheus metrics
//! (names, recording helpers, the `/metrics` endpoint) are in [`metrics`].

pub mod decisions;
pub mod metrics;
pub mod process;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Flushes and stops the trace exporter when dropped (at exit).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber. Call inside a tokio runtime when
/// `otlp_endpoint` is set: the exporter's gRPC channel lives on it.
pub fn init(json: bool, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    // Admin's audit lines are kept whatever RUST_LOG says.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive("audit=info".parse()?);
    let (pretty, json_logs) = if json {
        (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            ),
        )
    } else {
        (
            // Colours only for a person at a terminal: a log file or a
            // pipeline gets plain text.
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(
                        std::io::IsTerminal::is_terminal(&std::io::stderr())
                            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
                    )
                    .with_writer(std::io::stderr),
            ),
            None,
        )
    };
    let provider = match otlp_endpoint {
        None => None,
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(
                    std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "permd".to_owned()),
                )
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
    };
    let traces = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("permd")));
    tracing_subscriber::registry()
        .with(filter)
        .with(pretty)
        .with(json_logs)
        .with(traces)
        .try_init()?;
    Ok(Telemetry { provider })
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// A span per gRPC request, named after the method, whose parent is the
/// caller's `traceparent` if it sent one.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Traced<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for Traced<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let span = tracing::info_span!("grpc", otel.name = %method, otel.kind = "server", rpc.method = %method);
        let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
        let _ = span.set_parent(parent);
        Box::pin(self.inner.call(request).instrument(span))
    }
}
