//! Request body limit → 413. A declared `Content-Length` past the limit is
//! refused before the function runs; a streamed body is cut at the limit, and
//! axum's extractors (`Bytes`, `String`, `Json`, …) turn that into 413 too.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use http::StatusCode;
use http_body::Body as _;
use tower::{Layer, Service};

use super::text_response;
use crate::{Body, Request, Response};

/// Limits request bodies to a number of bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimitLayer {
    limit: usize,
}

impl BodyLimitLayer {
    /// A limit of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit {
            inner,
            limit: self.limit,
        }
    }
}

/// See [`BodyLimitLayer`].
#[derive(Debug, Clone)]
pub struct BodyLimit<S> {
    inner: S,
    limit: usize,
}

impl<S> Service<Request> for BodyLimit<S>
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
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > self.limit as u64) {
            return Either::Left(ready(Ok(too_large(self.limit))));
        }
        if req.body().is_end_stream() || declared.is_some() {
            // hyper already enforces a declared length, and it is within the limit.
            return Either::Right(self.inner.call(req));
        }
        let limit = self.limit;
        let req = req.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
        Either::Right(self.inner.call(req))
    }
}

/// The 413 answer.
pub(crate) fn too_large(limit: usize) -> Response {
    text_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body is larger than the limit of {limit} bytes; send less, or raise OKONOMI_BODY_LIMIT"
        ),
    )
}
