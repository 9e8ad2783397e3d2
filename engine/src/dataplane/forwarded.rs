//! Proxy headers of the runtime contract: Forwarded, X-Forwarded-For/Proto/
//! Host, and a W3C traceparent kept or created.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::header::FORWARDED;
use http::{HeaderName, HeaderValue, Request, Response};
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

    fn call(&mut self, request: Request<Incoming>) -> S::Future {
        // Split so the headers can change while the extensions are read.
        let (mut parts, body) = request.into_parts();
        let client = parts.extensions.get::<ClientAddr>().map(|c| c.0.ip());
        let host = parts.extensions.get::<Target>().map(|t| &t.host);
        add_headers(&mut parts.headers, client, host);
        self.inner.call(Request::from_parts(parts, body))
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Sets the headers on a request about to be proxied; `host` is the Host
/// the client asked for.
pub fn add_headers(
    headers: &mut http::HeaderMap,
    client: Option<std::net::IpAddr>,
    host: Option<&HeaderValue>,
) {
    use std::fmt::Write as _;
    let host_text = host.and_then(|h| h.to_str().ok()).unwrap_or_default();
    if let Some(ip) = client {
        let mut value = String::with_capacity(64);
        if let Some(previous) = headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            value.push_str(previous);
            value.push_str(", ");
        }
        let _ = write!(value, "{ip}");
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(X_FORWARDED_FOR.clone(), value);
        }
        value.clear();
        if let Some(previous) = headers.get(FORWARDED).and_then(|v| v.to_str().ok()) {
            value.push_str(previous);
            value.push_str(", ");
        }
        match ip {
            std::net::IpAddr::V4(ip) => {
                let _ = write!(value, "for={ip}");
            }
            std::net::IpAddr::V6(ip) => {
                let _ = write!(value, "for=\"[{ip}]\"");
            }
        }
        if !host_text.is_empty() {
            value.push_str(";host=");
            value.push_str(host_text);
        }
        value.push_str(";proto=http");
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(FORWARDED, value);
        }
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if let Some(host) = host
        && !host.is_empty()
        && !headers.contains_key(&X_FORWARDED_HOST)
    {
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
    let valid_parent = headers
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_valid_traceparent);
    if !valid_parent {
        headers.insert(TRACEPARENT.clone(), new_traceparent());
    }
}

/// A sampled W3C traceparent with random, non-zero trace and span ids.
fn new_traceparent() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let trace: u128 = rand::random::<u128>().max(1);
    let span: u64 = rand::random::<u64>().max(1);
    // "00-" + 32 hex + "-" + 16 hex + "-01"
    let mut text = [0u8; 55];
    text[..3].copy_from_slice(b"00-");
    for i in 0..32 {
        text[3 + i] = HEX[((trace >> (124 - 4 * i)) & 0xf) as usize];
    }
    text[35] = b'-';
    for i in 0..16 {
        text[36 + i] = HEX[((span >> (60 - 4 * i)) & 0xf) as usize];
    }
    text[52..].copy_from_slice(b"-01");
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| {
        HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
    })
}

fn is_valid_traceparent(value: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_hexdigit());
    let mut parts = value.trim().split('-');
    let (Some(version), Some(trace), Some(span), Some(flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|c| c != b'0')
        && hex(span, 16)
        && span.bytes().any(|c| c != b'0')
        && hex(flags, 2)
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
            Some(&HeaderValue::from_static("hello.default.localhost")),
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
    fn an_ipv6_client_is_quoted_and_no_host_leaves_host_out() {
        let mut headers = http::HeaderMap::new();
        add_headers(&mut headers, Some("::1".parse().unwrap()), None);
        assert_eq!(headers["forwarded"], "for=\"[::1]\";proto=http");
        assert_eq!(headers["x-forwarded-for"], "::1");
        assert!(!headers.contains_key("x-forwarded-host"));
    }

    #[test]
    fn made_up_traceparents_are_valid_and_differ() {
        let a = new_traceparent();
        let b = new_traceparent();
        assert!(is_valid_traceparent(a.to_str().unwrap()), "{a:?}");
        assert_ne!(a, b);
        assert!(!is_valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
        ));
        assert!(!is_valid_traceparent(
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
    }

    #[test]
    fn a_valid_traceparent_is_kept_and_an_invalid_one_replaced() {
        let kept = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(kept));
        add_headers(&mut headers, None, None);
        assert_eq!(headers["traceparent"], kept);
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static("00-0000-00-01"));
        add_headers(&mut headers, None, None);
        assert_ne!(headers["traceparent"], "00-0000-00-01");
        assert!(is_valid_traceparent(
            headers["traceparent"].to_str().unwrap()
        ));
    }
}
