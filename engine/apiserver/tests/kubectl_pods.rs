//! The real kubectl 1.27, 1.28 and 1.33 against what the engine writes below the
//! Knative objects: tables for pods, deployments, replica sets, events,
//! ConfigMaps, Secrets and service accounts; `auth can-i`; `scale`; `logs`
//! through a [`PodLogs`] backend; `port-forward` through a [`PodPortForward`]
//! backend to a loopback TCP echo server.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;
#[path = "support/objects.rs"]
mod objects;

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use harness::{Server, kubectl_binary};
use okonomi_apiserver::ResourceType;
use okonomi_apiserver::logs::{LogError, LogLine, LogRequest, LogStream, PodLogs};
use okonomi_apiserver::portforward::{PodPortForward, PortForwardError, PortRequest, PortStream};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Logs kept in memory per (pod, container, previous run), with tail and since
/// applied as a backend must.
#[derive(Default)]
struct Logs {
    lines: HashMap<(String, String, bool), Vec<LogLine>>,
}

impl Logs {
    fn with(mut self, pod: &str, container: &str, previous: bool, lines: &[(&str, &str)]) -> Self {
        let lines = lines
            .iter()
            .map(|(time, text)| LogLine {
                time: time.parse().unwrap(),
                line: Bytes::from(format!("{text}\n")),
            })
            .collect();
        self.lines
            .insert((pod.into(), container.into(), previous), lines);
        self
    }
}

impl PodLogs for Logs {
    fn logs(&self, request: LogRequest) -> BoxFuture<'static, Result<LogStream, LogError>> {
        let key = (
            request.pod.clone(),
            request.container.clone(),
            request.options.previous,
        );
        let found = self.lines.get(&key).cloned();
        Box::pin(async move {
            let Some(mut lines) = found else {
                return Err(if request.options.previous {
                    LogError::PreviousNotFound
                } else {
                    LogError::Waiting {
                        reason: "ContainerCreating".into(),
                    }
                });
            };
            if let Some(since) = request.options.since {
                lines.retain(|l| l.time >= since);
            }
            if let Some(tail) = request.options.tail_lines {
                let skip = lines.len().saturating_sub(tail as usize);
                lines.drain(..skip);
            }
            let stream: LogStream = Box::pin(futures::stream::iter(lines.into_iter().map(Ok)));
            Ok(stream)
        })
    }
}

/// Every pod's port 8080 is the echo server; port 9090 answers one line and
/// closes, as an HTTP server does after `Connection: close`.
struct Echo {
    address: std::net::SocketAddr,
    answer_once: std::net::SocketAddr,
}

impl PodPortForward for Echo {
    fn connect(
        &self,
        request: PortRequest,
    ) -> BoxFuture<'static, Result<PortStream, PortForwardError>> {
        let address = match request.port {
            9090 => self.answer_once,
            _ => self.address,
        };
        Box::pin(async move {
            if request.port != 8080 && request.port != 9090 {
                return Err(PortForwardError::Connect {
                    port: request.port,
                    source: std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        "connection refused",
                    ),
                });
            }
            let stream = tokio::net::TcpStream::connect(address)
                .await
                .map_err(|source| PortForwardError::Connect {
                    port: request.port,
                    source,
                })?;
            Ok(Box::new(stream) as PortStream)
        })
    }
}

async fn echo_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    address
}

/// Reads one line, answers it and closes the connection without waiting for
/// the client to close its side.
async fn answer_once_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut line = String::new();
                if stream.read_line(&mut line).await.is_ok() {
                    let _ = stream
                        .get_mut()
                        .write_all(format!("answered {line}").as_bytes())
                        .await;
                }
            });
        }
    });
    address
}

async fn start() -> Server {
    let logs = Logs::default()
        .with(
            "hello-a",
            "user-container",
            false,
            &[
                ("2026-01-01T00:00:01Z", "listening on :8080"),
                ("2026-01-01T00:00:02Z", "GET / 200"),
                ("2026-01-01T00:00:03Z", "GET /x 404"),
            ],
        )
        .with(
            "hello-a",
            "user-container",
            true,
            &[("2025-12-31T23:59:59Z", "panicked at src/main.rs")],
        )
        .with(
            "hello-a",
            "queue-proxy",
            false,
            &[("2026-01-01T00:00:01Z", "queue-proxy up")],
        )
        .with(
            "hello-b",
            "user-container",
            false,
            &[("2026-01-01T00:00:05Z", "b listening")],
        );
    let echo = Echo {
        address: echo_server().await,
        answer_once: answer_once_server().await,
    };
    let server = Server::start_custom(tempfile::tempdir().unwrap(), None, move |api| {
        api.with_pod_logs(Arc::new(logs))
            .with_port_forward(Arc::new(echo))
    })
    .await;
    let pods = ResourceType::pod();
    server
        .engine_put(
            &pods,
            objects::pod("hello-a", "hello", &["user-container", "queue-proxy"]),
        )
        .await;
    let mut b = objects::pod("hello-b", "hello", &["user-container"]);
    b["status"]["containerStatuses"][0] = json!({
        "name": "user-container", "ready": false, "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 101, "finishedAt": "2026-01-01T00:00:00Z"}},
    });
    server.engine_put(&pods, b).await;
    let mut deployment = objects::deployment("hello-00001-deployment", 2);
    deployment["status"] =
        json!({"replicas": 2, "readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1});
    server
        .engine_put(&ResourceType::deployment(), deployment.clone())
        .await;
    let mut replica_set = objects::deployment("hello-00001-deployment-5d8f", 2);
    replica_set["status"] = json!({"replicas": 2, "readyReplicas": 1});
    server
        .engine_put(&ResourceType::replica_set(), replica_set)
        .await;
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
    server
        .store
        .create(
            &ResourceType::config_map(),
            json!({"metadata": {"name": "settings"}, "data": {"a": "1", "b": "2"}}),
        )
        .await
        .unwrap();
    server
        .store
        .create(
            &ResourceType::secret(),
            json!({"metadata": {"name": "db"}, "stringData": {"password": "x"}}),
        )
        .await
        .unwrap();
    server
}

/// The header line of `out`, split into its column titles.
fn header(out: &str) -> Vec<String> {
    let line = out.lines().next().unwrap_or("");
    // Titles are separated by two or more spaces; "LAST SEEN" has one inside.
    line.split("  ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

fn row<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{out}"))
        .split_whitespace()
        .collect()
}

async fn tables(server: &Server, binary: &Path) {
    let out = server.kubectl_ok(binary, &["get", "pods"]).await;
    assert_eq!(
        header(&out),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    assert_eq!(row(&out, "hello-a")[1..4], ["2/2", "Running", "0"], "{out}");
    let b = row(&out, "hello-b");
    assert_eq!(b[1..4], ["0/1", "CrashLoopBackOff", "3"], "{out}");
    assert!(b[4].starts_with('(') && b[5] == "ago)", "{out}");
    let out = server
        .kubectl_ok(binary, &["get", "pods", "-o", "wide"])
        .await;
    let titles = header(&out);
    assert_eq!(titles[5..7], ["IP", "NODE"], "{out}");
    assert_eq!(
        row(&out, "hello-a")[5..7],
        ["127.0.0.1", "okonomi"],
        "{out}"
    );
    let out = server
        .kubectl_ok(
            binary,
            &[
                "get",
                "pods",
                "--field-selector",
                "status.phase=Running",
                "-l",
                "app=hello",
            ],
        )
        .await;
    assert!(out.contains("hello-a") && out.contains("hello-b"), "{out}");

    let out = server.kubectl_ok(binary, &["get", "deploy"]).await;
    assert_eq!(
        header(&out),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        "{out}"
    );
    assert_eq!(
        row(&out, "hello-00001-deployment")[1..4],
        ["1/2", "2", "1"],
        "{out}"
    );
    let out = server.kubectl_ok(binary, &["get", "rs"]).await;
    assert_eq!(
        header(&out),
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "{out}"
    );
    assert_eq!(
        row(&out, "hello-00001-deployment-5d8f")[1..4],
        ["2", "2", "1"],
        "{out}"
    );
    let out = server.kubectl_ok(binary, &["get", "events"]).await;
    assert_eq!(
        header(&out),
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{out}"
    );
    assert!(
        out.contains("Normal")
            && out.contains("service/hello")
            && out.contains("Created Configuration \"hello\""),
        "{out}"
    );
    let out = server.kubectl_ok(binary, &["get", "cm"]).await;
    assert_eq!(header(&out), ["NAME", "DATA", "AGE"], "{out}");
    assert_eq!(row(&out, "settings")[1], "2", "{out}");
    let out = server.kubectl_ok(binary, &["get", "secrets"]).await;
    assert_eq!(header(&out), ["NAME", "TYPE", "DATA", "AGE"], "{out}");
    assert_eq!(row(&out, "db")[1..3], ["Opaque", "1"], "{out}");
    let out = server.kubectl_ok(binary, &["get", "sa"]).await;
    assert_eq!(header(&out), ["NAME", "SECRETS", "AGE"], "{out}");
    assert_eq!(row(&out, "default")[1], "0", "{out}");
}

async fn verbs(server: &Server, binary: &Path) {
    for (args, answer) in [
        (&["auth", "can-i", "create", "ksvc"][..], "yes"),
        (&["auth", "can-i", "delete", "pods"][..], "yes"),
        (&["auth", "can-i", "create", "configmaps"][..], "yes"),
        (&["auth", "can-i", "create", "pods"][..], "no"),
        (&["auth", "can-i", "update", "deployments"][..], "yes"),
        (&["auth", "can-i", "create", "deployments"][..], "no"),
        (
            &[
                "auth",
                "can-i",
                "patch",
                "deployments",
                "--subresource=scale",
            ][..],
            "yes",
        ),
    ] {
        let run = server.kubectl(binary, args).await;
        assert_eq!(
            run.stdout.lines().next().unwrap_or("").split(" - ").next(),
            Some(answer),
            "{args:?}: {run}"
        );
        assert_eq!(run.ok, answer == "yes", "{args:?}: {run}");
    }
    let out = server
        .kubectl_ok(binary, &["auth", "can-i", "--list"])
        .await;
    assert!(
        out.lines()
            .any(|l| l.starts_with("pods ")
                && l.contains("[get list watch delete deletecollection]")),
        "{out}"
    );

    let manifest = server.manifest(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: mine\nspec:\n  containers:\n  - name: c\n    image: x\n",
    );
    let run = server
        .kubectl(binary, &["create", "-f", manifest.to_str().unwrap()])
        .await;
    assert!(!run.ok, "{run}");
    assert!(
        run.stderr.contains("Forbidden")
            && run
                .stderr
                .contains("made by the engine from Knative Services"),
        "{run}"
    );

    let out = server
        .kubectl_ok(
            binary,
            &["scale", "deploy/hello-00001-deployment", "--replicas=3"],
        )
        .await;
    assert!(out.contains("scaled"), "{out}");
    let stored = server
        .store
        .get(
            &ResourceType::deployment(),
            "default",
            "hello-00001-deployment",
        )
        .unwrap();
    assert_eq!(stored["spec"]["replicas"], 3);
}

async fn logs(server: &Server, binary: &Path) {
    let out = server
        .kubectl_ok(binary, &["logs", "hello-a", "-c", "user-container"])
        .await;
    assert_eq!(out, "listening on :8080\nGET / 200\nGET /x 404\n");
    let out = server
        .kubectl_ok(binary, &["logs", "hello-a", "-c", "queue-proxy"])
        .await;
    assert_eq!(out, "queue-proxy up\n");
    let out = server
        .kubectl_ok(
            binary,
            &["logs", "hello-a", "-c", "user-container", "--tail=1"],
        )
        .await;
    assert_eq!(out, "GET /x 404\n");
    let out = server
        .kubectl_ok(
            binary,
            &[
                "logs",
                "hello-a",
                "-c",
                "user-container",
                "--since-time=2026-01-01T00:00:02Z",
                "--timestamps",
            ],
        )
        .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("2026-01-01T00:00:02") && lines[0].ends_with("Z GET / 200"),
        "{out}"
    );
    let out = server
        .kubectl_ok(
            binary,
            &["logs", "hello-a", "-c", "user-container", "--previous"],
        )
        .await;
    assert_eq!(out, "panicked at src/main.rs\n");
    let run = server
        .kubectl(binary, &["logs", "hello-b", "--previous"])
        .await;
    assert!(!run.ok, "{run}");
    assert!(
        run.stderr.contains(
            "previous terminated container \"user-container\" in pod \"hello-b\" not found"
        ),
        "{run}"
    );
    let run = server
        .kubectl(binary, &["logs", "hello-a", "-c", "sidecar"])
        .await;
    assert!(
        run.stderr
            .contains("container sidecar is not valid for pod hello-a"),
        "{run}"
    );
    // -f: the stream ends when the backend's does.
    let run = tokio::time::timeout(
        Duration::from_secs(60),
        server.kubectl(binary, &["logs", "-f", "hello-b"]),
    )
    .await
    .expect("logs -f ends with its stream");
    assert!(run.ok, "{run}");
    assert_eq!(run.stdout, "b listening\n");
    let out = server
        .kubectl_ok(
            binary,
            &[
                "logs",
                "-l",
                "serving.knative.dev/service=hello",
                "-c",
                "user-container",
            ],
        )
        .await;
    assert!(
        out.contains("GET /x 404\n") && out.contains("b listening\n"),
        "{out}"
    );
}

async fn port_forward(server: &Server, binary: &Path) {
    let free_port = || {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let local = free_port();
    let local_once = free_port();
    let mut child = server
        .kubectl_command(binary)
        .args([
            "port-forward",
            "pod/hello-a",
            &format!("{local}:8080"),
            &format!("{local_once}:9090"),
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
    for round in 0..2 {
        let mut connection = tokio::net::TcpStream::connect(("127.0.0.1", local))
            .await
            .unwrap();
        let sent = format!("hello through the pod, round {round}\n").repeat(2000);
        let (mut read, mut write) = connection.split();
        let writing = async {
            write.write_all(sent.as_bytes()).await.unwrap();
            write.shutdown().await.unwrap();
        };
        let mut echoed = Vec::new();
        let reading = tokio::time::timeout(Duration::from_secs(60), read.read_to_end(&mut echoed));
        let (_, read_result) = tokio::join!(writing, reading);
        read_result.expect("echo within 60 s").unwrap();
        assert_eq!(echoed.len(), sent.len(), "round {round}");
        assert!(echoed == sent.as_bytes(), "round {round}");
    }
    let second = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
        .await
        .expect("port-forward names its second port")
        .unwrap();
    assert!(
        second
            .as_deref()
            .is_some_and(|l| l.contains(&format!("127.0.0.1:{local_once} -> 9090"))),
        "{second:?}"
    );
    // The pod closes first, the client never half-closes: the pod's close
    // must reach the client (kubectl waits for the error stream's end).
    let mut connection = tokio::net::TcpStream::connect(("127.0.0.1", local_once))
        .await
        .unwrap();
    connection.write_all(b"hello\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(
        Duration::from_secs(60),
        connection.read_to_string(&mut answer),
    )
    .await
    .expect("the pod's close reaches the client within 60 s")
    .unwrap();
    assert_eq!(answer, "answered hello\n");
    child.kill().await.unwrap();
}

/// What users write with kubectl's typed commands, which send strategic merge
/// patches for built-in kinds.
async fn user_writes(server: &Server, binary: &Path) {
    let manifest = |greeting: &str| {
        server.manifest(
            "cm.yaml",
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  greeting: {greeting}\n"),
        )
    };
    let out = server
        .kubectl_ok(binary, &["apply", "-f", manifest("hi").to_str().unwrap()])
        .await;
    assert!(out.contains("configmap/app-config created"), "{out}");
    let out = server
        .kubectl_ok(
            binary,
            &["apply", "-f", manifest("hello").to_str().unwrap()],
        )
        .await;
    assert!(out.contains("configmap/app-config configured"), "{out}");
    let out = server
        .kubectl_ok(binary, &["label", "cm", "app-config", "tier=web"])
        .await;
    assert!(out.contains("labeled"), "{out}");
    let stored = server
        .store
        .get(&ResourceType::config_map(), "default", "app-config")
        .unwrap();
    assert_eq!(stored["data"], json!({"greeting": "hello"}));
    assert_eq!(stored["metadata"]["labels"]["tier"], "web");
    let out = server
        .kubectl_ok(
            binary,
            &[
                "create",
                "secret",
                "generic",
                "creds",
                "--from-literal=password=pw",
            ],
        )
        .await;
    assert!(out.contains("secret/creds created"), "{out}");
    let stored = server
        .store
        .get(&ResourceType::secret(), "default", "creds")
        .unwrap();
    assert_eq!(stored["data"]["password"], "cHc=");
    let out = server
        .kubectl_ok(binary, &["create", "serviceaccount", "builder"])
        .await;
    assert!(out.contains("serviceaccount/builder created"), "{out}");
    for kind in ["cm/app-config", "secret/creds", "sa/builder"] {
        server.kubectl_ok(binary, &["delete", kind]).await;
    }
}

/// `kubectl explain` finds every kind's schema by its group, version and kind.
async fn explain(server: &Server, binary: &Path) {
    let out = server
        .kubectl_ok(binary, &["explain", "ksvc.spec.template"])
        .await;
    assert!(
        out.contains("Service") && out.contains("serving.knative.dev"),
        "{out}"
    );
    assert!(
        out.contains("FIELDS") && out.contains("metadata") && out.contains("spec"),
        "{out}"
    );
    let out = server
        .kubectl_ok(binary, &["explain", "pods.spec.containers"])
        .await;
    assert!(
        out.contains("image") && out.contains("livenessProbe"),
        "{out}"
    );
    let out = server.kubectl_ok(binary, &["explain", "cm"]).await;
    assert!(
        out.contains("ConfigMap") && out.contains("binaryData") && out.contains("immutable"),
        "{out}"
    );
    for kind in [
        "secrets.stringData",
        "sa",
        "deploy.spec.replicas",
        "rs",
        "events",
        "kpa.spec",
        "rev",
        "route",
        "kcfg",
        "ns",
    ] {
        let out = server.kubectl_ok(binary, &["explain", kind]).await;
        assert!(out.contains("DESCRIPTION"), "{kind}: {out}");
    }
    let out = server
        .kubectl_ok(
            binary,
            &["explain", "events", "--api-version=events.k8s.io/v1"],
        )
        .await;
    assert!(
        out.contains("events.k8s.io") && out.contains("regarding"),
        "{out}"
    );
}

async fn scenario(version: &str) {
    let server = start().await;
    let binary = kubectl_binary(Some(version));
    explain(&server, &binary).await;
    user_writes(&server, &binary).await;
    tables(&server, &binary).await;
    verbs(&server, &binary).await;
    logs(&server, &binary).await;
    port_forward(&server, &binary).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27() {
    scenario("1.27").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_28() {
    scenario("1.28").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33() {
    scenario("1.33").await;
}
