//! The data plane: one HTTP port in front of every revision.
//!
//! Built like linkerd2-proxy's inbound stack, one concern per layer, in
//! request order:
//!
//! ```text
//! Router (Host → route → percent split → revision, /metrics, 404 help)
//!   → ActivatorLayer (hold until an instance has room; scale from zero; 503 on timeout)
//!   → ForwardedLayer (Forwarded, X-Forwarded-*, traceparent)
//!   → Proxy (hyper's pooled client to the instance the activator leased)
//! ```
//!
//! Each layer passes what it decided to the next in the request's
//! extensions ([`Target`], then the [`Lease`]).

pub mod activator;
pub mod forwarded;
pub mod metrics;
pub mod proxy;
pub mod router;
pub mod routes;
pub mod server;
pub mod upstream;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::pool::{Lease, Pool};

pub use routes::{Destination, RouteTable, Split};

/// The body of every data-plane response.
pub type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// The future every layer of the data-plane stack returns: the stack never
/// fails (errors are answered as responses), so the error is `Infallible`.
pub type BoxFuture = std::pin::Pin<
    Box<dyn Future<Output = Result<http::Response<Body>, std::convert::Infallible>> + Send>,
>;

/// The revision a request was routed to (set by the router).
#[derive(Debug, Clone)]
pub struct Target {
    /// The revision's pool.
    pub pool: Arc<Pool>,
    /// The original Host header (before any rewriting).
    pub host: http::HeaderValue,
    /// How long the request may wait for an instance (the route's bound).
    pub wait: std::time::Duration,
}

/// The instance the activator leased for a request (taken by the proxy).
#[derive(Debug, Clone)]
pub struct Leased(pub Arc<Lease>);

/// A plain-text response.
pub fn text(status: http::StatusCode, message: impl Into<String>) -> http::Response<Body> {
    let mut body = message.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let mut response = http::Response::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
