//! Budgets of request bytes received but not yet decoded, one server-wide
//! and one per connection, and a time limit on receiving a request. tonic
//! gathers a whole message before the service sees it, so without bounds
//! a client could open many streams, announce large messages, send most
//! of each and never finish: memory held for as long as it likes, and —
//! with only a global budget — everybody else refused.
//!
//! Each request body takes bytes from both budgets as they arrive and
//! gives them back when tonic drops the body (the message decoded, or the
//! call gone). A body that would overdraw its connection's share
//! (`max_buffered_request_bytes_per_connection`) or the server's
//! (`max_buffered_request_bytes`) fails its call with RESOURCE_EXHAUSTED;
//! one still arriving after `request_body_timeout` fails with
//! DEADLINE_EXCEEDED, so no budget is held for long.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use rustc_hash::FxHashMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::Limits;
use crate::telemetry::metrics::record_refusal;

/// Wraps every request body of the inner service in the budgets.
#[derive(Clone, Debug)]
pub struct BudgetLayer {
    global: Arc<Semaphore>,
    /// Bytes held per connection, by peer address.
    connections: Arc<Mutex<FxHashMap<SocketAddr, usize>>>,
    limits: Limits,
}

impl BudgetLayer {
    pub fn new(limits: &Limits) -> BudgetLayer {
        let global = limits
            .max_buffered_request_bytes
            .min(Semaphore::MAX_PERMITS);
        BudgetLayer {
            global: Arc::new(Semaphore::new(global)),
            connections: Arc::default(),
            limits: *limits,
        }
    }
}

/// The peer of a request, plain or TLS.
fn peer(request: &http::Request<tonic::body::Body>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
}

impl<S> tower::Layer<S> for BudgetLayer {
    type Service = Budgeted<S>;

    fn layer(&self, inner: S) -> Budgeted<S> {
        Budgeted {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Budgeted<S> {
    inner: S,
    layer: BudgetLayer,
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for Budgeted<S>
where
    S: tower::Service<http::Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        // Reflection is the one bidirectional stream: its handler may stop
        // reading while a response waits for the client's window, and a
        // body that is not polled would keep its bytes charged. Its
        // messages are small and bounded apart (`REFLECTION_MAX_MESSAGE`);
        // every other service reads its one request message whole, then
        // lets the body go.
        if request.uri().path().starts_with("/grpc.reflection.") {
            return self.inner.call(request);
        }
        let layer = self.layer.clone();
        let peer = peer(&request);
        self.inner.call(request.map(|body| {
            tonic::body::Body::new(Counted {
                inner: body,
                peer,
                started: Instant::now(),
                timer: None,
                held_global: None,
                held_here: 0,
                layer,
            })
        }))
    }
}

/// A request body that holds budget for every byte it has yielded.
struct Counted {
    inner: tonic::body::Body,
    peer: Option<SocketAddr>,
    started: Instant,
    /// Set once the body has to wait for data: most arrive at once.
    timer: Option<Pin<Box<Sleep>>>,
    held_global: Option<OwnedSemaphorePermit>,
    /// Bytes charged to the connection's share.
    held_here: usize,
    layer: BudgetLayer,
}

impl Counted {
    /// Charges `bytes` to the connection and the server, or says which
    /// budget is spent.
    fn charge(&mut self, bytes: usize) -> Result<(), Status> {
        let limits = &self.layer.limits;
        if let Some(peer) = self.peer {
            let mut connections = self
                .layer
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let held = connections.get(&peer).copied().unwrap_or(0);
            if held + bytes > limits.max_buffered_request_bytes_per_connection {
                record_refusal("max_buffered_request_bytes_per_connection");
                return Err(Status::resource_exhausted(format!(
                    "this connection is holding its limit of {} bytes of partly received requests (max_buffered_request_bytes_per_connection); finish or cancel them, then retry",
                    limits.max_buffered_request_bytes_per_connection
                )));
            }
            connections.insert(peer, held + bytes);
            self.held_here += bytes;
        }
        let permit = u32::try_from(bytes)
            .ok()
            .and_then(|n| self.layer.global.clone().try_acquire_many_owned(n).ok())
            .ok_or_else(|| {
                record_refusal("max_buffered_request_bytes");
                Status::resource_exhausted(format!(
                    "permd is holding its limit of {} bytes of partly received requests (max_buffered_request_bytes); retry with backoff",
                    limits.max_buffered_request_bytes
                ))
            })?;
        match self.held_global.as_mut() {
            Some(held) => held.merge(permit),
            None => self.held_global = Some(permit),
        }
        Ok(())
    }

    /// DEADLINE_EXCEEDED once the body has taken `request_body_timeout`.
    fn too_slow(&mut self, cx: &mut Context<'_>) -> Option<Status> {
        let timeout = self.layer.limits.request_body_timeout;
        let started = self.started;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(started + timeout)));
        timer.as_mut().poll(cx).is_ready().then(|| {
            record_refusal("request_body_timeout");
            Status::deadline_exceeded(format!(
                "the request was not received within {} (request_body_timeout); send whole messages promptly",
                humane(timeout)
            ))
        })
    }
}

fn humane(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

impl Drop for Counted {
    fn drop(&mut self) {
        let Some(peer) = self.peer.filter(|_| self.held_here > 0) else {
            return;
        };
        let mut connections = self
            .layer
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = connections.get_mut(&peer) {
            *held = held.saturating_sub(self.held_here);
            if *held == 0 {
                connections.remove(&peer);
            }
        }
    }
}

impl Body for Counted {
    type Data = bytes::Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Pending => {
                return match this.too_slow(cx) {
                    Some(status) => Poll::Ready(Some(Err(status))),
                    None => Poll::Pending,
                };
            }
            other => return other,
        };
        let bytes = frame.data_ref().map_or(0, |d| d.len());
        if bytes > 0
            && let Err(status) = this.charge(bytes)
        {
            return Poll::Ready(Some(Err(status)));
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
