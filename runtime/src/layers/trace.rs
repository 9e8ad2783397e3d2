//! The request's W3C `traceparent` as its trace context, so every line the
//! handler logs carries the trace id.
//!
//! Without OTLP export no span is needed for that: the parsed header becomes
//! the thread's current trace context while the request's future is polled
//! (see [`crate::trace`]), and the log formats read it from there. The
//! per-request span is then at DEBUG level (method and path), so a request
//! costs a level check and a header parse by default. With OTLP export on,
//! every request gets an INFO span, parented to the caller's span, since spans
//! are what leaves the process.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures::future::Either;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::instrument::Instrumented;

use crate::trace::{InTrace, scoped};
use crate::{Request, Response};

/// The parsed header, moved here to [`crate::trace`]; kept under its old path.
pub use crate::trace::TraceParent;

/// Gives each request its trace context, and a span when one is enabled.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace { inner }
    }
}

/// See [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct Trace<S> {
    inner: S,
}

fn traceparent(req: &Request) -> Option<TraceParent> {
    req.headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse)
}

fn span_for(req: &Request, parent: Option<&TraceParent>) -> tracing::Span {
    if !crate::telemetry::otlp_active() {
        return tracing::debug_span!("request", method = %req.method(), path = req.uri().path());
    }
    let span = match parent {
        Some(parent) => tracing::info_span!(
            "request",
            method = %req.method(),
            path = req.uri().path(),
            trace_id = parent.trace_id.as_str(),
            span_id = parent.parent_id.as_str(),
            sampled = parent.sampled,
        ),
        None => tracing::info_span!("request", method = %req.method(), path = req.uri().path()),
    };
    #[cfg(feature = "otlp")]
    if parent.is_some() && !span.is_disabled() {
        crate::telemetry::otlp::set_parent(&span, req.headers());
    }
    span
}

impl<S> Service<Request> for Trace<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Instrumented<InTrace<S::Future>>, InTrace<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let parent = traceparent(&req);
        let span = span_for(&req, parent.as_ref());
        if span.is_disabled() {
            let future = scoped(parent, || self.inner.call(req));
            return Either::Right(InTrace::new(parent, future));
        }
        let future = span.in_scope(|| scoped(parent, || self.inner.call(req)));
        Either::Left(InTrace::new(parent, future).instrument(span))
    }
}
