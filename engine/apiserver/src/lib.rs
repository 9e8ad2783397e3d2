//! A Kubernetes-compatible API server for Knative Serving resources and the
//! Kubernetes kinds below them, with persistence and watches.
//!
//! The crate has two halves:
//! - [`Store`]: the in-process object store the engine's controllers use directly
//!   (get, list, create, update, patch, delete with cascade, watch), persisted in SQLite
//!   (readable by the engine's user only: it holds Secrets) with monotonic resource
//!   versions. Objects are plain `serde_json::Value`s, so the store knows nothing
//!   about Knative; Knative's defaulting and validation come in through the
//!   [`Admission`] trait.
//! - [`http`]: the Kubernetes REST API over that store (discovery, OpenAPI with
//!   schemas, tables, watches, patches, `pods/log`, `pods/portforward`, the
//!   `scale` subresource, `auth can-i`), served over HTTPS with a bearer token
//!   ([`tls`]), plus the kubeconfig merge that makes `kubectl` talk to it
//!   ([`kubeconfig`]).
//!
//! ## The built-in kinds
//!
//! Besides Knative's kinds the API serves, as Kubernetes does ([`builtin`]):
//! - **ConfigMaps, Secrets, ServiceAccounts**, which users write. Secret
//!   `stringData` is folded into `data` (base64) and never stored or returned;
//!   `type` defaults to `Opaque`; `immutable` freezes the data. Every namespace
//!   has a `default` ServiceAccount from its creation.
//! - **Pods, Deployments, ReplicaSets, PodAutoscalers, Events**, which the
//!   engine writes through [`Store`] directly. Over HTTP users may read and
//!   watch them, delete a Pod (the engine replaces it), and change a
//!   Deployment's `spec.replicas` (or its `scale`), which the revision's
//!   autoscaler then puts back, as on Knative. Creating them, or changing
//!   anything else, is refused with a `403 Forbidden` saying that the engine
//!   makes them from Knative Services ([`builtin::access`]); `kubectl auth
//!   can-i` answers from the same rules.
//! - Events are stored once and served as core `v1` and `events.k8s.io/v1`.
//!
//! ## What the engine plugs in
//!
//! The streaming subresources need the engine's kubelet: it implements
//! [`logs::PodLogs`] and [`portforward::PodPortForward`] and installs them with
//! [`Api::with_pod_logs`](http::Api::with_pod_logs) and
//! [`Api::with_port_forward`](http::Api::with_port_forward). Without them, log
//! requests answer `501` and forwarded connections report that forwarding is not
//! available.
//!
//! Wiring it up (what an engine does at start):
//!
//! ```no_run
//! # async fn start(state_dir: &std::path::Path, admission: std::sync::Arc<dyn okonomi_apiserver::Admission>)
//! #     -> Result<(), okonomi_apiserver::Error> {
//! use okonomi_apiserver::{ResourceType, Store, http::Api, kubeconfig, tls};
//! let store = Store::open(&state_dir.join("state.db")).await?;
//! let credentials = tls::Credentials::load_or_create(&state_dir.join("pki"))?;
//! let api = Api::new(store.with_admission(admission), ResourceType::all_builtin())
//!     .with_token(credentials.token.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:6443").await.map_err(|source| {
//!     okonomi_apiserver::Error::Io { action: "binding", path: "127.0.0.1:6443".into(), source }
//! })?;
//! let url = format!("https://{}", listener.local_addr().map_err(|source| {
//!     okonomi_apiserver::Error::Io { action: "reading address of", path: "listener".into(), source }
//! })?);
//! let config = credentials.server_config()?;
//! tokio::spawn(tls::serve_tls(listener, api.router(), config, std::future::pending()));
//! kubeconfig::merge(&kubeconfig::default_path()?, &kubeconfig::KubeconfigEntry {
//!     name: "okonomi".into(),
//!     server: url,
//!     ca_pem: credentials.ca_pem.clone(),
//!     token: credentials.token.clone(),
//!     namespace: None,
//!     set_current: true,
//! })?;
//! // Controllers use `store` directly: get, list, create, update, update_status,
//! // patch, delete, watch.
//! # Ok(()) }
//! ```

pub mod admission;
pub mod builtin;
pub mod error;
pub mod http;
pub mod kubeconfig;
pub mod logs;
pub mod portforward;
pub mod resource;
pub mod selector;
pub mod status;
pub mod store;
pub mod tls;

pub use admission::{Admission, AdmissionRequest, Denial, NoAdmission, Operation};
pub use error::{Error, Result};
pub use resource::{PrinterColumn, ResourceType};
pub use status::{Status, StatusCause};
pub use store::{ListOptions, ObjectList, Patch, Store, WatchEvent, WatchOptions, WriteOptions};
