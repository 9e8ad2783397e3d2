//! `okonomi://PATH` references in Kubernetes YAML, as `ko resolve` does with
//! `ko://`: find them, then substitute the digests of freshly built images.
//! Substitution is textual so comments and layout of the YAML survive.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::{Error, Result};

/// The scheme of a function reference in YAML.
pub const SCHEME: &str = "okonomi://";

/// Every distinct `okonomi://PATH` string value in the (multi-document) YAML `text`.
pub fn find_references(text: &str, path: &Path) -> Result<BTreeSet<String>> {
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| Error::Yaml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let mut found = BTreeSet::new();
    for doc in &documents {
        collect(doc, &mut found);
    }
    Ok(found)
}

fn collect(value: &serde_json::Value, found: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::String(s) if s.starts_with(SCHEME) => {
            found.insert(s.clone());
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, found)),
        serde_json::Value::Object(map) => map.values().for_each(|v| collect(v, found)),
        _ => {}
    }
}

/// The crate path of a reference: `okonomi://functions/hello` → `functions/hello`.
pub fn reference_path(reference: &str) -> &str {
    reference.strip_prefix(SCHEME).unwrap_or(reference)
}

/// Replaces each reference (as a whole token) with its image.
pub fn substitute(text: &str, images: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(SCHEME) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| {
                c.is_whitespace() || c == '"' || c == '\'' || c == ',' || c == ']' || c == '}'
            })
            .unwrap_or(tail.len());
        let token = &tail[..end];
        out.push_str(images.get(token).map_or(token, String::as_str));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "# keep me\napiVersion: serving.knative.dev/v1\nkind: Service\nspec:\n  template:\n    spec:\n      containers:\n      - image: okonomi://functions/hello\n---\nkind: Pod\nspec:\n  containers: [{image: \"okonomi://functions/echo\"}, {image: nginx}]\n";

    #[test]
    fn finds_and_substitutes_references() {
        let refs = find_references(YAML, Path::new("x.yaml")).unwrap();
        assert_eq!(
            refs.iter().map(String::as_str).collect::<Vec<_>>(),
            ["okonomi://functions/echo", "okonomi://functions/hello"]
        );
        assert_eq!(
            reference_path("okonomi://functions/hello"),
            "functions/hello"
        );
        let mut images = BTreeMap::new();
        images.insert(
            "okonomi://functions/hello".to_string(),
            "r/hello@sha256:1".to_string(),
        );
        images.insert(
            "okonomi://functions/echo".to_string(),
            "r/echo@sha256:2".to_string(),
        );
        let out = substitute(YAML, &images);
        assert!(out.starts_with("# keep me\n"));
        assert!(out.contains("- image: r/hello@sha256:1\n"), "{out}");
        assert!(out.contains("{image: \"r/echo@sha256:2\"}"), "{out}");
        assert!(!out.contains(SCHEME));
    }

    #[test]
    fn invalid_yaml_names_the_file() {
        let err = find_references("a: [", Path::new("bad.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bad.yaml: invalid YAML"), "{err}");
    }
}
