//! Listening, serving HTTP/1.1 and h2c on one port, and draining on SIGTERM/SIGINT.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tower::Service;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::{BoxError, Request, Response};

/// Serves `service` with settings from the environment until SIGTERM or SIGINT,
/// then drains and returns `Ok(())`.
///
/// Also sets up logging and tracing ([`crate::telemetry::init`]) unless the
/// program installed its own subscriber first.
pub async fn serve<S, B>(service: S) -> Result<()>
where
    S: Service<Request, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let config = Config::from_env()?;
    let _telemetry = crate::telemetry::init(&config)?;
    Server::new(config).bind().await?.serve(service).await
}

/// A server with its settings, not yet listening.
#[derive(Debug, Clone)]
pub struct Server {
    config: Config,
}

/// A server that holds its listening sockets and is ready to serve.
#[derive(Debug)]
pub struct BoundServer {
    config: Config,
    listeners: Vec<TcpListener>,
    addrs: Vec<SocketAddr>,
}

/// Shared between the server and its probes: whether a drain has begun.
///
/// A leaked flag rather than an `Arc`: the stack is cloned for every request,
/// and a shared reference count would bounce between cores each time. One
/// flag per server, for the life of the process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Draining(&'static AtomicBool);

impl Default for Draining {
    fn default() -> Self {
        Self(Box::leak(Box::new(AtomicBool::new(false))))
    }
}

impl Draining {
    pub(crate) fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Server {
    /// A server with these settings.
    pub fn new(config: Config) -> Self {
        Self { config }
    }

    /// Opens the listening sockets (`[::]:$PORT` taking IPv4 too, or the
    /// addresses of [`Config::listen`]).
    pub async fn bind(self) -> Result<BoundServer> {
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for addr in self.config.listen_addrs() {
            let listener = match bind(addr) {
                Ok(listener) => listener,
                // A host without IPv6: fall back to IPv4 for the default address.
                Err(_) if self.config.listen.is_none() && addr.ip().is_unspecified() => {
                    let v4 = SocketAddr::from(([0, 0, 0, 0], addr.port()));
                    bind(v4).map_err(|source| Error::Bind { addr: v4, source })?
                }
                Err(source) => return Err(Error::Bind { addr, source }),
            };
            addrs.push(
                listener
                    .local_addr()
                    .map_err(|source| Error::Bind { addr, source })?,
            );
            listeners.push(listener);
        }
        Ok(BoundServer {
            config: self.config,
            listeners,
            addrs,
        })
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv6() {
        let socket = TcpSocket::new_v6()?;
        if addr.ip().is_unspecified() {
            dual_stack(&socket)?;
        }
        socket
    } else {
        TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// `[::]` takes IPv4 connections too only with IPV6_V6ONLY off; the host default
/// (`net.ipv6.bindv6only`) may say otherwise, so say it explicitly.
fn dual_stack(socket: &TcpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let off: libc::c_int = 0;
    // SAFETY: a valid socket fd and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl BoundServer {
    /// The addresses actually listened on (with the real port when `PORT=0`).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Serves until SIGTERM or SIGINT, then drains (see [`BoundServer::serve_until`]).
    pub async fn serve<S, B>(self, service: S) -> Result<()>
    where
        S: Service<Request, Response = http::Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let signal = shutdown_signal()?;
        self.serve_until(service, signal).await
    }

    /// Serves until `shutdown` completes; then readiness answers 503, no new
    /// connections are accepted, in-flight requests run to completion up to the
    /// drain deadline, and this returns `Ok(())`.
    pub async fn serve_until<S, B, F>(self, service: S, shutdown: F) -> Result<()>
    where
        S: Service<Request, Response = http::Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
        F: Future<Output = ()> + Send,
    {
        let draining = Draining::default();
        let stack = crate::layers::stack(&self.config, draining, service);
        let graceful = Arc::new(GracefulShutdown::new());
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // No HTTP/1 header-read timer: it would arm a timer for every request on
        // a keep-alive connection, and in Knative the queue-proxy in front
        // already guards against slow clients. HTTP/2 needs one for its pings.
        builder.http2().timer(TokioTimer::new());

        tracing::info!(
            addresses = %self.addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            "listening"
        );
        let mut acceptors = tokio::task::JoinSet::new();
        for listener in self.listeners {
            acceptors.spawn(accept_loop(
                listener,
                builder.clone(),
                stack.clone(),
                graceful.clone(),
                stop_rx.clone(),
            ));
        }

        shutdown.await;
        draining.start();
        let _ = stop_tx.send(true);
        while acceptors.join_next().await.is_some() {}
        let deadline = self.config.drain_deadline;
        let graceful = match Arc::try_unwrap(graceful) {
            Ok(graceful) => graceful,
            Err(_) => return Ok(()),
        };
        tracing::info!(connections = graceful.count(), deadline = ?deadline, "draining");
        if tokio::time::timeout(deadline, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(deadline = ?deadline, "drain deadline passed; exiting with requests still in flight");
        } else {
            tracing::info!("drained");
        }
        Ok(())
    }
}

async fn accept_loop<S>(
    listener: TcpListener,
    builder: auto::Builder<TokioExecutor>,
    stack: S,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) where
    S: Service<hyper::Request<hyper::body::Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    loop {
        let (stream, _peer) = tokio::select! {
            biased;
            _ = async { let _ = stop.wait_for(|stop| *stop).await; } => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = AlwaysReady(stack.clone());
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
        });
    }
}

/// Hands hyper's requests to the stack without tower's readiness dance: every
/// layer of the stack is ready at all times (the innermost one waits for the
/// function's own readiness per request), so `call` may come without
/// `poll_ready`, which saves a state machine per request.
#[derive(Clone)]
struct AlwaysReady<S>(S);

impl<S> hyper::service::Service<hyper::Request<hyper::body::Incoming>> for AlwaysReady<S>
where
    S: Service<hyper::Request<hyper::body::Incoming>, Response = Response, Error = Infallible>
        + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = S::Future;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        self.0.clone().call(req)
    }
}

/// Completes on the first SIGTERM or SIGINT.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
    })
}
