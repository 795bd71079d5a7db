//! Back-pressure and deadlines. A sidecar that queues without bound turns a
//! burst into latency for every caller; permd refuses what it cannot start
//! now with RESOURCE_EXHAUSTED (the caller retries with backoff) and never
//! computes an answer nobody is waiting for any more.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic::metadata::MetadataMap;

/// Default most unary requests being answered at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;
/// Default most LookupRecords streams open at once.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: usize = 32;

/// The server's limits; each error names the setting that sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_concurrent_requests: usize,
    pub max_concurrent_streams: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: super::DEFAULT_MAX_MESSAGE_BYTES,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
        }
    }
}

/// Admission: one semaphore for unary requests, one for streams.
#[derive(Clone, Debug)]
pub struct Gate {
    requests: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    limits: Limits,
}

/// What an admitted request holds until it is answered.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    pub deadline: Option<Instant>,
}

impl Admitted {
    /// DEADLINE_EXCEEDED if the caller's deadline has passed: checked right
    /// before the work starts, so a request that waited too long is dropped
    /// instead of computed.
    pub fn still_wanted(&self) -> Result<(), Status> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(Status::deadline_exceeded(
                "the request's deadline (grpc-timeout) passed before permd started on it; it was not computed",
            )),
            _ => Ok(()),
        }
    }
}

impl Gate {
    pub fn new(limits: Limits) -> Gate {
        Gate {
            requests: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            streams: Arc::new(Semaphore::new(limits.max_concurrent_streams)),
            limits,
        }
    }

    pub fn request(&self, metadata: &MetadataMap) -> Result<Admitted, Status> {
        let permit = self.requests.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "permd is answering its limit of {} concurrent requests (max_concurrent_requests); retry with backoff",
                self.limits.max_concurrent_requests
            ))
        })?;
        Self::admitted(permit, metadata)
    }

    pub fn stream(&self, metadata: &MetadataMap) -> Result<Admitted, Status> {
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "permd is serving its limit of {} concurrent LookupRecords streams (max_concurrent_streams); retry with backoff",
                self.limits.max_concurrent_streams
            ))
        })?;
        Self::admitted(permit, metadata)
    }

    fn admitted(permit: OwnedSemaphorePermit, metadata: &MetadataMap) -> Result<Admitted, Status> {
        let admitted = Admitted {
            _permit: permit,
            deadline: deadline(metadata).map(|d| Instant::now() + d),
        };
        admitted.still_wanted()?;
        Ok(admitted)
    }
}

/// The caller's `grpc-timeout` (gRPC over HTTP/2: up to 8 digits and a unit
/// H, M, S, m, u or n). A malformed header is ignored, as gRPC servers do.
pub fn deadline(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = (value.get(..split)?, value.get(split..)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Rewrites tonic's "message too large" (OUT_OF_RANGE) into what gRPC
/// clients expect for it, RESOURCE_EXHAUSTED, naming the setting.
pub fn message_too_large<B>(mut response: http::Response<B>, limit: usize) -> http::Response<B> {
    let headers = response.headers_mut();
    let too_large = headers.get("grpc-status").is_some_and(|s| s == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| {
                m.contains("message%20length%20too%20large")
                    || m.contains("message length too large")
            });
    if too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        let message = format!(
            "request larger than the limit of {limit} bytes (max_message_bytes); send fewer records per request"
        )
        .replace(' ', "%20");
        if let Ok(value) = http::HeaderValue::from_str(&message) {
            headers.insert("grpc-message", value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_timeout(v: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Ok(v) = v.parse() {
            m.insert("grpc-timeout", v);
        }
        m
    }

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(deadline(&with_timeout("5S")), Some(Duration::from_secs(5)));
        assert_eq!(
            deadline(&with_timeout("250m")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            deadline(&with_timeout("2H")),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(
            deadline(&with_timeout("10u")),
            Some(Duration::from_micros(10))
        );
        assert_eq!(deadline(&with_timeout("7n")), Some(Duration::from_nanos(7)));
        for bad in ["", "S", "5", "5X", "123456789S", "-1S", "1.5S"] {
            assert_eq!(deadline(&with_timeout(bad)), None, "{bad}");
        }
        assert_eq!(deadline(&MetadataMap::new()), None);
    }

    #[test]
    fn permits_run_out_and_come_back() {
        let gate = Gate::new(Limits {
            max_concurrent_requests: 1,
            max_concurrent_streams: 1,
            ..Limits::default()
        });
        let first = gate.request(&MetadataMap::new());
        assert!(first.is_ok());
        let refused = gate.request(&MetadataMap::new()).err().map(|s| s.code());
        assert_eq!(refused, Some(tonic::Code::ResourceExhausted));
        drop(first);
        assert!(gate.request(&MetadataMap::new()).is_ok());
        let _stream = gate.stream(&MetadataMap::new());
        let refused = gate
            .stream(&MetadataMap::new())
            .err()
            .map(|s| s.message().to_owned());
        assert!(refused.is_some_and(|m| m.contains("max_concurrent_streams")));
    }

    #[test]
    fn a_request_past_its_deadline_is_not_admitted() {
        let gate = Gate::new(Limits::default());
        let status = gate.request(&with_timeout("0n")).err();
        assert_eq!(
            status.map(|s| s.code()),
            Some(tonic::Code::DeadlineExceeded)
        );
    }
}
