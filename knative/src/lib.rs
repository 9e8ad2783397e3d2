//! Knative Serving for okonomi: the `serving.knative.dev/v1` resource types
//! shared by the engine, the CLI and the tests, the well-known label and
//! annotation keys, the function manifest (okonomi.toml), and validation.
//!
//! The crate does no network I/O by default: everything that needs a client
//! lives behind the `client` cargo feature, so the types stay cheap to share.

pub mod admission;
pub mod defaults;
pub mod error;
pub mod istio;
pub mod keys;
pub mod manifest;
pub mod render;
pub mod serving;
pub mod validation;

pub use defaults::SetDefaults;
pub use error::{Error, Result};
pub use manifest::FunctionManifest;
pub use serving::{
    Addressable, Condition, ConditionSeverity, ConditionStatus, Conditions, Configuration,
    ConfigurationSpec, ConfigurationStatus, ContainerStatus, KnativeObject, Revision, RevisionSpec,
    RevisionStatus, RevisionTemplateSpec, Route, RouteSpec, RouteStatus, Service, ServiceSpec,
    ServiceStatus, TrafficTarget,
};
pub use validation::{CauseType, FieldError, FieldErrors, Validate, ValidationConfig};
