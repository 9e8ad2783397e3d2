//! echo through the CloudEvents conformance cases in
//! testdata/cloudevents_conformance (the YAML cases and the HTTP
//! protocol binding feature), binary and structured, against the real binary.
//! Expectations are read from those files, not written here.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use okonomi::cloudevents::{self, AttributesReader};
use okonomi::serde_json::{self, Value, json};
use okonomi::testing::{FunctionProcess, request, send};
use tokio::process::Command;

const REPLY_TYPE: &str = "conformance.echo.reply";
const REPLY_SOURCE: &str = "/conformance/echo";

fn conformance_dir() -> PathBuf {
    let dir = match std::env::var_os("CLOUDEVENTS_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/cloudevents_conformance")
        }
    };
    assert!(
        dir.join("yaml").is_dir(),
        "CloudEvents conformance cases not found at {}: the repository's testdata/ carries them, or set CLOUDEVENTS_CONFORMANCE_DIR",
        dir.display()
    );
    dir
}

async fn start_echo() -> FunctionProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_echo"));
    command
        .env("ECHO_TYPE", REPLY_TYPE)
        .env("ECHO_SOURCE", REPLY_SOURCE);
    FunctionProcess::start(command).await.unwrap()
}

/// YAML scalars (`1.0`, `0.3`) as the strings CloudEvents means.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim_end_matches('\n').to_string(),
        Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap()),
        other => other.to_string(),
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| ct.split(';').next().unwrap().trim().ends_with("json"))
}

#[derive(Debug)]
struct Case {
    name: String,
    mode: cloudevents::Mode,
    attributes: BTreeMap<String, String>,
    extensions: BTreeMap<String, String>,
    transport: BTreeMap<String, String>,
    data: String,
}

fn yaml_cases() -> Vec<Case> {
    let dir = conformance_dir().join("yaml");
    let mut files: Vec<PathBuf> = walk(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for (i, doc) in docs.iter().enumerate() {
            let modes = match doc.get("Mode").and_then(Value::as_str) {
                Some("binary") => vec![cloudevents::Mode::Binary],
                Some("structured") => vec![cloudevents::Mode::Structured],
                Some(other) => panic!("unknown Mode {other:?} in {}", file.display()),
                None => vec![cloudevents::Mode::Binary, cloudevents::Mode::Structured],
            };
            let context = doc["ContextAttributes"].as_object().unwrap();
            let mut attributes = BTreeMap::new();
            let mut extensions = BTreeMap::new();
            for (key, value) in context {
                if key == "Extensions" {
                    for (k, v) in value.as_object().unwrap() {
                        extensions.insert(k.clone(), scalar(v));
                    }
                } else {
                    attributes.insert(key.clone(), scalar(value));
                }
            }
            let transport: BTreeMap<String, String> = doc
                .get("TransportExtensions")
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| (k.clone(), scalar(v))).collect())
                .unwrap_or_default();
            for mode in modes {
                cases.push(Case {
                    name: format!(
                        "{} #{i} {mode:?}",
                        file.file_name().unwrap().to_string_lossy()
                    ),
                    mode,
                    attributes: attributes.clone(),
                    extensions: extensions.clone(),
                    transport: transport.clone(),
                    data: doc["Data"].as_str().unwrap_or_default().to_string(),
                });
            }
        }
    }
    cases
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The request a case describes, in its mode, and the data value sent.
fn case_request(case: &Case) -> (http::Request<http_body_util::Full<bytes::Bytes>>, Value) {
    let content_type = case.attributes.get("datacontenttype").map(String::as_str);
    match case.mode {
        cloudevents::Mode::Binary => {
            let mut req = request(http::Method::POST, "/", case.data.clone().into_bytes());
            let headers = req.headers_mut();
            for (key, value) in &case.attributes {
                let name = if key == "datacontenttype" {
                    "content-type".to_string()
                } else {
                    format!("ce-{key}")
                };
                headers.insert(
                    http::HeaderName::try_from(name).unwrap(),
                    value.parse().unwrap(),
                );
            }
            for (key, value) in case.extensions.iter().chain(&case.transport) {
                let name = if case.extensions.contains_key(key) {
                    format!("ce-{key}")
                } else {
                    key.clone()
                };
                headers.insert(
                    http::HeaderName::try_from(name).unwrap(),
                    value.parse().unwrap(),
                );
            }
            (req, Value::from(case.data.clone()))
        }
        cloudevents::Mode::Structured => {
            let mut event = serde_json::Map::new();
            for (key, value) in case.attributes.iter().chain(&case.extensions) {
                event.insert(key.clone(), Value::from(value.as_str()));
            }
            let data = match serde_json::from_str::<Value>(&case.data) {
                Ok(value) if is_json(content_type) => value,
                _ => Value::from(case.data.clone()),
            };
            event.insert("data".into(), data.clone());
            let mut req = request(http::Method::POST, "/", serde_json::to_vec(&event).unwrap());
            req.headers_mut().insert(
                "content-type",
                "application/cloudevents+json".parse().unwrap(),
            );
            for (key, value) in &case.transport {
                req.headers_mut().insert(
                    http::HeaderName::try_from(key.as_str()).unwrap(),
                    value.parse().unwrap(),
                );
            }
            (req, data)
        }
    }
}

#[tokio::test]
async fn echo_passes_the_yaml_conformance_cases_in_both_modes() {
    let cases = yaml_cases();
    assert!(cases.len() >= 20, "too few cases found: {}", cases.len());
    let echo = start_echo().await;
    for case in &cases {
        let (req, sent_data) = case_request(case);
        let (status, headers, body) = send(echo.addr(), req).await.unwrap();
        let body_text = String::from_utf8_lossy(&body);
        assert_eq!(status.as_u16(), 200, "{}: {body_text}", case.name);
        let content_type = case.attributes.get("datacontenttype");
        match case.mode {
            cloudevents::Mode::Binary => {
                assert_eq!(headers["ce-specversion"], "1.0", "{}", case.name);
                assert_eq!(headers["ce-type"], REPLY_TYPE, "{}", case.name);
                assert_eq!(headers["ce-source"], REPLY_SOURCE, "{}", case.name);
                let id = headers["ce-id"].to_str().unwrap();
                assert!(
                    !id.is_empty() && id != case.attributes["id"],
                    "{}",
                    case.name
                );
                assert_eq!(
                    headers.get("content-type").map(|v| v.to_str().unwrap()),
                    content_type.map(String::as_str),
                    "{}",
                    case.name
                );
                assert_eq!(&body[..], case.data.as_bytes(), "{}", case.name);
            }
            cloudevents::Mode::Structured => {
                assert_eq!(
                    headers["content-type"], "application/cloudevents+json",
                    "{}",
                    case.name
                );
                let reply: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(reply["specversion"], "1.0", "{}", case.name);
                assert_eq!(reply["type"], REPLY_TYPE, "{}", case.name);
                assert_eq!(reply["source"], REPLY_SOURCE, "{}", case.name);
                assert_ne!(reply["id"], json!(case.attributes["id"]), "{}", case.name);
                assert_eq!(
                    reply.get("datacontenttype").and_then(Value::as_str),
                    content_type.map(String::as_str),
                    "{}",
                    case.name
                );
                assert_eq!(reply["data"], sent_data, "{}", case.name);
            }
        }
    }
}

/// One scenario of the Gherkin feature, after Examples substitution.
#[derive(Debug)]
struct Scenario {
    name: String,
    request: String,
    attributes: Vec<(String, String)>,
    data: Value,
}

fn feature_scenarios() -> Vec<Scenario> {
    let text =
        std::fs::read_to_string(conformance_dir().join("features/http-protocol-binding.feature"))
            .unwrap();
    let mut scenarios = Vec::new();
    for block in text.split("Scenario Outline:").skip(1) {
        let name = block.lines().next().unwrap().trim().to_string();
        let docstrings: Vec<String> = block
            .split("\"\"\"")
            .skip(1)
            .step_by(2)
            .map(dedent)
            .collect();
        assert_eq!(
            docstrings.len(),
            2,
            "{name}: expected a request and a data docstring"
        );
        let table = |after: &str| -> Vec<Vec<String>> {
            let start = block.find(after).unwrap();
            block[start..]
                .lines()
                .skip(1)
                .map(str::trim)
                .take_while(|l| l.starts_with('|'))
                .map(|l| {
                    l.trim_matches('|')
                        .split('|')
                        .map(|c| c.trim().to_string())
                        .collect()
                })
                .collect()
        };
        let attributes = table("Then the attributes are:");
        let examples = table("Examples:");
        let header = &examples[0];
        for row in &examples[1..] {
            let substitute = |s: &str| {
                header
                    .iter()
                    .zip(row)
                    .fold(s.to_string(), |s, (k, v)| s.replace(&format!("<{k}>"), v))
            };
            scenarios.push(Scenario {
                name: substitute(&name),
                request: substitute(&docstrings[0]),
                attributes: attributes[1..]
                    .iter()
                    .map(|r| (r[0].clone(), substitute(&r[1])))
                    .collect(),
                data: serde_json::from_str(&docstrings[1]).unwrap(),
            });
        }
    }
    scenarios
}

fn dedent(block: &str) -> String {
    let lines: Vec<&str> = block.lines().skip_while(|l| l.trim().is_empty()).collect();
    let indent = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<&str> = lines
        .iter()
        .map(|l| {
            if l.len() >= indent {
                &l[indent..]
            } else {
                l.trim()
            }
        })
        .collect();
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// Turns the scenario's HTTP text into a request (Content-Length recomputed).
fn parse_http(text: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let (head, body) = text.split_once("\n\n").unwrap();
    let mut lines = head.lines();
    let mut request_line = lines.next().unwrap().split_whitespace();
    let method: http::Method = request_line.next().unwrap().parse().unwrap();
    let path = request_line.next().unwrap();
    let mut req = request(method, path, body.as_bytes().to_vec());
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        let name = name.trim().to_ascii_lowercase();
        if name == "content-length" || name == "host" {
            continue;
        }
        req.headers_mut().insert(
            http::HeaderName::try_from(name).unwrap(),
            value.trim().parse().unwrap(),
        );
    }
    req
}

fn event_json(headers: &http::HeaderMap, body: &[u8]) -> (cloudevents::Event, cloudevents::Mode) {
    cloudevents::parse(headers, body.to_vec()).unwrap()
}

#[tokio::test]
async fn echo_passes_the_http_binding_feature_scenarios() {
    let scenarios = feature_scenarios();
    assert_eq!(scenarios.len(), 4, "{scenarios:?}");
    let echo = start_echo().await;
    for scenario in &scenarios {
        let req = parse_http(&scenario.request);
        // "When parsed as HTTP request, then the attributes are": the runtime's parser.
        let body = req.body().clone();
        let body = http_body_util::BodyExt::collect(body)
            .await
            .unwrap()
            .to_bytes();
        let (event, mode) = event_json(req.headers(), &body);
        let parsed = serde_json::to_value(&event).unwrap();
        for (key, expected) in &scenario.attributes {
            let actual = parsed[key].as_str().unwrap_or_default().to_string();
            assert_eq!(&actual, expected, "{}: attribute {key}", scenario.name);
        }
        assert_eq!(
            event.id(),
            scenario
                .attributes
                .iter()
                .find(|(k, _)| k == "id")
                .unwrap()
                .1
        );
        // "And the data is equal to": through the echo process, in the same mode.
        let (status, headers, reply) = send(echo.addr(), req).await.unwrap();
        assert_eq!(
            status.as_u16(),
            200,
            "{}: {}",
            scenario.name,
            String::from_utf8_lossy(&reply)
        );
        let reply_data: Value = match mode {
            cloudevents::Mode::Binary => {
                assert_eq!(headers["ce-type"], REPLY_TYPE);
                serde_json::from_slice(&reply).unwrap()
            }
            cloudevents::Mode::Structured => {
                assert_eq!(headers["content-type"], "application/cloudevents+json");
                let reply: Value = serde_json::from_slice(&reply).unwrap();
                assert_eq!(reply["type"], REPLY_TYPE);
                reply["data"].clone()
            }
        };
        assert_eq!(reply_data, scenario.data, "{}", scenario.name);
    }
}
