//! A function that exercises every point of the runtime contract; the runtime's
//! tests run it as a real process (`CARGO_BIN_EXE_okonomi-testfn`).
//!
//! Routes: `/` → "ok"; `/slow?ms=N` sleeps N ms; `/panic` panics; `/log` logs a
//! line; `/body` answers the body's length; `/inflight` and `/max-inflight` the
//! number of requests in the handlers now and at most; `/version` the HTTP version.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use okonomi::axum::Router;
use okonomi::axum::body::Bytes;
use okonomi::axum::extract::Query;
use okonomi::axum::routing::{get, post};
use okonomi::{Request, serde};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static MAX_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

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

#[tokio::main]
async fn main() -> Result<(), okonomi::Error> {
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/slow", get(slow))
        .route("/panic", get(panic))
        .route("/log", get(log))
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
