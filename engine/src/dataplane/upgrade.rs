//! HTTP/1.1 upgrades through the data plane: WebSocket, as Knative's
//! activator and queue-proxy carry it.
//!
//! A request asking to upgrade (`Connection: upgrade` with an `Upgrade`
//! header) goes to its instance on a connection of its own, with the two
//! headers kept. When the instance answers `101 Switching Protocols`, the
//! 101 goes back to the client and a task splices the two upgraded
//! connections together, byte for byte, until either side closes. The
//! tunnel holds the request's lease and its place in the revision's
//! concurrency for as long as it is open, so a WebSocket counts as one
//! request in flight for the autoscaler and for `containerConcurrency`, as
//! on Knative. The revision's request timeouts apply to the tunnel (see
//! [`Deadlines::tunnel`]). Any other answer is passed on as usual.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::proxy::{prepare, strip_hop_by_hop};
use super::timeouts::{Deadlines, TimedOut};
use super::upstream::{self, Returning, Sender, Upstream, Upstreams};
use super::{Body, Lease, Leased, Tracked, text};

/// Whether `request` asks to switch protocols: HTTP/1.1 with an `Upgrade`
/// header and `upgrade` among the `Connection` options (RFC 9110 §7.8).
/// HTTP/2 has no such mechanism (its extended CONNECT is not offered).
pub fn requested<B>(request: &Request<B>) -> bool {
    request.version() == http::Version::HTTP_11
        && request.headers().contains_key(UPGRADE)
        && request
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|option| option.trim().eq_ignore_ascii_case("upgrade"))
}

/// Forwards an upgrade request to the instance `leased` holds and, on a
/// 101, opens the tunnel.
pub async fn forward(leased: Leased, upstreams: Arc<Upstreams>) -> Response<Body> {
    let Leased {
        mut request,
        target,
        lease,
        ..
    } = leased;
    let from_client = hyper::upgrade::on(&mut request);
    let protocols = request.headers().get(UPGRADE).cloned();
    prepare(&mut request);
    keep_upgrade_headers(request.headers_mut(), protocols);
    let deadlines = Deadlines::starting_now(&target.throttler().request_timeouts());
    let addr = lease.addr();
    let mut sender = match upstream::connect_upgradable(addr).await {
        Ok(sender) => sender,
        Err(error) => {
            return text(
                StatusCode::BAD_GATEWAY,
                format!("okonomi: could not reach an instance for the upgrade: {error}"),
            );
        }
    };
    let sent = sender.send_request(request);
    let answered = match deadlines.head_within(&target.throttler().key, sent).await {
        Ok(answered) => answered,
        Err(timed_out) => return timed_out,
    };
    let mut response = match answered {
        Ok(response) => response,
        Err(error) => {
            return text(
                StatusCode::BAD_GATEWAY,
                format!("okonomi: the instance at {addr} did not answer the upgrade: {error}"),
            );
        }
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Refused (a 400 or 426, say): an ordinary response.
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let upstream = Upstream {
            addr,
            sender: Sender::Http1(sender),
            reused: false,
        };
        let body = Returning::new(body, upstreams, upstream, lease, Some(target.tracked));
        return Response::from_parts(parts, deadlines.limit(body).boxed_unsync());
    }
    let from_instance = hyper::upgrade::on(&mut response);
    let (mut parts, _) = response.into_parts();
    let protocols = parts.headers.get(UPGRADE).cloned();
    strip_hop_by_hop(&mut parts.headers);
    keep_upgrade_headers(&mut parts.headers, protocols);
    let tunnel = Tunnel {
        deadlines,
        _lease: lease,
        _tracked: target.tracked,
    };
    tokio::spawn(async move {
        let (client, instance) = match tokio::join!(from_client, from_instance) {
            (Ok(client), Ok(instance)) => (client, instance),
            // The client went away before the 101 reached it, or the
            // instance's side broke: nothing to splice.
            (Err(error), _) | (_, Err(error)) => {
                tracing::debug!(%addr, %error, "upgrade did not complete");
                return;
            }
        };
        if let Err(error) = tunnel.splice(client, instance).await {
            tracing::debug!(%addr, %error, "upgraded connection ended");
        }
    });
    let empty = http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    Response::from_parts(parts, empty)
}

/// Puts back the two headers an upgrade needs, which every other hop-by-hop
/// header shares the fate of.
fn keep_upgrade_headers(headers: &mut http::HeaderMap, protocols: Option<HeaderValue>) {
    if let Some(protocols) = protocols {
        headers.insert(UPGRADE, protocols);
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Why a tunnel ended other than by a side closing it.
#[derive(Debug, thiserror::Error)]
enum TunnelError {
    /// Reading or writing a side failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A revision timeout passed.
    #[error(transparent)]
    TimedOut(#[from] TimedOut),
}

/// An upgraded connection between a client and an instance.
struct Tunnel {
    deadlines: Deadlines,
    /// Held while the tunnel is open.
    _lease: Lease,
    /// Held while the tunnel is open.
    _tracked: Tracked,
}

impl Tunnel {
    /// Copies both ways until both sides have closed or a limit passes.
    async fn splice(
        self,
        client: hyper::upgrade::Upgraded,
        instance: hyper::upgrade::Upgraded,
    ) -> Result<(), TunnelError> {
        let opened = Instant::now();
        let heard = Arc::new(Heard::default());
        let mut client = TokioIo::new(client);
        let mut instance = Stamped {
            io: TokioIo::new(instance),
            heard: heard.clone(),
            opened,
        };
        let copy = tokio::io::copy_bidirectional(&mut client, &mut instance);
        tokio::pin!(copy);
        loop {
            let Some((at, _)) = self.deadlines.tunnel(heard.last(opened), opened) else {
                copy.await?;
                break;
            };
            tokio::select! {
                copied = &mut copy => {
                    copied?;
                    break;
                }
                () = tokio::time::sleep_until(at) => {
                    // Bytes may have come while asleep: look again.
                    if let Some((next, limit)) = self.deadlines.tunnel(heard.last(opened), opened)
                        && next <= Instant::now()
                    {
                        return Err(limit.into());
                    }
                }
            }
        }
        Ok(())
    }
}

/// When the instance last sent a byte through the tunnel, in milliseconds
/// after it opened plus one (zero: never).
#[derive(Debug, Default)]
struct Heard(AtomicU64);

impl Heard {
    fn stamp(&self, opened: Instant) {
        let millis = u64::try_from(opened.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.0.store(millis + 1, Ordering::Relaxed);
    }

    fn last(&self, opened: Instant) -> Option<Instant> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            millis => Some(opened + std::time::Duration::from_millis(millis - 1)),
        }
    }
}

/// The instance's side of a tunnel, noting when it last sent something.
struct Stamped<T> {
    io: T,
    heard: Arc<Heard>,
    opened: Instant,
}

impl<T: AsyncRead + Unpin> AsyncRead for Stamped<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.heard.stamp(self.opened);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Stamped<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_is_an_http1_request_naming_it_in_connection() {
        let ask = |version, connection: &str| {
            let request = Request::get("/")
                .version(version)
                .header("upgrade", "websocket")
                .header("connection", connection)
                .body(())
                .unwrap();
            requested(&request)
        };
        assert!(ask(http::Version::HTTP_11, "Upgrade"));
        assert!(ask(http::Version::HTTP_11, "keep-alive, upgrade"));
        assert!(!ask(http::Version::HTTP_11, "keep-alive"));
        assert!(!ask(http::Version::HTTP_2, "upgrade"));
        let no_upgrade_header = Request::get("/")
            .header("connection", "upgrade")
            .body(())
            .unwrap();
        assert!(!requested(&no_upgrade_header));
    }
}
