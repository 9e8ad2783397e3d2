//! The data plane: one HTTP port in front of every revision.
//!
//! Built like linkerd2-proxy's inbound stack, one concern per layer, in
//! request order:
//!
//! ```text
//! Router (Host → route → percent split → revision, /metrics, 404 help)
//!   → ActivatorLayer (hold until an instance has room; scale from zero; 503 on timeout)
//!   → ForwardedLayer (Forwarded, X-Forwarded-*, traceparent)
//!   → Proxy (this thread's connections to the instance the activator leased;
//!            the revision's request timeouts; upgrades such as WebSocket
//!            spliced through, in `upgrade`)
//! ```
//!
//! Each layer hands the next what it decided, in the request type the next
//! one takes: [`Inbound`] → [`Routed`] (with its [`Target`]) → [`Leased`]
//! (with its [`Lease`]).

pub mod activator;
pub mod balancer;
pub mod forwarded;
pub mod metrics;
pub mod proxy;
pub mod router;
pub mod routes;
pub mod server;
pub mod throttler;
pub mod timeouts;
pub mod upgrade;
pub mod upstream;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

pub use balancer::{Endpoint, Lease};
pub use throttler::{Throttler, Tracked, Unavailable};

pub use routes::{Destination, RouteTable, Split};

/// Identity of a revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionKey {
    /// Namespace.
    pub namespace: String,
    /// Revision name.
    pub name: String,
}

impl std::fmt::Display for RevisionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The error a response body can end with: the instance's connection
/// failing, or a [`timeouts::TimedOut`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every data-plane response.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The future every layer of the data-plane stack returns: the stack never
/// fails (errors are answered as responses), so the error is `Infallible`.
pub type BoxFuture = std::pin::Pin<
    Box<dyn Future<Output = Result<http::Response<Body>, std::convert::Infallible>> + Send>,
>;

/// A request as it arrives: what hyper parsed and who sent it.
#[derive(Debug)]
pub struct Inbound {
    /// The request.
    pub request: http::Request<hyper::body::Incoming>,
    /// The connection's client.
    pub client: Arc<Client>,
}

/// The other end of a data-plane connection, worked out once per
/// connection so that the forwarding headers of each request reuse it.
#[derive(Debug)]
pub struct Client {
    /// The client's address.
    pub addr: std::net::SocketAddr,
    /// The address as `X-Forwarded-For` carries it.
    pub forwarded_for: http::HeaderValue,
    /// The `for=` element of a `Forwarded` header (RFC 7239 quotes IPv6).
    pub forwarded_node: Bytes,
}

impl Client {
    /// The client at `addr`.
    pub fn new(addr: std::net::SocketAddr) -> Self {
        let ip = addr.ip();
        let node = match ip {
            std::net::IpAddr::V4(ip) => format!("for={ip}"),
            std::net::IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
        };
        Self {
            addr,
            // An IP address is always a valid header value.
            forwarded_for: http::HeaderValue::from_maybe_shared(Bytes::from(ip.to_string()))
                .unwrap_or_else(|_| http::HeaderValue::from_static("unknown")),
            forwarded_node: Bytes::from(node),
        }
    }
}

/// The revision a request was routed to (decided by the router).
#[derive(Debug)]
pub struct Target {
    /// The request counted in its revision's concurrency (and so the
    /// revision's throttler) until the response body has been sent.
    pub tracked: Tracked,
    /// The original Host header (before any rewriting).
    pub host: http::HeaderValue,
    /// How long the request may wait for an instance (the route's bound).
    pub wait: std::time::Duration,
}

impl Target {
    /// The revision's throttler.
    pub fn throttler(&self) -> &Arc<Throttler> {
        self.tracked.throttler()
    }
}

/// A request the router matched to a revision (what the activator takes).
#[derive(Debug)]
pub struct Routed {
    /// The request.
    pub request: http::Request<hyper::body::Incoming>,
    /// The connection's client.
    pub client: Arc<Client>,
    /// Where it goes.
    pub target: Target,
}

impl Routed {
    /// This request with `lease` on one of its revision's instances.
    pub fn leased(self, lease: Lease) -> Leased {
        Leased {
            request: self.request,
            client: self.client,
            target: self.target,
            lease,
        }
    }
}

/// A routed request holding a lease on one instance (what the proxy
/// takes): the types make a request reach the proxy only with an instance.
#[derive(Debug)]
pub struct Leased {
    /// The request.
    pub request: http::Request<hyper::body::Incoming>,
    /// The connection's client.
    pub client: Arc<Client>,
    /// Where it goes.
    pub target: Target,
    /// The instance it goes to.
    pub lease: Lease,
}

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
