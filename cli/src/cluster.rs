//! Talking to a cluster that runs Knative Serving — a real one (GKE, EKS, AKS,
//! kind) or okonomi's engine, which speaks the same API — through kube-rs:
//! picking the kubeconfig context, checking that Knative is there, server-side
//! apply, waiting for readiness the way `kn` does, and turning API failures
//! into messages that say what to do.

mod connect;
mod error;
mod wait;

pub use connect::{Cluster, is_engine_version};
pub use error::ClusterError;
pub use wait::wait_ready;

/// Field manager okonomi's server-side applies use.
pub const FIELD_MANAGER: &str = "okonomi";

/// Flags every verb that talks to a cluster shares.
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: the function's okonomi.toml, else the context's namespace, else "default").
    #[arg(short = 'n', long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}
