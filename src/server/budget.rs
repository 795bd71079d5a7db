//! A server-wide budget of request bytes received but not yet decoded.
//! tonic gathers a whole message before the service sees it, so without a
//! bound a client could open many streams, announce large messages, send
//! most of each and never finish: memory held for as long as it likes.
//! Each request body takes bytes from the budget as they arrive and gives
//! them back when tonic drops the body (the message decoded, or the call
//! gone); a body that would overdraw the budget fails its call with
//! RESOURCE_EXHAUSTED naming `max_buffered_request_bytes`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

/// Wraps every request body of the inner service in the budget.
#[derive(Clone, Debug)]
pub struct BudgetLayer {
    budget: Arc<Semaphore>,
    limit: usize,
}

impl BudgetLayer {
    pub fn new(limit: usize) -> BudgetLayer {
        BudgetLayer {
            budget: Arc::new(Semaphore::new(limit.min(Semaphore::MAX_PERMITS))),
            limit,
        }
    }
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
        let layer = self.layer.clone();
        self.inner.call(request.map(|body| {
            tonic::body::Body::new(Counted {
                inner: body,
                budget: layer.budget,
                limit: layer.limit,
                held: None,
            })
        }))
    }
}

/// A request body that holds budget for every byte it has yielded.
struct Counted {
    inner: tonic::body::Body,
    budget: Arc<Semaphore>,
    limit: usize,
    held: Option<OwnedSemaphorePermit>,
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
            other => return other,
        };
        let bytes = frame.data_ref().map_or(0, |d| d.len());
        if bytes > 0 {
            let permit = u32::try_from(bytes)
                .ok()
                .and_then(|n| this.budget.clone().try_acquire_many_owned(n).ok());
            let Some(permit) = permit else {
                return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                    "permd is holding its limit of {} bytes of partly received requests (max_buffered_request_bytes); retry with backoff",
                    this.limit
                )))));
            };
            match this.held.as_mut() {
                Some(held) => held.merge(permit),
                None => this.held = Some(permit),
            }
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
