//! The innermost layer: calls the function's own service and turns whatever it
//! returns into the stack's response type; a service error becomes 500.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::Map;
use http::StatusCode;
use tower::util::Oneshot;
use tower::{Layer, Service, ServiceExt};

use super::text_response;
use crate::{Body, BoxError, Request, Response};

/// Adapts a function's service (any error, any body) to the stack.
#[derive(Debug, Clone, Copy, Default)]
pub struct AdaptLayer;

impl<S> Layer<S> for AdaptLayer {
    type Service = Adapt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Adapt { inner }
    }
}

/// See [`AdaptLayer`].
#[derive(Debug, Clone)]
pub struct Adapt<S> {
    inner: S,
}

fn adapt_result<B, E>(result: Result<http::Response<B>, E>) -> Result<Response, Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    E: Into<BoxError>,
{
    match result {
        Ok(response) => Ok(response.map(Body::new)),
        Err(error) => {
            let error: BoxError = error.into();
            tracing::error!(error = %error, "the function's service failed");
            Ok(text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: the function failed; see its logs",
            ))
        }
    }
}

type AdaptFn<B, E> = fn(Result<http::Response<B>, E>) -> Result<Response, Infallible>;

impl<S, B> Service<Request> for Adapt<S>
where
    S: Service<Request, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Map<Oneshot<S, Request>, AdaptFn<B, S::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness of the function's service is awaited per request (oneshot),
        // so the layers above never hold a slot they do not use.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        self.inner
            .clone()
            .oneshot(req)
            .map(adapt_result::<B, S::Error> as AdaptFn<B, S::Error>)
    }
}
