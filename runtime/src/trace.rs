//! The W3C trace context of the request being served, so log lines carry its
//! trace id without a `tracing` span per request.
//!
//! The runtime parses each request's `traceparent` header into a
//! [`TraceParent`] and makes it the *current trace context* of the thread for
//! as long as the request's future is being polled. The log formats read it
//! from there (a span's own `trace_id` field wins when there is one), so every
//! line the handler logs, before or after an `.await`, names the trace.
//!
//! The context follows the request's future, not the task: a task the handler
//! spawns starts without it. Wrap such a future with [`in_current_trace`] to
//! carry the context along:
//!
//! ```no_run
//! use okonomi::{IntoResponse, Request};
//!
//! async fn handler(_req: Request) -> impl IntoResponse {
//!     // Logged lines from this task name the request's trace as well.
//!     okonomi::tokio::spawn(okonomi::trace::in_current_trace(async {
//!         okonomi::tracing::info!("still part of the request's trace");
//!     }));
//!     "accepted"
//! }
//! ```

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    // `Copy` data only, initialised as a constant: reading and swapping it
    // costs a few loads and stores, no lazy initialisation or destructor.
    static CURRENT: Cell<Option<TraceParent>> = const { Cell::new(None) };
}

/// A trace id: 32 lowercase hex digits, not all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 32]);

/// A span id: 16 lowercase hex digits, not all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId([u8; 16]);

/// Lowercase hex digits only (uppercase is invalid in `traceparent`).
fn is_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `text` as `N` lowercase hex digits, not all zero.
fn hex_id<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits: [u8; N] = text.as_bytes().try_into().ok()?;
    (is_hex(text) && digits.iter().any(|&b| b != b'0')).then_some(digits)
}

/// Hex digits as text. Only validated ASCII digits are ever stored, so the
/// empty fallback is unreachable; it spares an `unsafe` block.
fn as_text(digits: &[u8]) -> &str {
    std::str::from_utf8(digits).unwrap_or_default()
}

impl TraceId {
    /// The 32 hex digits.
    pub fn as_str(&self) -> &str {
        as_text(&self.0)
    }
}

impl SpanId {
    /// The 16 hex digits.
    pub fn as_str(&self) -> &str {
        as_text(&self.0)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({})", self.as_str())
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({})", self.as_str())
    }
}

/// A parsed `traceparent` header (`00-<trace id>-<parent id>-<flags>`), held
/// without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace the request belongs to.
    pub trace_id: TraceId,
    /// The caller's span.
    pub parent_id: SpanId,
    /// Whether the caller sampled this trace.
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` value; `None` if it is not valid W3C trace context.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || !is_hex(version) || version == "ff" {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if flags.len() != 2 || !is_hex(flags) {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id: TraceId(hex_id(trace_id)?),
            parent_id: SpanId(hex_id(parent_id)?),
            sampled: flags & 1 == 1,
        })
    }
}

/// The version 00 header form, `00-<trace id>-<parent id>-<01|00>`.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = if self.sampled { "01" } else { "00" };
        write!(f, "00-{}-{}-{flags}", self.trace_id, self.parent_id)
    }
}

/// The trace context of the request this thread is serving right now, if it
/// came with a valid `traceparent` (or a future wrapped with
/// [`in_current_trace`] carries one).
pub fn current() -> Option<TraceParent> {
    CURRENT.with(Cell::get)
}

/// Wraps `future` so it runs in the current trace context (see the
/// [module docs](self)): for a task spawned from a handler.
pub fn in_current_trace<F: Future>(future: F) -> InTrace<F> {
    InTrace::new(current(), future)
}

/// Makes `trace` current until dropped, then restores what was current
/// before (also when a panic unwinds through).
struct Scope {
    previous: Option<TraceParent>,
}

impl Scope {
    fn enter(trace: TraceParent) -> Self {
        Self {
            previous: CURRENT.with(|current| current.replace(Some(trace))),
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.previous));
    }
}

/// Runs `f` with `trace` as the current trace context (none: unchanged).
pub(crate) fn scoped<R>(trace: Option<TraceParent>, f: impl FnOnce() -> R) -> R {
    let _scope = trace.map(Scope::enter);
    f()
}

pin_project_lite::pin_project! {
    /// A future that makes its trace context current while it is polled; see
    /// [`in_current_trace`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct InTrace<F> {
        #[pin]
        future: F,
        trace: Option<TraceParent>,
    }
}

impl<F> InTrace<F> {
    /// `future` polled in `trace`; with `None` it keeps whatever context is
    /// current where it is polled.
    pub fn new(trace: Option<TraceParent>, future: F) -> Self {
        Self { future, trace }
    }

    /// The trace context this future runs in.
    pub fn trace(&self) -> Option<TraceParent> {
        self.trace
    }
}

impl<F: Future> Future for InTrace<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _scope = this.trace.map(Scope::enter);
        this.future.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::{TraceParent, current, in_current_trace, scoped};

    const HEADER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_parses_and_rejects() {
        let tp = TraceParent::parse(HEADER).unwrap();
        assert_eq!(tp.trace_id.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id.as_str(), "00f067aa0ba902b7");
        assert!(tp.sampled);
        assert_eq!(tp.to_string(), HEADER);
        let unsampled =
            TraceParent::parse(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ")
                .unwrap();
        assert!(!unsampled.sampled);
        // A later version may append fields; its first four still count.
        let later =
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-more")
                .unwrap();
        assert_eq!((later.trace_id, later.sampled), (tp.trace_id, true));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47360-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn the_context_is_current_only_while_the_future_is_polled() {
        let trace = TraceParent::parse(HEADER).unwrap();
        let mut yielded = false;
        let seen = std::cell::RefCell::new(Vec::new());
        let mut future = pin!(super::InTrace::new(
            Some(trace),
            std::future::poll_fn(|cx| {
                seen.borrow_mut().push(current());
                if yielded {
                    Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
        ));
        assert_eq!(current(), None);
        assert!(poll_once(future.as_mut()).is_pending());
        assert_eq!(current(), None, "restored between polls");
        assert!(poll_once(future.as_mut()).is_ready());
        assert_eq!(current(), None);
        assert_eq!(*seen.borrow(), [Some(trace), Some(trace)]);
    }

    #[test]
    fn nested_contexts_restore_the_outer_one_and_wrapping_captures_it() {
        let outer = TraceParent::parse(HEADER).unwrap();
        let inner =
            TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").unwrap();
        let captured = scoped(Some(outer), || {
            scoped(Some(inner), || assert_eq!(current(), Some(inner)));
            assert_eq!(current(), Some(outer));
            scoped(None, || assert_eq!(current(), Some(outer)));
            in_current_trace(async { current() })
        });
        assert_eq!(current(), None);
        assert_eq!(captured.trace(), Some(outer));
        assert_eq!(poll_once(pin!(captured)), Poll::Ready(Some(outer)));
    }

    #[test]
    fn a_panic_inside_a_scope_restores_the_previous_context() {
        let trace = TraceParent::parse(HEADER).unwrap();
        let caught = std::panic::catch_unwind(|| scoped(Some(trace), || panic!("on purpose")));
        assert!(caught.is_err());
        assert_eq!(current(), None);
    }
}
