//! The schema check itself is trustworthy: it loads every reference CRD,
//! accepts what Knative's own examples contain and rejects what a cluster
//! would reject.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::schema;

use schema::Schemas;
use serde_json::json;

fn hello() -> serde_json::Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "hello"},
        "spec": {"template": {"spec": {"containers": [{
            "image": "ghcr.io/knative/helloworld-go:latest",
            "ports": [{"containerPort": 8080}],
            "env": [{"name": "TARGET", "value": "World"}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}}
        }]}}}
    })
}

#[test]
fn every_knative_and_istio_crd_loads() {
    // service, configuration, revision, route, domainmapping (v1alpha1, v1beta1)
    assert!(Schemas::knative().len() >= 5);
    // AuthorizationPolicy, PeerAuthentication (2 versions each), Gateway, VirtualService (3 each)
    assert_eq!(Schemas::istio().len(), 10);
}

#[test]
fn knatives_hello_world_is_valid() {
    Schemas::knative().assert_valid(&hello());
}

#[test]
fn unknown_fields_and_wrong_types_are_rejected() {
    let schemas = Schemas::knative();
    let mut typo = hello();
    typo["spec"]["template"]["spec"]["containers"][0]["imagePolicy"] = json!("Always");
    let violations = schemas.violations(&typo);
    assert!(
        violations.iter().any(|v| v.contains("imagePolicy")),
        "{violations:?}"
    );

    let mut wrong_type = hello();
    wrong_type["spec"]["traffic"] = json!([{"percent": "100", "latestRevision": true}]);
    let violations = schemas.violations(&wrong_type);
    assert!(
        violations
            .iter()
            .any(|v| v.starts_with("/spec/traffic/0/percent")),
        "{violations:?}"
    );

    let mut missing = hello();
    missing["spec"]["template"]["spec"] = json!({"timeoutSeconds": 30});
    assert!(!schemas.violations(&missing).is_empty());

    // int-or-string: a named probe port is fine, a boolean is not.
    let mut named_port = hello();
    named_port["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] =
        json!("http1");
    schemas.assert_valid(&named_port);
    named_port["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] =
        json!(true);
    let violations = schemas.violations(&named_port);
    assert!(
        violations
            .iter()
            .any(|v| v.contains("readinessProbe/httpGet/port")),
        "{violations:?}"
    );

    // Preserve-unknown-fields keeps open what Knative keeps open.
    let mut open = hello();
    open["spec"]["template"]["metadata"] = json!({"annotations": {"a": "b"}, "somethingElse": 1});
    schemas.assert_valid(&open);
}

#[test]
fn an_unknown_kind_is_reported() {
    let violations = Schemas::knative().violations(&json!({"apiVersion": "v1", "kind": "Pod"}));
    assert_eq!(violations.len(), 1, "{violations:?}");
}

#[test]
fn istio_enums_and_unknown_fields_are_enforced() {
    let schemas = Schemas::istio();
    let good = json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default"},
        "spec": {"mtls": {"mode": "STRICT"}}
    });
    schemas.assert_valid(&good);
    let mut bad_mode = good.clone();
    bad_mode["spec"]["mtls"]["mode"] = json!("STRICTLY");
    let violations = schemas.violations(&bad_mode);
    assert!(
        violations.iter().any(|v| v.starts_with("/spec/mtls/mode")),
        "{violations:?}"
    );
    let mut typo = good;
    typo["spec"]["mTLS"] = json!({"mode": "STRICT"});
    assert!(schemas.violations(&typo).iter().any(|v| v.contains("mTLS")));
}

#[test]
fn typed_objects_with_status_are_schema_valid() {
    use okonomi_knative::{Configuration, Revision, Route, Service};
    let schemas = Schemas::knative();
    let condition =
        json!({"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-27T07:00:00Z"});
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "hello"},
        "spec": hello()["spec"].clone(),
        "status": {"observedGeneration": 1, "conditions": [condition],
            "url": "http://hello.default.localhost", "address": {"url": "http://hello.default.svc.cluster.local"},
            "latestCreatedRevisionName": "hello-00001", "latestReadyRevisionName": "hello-00001",
            "traffic": [{"revisionName": "hello-00001", "latestRevision": true, "percent": 100}]}
    }))
    .unwrap();
    schemas.assert_valid(&serde_json::to_value(&service).unwrap());

    let configuration = Configuration::new("hello", service.spec.configuration_spec());
    schemas.assert_valid(&serde_json::to_value(&configuration).unwrap());
    let route = Route::new("hello", service.spec.route_spec());
    schemas.assert_valid(&serde_json::to_value(&route).unwrap());
    let revision: Revision = serde_json::from_value(json!({
        "metadata": {"name": "hello-00001"},
        "spec": hello()["spec"]["template"]["spec"].clone(),
        "status": {"observedGeneration": 1, "conditions": [condition], "actualReplicas": 0, "desiredReplicas": 0,
            "containerStatuses": [{"name": "user-container", "imageDigest": "example.com/hello@sha256:00"}]}
    }))
    .unwrap();
    schemas.assert_valid(&serde_json::to_value(&revision).unwrap());
}
