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

pub mod admission;
pub mod error;
pub mod http;
pub mod kubeconfig;
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
