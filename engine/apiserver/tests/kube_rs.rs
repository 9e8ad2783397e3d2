//! kube-rs against the real API server over HTTPS, with okonomi-knative's types
//! and DynamicObject, configured from the kubeconfig the server merged.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/objects.rs"]
mod objects;

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use harness::Server;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use objects::{ksvc, revision, typed};
use okonomi_knative::serving::Service;
use serde_json::{Value, json};

fn service(name: &str, image: &str) -> Service {
    typed(ksvc(name, image))
}

fn api_error(error: kube::Error) -> (u16, String) {
    match error {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other}"),
    }
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what} within 30s"))
}

type ServiceEvents =
    futures::stream::BoxStream<'static, Result<watcher::Event<Service>, watcher::Error>>;

/// The names a kube-runtime watcher lists before `InitDone`, sorted.
async fn initial_names(events: &mut ServiceEvents) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        match within("the watcher's initial list", events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(s) => names.push(s.name().to_string()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    names.sort();
    names
}

/// The name of the next object a watcher reports created or changed.
async fn next_applied(events: &mut ServiceEvents) -> String {
    loop {
        if let watcher::Event::Apply(s) = within("a watcher event", events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            return s.name().to_string();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_crud_patch_and_conflicts() {
    let server = Server::start().await;
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");

    let created = services
        .create(&PostParams::default(), &service("hello", "img:1"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());

    let (code, reason) = api_error(
        services
            .create(&PostParams::default(), &service("hello", "img:1"))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let got = services.get("hello").await.unwrap();
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );

    // replace with the current resourceVersion, then with the stale one.
    let mut changed = got.clone();
    changed
        .metadata
        .labels
        .get_or_insert_default()
        .insert("v".into(), "2".into());
    let replaced = services
        .replace("hello", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version,
        got.metadata.resource_version
    );
    let (code, reason) = api_error(
        services
            .replace("hello", &PostParams::default(), &changed)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    // list by label.
    services
        .create(&PostParams::default(), &service("other", "img:1"))
        .await
        .unwrap();
    let listed = services
        .list(&ListParams::default().labels("app=other"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].name(), "other");
    assert!(listed.metadata.resource_version.is_some());
    let all = services.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 2);

    // Patch::Merge, Patch::Json, Patch::Apply (server-side apply).
    let merged = services
        .patch(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"a": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.metadata.annotations.unwrap()["a"], "1");
    let json_patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "img:2"}
    ]))
    .unwrap();
    let patched = services
        .patch(
            "hello",
            &PatchParams::default(),
            &Patch::Json::<()>(json_patch),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(2));
    let applied = services
        .patch(
            "applied",
            &PatchParams::apply("okonomi-test").force(),
            &Patch::Apply(service("applied", "img:3")),
        )
        .await
        .unwrap();
    assert_eq!(applied.name(), "applied");
    let reapplied = services
        .patch(
            "applied",
            &PatchParams::apply("okonomi-test").force(),
            &Patch::Apply(service("applied", "img:4")),
        )
        .await
        .unwrap();
    assert_eq!(reapplied.metadata.generation, Some(2));
    let value = serde_json::to_value(&reapplied).unwrap();
    assert_eq!(
        value["spec"]["template"]["spec"]["containers"][0]["image"],
        "img:4"
    );

    // status subresource.
    let with_status = services
        .patch_status(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 2, "url": "http://hello.default.localhost"}})),
        )
        .await
        .unwrap();
    let value = serde_json::to_value(&with_status).unwrap();
    assert_eq!(value["status"]["url"], "http://hello.default.localhost");
    let status_via_get = services.get_status("hello").await.unwrap();
    assert_eq!(status_via_get.metadata.uid, created.metadata.uid);

    // delete: the object is gone, a second delete is NotFound.
    let deleted = services
        .delete("hello", &DeleteParams::background())
        .await
        .unwrap();
    // An object without finalizers goes at once: the answer is a Success Status
    // naming it, not the object.
    let status = deleted
        .right()
        .expect("a background delete answers with a Status");
    let status = serde_json::to_value(&status).unwrap();
    assert_eq!(status["status"], "Success", "{status}");
    assert_eq!(status["details"]["name"], "hello", "{status}");
    assert_eq!(
        status["details"]["uid"],
        json!(created.metadata.uid),
        "{status}"
    );
    let (code, reason) = api_error(services.get("hello").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    let (code, _) = api_error(
        services
            .delete("hello", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);

    // A namespace that does not exist.
    let elsewhere: Api<Service> = Api::namespaced(client.clone(), "nowhere");
    let error = elsewhere
        .create(&PostParams::default(), &service("x", "i"))
        .await
        .unwrap_err();
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.message, "namespaces \"nowhere\" not found");
        }
        other => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_raw_and_through_the_runtime_watcher() {
    let server = Server::start().await;
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    services
        .create(&PostParams::default(), &service("first", "i"))
        .await
        .unwrap();
    let list = services.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.clone().unwrap();

    // Raw watch from the list's resourceVersion, with bookmarks.
    let mut raw = services
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    services
        .create(&PostParams::default(), &service("second", "i"))
        .await
        .unwrap();
    loop {
        match within("a watch event", raw.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(s) => {
                assert_eq!(s.name(), "second");
                break;
            }
            WatchEvent::Bookmark(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    // Bookmarks arrive on an idle watch (the harness asks for one every 500 ms).
    loop {
        if let WatchEvent::Bookmark(b) =
            within("a bookmark", raw.try_next()).await.unwrap().unwrap()
        {
            assert!(!b.metadata.resource_version.is_empty());
            break;
        }
    }

    // A too old resourceVersion: the watch reports 410 Expired.
    let reopened_dir = {
        drop(raw);
        server.stop().await
    };
    let server = Server::start_in(reopened_dir).await;
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let mut stale = services
        .watch(&WatchParams::default(), "1")
        .await
        .unwrap()
        .boxed();
    match within("the error event", stale.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected a 410 error event, got {other:?}"),
    }

    // kube-runtime's watcher: list, then watch; sees new objects.
    let mut events = watcher(services.clone(), watcher::Config::default()).boxed();
    assert_eq!(initial_names(&mut events).await, ["first", "second"]);
    services
        .create(&PostParams::default(), &service("third", "i"))
        .await
        .unwrap();
    assert_eq!(next_applied(&mut events).await, "third");
    services
        .delete("third", &DeleteParams::default())
        .await
        .unwrap();
    loop {
        if let watcher::Event::Delete(s) = within("watcher delete", events.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            assert_eq!(s.name(), "third");
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_objects_namespaces_and_unauthorized() {
    let server = Server::start().await;
    let client = server.client().await;
    let gvk = GroupVersionKind::gvk("", "v1", "Namespace");
    let namespaces: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["default"]);
    let ns: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
    )
    .unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();

    let rev_gvk = GroupVersionKind::gvk("serving.knative.dev", "v1", "Revision");
    let revisions: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "team", &ApiResource::from_gvk(&rev_gvk));
    let rev: DynamicObject = typed(revision(
        "team",
        "r-00001",
        json!({"labels": {"serving.knative.dev/service": "r"}}),
    ));
    revisions
        .create(&PostParams::default(), &rev)
        .await
        .unwrap();
    let found = revisions
        .list(&ListParams::default().labels("serving.knative.dev/service=r"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);

    // Deleting the namespace deletes what is in it.
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    let all_revisions: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::from_gvk(&rev_gvk));
    assert!(
        all_revisions
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // A wrong token: 401 Unauthorized as a Status.
    let intruder = server.client_with_token(Some("not-the-token")).await;
    let services: Api<Service> = Api::namespaced(intruder, "default");
    let (code, reason) = api_error(services.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (401, "Unauthorized"));
}

/// What `kn service create/update/describe/delete` sends, replayed request by
/// request, with this test playing the controller that makes the service Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kn_service_create_update_describe_delete() {
    let server = Server::start().await;
    let client = server.client().await;
    let base = "/apis/serving.knative.dev/v1/namespaces/default/services";
    let request = |method: &str, uri: &str, body: Option<&Value>| {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
            .unwrap()
    };
    let svc_json = serde_json::to_value(service("hello", "img:1")).unwrap();

    // create: GET (404) -> POST -> GET -> WATCH by name from that resourceVersion.
    let error = client
        .request::<Value>(request("GET", &format!("{base}/hello"), None))
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 404);
    let created: Value = client
        .request(request("POST", base, Some(&svc_json)))
        .await
        .unwrap();
    let got: Value = client
        .request(request("GET", &format!("{base}/hello"), None))
        .await
        .unwrap();
    let rv = got["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let generation = got["metadata"]["generation"].as_i64().unwrap();
    let watch_uri = format!(
        "{base}?fieldSelector=metadata.name%3Dhello&resourceVersion={rv}&timeoutSeconds=600&watch=true"
    );
    let mut events = client
        .request_events::<Value>(request("GET", &watch_uri, None))
        .await
        .unwrap()
        .boxed();
    // The "controller": a not-ready status first, then Ready for this generation.
    let store = server.store.clone();
    let svc_type = okonomi_apiserver::ResourceType::knative_service();
    tokio::spawn(async move {
        for (ready, observed) in [("Unknown", generation), ("True", generation)] {
            store
                .patch_status(
                    &svc_type,
                    "default",
                    "hello",
                    &okonomi_apiserver::Patch::Merge(json!({"status": {
                        "observedGeneration": observed,
                        "conditions": [{"type": "Ready", "status": ready}],
                    }})),
                )
                .await
                .unwrap();
        }
    });
    loop {
        let event = within("kn's watch event", events.try_next())
            .await
            .unwrap()
            .unwrap();
        if let WatchEvent::Modified(s) = event {
            let ready = s["status"]["conditions"][0]["status"] == "True";
            if ready && s["status"]["observedGeneration"] == s["metadata"]["generation"] {
                break;
            }
        }
    }
    drop(events);
    assert_eq!(created["metadata"]["name"], "hello");

    // update: GET + PUT, retried on a conflict caused by a concurrent writer.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut current: Value = client
            .request(request("GET", &format!("{base}/hello"), None))
            .await
            .unwrap();
        if attempts == 1 {
            // Someone else writes between kn's GET and PUT.
            server
                .store
                .patch(
                    &okonomi_apiserver::ResourceType::knative_service(),
                    "default",
                    "hello",
                    &okonomi_apiserver::Patch::Merge(
                        json!({"metadata": {"labels": {"touched": "yes"}}}),
                    ),
                )
                .await
                .unwrap();
        }
        current["spec"]["template"]["spec"]["containers"][0]["image"] = json!("img:2");
        match client
            .request::<Value>(request("PUT", &format!("{base}/hello"), Some(&current)))
            .await
        {
            Ok(updated) => {
                assert_eq!(updated["metadata"]["generation"], 2);
                assert_eq!(updated["metadata"]["labels"]["touched"], "yes");
                break;
            }
            Err(error) => {
                let (code, reason) = api_error(error);
                assert_eq!((code, reason.as_str()), (409, "Conflict"));
                assert!(attempts < 3, "kept conflicting");
            }
        }
    }
    assert_eq!(attempts, 2);

    // describe: the service, then its revisions by the serving.knative.dev/service label.
    let rev_type = okonomi_apiserver::ResourceType::knative_revision();
    for (name, service_label) in [
        ("hello-00001", "hello"),
        ("hello-00002", "hello"),
        ("other-00001", "other"),
    ] {
        server
            .store
            .create(
                &rev_type,
                revision(
                    "default",
                    name,
                    json!({"labels": {"serving.knative.dev/service": service_label}}),
                ),
            )
            .await
            .unwrap();
    }
    let described: Value = client
        .request(request("GET", &format!("{base}/hello"), None))
        .await
        .unwrap();
    assert_eq!(described["metadata"]["generation"], 2);
    let revisions: Value = client
        .request(request(
            "GET",
            "/apis/serving.knative.dev/v1/namespaces/default/revisions?labelSelector=serving.knative.dev%2Fservice%3Dhello",
            None,
        ))
        .await
        .unwrap();
    assert_eq!(revisions["kind"], "RevisionList");
    let names: Vec<&str> = revisions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello-00001", "hello-00002"]);

    // delete: DELETE with propagationPolicy, then GET until 404.
    let status: Value = client
        .request(request(
            "DELETE",
            &format!("{base}/hello"),
            Some(&json!({"propagationPolicy": "Background"})),
        ))
        .await
        .unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Success");
    assert_eq!(status["details"]["name"], "hello");
    let error = client
        .request::<Value>(request("GET", &format!("{base}/hello"), None))
        .await
        .unwrap_err();
    assert_eq!(api_error(error).0, 404);
}

/// The watch-list protocol (`sendInitialEvents=true`): initial objects as ADDED,
/// then a bookmark annotated `k8s.io/initial-events-end`, then changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watcher() {
    let server = Server::start().await;
    let client = server.client().await;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    for name in ["a", "b"] {
        services
            .create(&PostParams::default(), &service(name, "i"))
            .await
            .unwrap();
    }
    let mut events = watcher(
        services.clone(),
        watcher::Config::default().streaming_lists(),
    )
    .boxed();
    assert_eq!(initial_names(&mut events).await, ["a", "b"]);
    services
        .create(&PostParams::default(), &service("c", "i"))
        .await
        .unwrap();
    assert_eq!(next_applied(&mut events).await, "c");
}

/// Rejects images named `bad` and defaults a label, as the engine's Knative
/// admission would.
struct TestAdmission;

impl okonomi_apiserver::Admission for TestAdmission {
    fn admit(
        &self,
        request: &okonomi_apiserver::AdmissionRequest<'_>,
        object: &mut Value,
    ) -> Result<(), okonomi_apiserver::Denial> {
        if request.operation == okonomi_apiserver::Operation::UpdateStatus {
            return Ok(());
        }
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            labels["defaulted"] = json!("yes");
        }
        if object.pointer("/spec/template/spec/containers/0/image") == Some(&json!("bad")) {
            return Err(vec![okonomi_apiserver::StatusCause::invalid(
                "spec.template.spec.containers[0].image",
                "Invalid value: \"bad\": not a usable image reference",
            )]
            .into());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_defaults_and_rejections_reach_clients_as_invalid_with_causes() {
    let server = Server::start_with(
        tempfile::tempdir().unwrap(),
        Some(std::sync::Arc::new(TestAdmission)),
    )
    .await;
    let services: Api<Service> = Api::namespaced(server.client().await, "default");
    let created = services
        .create(&PostParams::default(), &service("good", "img"))
        .await
        .unwrap();
    assert_eq!(created.metadata.labels.unwrap()["defaulted"], "yes");
    let error = services
        .create(&PostParams::default(), &service("broken", "bad"))
        .await
        .unwrap_err();
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422);
            assert_eq!(status.reason, "Invalid");
            assert!(
                status
                    .message
                    .contains("spec.template.spec.containers[0].image"),
                "{}",
                status.message
            );
            let causes = status.details.unwrap().causes;
            assert_eq!(causes[0].field, "spec.template.spec.containers[0].image");
            assert_eq!(causes[0].reason, "FieldValueInvalid");
        }
        other => panic!("{other}"),
    }

    // kubectl prints the message naming the field.
    let manifest = server.manifest(
        "bad.yaml",
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: broken\nspec:\n  template:\n    spec:\n      containers:\n        - image: bad\n",
    );
    let output = server
        .kubectl_command(&harness::kubectl_binary(None))
        .args(["apply", "-f", manifest.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("is invalid: spec.template.spec.containers[0].image"),
        "{stderr}"
    );
}

/// Server-side apply removes what a manager stops applying, keeps what other
/// writers set, and records the manager's fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_removes_fields_the_manager_dropped() {
    let server = Server::start().await;
    let services: Api<Service> = Api::namespaced(server.client().await, "default");
    let params = PatchParams::apply("deployer").force();
    let with_labels = |labels: Value| {
        let mut s = serde_json::to_value(service("app", "img")).unwrap();
        s["metadata"]["labels"] = labels;
        s
    };
    services
        .patch(
            "app",
            &params,
            &Patch::Apply(with_labels(json!({"keep": "1", "drop": "1"}))),
        )
        .await
        .unwrap();
    // Someone else (an Update) adds a label of their own.
    services
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"theirs": "1"}}})),
        )
        .await
        .unwrap();
    let applied = services
        .patch(
            "app",
            &params,
            &Patch::Apply(with_labels(json!({"keep": "2"}))),
        )
        .await
        .unwrap();
    let labels = applied.metadata.labels.unwrap();
    assert_eq!(labels.get("keep").map(String::as_str), Some("2"));
    assert_eq!(labels.get("theirs").map(String::as_str), Some("1"));
    assert!(!labels.contains_key("drop"), "{labels:?}");
    let managed = applied.metadata.managed_fields.unwrap();
    let deployer = managed
        .iter()
        .find(|m| m.manager.as_deref() == Some("deployer"))
        .unwrap();
    assert_eq!(deployer.operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_value(deployer.fields_v1.as_ref().unwrap()).unwrap();
    assert!(
        fields["f:metadata"]["f:labels"].get("f:keep").is_some(),
        "{fields}"
    );
    assert!(
        fields["f:metadata"]["f:labels"].get("f:drop").is_none(),
        "{fields}"
    );
}

/// Two appliers: the same value is shared, a different one is a 409 naming the
/// field and its manager, `force` takes it over; a field only one applier owned
/// goes when it stops applying it, a shared one stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_conflicts_name_fields_and_managers_and_force_takes_over() {
    let server = Server::start().await;
    let services: Api<Service> = Api::namespaced(server.client().await, "default");
    let config = |image: &str, labels: Value| {
        json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "app", "labels": labels},
            "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
        })
    };
    let alice = PatchParams::apply("alice");
    let bob = PatchParams::apply("bob");
    services
        .patch(
            "app",
            &alice,
            &Patch::Apply(config("img:1", json!({"team": "a", "shared": "x"}))),
        )
        .await
        .unwrap();
    // The same values: no conflict, both own them.
    services
        .patch(
            "app",
            &bob,
            &Patch::Apply(config("img:1", json!({"shared": "x"}))),
        )
        .await
        .unwrap();

    let error = services
        .patch(
            "app",
            &bob,
            &Patch::Apply(config("img:2", json!({"shared": "x"}))),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("expected an API error, got {error}")
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.template.spec.containers"
    );
    let causes = status.details.unwrap().causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason, "FieldManagerConflict");
    assert_eq!(causes[0].field, ".spec.template.spec.containers");
    assert_eq!(causes[0].message, "conflict with \"alice\"");

    let forced = services
        .patch(
            "app",
            &bob.clone().force(),
            &Patch::Apply(config("img:2", json!({"shared": "x"}))),
        )
        .await
        .unwrap();
    let value = serde_json::to_value(&forced).unwrap();
    assert_eq!(
        value["spec"]["template"]["spec"]["containers"][0]["image"],
        "img:2"
    );
    let fields_of = |manager: &str| {
        value["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == manager)
            .map(|e| e["fieldsV1"].clone())
            .unwrap()
    };
    assert_eq!(
        fields_of("bob"),
        json!({"f:metadata": {"f:labels": {"f:shared": {}}},
               "f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}})
    );
    assert_eq!(
        fields_of("alice"),
        json!({"f:metadata": {"f:labels": {"f:shared": {}, "f:team": {}}}})
    );

    // Alice stops applying both labels: hers goes, the shared one stays.
    let after = services
        .patch(
            "app",
            &alice,
            &Patch::Apply(json!({
                "apiVersion": "serving.knative.dev/v1", "kind": "Service",
                "metadata": {"name": "app", "annotations": {"owner": "alice"}},
            })),
        )
        .await
        .unwrap();
    let labels = after.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("shared").map(String::as_str), Some("x"));
    assert!(!labels.contains_key("team"), "{labels:?}");
}
