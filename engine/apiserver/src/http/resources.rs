//! Requests on resources: collections (list, watch, create, deletecollection),
//! objects (get, update, patch, delete) and the `/status` subresource.

use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::validation::{FieldValidation, dropped_fields, judge};
use super::{Api, Req, decode, json, not_found_path, table, watch};
use crate::builtin::{Builtin, access};
use crate::error::Error;
use crate::resource::ResourceType;
use crate::status::{Status, StatusDetails};
use crate::store::{ListOptions, Patch, Store, WriteOptions};

/// The subresource a path names, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sub {
    None,
    Status,
    Scale,
    Log,
    PortForward,
}

impl Sub {
    fn name(self) -> &'static str {
        match self {
            Sub::None => "",
            Sub::Status => "status",
            Sub::Scale => "scale",
            Sub::Log => "log",
            Sub::PortForward => "portforward",
        }
    }

    /// The subresource `name` of `rt`, if `rt` has it.
    fn of(rt: &ResourceType, name: &str) -> Option<Sub> {
        let kind = Builtin::of(rt);
        match name {
            "status" if rt.status_subresource => Some(Sub::Status),
            "scale" if kind == Some(Builtin::Deployment) => Some(Sub::Scale),
            "log" if kind == Some(Builtin::Pod) => Some(Sub::Log),
            "portforward" if kind == Some(Builtin::Pod) => Some(Sub::PortForward),
            _ => None,
        }
    }
}

/// What a resource path names.
struct Target<'a> {
    rt: &'a ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Sub,
}

fn resolve<'a>(
    api: &'a Api,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Target<'a>, Error> {
    let find = |plural: &str| api.find(group, version, plural).ok_or_else(not_found_path);
    let target = |rt, namespace: Option<&str>, name: Option<&str>, sub| Target {
        rt,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        sub,
    };
    // `namespaces/{ns}/{plural}…` only when `plural` is a namespaced type here;
    // otherwise `namespaces/…` is the namespaces resource itself.
    if let ["namespaces", ns, plural, tail @ ..] = rest
        && let Some(rt) = api.find(group, version, plural)
        && rt.namespaced
    {
        return match tail {
            [] => Ok(target(rt, Some(ns), None, Sub::None)),
            [name] => Ok(target(rt, Some(ns), Some(name), Sub::None)),
            [name, sub] => match Sub::of(rt, sub) {
                Some(sub) => Ok(target(rt, Some(ns), Some(name), sub)),
                None => Err(not_found_path()),
            },
            _ => Err(not_found_path()),
        };
    }
    match rest {
        [plural] => Ok(target(find(plural)?, None, None, Sub::None)),
        [plural, name] => {
            let rt = find(plural)?;
            if rt.namespaced {
                return Err(not_found_path());
            }
            Ok(target(rt, None, Some(name), Sub::None))
        }
        [plural, name, "status"] => {
            let rt = find(plural)?;
            if rt.namespaced || !rt.status_subresource {
                return Err(not_found_path());
            }
            Ok(target(rt, None, Some(name), Sub::Status))
        }
        _ => Err(not_found_path()),
    }
}

/// The Kubernetes verb of a request on `target`.
fn verb(target: &Target<'_>, req: &Req) -> &'static str {
    let watching = matches!(req.param("watch"), Some("true" | "1"));
    match (&target.name, &req.method) {
        (_, &Method::GET) if target.sub == Sub::PortForward => "get",
        (_, &Method::POST) if target.sub == Sub::PortForward => "create",
        (None, &Method::GET) if watching => "watch",
        (None, &Method::GET) => "list",
        (None, &Method::POST) => "create",
        (None, &Method::DELETE) => "deletecollection",
        (Some(_), &Method::GET | &Method::HEAD) => "get",
        (Some(_), &Method::PUT) => "update",
        (Some(_), &Method::PATCH) => "patch",
        (Some(_), &Method::DELETE) => "delete",
        _ => "unknown",
    }
}

/// Refuse what users may not do to the engine's kinds (see [`crate::builtin::access`]).
fn check_access(target: &Target<'_>, req: &Req) -> Result<(), Error> {
    let verb = verb(target, req);
    forbid_unless(target, verb)
}

fn forbid_unless(target: &Target<'_>, verb: &str) -> Result<(), Error> {
    let rt = target.rt;
    access::allowed(&rt.group, &rt.plural, target.sub.name(), verb).map_err(|why| {
        Error::Forbidden(access::forbidden_message(
            &rt.group,
            &rt.plural,
            target.sub.name(),
            target.name.as_deref(),
            target.namespace.as_deref(),
            verb,
            why,
        ))
    })
}

/// A user's write to a Deployment may change `spec.replicas` and nothing else.
fn guard_deployment(rt: &ResourceType, old: &Value, trial: &Value) -> Result<(), Error> {
    if Builtin::of(rt) != Some(Builtin::Deployment) {
        return Ok(());
    }
    match access::deployment_change_beyond_replicas(old, trial) {
        None => Ok(()),
        Some(field) => Err(Error::Forbidden(format!(
            "deployments.apps {:?} is forbidden: User {:?} may change only spec.replicas of a Deployment, not {field}: the engine makes Deployments from Knative Revisions; change the Knative Service instead",
            crate::store::object_name(old),
            access::USER,
        ))),
    }
}

fn write_options(req: &Req, options_kind: &str) -> Result<WriteOptions, Error> {
    Ok(WriteOptions {
        field_manager: req
            .param("fieldManager")
            .or_else(|| user_agent_manager(req))
            .map(str::to_string),
        dry_run: dry_run_param(req, options_kind)?,
        force: req.param("force") == Some("true"),
    })
}

/// Kubernetes' refusal of an options field outside its enum.
fn unsupported(options_kind: &str, field: &str, value: String, supported: &[&str]) -> Error {
    let supported = supported
        .iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    Error::Invalid {
        kind: options_kind.to_owned(),
        group: "meta.k8s.io".to_owned(),
        name: String::new(),
        causes: vec![crate::StatusCause {
            reason: "FieldValueNotSupported".to_owned(),
            message: format!("Unsupported value: {value}: supported values: {supported}"),
            field: field.to_owned(),
        }],
    }
}

/// A query parameter that must be one of `supported` when given.
fn enum_param<'a>(
    req: &'a Req,
    name: &str,
    supported: &[&str],
    options_kind: &str,
) -> Result<Option<&'a str>, Error> {
    match req.param(name) {
        Some(value) if !supported.contains(&value) => Err(unsupported(
            options_kind,
            name,
            format!("{value:?}"),
            supported,
        )),
        other => Ok(other),
    }
}

/// Kubernetes' deletion propagation policies.
const PROPAGATION_POLICIES: [&str; 3] = ["Foreground", "Background", "Orphan"];

/// `dryRun` as Kubernetes takes it: absent, or `All`; any other value is
/// refused (`dryRun=true` would otherwise write for real).
fn dry_run_param(req: &Req, options_kind: &str) -> Result<bool, Error> {
    match req.param("dryRun") {
        None => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(unsupported(
            options_kind,
            "dryRun",
            format!("[]string{{{other:?}}}"),
            &["All"],
        )),
    }
}

/// Without `fieldManager`, Kubernetes names the manager after the client: the
/// User-Agent up to its first `/` (`kubectl/v1.33.0 (linux/amd64)` → `kubectl`).
fn user_agent_manager(req: &Req) -> Option<&str> {
    req.headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|agent| agent.split('/').next())
        .map(str::trim)
        .filter(|m| !m.is_empty())
}

/// The store with the request's write options; `options_kind` names the
/// Kubernetes options type in an error (`CreateOptions`, `PatchOptions`, …).
fn writer(api: &Api, req: &Req, options_kind: &str) -> Result<Store, Error> {
    Ok(api
        .store
        .with_write_options(write_options(req, options_kind)?))
}

fn list_options(req: &Req, namespace: Option<&str>) -> ListOptions {
    ListOptions {
        namespace: namespace.map(str::to_string),
        label_selector: req.param("labelSelector").map(str::to_string),
        field_selector: req.param("fieldSelector").map(str::to_string),
        ..Default::default()
    }
}

/// A list's options with its page: `limit` and `continue`.
fn page_options(req: &Req, namespace: Option<&str>) -> Result<ListOptions, Error> {
    let limit = match req.param("limit") {
        None => None,
        Some(text) => Some(text.parse::<usize>().map_err(|_| {
            Error::BadRequest(format!(
                "invalid limit {text:?}: expected a whole number of objects"
            ))
        })?),
    };
    enum_param(
        req,
        "resourceVersionMatch",
        &["Exact", "NotOlderThan"],
        "ListOptions",
    )?;
    let continue_token = req.param("continue").map(str::to_string);
    if continue_token.is_some() && req.param("resourceVersion").is_some_and(|rv| rv != "0") {
        return Err(Error::BadRequest(
            "specifying resource version is not allowed when using continue".into(),
        ));
    }
    Ok(ListOptions {
        limit,
        continue_token,
        ..list_options(req, namespace)
    })
}

pub(super) async fn handle(
    api: &Api,
    group: &str,
    version: &str,
    rest: &[&str],
    req: Req,
) -> Result<Response, Error> {
    let target = resolve(api, group, version, rest)?;
    let namespace = target.namespace.as_deref();
    check_access(&target, &req)?;
    match target.sub {
        Sub::Scale => return scale(api, &target, req).await,
        Sub::Log => return super::logs::serve(api, &target.namespace, &target.name, req).await,
        Sub::PortForward => {
            return super::portforward::serve(api, &target.namespace, &target.name, req).await;
        }
        Sub::None | Sub::Status => {}
    }
    let status = target.sub == Sub::Status;
    match (&target.name, status) {
        (None, _) => match req.method {
            Method::GET => {
                let watching = matches!(req.param("watch"), Some("true" | "1"));
                if watching {
                    watch::serve(api, target.rt, &req, list_options(&req, namespace))
                } else {
                    list(api, target.rt, &req, namespace)
                }
            }
            Method::POST if namespace.is_some() || !target.rt.namespaced => {
                create(api, target.rt, namespace, req).await
            }
            Method::DELETE => delete_collection(api, target.rt, namespace, req).await,
            _ => Err(Error::MethodNotAllowed),
        },
        (Some(name), status) => {
            let ns = namespace.unwrap_or("");
            match req.method {
                Method::GET => {
                    let object = api.store.get(target.rt, ns, name)?;
                    Ok(single(target.rt, &req, &object, StatusCode::OK))
                }
                Method::PUT => update(api, target.rt, ns, name, status, req).await,
                Method::PATCH => patch(api, target.rt, ns, name, status, req).await,
                Method::DELETE if !status => delete(api, target.rt, ns, name, req).await,
                _ => Err(Error::MethodNotAllowed),
            }
        }
    }
}

/// One object, as JSON or as a one-row Table.
fn single(rt: &ResourceType, req: &Req, object: &Value, code: StatusCode) -> Response {
    match table::requested(req.accept()) {
        Some(version) if code == StatusCode::OK => json(
            code,
            &table::table(
                rt,
                version,
                std::slice::from_ref(object),
                object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                req.param("includeObject").unwrap_or("Metadata"),
                true,
            ),
        ),
        _ => json(code, object),
    }
}

fn list(
    api: &Api,
    rt: &ResourceType,
    req: &Req,
    namespace: Option<&str>,
) -> Result<Response, Error> {
    let listed = api.store.list(rt, &page_options(req, namespace)?)?;
    let mut metadata = json!({"resourceVersion": listed.resource_version.to_string()});
    if let Some(token) = &listed.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(count) = listed.remaining_item_count {
        metadata["remainingItemCount"] = json!(count);
    }
    let body = match table::requested(req.accept()) {
        Some(version) => {
            let mut table = table::table(
                rt,
                version,
                &listed.items,
                None,
                req.param("includeObject").unwrap_or("Metadata"),
                true,
            );
            table["metadata"] = metadata;
            table
        }
        None => json!({
            "apiVersion": rt.api_version(),
            "kind": rt.list_kind(),
            "metadata": metadata,
            "items": listed.items,
        }),
    };
    Ok(json(StatusCode::OK, &body))
}

/// Make the body's namespace and name agree with the URL (or fail as Kubernetes does).
fn place(
    rt: &ResourceType,
    object: &mut Value,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<(), Error> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| Error::BadRequest("the body must be a JSON object".into()))?;
    let meta = map
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| Error::BadRequest("metadata must be an object".into()))?;
    if rt.namespaced
        && let Some(ns) = namespace
    {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != ns => {
                return Err(Error::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                        .into(),
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(ns));
            }
        }
    }
    if let Some(name) = name {
        match meta.get("name").and_then(Value::as_str) {
            Some(given) if !given.is_empty() && given != name => {
                return Err(Error::BadRequest(format!(
                    "the name of the object ({given}) does not match the name on the URL ({name})"
                )));
            }
            _ => {
                meta.insert("name".into(), json!(name));
            }
        }
    }
    Ok(())
}

async fn create(
    api: &Api,
    rt: &ResourceType,
    namespace: Option<&str>,
    req: Req,
) -> Result<Response, Error> {
    let store = writer(api, &req, "CreateOptions")?;
    let validation = FieldValidation::of(&req);
    let content_type = req.content_type().to_string();
    let mut object = decode(&req.bytes().await?, &content_type)?;
    place(rt, &mut object, namespace, None)?;
    let warnings = match validation {
        FieldValidation::Ignore => Vec::new(),
        mode => {
            let trial = dry_run(&store).create(rt, object.clone()).await?;
            judge(mode, rt, dropped_fields(&object, &trial))?
        }
    };
    let created = store.create(rt, object).await?;
    Ok(with_warnings(
        json(StatusCode::CREATED, &created),
        &warnings,
    ))
}

/// The same writer, storing nothing.
fn dry_run(store: &Store) -> Store {
    store.with_write_options(WriteOptions {
        dry_run: true,
        ..store.write_options().clone()
    })
}

/// Add a `Warning: 299 - "…"` header per warning (kubectl prints them).
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('"', "'"));
        if let Ok(value) = http::HeaderValue::from_str(&text) {
            response.headers_mut().append(http::header::WARNING, value);
        }
    }
    response
}

async fn update(
    api: &Api,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    status: bool,
    req: Req,
) -> Result<Response, Error> {
    let store = writer(api, &req, "UpdateOptions")?;
    let validation = FieldValidation::of(&req);
    let content_type = req.content_type().to_string();
    let mut object = decode(&req.bytes().await?, &content_type)?;
    place(rt, &mut object, Some(namespace), Some(name))?;
    let warnings = match validation {
        FieldValidation::Ignore => Vec::new(),
        _ if status => Vec::new(),
        mode => {
            let trial = dry_run(&store).update(rt, object.clone()).await?;
            judge(mode, rt, dropped_fields(&object, &trial))?
        }
    };
    if !status && Builtin::of(rt) == Some(Builtin::Deployment) {
        let old = api.store.get(rt, namespace, name)?;
        let trial = dry_run(&store).update(rt, object.clone()).await?;
        guard_deployment(rt, &old, &trial)?;
    }
    let updated = if status {
        store.update_status(rt, object).await?
    } else {
        store.update(rt, object).await?
    };
    Ok(with_warnings(json(StatusCode::OK, &updated), &warnings))
}

async fn patch(
    api: &Api,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    status: bool,
    req: Req,
) -> Result<Response, Error> {
    let store = writer(api, &req, "PatchOptions")?;
    let validation = FieldValidation::of(&req);
    let content_type = req
        .content_type()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let accepted =
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";
    let req_manager = req.param("fieldManager").map(str::to_string);
    let bytes = req.bytes().await?;
    let patch = match content_type.as_str() {
        "application/merge-patch+json" => Patch::Merge(decode(&bytes, "json")?),
        "application/strategic-merge-patch+json" if crate::builtin::takes_strategic_merge(rt) => {
            Patch::Merge(crate::builtin::strategic_to_merge(decode(&bytes, "json")?))
        }
        "application/json-patch+json" => {
            let value = decode(&bytes, "json")?;
            Patch::Json(serde_json::from_value(value).map_err(|e| {
                Error::BadRequest(format!("the body is not a valid JSON patch: {e}"))
            })?)
        }
        "application/apply-patch+yaml" | "application/apply-patch+json" => {
            if req_manager.is_none() {
                return Err(Error::BadRequest(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
                        .into(),
                ));
            }
            let mut value = decode(&bytes, "yaml")?;
            if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut)
                && meta.get("managedFields").is_some()
            {
                return Err(Error::BadRequest(
                    "metadata.managedFields must be nil in an apply patch".into(),
                ));
            }
            crate::store::check_apply_type(rt, &value)?;
            Patch::Apply(value)
        }
        _ => {
            return Err(Error::UnsupportedMediaType {
                accepted: accepted.into(),
            });
        }
    };
    let current = api.store.get(rt, namespace, name).ok();
    let existed = current.is_some();
    if !existed && !status {
        // An apply that creates: the create verb decides.
        let rest = Target {
            rt,
            namespace: Some(namespace.to_string()),
            name: Some(name.to_string()),
            sub: Sub::None,
        };
        forbid_unless(&rest, "create")?;
    }
    if let (Some(old), false) = (&current, status)
        && Builtin::of(rt) == Some(Builtin::Deployment)
    {
        let trial = dry_run(&store).patch(rt, namespace, name, &patch).await?;
        guard_deployment(rt, old, &trial)?;
    }
    let submitted = match &patch {
        Patch::Merge(body) | Patch::Apply(body) => Some(body),
        Patch::Json(_) => None,
    };
    let warnings = match (validation, submitted) {
        (FieldValidation::Ignore, _) | (_, None) => Vec::new(),
        _ if status => Vec::new(),
        (mode, Some(body)) => {
            let trial = dry_run(&store).patch(rt, namespace, name, &patch).await?;
            judge(mode, rt, dropped_fields(body, &trial))?
        }
    };
    let patched = if status {
        store.patch_status(rt, namespace, name, &patch).await?
    } else {
        store.patch(rt, namespace, name, &patch).await?
    };
    let code = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(with_warnings(json(code, &patched), &warnings))
}

/// DeleteOptions preconditions and dryRun, when a body is sent.
async fn delete_options(req: Req) -> Result<(Option<String>, Option<String>, bool), Error> {
    let dry_run_query = dry_run_param(&req, "DeleteOptions")?;
    enum_param(
        &req,
        "propagationPolicy",
        &PROPAGATION_POLICIES,
        "DeleteOptions",
    )?;
    let content_type = req.content_type().to_string();
    let bytes = req.bytes().await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((None, None, dry_run_query));
    }
    // kubectl's typed clients may send DeleteOptions in protobuf; nothing in them
    // matters enough to refuse the delete over.
    let Ok(options) = decode(&bytes, &content_type) else {
        return Ok((None, None, dry_run_query));
    };
    if let Some(policy) = options.get("propagationPolicy").filter(|p| !p.is_null())
        && !policy
            .as_str()
            .is_some_and(|p| PROPAGATION_POLICIES.contains(&p))
    {
        return Err(unsupported(
            "DeleteOptions",
            "propagationPolicy",
            policy.to_string(),
            &PROPAGATION_POLICIES,
        ));
    }
    let uid = options
        .pointer("/preconditions/uid")
        .and_then(Value::as_str)
        .map(str::to_string);
    let rv = options
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    let dry_run = dry_run_query
        || options
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok((uid, rv, dry_run))
}

async fn delete(
    api: &Api,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    req: Req,
) -> Result<Response, Error> {
    let mut options = write_options(&req, "DeleteOptions")?;
    let (uid, rv, dry_run) = delete_options(req).await?;
    options.dry_run = dry_run;
    let current = api.store.get(rt, namespace, name)?;
    let meta = |field: &str| {
        current
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
    };
    if uid.as_deref().is_some_and(|u| Some(u) != meta("uid"))
        || rv
            .as_deref()
            .is_some_and(|v| Some(v) != meta("resourceVersion"))
    {
        return Err(Error::Conflict {
            resource: rt.qualified_resource(),
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            name: name.into(),
        });
    }
    let deleted = if options.dry_run {
        current
    } else {
        api.store
            .with_write_options(options)
            .delete(rt, namespace, name)
            .await?
    };
    // Still there, waiting for its finalizers: Kubernetes answers with the object.
    let pending = deleted
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if pending {
        return Ok(json(StatusCode::OK, &deleted));
    }
    let status = Status::success(StatusDetails {
        name: name.into(),
        group: rt.group.clone(),
        kind: rt.plural.clone(),
        uid: deleted
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
        causes: Vec::new(),
    });
    Ok(json(StatusCode::OK, &status.to_value()))
}

async fn delete_collection(
    api: &Api,
    rt: &ResourceType,
    namespace: Option<&str>,
    req: Req,
) -> Result<Response, Error> {
    let options = list_options(&req, namespace);
    let dry_run = dry_run_param(&req, "DeleteOptions")?;
    enum_param(
        &req,
        "propagationPolicy",
        &PROPAGATION_POLICIES,
        "DeleteOptions",
    )?;
    let listed = api.store.list(rt, &options)?;
    let mut deleted = Vec::new();
    for item in &listed.items {
        let ns = item
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if dry_run {
            deleted.push(item.clone());
            continue;
        }
        match api.store.delete(rt, ns, name).await {
            Ok(object) => deleted.push(object),
            // Already gone through a cascade from an earlier item.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({
            "apiVersion": rt.api_version(),
            "kind": rt.list_kind(),
            "metadata": {"resourceVersion": api.store.resource_version().to_string()},
            "items": deleted,
        }),
    ))
}

/// A Deployment's `scale` subresource: an `autoscaling/v1` Scale whose
/// `spec.replicas` is the Deployment's.
fn scale_of(deployment: &Value) -> Value {
    let meta = deployment
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let pick = |field: &str| meta.get(field).cloned().unwrap_or(Value::Null);
    let selector = deployment
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            let mut parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            parts.sort();
            parts.join(",")
        })
        .unwrap_or_default();
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": pick("name"),
            "namespace": pick("namespace"),
            "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"),
            "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": {"replicas": deployment.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": deployment.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

async fn scale(api: &Api, target: &Target<'_>, req: Req) -> Result<Response, Error> {
    let rt = target.rt;
    let namespace = target.namespace.as_deref().unwrap_or("");
    let name = target.name.as_deref().unwrap_or("");
    let current = api.store.get(rt, namespace, name)?;
    let method = req.method.clone();
    if method == Method::GET {
        return Ok(json(StatusCode::OK, &scale_of(&current)));
    }
    let store = writer(api, &req, "UpdateOptions")?;
    let content_type = req
        .content_type()
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let bytes = req.bytes().await?;
    let mut wanted = scale_of(&current);
    match (method, content_type.as_str()) {
        (Method::PUT, _) => wanted = decode(&bytes, &content_type)?,
        (Method::PATCH, "application/merge-patch+json") => {
            json_patch::merge(&mut wanted, &decode(&bytes, "json")?);
        }
        (Method::PATCH, "application/json-patch+json") => {
            let patch: json_patch::Patch = serde_json::from_value(decode(&bytes, "json")?)
                .map_err(|e| {
                    Error::BadRequest(format!("the body is not a valid JSON patch: {e}"))
                })?;
            json_patch::patch(&mut wanted, &patch)
                .map_err(|e| Error::BadRequest(format!("the JSON patch cannot be applied: {e}")))?;
        }
        (Method::PATCH, _) => {
            return Err(Error::UnsupportedMediaType {
                accepted: "application/json-patch+json, application/merge-patch+json".into(),
            });
        }
        _ => return Err(Error::MethodNotAllowed),
    }
    let replicas = wanted
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            rt.invalid(
                name,
                vec![crate::status::StatusCause::invalid(
                    "spec.replicas",
                    "Invalid value: must be a whole number of replicas, 0 or more",
                )],
            )
        })?;
    let mut change = json!({"spec": {"replicas": replicas}});
    if let Some(rv) = wanted
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
    {
        change["metadata"] = json!({"resourceVersion": rv});
    }
    let scaled = store
        .patch(rt, namespace, name, &Patch::Merge(change))
        .await?;
    Ok(json(StatusCode::OK, &scale_of(&scaled)))
}
