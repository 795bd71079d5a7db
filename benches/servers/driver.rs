//! The gRPC client that `benches/servers/run.py` times permd and Cerbos
//! through: raw request bytes in, raw response bytes out, over one tonic
//! channel per server, timed here so that neither Python's gRPC client
//! (a 250 µs round trip for a health check that does nothing) nor the pipe
//! to this process is in the figure.
//!
//! Protocol on stdin and stdout, one command at a time:
//!
//! - `connect NAME ADDR\n` → `ok 0 0\n`
//! - `call NAME METHOD MODE N\n`, then N requests, each a little-endian
//!   `u32` length and the message's bytes → `ok NANOS M\n`, then M
//!   responses framed the same way. MODE is `together` (the N unary calls
//!   in flight at once on the channel), `sequential` (one after the other)
//!   or `stream` (one server-streaming call: its messages are the M
//!   responses). NANOS runs from before the first call to after the last
//!   response.
//! - a failure answers `err MESSAGE\n` (a call's gRPC status included);
//!   the driver goes on reading.
//!
//! Built by run.py: `cargo build --release --locked --example servers_driver`.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};

/// Passes message bytes through as they are: the requests come serialized
/// from run.py, and the responses are parsed there.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Room for the largest message run.py exchanges (a 10,000-record answer
/// is ~20 KB; a LookupRecords page, a Cerbos answer of 500, well under).
const MAX_MESSAGE: usize = 64 << 20;

type Grpc = tonic::client::Grpc<Channel>;

/// Every call, streams included, ends with an error after this long, as
/// run.py's own calls do: a stalled server fails the run instead of
/// hanging it. Outside the timed interval.
const CALL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut channels: HashMap<String, Grpc> = HashMap::new();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut output = std::io::BufWriter::new(stdout.lock());
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["connect", name, addr] => runtime
                .block_on(connect(addr))
                .map(|grpc| {
                    channels.insert((*name).to_owned(), grpc);
                    Vec::new()
                })
                .map(|responses| (0, responses)),
            ["call", .., n] => {
                // The frames are read whatever else is wrong, so that the
                // next command starts where it should (a count that does
                // not parse leaves no way to find it: the driver stops).
                let requests = read_frames(&mut input, n.parse()?)?;
                match words.as_slice() {
                    [_, name, method, mode, _] => match channels.get(*name) {
                        Some(grpc) => runtime.block_on(async {
                            tokio::time::timeout(
                                CALL_DEADLINE,
                                call(grpc.clone(), method, mode, requests),
                            )
                            .await
                            .unwrap_or_else(|_| {
                                Err(format!("{method}: no answer within {CALL_DEADLINE:?}"))
                            })
                        }),
                        None => Err(format!("no channel named {name}: connect it first")),
                    },
                    _ => Err(format!(
                        "a call is `call NAME METHOD MODE N`, not {:?}",
                        line.trim()
                    )),
                }
            }
            _ => Err(format!("unknown command {:?}", line.trim())),
        };
        match answer {
            Ok((nanos, responses)) => {
                writeln!(output, "ok {nanos} {}", responses.len())?;
                for r in &responses {
                    output.write_all(&u32::try_from(r.len())?.to_le_bytes())?;
                    output.write_all(r)?;
                }
            }
            Err(e) => writeln!(output, "err {}", e.replace('\n', " "))?,
        }
        output.flush()?;
    }
}

async fn connect(addr: &str) -> Result<Grpc, String> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    Ok(Grpc::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE))
}

async fn call(
    grpc: Grpc,
    method: &str,
    mode: &str,
    requests: Vec<Bytes>,
) -> Result<(u128, Vec<Bytes>), String> {
    let path: http::uri::PathAndQuery = method.parse().map_err(|e| format!("{method}: {e}"))?;
    let unary = |grpc: Grpc, request: Bytes| {
        let path = path.clone();
        async move {
            let mut grpc = grpc;
            grpc.ready().await.map_err(|e| e.to_string())?;
            grpc.unary(tonic::Request::new(request), path, Raw)
                .await
                .map(tonic::Response::into_inner)
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        }
    };
    let started = Instant::now();
    let responses = match mode {
        // Only calls in flight together are spawned as tasks: one call is
        // awaited where it is made, as an application would (below).
        "together" if requests.len() > 1 => {
            let n = requests.len();
            let mut tasks = tokio::task::JoinSet::new();
            for (i, r) in requests.into_iter().enumerate() {
                let c = unary(grpc.clone(), r);
                tasks.spawn(async move { (i, c.await) });
            }
            let mut out: Vec<Option<Bytes>> = vec![None; n];
            while let Some(done) = tasks.join_next().await {
                let (i, r) = done.map_err(|e| e.to_string())?;
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(r?);
                }
            }
            out.into_iter().flatten().collect()
        }
        "together" | "sequential" => {
            let mut out = Vec::with_capacity(requests.len());
            for r in requests {
                out.push(unary(grpc.clone(), r).await?);
            }
            out
        }
        "stream" => {
            let [request] = <[Bytes; 1]>::try_from(requests)
                .map_err(|r| format!("a stream takes one request, not {}", r.len()))?;
            let mut grpc = grpc;
            grpc.ready().await.map_err(|e| e.to_string())?;
            let mut stream = grpc
                .server_streaming(tonic::Request::new(request), path.clone(), Raw)
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                .into_inner();
            let mut out = Vec::new();
            while let Some(m) = stream
                .message()
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
            {
                out.push(m);
            }
            out
        }
        other => {
            return Err(format!(
                "unknown mode {other}: together, sequential or stream"
            ));
        }
    };
    Ok((started.elapsed().as_nanos(), responses))
}

/// `n` requests, each a little-endian `u32` length and its bytes.
fn read_frames(input: &mut impl Read, n: usize) -> std::io::Result<Vec<Bytes>> {
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        let mut len = [0; 4];
        input.read_exact(&mut len)?;
        let mut frame = vec![0; u32::from_le_bytes(len) as usize];
        input.read_exact(&mut frame)?;
        frames.push(Bytes::from(frame));
    }
    Ok(frames)
}
