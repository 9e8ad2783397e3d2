//! Connections from the data plane to instances.
//!
//! Each data-plane thread keeps its own idle HTTP/1.1 connections per
//! instance address ([`Upstreams`]), so a request is sent on a connection
//! whose task runs on the same thread, found without a shared lock, and
//! sent in origin form with no URI rebuilt. A connection goes back to the
//! idle set only once its response body has been read to the end; one
//! dropped half-way is closed, since HTTP/1.1 cannot reuse it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::pool::Lease;

/// How long connecting to an instance may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept per instance on one thread; more are closed.
const MAX_IDLE_PER_INSTANCE: usize = 512;

/// Why no connection to an instance could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connect failed (the instance went away, say).
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The instance.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The TCP connect did not finish in time.
    #[error("connecting to {addr}: no answer within {CONNECT_TIMEOUT:?}")]
    Timeout {
        /// The instance.
        addr: SocketAddr,
    },
    /// The HTTP/1.1 handshake failed.
    #[error("starting HTTP/1.1 with {addr}: {source}")]
    Handshake {
        /// The instance.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
}

/// One thread's idle connections to instances, by instance address.
#[derive(Debug, Default)]
pub struct Upstreams {
    // Only the owning thread touches it (the lock is never contended); a
    // Mutex keeps the data-plane stack `Send` as tower wants.
    idle: Mutex<HashMap<SocketAddr, Vec<SendRequest<Incoming>>>>,
}

/// A connection to an instance, taken from [`Upstreams`] for one request.
#[derive(Debug)]
pub struct Upstream {
    /// The instance.
    pub addr: SocketAddr,
    /// Sends the request.
    pub sender: SendRequest<Incoming>,
    /// Whether it came from the idle set (and so may have been closed by
    /// the instance meanwhile) rather than connected just now.
    pub reused: bool,
}

impl Upstreams {
    /// An idle connection to `addr` ready for a request, or a new one.
    pub async fn checkout(&self, addr: SocketAddr) -> Result<Upstream, ConnectError> {
        while let Some(mut sender) = self.pop(addr) {
            // A connection whose previous response just ended becomes
            // ready as soon as its task has run; a closed one errors.
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Ok(Upstream {
                    addr,
                    sender,
                    reused: true,
                });
            }
        }
        let sender = connect(addr).await?;
        Ok(Upstream {
            addr,
            sender,
            reused: false,
        })
    }

    fn pop(&self, addr: SocketAddr) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let senders = idle.get_mut(&addr)?;
        let sender = senders.pop();
        if senders.is_empty() {
            idle.remove(&addr);
        }
        sender
    }

    /// Keeps a connection whose exchange finished for the next request.
    pub fn give_back(&self, addr: SocketAddr, sender: SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let senders = idle.entry(addr).or_default();
        if senders.len() < MAX_IDLE_PER_INSTANCE {
            senders.push(sender);
        }
    }

    /// Idle connections kept now (all instances).
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.values().map(Vec::len).sum()
    }
}

/// Opens an HTTP/1.1 connection to `addr`; its task runs on the caller's
/// runtime (the thread the request is served on).
async fn connect(addr: SocketAddr) -> Result<SendRequest<Incoming>, ConnectError> {
    let stream =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(ConnectError::Connect { addr, source }),
            Err(_) => return Err(ConnectError::Timeout { addr }),
        };
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ConnectError::Handshake { addr, source })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%addr, %error, "connection to instance ended");
        }
    });
    Ok(sender)
}

/// A response body from an instance that gives its connection back to
/// `upstreams` once read to the end, and holds the request's lease on the
/// instance until then.
pub struct Returning {
    body: Incoming,
    finished: bool,
    connection: Option<(Arc<Upstreams>, Upstream)>,
    _lease: Arc<Lease>,
}

impl Returning {
    /// Wraps `body`, read over `upstream` from the instance `lease` holds.
    pub fn new(
        body: Incoming,
        upstreams: Arc<Upstreams>,
        upstream: Upstream,
        lease: Arc<Lease>,
    ) -> Self {
        let finished = body.is_end_stream();
        Self {
            body,
            finished,
            connection: Some((upstreams, upstream)),
            _lease: lease,
        }
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if self.finished
            && let Some((upstreams, upstream)) = self.connection.take()
        {
            upstreams.give_back(upstream.addr, upstream.sender);
        }
    }
}

impl HttpBody for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.finished = true,
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.finished = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::{Request, Response};
    use http_body_util::{BodyExt, Full, StreamBody};

    use super::*;

    /// A body the test instance answers with.
    pub(crate) type InstanceBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

    /// An HTTP/1.1 server on loopback answering with `answer`; counts the
    /// connections it accepted.
    pub(crate) async fn instance<F>(answer: F) -> (SocketAddr, Arc<AtomicUsize>)
    where
        F: Fn(Request<Incoming>) -> Response<InstanceBody> + Clone + Send + Sync + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let response = answer(request);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, accepted)
    }

    pub(crate) fn full(text: &'static str) -> InstanceBody {
        Full::new(Bytes::from_static(text.as_bytes())).boxed()
    }

    /// Sends a GET over `upstreams` to `addr` and reads the body through
    /// [`Returning`] (with a lease on a throwaway pool).
    async fn get(upstreams: &Arc<Upstreams>, addr: SocketAddr) -> String {
        let (request, _client) = incoming_request().await;
        let mut upstream = upstreams.checkout(addr).await.unwrap();
        let response = upstream.sender.try_send_request(request).await.unwrap();
        let lease = crate::pool::tests::lease_on(addr).await;
        let body = Returning::new(response.into_body(), upstreams.clone(), upstream, lease);
        let bytes = body.collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// A server-side `Request<Incoming>` without a body, as the data plane
    /// receives them (taken from a loopback connection).
    pub(crate) async fn incoming_request() -> (Request<Incoming>, tokio::task::JoinHandle<()>) {
        incoming(Request::get("/").header("host", "hello.default.localhost")).await
    }

    /// The server-side form of the request `builder` describes.
    pub(crate) async fn incoming(
        builder: http::request::Builder,
    ) -> (Request<Incoming>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let request = builder.body(Full::new(Bytes::new())).unwrap();
        let client = tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
            tokio::spawn(connection);
            // The answer is never sent: the test only wants the request.
            let _ = sender.send_request(request).await;
        });
        let (stream, _) = listener.accept().await.unwrap();
        let (sender, mut receiver) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let sender = sender.clone();
                async move {
                    let _ = sender.send(request).await;
                    // Hold the connection open until the test is done.
                    std::future::pending::<()>().await;
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        (receiver.recv().await.unwrap(), client)
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_body_was_read_to_the_end() {
        let (addr, accepted) = instance(|_| Response::new(full("hello\n"))).await;
        let upstreams = Arc::new(Upstreams::default());
        for _ in 0..3 {
            assert_eq!(get(&upstreams, addr).await, "hello\n");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(upstreams.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_half_way_closes_its_connection() {
        let (addr, accepted) = instance(|_| {
            // Two chunks, the second never read by the test.
            let chunks = futures::stream::iter([
                Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'a'; 1024]))),
                Ok(Frame::data(Bytes::from(vec![b'b'; 64 * 1024]))),
            ]);
            Response::new(StreamBody::new(chunks).boxed())
        })
        .await;
        let upstreams = Arc::new(Upstreams::default());
        let (request, _client) = incoming_request().await;
        let mut upstream = upstreams.checkout(addr).await.unwrap();
        let response = upstream.sender.try_send_request(request).await.unwrap();
        let lease = crate::pool::tests::lease_on(addr).await;
        let mut body = Returning::new(response.into_body(), upstreams.clone(), upstream, lease);
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.is_data());
        drop(body);
        assert_eq!(upstreams.idle_count(), 0);
        // The next request gets a new connection, and reads to the end.
        let text = get(&upstreams, addr).await;
        assert_eq!(text.len(), 1024 + 64 * 1024);
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(upstreams.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_connection_the_instance_closed_is_not_used_again() {
        let (addr, accepted) = instance(|_| {
            let mut response = Response::new(full("bye\n"));
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            response
        })
        .await;
        let upstreams = Arc::new(Upstreams::default());
        for _ in 0..3 {
            assert_eq!(get(&upstreams, addr).await, "bye\n");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn connecting_to_nothing_names_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let error = Upstreams::default().checkout(addr).await.unwrap_err();
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
    }
}
