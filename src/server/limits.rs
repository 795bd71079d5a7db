//! Back-pressure and deadlines. A sidecar that queues without bound turns a
//! burst into latency for every caller; permd refuses what it cannot start
//! now with RESOURCE_EXHAUSTED (the caller retries with backoff) and never
//! computes an answer nobody is waiting for any more.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::telemetry::metrics::record_refusal;

/// Default most unary requests being answered at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;
/// Default most LookupRecords streams open at once.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: usize = 32;
/// Default longest tenant, principal id, object, action, subscription list
/// or field name: real names are short, and a bound keeps cache keys and
/// error messages small.
pub const DEFAULT_MAX_NAME_BYTES: usize = 256;
/// Default most `context.fields` in one request.
pub const DEFAULT_MAX_CONTEXT_FIELDS: usize = 1_024;
/// Default most requests waiting for their `min_revision` at once.
pub const DEFAULT_MAX_REVISION_WAITERS: usize = 1_024;
/// Default longest wait for a `min_revision`, whatever the deadline says.
pub const DEFAULT_MAX_REVISION_WAIT: Duration = Duration::from_secs(5);
/// Default: a `min_revision` more than this far ahead is refused at once.
pub const DEFAULT_MAX_REVISION_LEAD: u64 = 100_000;
/// Default most HTTP/2 streams one connection may have open.
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: u32 = 128;
/// Default largest header block of one request.
pub const DEFAULT_MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// Default most request bytes received but not yet decoded, server-wide.
pub const DEFAULT_MAX_BUFFERED_REQUEST_BYTES: usize = 256 * 1024 * 1024;
/// Default most of those bytes one connection may hold.
pub const DEFAULT_MAX_BUFFERED_REQUEST_BYTES_PER_CONNECTION: usize = 32 * 1024 * 1024;
/// Default time a request's message has to arrive whole.
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a new connection has to send its first bytes.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a connection may stay without a byte either way. Keep-alive
/// pings (every [`KEEPALIVE_INTERVAL`]) keep a live idle client's
/// connection open; an unresponsive one is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// HTTP/2 keep-alive: a PING after this long without a frame from the peer…
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// …which must be answered within this long, or the connection is closed.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The server's limits; each error names the setting that sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_concurrent_requests: usize,
    pub max_concurrent_streams: usize,
    pub max_name_bytes: usize,
    pub max_context_fields: usize,
    pub max_revision_waiters: usize,
    pub max_revision_wait: Duration,
    pub max_revision_lead: u64,
    /// Most connections open at once; `0`: derived from the open-files
    /// limit ([`default_max_connections`]).
    pub max_connections: usize,
    pub max_streams_per_connection: u32,
    pub max_header_list_bytes: u32,
    pub max_buffered_request_bytes: usize,
    pub max_buffered_request_bytes_per_connection: usize,
    pub request_body_timeout: Duration,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: super::DEFAULT_MAX_MESSAGE_BYTES,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_name_bytes: DEFAULT_MAX_NAME_BYTES,
            max_context_fields: DEFAULT_MAX_CONTEXT_FIELDS,
            max_revision_waiters: DEFAULT_MAX_REVISION_WAITERS,
            max_revision_wait: DEFAULT_MAX_REVISION_WAIT,
            max_revision_lead: DEFAULT_MAX_REVISION_LEAD,
            max_connections: 0,
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
            max_header_list_bytes: DEFAULT_MAX_HEADER_LIST_BYTES,
            max_buffered_request_bytes: DEFAULT_MAX_BUFFERED_REQUEST_BYTES,
            max_buffered_request_bytes_per_connection:
                DEFAULT_MAX_BUFFERED_REQUEST_BYTES_PER_CONNECTION,
            request_body_timeout: DEFAULT_REQUEST_BODY_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl Limits {
    /// Settings that cannot work together, refused at start with the
    /// names to change: a zero timeout would close every connection, an
    /// idle timeout within the keep-alive window would close live ones,
    /// and a budget below one message would refuse every large request.
    pub fn validate(&self) -> Result<(), String> {
        let keepalive = KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT;
        if self.handshake_timeout.is_zero() || self.request_body_timeout.is_zero() {
            return Err("handshake_timeout and request_body_timeout must be above 0".to_owned());
        }
        if self.idle_timeout <= keepalive {
            return Err(format!(
                "idle_timeout {:?} must be above {:?} (keep-alive pings every {:?}, answered within {:?}), or live idle clients are cut off",
                self.idle_timeout, keepalive, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT
            ));
        }
        if self.max_buffered_request_bytes_per_connection < self.max_message_bytes
            || self.max_buffered_request_bytes < self.max_buffered_request_bytes_per_connection
        {
            return Err(format!(
                "need max_message_bytes ({}) <= max_buffered_request_bytes_per_connection ({}) <= max_buffered_request_bytes ({})",
                self.max_message_bytes,
                self.max_buffered_request_bytes_per_connection,
                self.max_buffered_request_bytes
            ));
        }
        Ok(())
    }

    /// `max_connections`, with `0` resolved against the open-files limit.
    pub fn connections(&self) -> usize {
        match self.max_connections {
            0 => default_max_connections(),
            n => n,
        }
    }
}

/// Half of the open-files limit left after 256 descriptors for everything
/// else (data files, the database, the metrics port), between 64 and
/// 16,384: past it new connections wait in the kernel's backlog instead of
/// failing `accept` with EMFILE.
pub fn default_max_connections() -> usize {
    (open_files_limit().saturating_sub(256) / 2).clamp(64, 16_384)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn open_files_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if ok {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1_024
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn open_files_limit() -> usize {
    1_024
}

/// Admission: one semaphore for unary requests, one for streams, one for
/// requests waiting on a `min_revision` (which hold no compute permit).
#[derive(Clone, Debug)]
pub struct Gate {
    requests: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    waiters: Arc<Semaphore>,
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
        still_wanted(self.deadline)
    }
}

fn still_wanted(deadline: Option<Instant>) -> Result<(), Status> {
    match deadline {
        Some(deadline) if Instant::now() >= deadline => Err(Status::deadline_exceeded(
            "the request's deadline (grpc-timeout) passed before permd started on it; it was not computed",
        )),
        _ => Ok(()),
    }
}

impl Gate {
    pub fn new(limits: Limits) -> Gate {
        Gate {
            requests: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
            streams: Arc::new(Semaphore::new(limits.max_concurrent_streams)),
            waiters: Arc::new(Semaphore::new(limits.max_revision_waiters)),
            limits,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn request(&self, deadline: Option<Instant>) -> Result<Admitted, Status> {
        let permit = self.requests.clone().try_acquire_owned().map_err(|_| {
            record_refusal("max_concurrent_requests");
            Status::resource_exhausted(format!(
                "permd is answering its limit of {} concurrent requests (max_concurrent_requests); retry with backoff",
                self.limits.max_concurrent_requests
            ))
        })?;
        Self::admitted(permit, deadline)
    }

    pub fn stream(&self, deadline: Option<Instant>) -> Result<Admitted, Status> {
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            record_refusal("max_concurrent_streams");
            Status::resource_exhausted(format!(
                "permd is serving its limit of {} concurrent LookupRecords streams (max_concurrent_streams); retry with backoff",
                self.limits.max_concurrent_streams
            ))
        })?;
        Self::admitted(permit, deadline)
    }

    /// A place among the requests waiting for a `min_revision`.
    pub fn waiter(&self) -> Result<OwnedSemaphorePermit, Status> {
        self.waiters.clone().try_acquire_owned().map_err(|_| {
            record_refusal("max_revision_waiters");
            Status::resource_exhausted(format!(
                "{} requests are already waiting for a min_revision this permd has not applied yet (max_revision_waiters); retry with backoff",
                self.limits.max_revision_waiters
            ))
        })
    }

    fn admitted(
        permit: OwnedSemaphorePermit,
        deadline: Option<Instant>,
    ) -> Result<Admitted, Status> {
        still_wanted(deadline)?;
        Ok(Admitted {
            _permit: permit,
            deadline,
        })
    }
}

/// When the caller stops waiting, from its `grpc-timeout`.
pub fn deadline_of(metadata: &MetadataMap) -> Option<Instant> {
    deadline(metadata).and_then(|d| Instant::now().checked_add(d))
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

/// Rewrites two of tonic's codec errors into the codes gRPC clients act
/// on: "message too large" (OUT_OF_RANGE) becomes RESOURCE_EXHAUSTED naming
/// the setting, and a request that is not valid protobuf (say, invalid
/// UTF-8 in a string field: INTERNAL from the codec) becomes
/// INVALID_ARGUMENT — the caller sent it, nothing failed inside permd.
pub fn rewrite_codec_errors<B>(mut response: http::Response<B>, limit: usize) -> http::Response<B> {
    let headers = response.headers_mut();
    let status = headers.get("grpc-status").cloned();
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(|m| m.replace("%20", " "));
    let Some(message) = message else {
        return response;
    };
    let rewritten = if status.as_ref().is_some_and(|s| s == "11")
        && message.contains("message length too large")
    {
        Some((
            "8",
            format!(
                "request larger than the limit of {limit} bytes (max_message_bytes); send fewer records per request"
            ),
        ))
    } else if status.as_ref().is_some_and(|s| s == "13")
        && message.starts_with("failed to decode Protobuf message")
    {
        Some((
            "3",
            format!("the request is not a valid protobuf message of its type: {message}"),
        ))
    } else {
        None
    };
    if let Some((code, message)) = rewritten {
        headers.insert("grpc-status", http::HeaderValue::from_static(code));
        if let Ok(value) = http::HeaderValue::from_str(&message.replace(' ', "%20")) {
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
            max_revision_waiters: 1,
            ..Limits::default()
        });
        let first = gate.request(None);
        assert!(first.is_ok());
        let refused = gate.request(None).err().map(|s| s.code());
        assert_eq!(refused, Some(tonic::Code::ResourceExhausted));
        drop(first);
        assert!(gate.request(None).is_ok());
        let _stream = gate.stream(None);
        let refused = gate.stream(None).err().map(|s| s.message().to_owned());
        assert!(refused.is_some_and(|m| m.contains("max_concurrent_streams")));
        let waiting = gate.waiter();
        assert!(waiting.is_ok());
        let refused = gate.waiter().err().map(|s| s.message().to_owned());
        assert!(refused.is_some_and(|m| m.contains("max_revision_waiters")));
        drop(waiting);
        assert!(gate.waiter().is_ok());
    }

    #[test]
    fn settings_that_cannot_work_together_are_refused() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let bad = [
            Limits {
                idle_timeout: Duration::from_secs(30),
                ..Limits::default()
            },
            Limits {
                handshake_timeout: Duration::ZERO,
                ..Limits::default()
            },
            Limits {
                max_buffered_request_bytes_per_connection: 1024,
                ..Limits::default()
            },
        ];
        for limits in bad {
            assert!(limits.validate().is_err(), "{limits:?}");
        }
    }

    #[test]
    fn a_request_past_its_deadline_is_not_admitted() {
        let gate = Gate::new(Limits::default());
        let status = gate.request(deadline_of(&with_timeout("0n"))).err();
        assert_eq!(
            status.map(|s| s.code()),
            Some(tonic::Code::DeadlineExceeded)
        );
    }
}
