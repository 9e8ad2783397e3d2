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
    runtimeinfo_path: String,
}

/// The Service the runtime scenarios share, made by the first of them.
const RUNTIME: &str = "runtime-conformance";

const SCENARIOS: &[(&str, Scenario<Suite>)] = &[
    ("TestMustHaveHeadersSet", must_have_headers_set),
    ("TestShouldHaveHeadersSet", should_have_headers_set),
    ("TestShouldEnvVars", should_env_vars),
    ("TestCmdArgs", cmd_args),
    ("TestMustEnvVars", must_env_vars),
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
        runtimeinfo_path: workspace_root()
            .join("functions/runtimeinfo")
            .display()
            .to_string(),
    };
    scenarios::run(&mut suite, SCENARIOS, |suite| &suite.target);
}

/// `okonomi deploy functions/wsserver --name NAME ARGS…`; returns the URL
/// it printed.
fn deploy(suite: &Suite, name: &str, extra: &[&str]) -> anyhow::Result<String> {
    deploy_function(suite, &suite.wsserver_path, name, extra)
}

/// `okonomi deploy PATH --name NAME ARGS…`; returns the URL it printed.
fn deploy_function(
    suite: &Suite,
    path: &str,
    name: &str,
    extra: &[&str],
) -> anyhow::Result<String> {
    let mut args = vec!["--name", name];
    args.extend(extra);
    suite.target.deploy(path, DEPLOY_TIMEOUT, &args)
}

/// The Knative Service `name`, once Ready for its latest generation; if it
/// never is, the error carries its revisions' conditions.
fn wait_ready(target: &Target, name: &str) -> anyhow::Result<Value> {
    let waited = target.eventually(
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
    );
    waited.map_err(|error| {
        let revisions = target
            .kubectl_ns(&[
                "get",
                "revisions",
                "-l",
                &format!("serving.knative.dev/service={name}"),
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}: {.status.conditions}{\"\\n\"}{end}",
            ])
            .map(|run| run.stdout)
            .unwrap_or_default();
        error.context(format!("its revisions:\n{revisions}"))
    })
}

/// Deploys runtimeinfo as the shared runtime Service unless it is there.
fn ensure_runtime_service(suite: &Suite) -> anyhow::Result<()> {
    let exists = suite
        .target
        .kubectl_ns(&["get", "ksvc", RUNTIME, "-o", "name"])?
        .code
        == 0;
    if !exists {
        deploy_function(suite, &suite.runtimeinfo_path, RUNTIME, &[])?;
    }
    Ok(())
}

/// Changes the first container of the shared runtime Service with `edit`
/// (a JSON patch replacing it whole), as Knative's tests set a container's
/// fields.
fn edit_container(suite: &Suite, edit: impl FnOnce(&mut Value)) -> anyhow::Result<Value> {
    ensure_runtime_service(suite)?;
    let ksvc = suite.target.ksvc(RUNTIME)?;
    let mut container = ksvc["spec"]["template"]["spec"]["containers"][0].clone();
    edit(&mut container);
    Ok(json!([
        {"op": "replace", "path": "/spec/template/spec/containers/0", "value": container},
    ]))
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

/// Knative's `fetchRuntimeInfo`: what runtimeinfo's instance sees, over
/// the shared Service's URL (deployed the first time), after `patch` (a
/// JSON patch of the Service, then Ready again) when given, with `headers`
/// on the request.
fn fetch_runtime_info(
    suite: &Suite,
    patch: Option<Value>,
    headers: &[(&str, &str)],
) -> anyhow::Result<(Value, Value)> {
    let target = &suite.target;
    ensure_runtime_service(suite)?;
    if let Some(patch) = patch {
        target
            .kubectl_ns(&[
                "patch",
                "ksvc",
                RUNTIME,
                "--type",
                "json",
                "-p",
                &patch.to_string(),
            ])?
            .success()?;
    }
    let ksvc = wait_ready(target, RUNTIME)?;
    let url = ksvc["status"]["url"]
        .as_str()
        .context("the Service has no URL")?;
    let answer = target.http.send(reqwest::Method::GET, url, headers, None)?;
    ensure!(
        answer.status == 200,
        "GET {url} → {} {}",
        answer.status,
        answer.body
    );
    let info: Value = serde_json::from_str(&answer.body)
        .with_context(|| format!("runtimeinfo answered {:?}", answer.body))?;
    Ok((ksvc, info))
}

/// A request header as runtimeinfo saw it (its first value).
fn header<'a>(info: &'a Value, name: &str) -> Option<&'a str> {
    info["request"]["headers"]
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))?
        .1[0]
        .as_str()
}

/// Whether `value` has the shape of an RFC 7239 `Forwarded` header: pairs
/// `KEY=VALUE` of `for`, `by`, `proto` and `host`, separated by `;` and
/// `,`, each value a token or a quoted string (Knative's checkForwardedHeader).
fn is_forwarded(value: &str) -> bool {
    let token = |v: &str| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_|~".contains(&b))
    };
    let quoted = |v: &str| {
        v.len() >= 2 && v.starts_with('"') && v.ends_with('"') && !v[1..v.len() - 1].contains('"')
    };
    value.split([';', ',']).all(|pair| {
        let Some((key, value)) = pair.trim().split_once('=') else {
            return false;
        };
        ["for", "by", "proto", "host"].contains(&key.to_ascii_lowercase().as_str())
            && (token(value) || quoted(value))
    })
}

// ----- scenarios -----

/// TestMustHaveHeadersSet: the instance sees a Host and a valid
/// `Forwarded` header (RFC 7239).
fn must_have_headers_set(suite: &mut Suite) -> anyhow::Result<()> {
    let (_, info) = fetch_runtime_info(suite, None, &[])?;
    ensure!(
        info["request"]["host"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "no Host reached the instance: {}",
        info["request"]
    );
    let forwarded =
        header(&info, "forwarded").context("no Forwarded header reached the instance")?;
    ensure!(
        is_forwarded(forwarded),
        "Forwarded: {forwarded:?} is not a valid Forwarded header per RFC 7239"
    );
    Ok(())
}

/// TestShouldHaveHeadersSet: a user's header passes as it was sent;
/// `X-Forwarded-Proto` is http(s), `X-Forwarded-For` a list of IP
/// addresses, and the client's W3C `traceparent` reaches the instance.
fn should_have_headers_set(suite: &mut Suite) -> anyhow::Result<()> {
    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (_, info) = fetch_runtime_info(
        suite,
        None,
        &[
            ("This-Was-User-Set", "a value"),
            ("traceparent", TRACEPARENT),
        ],
    )?;
    ensure!(
        header(&info, "this-was-user-set") == Some("a value"),
        "the user's header arrived as {:?}",
        header(&info, "this-was-user-set")
    );
    let proto = header(&info, "x-forwarded-proto").unwrap_or_default();
    ensure!(
        proto == "http" || proto == "https",
        "X-Forwarded-Proto: {proto:?}"
    );
    let forwarded_for = header(&info, "x-forwarded-for").unwrap_or_default();
    ensure!(
        forwarded_for
            .split(',')
            .all(|ip| ip.trim().parse::<std::net::IpAddr>().is_ok()),
        "X-Forwarded-For: {forwarded_for:?} is not a list of IP addresses"
    );
    let traceparent = header(&info, "traceparent").unwrap_or_default();
    let parts: Vec<&str> = traceparent.split('-').collect();
    ensure!(
        parts.len() == 4
            && [2, 32, 16, 2].iter().zip(&parts).all(
                |(len, part)| part.len() == *len && part.bytes().all(|b| b.is_ascii_hexdigit())
            )
            && parts[1] == "0af7651916cd43dd8448eb211c80319c",
        "traceparent: {traceparent:?}, want the client's trace {TRACEPARENT}"
    );
    Ok(())
}

/// TestShouldEnvVars: K_SERVICE, K_CONFIGURATION and K_REVISION name the
/// Service, its Configuration and the revision that answered.
fn should_env_vars(suite: &mut Suite) -> anyhow::Result<()> {
    let (ksvc, info) = fetch_runtime_info(suite, None, &[])?;
    let revision = ksvc["status"]["latestReadyRevisionName"]
        .as_str()
        .context("no latestReadyRevisionName")?;
    for (name, want) in [
        ("K_SERVICE", RUNTIME),
        ("K_CONFIGURATION", RUNTIME),
        ("K_REVISION", revision),
    ] {
        let got = info["host"]["envs"][name].as_str();
        ensure!(
            got == Some(want),
            "runtime contract env variable {name} is {got:?}, want {want:?}"
        );
    }
    Ok(())
}

/// TestCmdArgs: a container's `command` and `args` replace the image's
/// entrypoint and arguments, in that order.
fn cmd_args(suite: &mut Suite) -> anyhow::Result<()> {
    let (_, before) = fetch_runtime_info(suite, None, &[])?;
    let entrypoint = before["host"]["args"][0]
        .as_str()
        .context("runtimeinfo reported no argv[0]")?
        .to_owned();
    let patch = edit_container(suite, |container| {
        container["command"] = json!([entrypoint, "abra"]);
        container["args"] = json!(["cadabra", "do"]);
    })?;
    let (_, info) = fetch_runtime_info(suite, Some(patch), &[])?;
    let want = json!([entrypoint, "abra", "cadabra", "do"]);
    ensure!(
        info["host"]["args"] == want,
        "args = {}, want {want}",
        info["host"]["args"]
    );
    Ok(())
}

/// TestMustEnvVars: with the container port set to 8801, the instance is
/// told so in PORT (and serves there). On the engine, PORT is the
/// instance's own port (it has no network namespace yet).
fn must_env_vars(suite: &mut Suite) -> anyhow::Result<()> {
    // Knative's WithNumberedPort: the port alone; probes follow it.
    let patch = edit_container(suite, |container| {
        container["ports"] = json!([{"containerPort": 8801}]);
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            if let Some(get) = container[probe]["httpGet"].as_object_mut() {
                get.remove("port");
            }
        }
    })?;
    let (_, info) = fetch_runtime_info(suite, Some(patch), &[])?;
    let port = info["host"]["envs"]["PORT"].as_str();
    if suite.target.is_engine() {
        // The engine's process runtime shares the machine's network, so
        // each instance gets a free port of its own in PORT instead of the
        // containerPort (docs/engine.md, "Where the engine differs"); it
        // still serves where PORT says, or this request had failed.
        ensure!(
            port.and_then(|p| p.parse::<u16>().ok())
                .is_some_and(|p| p != 0),
            "PORT is {port:?}, want the instance's port"
        );
        return Ok(());
    }
    ensure!(port == Some("8801"), "PORT is {port:?}, want \"8801\"");
    Ok(())
}

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
    target.wait_scaled_to_zero(&revision, Duration::from_secs(300))?;
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
