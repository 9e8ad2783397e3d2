//! The kubelet: runs Pods with the process or the container runtime.
//!
//! A revision's image reference is first resolved into a [`Launch`]
//! ([`artifacts`]: an unpacked image's entrypoint, an `okonomi://` crate
//! built on deploy, or an image run under podman), then each Pod of it is a
//! child process run by its [`pod_worker`] (start, readiness [`prober`],
//! restarts with back-off, drain, stop) with its own log ([`logs`],
//! [`pod_logs`]: a file per run, the previous run's kept) and a
//! record under the state dir ([`leftovers`]) so that a restart after
//! `kill -9` can stop what the killed engine left running. What happens to
//! a Pod is told to its owner through [`pod_worker::InstanceObserver`].

pub mod artifacts;
pub mod binaries;
pub mod build;
pub mod container;
pub mod env;
pub mod image;
pub mod leftovers;
pub mod logs;
pub mod mounts;
pub mod objects;
pub mod pod_logs;
pub mod pod_worker;
pub mod prober;
pub mod volumes;

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Volume};

pub use objects::ConfigSource;
pub use pod_worker::{Failure, InstanceObserver, SupervisorTiming};

/// Settings every Pod the kubelet runs shares.
#[derive(Debug, Clone)]
pub struct KubeletSettings {
    /// The engine's state dir (image cache, kept binaries and logs live
    /// under it).
    pub state_dir: PathBuf,
    /// Runtime for images (per-revision `okonomi.dev/runtime` overrides).
    pub runtime: RuntimeKind,
    /// Where `okonomi://PATH` references are resolved.
    pub source_root: PathBuf,
    /// Cargo profile for `okonomi://` builds.
    pub build_profile: String,
    /// Supervision timing.
    pub timing: SupervisorTiming,
    /// Where Pods' ConfigMaps and Secrets are read.
    pub config: ConfigSource,
}

/// Which runtime runs an image that is not an `okonomi://` reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RuntimeKind {
    /// The image's entrypoint, unpacked once and run directly: fastest.
    #[default]
    Process,
    /// The image under `podman --runtime runc` (uid 65532, read-only root).
    Container,
}

impl RuntimeKind {
    /// Parses `process` or `container` (the `okonomi.dev/runtime` annotation).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "process" => Some(Self::Process),
            "container" => Some(Self::Container),
            _ => None,
        }
    }
}

/// The node every Pod runs on (the machine the engine runs on).
pub const NODE_NAME: &str = "okonomi";

/// Annotation on a revision template choosing its runtime.
pub const RUNTIME_ANNOTATION: &str = "okonomi.dev/runtime";

/// How to start one instance of a revision, once its code is resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    /// Run a program directly.
    Process {
        /// The executable.
        program: PathBuf,
        /// `argv[0]` as the container sees it, when that is not `program`:
        /// an image's entrypoint (`/app/hello`), not the path under the
        /// state dir where the engine unpacked it.
        arg0: Option<String>,
        /// Its arguments.
        args: Vec<String>,
        /// Working directory.
        cwd: PathBuf,
        /// Environment from the image config (the spec's env comes on top).
        env: Vec<(String, String)>,
    },
    /// Run an image under podman.
    Container {
        /// The image reference podman pulls.
        image: String,
        /// The container's `command`: replaces the image's Entrypoint (and
        /// drops its Cmd) when not empty.
        command: Vec<String>,
        /// The container's `args`: replace the image's Cmd when not empty.
        args: Vec<String>,
    },
}

/// How readiness is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// An HTTP GET on this path must answer 2xx/3xx.
    HttpGet {
        /// Request path.
        path: String,
    },
    /// A TCP connect to the port must succeed.
    Tcp,
}

/// Everything an instance needs besides its [`Launch`].
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    /// Namespace of the revision.
    pub namespace: String,
    /// `K_SERVICE`.
    pub service: String,
    /// `K_CONFIGURATION`.
    pub configuration: String,
    /// `K_REVISION`.
    pub revision: String,
    /// The serving container as the revision gives it: its `env`,
    /// `envFrom`, `volumeMounts` and resources are set up per Pod
    /// ([`mod@env`], [`volumes`]).
    pub container: Container,
    /// The revision's volumes.
    pub volumes: Vec<Volume>,
    /// The Pods' labels and annotations (the downward API's).
    pub labels: BTreeMap<String, String>,
    /// See `labels`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.serviceAccountName`.
    pub service_account: String,
    /// Where each Pod's own directory (its volumes) lives.
    pub pods_dir: PathBuf,
    /// Where ConfigMaps and Secrets are read.
    pub config: ConfigSource,
    /// The readiness check.
    pub readiness: Readiness,
    /// The port the container declares (informational: the engine chooses
    /// the port and passes it as `PORT`).
    pub container_port: Option<u16>,
    /// Where this revision's instance logs go.
    pub log_dir: PathBuf,
    /// Where each running instance leaves its [`leftovers`] record.
    pub records_dir: PathBuf,
}
