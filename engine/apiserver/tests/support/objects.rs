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
