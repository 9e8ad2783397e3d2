//! `/robots.txt` and `/favicon.ico` → 404 without reaching the function, as the
//! Functions Framework contract asks (browsers and crawlers would otherwise
//! invoke it).

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use http::StatusCode;
use tower::{Layer, Service};

use super::text_response;
use crate::{Request, Response};

/// Answers 404 for the paths a function should never see.
#[derive(Debug, Clone, Copy, Default)]
pub struct FunctionPathsLayer;

impl<S> Layer<S> for FunctionPathsLayer {
    type Service = FunctionPaths<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FunctionPaths { inner }
    }
}

/// See [`FunctionPathsLayer`].
#[derive(Debug, Clone)]
pub struct FunctionPaths<S> {
    inner: S,
}

impl<S> Service<Request> for FunctionPaths<S>
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
        match req.uri().path() {
            "/robots.txt" | "/favicon.ico" => {
                Either::Left(ready(Ok(text_response(StatusCode::NOT_FOUND, "not found"))))
            }
            _ => Either::Right(self.inner.call(req)),
        }
    }
}
