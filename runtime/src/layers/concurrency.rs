//! In-flight cap (Knative's `containerConcurrency`). Past the cap a request waits
//! in a bounded queue of ten times the cap, as queue-proxy's breaker does, until a
//! slot frees (or the timeout layer above answers 504); past the queue it gets 503
//! with `Retry-After: 1` at once.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::StatusCode;
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use super::text_response;
use crate::{Request, Response};

/// Caps the requests the function handles at once.
#[derive(Debug, Clone)]
pub struct ConcurrencyLayer {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    cap: usize,
}

impl ConcurrencyLayer {
    /// At most `cap` requests at once, `10 × cap` more waiting.
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Self {
            running: Arc::new(Semaphore::new(cap)),
            admitted: Arc::new(Semaphore::new(cap.saturating_mul(11))),
            cap,
        }
    }
}

impl<S> Layer<S> for ConcurrencyLayer {
    type Service = Concurrency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Concurrency {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`ConcurrencyLayer`].
#[derive(Debug, Clone)]
pub struct Concurrency<S> {
    inner: S,
    layer: ConcurrencyLayer,
}

impl<S> Service<Request> for Concurrency<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let Ok(admitted) = self.layer.admitted.clone().try_acquire_owned() else {
            let cap = self.layer.cap;
            return Box::pin(async move {
                let mut response = text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "overloaded: {cap} requests running and {} waiting (containerConcurrency {cap}); retry later",
                        cap * 10
                    ),
                );
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
                Ok(response)
            });
        };
        let running = self.layer.running.clone();
        // Inner layers are always ready (the adapter waits per request), so a
        // clone can be called later without a second poll_ready.
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let _admitted = admitted;
            let Ok(_slot) = running.acquire_owned().await else {
                return Ok(text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "shutting down",
                ));
            };
            inner.call(req).await
        })
    }
}
