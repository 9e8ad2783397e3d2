//! Connections from the data plane to instances.
//!
//! Each data-plane thread keeps its own connections per instance address
//! ([`Upstreams`]), so a request is sent on a connection whose task runs on
//! the same thread, found without a shared lock.
//!
//! The protocol follows Knative's rule, the container port's name: `h2c`
//! means HTTP/2 without TLS (what `okonomi deploy` names the port of every
//! okonomi function, whose runtime serves both), anything else HTTP/1.1.
//! - HTTP/1.1: idle connections per instance; a request is sent in origin
//!   form with no URI rebuilt; a connection goes back to the idle set only
//!   once its response body has been read to the end (one dropped half-way
//!   is closed, since HTTP/1.1 cannot reuse it).
//! - h2c: one connection per instance and thread carries every request as
//!   its own stream, so under load many requests share each read and write
//!   system call, on the data plane's side and on the instance's.

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
use hyper::client::conn::{TrySendError, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::{Lease, Tracked};

/// How long connecting to an instance may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept per instance on one thread; more are closed.
const MAX_IDLE_PER_INSTANCE: usize = 512;

/// Every this many connections given back, connections that instances
/// closed (scaled down, crashed) are dropped from the idle set, so
/// addresses of instances long gone do not pile up.
const PRUNE_EVERY: usize = 1024;

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
    #[error("starting HTTP with {addr}: {source}")]
    Handshake {
        /// The instance.
        addr: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
}

/// How the data plane speaks to a revision's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 (a container port named `http1`, or not named).
    #[default]
    Http1,
    /// HTTP/2 without TLS, with prior knowledge (a port named `h2c`).
    H2c,
}

impl Protocol {
    /// The protocol Knative picks for a container port name.
    pub fn for_port_name(name: Option<&str>) -> Self {
        match name {
            Some("h2c") => Self::H2c,
            _ => Self::Http1,
        }
    }
}

/// One thread's connections to instances, by instance address.
#[derive(Debug, Default)]
pub struct Upstreams {
    // Only the owning thread touches these (the locks are never
    // contended); Mutexes keep the data-plane stack `Send` as tower wants.
    idle: Mutex<Idle>,
    shared: Mutex<HashMap<SocketAddr, http2::SendRequest<Incoming>>>,
}

#[derive(Debug, Default)]
struct Idle {
    by_instance: HashMap<SocketAddr, Vec<SendRequest<Incoming>>>,
    given_back: usize,
}

/// Sends one request to an instance.
#[derive(Debug)]
pub enum Sender {
    /// An HTTP/1.1 connection, this request's alone until its body ends.
    Http1(SendRequest<Incoming>),
    /// A handle on the thread's h2c connection to the instance.
    H2c(http2::SendRequest<Incoming>),
}

impl Sender {
    /// Sends `request`; gives it back if it was not sent (the connection
    /// had closed meanwhile).
    pub async fn try_send_request(
        &mut self,
        request: http::Request<Incoming>,
    ) -> Result<http::Response<Incoming>, TrySendError<http::Request<Incoming>>> {
        match self {
            Self::Http1(sender) => sender.try_send_request(request).await,
            Self::H2c(sender) => sender.try_send_request(request).await,
        }
    }
}

/// A connection to an instance, taken from [`Upstreams`] for one request.
#[derive(Debug)]
pub struct Upstream {
    /// The instance.
    pub addr: SocketAddr,
    /// Sends the request.
    pub sender: Sender,
    /// Whether it was open before this request (and so may have been
    /// closed by the instance meanwhile) rather than connected just now.
    pub reused: bool,
}

impl Upstreams {
    /// A connection to `addr` ready for a request: an idle or shared one,
    /// else a new one.
    pub async fn checkout(
        &self,
        addr: SocketAddr,
        protocol: Protocol,
    ) -> Result<Upstream, ConnectError> {
        if protocol == Protocol::H2c {
            return self.checkout_h2c(addr).await;
        }
        while let Some(mut sender) = self.pop(addr) {
            // A connection whose previous response just ended becomes
            // ready as soon as its task has run; a closed one errors.
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Ok(Upstream {
                    addr,
                    sender: Sender::Http1(sender),
                    reused: true,
                });
            }
        }
        // Boxed: the connect's state would otherwise make every request's
        // future (mostly served by idle connections) as big as itself.
        let sender = Box::pin(connect(addr)).await?;
        Ok(Upstream {
            addr,
            sender: Sender::Http1(sender),
            reused: false,
        })
    }

    async fn checkout_h2c(&self, addr: SocketAddr) -> Result<Upstream, ConnectError> {
        let open = {
            let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            shared.get(&addr).filter(|s| !s.is_closed()).cloned()
        };
        if let Some(sender) = open {
            return Ok(Upstream {
                addr,
                sender: Sender::H2c(sender),
                reused: true,
            });
        }
        // Two requests may race to connect on a fresh thread; the later
        // connection replaces the earlier in the map and both stay usable.
        let sender = Box::pin(connect_h2c(addr)).await?;
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(addr, sender.clone());
        Ok(Upstream {
            addr,
            sender: Sender::H2c(sender),
            reused: false,
        })
    }

    fn pop(&self, addr: SocketAddr) -> Option<SendRequest<Incoming>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let senders = idle.by_instance.get_mut(&addr)?;
        let sender = senders.pop();
        if senders.is_empty() {
            idle.by_instance.remove(&addr);
        }
        sender
    }

    /// Keeps a connection whose exchange finished for the next request.
    pub fn give_back(&self, addr: SocketAddr, sender: SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let senders = idle.by_instance.entry(addr).or_default();
        if senders.len() < MAX_IDLE_PER_INSTANCE {
            senders.push(sender);
        }
        idle.given_back += 1;
        if idle.given_back.is_multiple_of(PRUNE_EVERY) {
            idle.by_instance.retain(|_, senders| {
                senders.retain(|s| !s.is_closed());
                !senders.is_empty()
            });
            drop(idle);
            self.shared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, s| !s.is_closed());
        }
    }

    /// Instances with idle HTTP/1.1 connections kept now.
    pub fn idle_instances(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.by_instance.len()
    }

    /// Idle HTTP/1.1 connections kept now (all instances).
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.by_instance.values().map(Vec::len).sum()
    }

    /// Open h2c connections kept now (all instances).
    pub fn h2c_count(&self) -> usize {
        let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.values().filter(|s| !s.is_closed()).count()
    }
}

async fn connect_tcp(addr: SocketAddr) -> Result<tokio::net::TcpStream, ConnectError> {
    let stream =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(ConnectError::Connect { addr, source }),
            Err(_) => return Err(ConnectError::Timeout { addr }),
        };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Opens an h2c connection (prior knowledge) to `addr`; its tasks run on
/// the caller's runtime.
async fn connect_h2c(addr: SocketAddr) -> Result<http2::SendRequest<Incoming>, ConnectError> {
    let stream = connect_tcp(addr).await?;
    let (sender, connection) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ConnectError::Handshake { addr, source })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%addr, %error, "h2c connection to instance ended");
        }
    });
    Ok(sender)
}

/// An HTTP/1.1 connection to an instance, before its task is spawned.
type Http1Connection = http1::Connection<TokioIo<tokio::net::TcpStream>, Incoming>;

async fn handshake(
    addr: SocketAddr,
) -> Result<(SendRequest<Incoming>, Http1Connection), ConnectError> {
    let stream = connect_tcp(addr).await?;
    // One write(2) per request head (see the data-plane server).
    http1::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ConnectError::Handshake { addr, source })
}

/// Opens an HTTP/1.1 connection to `addr`; its task runs on the caller's
/// runtime (the thread the request is served on).
async fn connect(addr: SocketAddr) -> Result<SendRequest<Incoming>, ConnectError> {
    let (sender, connection) = handshake(addr).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%addr, %error, "connection to instance ended");
        }
    });
    Ok(sender)
}

/// Opens an HTTP/1.1 connection to `addr` that a `101 Switching
/// Protocols` answer hands over (see [`super::upgrade`]). It carries one
/// upgrade request and is never pooled.
pub async fn connect_upgradable(addr: SocketAddr) -> Result<SendRequest<Incoming>, ConnectError> {
    let (sender, connection) = handshake(addr).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%addr, %error, "upgradable connection to instance ended");
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
    _lease: Lease,
    _tracked: Option<Tracked>,
}

impl Returning {
    /// Wraps `body`, read over `upstream` from the instance `lease` holds;
    /// `tracked`, the request's place in its revision's concurrency, is
    /// held as long.
    pub fn new(
        body: Incoming,
        upstreams: Arc<Upstreams>,
        upstream: Upstream,
        lease: Lease,
        tracked: Option<Tracked>,
    ) -> Self {
        let finished = body.is_end_stream();
        Self {
            body,
            finished,
            connection: Some((upstreams, upstream)),
            _lease: lease,
            _tracked: tracked,
        }
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if self.finished
            && let Some((upstreams, upstream)) = self.connection.take()
            && let Sender::Http1(sender) = upstream.sender
        {
            upstreams.give_back(upstream.addr, sender);
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
        serve(answer, Protocol::Http1).await
    }

    /// An h2c server on loopback (HTTP/1.1 too, as the okonomi runtime)
    /// answering with `answer`; counts the connections it accepted.
    pub(crate) async fn h2c_instance<F>(answer: F) -> (SocketAddr, Arc<AtomicUsize>)
    where
        F: Fn(Request<Incoming>) -> Response<InstanceBody> + Clone + Send + Sync + 'static,
    {
        serve(answer, Protocol::H2c).await
    }

    async fn serve<F>(answer: F, protocol: Protocol) -> (SocketAddr, Arc<AtomicUsize>)
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
                    let io = TokioIo::new(stream);
                    // A connection's end (the test's client going) is no error here.
                    match protocol {
                        Protocol::Http1 => {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(io, service)
                                .await;
                        }
                        Protocol::H2c => {
                            let _ =
                                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                    .serve_connection(io, service)
                                    .await;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    pub(crate) fn full(text: &'static str) -> InstanceBody {
        Full::new(Bytes::from_static(text.as_bytes())).boxed()
    }

    /// Sends a GET over `upstreams` to `addr` and reads the body through
    /// [`Returning`] (with a lease on a throwaway revision).
    async fn get(upstreams: &Arc<Upstreams>, addr: SocketAddr) -> String {
        let (request, _client) = incoming_request().await;
        let mut upstream = upstreams.checkout(addr, Protocol::Http1).await.unwrap();
        let response = upstream.sender.try_send_request(request).await.unwrap();
        let lease = crate::dataplane::throttler::tests::lease_on(addr).await;
        let body = Returning::new(
            response.into_body(),
            upstreams.clone(),
            upstream,
            lease,
            None,
        );
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
    async fn h2c_requests_share_one_connection_per_instance() {
        let (addr, accepted) = h2c_instance(|request| {
            let text = format!("{:?} {}", request.version(), request.uri());
            Response::new(Full::new(Bytes::from(text)).boxed())
        })
        .await;
        let upstreams = Arc::new(Upstreams::default());
        let mut answers = Vec::new();
        for _ in 0..4 {
            let (mut request, _client) = incoming_request().await;
            *request.uri_mut() = "http://hello.default.localhost/x?y=1".parse().unwrap();
            *request.version_mut() = http::Version::HTTP_2;
            let mut upstream = upstreams.checkout(addr, Protocol::H2c).await.unwrap();
            // Sent together: each is its own stream on the same connection.
            answers.push(tokio::spawn(async move {
                let response = upstream.sender.try_send_request(request).await.unwrap();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                String::from_utf8(body.to_vec()).unwrap()
            }));
        }
        for answer in answers {
            assert_eq!(
                answer.await.unwrap(),
                "HTTP/2.0 http://hello.default.localhost/x?y=1"
            );
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(upstreams.h2c_count(), 1);
    }

    #[test]
    fn the_port_name_picks_the_protocol() {
        assert_eq!(Protocol::for_port_name(Some("h2c")), Protocol::H2c);
        assert_eq!(Protocol::for_port_name(Some("http1")), Protocol::Http1);
        assert_eq!(Protocol::for_port_name(None), Protocol::Http1);
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
        let mut upstream = upstreams.checkout(addr, Protocol::Http1).await.unwrap();
        let response = upstream.sender.try_send_request(request).await.unwrap();
        let lease = crate::dataplane::throttler::tests::lease_on(addr).await;
        let mut body = Returning::new(
            response.into_body(),
            upstreams.clone(),
            upstream,
            lease,
            None,
        );
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
    async fn connections_of_instances_gone_are_dropped_from_the_idle_set() {
        let upstreams = Arc::new(Upstreams::default());
        // An instance that answers once over a kept-alive connection, then
        // goes away (scaled down) while that connection sits idle.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = hyper::service::service_fn(|_| async {
                Ok::<_, Infallible>(Response::new(full("once\n")))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        assert_eq!(get(&upstreams, gone).await, "once\n");
        assert_eq!(upstreams.idle_instances(), 1);
        server.abort();
        let all_closed = || {
            let idle = upstreams.idle.lock().unwrap();
            idle.by_instance.values().flatten().all(|s| s.is_closed())
        };
        tokio::time::timeout(Duration::from_secs(10), async {
            while !all_closed() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the instance's connection never closed");
        // A live instance keeps being used; the closed connection goes.
        let (live, _) = instance(|_| Response::new(full("hello\n"))).await;
        for _ in 0..PRUNE_EVERY {
            assert_eq!(get(&upstreams, live).await, "hello\n");
        }
        assert_eq!(upstreams.idle_instances(), 1);
        assert_eq!(upstreams.idle_count(), 1);
    }

    #[tokio::test]
    async fn connecting_to_nothing_names_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let error = Upstreams::default()
            .checkout(addr, Protocol::Http1)
            .await
            .unwrap_err();
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
    }
}
