//! The activator: holds a request until an instance of its revision has
//! room (asking the autoscaler for one when there is none), then leases it.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tower::{Layer, Service};

use super::{Body, Leased, Target, text};
use crate::pool::Unavailable;

/// Adds the activator in front of a service.
#[derive(Debug, Clone)]
pub struct ActivatorLayer {
    default_timeout: Duration,
}

impl ActivatorLayer {
    /// Requests wait at most `default_timeout` for an instance unless the
    /// route gives a shorter one.
    pub fn new(default_timeout: Duration) -> Self {
        Self { default_timeout }
    }
}

impl<S> Layer<S> for ActivatorLayer {
    type Service = Activator<S>;
    fn layer(&self, inner: S) -> Activator<S> {
        Activator {
            inner,
            default_timeout: self.default_timeout,
        }
    }
}

/// See [`ActivatorLayer`].
#[derive(Debug, Clone)]
pub struct Activator<S> {
    inner: S,
    default_timeout: Duration,
}

use super::BoxFuture;

impl<S> Service<Request<Incoming>> for Activator<S>
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Incoming>) -> BoxFuture {
        let mut inner = self.inner.clone();
        let default_timeout = self.default_timeout;
        Box::pin(async move {
            let Some(target) = request.extensions().get::<Target>() else {
                return Ok(text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "okonomi: request reached the activator without a route",
                ));
            };
            let timeout = target.wait.min(default_timeout);
            let pool = target.pool.clone();
            match pool.acquire(timeout).await {
                Ok(lease) => {
                    request.extensions_mut().insert(Leased(Arc::new(lease)));
                    inner.call(request).await
                }
                Err(Unavailable::QueueFull) => Ok(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "okonomi: revision {} is overloaded: too many requests are already waiting for an instance; retry later or raise autoscaling.knative.dev/max-scale",
                        pool.key
                    ),
                )),
                Err(Unavailable::Timeout) => {
                    let status = pool.status();
                    let why = match status.failure {
                        Some((reason, message)) => format!(" Last failure: {reason}: {message}"),
                        None => String::new(),
                    };
                    Ok(text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "okonomi: no instance of revision {} became ready within {:?} ({} ready, {} wanted).{why}",
                            pool.key, timeout, status.ready, status.desired
                        ),
                    ))
                }
            }
        })
    }
}
