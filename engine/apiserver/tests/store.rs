//! The in-process store: object semantics, watches and persistence.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::StreamExt;
use okonomi_apiserver::{
    Admission, AdmissionRequest, ListOptions, Operation, Patch, ResourceType, StatusCause, Store,
    WatchEvent, WatchOptions,
};
use serde_json::{Value, json};

#[path = "support/objects.rs"]
mod objects;
use objects::{ksvc, owned_by, revision};

/// A watch of `rt` from the store's current resourceVersion: changes only.
fn watch_from_now(store: &Store, rt: &ResourceType) -> okonomi_apiserver::store::WatchStream {
    store
        .watch(
            rt,
            &WatchOptions {
                resource_version: Some(store.resource_version()),
                ..Default::default()
            },
        )
        .unwrap()
}

/// A merge patch of `default/NAME`.
async fn merge(
    store: &Store,
    rt: &ResourceType,
    name: &str,
    patch: Value,
) -> okonomi_apiserver::Result<Value> {
    store.patch(rt, "default", name, &Patch::Merge(patch)).await
}

fn rv(o: &Value) -> u64 {
    o["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn next(stream: &mut okonomi_apiserver::store::WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("watch event within 10s")
        .expect("stream still open")
}

/// The name of the object of the next event, which must be ADDED.
async fn next_added(stream: &mut okonomi_apiserver::store::WatchStream) -> String {
    match next(stream).await {
        WatchEvent::Added(o) => o["metadata"]["name"].as_str().unwrap().to_string(),
        other => panic!("expected ADDED, got {other:?}"),
    }
}

#[tokio::test]
async fn create_get_update_conflict_and_generation() {
    let store = Store::open_in_memory().await.unwrap();
    let svc = ResourceType::knative_service();
    let mut with_status = ksvc("hello", "img:1");
    with_status["status"] = json!({"url": "http://fake"});
    let created = store.create(&svc, with_status).await.unwrap();
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created["metadata"]["uid"].as_str().unwrap().len() >= 32);
    assert!(created["metadata"]["creationTimestamp"].is_string());
    assert!(
        created.get("status").is_none(),
        "status is dropped on create"
    );

    let err = store
        .create(&svc, ksvc("hello", "img:1"))
        .await
        .unwrap_err();
    assert!(err.is_already_exists(), "{err}");
    assert_eq!(err.code(), 409);

    let got = store.get(&svc, "default", "hello").unwrap();
    assert_eq!(got, created);

    // Label-only change: no generation bump.
    let mut relabeled = got.clone();
    relabeled["metadata"]["labels"]["extra"] = json!("yes");
    let relabeled = store.update(&svc, relabeled).await.unwrap();
    assert_eq!(relabeled["metadata"]["generation"], 1);
    assert!(rv(&relabeled) > rv(&created));

    // Stale resourceVersion: conflict.
    let mut stale = created.clone();
    stale["spec"]["template"]["spec"]["containers"][0]["image"] = json!("img:2");
    let err = store.update(&svc, stale).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");

    // Spec change: generation bump; status untouched by update.
    let mut changed = relabeled.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("img:2");
    changed["status"] = json!({"url": "ignored"});
    let changed = store.update(&svc, changed).await.unwrap();
    assert_eq!(changed["metadata"]["generation"], 2);
    assert!(changed.get("status").is_none());

    // Status update: only status changes, generation stays.
    let mut status = changed.clone();
    status["status"] = json!({"observedGeneration": 2, "url": "http://hello.default.localhost"});
    status["spec"] = json!({"ignored": true});
    let with_status = store.update_status(&svc, status).await.unwrap();
    assert_eq!(
        with_status["status"]["url"],
        "http://hello.default.localhost"
    );
    assert_eq!(with_status["spec"], changed["spec"]);
    assert_eq!(with_status["metadata"]["generation"], 2);

    // A no-op update does not bump the resourceVersion.
    let same = store.update(&svc, with_status.clone()).await.unwrap();
    assert_eq!(rv(&same), rv(&with_status));
}

#[tokio::test]
async fn missing_namespace_is_not_found() {
    let store = Store::open_in_memory().await.unwrap();
    let mut obj = ksvc("hello", "img");
    obj["metadata"]["namespace"] = json!("nowhere");
    let err = store
        .create(&ResourceType::knative_service(), obj)
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.to_string(), "namespaces \"nowhere\" not found");
}

#[tokio::test]
async fn list_with_selectors() {
    let store = Store::open_in_memory().await.unwrap();
    let svc = ResourceType::knative_service();
    store
        .create(
            &ResourceType::namespace(),
            json!({"metadata": {"name": "other"}}),
        )
        .await
        .unwrap();
    store.create(&svc, ksvc("a", "i")).await.unwrap();
    store.create(&svc, ksvc("b", "i")).await.unwrap();
    let mut c = ksvc("c", "i");
    c["metadata"]["namespace"] = json!("other");
    store.create(&svc, c).await.unwrap();

    let names = |opts: ListOptions| -> Vec<String> {
        store
            .list(&svc, &opts)
            .unwrap()
            .items
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(ListOptions::default()), ["a", "b", "c"]);
    assert_eq!(names(ListOptions::namespace("default")), ["a", "b"]);
    assert_eq!(
        names(ListOptions::default().labels("app in (a,c)")),
        ["a", "c"]
    );
    assert_eq!(names(ListOptions::default().labels("app!=a")), ["b", "c"]);
    assert_eq!(
        names(ListOptions::default().fields("metadata.name=b")),
        ["b"]
    );
    assert_eq!(
        names(ListOptions::default().fields("metadata.namespace=other")),
        ["c"]
    );
    assert!(
        store
            .list(&svc, &ListOptions::default().labels("app in"))
            .is_err()
    );
}

#[tokio::test]
async fn patches() {
    let store = Store::open_in_memory().await.unwrap();
    let svc = ResourceType::knative_service();
    let created = store.create(&svc, ksvc("p", "img:1")).await.unwrap();

    let merged = merge(
        &store,
        &svc,
        "p",
        json!({"metadata": {"annotations": {"a": "1"}}}),
    )
    .await
    .unwrap();
    assert_eq!(merged["metadata"]["annotations"]["a"], "1");
    assert_eq!(merged["metadata"]["generation"], 1);

    // No-op patch: same resourceVersion.
    let again = merge(
        &store,
        &svc,
        "p",
        json!({"metadata": {"annotations": {"a": "1"}}}),
    )
    .await
    .unwrap();
    assert_eq!(rv(&again), rv(&merged));

    let json_patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "img:2"}
    ]))
    .unwrap();
    let patched = store
        .patch(&svc, "default", "p", &Patch::Json(json_patch))
        .await
        .unwrap();
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"][0]["image"],
        "img:2"
    );
    assert_eq!(patched["metadata"]["generation"], 2);

    // A json patch carrying a stale resourceVersion is a conflict.
    let stale: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/metadata/resourceVersion", "value": created["metadata"]["resourceVersion"]},
        {"op": "add", "path": "/metadata/labels/x", "value": "y"}
    ]))
    .unwrap();
    let err = store
        .patch(&svc, "default", "p", &Patch::Json(stale))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");

    // Apply creates when absent, merges when present.
    let applied = store
        .patch(&svc, "default", "q", &Patch::Apply(ksvc("q", "img:9")))
        .await
        .unwrap();
    assert_eq!(applied["metadata"]["generation"], 1);
    let reapplied = store
        .patch(&svc, "default", "q", &Patch::Apply(ksvc("q", "img:10")))
        .await
        .unwrap();
    assert_eq!(reapplied["metadata"]["generation"], 2);
    assert_eq!(reapplied["metadata"]["uid"], applied["metadata"]["uid"]);

    let status = store
        .patch_status(
            &svc,
            "default",
            "q",
            &Patch::Merge(json!({"status": {"url": "u"}})),
        )
        .await
        .unwrap();
    assert_eq!(status["status"]["url"], "u");

    let err = merge(&store, &svc, "missing", json!({})).await.unwrap_err();
    assert!(err.is_not_found());
}

#[tokio::test]
async fn delete_cascades_by_owner_references() {
    let store = Store::open_in_memory().await.unwrap();
    let svc = ResourceType::knative_service();
    let cfg = ResourceType::knative_configuration();
    let rev = ResourceType::knative_revision();
    let parent = store.create(&svc, ksvc("s", "i")).await.unwrap();
    let config = store
        .create(
            &cfg,
            json!({"metadata": {"name": "s", "ownerReferences": owned_by(&parent, "Service")}, "spec": {}}),
        )
        .await
        .unwrap();
    store
        .create(
            &rev,
            revision(
                "default",
                "s-00001",
                json!({"ownerReferences": owned_by(&config, "Configuration")}),
            ),
        )
        .await
        .unwrap();
    store
        .create(&rev, revision("default", "unrelated", json!({})))
        .await
        .unwrap();
    let mut watch = watch_from_now(&store, &rev);

    let deleted = store.delete(&svc, "default", "s").await.unwrap();
    assert_eq!(deleted["metadata"]["name"], "s");
    assert!(store.get(&cfg, "default", "s").unwrap_err().is_not_found());
    assert!(
        store
            .get(&rev, "default", "s-00001")
            .unwrap_err()
            .is_not_found()
    );
    assert!(store.get(&rev, "default", "unrelated").is_ok());
    match next(&mut watch).await {
        WatchEvent::Deleted(o) => assert_eq!(o["metadata"]["name"], "s-00001"),
        other => panic!("expected DELETED, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_initial_resume_selectors_and_expiry() {
    let store = Store::open_in_memory().await.unwrap();
    let svc = ResourceType::knative_service();
    store.create(&svc, ksvc("a", "i")).await.unwrap();
    let after_a = store.resource_version();

    // From scratch: ADDED for what exists, then changes.
    let mut all = store.watch(&svc, &WatchOptions::default()).unwrap();
    assert_eq!(next_added(&mut all).await, "a");
    // Filtered by name, with initial events and the end-of-initial bookmark.
    let mut only_b = store
        .watch(
            &svc,
            &WatchOptions {
                filter: ListOptions::namespace("default").fields("metadata.name=b"),
                resource_version: Some(after_a),
                send_initial_events: true,
                bookmark_interval: None,
            },
        )
        .unwrap();
    assert_eq!(
        next(&mut only_b).await,
        WatchEvent::Bookmark {
            resource_version: after_a,
            initial_events_end: true
        }
    );

    store.create(&svc, ksvc("b", "i")).await.unwrap();
    assert_eq!(next_added(&mut all).await, "b");
    assert_eq!(next_added(&mut only_b).await, "b");

    // Resume from an older version replays the history.
    let mut resumed = store
        .watch(
            &svc,
            &WatchOptions {
                resource_version: Some(after_a),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(next_added(&mut resumed).await, "b");

    // Leaving a label selection is a DELETED for that watcher.
    let mut by_label = store
        .watch(
            &svc,
            &WatchOptions {
                filter: ListOptions::default().labels("app=b"),
                resource_version: Some(store.resource_version()),
                ..Default::default()
            },
        )
        .unwrap();
    merge(
        &store,
        &svc,
        "b",
        json!({"metadata": {"labels": {"app": "other"}}}),
    )
    .await
    .unwrap();
    assert!(matches!(next(&mut by_label).await, WatchEvent::Deleted(_)));

    // Bookmarks when idle.
    let mut bookmarked = store
        .watch(
            &svc,
            &WatchOptions {
                resource_version: Some(store.resource_version()),
                bookmark_interval: Some(Duration::from_millis(50)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        next(&mut bookmarked).await,
        WatchEvent::Bookmark {
            resource_version: store.resource_version(),
            initial_events_end: false
        }
    );
}

#[tokio::test]
async fn too_old_resource_version_after_reopen_is_expired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.unwrap();
    let svc = ResourceType::knative_service();
    store.create(&svc, ksvc("a", "i")).await.unwrap();
    drop(store);
    let store = Store::open(&path).await.unwrap();
    let err = store
        .watch(
            &svc,
            &WatchOptions {
                resource_version: Some(1),
                ..Default::default()
            },
        )
        .err()
        .expect("expired");
    assert_eq!(err.code(), 410);
}

#[tokio::test]
async fn slow_watcher_gets_expired_not_unbounded_memory() {
    let store = Store::open_in_memory().await.unwrap();
    let ns = ResourceType::namespace();
    let svc = ResourceType::knative_service();
    let mut slow = watch_from_now(&store, &svc);
    // Namespace writes are not for this watcher, but they fill its buffer all the same.
    for i in 0..17_000 {
        store
            .create(&ns, json!({"metadata": {"name": format!("ns-{i}")}}))
            .await
            .unwrap();
    }
    match next(&mut slow).await {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected an Expired error, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(5), slow.next())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn persistence_across_reopen_keeps_objects_and_monotonic_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let svc = ResourceType::knative_service();
    let (a, max_rv) = {
        let store = Store::open(&path).await.unwrap();
        let a = store.create(&svc, ksvc("a", "i")).await.unwrap();
        store.create(&svc, ksvc("b", "i")).await.unwrap();
        store.delete(&svc, "default", "b").await.unwrap();
        (a, store.resource_version())
    };
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.get(&svc, "default", "a").unwrap(), a);
    assert!(store.get(&svc, "default", "b").unwrap_err().is_not_found());
    assert_eq!(store.resource_version(), max_rv);
    let c = store.create(&svc, ksvc("c", "i")).await.unwrap();
    assert!(
        rv(&c) > max_rv,
        "resourceVersion continues above the old maximum"
    );
}

struct RejectBadImage;

impl Admission for RejectBadImage {
    fn admit(
        &self,
        request: &AdmissionRequest<'_>,
        object: &mut Value,
    ) -> Result<(), okonomi_apiserver::Denial> {
        if request.operation == Operation::UpdateStatus {
            return Ok(());
        }
        let labels = object["metadata"]
            .as_object_mut()
            .unwrap()
            .entry("labels")
            .or_insert(json!({}));
        labels["defaulted"] = json!("true");
        if object.pointer("/spec/template/spec/containers/0/image") == Some(&json!("bad")) {
            return Err(vec![StatusCause::invalid(
                "spec.template.spec.containers[0].image",
                "image must not be bad",
            )]
            .into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn admission_defaults_and_rejects_with_causes() {
    let store = Store::open_in_memory()
        .await
        .unwrap()
        .with_admission(std::sync::Arc::new(RejectBadImage));
    let svc = ResourceType::knative_service();
    let ok = store.create(&svc, ksvc("good", "img")).await.unwrap();
    assert_eq!(ok["metadata"]["labels"]["defaulted"], "true");
    let err = store.create(&svc, ksvc("x", "bad")).await.unwrap_err();
    assert_eq!(err.code(), 422);
    let status = err.to_status();
    assert_eq!(status.reason, "Invalid");
    let causes = status.details.unwrap().causes;
    assert_eq!(causes[0].field, "spec.template.spec.containers[0].image");
}

#[tokio::test]
async fn default_namespace_exists_and_cannot_be_deleted() {
    let store = Store::open_in_memory().await.unwrap();
    let ns = ResourceType::namespace();
    let default = store.get(&ns, "", "default").unwrap();
    assert_eq!(default["status"]["phase"], "Active");
    let err = store.delete(&ns, "", "default").await.unwrap_err();
    assert_eq!(err.code(), 403);
    assert!(store.get(&ns, "", "default").is_ok());
}

#[tokio::test]
async fn resumed_watch_with_selector_sees_objects_leave_and_enter() {
    let store = Store::open_in_memory().await.unwrap();
    let svc = ResourceType::knative_service();
    store.create(&svc, ksvc("a", "i")).await.unwrap();
    let before = store.resource_version();
    let relabel = |app: &str| Patch::Merge(json!({"metadata": {"labels": {"app": app}}}));
    store
        .patch(&svc, "default", "a", &relabel("gone"))
        .await
        .unwrap();
    store
        .patch(&svc, "default", "a", &relabel("still-gone"))
        .await
        .unwrap();
    store
        .patch(&svc, "default", "a", &relabel("a"))
        .await
        .unwrap();
    // Replayed from the retained history, as the selector saw it at each step.
    let mut resumed = store
        .watch(
            &svc,
            &WatchOptions {
                filter: ListOptions::default().labels("app=a"),
                resource_version: Some(before),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(matches!(next(&mut resumed).await, WatchEvent::Deleted(_)));
    match next(&mut resumed).await {
        WatchEvent::Added(o) => assert_eq!(o["metadata"]["labels"]["app"], "a"),
        other => panic!("expected ADDED, got {other:?}"),
    }
}

fn names(list: &okonomi_apiserver::ObjectList) -> Vec<&str> {
    list.items
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn pages_show_the_list_as_it_was_at_the_first_page() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let store = Store::open(&path).await.unwrap();
    let svc = ResourceType::knative_service();
    for name in ["a", "b", "c", "d", "e"] {
        store.create(&svc, ksvc(name, "i")).await.unwrap();
    }
    let page = |token: Option<String>| ListOptions {
        limit: Some(2),
        continue_token: token,
        ..ListOptions::namespace("default")
    };
    let first = store.list(&svc, &page(None)).unwrap();
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first.remaining_item_count, Some(3));

    // Changes after the first page do not show in the later ones.
    store.create(&svc, ksvc("cc", "i")).await.unwrap();
    store.delete(&svc, "default", "d").await.unwrap();
    merge(
        &store,
        &svc,
        "e",
        json!({"metadata": {"labels": {"app": "changed"}}}),
    )
    .await
    .unwrap();
    let second = store
        .list(&svc, &page(first.continue_token.clone()))
        .unwrap();
    assert_eq!(names(&second), ["c", "d"]);
    assert_eq!(second.resource_version, first.resource_version);
    assert_eq!(second.remaining_item_count, Some(1));
    let third = store
        .list(&svc, &page(second.continue_token.clone()))
        .unwrap();
    assert_eq!(names(&third), ["e"]);
    assert_eq!(third.items[0]["metadata"]["labels"]["app"], "e");
    assert!(third.continue_token.is_none() && third.remaining_item_count.is_none());

    // A fresh list sees the changes; with a selector the count is not given.
    let fresh = store.list(&svc, &page(None).labels("app!=zz")).unwrap();
    assert_eq!(names(&fresh), ["a", "b"]);
    assert!(fresh.continue_token.is_some() && fresh.remaining_item_count.is_none());

    let err = store
        .list(&svc, &page(Some("not a token".into())))
        .unwrap_err();
    assert_eq!(err.code(), 400);
    // After a restart the old versions are gone: 410 Expired.
    drop(store);
    let store = Store::open(&path).await.unwrap();
    let err = store.list(&svc, &page(second.continue_token)).unwrap_err();
    assert_eq!(
        (err.code(), err.to_status().reason.as_str()),
        (410, "Expired")
    );
}

#[tokio::test]
async fn finalizers_hold_a_deletion_until_an_update_removes_them() {
    let store = Store::open_in_memory().await.unwrap();
    let svc = ResourceType::knative_service();
    let cfg = ResourceType::knative_configuration();
    let mut held = ksvc("s", "i");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let parent = store.create(&svc, held).await.unwrap();
    store
        .create(
            &cfg,
            json!({"metadata": {"name": "s", "ownerReferences": owned_by(&parent, "Service")}, "spec": {}}),
        )
        .await
        .unwrap();
    let mut watch = watch_from_now(&store, &svc);

    let marked = store.delete(&svc, "default", "s").await.unwrap();
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked:#}"
    );
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 0);
    assert_eq!(store.get(&svc, "default", "s").unwrap(), marked);
    assert!(
        store.get(&cfg, "default", "s").is_ok(),
        "children wait for the owner"
    );
    assert!(matches!(next(&mut watch).await, WatchEvent::Modified(_)));
    // Deleting again changes nothing; new finalizers are refused.
    let again = store.delete(&svc, "default", "s").await.unwrap();
    assert_eq!(rv(&again), rv(&marked));
    let err = merge(
        &store,
        &svc,
        "s",
        json!({"metadata": {"finalizers": ["example.com/hold", "more"]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), 422, "{err}");

    // Other updates keep the deletion mark; emptying the finalizers deletes.
    let relabeled = merge(
        &store,
        &svc,
        "s",
        json!({"metadata": {"labels": {"x": "y"}}}),
    )
    .await
    .unwrap();
    assert_eq!(
        relabeled["metadata"]["deletionTimestamp"],
        marked["metadata"]["deletionTimestamp"]
    );
    assert!(matches!(next(&mut watch).await, WatchEvent::Modified(_)));
    merge(&store, &svc, "s", json!({"metadata": {"finalizers": null}}))
        .await
        .unwrap();
    match next(&mut watch).await {
        WatchEvent::Modified(o) => assert!(o["metadata"].get("finalizers").is_none()),
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    assert!(matches!(next(&mut watch).await, WatchEvent::Deleted(_)));
    assert!(store.get(&svc, "default", "s").unwrap_err().is_not_found());
    assert!(store.get(&cfg, "default", "s").unwrap_err().is_not_found());
}

#[tokio::test]
async fn a_namespace_terminates_until_its_last_finalized_object_goes() {
    let store = Store::open_in_memory().await.unwrap();
    let ns = ResourceType::namespace();
    let rev = ResourceType::knative_revision();
    store
        .create(&ns, json!({"metadata": {"name": "team"}}))
        .await
        .unwrap();
    for (name, finalizers) in [("held", json!(["x/y"])), ("free", json!([]))] {
        store
            .create(
                &rev,
                revision("team", name, json!({"finalizers": finalizers})),
            )
            .await
            .unwrap();
    }
    let terminating = store.delete(&ns, "", "team").await.unwrap();
    assert_eq!(terminating["status"]["phase"], "Terminating");
    assert!(store.get(&rev, "team", "free").unwrap_err().is_not_found());
    assert!(store.get(&rev, "team", "held").unwrap()["metadata"]["deletionTimestamp"].is_string());
    let err = store
        .create(&rev, revision("team", "new", json!({})))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 403, "{err}");
    store
        .patch(
            &rev,
            "team",
            "held",
            &Patch::Merge(json!({"metadata": {"finalizers": []}})),
        )
        .await
        .unwrap();
    assert!(store.get(&rev, "team", "held").unwrap_err().is_not_found());
    assert!(store.get(&ns, "", "team").unwrap_err().is_not_found());
}
