//! The built-in Kubernetes kinds' own rules, applied as the Kubernetes API server
//! applies them: object names (`names`), ConfigMap and Secret data (`data`),
//! the two views of Events (`events`), the field selectors each kind supports
//! (`fields`), a new Pod's status (`pods`) and which verbs a user may take on
//! which kind ([`access`]).
//!
//! Knative's kinds get their rules from outside, through [`Admission`]; these
//! are the rules of the kinds the engine itself serves below them.
//!
//! [`Admission`]: crate::Admission

pub mod access;
pub(crate) mod data;
pub(crate) mod events;
pub(crate) mod fields;
pub(crate) mod names;
pub(crate) mod pods;

use serde_json::Value;

use crate::admission::Operation;
use crate::error::Result;
use crate::resource::ResourceType;

/// The built-in kinds that have rules of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Namespace,
    ConfigMap,
    Secret,
    ServiceAccount,
    Pod,
    Event,
    /// `events.k8s.io/v1` Events: the core Events seen through the newer API.
    EventsV1,
    Deployment,
    ReplicaSet,
    PodAutoscaler,
}

impl Builtin {
    /// Which built-in kind `rt` is, if any (by group and kind, so that a custom
    /// resource of another group with the same kind is not mistaken for one).
    pub(crate) fn of(rt: &ResourceType) -> Option<Self> {
        Some(match (rt.group.as_str(), rt.kind.as_str()) {
            ("", "Namespace") => Self::Namespace,
            ("", "ConfigMap") => Self::ConfigMap,
            ("", "Secret") => Self::Secret,
            ("", "ServiceAccount") => Self::ServiceAccount,
            ("", "Pod") => Self::Pod,
            ("", "Event") => Self::Event,
            ("events.k8s.io", "Event") => Self::EventsV1,
            ("apps", "Deployment") => Self::Deployment,
            ("apps", "ReplicaSet") => Self::ReplicaSet,
            ("autoscaling.internal.knative.dev", "PodAutoscaler") => Self::PodAutoscaler,
            _ => return None,
        })
    }
}

/// Default and validate a built-in object before the pluggable admission sees it.
pub(crate) fn admit(
    rt: &ResourceType,
    operation: Operation,
    old: Option<&Value>,
    object: &mut Value,
) -> Result<()> {
    // Kubernetes' schemas drop fields they do not know (and `fieldValidation`
    // then names them); these kinds are simple enough to list theirs.
    let known: &[&str] = match Builtin::of(rt) {
        Some(Builtin::ConfigMap) => &["data", "binaryData", "immutable"],
        Some(Builtin::Secret) => &["data", "stringData", "type", "immutable"],
        Some(Builtin::ServiceAccount) => &[
            "secrets",
            "imagePullSecrets",
            "automountServiceAccountToken",
        ],
        _ => return Ok(()),
    };
    if let Some(map) = object.as_object_mut() {
        map.retain(|field, _| {
            matches!(field.as_str(), "apiVersion" | "kind" | "metadata")
                || known.contains(&field.as_str())
        });
    }
    match Builtin::of(rt) {
        Some(Builtin::ConfigMap) => data::admit_config_map(rt, operation, old, object),
        Some(Builtin::Secret) => data::admit_secret(rt, operation, old, object),
        _ => Ok(()),
    }
}

/// Fields a write may send that the kind folds into others and never stores
/// (a Secret's `stringData`): not "unknown fields" for `fieldValidation`.
pub(crate) fn is_folded_field(rt: &ResourceType, field: &str) -> bool {
    Builtin::of(rt) == Some(Builtin::Secret)
        && (field == "stringData" || field.starts_with("stringData."))
}

/// Whether a strategic merge patch (what kubectl's typed clients send for
/// built-in kinds: `apply`, `patch`, `label`, `annotate`) is taken for `rt`.
/// It is applied as a JSON merge patch with the strategic directives
/// (`$setElementOrder/…`, `$retainKeys`, `$patch`) removed: exact for maps,
/// which is all ConfigMaps and Secrets hold; a list is replaced whole rather
/// than merged by key. Knative's kinds refuse it, as a custom resource does.
pub(crate) fn takes_strategic_merge(rt: &ResourceType) -> bool {
    matches!(Builtin::of(rt), Some(kind) if kind != Builtin::PodAutoscaler)
}

/// A strategic merge patch as the JSON merge patch it is applied as.
pub(crate) fn strategic_to_merge(mut patch: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|key, _| !key.starts_with('$'));
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut patch);
    patch
}
