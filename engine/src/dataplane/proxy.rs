//! The last step: forwards a request to the instance the activator leased,
//! over one of this thread's connections to it ([`Upstreams`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use tower::Service;

use super::timeouts::Deadlines;
use super::upstream::{Protocol, Returning, Upstreams};
use super::{Body, BoxFuture, Leased, text};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Whether a header belongs to one hop and is not forwarded.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    use http::header::{
        CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
        UPGRADE,
    };
    *name == CONNECTION
        || *name == TRANSFER_ENCODING
        || *name == TE
        || *name == TRAILER
        || *name == UPGRADE
        || *name == PROXY_AUTHENTICATE
        || *name == PROXY_AUTHORIZATION
        || *name == KEEP_ALIVE
}

/// How often one request is tried: a connection found closed before the
/// request went out, or an instance gone before the connect, is retried on
/// another connection or instance.
const ATTEMPTS: usize = 3;

/// Forwards requests to leased instances. Each data-plane thread builds its
/// own, and with it its own connections.
#[derive(Clone, Debug, Default)]
pub struct Proxy {
    upstreams: Arc<Upstreams>,
}

impl Proxy {
    /// The idle connections this proxy keeps.
    pub fn upstreams(&self) -> &Arc<Upstreams> {
        &self.upstreams
    }
}

pub(super) fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    // Most messages carry none: one pass over the names finds out.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if let Some(connection) = headers.remove(http::header::CONNECTION)
        && let Ok(named) = connection.to_str()
    {
        // Headers named by Connection are hop-by-hop too.
        for name in named.split(',') {
            let name = name.trim();
            if !name.is_empty() {
                headers.remove(name);
            }
        }
    }
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    for name in hop {
        headers.remove(name);
    }
}

/// Makes `request` one that an HTTP/1.1 connection to an instance can
/// carry: origin-form target, a Host header (HTTP/2 clients send only
/// `:authority`), no hop-by-hop headers.
pub(super) fn prepare<B>(request: &mut Request<B>) {
    strip_hop_by_hop(request.headers_mut());
    if !request.headers().contains_key(http::header::HOST)
        && let Some(authority) = request.uri().authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(http::header::HOST, host);
    }
    if request.uri().scheme().is_some() || request.uri().authority().is_some() {
        let origin = request.uri().path_and_query().map_or_else(
            || Uri::from_static("/"),
            |p| Uri::try_from(p.as_str()).unwrap_or_else(|_| Uri::from_static("/")),
        );
        *request.uri_mut() = origin;
    }
    *request.version_mut() = http::Version::HTTP_11;
}

/// Makes a prepared request one for an h2c connection: the Host moves
/// into the URI's authority (HTTP/2's `:authority`).
fn to_h2c<B>(request: &mut Request<B>) {
    let authority = request
        .headers_mut()
        .remove(http::header::HOST)
        .and_then(|host| http::uri::Authority::try_from(host.as_bytes()).ok());
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority =
        Some(authority.unwrap_or_else(|| http::uri::Authority::from_static("localhost")));
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    *request.version_mut() = http::Version::HTTP_2;
}

impl Service<Leased> for Proxy {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, leased: Leased) -> BoxFuture {
        let upstreams = self.upstreams.clone();
        if super::upgrade::requested(&leased.request) {
            return Box::pin(async move { Ok(super::upgrade::forward(leased, upstreams).await) });
        }
        Box::pin(async move {
            let Leased {
                mut request,
                target,
                mut lease,
                ..
            } = leased;
            prepare(&mut request);
            // Every instance of a revision speaks the same protocol.
            let protocol = lease.protocol();
            if protocol == Protocol::H2c {
                to_h2c(&mut request);
            }
            let deadlines = Deadlines::starting_now(&target.throttler().request_timeouts());
            let mut last_error = String::new();
            for _ in 0..ATTEMPTS {
                let mut upstream = match upstreams.checkout(lease.addr(), protocol).await {
                    Ok(upstream) => upstream,
                    Err(error) => {
                        // The instance went away between the lease and the
                        // connect (a scale-down race): the request is still
                        // whole, so another instance can take it.
                        last_error = error.to_string();
                        drop(lease);
                        // Boxed, as a rare path, to keep the future small.
                        match Box::pin(target.throttler().acquire(Duration::from_secs(30))).await {
                            Ok(next) => {
                                lease = next;
                                continue;
                            }
                            Err(_) => {
                                return Ok(text(
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    format!(
                                        "okonomi: the instance went away ({last_error}) and no other became ready"
                                    ),
                                ));
                            }
                        }
                    }
                };
                let sent = upstream.sender.try_send_request(request);
                let answered = match deadlines.head_within(&target.throttler().key, sent).await {
                    Ok(answered) => answered,
                    Err(timed_out) => return Ok(timed_out),
                };
                match answered {
                    Ok(response) => {
                        let (mut parts, body) = response.into_parts();
                        strip_hop_by_hop(&mut parts.headers);
                        // The lease and the request's place in its
                        // revision's concurrency last until the body ends.
                        let body =
                            Returning::new(body, upstreams, upstream, lease, Some(target.tracked));
                        let body = deadlines.limit(body).boxed_unsync();
                        return Ok(Response::from_parts(parts, body));
                    }
                    Err(mut error) => match error.take_message() {
                        // Not sent: the idle connection had closed. Another
                        // connection takes it.
                        Some(unsent) if upstream.reused => {
                            last_error = error.into_error().to_string();
                            request = unsent;
                        }
                        _ => {
                            return Ok(text(
                                StatusCode::BAD_GATEWAY,
                                format!(
                                    "okonomi: the instance at {} did not answer: {}",
                                    upstream.addr,
                                    error.into_error()
                                ),
                            ));
                        }
                    },
                }
            }
            Ok(text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "okonomi: could not reach an instance at {}: {last_error}",
                    lease.addr()
                ),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use hyper::body::Incoming;

    use super::*;
    use crate::autoscaler::RequestTimeouts;
    use crate::dataplane::timeouts::TimedOut;
    use crate::dataplane::upstream::tests::{incoming, incoming_request, instance};
    use crate::dataplane::{Client, Target};

    /// An instance that answers with the request line and headers it got,
    /// and adds hop-by-hop headers of its own.
    async fn mirror() -> std::net::SocketAddr {
        let (addr, _) = instance(|request| {
            let mut seen = format!("{} {}\n", request.method(), request.uri());
            for (name, value) in request.headers() {
                seen.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
            }
            let mut response = Response::new(
                http_body_util::Full::new(Bytes::from(seen))
                    .map_err(|never| match never {})
                    .boxed(),
            );
            let headers = response.headers_mut();
            headers.insert("connection", HeaderValue::from_static("x-instance-hop"));
            headers.insert("x-instance-hop", HeaderValue::from_static("1"));
            headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
            headers.insert("x-instance-end", HeaderValue::from_static("kept"));
            response
        })
        .await;
        addr
    }

    /// `request` as the activator hands it on, holding `lease`.
    fn leased(request: Request<Incoming>, lease: crate::dataplane::Lease) -> Leased {
        let tracked = lease.throttler().track();
        Leased {
            request,
            client: Arc::new(Client::new(([127, 0, 0, 1], 40000).into())),
            target: Target {
                tracked,
                host: HeaderValue::from_static("hello.default.localhost"),
                wait: Duration::from_secs(1),
            },
            lease,
        }
    }

    async fn proxy(
        request: Request<Incoming>,
        instance: std::net::SocketAddr,
    ) -> (Response<Body>, String) {
        let lease = crate::dataplane::throttler::tests::lease_on(instance).await;
        let Ok(response) = Proxy::default().call(leased(request, lease)).await;
        let (parts, body) = response.into_parts();
        let text = body.collect().await.unwrap().to_bytes();
        let text = String::from_utf8(text.to_vec()).unwrap();
        (
            Response::from_parts(
                parts,
                BodyExt::boxed_unsync(http_body_util::Empty::new().map_err(|never| match never {})),
            ),
            text,
        )
    }

    #[tokio::test]
    async fn hop_by_hop_headers_stop_at_the_proxy_both_ways() {
        let instance = mirror().await;
        let (request, _client) = incoming(
            Request::get("/path?q=1")
                .header("host", "hello.default.localhost")
                .header("connection", "keep-alive, x-client-hop")
                .header("x-client-hop", "1")
                .header("te", "trailers")
                .header("proxy-authorization", "Basic Zm9vOmJhcg==")
                .header("x-client-end", "kept"),
        )
        .await;
        let (response, seen) = proxy(request, instance).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(seen.starts_with("GET /path?q=1\n"), "{seen}");
        assert!(seen.contains("host: hello.default.localhost\n"), "{seen}");
        assert!(seen.contains("x-client-end: kept\n"), "{seen}");
        for hop in ["x-client-hop", "te:", "proxy-authorization", "keep-alive"] {
            assert!(!seen.contains(hop), "{hop} reached the instance: {seen}");
        }
        let headers = response.headers();
        assert_eq!(headers["x-instance-end"], "kept");
        for hop in ["connection", "x-instance-hop", "keep-alive"] {
            assert!(
                !headers.contains_key(hop),
                "{hop} reached the client: {headers:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_h2c_instance_gets_the_host_as_its_authority() {
        let (instance, _) = crate::dataplane::upstream::tests::h2c_instance(|request| {
            let seen = format!(
                "{:?} {} host={:?}",
                request.version(),
                request.uri(),
                request.headers().get("host")
            );
            Response::new(
                http_body_util::Full::new(Bytes::from(seen))
                    .map_err(|never| match never {})
                    .boxed(),
            )
        })
        .await;
        let (request, _client) = incoming(
            Request::get("/path?q=1")
                .header("host", "hello.default.localhost:8080")
                .header("connection", "keep-alive"),
        )
        .await;
        let lease =
            crate::dataplane::throttler::tests::lease_on_with(instance, Protocol::H2c).await;
        let Ok(response) = Proxy::default().call(leased(request, lease)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let seen = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            std::str::from_utf8(&seen).unwrap(),
            "HTTP/2.0 http://hello.default.localhost:8080/path?q=1 host=None"
        );
    }

    /// An instance that waits `head_delay` before its response head, then
    /// sends "a", waits `body_gap`, and sends "b".
    async fn slow_instance(head_delay: Duration, body_gap: Duration) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |_: Request<Incoming>| async move {
                            tokio::time::sleep(head_delay).await;
                            let (chunk, mut chunks) = tokio::sync::mpsc::channel::<Bytes>(2);
                            tokio::spawn(async move {
                                let _ = chunk.send(Bytes::from_static(b"a")).await;
                                tokio::time::sleep(body_gap).await;
                                let _ = chunk.send(Bytes::from_static(b"b")).await;
                            });
                            let chunks = futures::stream::poll_fn(move |cx| {
                                chunks.poll_recv(cx).map(|c| {
                                    c.map(|c| Ok::<_, Infallible>(http_body::Frame::data(c)))
                                })
                            });
                            Ok::<_, Infallible>(Response::new(http_body_util::StreamBody::new(
                                Box::pin(chunks),
                            )))
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }

    fn limits(total_ms: u64, start_ms: Option<u64>, idle_ms: Option<u64>) -> RequestTimeouts {
        RequestTimeouts {
            total: Some(Duration::from_millis(total_ms)),
            response_start: start_ms.map(Duration::from_millis),
            idle: idle_ms.map(Duration::from_millis),
        }
    }

    async fn proxied_with(
        instance: std::net::SocketAddr,
        timeouts: RequestTimeouts,
    ) -> Response<Body> {
        let (request, _client) = incoming_request().await;
        let lease =
            crate::dataplane::throttler::tests::lease_with_timeouts(instance, timeouts).await;
        let Ok(response) = Proxy::default().call(leased(request, lease)).await;
        response
    }

    #[tokio::test]
    async fn an_instance_slow_to_start_answering_gets_a_504_naming_the_limit() {
        let instance = slow_instance(Duration::from_secs(30), Duration::ZERO).await;
        let response = proxied_with(instance, limits(60_000, Some(200), None)).await;
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let text = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("slow-00001"), "{text}");
        assert!(text.contains("responseStartTimeoutSeconds"), "{text}");
        // Without responseStartTimeoutSeconds, timeoutSeconds bounds the wait.
        let response = proxied_with(instance, limits(200, None, None)).await;
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let text = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&text).contains("(the revision's timeoutSeconds)"),
            "{text:?}"
        );
    }

    #[tokio::test]
    async fn a_body_that_stalls_past_the_idle_limit_is_cut_short() {
        let instance = slow_instance(Duration::ZERO, Duration::from_secs(30)).await;
        let response = proxied_with(instance, limits(60_000, None, Some(200))).await;
        assert_eq!(response.status(), StatusCode::OK);
        let error = response.into_body().collect().await.unwrap_err();
        assert_eq!(
            error.downcast_ref::<TimedOut>(),
            Some(&TimedOut::Idle(Duration::from_millis(200)))
        );
    }

    #[tokio::test]
    async fn responses_within_the_limits_pass_whole() {
        let instance = slow_instance(Duration::from_millis(50), Duration::from_millis(50)).await;
        let response = proxied_with(instance, limits(10_000, Some(5_000), Some(5_000))).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.into_body().collect().await.unwrap().to_bytes(),
            "ab"
        );
    }

    #[test]
    fn an_absolute_target_becomes_origin_form_with_a_host() {
        // What an HTTP/2 client's request looks like to the server: the
        // authority in the URI and no Host header.
        let mut request = Request::get("http://hello.default.localhost:8080/a/b?c=d")
            .version(http::Version::HTTP_2)
            .body(())
            .unwrap();
        prepare(&mut request);
        assert_eq!(request.uri(), "/a/b?c=d");
        assert_eq!(request.headers()["host"], "hello.default.localhost:8080");
        assert_eq!(request.version(), http::Version::HTTP_11);
        // A Host header the client sent wins over the URI's authority.
        let mut request = Request::get("http://other:1/")
            .header("host", "hello.default.localhost")
            .body(())
            .unwrap();
        prepare(&mut request);
        assert_eq!(request.uri(), "/");
        assert_eq!(request.headers()["host"], "hello.default.localhost");
    }
}
