//! Schemas for the OpenAPI v3 documents, so that `kubectl explain` works for
//! every served kind: the built-in kinds from k8s-openapi's types (through
//! schemars), Knative's kinds from Knative's own CRDs (`openapi/knative/`, see
//! `openapi/SOURCES.md`). Each kind's schema carries
//! `x-kubernetes-group-version-kind`, which is how kubectl finds it.

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_openapi::api::{apps, core, events};
use schemars::JsonSchema;
use serde_json::{Map, Value, json};

use crate::builtin::Builtin;
use crate::resource::ResourceType;

/// Knative's CRDs, as published.
const CRDS: [&str; 5] = [
    include_str!("../../../openapi/knative/service.yaml"),
    include_str!("../../../openapi/knative/configuration.yaml"),
    include_str!("../../../openapi/knative/revision.yaml"),
    include_str!("../../../openapi/knative/route.yaml"),
    include_str!("../../../openapi/knative/podautoscaler.yaml"),
];

/// (group, version, kind) → the CRD's openAPIV3Schema, parsed once.
fn crd_schemas() -> &'static HashMap<(String, String, String), Value> {
    static SCHEMAS: OnceLock<HashMap<(String, String, String), Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut out = HashMap::new();
        for text in CRDS {
            // The files are part of the build; one that does not parse is left out
            // (and the explain test names it) rather than failing every request.
            let Ok(crd) = serde_saphyr::from_str::<Value>(text) else {
                continue;
            };
            let group = crd
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = crd
                .pointer("/spec/names/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            for version in crd
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = version.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some(schema) = version.pointer("/schema/openAPIV3Schema") {
                    out.insert((group.into(), name.into(), kind.into()), schema.clone());
                }
            }
        }
        out
    })
}

/// Kubernetes' name for a custom resource's schema: the group reversed, then
/// version and kind (`dev.knative.serving.v1.Service`).
fn crd_schema_name(rt: &ResourceType) -> String {
    let reversed: Vec<&str> = rt.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind)
}

fn gvk(rt: &ResourceType) -> Value {
    json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}])
}

/// `components.schemas` for the kinds `types` (all of one group and version).
pub(super) fn components(types: &[&ResourceType]) -> Map<String, Value> {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut named: Vec<(String, &ResourceType)> = Vec::new();
    let mut crds: Map<String, Value> = Map::new();
    for rt in types {
        let mut add = |name: std::borrow::Cow<'static, str>| named.push((name.into_owned(), rt));
        match Builtin::of(rt) {
            Some(Builtin::Namespace) => {
                generator.subschema_for::<core::v1::Namespace>();
                add(core::v1::Namespace::schema_name());
            }
            Some(Builtin::ConfigMap) => {
                generator.subschema_for::<core::v1::ConfigMap>();
                add(core::v1::ConfigMap::schema_name());
            }
            Some(Builtin::Secret) => {
                generator.subschema_for::<core::v1::Secret>();
                add(core::v1::Secret::schema_name());
            }
            Some(Builtin::ServiceAccount) => {
                generator.subschema_for::<core::v1::ServiceAccount>();
                add(core::v1::ServiceAccount::schema_name());
            }
            Some(Builtin::Pod) => {
                generator.subschema_for::<core::v1::Pod>();
                add(core::v1::Pod::schema_name());
            }
            Some(Builtin::Event) => {
                generator.subschema_for::<core::v1::Event>();
                add(core::v1::Event::schema_name());
            }
            Some(Builtin::EventsV1) => {
                generator.subschema_for::<events::v1::Event>();
                add(events::v1::Event::schema_name());
            }
            Some(Builtin::Deployment) => {
                generator.subschema_for::<apps::v1::Deployment>();
                add(apps::v1::Deployment::schema_name());
            }
            Some(Builtin::ReplicaSet) => {
                generator.subschema_for::<apps::v1::ReplicaSet>();
                add(apps::v1::ReplicaSet::schema_name());
            }
            Some(Builtin::PodAutoscaler) | None => {
                let key = (rt.group.clone(), rt.version.clone(), rt.kind.clone());
                if let Some(schema) = crd_schemas().get(&key) {
                    let mut schema = schema.clone();
                    if let Some(map) = schema.as_object_mut() {
                        map.insert("x-kubernetes-group-version-kind".into(), gvk(rt));
                    }
                    crds.insert(crd_schema_name(rt), schema);
                }
            }
        }
    }
    let mut schemas = generator.take_definitions(true);
    for (name, rt) in named {
        if let Some(schema) = schemas.get_mut(&name).and_then(Value::as_object_mut) {
            schema.insert("x-kubernetes-group-version-kind".into(), gvk(rt));
        }
    }
    schemas.extend(crds);
    schemas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_kind_has_a_schema_with_its_gvk() {
        let all = ResourceType::all_builtin();
        let mut by_group: HashMap<(String, String), Vec<&ResourceType>> = HashMap::new();
        for rt in &all {
            by_group
                .entry((rt.group.clone(), rt.version.clone()))
                .or_default()
                .push(rt);
        }
        for types in by_group.values() {
            let schemas = components(types);
            for rt in types {
                let found = schemas.values().any(|s| {
                    s.get("x-kubernetes-group-version-kind")
                        .and_then(Value::as_array)
                        .is_some_and(|g| {
                            g.iter().any(|g| {
                                g["kind"] == rt.kind.as_str() && g["group"] == rt.group.as_str()
                            })
                        })
                });
                assert!(found, "no schema for {}", rt.qualified_resource());
            }
        }
    }
}
