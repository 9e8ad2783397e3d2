//! A panicking handler → 500; the panic stays in its request and the process
//! keeps serving everyone else (the release profile keeps `panic = "unwind"`).

use std::any::Any;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::{CatchUnwind, Either, Map, Ready, ready};
use http::StatusCode;
use tower::{Layer, Service};

use super::text_response;
use crate::{Request, Response};

/// Catches panics in the layers and the function below.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

/// See [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

fn caught(
    result: std::thread::Result<Result<Response, Infallible>>,
) -> Result<Response, Infallible> {
    result.unwrap_or_else(|panic| Ok(panicked(panic)))
}

type Caught<F> = Map<
    CatchUnwind<AssertUnwindSafe<F>>,
    fn(std::thread::Result<Result<Response, Infallible>>) -> Result<Response, Infallible>,
>;

impl<S> Service<Request> for CatchPanic<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Caught<S::Future>, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => Either::Left(AssertUnwindSafe(future).catch_unwind().map(caught as _)),
            Err(panic) => Either::Right(ready(Ok(panicked(panic)))),
        }
    }
}

fn panicked(panic: Box<dyn Any + Send>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into());
    tracing::error!(panic = %message, "the function panicked while handling a request");
    text_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error: the function panicked; see its logs",
    )
}
