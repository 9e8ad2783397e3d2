//! The `serving.knative.dev/v1` resources: Service, Configuration, Revision and
//! Route, serialized exactly as Knative's JSON (camelCase, empty fields omitted).
//!
//! The structs are hand-made on k8s-openapi's `ObjectMeta` and `PodSpec`; they
//! implement `k8s_openapi::Resource` and `k8s_openapi::Metadata`, so kube's
//! blanket impl makes them `kube::Resource` wherever kube is in the build
//! (`kube::Api<Service>` works) without this crate depending on a client.

mod condition;
mod configuration;
mod object;
mod revision;
mod route;
mod service;
mod traffic;

pub use condition::{
    Condition, ConditionSeverity, ConditionStatus, Conditions, condition_type, reason,
    remove_condition, set_condition,
};
pub use configuration::{Configuration, ConfigurationSpec, ConfigurationStatus};
pub use object::KnativeObject;
pub use revision::{ContainerStatus, Revision, RevisionSpec, RevisionStatus, RevisionTemplateSpec};
pub use route::{Addressable, Route, RouteSpec, RouteStatus};
pub use service::{Service, ServiceSpec, ServiceStatus};
pub use traffic::TrafficTarget;
