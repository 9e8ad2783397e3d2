//! `fieldValidation`: with `Strict` (kubectl's default) or `Warn`, fields the
//! server dropped are reported. The store keeps any JSON; it is admission (e.g.
//! Knative's, which decodes into typed objects) that drops what it does not know,
//! so the write is first tried as a dry run and the submitted fields compared with
//! the result. A typo such as `imagee` then fails as it would on a real cluster
//! instead of vanishing.

use serde_json::Value;

use super::Req;
use crate::error::Error;
use crate::resource::ResourceType;

/// What the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldValidation {
    /// Drop unknown fields silently (the default here: checking costs a dry run).
    Ignore,
    /// Answer with a `Warning` header per dropped field.
    Warn,
    /// Refuse the write.
    Strict,
}

impl FieldValidation {
    pub fn of(req: &Req) -> Self {
        match req.param("fieldValidation") {
            Some("Strict") => Self::Strict,
            Some("Warn") => Self::Warn,
            _ => Self::Ignore,
        }
    }
}

/// Paths of fields in `submitted` (a body or a merge/apply patch) that are not in
/// `result`. Metadata is free-form and status belongs to controllers: both are
/// skipped. Nulls and empty values are not counted (they delete or mean nothing).
pub(super) fn dropped_fields(submitted: &Value, result: &Value) -> Vec<String> {
    fn empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        }
    }
    fn walk(sub: &Value, res: &Value, path: &str, out: &mut Vec<String>) {
        match sub {
            Value::Object(map) => {
                for (key, value) in map {
                    if empty(value) {
                        continue;
                    }
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    match res.get(key) {
                        None => out.push(child),
                        Some(r) => walk(value, r, &child, out),
                    }
                }
            }
            Value::Array(items) => {
                if let Some(results) = res.as_array() {
                    for (i, (s, r)) in items.iter().zip(results).enumerate() {
                        walk(s, r, &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(map) = submitted.as_object() {
        for (key, value) in map {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "status") || empty(value)
            {
                continue;
            }
            match result.get(key) {
                None => out.push(key.clone()),
                Some(r) => walk(value, r, key, &mut out),
            }
        }
    }
    out
}

/// Apply the client's choice: an error for `Strict`, warnings for `Warn`.
pub(super) fn judge(
    mode: FieldValidation,
    rt: &ResourceType,
    mut dropped: Vec<String>,
) -> Result<Vec<String>, Error> {
    dropped.retain(|field| !crate::builtin::is_folded_field(rt, field));
    if dropped.is_empty() || mode == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let messages: Vec<String> = dropped
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    if mode == FieldValidation::Strict {
        return Err(Error::BadRequest(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
            messages.join(", "),
            kind = rt.kind,
            version = rt.version,
        )));
    }
    Ok(messages)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_dropped_fields_only() {
        let submitted = json!({
            "apiVersion": "v1", "metadata": {"anything": 1},
            "spec": {"template": {"spec": {"containers": [{"image": "i", "imagee": "x", "env": []}]}},
                     "bogus": {"a": 1}, "empty": {}},
        });
        let result = json!({
            "spec": {"template": {"spec": {"containers": [{"image": "i", "name": "user-container"}]}}},
        });
        assert_eq!(
            dropped_fields(&submitted, &result),
            ["spec.bogus", "spec.template.spec.containers[0].imagee"]
        );
        assert!(dropped_fields(&result, &result).is_empty());
    }
}
