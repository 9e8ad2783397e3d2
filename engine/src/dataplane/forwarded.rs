//! Proxy headers of the runtime contract: Forwarded, X-Forwarded-For/Proto/
//! Host, and a W3C traceparent kept or created.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use tower::{Layer, Service};

use super::{Body, Target};

/// The client's address, set per connection by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Adds the forwarding headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardedLayer;

impl<S> Layer<S> for ForwardedLayer {
    type Service = Forwarded<S>;
    fn layer(&self, inner: S) -> Forwarded<S> {
        Forwarded { inner }
    }
}

/// See [`ForwardedLayer`].
#[derive(Debug, Clone)]
pub struct Forwarded<S> {
    inner: S,
}

impl<S> Service<Request<Incoming>> for Forwarded<S>
where
    S: Service<Request<Incoming>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Incoming>) -> S::Future {
        let client = request.extensions().get::<ClientAddr>().map(|c| c.0.ip());
        let host = request
            .extensions()
            .get::<Target>()
            .map(|t| t.host.clone())
            .unwrap_or_default();
        add_headers(request.headers_mut(), client, &host);
        self.inner.call(request)
    }
}

/// Sets the headers on a request about to be proxied.
pub fn add_headers(headers: &mut http::HeaderMap, client: Option<std::net::IpAddr>, host: &str) {
    if let Some(ip) = client {
        let ip = ip.to_string();
        let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(previous) => format!("{previous}, {ip}"),
            None => ip.clone(),
        };
        if let Ok(value) = HeaderValue::from_str(&xff) {
            headers.insert("x-forwarded-for", value);
        }
        let node = if ip.contains(':') {
            format!("\"[{ip}]\"")
        } else {
            ip
        };
        let element = if host.is_empty() {
            format!("for={node};proto=http")
        } else {
            format!("for={node};host={host};proto=http")
        };
        let forwarded = match headers.get("forwarded").and_then(|v| v.to_str().ok()) {
            Some(previous) => format!("{previous}, {element}"),
            None => element,
        };
        if let Ok(value) = HeaderValue::from_str(&forwarded) {
            headers.insert("forwarded", value);
        }
    }
    if !headers.contains_key("x-forwarded-proto") {
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    }
    if !host.is_empty()
        && !headers.contains_key("x-forwarded-host")
        && let Ok(value) = HeaderValue::from_str(host)
    {
        headers.insert("x-forwarded-host", value);
    }
    let valid_parent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_valid_traceparent);
    if !valid_parent {
        let trace: u128 = rand::random::<u128>().max(1);
        let span: u64 = rand::random::<u64>().max(1);
        if let Ok(value) = HeaderValue::from_str(&format!("00-{trace:032x}-{span:016x}-01")) {
            headers.insert("traceparent", value);
        }
    }
}

fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    parts.len() >= 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1].chars().any(|c| c != '0')
        && hex(parts[2], 16)
        && parts[2].chars().any(|c| c != '0')
        && hex(parts[3], 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_added_and_chained() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        add_headers(
            &mut headers,
            Some("127.0.0.1".parse().unwrap()),
            "hello.default.localhost",
        );
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(
            headers["forwarded"],
            "for=127.0.0.1;host=hello.default.localhost;proto=http"
        );
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "hello.default.localhost");
        assert!(is_valid_traceparent(
            headers["traceparent"].to_str().unwrap()
        ));
    }

    #[test]
    fn a_valid_traceparent_is_kept_and_an_invalid_one_replaced() {
        let kept = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(kept));
        add_headers(&mut headers, None, "");
        assert_eq!(headers["traceparent"], kept);
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static("00-0000-00-01"));
        add_headers(&mut headers, None, "");
        assert_ne!(headers["traceparent"], "00-0000-00-01");
        assert!(is_valid_traceparent(
            headers["traceparent"].to_str().unwrap()
        ));
    }
}
