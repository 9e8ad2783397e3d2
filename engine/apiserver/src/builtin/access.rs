//! Who may do what over HTTP. The bearer token stands for one user, [`USER`],
//! who may do everything with the kinds users write (Knative's, ConfigMaps,
//! Secrets, ServiceAccounts, namespaces). The kinds the engine makes —
//! Pods, Deployments, ReplicaSets, PodAutoscalers and Events — allow only the
//! verbs Kubernetes lets a user take on objects a controller owns:
//!
//! - Pods: read them, delete one (the engine replaces it, as a Deployment
//!   would), read their logs and forward their ports;
//! - Deployments: read them, and change `spec.replicas` (directly or through
//!   the `scale` subresource); the owning revision then puts it back, as
//!   Knative does;
//! - ReplicaSets, PodAutoscalers and Events: read them.
//!
//! These rules bind the HTTP API only: the engine writes through
//! [`Store`](crate::Store) directly, and `kubectl auth can-i` answers from the
//! same table ([`allowed`]).

use serde_json::Value;

/// The user the API's bearer token stands for.
pub const USER: &str = "okonomi";
/// The groups [`USER`] is in.
pub const GROUPS: [&str; 2] = ["system:masters", "system:authenticated"];

/// A kind the engine makes, with what users may do to it.
struct Owned {
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    subresources: &'static [(&'static str, &'static [&'static str])],
    why: &'static str,
}

const READ: &[&str] = &["get", "list", "watch"];

const OWNED: &[Owned] = &[
    Owned {
        group: "",
        resource: "pods",
        verbs: &["get", "list", "watch", "delete", "deletecollection"],
        subresources: &[
            ("log", &["get"]),
            ("portforward", &["get", "create"]),
            ("status", &["get"]),
        ],
        why: "Pods are made by the engine from Knative Services; create or change a Knative Service instead (a deleted Pod is replaced)",
    },
    Owned {
        group: "apps",
        resource: "deployments",
        verbs: &["get", "list", "watch", "update", "patch"],
        subresources: &[("scale", &["get", "update", "patch"]), ("status", &["get"])],
        why: "Deployments are made by the engine, one per Knative Revision; change the Knative Service instead (only spec.replicas may be set by hand, and the revision's autoscaler then puts it back)",
    },
    Owned {
        group: "apps",
        resource: "replicasets",
        verbs: READ,
        subresources: &[("status", &["get"])],
        why: "ReplicaSets are made by the engine for its Deployments; change the Knative Service instead",
    },
    Owned {
        group: "autoscaling.internal.knative.dev",
        resource: "podautoscalers",
        verbs: READ,
        subresources: &[("status", &["get"])],
        why: "PodAutoscalers are made by the engine, one per Knative Revision; set autoscaling annotations on the Knative Service instead",
    },
    Owned {
        group: "",
        resource: "events",
        verbs: READ,
        subresources: &[],
        why: "events are written by the engine's parts",
    },
    Owned {
        group: "events.k8s.io",
        resource: "events",
        verbs: READ,
        subresources: &[],
        why: "events are written by the engine's parts",
    },
];

fn owned(group: &str, resource: &str) -> Option<&'static Owned> {
    OWNED
        .iter()
        .find(|o| o.group == group && o.resource == resource)
}

/// Whether [`USER`] may take `verb` on `resource` (and `subresource`, empty for
/// the object itself) in `group`; `Err` carries why not.
pub fn allowed(
    group: &str,
    resource: &str,
    subresource: &str,
    verb: &str,
) -> Result<(), &'static str> {
    let Some(owned) = owned(group, resource) else {
        return Ok(());
    };
    let verbs = if subresource.is_empty() {
        owned.verbs
    } else {
        owned
            .subresources
            .iter()
            .find(|(name, _)| *name == subresource)
            .map_or(&[][..], |(_, verbs)| *verbs)
    };
    if verbs.contains(&verb) {
        Ok(())
    } else {
        Err(owned.why)
    }
}

/// The verbs [`USER`] may take on `resource[/subresource]`; `None` for all.
pub fn verbs(group: &str, resource: &str, subresource: &str) -> Option<Vec<&'static str>> {
    let owned = owned(group, resource)?;
    Some(if subresource.is_empty() {
        owned.verbs.to_vec()
    } else {
        owned
            .subresources
            .iter()
            .find(|(name, _)| *name == subresource)
            .map(|(_, verbs)| verbs.to_vec())
            .unwrap_or_default()
    })
}

/// The subresources of `resource` users may reach, with their verbs.
pub fn subresources(
    group: &str,
    resource: &str,
) -> &'static [(&'static str, &'static [&'static str])] {
    owned(group, resource).map_or(&[], |o| o.subresources)
}

/// Kubernetes' Forbidden message for a refused request.
pub fn forbidden_message(
    group: &str,
    resource: &str,
    subresource: &str,
    name: Option<&str>,
    namespace: Option<&str>,
    verb: &str,
    why: &str,
) -> String {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let what = match name {
        Some(name) => format!("{qualified} {name:?}"),
        None => qualified,
    };
    let full = if subresource.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}/{subresource}")
    };
    let scope = match namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".into(),
    };
    format!(
        "{what} is forbidden: User {USER:?} cannot {verb} resource {full:?} in API group {group:?} {scope}: {why}"
    )
}

/// For a user's write to a Deployment: the first field other than
/// `spec.replicas` that `new` changes, if any.
pub(crate) fn deployment_change_beyond_replicas(old: &Value, new: &Value) -> Option<String> {
    fn strip(object: &Value) -> Value {
        let mut object = object.clone();
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
            if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
                for field in ["resourceVersion", "managedFields", "generation"] {
                    meta.remove(field);
                }
            }
            if let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("replicas");
            }
        }
        object
    }
    let (old, new) = (strip(old), strip(new));
    if old == new {
        return None;
    }
    let (Some(a), Some(b)) = (old.as_object(), new.as_object()) else {
        return Some("the object".into());
    };
    for key in a.keys().chain(b.keys()) {
        if a.get(key) != b.get(key) {
            if let (Some(Value::Object(x)), Some(Value::Object(y))) = (a.get(key), b.get(key)) {
                for inner in x.keys().chain(y.keys()) {
                    if x.get(inner) != y.get(inner) {
                        return Some(format!("{key}.{inner}"));
                    }
                }
            }
            return Some(key.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn users_write_their_kinds_and_read_the_engines() {
        assert!(allowed("serving.knative.dev", "services", "", "create").is_ok());
        assert!(allowed("", "configmaps", "", "update").is_ok());
        assert!(allowed("", "pods", "", "create").is_err());
        assert!(allowed("", "pods", "", "delete").is_ok());
        assert!(allowed("", "pods", "log", "get").is_ok());
        assert!(allowed("apps", "deployments", "", "create").is_err());
        assert!(allowed("apps", "deployments", "scale", "patch").is_ok());
        assert!(allowed("events.k8s.io", "events", "", "create").is_err());
    }

    #[test]
    fn only_replicas_may_change() {
        let old = json!({"metadata": {"name": "d", "resourceVersion": "1"}, "spec": {"replicas": 1, "paused": false}});
        let scaled = json!({"metadata": {"name": "d", "resourceVersion": "2"}, "spec": {"replicas": 3, "paused": false}});
        assert_eq!(deployment_change_beyond_replicas(&old, &scaled), None);
        let paused = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1, "paused": true}});
        assert_eq!(
            deployment_change_beyond_replicas(&old, &paused).as_deref(),
            Some("spec.paused")
        );
    }
}
