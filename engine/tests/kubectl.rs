//! The real kubectl (1.27, 1.28 and 1.33) against the engine: `get pods -w`
//! shows a scale from zero and a scale to zero as Pending → Running →
//! Terminating → gone; `logs` reads a Pod's container log (by name and by
//! `-l serving.knative.dev/service=NAME`); `port-forward` reaches the Pod;
//! `describe ksvc` shows the Service's Events; `get deploy,kpa` and `get
//! events --field-selector` show the revision's objects and what happened
//! to them.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use okonomi_apiserver::kubeconfig::{self, KubeconfigEntry};
use okonomi_apiserver::{ListOptions, ResourceType};
use okonomi_engine::Engine;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

mod support;
use support::{get_body, quick_idle_engine, wait_ready};

/// Where the Google Cloud SDK keeps the versioned kubectl binaries.
const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

fn kubectl_binary(version: &str) -> PathBuf {
    let path = Path::new(KUBECTL_DIR).join(format!("kubectl.{version}"));
    assert!(
        path.exists(),
        "{} is missing: install the Debian package `kubectl` (Google Cloud SDK repository), \
         which ships the dispatcher and kubectl.1.27 … kubectl.1.33",
        path.display()
    );
    path
}

struct Cluster {
    engine: Engine,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    binary: PathBuf,
}

impl Cluster {
    async fn start(version: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let engine = quick_idle_engine(&state).await;
        let kubeconfig = dir.path().join("kubeconfig");
        let api = engine.api();
        kubeconfig::merge(
            &kubeconfig,
            &KubeconfigEntry {
                name: "okonomi".into(),
                server: api.url.clone(),
                ca_pem: api.ca_pem.clone(),
                token: api.token.clone(),
                namespace: None,
                set_current: true,
            },
        )
        .unwrap();
        Cluster {
            engine,
            dir,
            kubeconfig,
            binary: kubectl_binary(version),
        }
    }

    fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(&self.binary);
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        command
    }

    async fn kubectl(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().await.unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    what: &str,
) -> String {
    tokio::time::timeout(Duration::from_secs(240), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap()
        .unwrap_or_else(|| panic!("kubectl ended before {what}"))
}

/// Reads watch lines until one of `pod` matches `wanted`; returns it.
async fn until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pod: &str,
    what: &str,
    wanted: impl Fn(&[&str]) -> bool,
) -> String {
    loop {
        let line = next_line(lines, what).await;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&pod) && wanted(&fields) {
            return line;
        }
    }
}

fn pod_names(engine: &Engine, revision: &str) -> Vec<String> {
    engine
        .store()
        .list(
            &ResourceType::pod(),
            &ListOptions::namespace("default")
                .labels(format!("serving.knative.dev/revision={revision}")),
        )
        .unwrap()
        .items
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

async fn scenario(version: &str) {
    let cluster = Cluster::start(version).await;
    // Watch before anything exists: every Pod shows from its first state.
    let mut watch = cluster
        .command()
        .args([
            "get",
            "pods",
            "-w",
            "--output-watch-events",
            "-o",
            // With --output-watch-events kubectl hands custom-columns each
            // event as {type, object}: the columns name the event's fields.
            "custom-columns=EVENT:.type,NAME:.object.metadata.name,PHASE:.object.status.phase,READY:.object.status.containerStatuses[0].ready,DELETING:.object.metadata.deletionTimestamp",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let service = json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"template": {
            "metadata": {"annotations": {"autoscaling.knative.dev/window": "6s"}},
            "spec": {"containers": [{
                "image": "okonomi://functions/hello",
                "readinessProbe": {"httpGet": {"path": "/health/readiness"}},
                "ports": [{"containerPort": 8080}],
            }]}
        }}
    });
    cluster
        .engine
        .store()
        .create(&ResourceType::knative_service(), service)
        .await
        .unwrap();
    wait_ready(&cluster.engine, "hello").await;
    let first = pod_names(&cluster.engine, "hello-00001").pop().unwrap();

    // The first Pod: Pending, then Running and ready.
    until(&mut lines, &first, "the first Pod added", |f| {
        f[0] == "ADDED" && f[2] == "Pending"
    })
    .await;
    until(&mut lines, &first, "the first Pod running and ready", |f| {
        f[2] == "Running" && f[3] == "true"
    })
    .await;

    // Its log, by name and by the service's label, and a port-forward.
    let logs = cluster
        .kubectl(&["logs", &first, "-c", "user-container"])
        .await;
    assert!(logs.contains("listening"), "{logs}");
    let by_label = cluster
        .kubectl(&[
            "logs",
            "-l",
            "serving.knative.dev/service=hello",
            "-c",
            "user-container",
            "--tail",
            "1",
            "--timestamps",
        ])
        .await;
    assert_eq!(by_label.lines().count(), 1, "{by_label}");
    assert!(by_label.starts_with("20"), "{by_label}");
    port_forward(&cluster, &first).await;
    let described = cluster.kubectl(&["describe", "ksvc", "hello"]).await;
    for said in [
        "Events:",
        r#"Created Configuration "hello""#,
        r#"Created Route "hello""#,
    ] {
        assert!(described.contains(said), "{said} not in {described}");
    }
    let objects = cluster.kubectl(&["get", "deploy,kpa", "-o", "name"]).await;
    assert!(
        objects.contains("deployment.apps/hello-00001-deployment"),
        "{objects}"
    );
    assert!(
        objects.contains("podautoscaler.autoscaling.internal.knative.dev/hello-00001"),
        "{objects}"
    );

    // Idle: Terminating, then gone.
    until(&mut lines, &first, "the first Pod terminating", |f| {
        f[0] == "MODIFIED" && f[4] != "<none>"
    })
    .await;
    until(&mut lines, &first, "the first Pod deleted", |f| {
        f[0] == "DELETED"
    })
    .await;
    let events = cluster
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={first}"),
            "-o",
            "custom-columns=REASON:.reason",
        ])
        .await;
    for reason in ["Scheduled", "Started", "Killing"] {
        assert!(events.contains(reason), "{reason} in {events}");
    }

    // A request: a new Pod from zero.
    let (status, body) = get_body(&cluster.engine, "hello.default.localhost").await;
    assert_eq!(status, 200, "{body}");
    // The engine writes Pods off the request path, so the new Pod may not be
    // stored yet when the answer comes: it is named by its ADDED event.
    let second = loop {
        let line = next_line(&mut lines, "a new Pod added").await;
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields[0] == "ADDED" && fields[1] != first {
            break fields[1].to_string();
        }
    };
    until(&mut lines, &second, "the new Pod running", |f| {
        f[2] == "Running" && f[3] == "true"
    })
    .await;
    watch.kill().await.unwrap();
    cluster.engine.shutdown().await;
}

async fn port_forward(cluster: &Cluster, pod: &str) {
    let local = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let mut child = cluster
        .command()
        .args([
            "port-forward",
            &format!("pod/{pod}"),
            &format!("{local}:8080"),
            "--address",
            "127.0.0.1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
        .await
        .expect("port-forward starts")
        .unwrap();
    assert!(
        first
            .as_deref()
            .is_some_and(|l| l.contains(&format!("127.0.0.1:{local} -> 8080"))),
        "{first:?}"
    );
    let mut connection = tokio::net::TcpStream::connect(("127.0.0.1", local))
        .await
        .unwrap();
    connection
        .write_all(b"GET / HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    tokio::time::timeout_at(deadline.into(), connection.read_to_string(&mut answer))
        .await
        .expect("an answer through the port-forward")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_watches_pods_come_and_go() {
    scenario("1.33").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_28_watches_pods_come_and_go() {
    scenario("1.28").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_watches_pods_come_and_go() {
    scenario("1.27").await;
}
