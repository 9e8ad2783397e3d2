//! The Kubernetes REST API over a [`Store`]: discovery, OpenAPI, get/list/watch,
//! create, update, patch, delete and the `/status` subresource, with `Table`
//! responses for `kubectl get` and errors as `metav1.Status`.
//!
//! [`Api::router`] gives an axum `Router` that answers every path through one
//! fallback handler (Kubernetes paths overlap too much for a route table:
//! `/api/v1/namespaces/{name}/status` vs `/api/v1/namespaces/{ns}/{resource}`), so
//! it can be merged under another router's explicit routes.

mod auth;
mod discovery;
mod logs;
mod openapi;
mod portforward;
mod protobuf;
mod resources;
mod table;
mod validation;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::Value;

use crate::error::Error;
use crate::logs::{NoPodLogs, PodLogs};
use crate::portforward::{NoPortForward, PodPortForward};
use crate::resource::ResourceType;
use crate::store::Store;

/// Largest request body accepted (Kubernetes' own limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// The HTTP API: a store, the resource types it serves, and the bearer token
/// clients must present.
#[derive(Clone)]
pub struct Api {
    store: Store,
    resources: Arc<Vec<ResourceType>>,
    token: Option<Arc<str>>,
    minor_version: Arc<str>,
    bookmark_interval: Duration,
    pod_logs: Arc<dyn PodLogs>,
    port_forward: Arc<dyn PodPortForward>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("resources", &self.resources.len())
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Api {
    /// An API serving `resources` from `store` (with whatever admission the store
    /// carries). Without [`with_token`](Api::with_token) no authentication is
    /// required.
    pub fn new(store: Store, resources: Vec<ResourceType>) -> Self {
        Self {
            store,
            resources: Arc::new(resources),
            token: None,
            minor_version: "33".into(),
            bookmark_interval: Duration::from_secs(15),
            pod_logs: Arc::new(NoPodLogs),
            port_forward: Arc::new(NoPortForward),
        }
    }

    /// Serve `pods/log` from `logs` (without it, log requests get `501`).
    pub fn with_pod_logs(mut self, logs: Arc<dyn PodLogs>) -> Self {
        self.pod_logs = logs;
        self
    }

    /// Serve `pods/portforward` through `forward` (without it, every forwarded
    /// connection reports that port forwarding is not available).
    pub fn with_port_forward(mut self, forward: Arc<dyn PodPortForward>) -> Self {
        self.port_forward = forward;
        self
    }

    /// Require `Authorization: Bearer TOKEN` on every request but `/version` and
    /// the health checks; others get `401 Unauthorized`.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into().into());
        self
    }

    /// The Kubernetes minor version `/version` reports (default `33`; the kubectl
    /// dispatcher picks `kubectl.1.MINOR` by it).
    pub fn with_minor_version(mut self, minor: impl Into<String>) -> Self {
        self.minor_version = minor.into().into();
        self
    }

    /// How often watches that allow bookmarks get one (default 15 s).
    pub fn with_bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// The store this API serves.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The axum router serving the whole API.
    pub fn router(self) -> axum::Router {
        axum::Router::new().fallback(handle).with_state(self)
    }

    fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.trim().as_bytes(), token.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A parsed request, as the handlers need it.
pub(crate) struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: HashMap<String, String>,
    pub body: Body,
    /// The connection's upgrade, for `pods/portforward`.
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Req {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn accept(&self) -> &str {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
    }

    /// Read the body (bounded) as bytes.
    pub async fn bytes(self) -> Result<bytes::Bytes, Error> {
        axum::body::to_bytes(self.body, MAX_BODY)
            .await
            .map_err(|e| Error::BadRequest(format!("cannot read the request body: {e}")))
    }
}

/// Parse a JSON or YAML body into a value.
pub(crate) fn decode(bytes: &[u8], content_type: &str) -> Result<Value, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::BadRequest("the request body is empty".into()));
    }
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return protobuf::decode(bytes);
    }
    if content_type.contains("yaml") {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::BadRequest("the YAML body is not UTF-8".into()))?;
        serde_saphyr::from_str_with_options(text, serde_saphyr::options! { strict_booleans: true })
            .map_err(|e| {
                // The parser's message quotes the input around the error, and the
                // body may hold a Secret: say only where it is.
                let at = e
                    .location()
                    .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                    .unwrap_or_default();
                Error::BadRequest(format!(
                    "the body is not valid YAML{at} (check the quoting, brackets and indentation there)"
                ))
            })
    } else {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::BadRequest(format!("the body is not valid JSON: {e}")))
    }
}

/// A JSON response.
pub(crate) fn json(code: StatusCode, value: &Value) -> Response {
    json_with_type(code, value, "application/json")
}

pub(crate) fn json_with_type(code: StatusCode, value: &Value, content_type: &str) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    response
}

/// The Status response for an error.
pub(crate) fn error_response(error: &Error) -> Response {
    let status = error.to_status();
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if code.is_server_error() {
        tracing::warn!(%error, "API request failed");
    }
    json(code, &status.to_value())
}

fn not_found_path() -> Error {
    Error::NotFound {
        resource: "the server could not find the requested resource".into(),
        group: String::new(),
        plural: String::new(),
        name: String::new(),
    }
}

async fn handle(State(api): State<Api>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let path = parts.uri.path().to_string();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let req = Req {
        method: parts.method,
        headers: parts.headers,
        query,
        body,
        upgrade,
    };
    let method = req.method.clone();
    let response = dispatch(&api, &path, req).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "API request");
    response
}

async fn dispatch(api: &Api, path: &str, req: Req) -> Response {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let public = matches!(
        segments.as_slice(),
        ["version"] | ["healthz"] | ["livez"] | ["readyz"]
    );
    if !public && !api.authorized(&req.headers) {
        return error_response(&Error::Unauthorized);
    }
    match route(api, &segments, req).await {
        Ok(response) => response,
        Err(Error::NotFound { name, .. }) if name.is_empty() => {
            let mut status = crate::status::Status::failure(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
            status.details = None;
            json(StatusCode::NOT_FOUND, &status.to_value())
        }
        Err(error) => error_response(&error),
    }
}

async fn route(api: &Api, segments: &[&str], req: Req) -> Result<Response, Error> {
    let get_only = |req: &Req| {
        if req.method == Method::GET || req.method == Method::HEAD {
            Ok(())
        } else {
            Err(Error::MethodNotAllowed)
        }
    };
    match segments {
        ["version"] => {
            get_only(&req)?;
            Ok(discovery::version(api))
        }
        ["healthz"] | ["livez"] | ["readyz"] => {
            let mut response = Response::new(Body::from("ok"));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Ok(response)
        }
        ["api"] => {
            get_only(&req)?;
            discovery::core_versions(api, req.accept())
        }
        ["apis"] => {
            get_only(&req)?;
            discovery::group_list(api, req.accept())
        }
        ["api", "v1"] => {
            get_only(&req)?;
            discovery::resource_list(api, "", "v1")
        }
        ["apis", group] => {
            get_only(&req)?;
            discovery::group(api, group)
        }
        ["apis", group, version] => {
            get_only(&req)?;
            discovery::resource_list(api, group, version)
        }
        ["openapi", "v2"] | ["swagger-2.0.0.pb-v1"] => {
            get_only(&req)?;
            Ok(openapi::v2(api))
        }
        ["openapi", "v3"] => {
            get_only(&req)?;
            Ok(openapi::v3_root(api))
        }
        ["openapi", "v3", "api", "v1"] => {
            get_only(&req)?;
            openapi::v3_group(api, "", "v1")
        }
        ["openapi", "v3", "apis", group, version] => {
            get_only(&req)?;
            openapi::v3_group(api, group, version)
        }
        ["apis", "authorization.k8s.io", "v1", review] if auth::is_authorization_review(review) => {
            auth::authorization_review(api, review, req).await
        }
        [
            "apis",
            "authentication.k8s.io",
            version,
            "selfsubjectreviews",
        ] => auth::self_subject_review(version, req).await,
        ["api", "v1", rest @ ..] => resources::handle(api, "", "v1", rest, req).await,
        ["apis", group, version, rest @ ..] => {
            resources::handle(api, group, version, rest, req).await
        }
        _ => Err(not_found_path()),
    }
}
