//! The stack of tower layers around a function, one concern per layer, in the
//! order a request meets them (linkerd2-proxy style).

pub mod adapt;
pub mod body_limit;
pub mod catch_panic;
pub mod concurrency;
pub mod function_paths;
pub mod health;
pub mod timeout;
pub mod trace;

use std::convert::Infallible;

use bytes::Bytes;
use tower::{Service, ServiceBuilder};

use crate::config::Config;
use crate::server::Draining;
use crate::{Body, BoxError, Request, Response};

/// A short plain-text response, as every layer answers with.
pub(crate) fn text_response(status: http::StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    let mut response = http::Response::new(Body::from(message));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Builds the whole stack around `service`.
pub(crate) fn stack<S, B>(
    config: &Config,
    draining: Draining,
    service: S,
) -> impl Service<
    hyper::Request<hyper::body::Incoming>,
    Response = Response,
    Error = Infallible,
    Future: Send + 'static,
> + Clone
+ Send
+ 'static
where
    S: Service<Request, Response = http::Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let cap = (config.container_concurrency > 0).then_some(config.container_concurrency);
    ServiceBuilder::new()
        .map_request(|req: hyper::Request<hyper::body::Incoming>| req.map(Body::new))
        .layer(health::HealthLayer::new(
            config.readiness_path.clone(),
            config.liveness_path.clone(),
            draining,
        ))
        .option_layer(
            config
                .function_paths
                .then_some(function_paths::FunctionPathsLayer),
        )
        .layer(trace::TraceLayer)
        .layer(catch_panic::CatchPanicLayer)
        .option_layer(config.request_timeout.map(timeout::TimeoutLayer::new))
        .option_layer(cap.map(concurrency::ConcurrencyLayer::new))
        .layer(body_limit::BodyLimitLayer::new(config.body_limit))
        .layer(adapt::AdaptLayer)
        .service(service)
}
