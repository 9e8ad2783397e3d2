//! OpenAPI for `kubectl apply` with its default `--validate=strict` and for
//! `kubectl explain`. kubectl looks for a `fieldValidation` query parameter on
//! the resource's PATCH operation and, when it finds one, leaves validation to
//! the server. 1.29+ read OpenAPI v3 (JSON); 1.27/1.28 read only `/openapi/v2`
//! in protobuf (gnostic's `openapi.v2.Document`, written here by hand, with no
//! schemas). The v3 documents carry every kind's schema ([`schemas`]), which
//! `kubectl explain` reads on all three versions. The PATCH operations list no
//! strategic merge body, so kubectl keeps JSON merge patches for Knative's kinds.

mod schemas;

use axum::response::Response;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::{Api, json, json_with_type, not_found_path};
use crate::error::Error;
use crate::resource::ResourceType;

const QUERY_PARAMETERS: [(&str, &str); 4] = [
    (
        "fieldValidation",
        "Strict, Warn or Ignore: what to do with unknown or duplicate fields.",
    ),
    ("fieldManager", "The name of the actor making the change."),
    (
        "dryRun",
        "All: validate and compute the result, but store nothing.",
    ),
    (
        "force",
        "Server-side apply: take ownership of conflicting fields.",
    ),
];

fn item_path(rt: &ResourceType) -> String {
    let prefix = if rt.group.is_empty() {
        format!("/api/{}", rt.version)
    } else {
        format!("/apis/{}/{}", rt.group, rt.version)
    };
    if rt.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
    } else {
        format!("{prefix}/{}/{{name}}", rt.plural)
    }
}

fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

pub(super) fn v3_root(api: &Api) -> Response {
    let mut paths = Map::new();
    let mut seen = std::collections::BTreeSet::new();
    for rt in api.resources.iter() {
        if seen.insert((rt.group.clone(), rt.version.clone())) {
            let path = group_version_path(&rt.group, &rt.version);
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}")}),
            );
        }
    }
    json(StatusCode::OK, &json!({"paths": paths}))
}

pub(super) fn v3_group(api: &Api, group: &str, version: &str) -> Result<Response, Error> {
    let types: Vec<&ResourceType> = api
        .resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if types.is_empty() {
        return Err(not_found_path());
    }
    let mut paths = Map::new();
    for rt in types.iter().copied() {
        let gvk = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
        let parameters: Vec<Value> = QUERY_PARAMETERS
            .iter()
            .map(|(name, description)| {
                json!({"name": name, "in": "query", "description": description,
                       "schema": {"type": "string", "uniqueItems": true}})
            })
            .collect();
        let any_object = json!({"schema": {"type": "object"}});
        let ok = json!({"200": {"description": "OK", "content": {"application/json": any_object}}});
        let operation = |action: &str, verb: &str| {
            json!({
                "operationId": format!("{verb}{}", rt.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "responses": ok,
            })
        };
        let mut patch = operation("patch", "patch");
        let mut put = operation("put", "replace");
        if let (Some(p), Some(u)) = (patch.as_object_mut(), put.as_object_mut()) {
            p.insert("parameters".into(), json!(parameters));
            p.insert(
                "requestBody".into(),
                json!({"content": {
                    "application/json-patch+json": any_object,
                    "application/merge-patch+json": any_object,
                    "application/apply-patch+yaml": any_object,
                }}),
            );
            u.insert("parameters".into(), json!(parameters));
            u.insert(
                "requestBody".into(),
                json!({"content": {"application/json": any_object}}),
            );
        }
        paths.insert(
            item_path(rt),
            json!({
                "get": operation("get", "read"),
                "put": put,
                "patch": patch,
                "delete": operation("delete", "delete"),
            }),
        );
    }
    Ok(json_with_type(
        StatusCode::OK,
        &json!({
            "openapi": "3.0.0",
            "info": {"title": "okonomi", "version": format!("v1.{}", api.minor_version)},
            "paths": paths,
            "components": {"schemas": schemas::components(&types)},
        }),
        "application/json",
    ))
}

/// A minimal protobuf writer: length-delimited and varint fields.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut value: u64) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn bytes(mut self, field: u32, bytes: &[u8]) -> Self {
        self.varint(u64::from(field) << 3 | 2);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
        self
    }

    fn string(self, field: u32, value: &str) -> Self {
        self.bytes(field, value.as_bytes())
    }

    fn message(self, field: u32, message: Message) -> Self {
        self.bytes(field, &message.0)
    }
}

/// `openapi.v2.Operation` with the GVK extension and the query parameters.
fn v2_operation(rt: &ResourceType, verb: &str, with_parameters: bool) -> Message {
    let mut op = Message::default()
        .string(5, &format!("{verb}{}", rt.kind))
        .string(6, "application/json");
    if with_parameters {
        for (name, description) in QUERY_PARAMETERS {
            // ParametersItem.parameter(1) -> Parameter.non_body_parameter(2)
            // -> NonBodyParameter.query_parameter_sub_schema(3)
            let query = Message::default()
                .string(2, "query")
                .string(3, description)
                .string(4, name)
                .string(6, "string");
            let non_body = Message::default().message(3, query);
            let parameter = Message::default().message(2, non_body);
            op = op.message(8, Message::default().message(1, parameter));
        }
    }
    // Responses.response_code(1) = NamedResponseValue{name, ResponseValue.response(1)}
    let response = Message::default().string(1, "OK");
    let response_value = Message::default().message(1, response);
    let named = Message::default()
        .string(1, "200")
        .message(2, response_value);
    op = op.message(9, Message::default().message(1, named));
    let gvk_yaml = format!(
        "group: \"{}\"\nkind: {}\nversion: {}\n",
        rt.group, rt.kind, rt.version
    );
    let any = Message::default().string(2, &gvk_yaml);
    let extension = Message::default()
        .string(1, "x-kubernetes-group-version-kind")
        .message(2, any);
    op.message(13, extension)
}

/// The protobuf `openapi.v2.Document`.
pub(super) fn v2_document(api: &Api) -> Vec<u8> {
    let info = Message::default()
        .string(1, "okonomi")
        .string(2, &format!("v1.{}", api.minor_version));
    let mut paths = Message::default();
    for rt in api.resources.iter() {
        // PathItem: get(2), put(3), delete(5), patch(8).
        let item = Message::default()
            .message(2, v2_operation(rt, "read", false))
            .message(3, v2_operation(rt, "replace", true))
            .message(5, v2_operation(rt, "delete", false))
            .message(8, v2_operation(rt, "patch", true));
        let named = Message::default()
            .string(1, &item_path(rt))
            .message(2, item);
        paths = paths.message(2, named);
    }
    Message::default()
        .string(1, "2.0")
        .message(2, info)
        .message(8, paths)
        .0
}

pub(super) fn v2(api: &Api) -> Response {
    let mut response = Response::new(axum::body::Body::from(v2_document(api)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
        ),
    );
    response
}
