//! The resource types read and write exactly Knative's JSON.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use okonomi_knative::serving::{condition_type, remove_condition, set_condition};
use okonomi_knative::{
    Condition, ConditionStatus, Conditions, Configuration, KnativeObject, Revision, Route, Service,
    TrafficTarget,
};
use serde_json::{Value, json};

/// A Service as a real Knative cluster returns it (spec defaulted, status set).
fn knative_service_json() -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": "hello",
            "namespace": "default",
            "generation": 2,
            "annotations": {"serving.knative.dev/creator": "admin"}
        },
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {"autoscaling.knative.dev/min-scale": "1"}
                },
                "spec": {
                    "containerConcurrency": 0,
                    "timeoutSeconds": 300,
                    "enableServiceLinks": false,
                    "containers": [{
                        "name": "user-container",
                        "image": "registry/hello@sha256:abcd",
                        "ports": [{"name": "h2c", "containerPort": 8080, "protocol": "TCP"}],
                        "env": [{"name": "GREETING", "value": "Hello"}],
                        "readinessProbe": {"successThreshold": 1, "tcpSocket": {"port": 0}}
                    }]
                }
            },
            "traffic": [{"latestRevision": true, "percent": 100}]
        },
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {"type": "ConfigurationsReady", "status": "True", "lastTransitionTime": "2026-11-27T07:00:00Z"},
                {"type": "Ready", "status": "False", "reason": "RevisionMissing", "message": "not yet"},
                {"type": "RoutesReady", "status": "Unknown", "severity": "Info"}
            ],
            "url": "http://hello.default.example.com",
            "address": {"url": "http://hello.default.svc.cluster.local"},
            "latestCreatedRevisionName": "hello-00002",
            "latestReadyRevisionName": "hello-00001",
            "traffic": [
                {"revisionName": "hello-00001", "latestRevision": true, "percent": 100},
                {"revisionName": "hello-00001", "latestRevision": false, "percent": 0, "tag": "v1",
                 "url": "http://v1-hello.default.example.com"}
            ]
        }
    })
}

#[test]
fn service_round_trips_knative_json_unchanged() {
    let input = knative_service_json();
    let service: Service = serde_json::from_value(input.clone()).unwrap();
    assert_eq!(service.name(), "hello");
    assert_eq!(service.spec.template.spec.timeout_seconds, Some(300));
    assert_eq!(
        service.spec.template.spec.pod_spec.enable_service_links,
        Some(false)
    );
    assert_eq!(
        service.spec.template.spec.pod_spec.containers[0].name,
        "user-container"
    );
    assert_eq!(service.spec.traffic, vec![TrafficTarget::latest(100)]);
    let status = service.status.as_ref().unwrap();
    assert_eq!(
        status.latest_ready_revision_name.as_deref(),
        Some("hello-00001")
    );
    assert_eq!(status.traffic[1].tag.as_deref(), Some("v1"));
    assert!(!service.is_ready());
    assert!(service.is_reconciled());
    assert_eq!(
        service.ready_condition().unwrap().reason.as_deref(),
        Some("RevisionMissing")
    );

    assert_eq!(serde_json::to_value(&service).unwrap(), input);
}

#[test]
fn empty_fields_are_left_out() {
    let service = Service::new("bare", Default::default());
    assert_eq!(
        serde_json::to_value(&service).unwrap(),
        json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "bare"},
            "spec": {"template": {"spec": {"containers": []}}}
        })
    );
}

#[test]
fn yaml_from_kubectl_reads_into_every_kind() {
    let revision: Revision = serde_saphyr::from_str(
        "apiVersion: serving.knative.dev/v1\nkind: Revision\nmetadata:\n  name: hello-00001\n\
         spec:\n  containers:\n  - image: x\n  timeoutSeconds: 30\nstatus:\n  actualReplicas: 2\n\
         \x20 containerStatuses:\n  - name: user-container\n    imageDigest: x@sha256:00\n",
    )
    .unwrap();
    assert_eq!(revision.spec.timeout_seconds, Some(30));
    assert_eq!(
        revision.status.unwrap().container_statuses[0].image_digest,
        "x@sha256:00"
    );

    let route: Route = serde_saphyr::from_str(
        "kind: Route\nmetadata: {name: r}\nspec:\n  traffic:\n  - {configurationName: c, percent: 100}\n",
    )
    .unwrap();
    assert_eq!(
        route.spec.traffic[0].configuration_name.as_deref(),
        Some("c")
    );

    let configuration: Configuration = serde_saphyr::from_str(
        "metadata: {name: c}\nspec:\n  template:\n    metadata: {name: c-v1}\n    spec:\n      containers: [{image: example.com/y}]\n",
    )
    .unwrap();
    assert_eq!(
        configuration.spec.template.metadata.name.as_deref(),
        Some("c-v1")
    );
}

#[test]
fn wrong_kind_or_group_is_an_error_naming_both() {
    let err = serde_json::from_value::<Service>(
        json!({"apiVersion": "serving.knative.dev/v1", "kind": "Route"}),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("\"Route\"") && err.contains("\"Service\""),
        "{err}"
    );
    let err =
        serde_json::from_value::<Service>(json!({"apiVersion": "apps/v1", "kind": "Service"}))
            .unwrap_err()
            .to_string();
    assert!(err.contains("apps/v1"), "{err}");
}

#[test]
fn kube_sees_the_types_as_resources() {
    use kube::Resource;
    assert_eq!(Service::kind(&()), "Service");
    assert_eq!(Service::group(&()), "serving.knative.dev");
    assert_eq!(Revision::plural(&()), "revisions");
    assert_eq!(Route::api_version(&()), "serving.knative.dev/v1");
    assert_eq!(
        Configuration::url_path(&(), Some("ns")),
        "/apis/serving.knative.dev/v1/namespaces/ns/configurations"
    );
}

fn time(seconds: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
}

#[test]
fn set_condition_keeps_transition_time_when_state_is_unchanged() {
    let mut conditions = Vec::new();
    assert!(set_condition(
        &mut conditions,
        Condition::unknown("Ready", "Deploying", ""),
        time(10)
    ));
    assert!(set_condition(
        &mut conditions,
        Condition::true_("Active"),
        time(10)
    ));
    assert_eq!(
        conditions
            .iter()
            .map(|c| c.type_.as_str())
            .collect::<Vec<_>>(),
        ["Active", "Ready"]
    );

    assert!(!set_condition(
        &mut conditions,
        Condition::unknown("Ready", "Deploying", ""),
        time(20)
    ));
    assert_eq!(
        conditions
            .get_condition("Ready")
            .unwrap()
            .last_transition_time,
        Some(time(10))
    );
    assert!(!conditions.is_ready());

    assert!(set_condition(
        &mut conditions,
        Condition::true_(condition_type::READY),
        time(30)
    ));
    let ready = conditions.get_condition("Ready").unwrap();
    assert_eq!(ready.status, ConditionStatus::True);
    assert_eq!(ready.last_transition_time, Some(time(30)));
    assert_eq!(ready.reason, None);
    assert!(conditions.is_ready());

    assert!(remove_condition(&mut conditions, "Active"));
    assert!(!remove_condition(&mut conditions, "Active"));
    assert_eq!(conditions.len(), 1);
}

#[test]
fn reconciled_compares_generation_with_observed_generation() {
    let mut service = Service::new("s", Default::default());
    service.metadata.generation = Some(3);
    assert!(!service.is_reconciled());
    service.status_mut().observed_generation = Some(2);
    assert!(!service.is_reconciled());
    service.status_mut().observed_generation = Some(3);
    assert!(service.is_reconciled());
}
