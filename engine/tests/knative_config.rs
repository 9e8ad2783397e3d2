//! Knative's configuration, Knative's way: the engine keeps the `config-*`
//! ConfigMaps in `knative-serving` as a Knative install ships them, refuses
//! a write Knative's webhook would refuse (with its message, the running
//! settings kept), and applies a change at once, without a restart:
//! `config-features` to admission, `config-defaults` to defaulting,
//! `config-autoscaler` to revisions already running, `tag-header-based-routing`
//! to the router. `--config DIR` and the `--autoscaler` file seed them at
//! start.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use okonomi_apiserver::{ListOptions, Patch, ResourceType};
use okonomi_engine::{Engine, EngineConfig};
use serde_json::{Value, json};

mod support;
use support::{eventually, get_path, get_with, quick_idle_engine, wait_ready};

const NS: &str = "knative-serving";

fn config_map(engine: &Engine, name: &str) -> Value {
    engine
        .store()
        .get(&ResourceType::config_map(), NS, name)
        .unwrap()
}

async fn set(engine: &Engine, name: &str, data: Value) -> Result<Value, String> {
    engine
        .store()
        .patch(
            &ResourceType::config_map(),
            NS,
            name,
            &Patch::Merge(json!({"data": data})),
        )
        .await
        .map_err(|e| e.to_string())
}

fn downward_service(name: &str) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"template": {"spec": {"containers": [{
            "image": "okonomi://functions/runtimeinfo",
            "env": [{"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        }]}}},
    })
}

fn engine_config(state: &Path) -> EngineConfig {
    EngineConfig {
        state_dir: state.to_path_buf(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        source_root: okonomi_tests::tools::workspace_root(),
        build_profile: "dev".into(),
        ready_timeout: Duration::from_secs(20),
        ..EngineConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_maps_are_there_and_a_bad_write_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let engine = quick_idle_engine(state.path()).await;
    let names: Vec<String> = engine
        .store()
        .list(&ResourceType::config_map(), &ListOptions::namespace(NS))
        .unwrap()
        .items
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names.len(),
        3,
        "only the ConfigMaps the engine acts on: {names:?}"
    );
    for name in ["config-autoscaler", "config-defaults", "config-features"] {
        assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
        let cm = config_map(&engine, name);
        assert!(
            cm["data"]["_example"]
                .as_str()
                .unwrap()
                .contains("EXAMPLE CONFIGURATION"),
            "{name}"
        );
        assert!(
            cm["metadata"]["annotations"]["knative.dev/example-checksum"].is_string(),
            "{name}"
        );
    }
    // The --autoscaler file went into config-autoscaler.
    assert_eq!(
        config_map(&engine, "config-autoscaler")["data"]["scale-to-zero-grace-period"],
        "1s"
    );

    let before = config_map(&engine, "config-defaults");
    let refused = set(
        &engine,
        "config-defaults",
        json!({"revision-timeout-seconds": "soon"}),
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains(r#"validation failed: failed to parse "revision-timeout-seconds""#),
        "{refused}"
    );
    let refused = set(
        &engine,
        "config-defaults",
        json!({"revision-timeout-seconds": "900"}),
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains(
            "revision-timeout-seconds (900) cannot be greater than max-revision-timeout-seconds (600)"
        ),
        "{refused}"
    );
    let refused = set(
        &engine,
        "config-defaults",
        json!({"_example": "revision-timeout-seconds: \"30\""}),
    )
    .await
    .unwrap_err();
    assert!(
        refused.contains(r#"the update modifies a key in "_example""#),
        "{refused}"
    );
    let refused = set(
        &engine,
        "config-autoscaler",
        json!({"stable-window": "a while"}),
    )
    .await
    .unwrap_err();
    assert!(refused.contains("stable-window"), "{refused}");
    assert_eq!(
        config_map(&engine, "config-defaults")["data"],
        before["data"],
        "a refused write changes nothing"
    );
    engine.shutdown().await;
}

/// A write Knative refuses is refused as a cluster refuses it: by
/// Knative's webhook, 400 BadRequest with `admission webhook "…" denied the
/// request: validation failed: MESSAGE: FIELD` (what kubectl and kn show),
/// not the API server's own 422 Invalid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_is_a_webhook_denial_as_on_a_cluster() {
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::start(engine_config(state.path())).await.unwrap();
    let mut service = downward_service("too-concurrent");
    service["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("env");
    service["spec"]["template"]["spec"]["containerConcurrency"] = json!(5000);
    let error = engine
        .store()
        .create(&ResourceType::knative_service(), service)
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.reason()),
        (400, "BadRequest"),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "admission webhook \"validation.webhook.serving.knative.dev\" denied the request: \
         validation failed: expected 0 <= 5000 <= 1000: spec.template.spec.containerConcurrency"
    );
    let error = engine
        .store()
        .patch(
            &ResourceType::config_map(),
            NS,
            "config-defaults",
            &Patch::Merge(json!({"data": {"revision-timeout-seconds": "soon"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.reason()),
        (400, "BadRequest"),
        "{error}"
    );
    assert!(
        error.to_string().starts_with(
            "admission webhook \"config.webhook.serving.knative.dev\" denied the request: validation failed: "
        ),
        "{error}"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_and_defaults_apply_at_the_next_write() {
    let state = tempfile::tempdir().unwrap();
    let engine = quick_idle_engine(state.path()).await;
    let services = ResourceType::knative_service();

    // Knative's default: the downward API in env is refused.
    let refused = engine
        .store()
        .create(&services, downward_service("downward"))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("kubernetes.podspec-fieldref"), "{refused}");

    set(
        &engine,
        "config-defaults",
        json!({"revision-timeout-seconds": "120"}),
    )
    .await
    .unwrap();
    set(
        &engine,
        "config-features",
        json!({"kubernetes.podspec-fieldref": "enabled"}),
    )
    .await
    .unwrap();
    // The follower applies a change within a moment: the write is retried
    // until admission has the new settings (both, as the follower reads
    // every ConfigMap on each change).
    let mut created = None;
    for _ in 0..100 {
        match engine
            .store()
            .create(&services, downward_service("downward"))
            .await
        {
            Ok(service) => {
                created = Some(service);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let service = created.expect("config-features: enabled lets fieldRef through");
    assert_eq!(
        service["spec"]["template"]["spec"]["timeoutSeconds"], 120,
        "config-defaults gave the default timeout"
    );
    wait_ready(&engine, "downward").await;
    let (status, body) = get_path(&engine, "downward.default.localhost", "/").await;
    assert_eq!(status, 200, "{body}");
    let info: Value = serde_json::from_str(&body).unwrap();
    let pod = info["host"]["envs"]["MY_POD"].as_str().unwrap();
    assert!(pod.starts_with("downward-00001-deployment-"), "{pod}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_autoscaler_config_reaches_a_running_revision() {
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::start(engine_config(state.path())).await.unwrap();
    engine
        .store()
        .create(
            &ResourceType::knative_service(),
            json!({
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "metadata": {"name": "idle", "namespace": "default"},
                "spec": {"template": {"spec": {"containers": [{"image": "okonomi://functions/hello"}]}}},
            }),
        )
        .await
        .unwrap();
    wait_ready(&engine, "idle").await;
    // With Knative's defaults it would stay up for a 60 s window and a 30 s
    // grace; the new settings reach the revision that already runs.
    set(
        &engine,
        "config-autoscaler",
        json!({"stable-window": "6s", "scale-to-zero-grace-period": "1s"}),
    )
    .await
    .unwrap();
    let event = eventually("the revision to scale to zero", || {
        engine
            .store()
            .list(&ResourceType::event(), &ListOptions::namespace("default"))
            .ok()?
            .items
            .into_iter()
            .find(|e| e["reason"] == "ScaledToZero")
    })
    .await;
    let message = event["message"].as_str().unwrap();
    assert!(
        message.contains("stable window (6s)") && message.contains("grace period (1s)"),
        "{message}"
    );
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_dir_seeds_the_config_maps_and_a_bad_one_stops_the_start() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("features.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-features, namespace: knative-serving}\n\
         data:\n  kubernetes.podspec-fieldref: enabled\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-defaults, namespace: knative-serving}\n\
         data:\n  container-concurrency: \"4\"\n",
    )
    .unwrap();
    let engine = Engine::start(EngineConfig {
        knative_config_dir: Some(dir.clone()),
        ..engine_config(&state.path().join("state"))
    })
    .await
    .unwrap();
    let service = engine
        .store()
        .create(&ResourceType::knative_service(), downward_service("seeded"))
        .await
        .unwrap();
    assert_eq!(
        service["spec"]["template"]["spec"]["containerConcurrency"],
        4
    );
    engine.shutdown().await;

    std::fs::write(
        dir.join("features.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config-defaults, namespace: knative-serving}\n\
         data:\n  container-concurrency: \"-1\"\n",
    )
    .unwrap();
    let started = Engine::start(EngineConfig {
        knative_config_dir: Some(dir),
        ..engine_config(&state.path().join("state"))
    })
    .await;
    let Err(error) = started else {
        panic!("a refused setting stops the start");
    };
    let error = error.to_string();
    assert!(
        error.contains("expected 0 <= -1 <= 1000: container-concurrency"),
        "{error}"
    );
}

/// Knative's TestTagHeaderBasedRouting: with the flag on, the main URL and a
/// `Knative-Serving-Tag: rev1` header reach the tagged revision; a tag the
/// route does not have, or none, takes the default traffic. With the flag
/// off (Knative's default) the header does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tag_header_picks_a_tagged_revision_when_the_flag_is_on() {
    let state = tempfile::tempdir().unwrap();
    let engine = quick_idle_engine(state.path()).await;
    let services = ResourceType::knative_service();
    let service = |greeting: &str, traffic: Value| {
        json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "tagged", "namespace": "default"},
            "spec": {
                "template": {"spec": {"containers": [{
                    "image": "okonomi://functions/runtimeinfo",
                    "env": [{"name": "GREETING", "value": greeting}],
                }]}},
                "traffic": traffic,
            },
        })
    };
    engine
        .store()
        .create(
            &services,
            service("one", json!([{"latestRevision": true, "percent": 100}])),
        )
        .await
        .unwrap();
    wait_ready(&engine, "tagged").await;
    let mut second = service(
        "two",
        json!([
            {"tag": "rev1", "revisionName": "tagged-00001", "percent": 0},
            {"latestRevision": true, "percent": 100},
        ]),
    );
    let stored = engine.store().get(&services, "default", "tagged").unwrap();
    second["metadata"] = stored["metadata"].clone();
    engine.store().update(&services, second).await.unwrap();
    wait_ready(&engine, "tagged").await;

    let host = "tagged.default.localhost";
    let revision_for = |tag: Option<&'static str>| {
        let engine = &engine;
        async move {
            let headers: Vec<(&str, &str)> = tag
                .map(|t| ("Knative-Serving-Tag", t))
                .into_iter()
                .collect();
            let (status, body) = get_with(engine, host, "/", &headers).await;
            assert_eq!(status, 200, "{body}");
            let info: Value = serde_json::from_str(&body).unwrap();
            info["host"]["envs"]["K_REVISION"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(
        revision_for(Some("rev1")).await,
        "tagged-00002",
        "flag off: header ignored"
    );

    set(
        &engine,
        "config-features",
        json!({"tag-header-based-routing": "enabled"}),
    )
    .await
    .unwrap();
    let mut picked = String::new();
    for _ in 0..100 {
        picked = revision_for(Some("rev1")).await;
        if picked == "tagged-00001" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(picked, "tagged-00001", "flag on: the tag's revision");
    assert_eq!(revision_for(Some("rev-wrong")).await, "tagged-00002");
    assert_eq!(revision_for(None).await, "tagged-00002");
    engine.shutdown().await;
}
