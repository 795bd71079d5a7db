//! The Prometheus endpoint: `GET /metrics` as plain HTTP/1.1 text, on
//! its own port. Deliberately small: one request per connection, bounded
//! reads, a bound on open connections.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::net::Acceptor;

/// Most scrapes served at once: Prometheus needs one.
const MAX_CONNECTIONS: usize = 64;

/// Serves `GET /metrics` until `shutdown` resolves. A deliberately small
/// HTTP/1.1 responder: one request per connection, bounded reads.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
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
        tokio::spawn(async move {
            let _slot = slot;
            let mut request = [0u8; 4096];
            let read =
                tokio::time::timeout(Duration::from_secs(5), stream.read(&mut request)).await;
            let Ok(Ok(n)) = read else {
                return;
            };
            let line = request.get(..n).unwrap_or_default();
            let (status, body) =
                if line.starts_with(b"GET /metrics ") || line.starts_with(b"GET /metrics?") {
                    ("200 OK", handle.render())
                } else {
                    (
                        "404 Not Found",
                        "only GET /metrics is served here\n".to_owned(),
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
