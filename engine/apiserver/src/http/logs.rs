//! `GET /api/v1/namespaces/NS/pods/NAME/log`: options parsed and checked as
//! Kubernetes does, the container picked, the lines from the installed
//! [`PodLogs`](crate::logs::PodLogs) streamed as `text/plain`.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderValue, Method, header};
use serde_json::Value;

use super::{Api, Req};
use crate::error::Error;
use crate::logs::{LogError, LogLine, LogOptions, LogRequest};
use crate::resource::ResourceType;
use crate::status::StatusCause;

fn flag(req: &Req, name: &str) -> Result<bool, Error> {
    match req.param(name) {
        None => Ok(false),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(Error::BadRequest(format!(
            "invalid {name} {other:?}: expected true or false"
        ))),
    }
}

fn number(req: &Req, name: &str) -> Result<Option<i64>, Error> {
    req.param(name)
        .map(|text| {
            text.parse::<i64>().map_err(|_| {
                Error::BadRequest(format!("invalid {name} {text:?}: expected a whole number"))
            })
        })
        .transpose()
}

fn invalid_options(name: &str, causes: Vec<StatusCause>) -> Error {
    Error::Invalid {
        kind: "PodLogOptions".into(),
        group: String::new(),
        name: name.into(),
        causes,
    }
}

/// The options of a log request, checked as Kubernetes checks PodLogOptions.
fn options(req: &Req, pod: &str) -> Result<(LogOptions, bool, Option<u64>), Error> {
    let tail = number(req, "tailLines")?;
    let since_seconds = number(req, "sinceSeconds")?;
    let limit_bytes = number(req, "limitBytes")?;
    let since_time = req
        .param("sinceTime")
        .map(|text| {
            text.parse::<jiff::Timestamp>().map_err(|_| {
                Error::BadRequest(format!(
                    "invalid sinceTime {text:?}: expected an RFC 3339 time such as 2026-01-02T03:04:05Z"
                ))
            })
        })
        .transpose()?;
    let mut causes = Vec::new();
    if tail.is_some_and(|t| t < 0) {
        causes.push(StatusCause::invalid(
            "tailLines",
            "Invalid value: must be greater than or equal to 0",
        ));
    }
    if since_seconds.is_some_and(|s| s < 1) {
        causes.push(StatusCause::invalid(
            "sinceSeconds",
            "Invalid value: must be greater than 0",
        ));
    }
    if limit_bytes.is_some_and(|l| l < 1) {
        causes.push(StatusCause::invalid(
            "limitBytes",
            "Invalid value: must be greater than 0",
        ));
    }
    if since_seconds.is_some() && since_time.is_some() {
        causes.push(StatusCause {
            reason: "FieldValueForbidden".into(),
            message: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
                .into(),
            field: String::new(),
        });
    }
    if !causes.is_empty() {
        return Err(invalid_options(pod, causes));
    }
    let since = match (since_time, since_seconds) {
        (Some(time), _) => Some(time),
        (None, Some(seconds)) => jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_secs(seconds))
            .ok(),
        (None, None) => None,
    };
    Ok((
        LogOptions {
            follow: flag(req, "follow")?,
            tail_lines: tail.map(|t| t.unsigned_abs()),
            since,
            previous: flag(req, "previous")?,
        },
        flag(req, "timestamps")?,
        limit_bytes.map(|l| l.unsigned_abs()),
    ))
}

/// The container a request means: the one named, or the pod's only one (or
/// the one its `kubectl.kubernetes.io/default-container` annotation names).
fn container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, Error> {
    let names: Vec<&str> = [
        "/spec/initContainers",
        "/spec/containers",
        "/spec/ephemeralContainers",
    ]
    .iter()
    .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
    .flatten()
    .filter_map(|c| c.get("name").and_then(Value::as_str))
    .collect();
    let regular: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    match asked {
        Some(asked) if names.contains(&asked) => Ok(asked.to_string()),
        Some(asked) => Err(Error::BadRequest(format!(
            "container {asked} is not valid for pod {name}"
        ))),
        None => {
            if let Some(default) = pod
                .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
                .and_then(Value::as_str)
                && regular.contains(&default)
            {
                return Ok(default.to_string());
            }
            match regular.as_slice() {
                [only] => Ok((*only).to_string()),
                [] => Err(Error::BadRequest(format!("pod {name} has no containers"))),
                many => Err(Error::BadRequest(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    many.join(" ")
                ))),
            }
        }
    }
}

/// A line as sent: with `timestamps`, prefixed by its RFC 3339 time in
/// nanoseconds, as the kubelet writes it.
fn render(line: LogLine, timestamps: bool) -> Bytes {
    if !timestamps {
        return line.line;
    }
    let stamp = line.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ").to_string();
    let mut out = Vec::with_capacity(stamp.len() + 1 + line.line.len());
    out.extend_from_slice(stamp.as_bytes());
    out.push(b' ');
    out.extend_from_slice(&line.line);
    Bytes::from(out)
}

pub(super) async fn serve(
    api: &Api,
    namespace: &Option<String>,
    name: &Option<String>,
    req: Req,
) -> Result<Response, Error> {
    if req.method != Method::GET {
        return Err(Error::MethodNotAllowed);
    }
    let namespace = namespace.clone().unwrap_or_default();
    let name = name.clone().unwrap_or_default();
    let pod = api.store.get(&ResourceType::pod(), &namespace, &name)?;
    let (options, timestamps, limit) = options(&req, &name)?;
    let container = container(&pod, &name, req.param("container"))?;
    let request = LogRequest {
        namespace,
        pod: name.clone(),
        object: Arc::new(pod),
        container: container.clone(),
        options: options.clone(),
    };
    let lines = api
        .pod_logs
        .logs(request)
        .await
        .map_err(|error| match error {
            LogError::PreviousNotFound => Error::BadRequest(format!(
                "previous terminated container {container:?} in pod {name:?} not found"
            )),
            LogError::Waiting { reason } => Error::BadRequest(format!(
                "container {container:?} in pod {name:?} is waiting to start: {reason}"
            )),
            LogError::Unavailable => Error::NotImplemented(
                "pod logs are not available: this API server has no log backend".into(),
            ),
            LogError::Failed(source) => Error::Internal(format!(
                "reading the log of container {container:?} in pod {name:?} failed: {source}"
            )),
        })?;
    let mut left = limit.unwrap_or(u64::MAX);
    let body = lines
        .map(move |line| line.map(|line| render(line, timestamps)))
        .take_while(move |chunk| {
            let go = left > 0;
            if let Ok(bytes) = chunk {
                left = left.saturating_sub(bytes.len() as u64);
            }
            futures::future::ready(go)
        });
    // limitBytes cuts inside a line, as the kubelet does.
    let mut budget = limit.unwrap_or(u64::MAX);
    let body = body.map(move |chunk| {
        chunk.map(|bytes| {
            let keep = (bytes.len() as u64).min(budget);
            budget -= keep;
            bytes.slice(..keep as usize)
        })
    });
    let mut response = Response::new(Body::from_stream(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}
