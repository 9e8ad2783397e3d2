//! The router: Host → route → revision by percent; `/metrics`; a helpful 404.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Response, StatusCode};
use tower::Service;

use super::metrics::Metrics;
use super::{Body, Inbound, RouteTable, Routed, Target, text};

/// The shared, swappable routing table.
pub type SharedRoutes = Arc<RwLock<Arc<RouteTable>>>;

/// Routes requests to the inner stack as [`Routed`] requests.
#[derive(Clone)]
pub struct Router<S> {
    // One allocation shared by the clones a connection makes per request.
    shared: Arc<Shared>,
    inner: S,
}

struct Shared {
    routes: SharedRoutes,
    metrics: Arc<Metrics>,
    domain: String,
    tag_header: TagHeaderRouting,
}

/// Whether `Knative-Serving-Tag` picks a tagged revision on the main host
/// (`config-features`' `tag-header-based-routing`), switched at run time.
pub type TagHeaderRouting = Arc<AtomicBool>;

/// The request header that names a route's tag.
pub const TAG_HEADER: &str = "knative-serving-tag";

impl<S> Router<S> {
    /// A router over `routes` in front of `inner`.
    pub fn new(
        routes: SharedRoutes,
        metrics: Arc<Metrics>,
        domain: String,
        tag_header: TagHeaderRouting,
        inner: S,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                routes,
                metrics,
                domain,
                tag_header,
            }),
            inner,
        }
    }
}

use super::BoxFuture;

impl<S> Service<Inbound> for Router<S>
where
    S: Service<Routed, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, Inbound { request, client }: Inbound) -> BoxFuture {
        let mut hosts = request.headers().get_all(http::header::HOST).iter();
        let host = match (hosts.next(), hosts.next()) {
            (Some(host), None) => host.clone(),
            // RFC 9112 §3.2: more than one Host is a 400, never a guess.
            (Some(_), Some(_)) => {
                let response = text(
                    StatusCode::BAD_REQUEST,
                    "more than one Host header: send exactly one".to_owned(),
                );
                return Box::pin(async move { Ok(response) });
            }
            // HTTP/2 clients send only `:authority`.
            (None, _) => request
                .uri()
                .authority()
                .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
                .unwrap_or_else(|| http::HeaderValue::from_static("")),
        };
        let host_text = host.to_str().unwrap_or_default();
        let shared = &self.shared;
        // Picked under the read lock: only the chosen throttler is cloned.
        let picked = shared
            .routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(host_text)
            .map(|destination| {
                // The flag first: with it off (the default) no header lookup.
                let tag = shared
                    .tag_header
                    .load(Ordering::Relaxed)
                    .then(|| request.headers().get(TAG_HEADER))
                    .flatten();
                let destination = match tag {
                    Some(tag) => destination.for_tag(tag.to_str().unwrap_or_default()),
                    None => destination,
                };
                let throttler = destination.pick(rand::random_range(0..100)).cloned();
                (throttler, destination.timeout)
            });
        let (throttler, wait) = match picked {
            Some((Some(throttler), wait)) => (throttler, wait),
            Some((None, _)) => {
                let response = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{host_text} has no revision to route to yet"),
                );
                return Box::pin(async move { Ok(response) });
            }
            None => {
                let response = if request.uri().path() == "/metrics" {
                    let mut response = text(StatusCode::OK, shared.metrics.render());
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    );
                    response
                } else {
                    let routes = shared
                        .routes
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    not_found(host_text, &routes, &shared.domain)
                };
                return Box::pin(async move { Ok(response) });
            }
        };
        let started = Instant::now();
        // The request counts in its revision's concurrency from here until
        // the whole response body has been sent (the proxy's body holds it).
        let target = Target {
            tracked: throttler.track(),
            host,
            wait,
        };
        let future = self.inner.call(Routed {
            request,
            client,
            target,
        });
        Box::pin(async move {
            let Ok(response) = future.await;
            throttler
                .request_metrics()
                .request(response.status().as_u16(), started.elapsed().as_secs_f64());
            Ok(response)
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
