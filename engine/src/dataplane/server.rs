//! Serving the data-plane stack on a listener, with graceful shutdown.
//!
//! Connections are accepted on the caller's runtime and handed round-robin
//! to one single-threaded runtime per core, each with its own stack (and so
//! its own pooled client to the instances). A request then never leaves the
//! thread its connection lives on: the client connection task that the
//! proxy waits for is woken on the same thread, with no cross-thread wake-up
//! (futex, context switch) per request, as in nginx's worker processes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::{Service, ServiceExt};

use super::{Body, Client, Inbound};

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

/// Serves one connection with `service`.
async fn connection<S>(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    service: S,
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
) where
    S: Service<Inbound, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let client = Arc::new(Client::new(peer));
    let hyper_service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let client = client.clone();
        service.clone().oneshot(Inbound { request, client })
    });
    let connection = builder
        // WebSocket and other upgrades are spliced through (see upgrade.rs).
        .serve_connection_with_upgrades(TokioIo::new(stream), hyper_service)
        .into_owned();
    let _ = watcher.watch(connection).await;
}

/// Serves the stacks `make_service` builds (one per core) on `listener`
/// until `shutdown`, then lets open connections finish for up to 10 s.
pub async fn serve<F, S>(listener: TcpListener, make_service: F, shutdown: CancellationToken)
where
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
    builder.http1().writev(false);
    let mut next = 0usize;
    loop {
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
                        connection(stream, peer, service, builder, watcher).await;
                    }
                });
            }
            None => {
                tokio::spawn(connection(stream, peer, service, builder, watcher));
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
