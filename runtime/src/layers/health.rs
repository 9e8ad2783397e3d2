//! Readiness and liveness probes, answered before the function sees anything;
//! readiness answers 503 once a drain has begun so Knative stops routing here.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use http::StatusCode;
use tower::{Layer, Service};

use super::text_response;
use crate::server::Draining;
use crate::{Request, Response};

/// Answers the readiness and liveness paths.
#[derive(Debug, Clone, Copy)]
pub struct HealthLayer {
    // Leaked once per server, like the draining flag: cloning the stack per
    // request then touches no shared reference count.
    paths: &'static (String, String),
    draining: Draining,
}

impl HealthLayer {
    pub(crate) fn new(readiness: String, liveness: String, draining: Draining) -> Self {
        Self {
            paths: Box::leak(Box::new((readiness, liveness))),
            draining,
        }
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = Health<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Health {
            inner,
            layer: *self,
        }
    }
}

/// See [`HealthLayer`].
#[derive(Debug, Clone)]
pub struct Health<S> {
    inner: S,
    layer: HealthLayer,
}

impl<S> Service<Request> for Health<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let path = req.uri().path();
        let (readiness, liveness) = self.layer.paths;
        if path == readiness {
            let response = if self.layer.draining.is_draining() {
                text_response(StatusCode::SERVICE_UNAVAILABLE, "draining")
            } else {
                text_response(StatusCode::OK, "ready")
            };
            Either::Left(ready(Ok(response)))
        } else if path == liveness {
            Either::Left(ready(Ok(text_response(StatusCode::OK, "alive"))))
        } else {
            Either::Right(self.inner.call(req))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    fn probe(draining: &Draining, path: &str) -> StatusCode {
        let layer = HealthLayer::new("/ready".into(), "/alive".into(), *draining);
        let inner = tower::service_fn(|_req: Request| async {
            Ok::<_, Infallible>(text_response(StatusCode::IM_A_TEAPOT, "function"))
        });
        let req = http::Request::get(path).body(crate::Body::empty()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(layer.layer(inner).oneshot(req))
            .unwrap()
            .status()
    }

    #[test]
    fn readiness_turns_503_when_draining_and_liveness_stays_200() {
        let draining = Draining::default();
        assert_eq!(probe(&draining, "/ready"), StatusCode::OK);
        assert_eq!(probe(&draining, "/alive"), StatusCode::OK);
        assert_eq!(probe(&draining, "/other"), StatusCode::IM_A_TEAPOT);
        draining.start();
        assert_eq!(probe(&draining, "/ready"), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(probe(&draining, "/alive"), StatusCode::OK);
    }
}
