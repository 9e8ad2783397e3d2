//! The last step: forwards a request to the instance the activator leased,
//! over hyper's pooled client.

use std::any::Any;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::Service;

use super::{Body, Leased, Target, text};

/// Headers that belong to one hop and are not forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Forwards requests to leased instances.
#[derive(Clone, Debug)]
pub struct Proxy {
    client: Client<HttpConnector, Body>,
}

impl Default for Proxy {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Self { client }
    }
}

use super::BoxFuture;

fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    // Headers named by Connection are hop-by-hop too.
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

impl Service<Request<Incoming>> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Incoming>) -> BoxFuture {
        let client = self.client.clone();
        Box::pin(async move {
            let Some(Leased(lease)) = request.extensions_mut().remove::<Leased>() else {
                return Ok(text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "okonomi: request reached the proxy without an instance",
                ));
            };
            let target = request.extensions().get::<Target>().cloned();
            let (mut parts, body) = request.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            let path = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            // A request without a body can be sent again if the instance
            // went away between the lease and the connect (scale-down race).
            let replayable = body.is_end_stream()
                && matches!(
                    parts.method,
                    http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
                );
            let retry_parts =
                replayable.then(|| (parts.method.clone(), parts.headers.clone(), parts.version));
            let uri = |addr: std::net::SocketAddr| -> Option<Uri> {
                format!("http://{addr}{path}").parse().ok()
            };
            let Some(first_uri) = uri(lease.addr()) else {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    format!("okonomi: cannot forward path `{path}`"),
                ));
            };
            parts.uri = first_uri;
            parts.version = http::Version::HTTP_11;
            let mut result = client
                .request(Request::from_parts(parts, body.boxed_unsync()))
                .await;
            let mut lease = lease;
            if let (Err(error), Some((method, headers, _)), Some(target)) =
                (&result, &retry_parts, &target)
                && error.is_connect()
            {
                drop(lease);
                match target.pool.acquire(Duration::from_secs(30)).await {
                    Ok(second) => {
                        lease = std::sync::Arc::new(second);
                        if let Some(second_uri) = uri(lease.addr()) {
                            let mut retry = Request::new(
                                Empty::<Bytes>::new()
                                    .map_err(|never| match never {})
                                    .boxed_unsync(),
                            );
                            *retry.method_mut() = method.clone();
                            *retry.headers_mut() = headers.clone();
                            *retry.uri_mut() = second_uri;
                            result = client.request(retry).await;
                        }
                    }
                    Err(_) => {
                        return Ok(text(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "okonomi: the instance went away and no other became ready",
                        ));
                    }
                }
            }
            match result {
                Ok(response) => {
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    let response = Response::from_parts(parts, body.boxed_unsync());
                    Ok(hold_until_end(response, lease))
                }
                Err(error) => Ok(text(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "okonomi: the instance at {} did not answer: {error}",
                        lease.addr()
                    ),
                )),
            }
        })
    }
}

/// A body that keeps `guard` alive until the body is finished or dropped.
struct Guarded {
    inner: Body,
    _guard: Box<dyn Any + Send>,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Keeps `guard` (a lease, a concurrency count) until the response body has
/// been sent.
pub fn hold_until_end(response: Response<Body>, guard: impl Any + Send) -> Response<Body> {
    response.map(|inner| {
        Guarded {
            inner,
            _guard: Box::new(guard),
        }
        .boxed_unsync()
    })
}
