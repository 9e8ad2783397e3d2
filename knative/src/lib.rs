//! Knative Serving for okonomi: the `serving.knative.dev/v1` resource types
//! shared by the engine, the CLI and the tests, the well-known label and
//! annotation keys, and (in later modules) the function manifest, rendering and
//! validation.
//!
//! The crate does no I/O by default: everything that needs a network client
//! lives behind the `client` cargo feature, so the types stay cheap to share.

pub mod keys;
pub mod serving;

pub use serving::{
    Addressable, Condition, ConditionSeverity, ConditionStatus, Conditions, Configuration,
    ConfigurationSpec, ConfigurationStatus, ContainerStatus, KnativeObject, Revision, RevisionSpec,
    RevisionStatus, RevisionTemplateSpec, Route, RouteSpec, RouteStatus, Service, ServiceSpec,
    ServiceStatus, TrafficTarget,
};
