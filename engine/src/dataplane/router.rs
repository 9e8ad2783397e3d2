//! The router: Host → route → revision by percent; `/metrics`; a helpful 404.

use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tower::Service;

use super::metrics::Metrics;
use super::{Body, RouteTable, Target, text};

/// The shared, swappable routing table.
pub type SharedRoutes = Arc<RwLock<Arc<RouteTable>>>;

/// Routes requests to the inner stack, with a [`Target`] in the extensions.
#[derive(Clone)]
pub struct Router<S> {
    routes: SharedRoutes,
    metrics: Arc<Metrics>,
    domain: String,
    inner: S,
}

impl<S> Router<S> {
    /// A router over `routes` in front of `inner`.
    pub fn new(routes: SharedRoutes, metrics: Arc<Metrics>, domain: String, inner: S) -> Self {
        Self {
            routes,
            metrics,
            domain,
            inner,
        }
    }
}

use super::BoxFuture;

impl<S> Service<Request<Incoming>> for Router<S>
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Incoming>) -> BoxFuture {
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| request.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let routes = self
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(destination) = routes.lookup(&host).cloned() else {
            let response = if request.uri().path() == "/metrics" {
                let mut response = text(StatusCode::OK, self.metrics.render());
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            } else {
                not_found(&host, &routes, &self.domain)
            };
            return Box::pin(async move { Ok(response) });
        };
        let Some(pool) = destination.pick(rand::random_range(0..100)).cloned() else {
            let response = text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{host} has no revision to route to yet"),
            );
            return Box::pin(async move { Ok(response) });
        };
        let request_metrics = pool.request_metrics().clone();
        let tracked = pool.track();
        request.extensions_mut().insert(Target { pool, host });
        request.extensions_mut().insert(destination.timeout);
        let started = Instant::now();
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let Ok(response) = inner.call(request).await;
            request_metrics.request(response.status().as_u16(), started.elapsed().as_secs_f64());
            // The request counts in its revision's concurrency until the
            // whole response body has been sent.
            Ok(super::proxy::hold_until_end(response, tracked))
        })
    }
}

fn not_found(host: &str, routes: &RouteTable, domain: &str) -> Response<Body> {
    let mut message = format!(
        "okonomi: no service answers for host `{host}`.\n\
         Services are reached at http://NAME.NAMESPACE.{domain}[:PORT]/ (or TAG-NAME.NAMESPACE.{domain} for a tagged revision);\n\
         from tools that do not resolve *.{domain}, send the Host header: curl -H 'Host: NAME.NAMESPACE.{domain}' http://127.0.0.1:PORT/\n"
    );
    if routes.is_empty() {
        message.push_str(
            "No service is deployed yet (okonomi deploy, or kubectl apply -f a Knative Service).\n",
        );
    } else {
        message.push_str("Routed hosts:\n");
        for host in routes.hosts().into_iter().take(50) {
            message.push_str(&format!("  {host}\n"));
        }
        if routes.len() > 50 {
            message.push_str(&format!("  … and {} more\n", routes.len() - 50));
        }
    }
    text(StatusCode::NOT_FOUND, message)
}
