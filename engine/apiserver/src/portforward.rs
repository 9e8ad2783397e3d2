//! Pod port forwarding: the `pods/portforward` subresource's backend. The
//! engine implements [`PodPortForward`] and installs it with
//! [`Api::with_port_forward`](crate::http::Api::with_port_forward); the API server
//! speaks kubectl's streaming protocol (SPDY/3.1, `portforward.k8s.io`) and
//! copies bytes between each forwarded connection and the stream this gives.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

/// A bidirectional byte stream to a pod's port.
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Duplex for T {}

/// A connection to a pod's port.
pub type PortStream = Box<dyn Duplex>;

/// Which port of which pod.
#[derive(Debug, Clone)]
pub struct PortRequest {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod as stored (its IP, its containers' ports).
    pub object: Arc<Value>,
    /// The port inside the pod.
    pub port: u16,
}

/// Why a backend cannot connect; the message reaches kubectl's error stream.
#[derive(Debug, thiserror::Error)]
pub enum PortForwardError {
    /// This API server has no port-forward backend installed.
    #[error("port forwarding is not available from this API server")]
    Unavailable,
    /// The pod is not running, so it has no ports to reach.
    #[error("pod is not running (phase {phase})")]
    NotRunning {
        /// The pod's phase.
        phase: String,
    },
    /// Connecting to the port failed.
    #[error("error forwarding port {port}: {source}")]
    Connect {
        /// The port.
        port: u16,
        /// What the connect said.
        #[source]
        source: std::io::Error,
    },
}

/// Where forwarded connections go. The engine's kubelet implements it.
pub trait PodPortForward: Send + Sync + 'static {
    /// A new connection to `request.port` of `request.pod`.
    fn connect(
        &self,
        request: PortRequest,
    ) -> BoxFuture<'static, Result<PortStream, PortForwardError>>;
}

/// The backend used when none is installed: every connect is
/// [`PortForwardError::Unavailable`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPortForward;

impl PodPortForward for NoPortForward {
    fn connect(&self, _: PortRequest) -> BoxFuture<'static, Result<PortStream, PortForwardError>> {
        Box::pin(async { Err(PortForwardError::Unavailable) })
    }
}
