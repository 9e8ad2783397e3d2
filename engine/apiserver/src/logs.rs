//! Pod logs: the `pods/log` subresource's backend. The engine implements
//! [`PodLogs`] and installs it with [`Api::with_pod_logs`](crate::http::Api::with_pod_logs);
//! the API server does the rest as Kubernetes does: it finds the pod, picks and
//! checks the container, parses the options, prefixes timestamps, cuts at
//! `limitBytes`, and words the errors as the kubelet does.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::Value;

/// What a client asked of a container's log (`kubectl logs` flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep the stream open and send lines as they are written (`-f`).
    pub follow: bool,
    /// Only the last this many lines (`--tail`); the backend applies it.
    pub tail_lines: Option<u64>,
    /// Only lines written at or after this time (`--since`, `--since-time`);
    /// the backend applies it.
    pub since: Option<jiff::Timestamp>,
    /// The log of the container's previous, terminated run (`--previous`).
    pub previous: bool,
}

/// Whose log is asked for.
#[derive(Debug, Clone)]
pub struct LogRequest {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod as stored (labels, uid, container statuses).
    pub object: Arc<Value>,
    /// The container, already checked to be one of the pod's.
    pub container: String,
    /// The client's options.
    pub options: LogOptions,
}

/// One line of a log, with when it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the line was written.
    pub time: jiff::Timestamp,
    /// The line's bytes, with its trailing newline when it had one.
    pub line: Bytes,
}

/// A container's log lines; the response ends when the stream ends.
pub type LogStream = BoxStream<'static, std::io::Result<LogLine>>;

/// Why a backend cannot give a log; the API server words it for the client.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `previous` was asked and the container has no terminated run.
    #[error("the container has no previous terminated run")]
    PreviousNotFound,
    /// The container has not started yet; `reason` is its waiting reason
    /// (`ContainerCreating`, `PodInitializing`, …).
    #[error("the container is waiting to start: {reason}")]
    Waiting {
        /// The container's waiting reason.
        reason: String,
    },
    /// This API server has no log backend installed.
    #[error("pod logs are not available from this API server")]
    Unavailable,
    /// The backend failed (a log file could not be read, …).
    #[error("reading the log failed: {0}")]
    Failed(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where pod logs come from. The engine's kubelet implements it.
pub trait PodLogs: Send + Sync + 'static {
    /// The log of `request.container` in `request.pod`, honouring `follow`,
    /// `tail_lines`, `since` and `previous`.
    fn logs(&self, request: LogRequest) -> BoxFuture<'static, Result<LogStream, LogError>>;
}

/// The backend used when none is installed: every log is [`LogError::Unavailable`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPodLogs;

impl PodLogs for NoPodLogs {
    fn logs(&self, _: LogRequest) -> BoxFuture<'static, Result<LogStream, LogError>> {
        Box::pin(async { Err(LogError::Unavailable) })
    }
}
