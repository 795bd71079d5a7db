//! The probe and metrics listener: `GET /metrics` as plain HTTP/1.1 text
//! and, on the same port, the gRPC health service (plaintext HTTP/2, told
//! apart by the connection's first bytes). It is what the kubelet and
//! Prometheus reach on the pod IP, so the Authorizer itself can stay on
//! loopback; it serves nothing else. Deliberately small: one HTTP/1.1
//! request per connection, bounded reads, a bound on open connections.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use tonic_health::server::HealthReporter;

use crate::net::Acceptor;

/// Most scrapes served at once: Prometheus needs one.
const MAX_CONNECTIONS: usize = 64;

/// Serves `GET /metrics` until `shutdown` resolves. A deliberately small
/// HTTP/1.1 responder: one request per connection, bounded reads.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    health: Option<HealthReporter>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut acceptor = Acceptor::new(listener, MAX_CONNECTIONS, "metrics");
    loop {
        let (mut stream, slot) = tokio::select! {
            () = &mut shutdown => return,
            accepted = acceptor.accept() => accepted,
        };
        let handle = handle.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Some(health) = health
                && speaks_http2(&stream).await
            {
                serve_health(stream, health).await;
                return;
            }
            let mut request = [0u8; 4096];
            let read =
                tokio::time::timeout(Duration::from_secs(5), stream.read(&mut request)).await;
            let Ok(Ok(n)) = read else {
                return;
            };
            let line = request.get(..n).unwrap_or_default();
            let (status, body) =
                if line.starts_with(b"GET /metrics ") || line.starts_with(b"GET /metrics?") {
                    (
                        "200 OK",
                        handle.render() + &crate::telemetry::process::render(),
                    )
                } else {
                    (
                        "404 Not Found",
                        "only GET /metrics (and gRPC health) is served here\n".to_owned(),
                    )
                };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            // A scraper that does not read gives its slot back in 10 s.
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                stream.write_all(response.as_bytes()),
            )
            .await;
            let _ = stream.shutdown().await;
        });
    }
}

/// Whether the client opened with the HTTP/2 preface (`PRI * HTTP/2.0`):
/// a gRPC health probe. Looks without consuming, so an HTTP/1.1 scrape
/// reads its request line as before.
async fn speaks_http2(stream: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 3];
    let peeked = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.peek(&mut first).await {
                Ok(n) if n >= first.len() => return true,
                Ok(0) | Err(_) => return false,
                Ok(_) => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    })
    .await;
    matches!(peeked, Ok(true)) && &first == b"PRI"
}

/// Serves `grpc.health.v1.Health` (and nothing else) on one HTTP/2
/// connection, for at most a minute: probes open a connection per check.
async fn serve_health(stream: tokio::net::TcpStream, health: HealthReporter) {
    let service = tonic_health::pb::health_server::HealthServer::new(
        tonic_health::server::HealthService::from_health_reporter(health),
    );
    let connection = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .max_concurrent_streams(16)
        .serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        );
    let _ = tokio::time::timeout(Duration::from_secs(60), connection).await;
}
