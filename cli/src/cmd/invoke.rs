//! `okonomi invoke`: send an HTTP request or a CloudEvent (binary or structured
//! mode of the CloudEvents HTTP binding) and print the reply.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::ValueEnum;
use serde_json::{Map, Value, json};

use crate::global::{Format, Global};

const EXAMPLES: &str = "\
Examples:
  okonomi invoke                                   # GET the function `okonomi run` serves
  okonomi invoke http://127.0.0.1:8080/ --data 'hi' -H 'content-type: text/plain'
  okonomi invoke --event-type com.example.order --data '{\"id\":1}'
  okonomi invoke --event-type com.example.order --mode structured --file order.json -e tenant=acme
  okonomi invoke --event-type com.example.order --data '{\"id\":1}' -o json   # reply event as JSON

Without a URL the target is http://127.0.0.1:$PORT/ ($PORT defaults to 8080).
The exit code is 3 when the answer is not 2xx.";

/// CloudEvents HTTP content mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Attributes in `ce-*` headers, data as the body.
    Binary,
    /// The whole event as `application/cloudevents+json`.
    Structured,
}

/// Arguments of `okonomi invoke`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// URL to call; default the local function on $PORT.
    pub url: Option<String>,
    /// HTTP method (default GET, or POST when there is data or an event).
    #[arg(short = 'X', long)]
    pub method: Option<String>,
    /// Request body / event data.
    #[arg(short, long, conflicts_with = "file")]
    pub data: Option<String>,
    /// Read the body / event data from a file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Extra header `NAME: VALUE` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Send a CloudEvent of this type.
    #[arg(long = "event-type", value_name = "TYPE")]
    pub event_type: Option<String>,
    /// CloudEvent source.
    #[arg(long, default_value = "/okonomi/cli", requires = "event_type")]
    pub source: String,
    /// CloudEvent id (default a random UUID).
    #[arg(long, requires = "event_type")]
    pub id: Option<String>,
    /// CloudEvent subject.
    #[arg(long, requires = "event_type")]
    pub subject: Option<String>,
    /// Content mode of the CloudEvent.
    #[arg(long, value_enum, default_value_t = Mode::Binary, requires = "event_type")]
    pub mode: Mode,
    /// Extension attribute `NAME=VALUE` (repeatable).
    #[arg(short = 'e', long = "extension", requires = "event_type")]
    pub extensions: Vec<String>,
    /// Content type of the data (default application/json for events, none otherwise).
    #[arg(long)]
    pub content_type: Option<String>,
    /// Give up after this long, e.g. 500ms, 10s, 2m.
    #[arg(long, default_value = "60s", value_parser = crate::duration::parse)]
    pub timeout: std::time::Duration,
}

/// Runs `okonomi invoke`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let url = match &args.url {
        Some(u) => u.clone(),
        None => format!(
            "http://127.0.0.1:{}/",
            std::env::var("PORT").unwrap_or_else(|_| "8080".into())
        ),
    };
    let body: Option<Vec<u8>> = match (&args.data, &args.file) {
        (Some(d), _) => Some(d.clone().into_bytes()),
        (None, Some(f)) => {
            Some(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?)
        }
        (None, None) => None,
    };
    let method = match &args.method {
        Some(m) => m.to_uppercase(),
        None if body.is_some() || args.event_type.is_some() => "POST".into(),
        None => "GET".into(),
    };
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .with_context(|| format!("invalid method {method:?}"))?;
    // `*.localhost` (the engine's URLs) resolves to loopback, as in curl.
    let client = crate::localhost::client_builder()
        .timeout(args.timeout)
        .build()?;
    let mut request = client.request(method, &url);
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            bail!("invalid header {header:?}: write it as 'NAME: VALUE'");
        };
        request = request.header(name.trim(), value.trim());
    }
    if let Some(event_type) = &args.event_type {
        let attributes = attributes(&args, event_type)?;
        let content_type = args
            .content_type
            .clone()
            .unwrap_or_else(|| "application/json".into());
        request = match args.mode {
            Mode::Binary => {
                for (k, v) in &attributes {
                    request = request.header(format!("ce-{k}"), v);
                }
                request
                    .header("content-type", content_type)
                    .body(body.unwrap_or_default())
            }
            Mode::Structured => request
                .header("content-type", "application/cloudevents+json")
                .body(serde_json::to_vec(&structured(
                    attributes,
                    &content_type,
                    body,
                ))?),
        };
    } else {
        if let Some(ct) = &args.content_type {
            request = request.header("content-type", ct);
        }
        if let Some(b) = body {
            request = request.body(b);
        }
    }
    let response = request.send().await.map_err(|e| {
        let hint = if e.is_connect() && args.url.is_none() {
            " (is `okonomi run` running? pass the URL to call another function)"
        } else {
            ""
        };
        anyhow::anyhow!("calling {url}: {}{hint}", error_chain(&e))
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    if global.verbose > 0 || !status.is_success() {
        eprintln!("{status}");
        if global.verbose > 0 {
            for (k, v) in &headers {
                eprintln!("{k}: {}", v.to_str().unwrap_or("<binary>"));
            }
        }
    }
    match reply_event(&headers, &bytes) {
        Some(event) if global.output != Format::Text => {
            crate::output::print(global, &event, |_| String::new())?
        }
        Some(event) => {
            if let Some(t) = event.get("type").and_then(Value::as_str) {
                eprintln!(
                    "reply event: type={t} id={}",
                    event.get("id").and_then(Value::as_str).unwrap_or("")
                );
            }
            print_body(&bytes);
        }
        None if global.output != Format::Text => {
            let body = String::from_utf8_lossy(&bytes);
            let value = json!({"status": status.as_u16(), "body": serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::String(body.into_owned()))});
            crate::output::print(global, &value, |_| String::new())?;
        }
        None => print_body(&bytes),
    }
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_REMOTE_ERROR)
    })
}

fn print_body(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = out.write_all(bytes);
    if !bytes.ends_with(b"\n") && !bytes.is_empty() {
        let _ = out.write_all(b"\n");
    }
}

/// The event's context attributes, in a fixed order.
fn attributes(args: &Args, event_type: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut attrs = vec![
        ("specversion".to_string(), "1.0".to_string()),
        (
            "id".to_string(),
            args.id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        ),
        ("source".to_string(), args.source.clone()),
        ("type".to_string(), event_type.to_string()),
        ("time".to_string(), jiff::Timestamp::now().to_string()),
    ];
    if let Some(s) = &args.subject {
        attrs.push(("subject".into(), s.clone()));
    }
    for ext in &args.extensions {
        let Some((name, value)) = ext.split_once('=') else {
            bail!("invalid extension {ext:?}: write it as NAME=VALUE");
        };
        // CloudEvents attribute names: lower-case a-z and 0-9, at most 20 characters.
        if name.is_empty()
            || name.len() > 20
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            bail!(
                "invalid extension name {name:?}: CloudEvents attribute names are 1-20 lower-case letters or digits"
            );
        }
        attrs.push((name.to_string(), value.to_string()));
    }
    Ok(attrs)
}

fn structured(
    attributes: Vec<(String, String)>,
    content_type: &str,
    body: Option<Vec<u8>>,
) -> Value {
    let mut event: Map<String, Value> = attributes
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    event.insert("datacontenttype".into(), Value::String(content_type.into()));
    if let Some(body) = body {
        let json_data = content_type
            .contains("json")
            .then(|| serde_json::from_slice::<Value>(&body).ok())
            .flatten();
        match (json_data, String::from_utf8(body)) {
            (Some(v), _) => {
                event.insert("data".into(), v);
            }
            (None, Ok(text)) => {
                event.insert("data".into(), Value::String(text));
            }
            (None, Err(e)) => {
                use base64::Engine as _;
                let encoded = base64::engine::general_purpose::STANDARD.encode(e.into_bytes());
                event.insert("data_base64".into(), Value::String(encoded));
            }
        }
    }
    Value::Object(event)
}

/// The reply as a structured CloudEvent JSON object, if it is an event.
fn reply_event(headers: &reqwest::header::HeaderMap, body: &[u8]) -> Option<Value> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/cloudevents+json") {
        return serde_json::from_slice(body).ok();
    }
    headers.get("ce-specversion")?;
    let mut event = Map::new();
    for (name, value) in headers {
        if let Some(attr) = name.as_str().strip_prefix("ce-") {
            event.insert(
                attr.to_string(),
                Value::String(value.to_str().unwrap_or("").to_string()),
            );
        }
    }
    if !content_type.is_empty() {
        event.insert("datacontenttype".into(), Value::String(content_type.into()));
    }
    if !body.is_empty() {
        let data = if content_type.contains("json") {
            serde_json::from_slice(body).ok()
        } else {
            None
        };
        event.insert(
            "data".into(),
            data.unwrap_or_else(|| Value::String(String::from_utf8_lossy(body).into_owned())),
        );
    }
    Some(Value::Object(event))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
