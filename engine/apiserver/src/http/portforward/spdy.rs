//! The server side of SPDY/3.1 as kubectl's port forwarding uses it (through
//! docker's spdystream): streams opened by the client with SYN_STREAM,
//! answered with SYN_REPLY, DATA both ways with FIN half-closes, RST_STREAM,
//! PING echoed, GOAWAY. Header blocks are zlib streams primed with the SPDY/3
//! dictionary (`spdy3-dictionary.bin`, see `SPDY-DICTIONARY-SOURCE.md`).
//! spdystream does no flow control, so WINDOW_UPDATE and SETTINGS are read
//! and ignored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::portforward::{PodPortForward, PortRequest};

/// The SPDY/3 header compression dictionary (SPDY/3 draft, section 2.6.10.1).
const DICTIONARY: &[u8] = include_bytes!("spdy3-dictionary.bin");

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status: the stream was refused.
const REFUSED_STREAM: u32 = 3;
/// RST_STREAM status: the stream is not one this side knows.
const INVALID_STREAM: u32 = 2;

/// Largest frame accepted; kubectl writes data in 32 KiB pieces.
const MAX_FRAME: usize = 1024 * 1024;
/// Largest decompressed header block accepted.
const MAX_HEADERS: usize = 64 * 1024;
/// Most streams open at once in one session (two per forwarded connection).
const MAX_STREAMS: usize = 1024;
/// How long a session may stay silent (Kubernetes' streaming idle timeout).
const IDLE: Duration = Duration::from_secs(4 * 3600);
/// Frames waiting to be written; senders wait when it is full.
const OUTBOX: usize = 64;
/// Data frames from the client waiting for the pod, per stream.
const INBOX: usize = 16;
/// Largest DATA frame this side writes.
const CHUNK: usize = 32 * 1024;

/// A frame to write; header blocks are compressed by the writer, in order.
enum Out {
    Reply { stream: u32 },
    Data { stream: u32, data: Bytes, fin: bool },
    Reset { stream: u32, status: u32 },
    Ping { id: u32 },
    GoAway,
}

/// One forwarded connection's two streams, as they arrive.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<u32>,
    port: Option<u16>,
    started: bool,
}

/// One SPDY session: one kubectl port-forward command.
pub(super) struct Session {
    backend: Arc<dyn PodPortForward>,
    namespace: String,
    pod: String,
    object: Arc<Value>,
}

#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("a {0}-byte frame is larger than the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("a header block cannot be read: {0}")]
    Headers(&'static str),
    #[error("the session was idle for {0:?}")]
    Idle(Duration),
}

struct Inflater(Decompress);

impl Inflater {
    fn new() -> Self {
        Self(Decompress::new(true))
    }

    /// Decompress one header block (the zlib stream continues across blocks).
    fn inflate(&mut self, mut input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADERS {
                    return Err(FrameError::Headers("it is larger than 64 KiB"));
                }
                out.reserve(out.len().max(256));
            }
            let before = self.0.total_in();
            let produced = self.0.total_out();
            match self
                .0
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(DICTIONARY)
                        .map_err(|_| FrameError::Headers("the dictionary is refused"))?;
                }
                Err(_) => return Err(FrameError::Headers("it is not a zlib stream")),
            }
            let consumed = (self.0.total_in() - before) as usize;
            input = &input[consumed..];
            let progress = consumed > 0 || self.0.total_out() > produced;
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
            if !progress && out.len() < out.capacity() {
                return Err(FrameError::Headers("it ends early"));
            }
        }
    }
}

struct Deflater(Compress);

impl Deflater {
    fn new() -> Self {
        let mut compress = Compress::new(Compression::default(), true);
        // A fresh compressor takes a dictionary; failure would be a bug in flate2.
        let _ = compress.set_dictionary(DICTIONARY);
        Self(compress)
    }

    fn deflate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut input = input;
        loop {
            let before = self.0.total_in();
            let status = self
                .0
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .unwrap_or(Status::StreamEnd);
            input = &input[(self.0.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() || status == Status::StreamEnd {
                return out;
            }
            out.reserve(256);
        }
    }
}

/// Header name/value pairs of a decompressed block (names lowercase).
fn parse_headers(block: &[u8]) -> Result<HashMap<String, String>, FrameError> {
    let mut at = 0;
    let mut take = |n: usize| -> Result<&[u8], FrameError> {
        let slice = block
            .get(at..at + n)
            .ok_or(FrameError::Headers("it ends inside a header"))?;
        at += n;
        Ok(slice)
    };
    let u32_at = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = u32_at(take(4)?);
    let mut headers = HashMap::new();
    for _ in 0..count.min(1024) {
        let len = u32_at(take(4)?);
        let name = String::from_utf8_lossy(take(len)?).to_ascii_lowercase();
        let len = u32_at(take(4)?);
        let value = String::from_utf8_lossy(take(len)?).into_owned();
        headers.insert(name, value);
    }
    Ok(headers)
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(&(0x8000u16 | 3).to_be_bytes());
    frame.extend_from_slice(&kind.to_be_bytes());
    let len = payload.len() as u32;
    frame.push(flags);
    frame.extend_from_slice(&len.to_be_bytes()[1..]);
    frame.extend_from_slice(payload);
    frame
}

fn encode(out: Out, deflater: &mut Deflater) -> Vec<u8> {
    match out {
        Out::Reply { stream } => {
            let mut payload = stream.to_be_bytes().to_vec();
            payload.extend(deflater.deflate(&0u32.to_be_bytes()));
            control(SYN_REPLY, 0, &payload)
        }
        Out::Data { stream, data, fin } => {
            let mut frame = Vec::with_capacity(8 + data.len());
            frame.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
            frame.push(if fin { FLAG_FIN } else { 0 });
            frame.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            frame.extend_from_slice(&data);
            frame
        }
        Out::Reset { stream, status } => {
            let mut payload = stream.to_be_bytes().to_vec();
            payload.extend_from_slice(&status.to_be_bytes());
            control(RST_STREAM, 0, &payload)
        }
        Out::Ping { id } => control(PING, 0, &id.to_be_bytes()),
        Out::GoAway => {
            let mut payload = 0u32.to_be_bytes().to_vec();
            payload.extend_from_slice(&0u32.to_be_bytes());
            control(GOAWAY, 0, &payload)
        }
    }
}

/// A frame as read: control frames by type, data frames by stream.
enum Frame {
    Control {
        kind: u16,
        payload: BytesMut,
    },
    Data {
        stream: u32,
        flags: u8,
        payload: BytesMut,
    },
}

async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut head = [0u8; 8];
    match tokio::time::timeout(IDLE, reader.read_exact(&mut head)).await {
        Err(_) => return Err(FrameError::Idle(IDLE)),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) => return Err(e.into()),
        Ok(Ok(_)) => {}
    }
    let flags = head[4];
    let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut payload = BytesMut::zeroed(len);
    reader.read_exact(&mut payload).await?;
    Ok(Some(if head[0] & 0x80 != 0 {
        Frame::Control {
            kind: u16::from_be_bytes([head[2], head[3]]),
            payload,
        }
    } else {
        Frame::Data {
            stream: u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff,
            flags,
            payload,
        }
    }))
}

fn u32_of(payload: &[u8], at: usize) -> u32 {
    payload
        .get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

impl Session {
    pub(super) fn new(
        backend: Arc<dyn PodPortForward>,
        namespace: String,
        pod: String,
        object: Arc<Value>,
    ) -> Self {
        Self {
            backend,
            namespace,
            pod,
            object,
        }
    }

    /// Serve the session until the client goes away.
    pub(super) async fn run<T: AsyncRead + AsyncWrite + Send + 'static>(self, io: T) {
        let (mut reader, mut writer) = tokio::io::split(io);
        let (outbox, mut queue) = mpsc::channel::<Out>(OUTBOX);
        let writing = tokio::spawn(async move {
            let mut deflater = Deflater::new();
            while let Some(out) = queue.recv().await {
                let bytes = encode(out, &mut deflater);
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
                if queue.is_empty() && writer.flush().await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });
        if let Err(error) = self.read_loop(&mut reader, &outbox).await {
            tracing::debug!(pod = %self.pod, %error, "port-forward session ended");
            let _ = outbox.try_send(Out::GoAway);
        }
        drop(outbox);
        // The writer ends once every forwarder has let go of its sender.
        let _ = tokio::time::timeout(Duration::from_secs(5), writing).await;
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        outbox: &mpsc::Sender<Out>,
    ) -> Result<(), FrameError> {
        let mut inflater = Inflater::new();
        let mut pairs: HashMap<String, Pair> = HashMap::new();
        let mut inboxes: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
        let mut waiting: HashMap<u32, mpsc::Receiver<Bytes>> = HashMap::new();
        while let Some(frame) = read_frame(reader).await? {
            match frame {
                Frame::Control {
                    kind: SYN_STREAM,
                    payload,
                } => {
                    let stream = u32_of(&payload, 0) & 0x7fff_ffff;
                    let headers =
                        parse_headers(&inflater.inflate(payload.get(10..).unwrap_or(&[]))?)?;
                    if inboxes.len() + pairs.len() >= MAX_STREAMS {
                        let _ = outbox
                            .send(Out::Reset {
                                stream,
                                status: REFUSED_STREAM,
                            })
                            .await;
                        continue;
                    }
                    if outbox.send(Out::Reply { stream }).await.is_err() {
                        return Ok(());
                    }
                    let request = headers.get("requestid").cloned().unwrap_or_default();
                    let pair = pairs.entry(request.clone()).or_default();
                    pair.port = headers.get("port").and_then(|p| p.parse().ok());
                    match headers.get("streamtype").map(String::as_str) {
                        Some("error") => pair.error = Some(stream),
                        Some("data") => {
                            pair.data = Some(stream);
                            let (tx, rx) = mpsc::channel(INBOX);
                            inboxes.insert(stream, tx);
                            waiting.insert(stream, rx);
                        }
                        _ => {
                            let _ = outbox
                                .send(Out::Reset {
                                    stream,
                                    status: INVALID_STREAM,
                                })
                                .await;
                        }
                    }
                    if let (Some(error), Some(data), false) = (pair.error, pair.data, pair.started)
                    {
                        pair.started = true;
                        let port = pair.port;
                        let from_client = waiting.remove(&data);
                        if let Some(from_client) = from_client {
                            self.forward(port, error, data, from_client, outbox.clone());
                        }
                        pairs.remove(&request);
                    }
                }
                Frame::Control {
                    kind: RST_STREAM,
                    payload,
                    ..
                } => {
                    let stream = u32_of(&payload, 0) & 0x7fff_ffff;
                    inboxes.remove(&stream);
                    waiting.remove(&stream);
                }
                Frame::Control {
                    kind: PING,
                    payload,
                    ..
                } => {
                    let _ = outbox
                        .send(Out::Ping {
                            id: u32_of(&payload, 0),
                        })
                        .await;
                }
                Frame::Control { kind: GOAWAY, .. } => return Ok(()),
                // SETTINGS, WINDOW_UPDATE, HEADERS, NOOP: nothing to do.
                Frame::Control { .. } => {}
                Frame::Data {
                    stream,
                    flags,
                    payload,
                } => {
                    if let Some(inbox) = inboxes.get(&stream) {
                        if !payload.is_empty() && inbox.send(payload.freeze()).await.is_err() {
                            inboxes.remove(&stream);
                        }
                        if flags & FLAG_FIN != 0 {
                            // Dropping the sender tells the forwarder the client is done writing.
                            inboxes.remove(&stream);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Join a forwarded connection's data stream to a connection to the pod.
    fn forward(
        &self,
        port: Option<u16>,
        error_stream: u32,
        data_stream: u32,
        mut from_client: mpsc::Receiver<Bytes>,
        outbox: mpsc::Sender<Out>,
    ) {
        let backend = self.backend.clone();
        let request = port.map(|port| PortRequest {
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            object: self.object.clone(),
            port,
        });
        tokio::spawn(async move {
            let fail = |message: String| async {
                let _ = outbox
                    .send(Out::Data {
                        stream: error_stream,
                        data: Bytes::from(message),
                        fin: true,
                    })
                    .await;
                let _ = outbox
                    .send(Out::Data {
                        stream: data_stream,
                        data: Bytes::new(),
                        fin: true,
                    })
                    .await;
            };
            let Some(request) = request else {
                fail("the data stream names no valid port".into()).await;
                return;
            };
            let connection = match backend.connect(request).await {
                Ok(connection) => connection,
                Err(error) => {
                    fail(error.to_string()).await;
                    return;
                }
            };
            let (mut pod_read, mut pod_write) = tokio::io::split(connection);
            // The client's side runs on its own: it ends only when the client
            // closes its local connection, and kubectl does that only after the
            // error stream ends, which must therefore not wait for it.
            let upstream = tokio::spawn(async move {
                while let Some(chunk) = from_client.recv().await {
                    if pod_write.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                let _ = pod_write.shutdown().await;
            });
            let downstream = async {
                let mut buffer = vec![0u8; CHUNK];
                loop {
                    match pod_read.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let data = Bytes::copy_from_slice(&buffer[..n]);
                            let out = Out::Data {
                                stream: data_stream,
                                data,
                                fin: false,
                            };
                            if outbox.send(out).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = outbox
                    .send(Out::Data {
                        stream: data_stream,
                        data: Bytes::new(),
                        fin: true,
                    })
                    .await;
            };
            // The pod closed its side: the forwarded connection is over, as
            // the kubelet's port forwarding ends when either copy does. A
            // client that half-closed first has had its data written already.
            downstream.await;
            upstream.abort();
            let _ = outbox
                .send(Out::Data {
                    stream: error_stream,
                    data: Bytes::new(),
                    fin: true,
                })
                .await;
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_round_trip_through_the_dictionary() {
        let mut block = Vec::new();
        block.extend_from_slice(&2u32.to_be_bytes());
        for (k, v) in [("streamtype", "data"), ("port", "8080")] {
            block.extend_from_slice(&(k.len() as u32).to_be_bytes());
            block.extend_from_slice(k.as_bytes());
            block.extend_from_slice(&(v.len() as u32).to_be_bytes());
            block.extend_from_slice(v.as_bytes());
        }
        let mut deflater = Deflater::new();
        let mut inflater = Inflater::new();
        for _ in 0..2 {
            let compressed = deflater.deflate(&block);
            let headers = parse_headers(&inflater.inflate(&compressed).unwrap()).unwrap();
            assert_eq!(headers["streamtype"], "data");
            assert_eq!(headers["port"], "8080");
        }
        assert_eq!(DICTIONARY.len(), 1423);
    }
}
