//! Per-request deadline → 504 (the handler's future is dropped at the deadline).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::StatusCode;
use tower::{Layer, Service};

use super::text_response;
use crate::{Request, Response};

/// Gives each request at most a fixed time.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    /// A deadline of `timeout` per request.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Timeout {
            inner,
            timeout: self.timeout,
        }
    }
}

/// See [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<S> {
    inner: S,
    timeout: Duration,
}

impl<S> Service<Request> for Timeout<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let timeout = self.timeout;
        let future = tokio::time::timeout(timeout, self.inner.call(req));
        Box::pin(async move {
            match future.await {
                Ok(response) => response,
                Err(_) => Ok(text_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "the function did not answer within {timeout:?}; raise OKONOMI_REQUEST_TIMEOUT (timeoutSeconds) or make it faster"
                    ),
                )),
            }
        })
    }
}
