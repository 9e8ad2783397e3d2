//! Helpers the engine's integration tests share: waiting for a Service to
//! be Ready and calling it through the engine's router.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use okonomi_apiserver::ResourceType;
use okonomi_engine::{Engine, EngineConfig};
use serde_json::Value;

/// Waits until Service `default/NAME` is Ready for its latest generation
/// (the deadline only guards against a hang).
pub async fn wait_ready(engine: &Engine, name: &str) {
    let ready = |s: &Value| {
        s["status"]["observedGeneration"] == s["metadata"]["generation"]
            && s["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let service = engine
            .store()
            .get(&ResourceType::knative_service(), "default", name)
            .ok();
        if service.as_ref().is_some_and(ready) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name} to be Ready: {service:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /` through the engine's router with `Host: host`: status and body.
pub async fn get_body(engine: &Engine, host: &str) -> (u16, String) {
    get_path(engine, host, "/").await
}

/// `GET path` through the engine's router with `Host: host`: status and
/// body.
pub async fn get_path(engine: &Engine, host: &str, path: &str) -> (u16, String) {
    get_with(engine, host, path, &[]).await
}

/// `GET path` with `Host: host` and `headers`: status and body.
pub async fn get_with(
    engine: &Engine,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request =
        http::Request::get(format!("http://{}{path}", engine.http_addr())).header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::new()).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(180), client.request(request))
        .await
        .expect("the request timed out")
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// An engine whose idle revisions go to zero a few seconds after their
/// last request.
pub async fn quick_idle_engine(state: &Path) -> Engine {
    let autoscaler = state.join("config-autoscaler.yaml");
    std::fs::write(&autoscaler, "scale-to-zero-grace-period: 1s\n").unwrap();
    Engine::start(EngineConfig {
        state_dir: state.to_path_buf(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        source_root: okonomi_tests::tools::workspace_root(),
        build_profile: "dev".into(),
        ready_timeout: Duration::from_secs(20),
        activator_timeout: Duration::from_secs(120),
        autoscaler_config: Some(autoscaler),
        ..EngineConfig::default()
    })
    .await
    .unwrap()
}

/// Polls `read` until it returns something (the deadline only guards
/// against a hang).
pub async fn eventually<T>(what: &str, mut read: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if let Some(value) = read() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
