//! A function's configuration comes from ConfigMaps and Secrets as on
//! Kubernetes: env `valueFrom` and `envFrom`, the downward API, and
//! configMap, secret and projected volumes mounted read-only at paths this
//! machine does not have. A missing Secret keeps the revision Ready=False
//! with Kubernetes' reason naming it, and writing it heals the revision
//! without a new one. A changed Secret reaches the mounted file. The
//! Secret's value appears in no Event, status or log file of the engine.
//!
//! Runs `functions/runtimeinfo` (Knative's runtime test image, ported) on
//! the process runtime, as root, which its mount namespace needs.

#![allow(clippy::unwrap_used)]

use okonomi_apiserver::{ListOptions, ResourceType};
use okonomi_engine::Engine;
use serde_json::{Value, json};

mod support;
use support::{eventually, get_path, quick_idle_engine, wait_ready};

const PASSWORD: &str = "hunter2-c0nf1g-5ecret";
const ROTATED: &str = "swordfish-r0tated-5ecret";

async fn create(engine: &Engine, rt: ResourceType, object: Value) {
    engine.store().create(&rt, object).await.unwrap();
}

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"template": {"spec": {
            "containers": [{
                "image": "okonomi://functions/runtimeinfo",
                "env": [
                    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                    {"name": "GREETING", "value": "running in $(MODE) mode"},
                    {"name": "NOT_THERE", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}},
                ],
                "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
                "volumeMounts": [
                    {"name": "secret", "mountPath": "/okonomi-test/secret", "readOnly": true},
                    {"name": "settings", "mountPath": "/etc/okonomi-test-settings"},
                    {"name": "both", "mountPath": "/okonomi-test/projected"},
                ],
            }],
            "volumes": [
                {"name": "secret", "secret": {"secretName": "db"}},
                {"name": "settings", "configMap": {"name": "settings", "items": [{"key": "mode", "path": "conf/mode"}]}},
                {"name": "both", "projected": {"sources": [
                    {"configMap": {"name": "settings", "items": [{"key": "mode", "path": "mode"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
                ]}},
            ],
        }}}
    })
}

fn revision_ready(engine: &Engine, name: &str) -> Option<Value> {
    let revision = engine
        .store()
        .get(&ResourceType::knative_revision(), "default", name)
        .ok()?;
    revision["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

/// Every text the engine keeps that a user or operator reads: Events,
/// statuses of every object, and the log files under the state dir.
fn everything_said(engine: &Engine, state: &std::path::Path) -> String {
    let mut said = String::new();
    for rt in [
        ResourceType::event(),
        ResourceType::pod(),
        ResourceType::knative_revision(),
        ResourceType::knative_service(),
        ResourceType::deployment(),
        ResourceType::pod_autoscaler(),
    ] {
        let list = engine.store().list(&rt, &ListOptions::default()).unwrap();
        for item in list.items {
            said.push_str(&item["status"].to_string());
            said.push_str(&item["message"].to_string());
            said.push_str(&item["note"].to_string());
        }
    }
    for entry in walk(&state.join("logs")) {
        said.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
    }
    said
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_takes_its_env_and_files_from_config_maps_and_secrets() {
    let state = tempfile::tempdir().unwrap();
    let engine = quick_idle_engine(state.path()).await;
    create(
        &engine,
        ResourceType::config_map(),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "settings", "namespace": "default"},
               "data": {"mode": "fast", "LEVEL": "3"}}),
    )
    .await;
    create(
        &engine,
        ResourceType::knative_service(),
        service("configured"),
    )
    .await;

    // The Secret does not exist yet: the revision says so, as Kubernetes.
    let condition = eventually("the revision to fail on the missing Secret", || {
        revision_ready(&engine, "configured-00001").filter(|c| c["status"] == "False")
    })
    .await;
    assert_eq!(
        condition["reason"], "CreateContainerConfigError",
        "{condition}"
    );
    assert_eq!(
        condition["message"], r#"secret "db" not found"#,
        "{condition}"
    );

    // Writing it heals the same revision.
    create(
        &engine,
        ResourceType::secret(),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "db", "namespace": "default"},
               "stringData": {"password": PASSWORD}}),
    )
    .await;
    wait_ready(&engine, "configured").await;
    let revisions = engine
        .store()
        .list(
            &ResourceType::knative_revision(),
            &ListOptions::namespace("default"),
        )
        .unwrap();
    assert_eq!(revisions.items.len(), 1, "healing makes no new revision");

    let host = "configured.default.localhost";
    let (status, body) = get_path(&engine, host, "/").await;
    assert_eq!(status, 200, "{body}");
    let info: Value = serde_json::from_str(&body).unwrap();
    let envs = &info["host"]["envs"];
    assert_eq!(envs["DB_PASSWORD"], PASSWORD);
    assert_eq!(envs["MODE"], "fast");
    assert_eq!(envs["GREETING"], "running in fast mode");
    assert_eq!(envs["CFG_LEVEL"], "3");
    assert_eq!(envs["CFG_mode"], "fast");
    assert!(envs.get("NOT_THERE").is_none(), "{envs}");
    assert_eq!(envs["K_REVISION"], "configured-00001");

    let file = |path: &str| {
        let path = path.replace('/', "%2F");
        let engine = &engine;
        async move { get_path(engine, host, &format!("/file?path={path}")).await }
    };
    assert_eq!(
        file("/okonomi-test/secret/password").await,
        (200, PASSWORD.to_string())
    );
    assert_eq!(
        file("/etc/okonomi-test-settings/conf/mode").await,
        (200, "fast".to_string())
    );
    assert_eq!(
        file("/okonomi-test/projected/mode").await,
        (200, "fast".to_string())
    );
    assert_eq!(
        file("/okonomi-test/projected/namespace").await,
        (200, "default".to_string())
    );
    // The rest of the machine is still there, and the host is untouched.
    assert_eq!(file("/etc/hostname").await.0, 200);
    assert!(!std::path::Path::new("/okonomi-test").exists());
    assert!(!std::path::Path::new("/etc/okonomi-test-settings").exists());
    // Volumes are read-only.
    let mounts = info["host"]["mounts"].as_array().unwrap();
    let secret_mount = mounts
        .iter()
        .find(|m| m["path"] == "/okonomi-test/secret")
        .unwrap_or_else(|| panic!("no mount at /okonomi-test/secret: {mounts:?}"));
    assert!(
        secret_mount["options"]
            .as_array()
            .unwrap()
            .contains(&json!("ro")),
        "{secret_mount}"
    );

    // A changed Secret reaches the mounted file of the running Pod.
    let mut secret = engine
        .store()
        .get(&ResourceType::secret(), "default", "db")
        .unwrap();
    secret["stringData"] = json!({"password": ROTATED});
    engine
        .store()
        .update(&ResourceType::secret(), secret)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, body) = file("/okonomi-test/secret/password").await;
        if body == ROTATED {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {body:?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let said = everything_said(&engine, state.path());
    assert!(
        said.contains("secret \\\"db\\\" not found"),
        "the check reads what the engine said"
    );
    for value in [PASSWORD, ROTATED] {
        assert!(!said.contains(value), "a Secret's value was shown");
    }
    // The Pods' volumes hold the Secret's value: no other user may look in.
    use std::os::unix::fs::PermissionsExt;
    let pods = std::fs::metadata(state.path().join("pods")).unwrap();
    assert_eq!(
        pods.permissions().mode() & 0o077,
        0,
        "{:o}",
        pods.permissions().mode()
    );
    engine.shutdown().await;
}

/// Kubernetes refuses a Pod whose ServiceAccount does not exist; the
/// ReplicaSet says `FailedCreate` and Knative's revision carries it. Once
/// the account exists the same revision's Pod is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_waits_for_its_service_account() {
    let state = tempfile::tempdir().unwrap();
    let engine = quick_idle_engine(state.path()).await;
    create(
        &engine,
        ResourceType::knative_service(),
        json!({
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": "robot", "namespace": "default"},
            "spec": {"template": {"spec": {
                "serviceAccountName": "builder",
                "containers": [{"image": "okonomi://functions/runtimeinfo"}],
            }}},
        }),
    )
    .await;

    let condition = eventually("the revision to fail on the missing account", || {
        revision_ready(&engine, "robot-00001").filter(|c| c["status"] == "False")
    })
    .await;
    assert_eq!(condition["reason"], "FailedCreate", "{condition}");
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains(r#"error looking up service account default/builder: serviceaccount "builder" not found"#),
        "{message}"
    );
    let failure = eventually("the Deployment's ReplicaFailure", || {
        let deployment = engine
            .store()
            .get(
                &ResourceType::deployment(),
                "default",
                "robot-00001-deployment",
            )
            .ok()?;
        deployment["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ReplicaFailure")
            .cloned()
    })
    .await;
    assert_eq!(
        (&failure["status"], &failure["reason"]),
        (&json!("True"), &json!("FailedCreate")),
        "{failure}"
    );
    let event = eventually("a FailedCreate event on the ReplicaSet", || {
        let events = engine
            .store()
            .list(&ResourceType::event(), &ListOptions::namespace("default"))
            .ok()?;
        events
            .items
            .into_iter()
            .find(|e| e["reason"] == "FailedCreate" && e["involvedObject"]["kind"] == "ReplicaSet")
    })
    .await;
    assert_eq!(event["type"], "Warning", "{event}");
    let pods = engine
        .store()
        .list(&ResourceType::pod(), &ListOptions::namespace("default"))
        .unwrap();
    assert!(
        pods.items.is_empty(),
        "no Pod without its account: {:?}",
        pods.items
    );

    create(
        &engine,
        ResourceType::service_account(),
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "builder", "namespace": "default"}}),
    )
    .await;
    wait_ready(&engine, "robot").await;
    let revisions = engine
        .store()
        .list(
            &ResourceType::knative_revision(),
            &ListOptions::namespace("default"),
        )
        .unwrap();
    assert_eq!(revisions.items.len(), 1, "healing makes no new revision");
    let (status, body) = get_path(&engine, "robot.default.localhost", "/").await;
    assert_eq!(status, 200, "{body}");
    let pods = engine
        .store()
        .list(&ResourceType::pod(), &ListOptions::namespace("default"))
        .unwrap();
    assert_eq!(pods.items[0]["spec"]["serviceAccountName"], "builder");
    engine.shutdown().await;
}
