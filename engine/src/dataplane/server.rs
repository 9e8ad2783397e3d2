//! Serving the data-plane stack on a listener, with graceful shutdown, and
//! with [`ClientLimits`]: no client holds a connection without sending a
//! request, and connections are capped in all and per client address.
//!
//! Connections are accepted on the caller's runtime and handed round-robin
//! to one single-threaded runtime per core, each with its own stack (and so
//! its own pooled client to the instances). A request then never leaves the
//! thread its connection lives on: the client connection task that the
//! proxy waits for is woken on the same thread, with no cross-thread wake-up
//! (futex, context switch) per request, as in nginx's worker processes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

use super::{Body, Client, Inbound};

/// What a client of the data plane may hold, so that slow or idle clients
/// (slowloris) cannot pin the engine's connections and file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// How long a new connection has to send its first request head
    /// (HTTP/1.1 or HTTP/2): what stops a slowloris. Default 30 s.
    pub header_read: Duration,
    /// How long a kept-alive HTTP/1.1 connection may wait for its next
    /// request head (idle, or sending it). Default 120 s: longer than the
    /// 90 s idle pools of common clients (Go's, reqwest's, hyper's), so a
    /// client drops an idle connection before the engine closes it under
    /// it (which would fail the client's next request on that connection).
    pub keep_alive: Duration,
    /// Open client connections in all; at the cap, new ones wait in the
    /// listen backlog. Default 8,192 (each costs two file descriptors while
    /// proxied; the engine's limit is about 20,000).
    pub connections: usize,
    /// Open connections per client address; one more is closed at once.
    /// Default 2,048.
    pub connections_per_client: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(30),
            keep_alive: Duration::from_secs(120),
            connections: 8192,
            connections_per_client: 2048,
        }
    }
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerClient {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One client connection counted against [`ClientLimits::connections_per_client`].
struct Counted {
    clients: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    /// Counts a connection from `ip`, unless it has `cap` open already.
    fn admit(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Counted> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(Counted {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// One per-core serving thread: where accepted connections are sent.
struct Worker {
    handle: tokio::runtime::Handle,
    thread: std::thread::JoinHandle<()>,
}

/// Starts `count` single-threaded runtimes that run until `stop`.
fn start_workers(count: usize, stop: &CancellationToken) -> std::io::Result<Vec<Worker>> {
    let mut workers = Vec::with_capacity(count);
    for index in 0..count {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("okonomi-dataplane-{index}"))
            .spawn(move || runtime.block_on(stop.cancelled()))?;
        workers.push(Worker { handle, thread });
    }
    Ok(workers)
}

/// Serves one connection with `service`; closes it if no request head
/// has come within `header_read`.
async fn connection<S>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    service: S,
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    header_read: Duration,
) where
    S: Service<Inbound, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let client = Arc::new(Client::new(peer));
    // hyper's header-read timer covers HTTP/1.1 heads, but not the bytes
    // before it knows the version (the auto builder's sniffing) nor an
    // HTTP/2 connection that never opens a stream: this flag does.
    let requested = Arc::new(AtomicBool::new(false));
    let seen = requested.clone();
    let hyper_service = hyper::service::service_fn(move |request: Request<Incoming>| {
        if !seen.load(Ordering::Relaxed) {
            seen.store(true, Ordering::Relaxed);
        }
        let client = client.clone();
        service.clone().oneshot(Inbound { request, client })
    });
    let connection = builder
        // WebSocket and other upgrades are spliced through (see upgrade.rs).
        .serve_connection_with_upgrades(TokioIo::new(stream), hyper_service)
        .into_owned();
    let connection = watcher.watch(connection);
    tokio::pin!(connection);
    tokio::select! {
        _ = &mut connection => return,
        () = tokio::time::sleep(header_read) => {}
    }
    if !requested.load(Ordering::Relaxed) {
        tracing::debug!(%peer, ?header_read, "closing a connection that sent no request");
        return;
    }
    let _ = connection.await;
}

/// Serves the stacks `make_service` builds (one per core) on `listener`
/// within `limits` until `shutdown`, then lets open connections finish for
/// up to 10 s.
pub async fn serve<F, S>(
    listener: TcpListener,
    make_service: F,
    limits: ClientLimits,
    shutdown: CancellationToken,
) where
    F: Fn() -> S,
    S: Service<Inbound, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let stop_workers = CancellationToken::new();
    let workers = match start_workers(cores, &stop_workers) {
        Ok(workers) => workers,
        Err(error) => {
            // Without threads, serve on the caller's runtime.
            tracing::warn!(%error, "starting the data-plane threads; serving on the main runtime");
            Vec::new()
        }
    };
    let services: Vec<S> = if workers.is_empty() {
        vec![make_service()]
    } else {
        workers.iter().map(|_| make_service()).collect()
    };
    // Stops the threads also when this future is dropped unfinished.
    let _stop_workers = stop_workers.clone().drop_guard();
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Responses are mostly a small head and body: one copy into the write
    // buffer and one write(2) cost less than a two-part writev(2).
    builder
        .http1()
        .writev(false)
        .timer(TokioTimer::new())
        // hyper's timer runs while a connection waits for any head, idle
        // keep-alive included: the first head has its own, shorter limit.
        .header_read_timeout(limits.keep_alive.max(limits.header_read));
    // Pings find HTTP/2 clients that vanished without closing.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    let open = Arc::new(Semaphore::new(limits.connections.max(1)));
    let per_client = Arc::new(PerClient::default());
    let mut next = 0usize;
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = open.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "data plane accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(counted) = per_client.admit(peer.ip(), limits.connections_per_client) else {
            tracing::debug!(%peer, cap = limits.connections_per_client, "closing a connection over the per-client cap");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let index = next % services.len();
        next = next.wrapping_add(1);
        let service = services[index].clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match workers.get(index) {
            Some(worker) => {
                // The socket moves to the worker's reactor.
                let Ok(stream) = stream.into_std() else {
                    continue;
                };
                worker.handle.spawn(async move {
                    if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                        connection(stream, peer, service, builder, watcher, limits.header_read)
                            .await;
                    }
                    drop((permit, counted));
                });
            }
            None => {
                tokio::spawn(async move {
                    connection(stream, peer, service, builder, watcher, limits.header_read).await;
                    drop((permit, counted));
                });
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    stop_workers.cancel();
    for worker in workers {
        // The thread only finishes its runtime's block_on; joining off the
        // runtime keeps a blocking join out of async code.
        let thread = worker.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}
