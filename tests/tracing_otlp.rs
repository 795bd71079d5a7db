//! OTLP traces from a real `permd serve`: a BatchCheck carrying W3C trace
//! context becomes a span, exported over OTLP/gRPC to a collector running in
//! this test, with the caller's trace id and the caller's span as parent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use common::requests::{batch, demo_contacts, user};
use common::server::Serve;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::sync::mpsc;

struct Collector(mpsc::UnboundedSender<ExportTraceServiceRequest>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _ = self.0.send(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_traceparent_becomes_a_child_span_at_the_collector() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let (tx, mut exported) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(tx)))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let server = Serve::new()
        .args(["--otlp-endpoint", &format!("http://{collector_addr}")])
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env("OTEL_SERVICE_NAME", "permd-under-test")
        .spawn();
    let mut client = server.client().await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(batch(
        user("carol"),
        "contacts",
        "bulk_send_email",
        &demo_contacts(10),
    ));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{caller_span}-01").parse().unwrap(),
    );
    client.batch_check(request).await.unwrap();

    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(batch) = exported.recv().await {
            for resource in batch.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .any(|a| {
                        a.key == "service.name"
                            && format!("{:?}", a.value).contains("permd-under-test")
                    });
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        if hex(&span.trace_id) == trace_id {
                            return (span, service);
                        }
                    }
                }
            }
        }
        panic!("the collector stopped");
    })
    .await
    .expect("a span with the caller's trace id reached the collector within 20 s");
    let (span, service) = found;
    assert!(service, "resource names the service");
    assert_eq!(
        hex(&span.parent_span_id),
        caller_span,
        "child of the caller's span"
    );
    assert!(span.name.contains("BatchCheck"), "{}", span.name);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
