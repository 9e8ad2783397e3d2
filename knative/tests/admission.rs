//! Admission over JSON, as the engine's API server calls it.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::schema;

use okonomi_knative::ValidationConfig;
use okonomi_knative::admission::{KnativeKind, Write, admit};
use serde_json::{Value, json};

fn hello() -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{"image": "example.com/hello"}]}}}
    })
}

#[test]
fn create_applies_knatives_defaults_and_stays_schema_valid() {
    let mut object = hello();
    admit(
        KnativeKind::Service,
        Write::Create,
        None,
        &mut object,
        &ValidationConfig::default(),
    )
    .unwrap();
    let spec = &object["spec"];
    assert_eq!(
        spec["traffic"],
        json!([{"latestRevision": true, "percent": 100}])
    );
    assert_eq!(spec["template"]["spec"]["timeoutSeconds"], 300);
    assert_eq!(spec["template"]["spec"]["containerConcurrency"], 0);
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["name"],
        "user-container"
    );
    schema::Schemas::knative().assert_valid(&object);
}

#[test]
fn invalid_objects_come_back_with_every_cause() {
    let mut object = hello();
    object["metadata"]["name"] = json!("Hello");
    object["spec"]["template"]["spec"]["timeoutSeconds"] = json!(900);
    object["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "K_REVISION", "value": "x"}]);
    let before = object.clone();
    let causes = admit(
        KnativeKind::Service,
        Write::Create,
        None,
        &mut object,
        &ValidationConfig::default(),
    )
    .unwrap_err();
    let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "metadata.name",
            "spec.template.spec.timeoutSeconds",
            "spec.template.spec.containers[0].env[0].name"
        ],
        "{causes}"
    );
    assert_eq!(object, before, "a rejected object is left as it was");
}

#[test]
fn a_wrong_type_names_its_field() {
    let mut object = hello();
    object["spec"]["traffic"] = json!([{"percent": "fifty"}]);
    let causes = admit(
        KnativeKind::Service,
        Write::Create,
        None,
        &mut object,
        &ValidationConfig::default(),
    )
    .unwrap_err();
    let cause = causes.iter().next().unwrap();
    assert_eq!(cause.field, "spec.traffic[0].percent", "{causes}");
    assert!(cause.message.contains("fifty"), "{causes}");
}

#[test]
fn updates_check_against_the_stored_object() {
    let config = ValidationConfig::default();
    let mut stored = json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {"name": "hello-00001"},
        "spec": {"containers": [{"image": "example.com/hello"}]}
    });
    admit(
        KnativeKind::parse("revisions").unwrap(),
        Write::Create,
        None,
        &mut stored,
        &config,
    )
    .unwrap();
    let mut changed = stored.clone();
    changed["spec"]["timeoutSeconds"] = json!(10);
    let causes = admit(
        KnativeKind::Revision,
        Write::Update,
        Some(&stored),
        &mut changed,
        &config,
    )
    .unwrap_err();
    assert!(causes.has_field("spec"), "{causes}");

    // Status writes are the controllers' business: only the types are checked.
    let mut with_status = stored.clone();
    with_status["status"] =
        json!({"actualReplicas": 1, "conditions": [{"type": "Ready", "status": "True"}]});
    admit(
        KnativeKind::Revision,
        Write::UpdateStatus,
        Some(&stored),
        &mut with_status,
        &config,
    )
    .unwrap();
    with_status["status"]["actualReplicas"] = json!("one");
    assert!(
        admit(
            KnativeKind::Revision,
            Write::UpdateStatus,
            Some(&stored),
            &mut with_status,
            &config
        )
        .is_err()
    );
}

#[test]
fn routes_and_configurations_are_admitted_too() {
    let config = ValidationConfig::default();
    let mut route = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Route", "metadata": {"name": "r"},
        "spec": {"traffic": [{"configurationName": "c", "percent": 100}]}});
    admit(
        KnativeKind::parse("Route").unwrap(),
        Write::Create,
        None,
        &mut route,
        &config,
    )
    .unwrap();
    assert_eq!(route["spec"]["traffic"][0]["latestRevision"], true);

    let mut configuration = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Configuration", "metadata": {"name": "c"},
        "spec": {"template": {"metadata": {"name": "other-1"}, "spec": {"containers": [{"image": "i"}]}}}});
    let causes = admit(
        KnativeKind::Configuration,
        Write::Create,
        None,
        &mut configuration,
        &config,
    )
    .unwrap_err();
    assert!(causes.has_field("spec.template.metadata.name"), "{causes}");
    assert_eq!(KnativeKind::parse("pods"), None);
}
