//! Object builders for tests: the few Knative objects the tests write, as JSON,
//! so that each test says only what differs.

#![allow(dead_code)]

use serde_json::{Value, json};

/// A Knative Service `name` (namespace left to the request, so `default` for the
/// store), labelled `app: NAME`, with one container.
pub fn ksvc(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
    })
}

/// A Knative Revision `name` in `namespace` with `metadata` merged in.
pub fn revision(namespace: &str, name: &str, metadata: Value) -> Value {
    let mut object = json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"image": "img"}]},
    });
    json_patch::merge(&mut object["metadata"], &metadata);
    object
}

/// `ownerReferences` naming `owner` (a stored object of `kind`) as the controller.
pub fn owned_by(owner: &Value, kind: &str) -> Value {
    json!([{
        "apiVersion": "serving.knative.dev/v1",
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
    }])
}

/// A JSON object as a typed one (okonomi-knative's `Service`, kube's types).
pub fn typed<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("the object fits the type")
}

/// A Pod as the engine writes one: `user-container` (and more `containers`),
/// Knative's labels for `service`, phase Running and every container ready.
pub fn pod(name: &str, service: &str, containers: &[&str]) -> Value {
    let specs: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "example.com/hello@sha256:00"}))
        .collect();
    let statuses: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}))
        .collect();
    json!({
        "metadata": {"name": name, "labels": {"serving.knative.dev/service": service, "app": service}},
        "spec": {"containers": specs, "serviceAccountName": "default", "nodeName": "okonomi"},
        "status": {"phase": "Running", "podIP": "127.0.0.1", "containerStatuses": statuses,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

/// A Deployment as the engine writes one per revision.
pub fn deployment(name: &str, replicas: i64) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"serving.knative.dev/revision": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"serving.knative.dev/revision": name}},
            "template": {
                "metadata": {"labels": {"serving.knative.dev/revision": name}},
                "spec": {"containers": [{"name": "user-container", "image": "example.com/hello@sha256:00"}]},
            },
        },
    })
}

/// A core Event about `kind/name`, as the engine's parts write them.
pub fn event(name: &str, kind: &str, about: &str, reason: &str, message: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "involvedObject": {"kind": kind, "name": about, "namespace": "default"},
        "reason": reason, "message": message, "type": "Normal",
        "source": {"component": "okonomi-engine"},
        "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1,
    })
}
