//! The decision log: one JSON line per answered (or refused) Authorizer
//! call, for audits and for "why was this denied yesterday?". Requests
//! never wait for it: lines go through a bounded queue to a writer
//! thread, and a line that finds the queue full is dropped and counted
//! (`permd_decision_log_lines_total{result="dropped"}`). A slow disk or a
//! stuck pipe costs lines, never latency.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

use serde::Serialize;

use super::metrics::DECISION_LOG_LINES;

/// Lines waiting for the writer; past it they are dropped. About 4 MB of
/// lines at most: a few milliseconds of a stalled disk at full load.
const QUEUE: usize = 8_192;

/// Where decision lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    Stdout,
    File(PathBuf),
}

impl Sink {
    /// `off` (None), `stdout`, or a file path (appended to).
    pub fn parse(text: &str) -> Option<Sink> {
        match text.trim() {
            "" | "off" => None,
            "stdout" | "-" => Some(Sink::Stdout),
            path => Some(Sink::File(PathBuf::from(path))),
        }
    }
}

/// The fraction of lines kept, per kind of call. Errors are always kept.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Single-record Checks that were allowed: the bulk of a sidecar's
    /// traffic and the least interesting.
    pub checks: f64,
    /// Single-record Checks that were denied.
    pub denials: f64,
    /// Every call about many records or about access (BatchCheck,
    /// LookupRecords, RecordAccess, ObjectAccess, Explain): one line
    /// stands for up to 100,000 decisions.
    pub batches: f64,
}

/// `checks=0.1,denials=1,batches=1`: every allowed single Check in ten,
/// every denial, every bulk call.
pub const DEFAULT_SAMPLE: &str = "checks=0.1,denials=1,batches=1";

impl Sample {
    /// `checks=R,denials=R,batches=R`, any subset, each R in [0, 1].
    pub fn parse(text: &str) -> Result<Sample, String> {
        let mut sample = Sample {
            checks: 0.1,
            denials: 1.0,
            batches: 1.0,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not key=rate (e.g. {DEFAULT_SAMPLE})"))?;
            let rate: f64 = value
                .trim()
                .parse()
                .ok()
                .filter(|r: &f64| (0.0..=1.0).contains(r))
                .ok_or_else(|| format!("'{value}' in '{part}' is not a rate between 0 and 1"))?;
            match key.trim() {
                "checks" => sample.checks = rate,
                "denials" => sample.denials = rate,
                "batches" => sample.batches = rate,
                other => {
                    return Err(format!(
                        "'{other}' is not a kind of call; kinds are checks, denials and batches"
                    ));
                }
            }
        }
        Ok(sample)
    }
}

/// Which sampling rate a line falls under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Check,
    Denial,
    Batch,
    Error,
}

/// One line. Field names are the log's public format (README
/// "Observability"): add, never rename.
#[derive(Debug, Default, Serialize)]
pub struct Decision {
    /// RFC 3339, UTC; written by the writer thread from `at`.
    pub time: String,
    /// When the call ended.
    #[serde(skip)]
    pub at: Option<std::time::SystemTime>,
    pub method: &'static str,
    /// gRPC status code name: `OK`, `NotFound`, …
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub tenant: String,
    /// `user:ID`, `integration:ID`, `automation:ID`.
    pub principal: String,
    pub object: String,
    pub action: String,
    pub records: u64,
    pub allowed: u64,
    /// Denied records per reason.
    pub denied: BTreeMap<&'static str, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
    pub latency_us: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<std::net::SocketAddr>,
}

/// The log: a queue and its sampling. Cheap to share.
pub struct DecisionLog {
    queue: SyncSender<Decision>,
    /// Lines in the queue: a call that would find it full skips making
    /// its line at all.
    queued: std::sync::Arc<AtomicU64>,
    sample: Sample,
    seen: [AtomicU64; 3],
}

impl DecisionLog {
    /// Opens the sink and starts the writer thread.
    pub fn start(sink: &Sink, sample: Sample) -> anyhow::Result<DecisionLog> {
        let out: Box<dyn Write + Send> = match sink {
            Sink::Stdout => Box::new(std::io::stdout()),
            Sink::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot open the decision log {} for appending: {e} (--decision-log)",
                            path.display()
                        )
                    })?,
            ),
        };
        let (queue, lines) = std::sync::mpsc::sync_channel(QUEUE);
        let queued = std::sync::Arc::new(AtomicU64::new(0));
        let taken = queued.clone();
        std::thread::Builder::new()
            .name("permd-decision-log".to_owned())
            .spawn(move || write_lines(&lines, &taken, out))?;
        metrics::counter!(DECISION_LOG_LINES, "result" => "written").increment(0);
        metrics::counter!(DECISION_LOG_LINES, "result" => "dropped").increment(0);
        Ok(DecisionLog {
            queue,
            queued,
            sample,
            seen: Default::default(),
        })
    }

    /// Whether the next line of this kind is kept. Deterministic: a rate
    /// of 0.1 keeps exactly one line in ten, so the count of kept lines
    /// times 1/rate estimates the calls.
    pub fn wants(&self, kind: Kind) -> bool {
        let (rate, seen) = match kind {
            Kind::Error => return true,
            Kind::Check => (self.sample.checks, &self.seen[0]),
            Kind::Denial => (self.sample.denials, &self.seen[1]),
            Kind::Batch => (self.sample.batches, &self.seen[2]),
        };
        if rate >= 1.0 {
            return true;
        }
        if rate <= 0.0 {
            return false;
        }
        let n = seen.fetch_add(1, Ordering::Relaxed) as f64;
        (n * rate).floor() != ((n + 1.0) * rate).floor()
    }

    /// Whether a line would fit in the queue now; if not, it is counted
    /// as dropped, and the caller need not make it.
    pub fn has_room(&self) -> bool {
        let room = self.queued.load(Ordering::Relaxed) < QUEUE as u64;
        if !room {
            metrics::counter!(DECISION_LOG_LINES, "result" => "dropped").increment(1);
        }
        room
    }

    /// Queues a line, or drops it if the writer is behind.
    pub fn record(&self, decision: Decision) {
        match self.queue.try_send(decision) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                metrics::counter!(DECISION_LOG_LINES, "result" => "dropped").increment(1);
            }
        }
    }
}

/// The writer thread: serializes and writes lines, flushing whenever the
/// queue is empty, so a quiet log is never minutes behind.
fn write_lines(lines: &Receiver<Decision>, queued: &AtomicU64, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut failing = false;
    while let Ok(first) = lines.recv() {
        let mut next = Some(first);
        while let Some(mut line) = next {
            let _ = queued.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            if let Some(at) = line.at {
                line.time = time::OffsetDateTime::from(at)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
            }
            let written = serde_json::to_writer(&mut out, &line)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"));
            match written {
                Ok(()) => {
                    failing = false;
                    metrics::counter!(DECISION_LOG_LINES, "result" => "written").increment(1);
                }
                Err(e) => {
                    metrics::counter!(DECISION_LOG_LINES, "result" => "dropped").increment(1);
                    if !failing {
                        tracing::error!(error = %e, "cannot write the decision log; lines are dropped until it can");
                        failing = true;
                    }
                }
            }
            next = lines.try_recv().ok();
        }
        if let Err(e) = out.flush()
            && !failing
        {
            tracing::error!(error = %e, "cannot write the decision log; lines are dropped until it can");
            failing = true;
        }
    }
}

/// The trace id of W3C trace context (`traceparent: 00-<trace id>-…`).
pub fn trace_id(traceparent: Option<&str>) -> Option<String> {
    let mut parts = traceparent?.split('-');
    let _version = parts.next()?;
    let id = parts.next()?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id != "0".repeat(32))
        .then(|| id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn parses_sinks_and_samples() {
        assert_eq!(Sink::parse("off"), None);
        assert_eq!(Sink::parse("stdout"), Some(Sink::Stdout));
        assert_eq!(
            Sink::parse("/var/log/permd.jsonl"),
            Some(Sink::File("/var/log/permd.jsonl".into()))
        );
        let default = Sample::parse(DEFAULT_SAMPLE).unwrap();
        assert_eq!(
            default,
            Sample {
                checks: 0.1,
                denials: 1.0,
                batches: 1.0
            }
        );
        assert_eq!(Sample::parse("checks=1").unwrap().checks, 1.0);
        assert!(
            Sample::parse("checks=2")
                .unwrap_err()
                .contains("between 0 and 1")
        );
        assert!(
            Sample::parse("check=1")
                .unwrap_err()
                .contains("checks, denials")
        );
        assert!(Sample::parse("checks").unwrap_err().contains("key=rate"));
    }

    #[test]
    fn keeps_exactly_the_sampled_fraction() {
        let dir = std::env::temp_dir().join(format!("permd-declog-{}", std::process::id()));
        let sink = Sink::File(dir.clone());
        let log =
            DecisionLog::start(&sink, Sample::parse("checks=0.1,denials=0").unwrap()).unwrap();
        let kept = (0..1000).filter(|_| log.wants(Kind::Check)).count();
        assert_eq!(kept, 100);
        assert!((0..100).all(|_| !log.wants(Kind::Denial)));
        assert!((0..100).all(|_| log.wants(Kind::Batch) && log.wants(Kind::Error)));
        drop(log);
        let _ = std::fs::remove_file(dir);
    }

    #[test]
    fn reads_the_trace_id_of_a_traceparent() {
        assert_eq!(
            trace_id(Some(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            ))
            .as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id(Some("garbage")), None);
        assert_eq!(
            trace_id(Some(
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
            )),
            None
        );
        assert_eq!(trace_id(None), None);
    }
}
