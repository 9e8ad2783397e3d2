//! Server-side apply, simplified: the applied configuration is merged into the
//! live object, and the fields a manager applied before but leaves out now are
//! removed, unless another apply manager also owns them. Field sets are recorded
//! in `managedFields` in the `FieldsV1` format (`{"f:spec":{"f:x":{}}}`), with
//! lists treated as atomic values. Conflicts with other managers are not
//! detected (`force` is accepted and changes nothing).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Metadata fields the server owns; never part of a manager's field set.
const SERVER_METADATA: [&str; 8] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
];

/// The FieldsV1 set of an applied configuration.
pub(crate) fn field_set(config: &Value) -> Value {
    fn walk(value: &Value, top: bool, in_metadata: bool) -> Value {
        let mut set = Map::new();
        if let Some(map) = value.as_object() {
            for (key, child) in map {
                if top && matches!(key.as_str(), "apiVersion" | "kind" | "status") {
                    continue;
                }
                if in_metadata && SERVER_METADATA.contains(&key.as_str()) {
                    continue;
                }
                let inner = match child.as_object() {
                    Some(map) => {
                        let inner = walk(child, false, top && key == "metadata");
                        // `metadata: {name: x}` applies no field of its own.
                        if !map.is_empty() && inner.as_object().is_some_and(Map::is_empty) {
                            continue;
                        }
                        inner
                    }
                    None => Value::Object(Map::new()),
                };
                set.insert(format!("f:{key}"), inner);
            }
        }
        Value::Object(set)
    }
    walk(config, true, false)
}

/// Leaf paths of a FieldsV1 set (`{"f:a":{"f:b":{}}}` → `[["a","b"]]`).
fn leaves(set: &Value) -> BTreeSet<Vec<String>> {
    fn walk(set: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
        let Some(map) = set.as_object() else {
            return;
        };
        let fields: Vec<(&String, &Value)> =
            map.iter().filter(|(k, _)| k.starts_with("f:")).collect();
        if fields.is_empty() {
            if !prefix.is_empty() {
                out.insert(prefix.clone());
            }
            return;
        }
        for (key, child) in fields {
            prefix.push(key[2..].to_string());
            walk(child, prefix, out);
            prefix.pop();
        }
    }
    let mut out = BTreeSet::new();
    walk(set, &mut Vec::new(), &mut out);
    out
}

/// The field set `manager` recorded for `operation`, if any.
fn recorded(object: &Value, manager: &str, operation: &str) -> Option<Value> {
    object
        .pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| {
            e.get("manager").and_then(Value::as_str) == Some(manager)
                && e.get("operation").and_then(Value::as_str) == Some(operation)
                && e.get("subresource").is_none()
        })
        .and_then(|e| e.get("fieldsV1").cloned())
}

/// Leaves every other apply manager owns.
fn owned_by_others(object: &Value, manager: &str) -> BTreeSet<Vec<String>> {
    let mut owned = BTreeSet::new();
    let entries = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array);
    for entry in entries.into_iter().flatten() {
        let is_other_apply = entry.get("operation").and_then(Value::as_str) == Some("Apply")
            && entry.get("manager").and_then(Value::as_str) != Some(manager);
        if is_other_apply && let Some(set) = entry.get("fieldsV1") {
            owned.extend(leaves(set));
        }
    }
    owned
}

fn remove_path(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = object;
    for key in parents {
        match current.get_mut(key.as_str()) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Some(map) = current.as_object_mut() {
        map.remove(last.as_str());
    }
}

/// Remove from `live` what `manager` applied last time but not in `applied_set`
/// (and no other apply manager owns).
pub(crate) fn prune_dropped_fields(live: &mut Value, manager: &str, applied_set: &Value) {
    let Some(previous) = recorded(live, manager, "Apply") else {
        return;
    };
    let now = leaves(applied_set);
    let others = owned_by_others(live, manager);
    let dropped: Vec<Vec<String>> = leaves(&previous)
        .into_iter()
        .filter(|path| {
            // Still applied, as this leaf or as a parent/child of it.
            !now.iter()
                .any(|p| p.starts_with(path) || path.starts_with(p))
                && !others
                    .iter()
                    .any(|p| p.starts_with(path) || path.starts_with(p))
        })
        .collect();
    for path in dropped {
        remove_path(live, &path);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn field_sets_skip_server_fields_and_treat_lists_as_atomic() {
        let config = json!({
            "apiVersion": "v1", "kind": "X",
            "metadata": {"name": "a", "labels": {"app": "x"}},
            "spec": {"containers": [{"image": "i"}], "timeout": 5},
            "status": {"ignored": true},
        });
        assert_eq!(
            field_set(&config),
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:containers": {}, "f:timeout": {}}})
        );
    }

    #[test]
    fn dropped_fields_are_removed_unless_someone_else_applies_them() {
        let mut live = json!({
            "metadata": {"labels": {"a": "1", "b": "2", "c": "3"}, "managedFields": [
                {"manager": "me", "operation": "Apply",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:a": {}, "f:b": {}, "f:c": {}}}}},
                {"manager": "other", "operation": "Apply",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:c": {}}}}}
            ]},
        });
        let applied = field_set(&json!({"metadata": {"labels": {"a": "1"}}}));
        prune_dropped_fields(&mut live, "me", &applied);
        assert_eq!(live["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        // Applying only the name drops every label this manager owned.
        let applied = field_set(&json!({"metadata": {"name": "x"}}));
        assert_eq!(applied, json!({}));
        live["metadata"]["managedFields"][0]["fieldsV1"] =
            json!({"f:metadata": {"f:labels": {"f:a": {}}}});
        prune_dropped_fields(&mut live, "me", &applied);
        assert_eq!(live["metadata"]["labels"], json!({"c": "3"}));
    }
}
