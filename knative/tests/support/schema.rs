//! Validation against the real CRD schemas in testdata/ (copied from Knative
//! Serving and Istio, see testdata/SOURCES.md): each CRD's
//! `openAPIV3Schema` turned into a JSON Schema the `jsonschema` crate runs.
//!
//! The conversion mirrors what kube-apiserver enforces with
//! `kubectl apply --validate=strict`: an object schema that lists its
//! properties rejects unknown ones unless it says
//! `x-kubernetes-preserve-unknown-fields: true`; `x-kubernetes-int-or-string`
//! accepts an integer or a string; `nullable: true` also accepts null.
//! CEL rules (`x-kubernetes-validations`) are not evaluated.

#![allow(dead_code)] // each test binary uses a part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// The repository's `testdata/`, which carries the upstream files the tests read.
pub fn reference_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    assert!(
        dir.is_dir(),
        "{} is missing: the reference schemas (Knative and Istio CRDs) live in the repository's testdata/",
        dir.display()
    );
    dir
}

/// Validators for every (apiVersion, kind) of a set of CRD files.
pub struct Schemas {
    validators: BTreeMap<(String, String), jsonschema::Validator>,
}

impl Schemas {
    /// The Knative Serving CRDs (config/core/300-resources).
    pub fn knative() -> Self {
        Self::load(&reference_dir().join("knative_serving/config/core/300-resources"))
    }

    /// The Istio CRDs (manifests/charts/base/files/extracted).
    pub fn istio() -> Self {
        Self::load(&reference_dir().join("istio_istio/manifests/charts/base/files/extracted"))
    }

    /// Every CRD in the YAML files of `dir`.
    pub fn load(dir: &Path) -> Self {
        let mut validators = BTreeMap::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        entries.sort();
        for path in entries {
            let text = std::fs::read_to_string(&path).expect("readable CRD file");
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
            for crd in docs
                .into_iter()
                .filter(|d| d["kind"] == "CustomResourceDefinition")
            {
                let group = crd["spec"]["group"]
                    .as_str()
                    .expect("spec.group")
                    .to_owned();
                let kind = crd["spec"]["names"]["kind"]
                    .as_str()
                    .expect("spec.names.kind")
                    .to_owned();
                for version in crd["spec"]["versions"].as_array().expect("spec.versions") {
                    let name = version["name"].as_str().expect("version name");
                    let openapi = &version["schema"]["openAPIV3Schema"];
                    assert!(
                        openapi.is_object(),
                        "{} {kind} {name} has no openAPIV3Schema",
                        path.display()
                    );
                    let schema = to_json_schema(&with_object_fields(openapi));
                    let validator = jsonschema::draft7::new(&schema).unwrap_or_else(|e| {
                        panic!(
                            "{} {kind} {name}: schema does not compile: {e}",
                            path.display()
                        )
                    });
                    validators.insert((format!("{group}/{name}"), kind.clone()), validator);
                }
            }
        }
        assert!(!validators.is_empty(), "no CRDs found in {}", dir.display());
        Self { validators }
    }

    /// How many (apiVersion, kind) pairs are known.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Every schema violation of `object`, as `PATH: message`; the object's
    /// apiVersion and kind pick the schema (an unknown pair is an error too).
    pub fn violations(&self, object: &Value) -> Vec<String> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let Some(validator) = self.validators.get(&(api_version.clone(), kind.clone())) else {
            return vec![format!(
                "no schema for apiVersion {api_version:?} kind {kind:?}"
            )];
        };
        validator
            .iter_errors(object)
            .map(|error| format!("{}: {error}", error.instance_path()))
            .collect()
    }

    /// Panics with every violation when `object` does not match its schema.
    pub fn assert_valid(&self, object: &Value) {
        let violations = self.violations(object);
        assert!(
            violations.is_empty(),
            "{} {} violates its CRD schema:\n  {}\nobject: {}",
            object["kind"],
            object["metadata"]["name"],
            violations.join("\n  "),
            serde_json::to_string_pretty(object).unwrap_or_default()
        );
    }
}

/// The API server accepts apiVersion, kind and metadata on every object,
/// whether or not the CRD's schema lists them (Istio's do not).
fn with_object_fields(root: &Value) -> Value {
    let mut root = root.clone();
    if let Some(properties) = root.get_mut("properties").and_then(Value::as_object_mut) {
        for (field, ty) in [
            ("apiVersion", "string"),
            ("kind", "string"),
            ("metadata", "object"),
        ] {
            properties
                .entry(field)
                .or_insert_with(|| serde_json::json!({"type": ty}));
        }
    }
    root
}

/// Converts one openAPIV3Schema node (recursively) into JSON Schema draft 7.
pub fn to_json_schema(node: &Value) -> Value {
    let Value::Object(map) = node else {
        return node.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let converted = match key.as_str() {
            "properties" | "patternProperties" | "definitions" => Value::Object(
                value
                    .as_object()
                    .map(|props| {
                        props
                            .iter()
                            .map(|(k, v)| (k.clone(), to_json_schema(v)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "items" | "additionalProperties" | "not" => to_json_schema(value),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .map(|a| a.iter().map(to_json_schema).collect())
                    .unwrap_or_default(),
            ),
            // Documentation and server-side-only rules: no meaning to a JSON Schema validator.
            "description" | "x-kubernetes-validations" => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        out.remove("type");
        if !out.contains_key("anyOf") {
            out.insert(
                "anyOf".into(),
                serde_json::json!([{"type": "integer"}, {"type": "string"}]),
            );
        }
    }
    if map.get("nullable") == Some(&Value::Bool(true))
        && let Some(Value::String(ty)) = out.get("type").cloned()
    {
        out.insert("type".into(), serde_json::json!([ty, "null"]));
    }
    let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if out.contains_key("properties") && !out.contains_key("additionalProperties") && !preserves {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}
