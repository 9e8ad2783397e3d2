//! The okonomi function runtime: HTTP and CloudEvents handlers served under the
//! [Knative runtime contract](https://github.com/knative/specs/blob/main/specs/serving/runtime-contract.md).
//!
//! A function is a plain async handler, or any tower [`Service`](tower::Service)
//! (an [`axum::Router`] works unchanged), handed to [`serve`]:
//!
//! ```no_run
//! use okonomi::{IntoResponse, Request};
//!
//! async fn hello(_req: Request) -> impl IntoResponse {
//!     "Hello Container World!"
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), okonomi::Error> {
//!     okonomi::serve(okonomi::handler(hello)).await
//! }
//! ```
//!
//! With routes, use axum as usual:
//!
//! ```no_run
//! use okonomi::axum::{Router, routing::get};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), okonomi::Error> {
//!     let app = Router::new().route("/", get(|| async { "hi" }));
//!     okonomi::serve(app).await
//! }
//! ```
//!
//! CloudEvents functions take and return events (see [`cloudevents`]):
//!
//! ```no_run
//! use okonomi::cloudevents::{EventError, Reply, TypedEvent};
//! use okonomi::serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! #[serde(crate = "okonomi::serde")]
//! struct Order { id: u64 }
//!
//! #[derive(Serialize)]
//! #[serde(crate = "okonomi::serde")]
//! struct Receipt { order: u64 }
//!
//! async fn on_order(event: TypedEvent<Order>) -> Result<Option<Reply<Receipt>>, EventError> {
//!     let receipt = Receipt { order: event.data.id };
//!     Ok(Some(Reply::new("com.example.receipt", "/shop", receipt)))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), okonomi::Error> {
//!     okonomi::serve(okonomi::cloudevents::typed(on_order)).await
//! }
//! ```
//!
//! What `serve` does around the handler, one tower layer each (outermost first):
//! readiness/liveness probes (readiness 503 while draining), `/robots.txt` and
//! `/favicon.ico` → 404, the trace context from `traceparent` (see [`trace`]: log
//! lines carry the trace id), panic → 500, timeout → 504, in-flight cap
//! (`containerConcurrency`) → queue then 503, body limit → 413.
//! It listens on `[::]:$PORT` (IPv4 and IPv6), speaks HTTP/1.1 and h2c on that
//! port, logs JSON for Cloud Logging (or readable text on a terminal), exports
//! traces over OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and on
//! SIGTERM/SIGINT stops accepting, lets in-flight requests finish up to the drain
//! deadline, then returns `Ok(())` so `main` exits 0. Settings: [`Config`].
//!
//! Cargo features: `mimalloc` (default) makes mimalloc the global allocator,
//! since musl's allocator serialises threads (built with transparent huge pages
//! off for the process, which keeps idle memory near 3 MiB); turn it off with
//! `okonomi = { version = "…", default-features = false, features = ["otlp"] }`.
//! `otlp` (default) compiles in the OTLP exporter.

// Tests may unwrap: a panic there is a failed test.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cloudevents;
pub mod config;
pub mod error;
pub mod handler;
pub mod layers;
pub mod server;
pub mod telemetry;
pub mod testing;
pub mod trace;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use axum;
pub use axum::response::IntoResponse;
pub use http;
pub use serde;
pub use serde_json;
pub use tokio;
pub use tower;
pub use tracing;

pub use config::{Config, Revision};
pub use error::{Error, Result};
pub use handler::{HandlerFn, handler};
pub use server::{BoundServer, Server, serve};

/// The request a handler receives.
pub type Request<B = Body> = http::Request<B>;
/// The response a handler returns (anything [`IntoResponse`] becomes one).
pub type Response<B = Body> = http::Response<B>;
/// The body type of requests and responses.
pub type Body = axum::body::Body;
/// A boxed error, as tower services return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
