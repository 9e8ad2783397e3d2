//! Object semantics as a Kubernetes API server applies them: system metadata
//! (uid, generation, resourceVersion, creationTimestamp, managedFields), status
//! handling for types with a `/status` subresource, and patches.

use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::resource::ResourceType;
use crate::status::StatusCause;

/// The current time as Kubernetes formats it (RFC 3339, whole seconds, UTC).
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn metadata(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata").and_then(Value::as_object)
}

pub(crate) fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| Error::BadRequest("the object must be a JSON object".into()))?;
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if meta.is_null() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
        .ok_or_else(|| Error::BadRequest("metadata must be an object".into()))
}

pub(crate) fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    metadata(object)?.get(field)?.as_str()
}

/// Name of an object (empty if missing).
pub(crate) fn name(object: &Value) -> &str {
    meta_str(object, "name").unwrap_or("")
}

/// Namespace of an object (empty if missing).
pub(crate) fn namespace(object: &Value) -> &str {
    meta_str(object, "namespace").unwrap_or("")
}

/// resourceVersion of an object as a number.
pub(crate) fn resource_version(object: &Value) -> Option<u64> {
    meta_str(object, "resourceVersion").and_then(|s| s.parse().ok())
}

/// UIDs this object names as owners.
pub(crate) fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
}

/// A name as a URL path segment must be: non-empty, no `/` or `%`, not `.` or `..`.
pub(crate) fn check_name(rt: &ResourceType, name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("name or generateName is required")
    } else if name == "." || name == ".." {
        Some("may not be '.' or '..'")
    } else if name.contains('/') || name.contains('%') {
        Some("may not contain '/' or '%'")
    } else if name.len() > 253 {
        Some("must be no more than 253 characters")
    } else {
        None
    };
    let own_rule = problem
        .is_none()
        .then(|| crate::builtin::names::problem(rt, name))
        .flatten();
    let problem = problem.or(own_rule.as_deref());
    match problem {
        None => Ok(()),
        Some(message) => {
            let cause = if name.is_empty() {
                StatusCause::required("metadata.name", message)
            } else {
                StatusCause::invalid(
                    "metadata.name",
                    format!("Invalid value: {name:?}: {message}"),
                )
            };
            Err(rt.invalid(name, vec![cause]))
        }
    }
}

/// Check or set apiVersion and kind.
pub(crate) fn set_type_meta(rt: &ResourceType, object: &mut Value) -> Result<()> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| Error::BadRequest("the object must be a JSON object".into()))?;
    let api_version = rt.api_version();
    if let Some(given) = map.get("apiVersion").and_then(Value::as_str)
        && given != api_version
    {
        return Err(Error::BadRequest(format!(
            "the API version in the data ({given}) does not match the expected API version ({api_version})"
        )));
    }
    if let Some(given) = map.get("kind").and_then(Value::as_str)
        && given != rt.kind
    {
        return Err(Error::BadRequest(format!(
            "the kind in the data ({given}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    map.insert("apiVersion".into(), Value::String(api_version));
    map.insert("kind".into(), Value::String(rt.kind.clone()));
    Ok(())
}

/// Everything but metadata and status: a change here bumps `generation`.
fn spec_part(object: &Value) -> Map<String, Value> {
    object
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn spec_changed(old: &Value, new: &Value) -> bool {
    spec_part(old) != spec_part(new)
}

/// Whether two versions of an object differ in anything but resourceVersion and
/// the times in managedFields (a write that changes nothing else is a no-op, as
/// Kubernetes makes it).
pub(crate) fn same_content(a: &Value, b: &Value) -> bool {
    fn strip(v: &Value) -> Value {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            // A new time can move an entry in Kubernetes' order: compare as a set.
            if let Some(entries) = m.get_mut("managedFields").and_then(Value::as_array_mut) {
                for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                    entry.remove("time");
                }
                entries.sort_by_cached_key(Value::to_string);
            }
        }
        v
    }
    strip(a) == strip(b)
}

/// Set managedFields (an empty list removes the field, as Kubernetes omits it).
pub(crate) fn set_managed_fields(object: &mut Value, entries: Value) -> Result<()> {
    let meta = metadata_mut(object)?;
    if entries.as_array().is_some_and(|a| !a.is_empty()) {
        meta.insert("managedFields".into(), entries);
    } else {
        meta.remove("managedFields");
    }
    Ok(())
}

/// Fields only the server sets.
const SYSTEM_FIELDS: [&str; 7] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// Prepare `object` for a create: type meta, namespace, no status (for types with a
/// status subresource), no client-set system fields.
pub(crate) fn normalize_for_create(
    rt: &ResourceType,
    object: &mut Value,
    default_namespace: &str,
) -> Result<()> {
    set_type_meta(rt, object)?;
    let meta = metadata_mut(object)?;
    for field in SYSTEM_FIELDS {
        meta.remove(field);
    }
    meta.remove("managedFields");
    if rt.namespaced {
        let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        if ns.is_empty() {
            meta.insert("namespace".into(), Value::String(default_namespace.into()));
        }
    } else {
        meta.remove("namespace");
    }
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name && let Some(prefix) = meta.get("generateName").and_then(Value::as_str) {
        let suffix: String = {
            use rand::Rng;
            const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let mut rng = rand::rng();
            (0..5)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect()
        };
        let generated = format!("{prefix}{suffix}");
        meta.insert("name".into(), Value::String(generated));
    }
    if let Some(map) = object.as_object_mut() {
        if rt.status_subresource {
            map.remove("status");
        }
        if rt.kind == "Namespace" && rt.group.is_empty() {
            map.insert("status".into(), json!({"phase": "Active"}));
        }
    }
    if crate::builtin::Builtin::of(rt) == Some(crate::builtin::Builtin::Pod) {
        let status = crate::builtin::pods::status_on_create(object);
        if let Some(map) = object.as_object_mut() {
            map.insert("status".into(), status);
        }
    }
    Ok(())
}

/// Set the server's metadata on a new object.
pub(crate) fn stamp_new(object: &mut Value, resource_version: u64, time: &str) -> Result<()> {
    let meta = metadata_mut(object)?;
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert(
        "resourceVersion".into(),
        Value::String(resource_version.to_string()),
    );
    meta.insert("generation".into(), json!(1));
    meta.insert("creationTimestamp".into(), Value::String(time.into()));
    Ok(())
}

/// The result of an update of the main resource: `new` with the system fields and
/// (for types with a status subresource) the status of `old`.
pub(crate) fn merge_update(rt: &ResourceType, old: &Value, new: &Value) -> Result<Value> {
    let mut result = new.clone();
    set_type_meta(rt, &mut result)?;
    let old_meta = metadata(old).cloned().unwrap_or_default();
    {
        let meta = metadata_mut(&mut result)?;
        for field in [
            "uid",
            "creationTimestamp",
            "generation",
            "name",
            "namespace",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old_meta.get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
        // Field ownership is worked out by the store (`managed`) and set afterwards.
        meta.remove("managedFields");
    }
    if rt.status_subresource
        && let Some(map) = result.as_object_mut()
    {
        match old.get("status") {
            Some(s) => map.insert("status".into(), s.clone()),
            None => map.remove("status"),
        };
    }
    Ok(result)
}

/// The result of a status update: `old` with the status of `new`.
pub(crate) fn merge_status(old: &Value, new: &Value) -> Value {
    let mut result = old.clone();
    if let Some(map) = result.as_object_mut() {
        match new.get("status") {
            Some(s) => map.insert("status".into(), s.clone()),
            None => map.remove("status"),
        };
    }
    result
}

/// Bump generation if the spec changed.
pub(crate) fn bump_generation(old: &Value, new: &mut Value) -> Result<()> {
    if spec_changed(old, new) {
        let generation = metadata(old)
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        metadata_mut(new)?.insert("generation".into(), json!(generation + 1));
    }
    Ok(())
}

pub(crate) fn set_resource_version(object: &mut Value, resource_version: u64) -> Result<()> {
    metadata_mut(object)?.insert(
        "resourceVersion".into(),
        Value::String(resource_version.to_string()),
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generation_ignores_metadata_and_status() {
        let old = json!({"metadata": {"generation": 3, "labels": {"a": "b"}}, "spec": {"x": 1}, "status": {}});
        let mut same = json!({"metadata": {"generation": 3, "labels": {"a": "c"}}, "spec": {"x": 1}, "status": {"y": 2}});
        bump_generation(&old, &mut same).unwrap();
        assert_eq!(same["metadata"]["generation"], 3);
        let mut changed = json!({"metadata": {"generation": 3}, "spec": {"x": 2}});
        bump_generation(&old, &mut changed).unwrap();
        assert_eq!(changed["metadata"]["generation"], 4);
    }
}
