//! Accepting TCP connections so that no client can exhaust the process:
//! a bound on open connections (past it, new ones wait in the kernel's
//! listen backlog instead of failing `accept` with EMFILE), and a backoff
//! on accept errors instead of a loop that spins a core at the open-files
//! limit. Used by the gRPC listener and the metrics endpoint.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::telemetry::metrics::ACCEPT_ERRORS;

/// First pause after an accept error; doubled on each error in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
/// Longest pause after accept errors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A listener that hands out at most `slots` connections at a time.
pub struct Acceptor {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    backoff: Duration,
    name: &'static str,
}

impl Acceptor {
    /// `name` says which listener it is in logs and metrics.
    pub fn new(listener: TcpListener, max_connections: usize, name: &'static str) -> Acceptor {
        Acceptor {
            listener,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            backoff: FIRST_BACKOFF,
            name,
        }
    }

    /// The next connection and its slot, held until the connection closes.
    /// Waits while every slot is taken; pauses after an accept error.
    pub async fn accept(&mut self) -> (TcpStream, OwnedSemaphorePermit) {
        loop {
            // The semaphore is never closed; should acquiring ever fail,
            // pause and try again rather than stop accepting.
            let Ok(slot) = self.slots.clone().acquire_owned().await else {
                tokio::time::sleep(MAX_BACKOFF).await;
                continue;
            };
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    self.backoff = FIRST_BACKOFF;
                    return (stream, slot);
                }
                Err(e) => {
                    let kind = match e.raw_os_error() {
                        Some(24 | 23) => "open_files_limit",
                        _ => "other",
                    };
                    metrics::counter!(ACCEPT_ERRORS, "listener" => self.name, "kind" => kind)
                        .increment(1);
                    tracing::warn!(
                        listener = self.name,
                        error = %e,
                        pause_ms = self.backoff.as_millis() as u64,
                        "cannot accept a connection; pausing before the next accept"
                    );
                    drop(slot);
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
