//! Discovery: `/version`, `/api`, `/apis` (aggregated v2 / v2beta1 or legacy, by
//! Accept), `/apis/{group}` and the resource lists.

use std::collections::BTreeSet;

use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use super::{Api, json, json_with_type, not_found_path};
use crate::error::Error;
use crate::resource::ResourceType;

const VERBS: [&str; 8] = [
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];
const STATUS_VERBS: [&str; 3] = ["get", "patch", "update"];

/// Which discovery document a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    AggregatedV2,
    AggregatedV2Beta1,
    Legacy,
}

/// The first format in the Accept list that the server can produce.
fn negotiate(accept: &str) -> Format {
    if accept.trim().is_empty() {
        return Format::Legacy;
    }
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        if param("as") == Some("APIGroupDiscoveryList") {
            if media == "application/json" && param("g") == Some("apidiscovery.k8s.io") {
                match param("v") {
                    Some("v2") => return Format::AggregatedV2,
                    Some("v2beta1") => return Format::AggregatedV2Beta1,
                    _ => {}
                }
            }
            continue;
        }
        if matches!(media, "application/json" | "*/*" | "application/*") {
            return Format::Legacy;
        }
    }
    Format::Legacy
}

pub(super) fn version(api: &Api) -> Response {
    let minor = api.minor_version.to_string();
    json(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": minor,
            "gitVersion": format!("v1.{minor}.0-okonomi"),
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": format!("{}/{}", std::env::consts::OS, arch()),
        }),
    )
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn groups(api: &Api) -> BTreeSet<(String, String)> {
    api.resources
        .iter()
        .filter(|r| !r.group.is_empty())
        .map(|r| (r.group.clone(), r.version.clone()))
        .collect()
}

fn aggregated(api: &Api, core: bool, format: Format) -> Response {
    let api_version = match format {
        Format::AggregatedV2Beta1 => "apidiscovery.k8s.io/v2beta1",
        _ => "apidiscovery.k8s.io/v2",
    };
    let pairs: Vec<(String, String)> = if core {
        api.resources
            .iter()
            .filter(|r| r.group.is_empty())
            .map(|r| (String::new(), r.version.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    } else {
        groups(api).into_iter().collect()
    };
    let mut items: Vec<Value> = Vec::new();
    for (group, version) in pairs {
        let resources: Vec<Value> = api
            .resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
            .map(aggregated_resource)
            .collect();
        items.push(json!({
            "metadata": {"name": group, "creationTimestamp": null},
            "versions": [{"version": version, "resources": resources, "freshness": "Current"}],
        }));
    }
    let v = if format == Format::AggregatedV2Beta1 {
        "v2beta1"
    } else {
        "v2"
    };
    let mut response = json_with_type(
        StatusCode::OK,
        &json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": api_version,
            "metadata": {},
            "items": items,
        }),
        &format!("application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"),
    );
    response
        .headers_mut()
        .insert(http::header::VARY, http::HeaderValue::from_static("Accept"));
    response
}

fn verbs(rt: &ResourceType) -> Vec<&'static str> {
    if rt.namespaced {
        VERBS.to_vec()
    } else {
        VERBS
            .iter()
            .copied()
            .filter(|v| *v != "deletecollection")
            .collect()
    }
}

fn aggregated_resource(rt: &ResourceType) -> Value {
    let kind = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let mut resource = json!({
        "resource": rt.plural,
        "responseKind": kind,
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": verbs(rt),
    });
    if let Some(map) = resource.as_object_mut() {
        if !rt.short_names.is_empty() {
            map.insert("shortNames".into(), json!(rt.short_names));
        }
        if !rt.categories.is_empty() {
            map.insert("categories".into(), json!(rt.categories));
        }
        let subresources: Vec<Value> = subresources(rt)
            .into_iter()
            .map(|s| {
                json!({
                    "subresource": s.name,
                    "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                    "verbs": s.verbs,
                })
            })
            .collect();
        if !subresources.is_empty() {
            map.insert("subresources".into(), json!(subresources));
        }
    }
    resource
}

/// A subresource as discovery lists it.
struct Subresource {
    name: &'static str,
    group: String,
    version: String,
    kind: String,
    verbs: Vec<&'static str>,
}

/// `status` for types with it, plus the built-in kinds' own: a Deployment's
/// `scale` (an `autoscaling/v1` Scale), a Pod's `log` and `portforward`.
fn subresources(rt: &ResourceType) -> Vec<Subresource> {
    let mut out = Vec::new();
    if rt.status_subresource {
        out.push(Subresource {
            name: "status",
            group: rt.group.clone(),
            version: rt.version.clone(),
            kind: rt.kind.clone(),
            verbs: STATUS_VERBS.to_vec(),
        });
    }
    let own =
        |name: &'static str, group: &str, version: &str, kind: &str, verbs: &[&'static str]| {
            Subresource {
                name,
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                verbs: verbs.to_vec(),
            }
        };
    match crate::builtin::Builtin::of(rt) {
        Some(crate::builtin::Builtin::Deployment) => {
            out.push(own(
                "scale",
                "autoscaling",
                "v1",
                "Scale",
                &["get", "patch", "update"],
            ));
        }
        Some(crate::builtin::Builtin::Pod) => {
            out.push(own("log", "", "v1", "Pod", &["get"]));
            out.push(own(
                "portforward",
                "",
                "v1",
                "PodPortForwardOptions",
                &["create", "get"],
            ));
        }
        _ => {}
    }
    out
}

pub(super) fn core_versions(api: &Api, accept: &str) -> Result<Response, Error> {
    match negotiate(accept) {
        Format::Legacy => Ok(json(
            StatusCode::OK,
            &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
            }),
        )),
        format => Ok(aggregated(api, true, format)),
    }
}

pub(super) fn group_list(api: &Api, accept: &str) -> Result<Response, Error> {
    match negotiate(accept) {
        Format::Legacy => {
            let groups: Vec<Value> = groups(api)
                .into_iter()
                .map(|(g, v)| group_json(&g, &v))
                .collect();
            Ok(json(
                StatusCode::OK,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            ))
        }
        format => Ok(aggregated(api, false, format)),
    }
}

fn group_json(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub(super) fn group(api: &Api, group: &str) -> Result<Response, Error> {
    let (g, v) = groups(api)
        .into_iter()
        .find(|(g, _)| g == group)
        .ok_or_else(not_found_path)?;
    let mut body = group_json(&g, &v);
    if let Some(map) = body.as_object_mut() {
        map.insert("kind".into(), json!("APIGroup"));
        map.insert("apiVersion".into(), json!("v1"));
    }
    Ok(json(StatusCode::OK, &body))
}

pub(super) fn resource_list(api: &Api, group: &str, version: &str) -> Result<Response, Error> {
    let types: Vec<&ResourceType> = api
        .resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if types.is_empty() {
        return Err(not_found_path());
    }
    let mut resources = Vec::new();
    for rt in types {
        let mut entry = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": verbs(rt),
        });
        if let Some(map) = entry.as_object_mut() {
            if !rt.short_names.is_empty() {
                map.insert("shortNames".into(), json!(rt.short_names));
            }
            if !rt.categories.is_empty() {
                map.insert("categories".into(), json!(rt.categories));
            }
        }
        resources.push(entry);
        for sub in subresources(rt) {
            let mut entry = json!({
                "name": format!("{}/{}", rt.plural, sub.name),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if sub.group != rt.group || sub.version != rt.version {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            resources.push(entry);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(json(
        StatusCode::OK,
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_accept_order() {
        let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(v2), Format::AggregatedV2);
        let beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(beta), Format::AggregatedV2Beta1);
        assert_eq!(negotiate("application/json"), Format::Legacy);
        assert_eq!(negotiate(""), Format::Legacy);
        assert_eq!(
            negotiate(
                "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json"
            ),
            Format::Legacy
        );
    }
}
