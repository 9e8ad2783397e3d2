//! Every instance is a Pod: a revision's Deployment, ReplicaSet,
//! PodAutoscaler and Pods as objects in the store, named, labelled and
//! owned as Knative's are; a Pod a user deletes is replaced, a Deployment
//! scaled by hand is put back, a crash shows as a restart with its exit
//! code, and a scale to zero takes the Pods away; each step leaves Events.
//! Read through the Store, and `kubectl get pods -w` through the real
//! kubectl (1.27, 1.28 and 1.33) against the engine's API.

#![allow(clippy::unwrap_used)]

use okonomi_apiserver::{ListOptions, ResourceType};
use okonomi_engine::Engine;
use serde_json::{Value, json};

mod support;
use support::{eventually, get_body, quick_idle_engine as engine, wait_ready};

async fn deploy(engine: &Engine, name: &str, window: &str) {
    let service = json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"template": {
            "metadata": {"annotations": {"autoscaling.knative.dev/window": window}},
            "spec": {"containers": [{
                "image": "okonomi://functions/hello",
                "readinessProbe": {"httpGet": {"path": "/health/readiness"}},
            }]}
        }}
    });
    engine
        .store()
        .create(&ResourceType::knative_service(), service)
        .await
        .unwrap();
}

fn pods(engine: &Engine, revision: &str) -> Vec<Value> {
    engine
        .store()
        .list(
            &ResourceType::pod(),
            &ListOptions::namespace("default")
                .labels(format!("serving.knative.dev/revision={revision}")),
        )
        .unwrap()
        .items
}

fn get(engine: &Engine, rt: ResourceType, name: &str) -> Option<Value> {
    engine.store().get(&rt, "default", name).ok()
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn is_ready(pod: &Value) -> bool {
    condition(pod, "Ready").is_some_and(|c| c["status"] == "True")
        && pod["metadata"]["deletionTimestamp"].is_null()
}

fn events_about(engine: &Engine, kind: &str, name: &str) -> Vec<Value> {
    engine
        .store()
        .list(&ResourceType::event(), &ListOptions::namespace("default"))
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
        .collect()
}

fn has_event(engine: &Engine, kind: &str, name: &str, reason: &str) -> Option<Value> {
    events_about(engine, kind, name)
        .into_iter()
        .find(|e| e["reason"] == reason)
}

fn owner(object: &Value) -> &Value {
    &object["metadata"]["ownerReferences"][0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_runs_as_a_deployment_of_pods_with_its_autoscaler() {
    let state = tempfile::tempdir().unwrap();
    let engine = engine(state.path()).await;
    deploy(&engine, "hello", "60s").await;
    wait_ready(&engine, "hello").await;
    let revision = get(&engine, ResourceType::knative_revision(), "hello-00001").unwrap();
    let revision_uid = revision["metadata"]["uid"].as_str().unwrap().to_string();
    // The image as resolved, as Knative reports it (kn pins the next
    // revision to it).
    let resolved = &revision["status"]["containerStatuses"][0];
    assert_eq!(resolved["name"], "user-container", "{revision}");
    assert!(
        resolved["imageDigest"]
            .as_str()
            .is_some_and(|d| d.starts_with("okonomi://functions/hello@sha256:")),
        "{revision}"
    );

    // Deployment REVISION-deployment, owned by the Revision.
    let deployment = eventually("the Deployment to count its ready Pod", || {
        get(
            &engine,
            ResourceType::deployment(),
            "hello-00001-deployment",
        )
        .filter(|d| d["status"]["readyReplicas"] == 1)
    })
    .await;
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["status"]["availableReplicas"], 1);
    assert_eq!(owner(&deployment)["kind"], "Revision");
    assert_eq!(owner(&deployment)["uid"], revision_uid.as_str());
    let labels = &deployment["metadata"]["labels"];
    assert_eq!(labels["serving.knative.dev/service"], "hello");
    assert_eq!(labels["serving.knative.dev/configuration"], "hello");
    assert_eq!(labels["serving.knative.dev/revision"], "hello-00001");
    assert_eq!(
        labels["serving.knative.dev/revisionUID"],
        revision_uid.as_str()
    );
    assert_eq!(labels["app"], "hello-00001");

    // Its ReplicaSet, owned by the Deployment.
    let replica_sets = engine
        .store()
        .list(
            &ResourceType::replica_set(),
            &ListOptions::namespace("default").labels("serving.knative.dev/revision=hello-00001"),
        )
        .unwrap()
        .items;
    assert_eq!(replica_sets.len(), 1, "{replica_sets:#?}");
    let replica_set = &replica_sets[0];
    let rs_name = replica_set["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(rs_name.starts_with("hello-00001-deployment-"), "{rs_name}");
    assert_eq!(owner(replica_set)["kind"], "Deployment");
    assert_eq!(owner(replica_set)["uid"], deployment["metadata"]["uid"]);

    // One Pod, REVISION-deployment-HASH-XXXXX, owned by the ReplicaSet.
    let pod = eventually("one ready Pod", || {
        let pods = pods(&engine, "hello-00001");
        (pods.len() == 1 && is_ready(&pods[0])).then(|| pods[0].clone())
    })
    .await;
    let pod_name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let suffix = pod_name.strip_prefix(&format!("{rs_name}-")).unwrap();
    assert_eq!(suffix.len(), 5, "{pod_name}");
    assert_eq!(owner(&pod)["kind"], "ReplicaSet");
    assert_eq!(owner(&pod)["uid"], replica_set["metadata"]["uid"]);
    assert_eq!(
        pod["metadata"]["labels"]["serving.knative.dev/service"],
        "hello"
    );
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(pod["status"]["podIP"], "127.0.0.1");
    assert_eq!(pod["status"]["hostIP"], "127.0.0.1");
    assert!(pod["status"]["startTime"].is_string());
    for type_ in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert_eq!(condition(&pod, type_).unwrap()["status"], "True", "{type_}");
    }
    let container = &pod["status"]["containerStatuses"][0];
    assert_eq!(container["name"], "user-container");
    assert_eq!(container["ready"], true);
    assert_eq!(container["restartCount"], 0);
    assert!(container["state"]["running"]["startedAt"].is_string());
    assert!(
        container["imageID"].as_str().unwrap().contains("@sha256:"),
        "{container}"
    );

    // The PodAutoscaler shows the scale.
    let pa = eventually("the PodAutoscaler to be Ready", || {
        get(&engine, ResourceType::pod_autoscaler(), "hello-00001")
            .filter(|pa| condition(pa, "Ready").is_some_and(|c| c["status"] == "True"))
    })
    .await;
    assert_eq!(pa["status"]["desiredScale"], 1);
    assert_eq!(pa["status"]["actualScale"], 1);
    assert_eq!(
        pa["spec"]["scaleTargetRef"]["name"],
        "hello-00001-deployment"
    );

    // Events of the Pod's start and the revision's.
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        eventually(&format!("a {reason} event"), || {
            has_event(&engine, "Pod", &pod_name, reason)
        })
        .await;
    }
    let started = has_event(&engine, "Pod", &pod_name, "Started").unwrap();
    assert_eq!(started["type"], "Normal");
    assert_eq!(started["count"], 1);
    assert_eq!(started["involvedObject"]["uid"], pod["metadata"]["uid"]);
    assert_eq!(started["source"]["component"], "kubelet");
    assert!(started["firstTimestamp"].is_string() && started["lastTimestamp"].is_string());
    eventually("RevisionReady", || {
        has_event(&engine, "Revision", "hello-00001", "RevisionReady")
    })
    .await;
    eventually("Built", || {
        has_event(&engine, "Revision", "hello-00001", "Built")
    })
    .await;
    eventually("Created Revision", || {
        has_event(&engine, "Configuration", "hello", "Created")
    })
    .await;

    // A Deployment scaled by hand is put back.
    let mut scaled = get(
        &engine,
        ResourceType::deployment(),
        "hello-00001-deployment",
    )
    .unwrap();
    scaled["spec"]["replicas"] = json!(5);
    engine
        .store()
        .update(&ResourceType::deployment(), scaled)
        .await
        .unwrap();
    eventually("the Deployment put back at 1", || {
        get(
            &engine,
            ResourceType::deployment(),
            "hello-00001-deployment",
        )
        .filter(|d| d["spec"]["replicas"] == 1)
    })
    .await;
    assert_eq!(pods(&engine, "hello-00001").len(), 1);

    // A Pod a user deletes is replaced by a new one.
    engine
        .store()
        .delete(&ResourceType::pod(), "default", &pod_name)
        .await
        .unwrap();
    let replacement = eventually("a new ready Pod", || {
        let pods = pods(&engine, "hello-00001");
        (pods.len() == 1 && is_ready(&pods[0]) && pods[0]["metadata"]["name"] != pod_name.as_str())
            .then(|| pods[0].clone())
    })
    .await;
    assert!(get(&engine, ResourceType::pod(), &pod_name).is_none());
    eventually("a Killing event", || {
        has_event(&engine, "Pod", &pod_name, "Killing")
    })
    .await;
    let (status, body) = get_body(&engine, "hello.default.localhost").await;
    assert_eq!(status, 200, "{body}");

    // A crash: the container restarts, its last run's exit code kept.
    let replacement_name = replacement["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let pid = engine.instances("default", "hello-00001")[0].pid.unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let restarted = eventually("the Pod restarted and ready", || {
        get(&engine, ResourceType::pod(), &replacement_name)
            .filter(|p| p["status"]["containerStatuses"][0]["restartCount"] == 1 && is_ready(p))
    })
    .await;
    let last = &restarted["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{last}");
    assert_eq!(last["reason"], "Error");
    let back_off = eventually("a BackOff event", || {
        has_event(&engine, "Pod", &replacement_name, "BackOff")
    })
    .await;
    assert_eq!(back_off["type"], "Warning");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_revision_scales_its_pods_to_zero_and_back() {
    let state = tempfile::tempdir().unwrap();
    let engine = engine(state.path()).await;
    deploy(&engine, "idle", "6s").await;
    wait_ready(&engine, "idle").await;
    let first = eventually("a ready Pod", || {
        let pods = pods(&engine, "idle-00001");
        (pods.len() == 1 && is_ready(&pods[0])).then(|| pods[0].clone())
    })
    .await;
    // No traffic: the Pods go, and the Deployment and autoscaler say zero.
    eventually("no Pod left", || {
        pods(&engine, "idle-00001").is_empty().then_some(())
    })
    .await;
    let deployment = eventually("the Deployment at zero", || {
        get(&engine, ResourceType::deployment(), "idle-00001-deployment")
            .filter(|d| d["spec"]["replicas"] == 0 && d["status"]["readyReplicas"] == 0)
    })
    .await;
    assert_eq!(deployment["status"]["replicas"], 0);
    let pa = eventually("the PodAutoscaler at zero", || {
        get(&engine, ResourceType::pod_autoscaler(), "idle-00001")
            .filter(|pa| pa["status"]["desiredScale"] == 0 && pa["status"]["actualScale"] == 0)
    })
    .await;
    assert_eq!(condition(&pa, "Active").unwrap()["reason"], "NoTraffic");
    let to_zero = eventually("ScaledToZero", || {
        has_event(&engine, "Revision", "idle-00001", "ScaledToZero")
    })
    .await;
    assert!(
        to_zero["message"]
            .as_str()
            .unwrap()
            .contains("grace period"),
        "{to_zero}"
    );
    let first_name = first["metadata"]["name"].as_str().unwrap();
    eventually("Killing", || {
        has_event(&engine, "Pod", first_name, "Killing")
    })
    .await;

    // A request brings a new Pod.
    let (status, body) = get_body(&engine, "idle.default.localhost").await;
    assert_eq!(status, 200, "{body}");
    eventually("a new ready Pod", || {
        let pods = pods(&engine, "idle-00001");
        (pods.len() == 1 && is_ready(&pods[0])).then_some(())
    })
    .await;
    let from_zero = eventually("ScaledFromZero", || {
        events_about(&engine, "Revision", "idle-00001")
            .into_iter()
            .find(|e| {
                e["reason"] == "ScaledFromZero"
                    && e["message"].as_str().unwrap().contains("a request arrived")
            })
    })
    .await;
    assert_eq!(from_zero["type"], "Normal");
    engine.shutdown().await;
}
