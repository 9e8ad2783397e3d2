//! Proxy headers of the runtime contract: Forwarded, X-Forwarded-For and
//! X-Forwarded-Proto, and a W3C traceparent kept or created.
//!
//! No X-Forwarded-Host: the router does not rewrite Host, so the instance
//! already sees the host the client asked for (and Forwarded's `host=`).

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{BufMut, BytesMut};
use http::header::FORWARDED;
use http::{HeaderName, HeaderValue, Response};
use tower::{Layer, Service};

use super::{Body, Client, Leased};

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

impl<S> Service<Leased> for Forwarded<S>
where
    S: Service<Leased, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut leased: Leased) -> S::Future {
        add_headers(
            leased.request.headers_mut(),
            Some(&leased.client),
            Some(&leased.target.host),
        );
        self.inner.call(leased)
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Sets the headers on a request about to be proxied; `host` is the Host
/// the client asked for.
pub fn add_headers(
    headers: &mut http::HeaderMap,
    client: Option<&Client>,
    host: Option<&HeaderValue>,
) {
    let host_text = host.map(HeaderValue::as_bytes).unwrap_or_default();
    if let Some(client) = client {
        match headers.get(&X_FORWARDED_FOR) {
            // The common case: this proxy is the first, the value is the
            // connection's, shared.
            None => {
                headers.insert(X_FORWARDED_FOR.clone(), client.forwarded_for.clone());
            }
            Some(previous) => {
                let value = joined(previous.as_bytes(), &[client.forwarded_for.as_bytes()]);
                if let Ok(value) = HeaderValue::from_maybe_shared(value) {
                    headers.insert(X_FORWARDED_FOR.clone(), value);
                }
            }
        }
        let previous = headers
            .get(FORWARDED)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        let value = if host_text.is_empty() {
            joined(previous, &[&client.forwarded_node, b";proto=http"])
        } else {
            let host = forwarded_value(host_text);
            joined(
                previous,
                &[&client.forwarded_node, b";host=", &host, b";proto=http"],
            )
        };
        if let Ok(value) = HeaderValue::from_maybe_shared(value) {
            headers.insert(FORWARDED, value);
        }
    }
    // The scheme of this hop, never the client's word for it: an edge
    // proxy (Envoy at Istio's gateway) sets it from the connection, so a
    // client cannot pass itself off as having come over TLS.
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    let valid_parent = headers
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_valid_traceparent);
    if !valid_parent {
        headers.insert(TRACEPARENT.clone(), new_traceparent());
    }
}

/// A value as RFC 7239 §4 writes it: a token as it is, anything else (a
/// host with a port: `:` is not a token character) as a quoted string.
fn forwarded_value(value: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    if value.iter().all(tchar) {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut quoted = Vec::with_capacity(value.len() + 2);
    quoted.push(b'"');
    for &b in value {
        if b == b'"' || b == b'\\' {
            quoted.push(b'\\');
        }
        quoted.push(b);
    }
    quoted.push(b'"');
    std::borrow::Cow::Owned(quoted)
}

/// `previous` (a header value from an earlier proxy, if not empty), then
/// ", ", then `parts` run together: one allocation, no formatting.
fn joined(previous: &[u8], parts: &[&[u8]]) -> bytes::Bytes {
    let length = previous.len() + 2 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut value = BytesMut::with_capacity(length);
    if !previous.is_empty() {
        value.put_slice(previous);
        value.put_slice(b", ");
    }
    for part in parts {
        value.put_slice(part);
    }
    value.freeze()
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

    fn client(addr: &str) -> Client {
        Client::new(addr.parse().unwrap())
    }

    #[test]
    fn headers_are_added_and_chained() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        add_headers(
            &mut headers,
            Some(&client("127.0.0.1:4000")),
            Some(&HeaderValue::from_static("hello.default.localhost")),
        );
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(
            headers["forwarded"],
            "for=127.0.0.1;host=hello.default.localhost;proto=http"
        );
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert!(!headers.contains_key("x-forwarded-host"));
        assert!(is_valid_traceparent(
            headers["traceparent"].to_str().unwrap()
        ));
        // A second proxy on the way appends its element to each.
        add_headers(
            &mut headers,
            Some(&client("10.1.2.3:4000")),
            Some(&HeaderValue::from_static("other.example")),
        );
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1, 10.1.2.3");
        assert_eq!(
            headers["forwarded"],
            "for=127.0.0.1;host=hello.default.localhost;proto=http, for=10.1.2.3;host=other.example;proto=http"
        );
    }

    #[test]
    fn a_clients_own_forwarded_proto_is_replaced() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        add_headers(&mut headers, Some(&client("127.0.0.1:4000")), None);
        assert_eq!(headers["x-forwarded-proto"], "http");
    }

    #[test]
    fn a_host_with_a_port_is_a_quoted_string() {
        // Knative's runtime conformance (TestMustHaveHeadersSet) checks
        // Forwarded's syntax: `host=a:8080` is not RFC 7239.
        let mut headers = http::HeaderMap::new();
        add_headers(
            &mut headers,
            Some(&client("127.0.0.1:4000")),
            Some(&HeaderValue::from_static("hello.default.localhost:8080")),
        );
        assert_eq!(
            headers["forwarded"],
            "for=127.0.0.1;host=\"hello.default.localhost:8080\";proto=http"
        );
    }

    #[test]
    fn an_ipv6_client_is_quoted_and_no_host_leaves_host_out() {
        let mut headers = http::HeaderMap::new();
        add_headers(&mut headers, Some(&client("[::1]:4000")), None);
        assert_eq!(headers["forwarded"], "for=\"[::1]\";proto=http");
        assert_eq!(headers["x-forwarded-for"], "::1");
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
