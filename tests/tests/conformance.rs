//! Knative Serving's own conformance and e2e scenarios, ported (the
//! scenarios, not the Go code) and run the way a user works: `okonomi
//! deploy`, `okonomi traffic`, `kubectl`, and clients of the Service's URL.
//! Each scenario carries the name of the Knative test it ports
//! (`knative/serving` `test/e2e/websocket_test.go` and so on; the test
//! images are okonomi functions under `functions/`, e.g. `wsserver`).
//!
//! Like the portability suite it starts the engine by default and runs
//! against any cluster with `OKONOMI_TEST_CONTEXT=NAME`;
//! `OKONOMI_TEST_SCENARIOS=a,b` runs a subset (later scenarios may need
//! earlier ones).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use okonomi_tests::Target;
use okonomi_tests::http::WebSocket;
use okonomi_tests::scenarios::{self, Scenario};
use okonomi_tests::tools::workspace_root;
use serde_json::{Value, json};
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

/// How long a deploy may take (a cold cargo build of a function included).
const DEPLOY_TIMEOUT: &str = "600s";

/// The message Knative's WebSocket tests send.
const MESSAGE: &str = "Hello, websocket";

/// What scenarios hand each other.
struct Suite {
    target: Target,
    wsserver_path: String,
}

const SCENARIOS: &[(&str, Scenario<Suite>)] = &[
    ("TestWebSocket", web_socket),
    ("TestWebSocketViaActivator", web_socket_via_activator),
    ("TestWebSocketBlueGreenRoute", web_socket_blue_green_route),
    ("TestWebSocketWithTimeout", web_socket_with_timeout),
    (
        "TestWebSocketGracefulShutdown",
        web_socket_graceful_shutdown,
    ),
];

#[test]
fn conformance_suite() {
    let target = Target::from_env().unwrap();
    let mut suite = Suite {
        target,
        wsserver_path: workspace_root()
            .join("functions/wsserver")
            .display()
            .to_string(),
    };
    scenarios::run(&mut suite, SCENARIOS, |suite| &suite.target);
}

/// `okonomi deploy PATH --name NAME ARGS…`; returns the URL it printed.
fn deploy(suite: &Suite, name: &str, extra: &[&str]) -> anyhow::Result<String> {
    let mut args = vec![
        "deploy",
        &suite.wsserver_path,
        "--name",
        name,
        "--timeout",
        DEPLOY_TIMEOUT,
    ];
    args.extend(extra);
    let run = suite.target.okonomi_ns(&args)?.success()?;
    let url = run.stdout.trim().to_owned();
    ensure!(
        url.starts_with("http://") || url.starts_with("https://"),
        "deploy printed no URL:\n{run}"
    );
    Ok(url)
}

/// The Knative Service `name`, once Ready for its latest generation.
fn wait_ready(target: &Target, name: &str) -> anyhow::Result<Value> {
    target.eventually(
        &format!("Service {name} becoming Ready"),
        Duration::from_secs(300),
        || {
            let ksvc = target.ksvc(name)?;
            let ready = ksvc["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            let current = ksvc["status"]["observedGeneration"] == ksvc["metadata"]["generation"];
            Ok((ready && current).then_some(ksvc))
        },
    )
}

/// Sends one text message and reads one back.
fn echo(socket: &mut WebSocket, message: &str) -> anyhow::Result<String> {
    socket
        .send(Message::text(message))
        .context("sending a message")?;
    loop {
        match socket.read().context("reading the echo")? {
            Message::Text(text) => return Ok(text.to_string()),
            Message::Binary(bytes) => return Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Message::Close(frame) => bail!("the server closed the socket: {frame:?}"),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// Knative's `ValidateWebSocketConnection`: connect with `?delay=DELAY`,
/// send the message, and read back something that starts with it.
fn validate_web_socket_connection(suite: &Suite, url: &str, delay: &str) -> anyhow::Result<String> {
    let mut socket = suite
        .target
        .http
        .websocket(url, &format!("delay={delay}"))?;
    let received = echo(&mut socket, MESSAGE)?;
    ensure!(
        received.starts_with(MESSAGE),
        "expected to receive back the message {MESSAGE:?} but received {received:?}"
    );
    let _ = socket.close(None);
    Ok(received)
}

// ----- scenarios -----

/// TestWebSocket: a WebSocket to the Service's URL echoes a message.
fn web_socket(suite: &mut Suite) -> anyhow::Result<()> {
    let url = deploy(suite, "websocket", &[])?;
    let received = validate_web_socket_connection(suite, &url, "")?;
    ensure!(received == MESSAGE, "echoed {received:?}");
    Ok(())
}

/// TestWebSocketViaActivator: with target-burst-capacity -1 the activator
/// stays in the request path; here the revision is also at zero when the
/// socket is opened, so the upgrade waits in the activator for the cold
/// start and is then spliced through.
fn web_socket_via_activator(suite: &mut Suite) -> anyhow::Result<()> {
    let url = deploy(
        suite,
        "websocket-activator",
        &[
            "--annotation",
            "autoscaling.knative.dev/target-burst-capacity=-1",
            "--scale-window",
            "6s",
        ],
    )?;
    validate_web_socket_connection(suite, &url, "")?;
    let target = &suite.target;
    let revision = target.ksvc("websocket-activator")?["status"]["latestReadyRevisionName"]
        .as_str()
        .context("no latestReadyRevisionName")?
        .to_owned();
    target.eventually(
        &format!("revision {revision} scaling to zero"),
        Duration::from_secs(300),
        || {
            let revision = target
                .kubectl_ns(&["get", "revision", &revision, "-o", "json"])?
                .success()?
                .json()?;
            Ok((revision["status"]["actualReplicas"].as_i64() == Some(0)).then_some(()))
        },
    )?;
    validate_web_socket_connection(suite, &url, "")?;
    Ok(())
}

/// TestWebSocketBlueGreenRoute: two revisions (SUFFIX Blue and Green) at
/// 50% each; 200 WebSockets to the Service's URL land on both, each within
/// 100 ± 25, and the green tag's URL answers from green.
fn web_socket_blue_green_route(suite: &mut Suite) -> anyhow::Result<()> {
    const NAME: &str = "web-socket-blue-green";
    const CONNECTIONS: usize = 200;
    const TOLERANCE: usize = 25;
    deploy(suite, NAME, &["--env", "SUFFIX=Blue"])?;
    let blue = suite.target.ksvc(NAME)?["status"]["latestReadyRevisionName"]
        .as_str()
        .context("no latestReadyRevisionName")?
        .to_owned();
    let url = deploy(suite, NAME, &["--env", "SUFFIX=Green"])?;
    let green = suite.target.ksvc(NAME)?["status"]["latestReadyRevisionName"]
        .as_str()
        .context("no latestReadyRevisionName")?
        .to_owned();
    ensure!(blue != green, "the new env made no new revision ({blue})");
    suite
        .target
        .okonomi_ns(&[
            "traffic",
            NAME,
            "--traffic",
            &format!("{blue}=50"),
            "--traffic",
            &format!("{green}=50"),
            "--tag",
            &format!("{blue}=blue"),
            "--tag",
            &format!("{green}=green"),
        ])?
        .success()?;
    let service = wait_ready(&suite.target, NAME)?;
    let green_url = service["status"]["traffic"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["tag"] == "green"))
        .and_then(|t| t["url"].as_str())
        .with_context(|| format!("no green URL in {}", service["status"]["traffic"]))?
        .to_owned();
    let received = validate_web_socket_connection(suite, &green_url, "")?;
    ensure!(
        received == format!("{MESSAGE} Green"),
        "the green URL answered {received:?}"
    );
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..CONNECTIONS {
        let mut socket = suite.target.http.websocket(&url, "delay=")?;
        *answers.entry(echo(&mut socket, MESSAGE)?).or_default() += 1;
        let _ = socket.close(None);
    }
    ensure!(answers.len() == 2, "answers: {answers:?}, want two kinds");
    for (answer, count) in &answers {
        ensure!(
            count.abs_diff(CONNECTIONS / 2) <= TOLERANCE,
            "{answer:?} came {count} times of {CONNECTIONS}, want {} ± {TOLERANCE}: {answers:?}",
            CONNECTIONS / 2
        );
    }
    Ok(())
}

/// TestWebSocketWithTimeout: each of a revision's request timeouts holds
/// for a WebSocket: an echo delayed less than the limit arrives, one
/// delayed more ends the connection instead. Knative's cases use a 10 s
/// limit and 2 s / 20 s delays; these use 3 s and 1 s / 6 s, the same
/// cases at a third of the wait.
fn web_socket_with_timeout(suite: &mut Suite) -> anyhow::Result<()> {
    const NAME: &str = "websocket-timeout";
    let url = deploy(suite, NAME, &[])?;
    let cases = [
        ("timeoutSeconds", "1", false),
        ("timeoutSeconds", "6", true),
        ("responseStartTimeoutSeconds", "1", false),
        ("responseStartTimeoutSeconds", "6", true),
        ("idleTimeoutSeconds", "1", false),
        ("idleTimeoutSeconds", "6", true),
    ];
    let mut last_field = "";
    for (field, delay, expect_error) in cases {
        if field != last_field {
            let mut spec = json!({
                "timeoutSeconds": null,
                "responseStartTimeoutSeconds": null,
                "idleTimeoutSeconds": null,
            });
            spec[field] = json!(3);
            let patch = json!({"spec": {"template": {"spec": spec}}}).to_string();
            suite
                .target
                .kubectl_ns(&["patch", "ksvc", NAME, "--type", "merge", "-p", &patch])?
                .success()?;
            wait_ready(&suite.target, NAME)?;
            last_field = field;
        }
        let started = Instant::now();
        let outcome = suite
            .target
            .http
            .websocket(&url, &format!("delay={delay}"))
            .and_then(|mut socket| echo(&mut socket, MESSAGE));
        match (outcome, expect_error) {
            (Ok(received), false) => ensure!(
                received == MESSAGE,
                "{field}=3, delay {delay}s: echoed {received:?}"
            ),
            (Err(_), true) => ensure!(
                started.elapsed() < Duration::from_secs(6),
                "{field}=3, delay {delay}s: the connection ended only after {:?}, when the echo was due",
                started.elapsed()
            ),
            (Ok(received), true) => {
                bail!(
                    "{field}=3, delay {delay}s: the echo {received:?} came, want the connection cut"
                )
            }
            (Err(error), false) => {
                bail!("{field}=3, delay {delay}s: {error:#}")
            }
        }
    }
    Ok(())
}

/// TestWebSocketGracefulShutdown: a socket open while its Service is
/// deleted ends with a normal close frame from the instance (SIGTERM), not
/// a broken connection.
fn web_socket_graceful_shutdown(suite: &mut Suite) -> anyhow::Result<()> {
    const NAME: &str = "websocket-shutdown";
    let url = deploy(suite, NAME, &[])?;
    let mut socket = suite.target.http.websocket(&url, "delay=")?;
    echo(&mut socket, MESSAGE)?;
    let target = &suite.target;
    std::thread::scope(|scope| {
        let talking = scope.spawn(move || -> anyhow::Result<Option<CloseCode>> {
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                if let Err(error) = socket.send(Message::text(MESSAGE)) {
                    bail!("writing after the delete: {error}");
                }
                loop {
                    match socket.read() {
                        Ok(Message::Text(_)) => break,
                        Ok(Message::Close(frame)) => return Ok(frame.map(|f| f.code)),
                        Ok(_) => {}
                        Err(error) => bail!("reading after the delete: {error}"),
                    }
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(None)
        });
        target
            .kubectl_ns(&["delete", "ksvc", NAME, "--wait=false"])?
            .success()?;
        match talking.join() {
            Ok(Ok(Some(CloseCode::Normal))) => Ok(()),
            Ok(Ok(Some(code))) => bail!("the socket was closed with {code:?}, want a normal close"),
            Ok(Ok(None)) => bail!("the socket stayed open 120 s after its Service was deleted"),
            Ok(Err(error)) => Err(error.context("the socket did not close cleanly")),
            Err(_) => bail!("the talking thread panicked"),
        }
    })
}
