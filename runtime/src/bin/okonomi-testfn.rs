//! A function that exercises every point of the runtime contract; the runtime's
//! tests run it as a real process (`CARGO_BIN_EXE_okonomi-testfn`).
//!
//! Routes: `/` → "ok"; `/slow?ms=N` sleeps N ms; `/panic` panics; `/log` logs a
//! line; `/body` answers the body's length; `/inflight` and `/max-inflight` the
//! number of requests in the handlers now and at most; `/version` the HTTP version;
//! `/rendezvous?tag=T&n=N` logs, waits until N requests have arrived, logs again
//! and spawns two tasks that log after it returns, one in its trace context.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use okonomi::axum::Router;
use okonomi::axum::body::Bytes;
use okonomi::axum::extract::Query;
use okonomi::axum::routing::{get, post};
use okonomi::http::StatusCode;
use okonomi::{Request, serde};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static MAX_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static ARRIVED: AtomicUsize = AtomicUsize::new(0);

/// Counts a request as in flight for as long as it lives.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        let now = IN_FLIGHT.fetch_add(1, Ordering::SeqCst) + 1;
        MAX_IN_FLIGHT.fetch_max(now, Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(serde::Deserialize)]
#[serde(crate = "okonomi::serde")]
struct Slow {
    ms: u64,
}

async fn slow(Query(slow): Query<Slow>) -> &'static str {
    let _in_flight = InFlight::enter();
    tokio::time::sleep(Duration::from_millis(slow.ms)).await;
    "slept"
}

async fn panic() -> &'static str {
    panic!("the test function panics on purpose")
}

async fn log() -> &'static str {
    okonomi::tracing::info!(answer = 42, "hello from the handler");
    "logged"
}

#[derive(serde::Deserialize)]
#[serde(crate = "okonomi::serde")]
struct Rendezvous {
    tag: String,
    n: usize,
}

/// Lines from concurrent requests interleave: each request logs, waits for
/// the others across `.await`s, then logs again. The lines name the thread so
/// a test can tell they shared one.
async fn rendezvous(Query(Rendezvous { tag, n }): Query<Rendezvous>) -> (StatusCode, String) {
    let thread = || format!("{:?}", std::thread::current().id());
    okonomi::tracing::info!(tag, thread = thread(), "arrived");
    ARRIVED.fetch_add(1, Ordering::SeqCst);
    let mut waited = 0;
    while ARRIVED.load(Ordering::SeqCst) < n {
        if waited == 2000 {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendezvous timed out".into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        waited += 1;
    }
    tokio::task::yield_now().await;
    okonomi::tracing::info!(tag, thread = thread(), "leaving");
    // Runs once the handler has returned: `_done` lives until then.
    let (_done, finished) = tokio::sync::oneshot::channel::<()>();
    let after = tag.clone();
    tokio::spawn(async move {
        let _ = finished.await;
        okonomi::tracing::info!(tag = after, thread = thread(), "after the request");
    });
    let spawned = tag.clone();
    tokio::spawn(okonomi::trace::in_current_trace(async move {
        okonomi::tracing::info!(tag = spawned, "spawned in the trace");
    }));
    (StatusCode::OK, tag)
}

#[tokio::main]
async fn main() -> Result<(), okonomi::Error> {
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/slow", get(slow))
        .route("/panic", get(panic))
        .route("/log", get(log))
        .route("/rendezvous", get(rendezvous))
        .route(
            "/body",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .route(
            "/inflight",
            get(|| async { IN_FLIGHT.load(Ordering::SeqCst).to_string() }),
        )
        .route(
            "/max-inflight",
            get(|| async { MAX_IN_FLIGHT.load(Ordering::SeqCst).to_string() }),
        )
        .route(
            "/version",
            get(|req: Request| async move { format!("{:?}", req.version()) }),
        );
    okonomi::serve(app).await
}
