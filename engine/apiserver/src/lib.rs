//! A Kubernetes-compatible API server for Knative Serving resources, with persistence and watches.
//!
//! The crate has two halves:
//! - [`Store`]: the in-process object store the engine's controllers use directly
//!   (get, list, create, update, patch, delete with cascade, watch), persisted in SQLite
//!   with monotonic resource versions. Objects are plain `serde_json::Value`s, so the
//!   store knows nothing about Knative; kind-specific defaulting and validation come in
//!   through the [`Admission`] trait.
//! - [`http`]: the Kubernetes REST API over that store (discovery, OpenAPI, tables,
//!   watches, patches), served over HTTPS with a bearer token ([`tls`]), plus the
//!   kubeconfig merge that makes `kubectl` talk to it ([`kubeconfig`]).
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

pub use admission::{Admission, AdmissionRequest, NoAdmission, Operation};
pub use error::{Error, Result};
pub use resource::{PrinterColumn, ResourceType};
pub use status::{Status, StatusCause};
pub use store::{ListOptions, ObjectList, Patch, Store, WatchEvent, WatchOptions, WriteOptions};
