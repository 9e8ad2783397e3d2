//! wsserver: Knative Serving's WebSocket test image
//! (`test/test_images/wsserver`) as an okonomi function, so that Knative's
//! WebSocket scenarios run against the engine and a real cluster alike.
//!
//! - `GET /` with a WebSocket upgrade: echoes every message back, with
//!   `" " + $SUFFIX` appended when `SUFFIX` is set (how the blue/green
//!   scenario tells revisions apart).
//! - `?delay=SECONDS` waits that long before each echo (how the timeout
//!   scenarios make an instance slow).
//! - On SIGTERM each open socket is closed with a normal close frame
//!   ("bye") before the process exits, as Knative's image does, so a
//!   client sees a clean close when its revision goes away.
//! - A kubelet probe (or any request without an upgrade) gets 200.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use okonomi::axum::Router;
use okonomi::axum::routing::get;
use tokio::sync::watch;

/// What every socket shares: the suffix and the shutdown signal.
#[derive(Clone)]
struct Echo {
    suffix: Arc<str>,
    /// Becomes true on SIGTERM.
    stopping: watch::Receiver<bool>,
    /// How many sockets are open: the process waits for none.
    open: Arc<watch::Sender<usize>>,
}

/// One open socket, counted while it lives.
struct Counted(Arc<watch::Sender<usize>>);

impl Counted {
    fn new(open: &Arc<watch::Sender<usize>>) -> Self {
        open.send_modify(|n| *n += 1);
        Self(open.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

async fn upgrade(
    State(echo): State<Echo>,
    Query(params): Query<std::collections::HashMap<String, String>>,
    socket: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(socket) = socket else {
        // Probes and plain requests.
        return "wsserver: connect with a WebSocket upgrade\n".into_response();
    };
    let delay = params
        .get("delay")
        .and_then(|d| d.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or_default();
    socket.on_upgrade(move |socket| serve(socket, echo, delay))
}

/// Echoes until the client goes away or the instance is told to stop.
async fn serve(mut socket: WebSocket, mut echo: Echo, delay: Duration) {
    let _counted = Counted::new(&echo.open);
    loop {
        let message = tokio::select! {
            message = socket.recv() => message,
            _ = echo.stopping.wait_for(|stopping| *stopping) => break,
        };
        let message = match message {
            Some(Ok(Message::Text(text))) if echo.suffix.is_empty() => Message::Text(text),
            Some(Ok(Message::Text(text))) => {
                Message::Text(format!("{text} {}", echo.suffix).into())
            }
            Some(Ok(Message::Binary(bytes))) => Message::Binary(bytes),
            // Pings are answered by the library; a close or an error ends it.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if socket.send(message).await.is_err() {
            return;
        }
    }
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::NORMAL,
            reason: "bye".into(),
        })))
        .await;
}

#[tokio::main]
async fn main() -> Result<(), okonomi::Error> {
    let (stop, stopping) = watch::channel(false);
    let open = Arc::new(watch::Sender::new(0usize));
    let echo = Echo {
        suffix: std::env::var("SUFFIX").unwrap_or_default().into(),
        stopping,
        open: open.clone(),
    };
    let app = Router::new().route("/", get(upgrade)).with_state(echo);
    // okonomi::serve returns once SIGTERM has drained the HTTP requests; an
    // upgraded socket is no longer one of them, so close those here.
    let served = okonomi::serve(app).await;
    let _ = stop.send(true);
    let mut count = open.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(10), count.wait_for(|n| *n == 0)).await;
    served
}
