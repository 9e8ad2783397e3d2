//! A revision's request timeouts, enforced by the proxy as Knative's
//! queue-proxy does:
//!
//! - `responseStartTimeoutSeconds`: the instance must start answering (send
//!   its response head) within this long of getting the request;
//! - `timeoutSeconds`: the whole exchange, head and body, within this long;
//! - `idleTimeoutSeconds`: never this long without a byte from the instance.
//!
//! Before the response has started, a limit passed is answered 504 with a
//! body naming it. After, the status is gone: the body ends with an error,
//! which the client sees as the response cut short.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::BoxError;
use crate::autoscaler::RequestTimeouts;

/// The limits of one request, fixed when the proxy sends it on.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    total: Option<(Instant, Duration)>,
    response_start: Option<(Instant, Duration)>,
    idle: Option<Duration>,
}

/// Which limit a request passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimedOut {
    /// `timeoutSeconds`.
    #[error("the request took longer than {0:?} in all (the revision's timeoutSeconds)")]
    Total(Duration),
    /// `responseStartTimeoutSeconds`.
    #[error(
        "the instance did not start answering within {0:?} (the revision's responseStartTimeoutSeconds)"
    )]
    ResponseStart(Duration),
    /// `idleTimeoutSeconds`.
    #[error("the instance sent nothing for {0:?} (the revision's idleTimeoutSeconds)")]
    Idle(Duration),
}

impl Deadlines {
    /// The deadlines of a request sent now under `timeouts`.
    pub fn starting_now(timeouts: &RequestTimeouts) -> Self {
        let now = Instant::now();
        let at = |limit: Option<Duration>| limit.map(|limit| (now + limit, limit));
        Self {
            total: at(timeouts.total),
            response_start: at(timeouts.response_start),
            idle: timeouts.idle,
        }
    }

    /// When the response head must have come, and which limit says so.
    pub fn head(&self) -> Option<(Instant, TimedOut)> {
        let total = self.total.map(|(at, limit)| (at, TimedOut::Total(limit)));
        let start = self
            .response_start
            .map(|(at, limit)| (at, TimedOut::ResponseStart(limit)));
        match (total, start) {
            (Some(total), Some(start)) => Some(if start.0 <= total.0 { start } else { total }),
            (one, other) => one.or(other),
        }
    }

    /// Waits for `sent` (the instance's response head) within
    /// [`head`](Self::head)'s limit; past it, the 504 naming the limit and
    /// `revision`. Dropping `sent` abandons the exchange with its
    /// connection (never given back: the answer may still come).
    pub async fn head_within<F: Future>(
        &self,
        revision: &super::RevisionKey,
        sent: F,
    ) -> Result<F::Output, http::Response<super::Body>> {
        match self.head() {
            Some((at, limit)) => tokio::time::timeout_at(at, sent).await.map_err(|_| {
                super::text(
                    http::StatusCode::GATEWAY_TIMEOUT,
                    format!("okonomi: revision {revision}: {limit}"),
                )
            }),
            None => Ok(sent.await),
        }
    }

    /// The next limit of an upgraded connection (a WebSocket), which has no
    /// response body to watch: the total limit; the response-start limit
    /// until the instance has sent its first byte through the tunnel
    /// (Knative's queue-proxy never sees the 101 it writes on the hijacked
    /// connection either); the idle limit counted from the instance's last
    /// byte, at `instance_last`.
    pub fn tunnel(
        &self,
        instance_last: Option<Instant>,
        opened: Instant,
    ) -> Option<(Instant, TimedOut)> {
        let total = self.total.map(|(at, limit)| (at, TimedOut::Total(limit)));
        let start = match instance_last {
            None => self
                .response_start
                .map(|(at, limit)| (at, TimedOut::ResponseStart(limit))),
            Some(_) => None,
        };
        let idle = self.idle.map(|limit| {
            (
                instance_last.unwrap_or(opened) + limit,
                TimedOut::Idle(limit),
            )
        });
        [total, start, idle]
            .into_iter()
            .flatten()
            .min_by_key(|(at, _)| *at)
    }

    /// `body` held to the total and idle limits.
    pub fn limit<B>(self, body: B) -> Limited<B> {
        Limited {
            inner: body,
            deadlines: self,
            progressed: true,
            timer: None,
        }
    }
}

/// A response body that ends with a [`TimedOut`] error when the instance
/// passes the total or idle limit while it is being read.
pub struct Limited<B> {
    inner: B,
    deadlines: Deadlines,
    /// Whether a frame came since the timer was last set.
    progressed: bool,
    /// Set only once the body has to wait: a body that is there with its
    /// head (the common small response) costs no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> Limited<B> {
    /// The next deadline from now: the total one, or the idle one counted
    /// from the last frame.
    fn next_deadline(&self) -> Option<(Instant, TimedOut)> {
        let total = self
            .deadlines
            .total
            .map(|(at, limit)| (at, TimedOut::Total(limit)));
        let idle = self
            .deadlines
            .idle
            .map(|limit| (Instant::now() + limit, TimedOut::Idle(limit)));
        match (total, idle) {
            (Some(total), Some(idle)) => Some(if idle.0 < total.0 { idle } else { total }),
            (one, other) => one.or(other),
        }
    }
}

impl<B> HttpBody for Limited<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.progressed = true;
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if this.progressed || this.timer.is_none() {
            this.progressed = false;
            let Some((at, _)) = this.next_deadline() else {
                return Poll::Pending;
            };
            match &mut this.timer {
                Some(timer) => timer.as_mut().reset(at),
                None => this.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
        let Some(timer) = this.timer.as_mut() else {
            return Poll::Pending;
        };
        ready!(timer.as_mut().poll(cx));
        let passed = match this.deadlines.total {
            Some((at, limit)) if at <= Instant::now() => TimedOut::Total(limit),
            _ => TimedOut::Idle(this.deadlines.idle.unwrap_or_default()),
        };
        Poll::Ready(Some(Err(Box::new(passed))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn timeouts(total: Option<u64>, start: Option<u64>, idle: Option<u64>) -> RequestTimeouts {
        RequestTimeouts {
            total: total.map(Duration::from_secs),
            response_start: start.map(Duration::from_secs),
            idle: idle.map(Duration::from_secs),
        }
    }

    /// A body that sends `chunks`, each after its delay.
    fn slow_body(
        chunks: Vec<(u64, &'static str)>,
    ) -> impl HttpBody<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let stream = futures::stream::iter(chunks).then(|(delay, text)| async move {
            tokio::time::sleep(Duration::from_secs(delay)).await;
            Ok(Frame::data(Bytes::from_static(text.as_bytes())))
        });
        StreamBody::new(Box::pin(stream))
    }

    use futures::StreamExt as _;

    #[tokio::test(start_paused = true)]
    async fn the_head_waits_for_the_earlier_of_response_start_and_total() {
        let both = Deadlines::starting_now(&timeouts(Some(300), Some(5), None));
        let (_, which) = both.head().unwrap();
        assert_eq!(which, TimedOut::ResponseStart(Duration::from_secs(5)));
        let total_first = Deadlines::starting_now(&timeouts(Some(3), Some(5), None));
        assert_eq!(
            total_first.head().unwrap().1,
            TimedOut::Total(Duration::from_secs(3))
        );
        assert!(
            Deadlines::starting_now(&timeouts(None, None, Some(1)))
                .head()
                .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_slower_than_the_total_limit_ends_with_an_error() {
        let deadlines = Deadlines::starting_now(&timeouts(Some(10), None, None));
        let body = deadlines.limit(slow_body(vec![(4, "a"), (4, "b"), (4, "c")]));
        let error = body.collect().await.unwrap_err();
        assert_eq!(
            error.downcast_ref::<TimedOut>(),
            Some(&TimedOut::Total(Duration::from_secs(10)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_limit_counts_from_the_last_frame() {
        // Each gap is under the idle limit though the whole takes longer.
        let deadlines = Deadlines::starting_now(&timeouts(None, None, Some(5)));
        let body = deadlines.limit(slow_body(vec![(4, "a"), (4, "b"), (4, "c")]));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "abc");
        // One gap over it fails.
        let deadlines = Deadlines::starting_now(&timeouts(None, None, Some(5)));
        let body = deadlines.limit(slow_body(vec![(1, "a"), (6, "b")]));
        let error = body.collect().await.unwrap_err();
        assert_eq!(
            error.downcast_ref::<TimedOut>(),
            Some(&TimedOut::Idle(Duration::from_secs(5)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_is_held_to_the_earliest_limit_that_still_applies() {
        let deadlines = Deadlines::starting_now(&timeouts(Some(300), Some(10), Some(20)));
        let opened = Instant::now();
        // Nothing from the instance yet: it must start within 10 s.
        assert_eq!(
            deadlines.tunnel(None, opened),
            Some((
                opened + Duration::from_secs(10),
                TimedOut::ResponseStart(Duration::from_secs(10))
            ))
        );
        // Once it has spoken, 20 s from its last byte, then the total.
        let spoke = opened + Duration::from_secs(285);
        assert_eq!(
            deadlines.tunnel(Some(opened), opened).unwrap().1,
            TimedOut::Idle(Duration::from_secs(20))
        );
        assert_eq!(
            deadlines.tunnel(Some(spoke), opened).unwrap().1,
            TimedOut::Total(Duration::from_secs(300))
        );
        assert!(
            Deadlines::starting_now(&timeouts(None, None, None))
                .tunnel(None, opened)
                .is_none()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_limits_a_body_takes_as_long_as_it_takes() {
        let deadlines = Deadlines::starting_now(&timeouts(None, None, None));
        let body = deadlines.limit(slow_body(vec![(1000, "late")]));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "late");
    }
}
