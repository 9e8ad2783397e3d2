//! Readiness and liveness probes, answered before the function sees anything;
//! readiness answers 503 once a drain has begun so Knative stops routing here.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use http::StatusCode;
use tower::{Layer, Service};

use super::text_response;
use crate::server::Draining;
use crate::{Request, Response};

/// Answers the readiness and liveness paths.
#[derive(Debug, Clone)]
pub struct HealthLayer {
    paths: Arc<(String, String)>,
    draining: Draining,
}

impl HealthLayer {
    pub(crate) fn new(readiness: String, liveness: String, draining: Draining) -> Self {
        Self {
            paths: Arc::new((readiness, liveness)),
            draining,
        }
    }
}

impl<S> Layer<S> for HealthLayer {
    type Service = Health<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Health {
            inner,
            layer: self.clone(),
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
        let (readiness, liveness) = &*self.layer.paths;
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
