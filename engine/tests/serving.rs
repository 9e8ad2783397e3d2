//! The engine end to end, in process: Services deployed through the store,
//! requests through the data plane with a Host header, real instances of
//! the hello function built from this checkout.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use okonomi_apiserver::ResourceType;
use okonomi_engine::{Engine, EngineConfig};
use okonomi_tests::tools::workspace_root;
use serde_json::{Value, json};

const SEED: &str = "Hello Container World! (";

fn config(state_dir: &Path) -> EngineConfig {
    EngineConfig {
        state_dir: state_dir.to_path_buf(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        source_root: workspace_root(),
        build_profile: "dev".into(),
        ready_timeout: Duration::from_secs(20),
        activator_timeout: Duration::from_secs(120),
        ..EngineConfig::default()
    }
}

fn with_autoscaler(mut config: EngineConfig, yaml: &str) -> EngineConfig {
    let path = config.state_dir.join("config-autoscaler.yaml");
    std::fs::write(&path, yaml).unwrap();
    config.autoscaler_config = Some(path);
    config
}

fn hello_service(name: &str, annotations: Value, traffic: Value) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "template": {
                "metadata": {"annotations": annotations},
                "spec": {"containers": [{
                    "image": "okonomi://functions/hello",
                    "readinessProbe": {"httpGet": {"path": "/health/readiness"}},
                }]}
            },
            "traffic": traffic,
        }
    })
}

async fn deploy(engine: &Engine, service: Value) -> Value {
    engine
        .store()
        .create(&ResourceType::knative_service(), service)
        .await
        .unwrap()
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Waits until `check` holds for the object, returning it.
async fn wait_for(
    engine: &Engine,
    rt: ResourceType,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(object) = engine.store().get(&rt, "default", name)
            && check(&object)
        {
            return object;
        }
        if Instant::now() > deadline {
            let object = engine.store().get(&rt, "default", name).ok();
            panic!("timed out waiting for {name} to be {what}: {object:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_ready(engine: &Engine, name: &str) -> Value {
    wait_for(
        engine,
        ResourceType::knative_service(),
        name,
        "Ready",
        |s| {
            s["status"]["observedGeneration"] == s["metadata"]["generation"]
                && condition(s, "Ready").is_some_and(|c| c["status"] == "True")
        },
    )
    .await
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    host: &str,
) -> (u16, String) {
    get_path(client, addr, host, "/").await
}

async fn get_path(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> (u16, String) {
    let request = http::Request::get(format!("http://{addr}{path}"))
        .header("host", host)
        .body(Empty::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(180), client.request(request))
        .await
        .expect("request timed out")
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `okonomi_revision_requests_total` per revision from /metrics.
async fn requests_per_revision(addr: SocketAddr) -> std::collections::BTreeMap<String, u64> {
    let (_, text) = get_path(&client(), addr, "metrics.invalid", "/metrics").await;
    let mut counts = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("okonomi_revision_requests_total{") {
            let revision = rest
                .split("revision=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap()
                .to_string();
            let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            *counts.entry(revision).or_default() += value as u64;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_answers_through_the_router_and_unknown_hosts_get_help() {
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(state.path())).await.unwrap();
    deploy(&engine, hello_service("hello", json!({}), json!([]))).await;
    let service = wait_ready(&engine, "hello").await;
    let port = engine.http_addr().port();
    assert_eq!(
        service["status"]["url"],
        format!("http://hello.default.localhost:{port}")
    );
    assert_eq!(service["status"]["latestReadyRevisionName"], "hello-00001");
    assert_eq!(service["status"]["traffic"][0]["percent"], 100);

    let client = client();
    let (status, body) = get(
        &client,
        engine.http_addr(),
        &format!("hello.default.localhost:{port}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with(SEED), "{body}");

    let (status, body) = get(&client, engine.http_addr(), "nope.default.localhost").await;
    assert_eq!(status, 404);
    assert!(body.contains("hello.default.localhost"), "{body}");

    let revision = engine
        .store()
        .get(&ResourceType::knative_revision(), "default", "hello-00001")
        .unwrap();
    assert_eq!(
        revision["metadata"]["labels"]["serving.knative.dev/service"],
        "hello"
    );
    assert_eq!(
        revision["metadata"]["labels"]["serving.knative.dev/configurationGeneration"],
        "1"
    );
    let metrics = engine.metrics();
    assert!(metrics.contains("okonomi_revision_requests_total{namespace=\"default\",revision=\"hello-00001\",code=\"2xx\"} 1"), "{metrics}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_service_scales_to_zero_and_the_next_request_wakes_it() {
    let state = tempfile::tempdir().unwrap();
    let config = with_autoscaler(config(state.path()), "scale-to-zero-grace-period: 1s\n");
    let engine = Engine::start(config).await.unwrap();
    deploy(
        &engine,
        hello_service(
            "sleepy",
            json!({"autoscaling.knative.dev/window": "6s"}),
            json!([]),
        ),
    )
    .await;
    wait_ready(&engine, "sleepy").await;
    let host = "sleepy.default.localhost";
    let (status, _) = get(&client(), engine.http_addr(), host).await;
    assert_eq!(status, 200);

    // Idle for the window plus the grace period: zero instances.
    wait_for(
        &engine,
        ResourceType::knative_revision(),
        "sleepy-00001",
        "scaled to zero",
        |r| r["status"]["actualReplicas"] == 0 && r["status"]["desiredReplicas"] == 0,
    )
    .await;
    assert!(engine.instances("default", "sleepy-00001").is_empty());
    let service = wait_ready(&engine, "sleepy").await;
    assert_eq!(condition(&service, "Ready").unwrap()["status"], "True");

    // The activator holds the next request until an instance is ready.
    let (status, body) = get(&client(), engine.http_addr(), host).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with(SEED));
    assert_eq!(engine.instances("default", "sleepy-00001").len(), 1);
    assert!(engine.metrics().contains(
        "okonomi_revision_cold_starts_total{namespace=\"default\",revision=\"sleepy-00001\"} 1"
    ));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_splits_80_20_and_tags_get_their_own_host() {
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(state.path())).await.unwrap();
    deploy(&engine, hello_service("split", json!({}), json!([]))).await;
    wait_ready(&engine, "split").await;

    // A second revision (the template changed), then 80/20 with tags.
    let rt = ResourceType::knative_service();
    let mut service = engine.store().get(&rt, "default", "split").unwrap();
    service["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "GREETING", "value": "v2"}]);
    service["spec"]["traffic"] = json!([
        {"revisionName": "split-00001", "percent": 80, "tag": "old"},
        {"latestRevision": true, "percent": 20, "tag": "new"},
    ]);
    engine.store().update(&rt, service).await.unwrap();
    let service = wait_for(
        &engine,
        rt.clone(),
        "split",
        "on its second revision",
        |s| {
            s["status"]["latestReadyRevisionName"] == "split-00002"
                && s["status"]["observedGeneration"] == s["metadata"]["generation"]
                && s["status"]["traffic"]
                    .as_array()
                    .is_some_and(|t| t.len() == 2)
                && condition(s, "Ready").is_some_and(|c| c["status"] == "True")
        },
    )
    .await;
    let port = engine.http_addr().port();
    let traffic = service["status"]["traffic"].as_array().unwrap();
    let old = traffic.iter().find(|t| t["tag"] == "old").unwrap();
    assert_eq!(old["revisionName"], "split-00001");
    assert_eq!(
        old["url"],
        format!("http://old-split.default.localhost:{port}")
    );
    let new = traffic.iter().find(|t| t["tag"] == "new").unwrap();
    assert_eq!(new["revisionName"], "split-00002");

    let before = requests_per_revision(engine.http_addr()).await;
    let client = client();
    for _ in 0..2000 {
        let (status, body) = get(&client, engine.http_addr(), "split.default.localhost").await;
        assert_eq!(status, 200, "{body}");
    }
    let after = requests_per_revision(engine.http_addr()).await;
    let delta = |r: &str| after.get(r).copied().unwrap_or(0) - before.get(r).copied().unwrap_or(0);
    let (first, second) = (delta("split-00001"), delta("split-00002"));
    assert_eq!(first + second, 2000);
    let share = first as f64 / 2000.0;
    assert!(
        (0.75..=0.85).contains(&share),
        "split-00001 got {first} of 2000"
    );

    // Each tag reaches only its revision.
    let before = requests_per_revision(engine.http_addr()).await;
    for _ in 0..20 {
        let (status, _) = get(&client, engine.http_addr(), "new-split.default.localhost").await;
        assert_eq!(status, 200);
    }
    let after = requests_per_revision(engine.http_addr()).await;
    assert_eq!(after["split-00002"] - before["split-00002"], 20);
    assert_eq!(after["split-00001"], before["split-00001"]);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_is_restarted() {
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(state.path())).await.unwrap();
    deploy(&engine, hello_service("crashy", json!({}), json!([]))).await;
    wait_ready(&engine, "crashy").await;
    let instances = engine.instances("default", "crashy-00001");
    assert_eq!(instances.len(), 1);
    let pid = instances[0].pid.unwrap();
    let pod = instances[0].id.clone();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = engine.instances("default", "crashy-00001");
        if now.len() == 1 && now[0].pid != Some(pid) {
            break;
        }
        assert!(Instant::now() < deadline, "no new instance after the crash");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = get(&client(), engine.http_addr(), "crashy.default.localhost").await;
    assert_eq!(status, 200, "{body}");
    // The same Pod's container restarted: the crashed run's log is kept for
    // `kubectl logs --previous`.
    let dir = okonomi_engine::kubelet::logs::revision_dir(
        state.path(),
        "default",
        "crashy",
        "crashy-00001",
    );
    let previous = okonomi_engine::kubelet::pod_logs::previous(&dir, &pod);
    let kept = std::fs::read_to_string(&previous).unwrap();
    assert!(!kept.is_empty(), "the crashed run's output is kept");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_come_back_after_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(state.path())).await.unwrap();
    deploy(&engine, hello_service("durable", json!({}), json!([]))).await;
    wait_ready(&engine, "durable").await;
    let before = engine
        .store()
        .get(&ResourceType::knative_service(), "default", "durable")
        .unwrap();
    engine.shutdown().await;

    let engine = Engine::start(config(state.path())).await.unwrap();
    let after = wait_ready(&engine, "durable").await;
    assert_eq!(after["metadata"]["uid"], before["metadata"]["uid"]);
    let (status, body) = get(&client(), engine.http_addr(), "durable.default.localhost").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with(SEED));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_that_never_gets_ready_reports_why_with_its_logs() {
    let state = tempfile::tempdir().unwrap();
    // A function crate that exits at once, built on deploy like any other.
    let crate_dir = state.path().join("broken");
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();
    std::fs::write(
        crate_dir.join("Cargo.toml"),
        "[package]\nname = \"broken\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        crate_dir.join("src/main.rs"),
        "fn main() { eprintln!(\"fatal: DATABASE_URL is not set\"); std::process::exit(3); }\n",
    )
    .unwrap();
    let engine = Engine::start(config(state.path())).await.unwrap();
    let mut service = hello_service("broken", json!({}), json!([]));
    service["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!(format!("okonomi://{}", crate_dir.display()));
    deploy(&engine, service).await;
    let service = wait_for(
        &engine,
        ResourceType::knative_service(),
        "broken",
        "failed",
        |s| condition(s, "Ready").is_some_and(|c| c["status"] == "False"),
    )
    .await;
    let ready = condition(&service, "Ready").unwrap();
    assert_eq!(ready["reason"], "RevisionFailed", "{ready}");
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains("DATABASE_URL is not set"), "{message}");
    let revision = engine
        .store()
        .get(&ResourceType::knative_revision(), "default", "broken-00001")
        .unwrap();
    assert_eq!(
        condition(&revision, "Ready").unwrap()["reason"],
        "ExitedBeforeReady"
    );

    // Requests get a clear 503 instead of hanging forever.
    let mut config = config(state.path());
    config.activator_timeout = Duration::from_secs(1);
    engine.shutdown().await;
    let engine = Engine::start(config).await.unwrap();
    wait_for(
        &engine,
        ResourceType::knative_route(),
        "broken",
        "routed",
        |r| r["status"]["url"].is_string(),
    )
    .await;
    let (status, body) = get(&client(), engine.http_addr(), "broken.default.localhost").await;
    assert_eq!(
        status, 404,
        "no ready revision, so nothing is routed: {body}"
    );
    engine.shutdown().await;
}

/// Updates a stored object with `change`, retrying when a status write
/// raced the read (the store checks resourceVersion).
async fn update_with(engine: &Engine, rt: &ResourceType, name: &str, change: impl Fn(&mut Value)) {
    for _ in 0..50 {
        let mut object = engine.store().get(rt, "default", name).unwrap();
        change(&mut object);
        match engine.store().update(rt, object).await {
            Ok(_) => return,
            Err(e) if e.is_conflict() => continue,
            Err(e) => panic!("updating {name}: {e}"),
        }
    }
    panic!("updating {name}: conflicts on every attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_route_follows_a_configuration_of_another_name() {
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(state.path())).await.unwrap();
    // The Route comes first: the Configuration it follows does not exist yet,
    // and has a different name (no Service ties the two together).
    let route_rt = ResourceType::knative_route();
    engine
        .store()
        .create(
            &route_rt,
            json!({
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Route",
                "metadata": {"name": "front", "namespace": "default"},
                "spec": {"traffic": [
                    {"configurationName": "backend", "latestRevision": true, "percent": 100}
                ]},
            }),
        )
        .await
        .unwrap();
    let configuration_rt = ResourceType::knative_configuration();
    let template = hello_service("backend", json!({}), json!([]))["spec"]["template"].clone();
    engine
        .store()
        .create(
            &configuration_rt,
            json!({
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Configuration",
                "metadata": {"name": "backend", "namespace": "default"},
                "spec": {"template": template},
            }),
        )
        .await
        .unwrap();
    let routed_to = |revision: &'static str| {
        move |r: &Value| {
            r["status"]["traffic"][0]["revisionName"] == revision
                && condition(r, "Ready").is_some_and(|c| c["status"] == "True")
        }
    };
    wait_for(
        &engine,
        route_rt.clone(),
        "front",
        "routed to backend-00001",
        routed_to("backend-00001"),
    )
    .await;
    let client = client();
    let (status, body) = get(&client, engine.http_addr(), "front.default.localhost").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with(SEED), "{body}");

    // A new template: once its revision is ready the Route moves to it.
    update_with(&engine, &configuration_rt, "backend", |c| {
        c["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "GREETING", "value": "v2"}]);
    })
    .await;
    wait_for(
        &engine,
        route_rt,
        "front",
        "routed to backend-00002",
        routed_to("backend-00002"),
    )
    .await;
    let before = requests_per_revision(engine.http_addr()).await;
    for _ in 0..5 {
        let (status, body) = get(&client, engine.http_addr(), "front.default.localhost").await;
        assert_eq!(status, 200, "{body}");
    }
    let after = requests_per_revision(engine.http_addr()).await;
    let delta = |r: &str| after.get(r).copied().unwrap_or(0) - before.get(r).copied().unwrap_or(0);
    assert_eq!(delta("backend-00002"), 5, "{after:?}");
    assert_eq!(delta("backend-00001"), 0, "{after:?}");
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_fails_the_revision_and_its_pinned_route() {
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(state.path())).await.unwrap();
    // A Route pinned to the revision before it exists: it follows the
    // revision's fate once created.
    let route_rt = ResourceType::knative_route();
    engine
        .store()
        .create(
            &route_rt,
            json!({
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Route",
                "metadata": {"name": "pinned", "namespace": "default"},
                "spec": {"traffic": [{"revisionName": "secretive-00001", "percent": 100}]},
            }),
        )
        .await
        .unwrap();
    let mut service = hello_service("secretive", json!({}), json!([]));
    service["spec"]["template"]["spec"]["containers"][0]["env"] = json!([
        {"name": "GREETING", "value": "hi"},
        {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
    ]);
    deploy(&engine, service).await;
    let service = wait_for(
        &engine,
        ResourceType::knative_service(),
        "secretive",
        "failed",
        |s| condition(s, "Ready").is_some_and(|c| c["status"] == "False"),
    )
    .await;
    let ready = condition(&service, "Ready").unwrap();
    assert_eq!(ready["reason"], "RevisionFailed", "{ready}");
    let message = ready["message"].as_str().unwrap();
    assert!(message.contains(r#"secret "db" not found"#), "{message}");
    let revision = engine
        .store()
        .get(
            &ResourceType::knative_revision(),
            "default",
            "secretive-00001",
        )
        .unwrap();
    let ready = condition(&revision, "Ready").unwrap();
    assert_eq!(ready["reason"], "CreateContainerConfigError", "{ready}");
    assert_eq!(ready["message"], r#"secret "db" not found"#, "{ready}");
    // The pinned Route does not send traffic to the failed revision.
    let route = wait_for(&engine, route_rt, "pinned", "failed", |r| {
        condition(r, "Ready").is_some_and(|c| c["status"] == "False")
    })
    .await;
    let ready = condition(&route, "Ready").unwrap();
    assert_eq!(ready["reason"], "RevisionMissing", "{ready}");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains(r#"secret "db" not found"#),
        "{ready}"
    );
    let (status, body) = get(&client(), engine.http_addr(), "pinned.default.localhost").await;
    assert_eq!(status, 404, "{body}");
    // Nothing was started without the variable.
    assert!(engine.instances("default", "secretive-00001").is_empty());
    assert_eq!(revision["status"]["actualReplicas"], 0);
    engine.shutdown().await;
}

/// RFC 9112 §3.2: a request with two Host headers is a 400, not routed by
/// whichever comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_headers_are_a_bad_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(state.path())).await.unwrap();
    deploy(&engine, hello_service("twohosts", json!({}), json!([]))).await;
    wait_ready(&engine, "twohosts").await;
    let mut tcp = tokio::net::TcpStream::connect(engine.http_addr())
        .await
        .unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: twohosts.default.localhost\r\nHost: other.default.localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_string(&mut answer))
        .await
        .expect("an answer within 30s")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("more than one Host header"), "{answer}");
    // One Host is routed as always.
    let (status, body) = get(&client(), engine.http_addr(), "twohosts.default.localhost").await;
    assert_eq!(status, 200, "{body}");
    engine.shutdown().await;
}

/// A 63-character Service name is valid, and its revision is named as
/// Knative's kmeta.ChildName names it (truncated with a hash, 63
/// characters), so it becomes Ready and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_63_character_service_becomes_ready() {
    let state = tempfile::tempdir().unwrap();
    let engine = Engine::start(config(state.path())).await.unwrap();
    let name = format!("long{}", "n".repeat(59));
    assert_eq!(name.len(), 63);
    deploy(&engine, hello_service(&name, json!({}), json!([]))).await;
    let service = wait_ready(&engine, &name).await;
    let revision = service["status"]["latestReadyRevisionName"]
        .as_str()
        .unwrap();
    assert_eq!(revision.len(), 63, "{revision}");
    assert!(
        revision.starts_with("longnnnn") && revision.ends_with("-00001"),
        "{revision}"
    );
    let (status, body) = get(
        &client(),
        engine.http_addr(),
        &format!("{name}.default.localhost"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let pods = engine
        .store()
        .list(
            &ResourceType::pod(),
            &okonomi_apiserver::ListOptions::namespace("default"),
        )
        .unwrap();
    let pod = pods.items[0]["metadata"]["name"].as_str().unwrap();
    assert!(pod.len() <= 63, "{pod}");
    engine.shutdown().await;
}
