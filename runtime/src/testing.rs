//! Helpers for testing a function as a real process: start its binary on
//! loopback, learn its addresses from its "listening" log line, send it
//! requests, signal it, read its log lines.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use okonomi::testing::FunctionProcess;
//! let mut function = FunctionProcess::start(tokio::process::Command::new("target/debug/hello")).await?;
//! let (status, body) = function.get("/").await?;
//! assert_eq!(status, 200);
//! function.terminate();
//! assert!(function.wait().await?.success());
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A function binary running as a child process (killed on drop).
#[derive(Debug)]
pub struct FunctionProcess {
    child: Child,
    addrs: Vec<SocketAddr>,
    lines: Arc<Mutex<Vec<String>>>,
}

fn io_error(message: impl Into<String>) -> std::io::Error {
    std::io::Error::other(message.into())
}

impl FunctionProcess {
    /// Starts `command` with JSON logs on loopback port 0 (unless the command
    /// sets `OKONOMI_LISTEN` itself) and waits up to 60 s for it to listen.
    pub async fn start(mut command: Command) -> std::io::Result<Self> {
        let listen_set = command
            .as_std()
            .get_envs()
            .any(|(k, _)| k == "OKONOMI_LISTEN");
        if !listen_set {
            command.env("OKONOMI_LISTEN", "127.0.0.1:0");
        }
        command
            .env("OKONOMI_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| io_error("no stdout"))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = mpsc::channel::<Vec<SocketAddr>>(1);
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Some(addrs) = listening_addrs(&line) {
                    let _ = tx.try_send(addrs);
                }
                if let Ok(mut sink) = sink.lock() {
                    sink.push(line);
                }
            }
        });
        let addrs = tokio::select! {
            addrs = rx.recv() => addrs,
            _ = tokio::time::sleep(Duration::from_secs(60)) => None,
            status = child.wait() => {
                let status = status?;
                let log = lines.lock().map(|l| l.join("\n")).unwrap_or_default();
                return Err(io_error(format!("the function exited ({status}) before listening:\n{log}")));
            }
        };
        let addrs = addrs
            .ok_or_else(|| io_error("the function did not log a \"listening\" line within 60 s"))?;
        Ok(Self {
            child,
            addrs,
            lines,
        })
    }

    /// The first address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// All addresses listened on.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Every stdout line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Stdout lines that are JSON objects.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v.is_object())
            .collect()
    }

    /// Waits (up to 30 s) for a JSON log line that `matches`, and returns it.
    /// Lines are read in the background, so one written just before a
    /// response may arrive a moment after it.
    pub async fn wait_for_log(
        &self,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        for _ in 0..600 {
            if let Some(line) = self.json_lines().into_iter().find(|l| matches(l)) {
                return Some(line);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: libc::c_int) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Waits for the process to exit.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// `GET path` on the first address: status and body text.
    pub async fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let (status, _, body) = send(self.addr(), get(path)).await?;
        Ok((status.as_u16(), String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Reads the addresses from the runtime's `"listening"` JSON log line.
pub fn listening_addrs(line: &str) -> Option<Vec<SocketAddr>> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("message")?.as_str()? != "listening" {
        return None;
    }
    value
        .get("addresses")?
        .as_str()?
        .split(',')
        .map(|a| a.parse().ok())
        .collect()
}

/// A `GET path` request with an empty body.
pub fn get(path: &str) -> http::Request<Full<Bytes>> {
    request(http::Method::GET, path, Bytes::new())
}

/// A request with a body.
pub fn request(
    method: http::Method,
    path: &str,
    body: impl Into<Bytes>,
) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::new(Full::new(body.into()));
    *req.method_mut() = method;
    *req.uri_mut() = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    req
}

/// Sends one request over a new HTTP/1.1 connection to `addr`.
pub async fn send<B>(
    addr: SocketAddr,
    mut req: http::Request<B>,
) -> std::io::Result<(http::StatusCode, http::HeaderMap, Bytes)>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(io_error_from)?;
    tokio::spawn(conn);
    if !req.headers().contains_key(http::header::HOST) {
        let host = http::HeaderValue::from_str(&addr.to_string()).map_err(io_error_from)?;
        req.headers_mut().insert(http::header::HOST, host);
    }
    let response = sender.send_request(req).await.map_err(io_error_from)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(io_error_from)?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// Sends one request over a new HTTP/2 prior-knowledge (h2c) connection.
pub async fn send_h2c<B>(
    addr: SocketAddr,
    req: http::Request<B>,
) -> std::io::Result<(http::StatusCode, http::Version, Bytes)>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<crate::BoxError>,
{
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .map_err(io_error_from)?;
    tokio::spawn(conn);
    let mut req = req;
    let uri = format!(
        "http://{addr}{}",
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    *req.uri_mut() = uri.parse().map_err(io_error_from)?;
    let response = sender.send_request(req).await.map_err(io_error_from)?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(io_error_from)?.to_bytes();
    Ok((parts.status, parts.version, body))
}

fn io_error_from(error: impl std::fmt::Display) -> std::io::Error {
    io_error(error.to_string())
}
