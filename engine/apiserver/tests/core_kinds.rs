//! The built-in kinds through kube-rs and k8s-openapi's types, as a client of a
//! real Kubernetes API server would see them: ConfigMap and Secret data rules,
//! default ServiceAccounts, Events in two APIs, names, field selectors, and the
//! verbs users may take on the engine's kinds.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/objects.rs"]
mod objects;

use harness::Server;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event as NewEvent;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use okonomi_apiserver::ResourceType;
use serde_json::{Value, json};

fn api_error(error: kube::Error) -> (u16, String, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason.clone(), status.message.clone()),
        other => panic!("expected an API error, got {other}"),
    }
}

fn typed<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn secrets_fold_string_data_and_check_base64() {
    let server = Server::start().await;
    let secrets: Api<Secret> = Api::namespaced(server.client().await, "default");
    let created = secrets
        .create(
            &PostParams::default(),
            &typed(json!({"metadata": {"name": "db"}, "stringData": {"password": "hunter2"}, "data": {"user": "YWRh"}})),
        )
        .await
        .unwrap();
    let created = serde_json::to_value(&created).unwrap();
    assert_eq!(
        created["data"],
        json!({"password": "aHVudGVyMg==", "user": "YWRh"})
    );
    assert_eq!(created["type"], "Opaque");
    assert!(created.get("stringData").is_none(), "{created}");
    let stored = server
        .store
        .get(&ResourceType::secret(), "default", "db")
        .unwrap();
    assert!(stored.get("stringData").is_none(), "{stored}");

    // A merge patch with stringData is folded too, and keeps the other keys.
    let patched = secrets
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "s3cret"}})),
        )
        .await
        .unwrap();
    let patched = serde_json::to_value(&patched).unwrap();
    assert_eq!(
        patched["data"],
        json!({"password": "czNjcmV0", "user": "YWRh"})
    );

    // data must be base64; the refusal does not repeat the value.
    let client = server.client().await;
    let raw = http::Request::post("/api/v1/namespaces/default/secrets")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"}, "data": {"k": "not base64!"}})).unwrap())
        .unwrap();
    let (code, _, message) = api_error(client.request::<Value>(raw).await.unwrap_err());
    assert_eq!(code, 400, "{message}");
    assert!(
        message.contains("data[k]") && !message.contains("not base64!"),
        "{message}"
    );

    // The type is fixed once set.
    let (code, reason, message) = api_error(
        secrets
            .patch(
                "db",
                &PatchParams::default(),
                &Patch::Merge(json!({"type": "kubernetes.io/tls"})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
    assert!(message.contains("type: Invalid value"), "{message}");
}

#[tokio::test]
async fn immutable_config_maps_and_secrets_refuse_changes() {
    let server = Server::start().await;
    let maps: Api<ConfigMap> = Api::namespaced(server.client().await, "default");
    maps.create(
        &PostParams::default(),
        &typed(json!({"metadata": {"name": "settings"}, "data": {"greeting": "hi"}, "binaryData": {"logo": "AAEC"}, "immutable": true})),
    )
    .await
    .unwrap();
    let (code, _, message) = api_error(
        maps.patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"greeting": "hello"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert_eq!(
        message,
        "ConfigMap \"settings\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    let (code, _, message) = api_error(
        maps.patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"immutable": false})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("immutable: Forbidden"), "{message}");
    // Labels may still change.
    maps.patch(
        "settings",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
    )
    .await
    .unwrap();
    // A key in both data and binaryData is refused.
    let (code, _, message) = api_error(
        maps.create(
            &PostParams::default(),
            &typed(json!({"metadata": {"name": "twice"}, "data": {"k": "v"}, "binaryData": {"k": "AA=="}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("duplicate of key present in binaryData"),
        "{message}"
    );

    let secrets: Api<Secret> = Api::namespaced(server.client().await, "default");
    secrets
        .create(
            &PostParams::default(),
            &typed(
                json!({"metadata": {"name": "key"}, "stringData": {"k": "v"}, "immutable": true}),
            ),
        )
        .await
        .unwrap();
    let (code, _, message) = api_error(
        secrets
            .patch(
                "key",
                &PatchParams::default(),
                &Patch::Merge(json!({"stringData": {"k": "w"}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("data: Forbidden: field is immutable"),
        "{message}"
    );
}

#[tokio::test]
async fn names_are_checked_per_kind() {
    let server = Server::start().await;
    let maps: Api<ConfigMap> = Api::namespaced(server.client().await, "default");
    let (code, _, message) = api_error(
        maps.create(
            &PostParams::default(),
            &typed(json!({"metadata": {"name": "Bad_Name"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("a lowercase RFC 1123 subdomain"),
        "{message}"
    );
    maps.create(
        &PostParams::default(),
        &typed(json!({"metadata": {"name": "good.name-1"}})),
    )
    .await
    .unwrap();
    let namespaces: Api<Namespace> = Api::all(server.client().await);
    for bad in ["RP-A", "rp.a", "a-"] {
        let (code, _, message) = api_error(
            namespaces
                .create(
                    &PostParams::default(),
                    &typed(json!({"metadata": {"name": bad}})),
                )
                .await
                .unwrap_err(),
        );
        assert_eq!(code, 422, "{bad}: {message}");
        assert!(message.contains("RFC 1123 label"), "{message}");
    }
}

#[tokio::test]
async fn every_namespace_has_a_default_service_account() {
    let server = Server::start().await;
    let client = server.client().await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    accounts.get("default").await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &typed(json!({"metadata": {"name": "team-a"}})),
        )
        .await
        .unwrap();
    let in_team: Api<ServiceAccount> = Api::namespaced(client.clone(), "team-a");
    let account = in_team.get("default").await.unwrap();
    assert_eq!(account.metadata.namespace.as_deref(), Some("team-a"));
    // Users make their own, too.
    in_team
        .create(
            &PostParams::default(),
            &typed(json!({"metadata": {"name": "builder"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        in_team
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );

    // A namespace stored without one (as before service accounts were served)
    // gets it when the store opens.
    let sa = ResourceType::service_account();
    server.store.delete(&sa, "team-a", "default").await.unwrap();
    let dir = server.stop().await;
    let server = Server::start_in(dir).await;
    server.store.get(&sa, "team-a", "default").unwrap();
}

#[tokio::test]
async fn events_written_in_one_api_show_in_the_other() {
    let server = Server::start().await;
    let client = server.client().await;
    // The engine writes a core Event through the store.
    server
        .store
        .create(
            &ResourceType::event(),
            objects::event(
                "hello.1",
                "Service",
                "hello",
                "Created",
                "Created Configuration \"hello\"",
            ),
        )
        .await
        .unwrap();
    // … and an events.k8s.io one.
    server
        .store
        .create(
            &ResourceType::events_k8s_io_event(),
            json!({
                "metadata": {"name": "hello-pod.2", "namespace": "default"},
                "eventTime": "2026-01-01T00:00:01.500000Z",
                "reportingController": "okonomi.dev/kubelet", "reportingInstance": "engine",
                "action": "Started", "reason": "Started", "type": "Normal",
                "regarding": {"kind": "Pod", "name": "hello-pod", "namespace": "default"},
                "note": "Started container user-container",
            }),
        )
        .await
        .unwrap();

    let new: Api<NewEvent> = Api::namespaced(client.clone(), "default");
    let seen = new.get("hello.1").await.unwrap();
    assert_eq!(
        seen.note.as_deref(),
        Some("Created Configuration \"hello\"")
    );
    assert_eq!(
        seen.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("hello")
    );
    assert_eq!(seen.reporting_controller.as_deref(), Some("okonomi-engine"));
    let core: Api<Event> = Api::namespaced(client.clone(), "default");
    let seen = core.get("hello-pod.2").await.unwrap();
    assert_eq!(
        seen.message.as_deref(),
        Some("Started container user-container")
    );
    assert_eq!(seen.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(
        seen.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("okonomi.dev/kubelet")
    );
    assert_eq!(seen.count, Some(1));

    // Both lists hold both events; field selectors work in either's names.
    assert_eq!(
        core.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    assert_eq!(
        new.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );
    let about_hello = core
        .list(
            &ListParams::default().fields("involvedObject.name=hello,involvedObject.kind=Service"),
        )
        .await
        .unwrap();
    let names: Vec<_> = about_hello
        .items
        .iter()
        .filter_map(|e| e.metadata.name.clone())
        .collect();
    assert_eq!(names, ["hello.1"]);
    let started = new
        .list(&ListParams::default().fields("regarding.name=hello-pod,reason=Started,type=Normal"))
        .await
        .unwrap();
    assert_eq!(started.items.len(), 1);
    let (code, _, message) = api_error(
        core.list(&ListParams::default().fields("spec.nodeName=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    assert!(
        message.contains("field label not supported: spec.nodeName"),
        "{message}"
    );
}

#[tokio::test]
async fn pods_select_by_phase_and_are_the_engines() {
    let server = Server::start().await;
    let client = server.client().await;
    let pods_rt = ResourceType::pod();
    // The engine's own writes pass.
    server
        .engine_put(
            &pods_rt,
            objects::pod("hello-a", "hello", &["user-container"]),
        )
        .await;
    let mut pending = objects::pod("hello-b", "hello", &["user-container"]);
    pending["status"] = json!({"phase": "Pending"});
    server.engine_put(&pods_rt, pending).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let running = pods
        .list(&ListParams::default().fields("status.phase=Running"))
        .await
        .unwrap();
    let names: Vec<_> = running
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, ["hello-a"]);
    let by_account = pods
        .list(
            &ListParams::default().fields("spec.serviceAccountName=default,spec.nodeName=okonomi"),
        )
        .await
        .unwrap();
    assert_eq!(by_account.items.len(), 2);

    // Users may not make pods, but may delete one (the engine replaces it).
    let (code, reason, message) = api_error(
        pods.create(
            &PostParams::default(),
            &typed(objects::pod("mine", "hello", &["c"])),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"), "{message}");
    assert!(
        message.starts_with("pods is forbidden: User \"okonomi\" cannot create resource \"pods\" in API group \"\" in the namespace \"default\"")
            && message.contains("made by the engine from Knative Services"),
        "{message}"
    );
    let (code, _, _) = api_error(
        pods.patch(
            "hello-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 403);
    pods.delete("hello-a", &DeleteParams::background())
        .await
        .unwrap();
    assert!(
        server
            .store
            .get(&pods_rt, "default", "hello-a")
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn a_pod_is_created_pending_with_its_qos_class() {
    // Kubernetes' Pod strategy resets status on create to phase Pending and
    // the QoS class: `kubectl get pods -w` shows a new Pod as Pending from its
    // ADDED event, before the kubelet writes anything.
    let server = Server::start().await;
    let pods_rt = ResourceType::pod();
    let created = server
        .store
        .create(
            &pods_rt,
            objects::pod("hello-a", "hello", &["user-container"]),
        )
        .await
        .unwrap();
    assert_eq!(
        created["status"],
        json!({"phase": "Pending", "qosClass": "BestEffort"})
    );
    let mut limited = objects::pod("hello-b", "hello", &["user-container"]);
    limited["spec"]["containers"][0]["resources"] =
        json!({"limits": {"cpu": "1", "memory": "128Mi"}});
    let created = server.store.create(&pods_rt, limited).await.unwrap();
    assert_eq!(created["status"]["qosClass"], "Guaranteed");
    let mut requested = objects::pod("hello-c", "hello", &["user-container"]);
    requested["spec"]["containers"][0]["resources"] = json!({"requests": {"memory": "64Mi"}});
    let created = server.store.create(&pods_rt, requested).await.unwrap();
    assert_eq!(created["status"]["qosClass"], "Burstable");
}

#[tokio::test]
async fn deployments_take_only_replicas_from_users() {
    let server = Server::start().await;
    let client = server.client().await;
    let rt = ResourceType::deployment();
    server
        .store
        .create(&rt, objects::deployment("hello-00001-deployment", 1))
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");

    let scale = deployments
        .get_scale("hello-00001-deployment")
        .await
        .unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(1));
    assert_eq!(
        scale.status.and_then(|s| s.selector).as_deref(),
        Some("serving.knative.dev/revision=hello-00001-deployment")
    );
    let scaled = deployments
        .patch_scale(
            "hello-00001-deployment",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(3));
    let stored = server
        .store
        .get(&rt, "default", "hello-00001-deployment")
        .unwrap();
    assert_eq!(stored["spec"]["replicas"], 3);

    // spec.replicas directly, too.
    let patched = deployments
        .patch(
            "hello-00001-deployment",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.replicas, Some(2));

    // Anything else is the engine's.
    let (code, _, message) = api_error(
        deployments
            .patch(
                "hello-00001-deployment",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "user-container", "image": "evil"}]}}}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("only spec.replicas") && message.contains("spec.template"),
        "{message}"
    );
    let (code, _, message) = api_error(
        deployments
            .create(
                &PostParams::default(),
                &typed(objects::deployment("mine", 1)),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("Deployments are made by the engine"),
        "{message}"
    );
    // Server-side apply of a new one is a create, and refused as one.
    let (code, _, _) = api_error(
        deployments
            .patch(
                "applied",
                &PatchParams::apply("me"),
                &Patch::Apply(objects::deployment("applied", 1)),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    let (code, _, _) = api_error(
        deployments
            .delete("hello-00001-deployment", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
}
