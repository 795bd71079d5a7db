//! The gRPC listener's connections: at most `max_connections` open (the
//! rest wait in the listen backlog), TCP_NODELAY, and a connection closed
//! when it sends nothing within `handshake_timeout` of being accepted or
//! moves no byte either way for `idle_timeout`. HTTP/2 keep-alive pings
//! keep a live client's idle connection busy; a peer that neither talks
//! nor answers them is closed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

use super::Limits;
use crate::net::Acceptor;

/// The accepted connections, as tonic's `serve_with_incoming` takes them.
/// Accepting stops (and the listening socket closes) when the stream is
/// dropped, as tonic does on shutdown.
pub fn incoming(listener: TcpListener, limits: &Limits) -> ReceiverStream<io::Result<Conn>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut acceptor = Acceptor::new(listener, limits.connections(), "grpc");
    let (handshake, idle) = (limits.handshake_timeout, limits.idle_timeout);
    tokio::spawn(async move {
        loop {
            let (stream, slot) = tokio::select! {
                () = tx.closed() => return,
                accepted = acceptor.accept() => accepted,
            };
            // Without TCP_NODELAY a response that ends in a small segment
            // waits for the peer's delayed ACK: ~40 ms per BatchCheck.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY; dropping the connection");
                continue;
            }
            let conn = Conn::new(stream, slot, handshake, idle);
            if tx.send(Ok(conn)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// One accepted connection and its slot among `max_connections`.
pub struct Conn {
    io: TcpStream,
    _slot: OwnedSemaphorePermit,
    /// Fires at the handshake deadline, then at idle deadlines. Moving a
    /// byte only notes the time (no timer work per read or write); when the
    /// timer fires early because bytes moved since, it is set again.
    timer: Pin<Box<Sleep>>,
    idle: Duration,
    /// When a byte last moved, once greeted.
    last_moved: Instant,
    /// Fewer than 24 bytes read so far: only reads end the handshake window
    /// (the server's own SETTINGS frame is a write).
    greeted: bool,
    read: usize,
}

impl Conn {
    fn new(io: TcpStream, slot: OwnedSemaphorePermit, handshake: Duration, idle: Duration) -> Conn {
        Conn {
            io,
            _slot: slot,
            timer: Box::pin(tokio::time::sleep(handshake)),
            idle,
            last_moved: Instant::now(),
            greeted: false,
            read: 0,
        }
    }

    fn moved(&mut self, read: usize) {
        self.read = self.read.saturating_add(read);
        // The HTTP/2 preface alone is 24 bytes (a TLS ClientHello more): a
        // trickle of single bytes does not end the handshake window.
        if self.read >= 24 {
            self.greeted = true;
        }
        if self.greeted {
            self.last_moved = Instant::now();
        }
    }

    /// Notes a write that moved bytes.
    fn wrote(&mut self, written: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = written
            && *n > 0
        {
            self.moved(0);
        }
    }

    /// An error that closes the connection once its timer has run out.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return None;
            }
            if !self.greeted {
                return Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nothing sent within handshake_timeout",
                ));
            }
            let deadline = self.last_moved + self.idle;
            if deadline <= Instant::now() {
                return Some(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no byte moved for idle_timeout",
                ));
            }
            // Bytes moved since it was set: wait for the new deadline (and
            // poll once more so the timer holds this task's waker).
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                let read = buf.filled().len() - before;
                if read > 0 {
                    this.moved(read);
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.expired(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, data);
        this.wrote(&written);
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
