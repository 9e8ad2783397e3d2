//! Knative Serving for okonomi: the `serving.knative.dev/v1` resource types
//! shared by the engine, the CLI and the tests ([`serving`], [`keys`]),
//! the function manifest okonomi.toml ([`manifest`]), Knative's defaulting
//! and admission rules ([`defaults`], [`validation`], [`admission`]), how
//! Knative reads its `config-*` ConfigMaps ([`cluster_config`]),
//! rendering a function into a Service ([`render`]) and its Istio policy
//! ([`istio`]), and the Knative releases okonomi was checked against
//! ([`versions`]).
//!
//! The crate does no network I/O (reading okonomi.toml aside), so the engine
//! and the CLI share it cheaply; talking to clusters lives in the CLI. The
//! types implement k8s-openapi's `Resource` and `Metadata`, which makes them
//! `kube::Resource` wherever kube is in the build.

pub mod admission;
pub mod cluster_config;
pub mod defaults;
pub mod error;
pub mod istio;
pub mod keys;
pub mod manifest;
pub mod names;
pub mod render;
pub mod serving;
pub mod validation;
pub mod versions;

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
