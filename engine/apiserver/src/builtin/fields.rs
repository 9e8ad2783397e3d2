//! The field selectors each kind supports, as Kubernetes lists them per kind
//! (every kind: `metadata.name`, `metadata.namespace`).

use super::Builtin;
use crate::resource::ResourceType;

const POD: &[&str] = &[
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];
const EVENT: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

/// The fields `rt` supports beyond `metadata.name` and `metadata.namespace`.
pub(crate) fn supported(rt: &ResourceType) -> &'static [&'static str] {
    match Builtin::of(rt) {
        Some(Builtin::Pod) => POD,
        Some(Builtin::Event | Builtin::EventsV1) => EVENT,
        Some(Builtin::Secret) => &["type"],
        Some(Builtin::Namespace) => &["status.phase"],
        Some(Builtin::ReplicaSet) => &["status.replicas"],
        _ => &[],
    }
}

/// The stored field `field` selects on for `rt`, or `None` when `rt` does not
/// support it. `events.k8s.io` names (`regarding.name`) select on the stored
/// core fields (`involvedObject.name`).
pub(crate) fn resolve(rt: &ResourceType, field: &str) -> Option<String> {
    if matches!(field, "metadata.name" | "metadata.namespace") {
        return Some(field.into());
    }
    // Both views of events take both APIs' names: they select on the same storage.
    let field = if matches!(Builtin::of(rt), Some(Builtin::Event | Builtin::EventsV1)) {
        super::events::core_field(field)
    } else {
        field.to_string()
    };
    supported(rt).contains(&field.as_str()).then_some(field)
}

/// The JSON pointer a supported field reads (`source` is the component).
pub(crate) fn pointer(field: &str) -> String {
    if field == "source" {
        return "/source/component".into();
    }
    format!("/{}", field.replace('.', "/"))
}
