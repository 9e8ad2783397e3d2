//! The runtime's error type: what can go wrong before or while serving.

use std::net::SocketAddr;

/// Everything that can stop [`crate::serve`] from serving.
#[derive(thiserror::Error)]
pub enum Error {
    /// An environment variable holds a value the runtime cannot use.
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    InvalidEnv {
        /// The variable's name, e.g. `PORT`.
        name: &'static str,
        /// The value found.
        value: String,
        /// What a valid value looks like.
        reason: String,
    },
    /// A listening socket could not be opened.
    #[error(
        "cannot listen on {addr}: {source} (is another process using the port? set PORT to a free one)"
    )]
    Bind {
        /// The address the runtime tried to listen on.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The signal handlers for SIGTERM/SIGINT could not be installed.
    #[error("cannot install the SIGTERM/SIGINT handler: {0}")]
    Signal(#[source] std::io::Error),
    /// The OTLP trace exporter could not be built from `OTEL_EXPORTER_OTLP_*`.
    #[error("cannot set up OTLP trace export to OTEL_EXPORTER_OTLP_ENDPOINT: {0}")]
    Telemetry(String),
}

// `main() -> Result<(), okonomi::Error>` prints the Debug form: make it the message.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
