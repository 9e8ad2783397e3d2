//! The activator: holds a request until an instance of its revision has
//! room (asking the autoscaler for one when there is none), then leases it.

use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::Either;
use http::{Response, StatusCode};
use tower::{Layer, Service};

use super::Unavailable;
use super::{Body, Leased, Routed, text};

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

impl<S> Service<Routed> for Activator<S>
where
    S: Service<Leased, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    /// The inner service's own future when an instance has room right away
    /// (the common case costs no allocation), a boxed wait otherwise.
    type Future = Either<S::Future, BoxFuture>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, routed: Routed) -> Self::Future {
        if let Some(lease) = routed.target.throttler().try_acquire() {
            return Either::Left(self.inner.call(routed.leased(lease)));
        }
        let mut inner = self.inner.clone();
        let timeout = routed.target.wait.min(self.default_timeout);
        Either::Right(Box::pin(async move {
            let throttler = routed.target.throttler().clone();
            match throttler.acquire(timeout).await {
                Ok(lease) => inner.call(routed.leased(lease)).await,
                Err(Unavailable::QueueFull) => Ok(text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "okonomi: revision {} is overloaded: too many requests are already waiting for an instance; retry later or raise autoscaling.knative.dev/max-scale",
                        throttler.key
                    ),
                )),
                Err(Unavailable::Timeout) => {
                    let (wanted, failure) = throttler.health();
                    let ready = throttler.endpoints().len();
                    let why = match failure {
                        Some((reason, message)) => format!(" Last failure: {reason}: {message}"),
                        None => String::new(),
                    };
                    Ok(text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "okonomi: no instance of revision {} became ready within {:?} ({} ready, {} wanted).{why}",
                            throttler.key, timeout, ready, wanted
                        ),
                    ))
                }
            }
        }))
    }
}
