//! [`handler`]: a plain `async fn(Request) -> impl IntoResponse` as a tower
//! service, with no extractor machinery in between (use an axum `Router` for
//! routes and extractors).

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll};

use axum::response::IntoResponse;
use futures::FutureExt;
use futures::future::Map;

use crate::{Request, Response};

/// Turns an `async fn(Request) -> impl IntoResponse` into a service for
/// [`serve`](crate::serve).
pub fn handler<F, Fut, R>(f: F) -> HandlerFn<F>
where
    F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    HandlerFn { f }
}

/// The service [`handler`] returns.
#[derive(Debug, Clone, Copy)]
pub struct HandlerFn<F> {
    f: F,
}

fn into_ok<R: IntoResponse>(response: R) -> Result<Response, Infallible> {
    Ok(response.into_response())
}

impl<F, Fut, R> tower::Service<Request> for HandlerFn<F>
where
    F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Map<Fut, fn(R) -> Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        (self.f)(req).map(into_ok::<R> as fn(R) -> Result<Response, Infallible>)
    }
}
