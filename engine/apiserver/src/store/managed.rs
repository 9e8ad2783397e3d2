//! Field ownership (`metadata.managedFields`) and server-side apply, following the
//! rules of Kubernetes' field manager:
//! - an **apply** makes its manager own exactly the fields of the applied
//!   configuration; changing a field another manager owns is a conflict (409 with a
//!   cause per field) unless `force` is set, which takes the field over; a field the
//!   manager applied before and leaves out now is removed from the object when no
//!   other manager owns it;
//! - an **update** (create, PUT, merge or JSON patch) never conflicts: its manager
//!   owns what it added or changed, and other managers lose those fields;
//! - a field removed from the object is owned by no one.
//!
//! Ownership is computed on the object as the request made it, before admission:
//! defaults a webhook adds belong to no manager, as on a real cluster.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::fields::{Comparison, FieldPath, FieldSet, display_path, field_key, remove_path};
use crate::error::Error;
use crate::status::StatusCause;

/// The annotation client-side `kubectl apply` keeps its configuration in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Metadata fields the server owns; never part of a manager's fields.
const SERVER_METADATA: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// `Apply` or `Update`, as managedFields entries name the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Which part of an object a write covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The resource itself; `status` is left out when the type has a status
    /// subresource.
    Main { status_subresource: bool },
    /// The `/status` subresource: only `status`.
    Status,
}

/// One managedFields entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    subresource: Option<String>,
    time: Option<String>,
    fields: FieldSet,
}

impl Entry {
    /// Entries of the same manager, operation and subresource (and, for updates,
    /// API version) are one entry, as Kubernetes keys them.
    fn same_identity(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// How conflicts name the manager: `"kubectl"`, or for an update
    /// `"kubectl-client-side-apply" using serving.knative.dev/v1 at <time>`.
    fn describe(&self) -> String {
        let mut text = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            text.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == Operation::Update {
            text.push_str(&format!(" using {}", self.api_version));
            if let Some(time) = &self.time {
                text.push_str(&format!(" at {time}"));
            }
        }
        text
    }
}

/// Who is writing.
#[derive(Debug, Clone)]
pub(crate) struct Writer<'a> {
    /// `None` for an in-process write without a field manager: it takes changed
    /// fields from their owners but owns nothing itself.
    pub manager: Option<&'a str>,
    pub operation: Operation,
    pub scope: Scope,
    pub api_version: String,
    pub time: &'a str,
    pub force: bool,
}

impl Writer<'_> {
    fn entry(&self, fields: FieldSet) -> Option<Entry> {
        Some(Entry {
            manager: self.manager?.to_string(),
            operation: self.operation,
            api_version: self.api_version.clone(),
            subresource: (self.scope == Scope::Status).then(|| "status".to_string()),
            time: Some(self.time.to_string()),
            fields,
        })
    }
}

/// The managedFields entries of `object` (entries that cannot be read are dropped).
pub(crate) fn decode(object: &Value) -> Vec<Entry> {
    let entries = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array);
    entries
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let text = |field: &str| e.get(field).and_then(Value::as_str).map(str::to_string);
            let operation = match e.get("operation").and_then(Value::as_str) {
                Some("Apply") => Operation::Apply,
                Some("Update") => Operation::Update,
                _ => return None,
            };
            Some(Entry {
                manager: text("manager")?,
                operation,
                api_version: text("apiVersion").unwrap_or_default(),
                subresource: text("subresource").filter(|s| !s.is_empty()),
                time: text("time"),
                fields: FieldSet::from_fields_v1(e.get("fieldsV1").unwrap_or(&Value::Null)),
            })
        })
        .collect()
}

/// Entries as managedFields: empty ones dropped, in Kubernetes' order (operation,
/// time, manager, API version, subresource).
pub(crate) fn encode(mut entries: Vec<Entry>) -> Value {
    entries.retain(|e| !e.fields.is_empty());
    entries.sort_by(|a, b| {
        (
            a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    Value::Array(
        entries
            .into_iter()
            .map(|e| {
                let mut entry = json!({
                    "manager": e.manager,
                    "operation": e.operation.as_str(),
                    "apiVersion": e.api_version,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": e.fields.to_fields_v1(),
                });
                if let Some(time) = e.time {
                    entry["time"] = Value::String(time);
                }
                if let Some(sub) = e.subresource {
                    entry["subresource"] = Value::String(sub);
                }
                entry
            })
            .collect(),
    )
}

/// The part of `object` whose fields can be owned in `scope`.
fn owned_part(object: &Value, scope: Scope) -> Value {
    let mut out = Map::new();
    let Some(map) = object.as_object() else {
        return Value::Object(out);
    };
    for (key, value) in map {
        let keep = match scope {
            Scope::Status => key == "status",
            Scope::Main { status_subresource } => match key.as_str() {
                "apiVersion" | "kind" => false,
                "status" => !status_subresource,
                _ => true,
            },
        };
        if keep {
            out.insert(key.clone(), value.clone());
        }
    }
    if let Scope::Main { .. } = scope {
        // metadata always exists: never "added" or "removed" as a whole.
        let mut meta = map
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for field in SERVER_METADATA {
            meta.remove(field);
        }
        out.insert("metadata".into(), Value::Object(meta));
    }
    Value::Object(out)
}

fn compare(old: &Value, new: &Value, scope: Scope) -> Comparison {
    let mut comparison = Comparison::of(&owned_part(old, scope), &owned_part(new, scope));
    let metadata = vec![field_key("metadata")];
    for set in [
        &mut comparison.added,
        &mut comparison.modified,
        &mut comparison.removed,
    ] {
        if set.has(&metadata) {
            // Keep what is below, drop the member itself.
            let below = set.only_subtree(&metadata);
            let mut rest = set.without_subtree(&metadata);
            for path in below.paths().into_iter().filter(|p| p.len() > 1) {
                rest.insert(&path);
            }
            *set = rest;
        }
    }
    comparison
}

/// The fields an applied configuration owns in `scope`.
pub(crate) fn applied_fields(config: &Value, scope: Scope) -> FieldSet {
    FieldSet::of_config(&owned_part(config, scope))
}

/// Before an apply is merged in: remove from `merged` the fields `writer` applied
/// last time, leaves out now, and no other manager owns.
pub(crate) fn prune(
    merged: &mut Value,
    entries: &[Entry],
    writer: &Writer<'_>,
    applied: &FieldSet,
) {
    let Some(mine) = writer.entry(FieldSet::default()) else {
        return;
    };
    let Some(previous) = entries.iter().find(|e| e.same_identity(&mine)) else {
        return;
    };
    let others = entries
        .iter()
        .filter(|e| !e.same_identity(&mine))
        .fold(FieldSet::default(), |all, e| all.union(&e.fields));
    for path in previous.fields.difference(applied).paths() {
        if !applied.touches(&path) && !others.touches(&path) {
            remove_path(merged, &path);
        }
    }
}

/// Fields another manager owns that a write would change.
#[derive(Debug, Default)]
pub(crate) struct Conflicts(Vec<(String, FieldPath)>);

impl Conflicts {
    /// The error Kubernetes answers with: 409 Conflict, a cause per field naming
    /// the manager (reason `FieldManagerConflict`).
    pub fn into_error(self) -> Error {
        let causes: Vec<StatusCause> = self
            .0
            .iter()
            .map(|(manager, path)| StatusCause {
                reason: "FieldManagerConflict".into(),
                message: format!("conflict with {manager}"),
                field: display_path(path),
            })
            .collect();
        let message = match self.0.as_slice() {
            [(manager, path)] => format!(
                "Apply failed with 1 conflict: conflict with {manager}: {}",
                display_path(path)
            ),
            all => {
                let mut by_manager: BTreeMap<&str, Vec<String>> = BTreeMap::new();
                for (manager, path) in all {
                    by_manager
                        .entry(manager)
                        .or_default()
                        .push(display_path(path));
                }
                let lines: Vec<String> = by_manager
                    .into_iter()
                    .flat_map(|(manager, paths)| {
                        std::iter::once(format!("conflicts with {manager}:"))
                            .chain(paths.into_iter().map(|p| format!("- {p}")))
                    })
                    .collect();
                format!(
                    "Apply failed with {} conflicts: {}",
                    all.len(),
                    lines.join("\n")
                )
            }
        };
        Error::ApplyConflict { message, causes }
    }
}

/// Record the write `old` → `new` by `writer` in `entries`. `applied` is the field
/// set of an apply's configuration. Fails with the conflicts of an apply that is
/// not forced.
pub(crate) fn track(
    mut entries: Vec<Entry>,
    old: &Value,
    new: &Value,
    writer: &Writer<'_>,
    applied: Option<&FieldSet>,
) -> Result<Vec<Entry>, Conflicts> {
    let comparison = compare(old, new, writer.scope);
    let changed = comparison.modified.union(&comparison.added);
    let mine = writer.entry(FieldSet::default());
    let is_mine = |e: &Entry| mine.as_ref().is_some_and(|m| e.same_identity(m));
    let mut conflicts = Conflicts::default();
    for entry in entries.iter().filter(|e| !is_mine(e)) {
        for path in entry.fields.intersection(&changed).paths() {
            conflicts.0.push((entry.describe(), path));
        }
    }
    let force = writer.force
        || writer.operation == Operation::Update
        || conflicts.0.is_empty()
        || (writer.manager == Some("kubectl") && allowed_by_last_applied(old, &conflicts));
    if !force {
        return Err(conflicts);
    }
    for entry in entries.iter_mut() {
        let lost = if is_mine(entry) {
            comparison.removed.clone()
        } else {
            changed.union(&comparison.removed)
        };
        entry.fields = entry.fields.difference(&lost);
    }
    if let Some(mut mine) = mine {
        let previous = entries
            .iter()
            .position(|e| e.same_identity(&mine))
            .map(|i| entries.remove(i));
        mine.fields = match (writer.operation, applied) {
            (Operation::Apply, Some(applied)) => applied.clone(),
            _ => previous
                .map(|p| p.fields)
                .unwrap_or_default()
                .union(&changed),
        };
        entries.push(mine);
    }
    Ok(entries)
}

/// `kubectl apply --server-side` may take over what client-side `kubectl apply`
/// set (its last-applied annotation still matches the live object) without a
/// conflict, as Kubernetes allows when moving an object to server-side apply.
fn allowed_by_last_applied(live: &Value, conflicts: &Conflicts) -> bool {
    let Some(last) = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return false;
    };
    let scope = Scope::Main {
        status_subresource: true,
    };
    let diff = compare(&last, live, scope);
    let allowed = applied_fields(&last, scope)
        .difference(&diff.modified)
        .difference(&diff.added)
        .difference(&diff.removed);
    conflicts.0.iter().all(|(_, path)| allowed.has(path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn writer(manager: &str, operation: Operation, force: bool) -> Writer<'_> {
        Writer {
            manager: Some(manager),
            operation,
            scope: Scope::Main {
                status_subresource: true,
            },
            api_version: "v1".into(),
            time: "2026-01-01T00:00:00Z",
            force,
        }
    }

    fn apply(
        entries: Vec<Entry>,
        live: &Value,
        config: &Value,
        w: &Writer<'_>,
    ) -> Result<(Value, Vec<Entry>), Conflicts> {
        let set = applied_fields(config, w.scope);
        let mut merged = live.clone();
        prune(&mut merged, &entries, w, &set);
        json_patch::merge(&mut merged, config);
        let entries = track(entries, live, &merged, w, Some(&set))?;
        Ok((merged, entries))
    }

    #[test]
    fn create_by_update_owns_everything_with_new_maps_as_members() {
        let new = json!({"apiVersion": "v1", "kind": "X",
                         "metadata": {"name": "a", "labels": {"app": "x"}},
                         "spec": {"containers": [{"image": "i"}]}, "status": {"s": 1}});
        let w = writer("kubectl-client-side-apply", Operation::Update, false);
        let entries = track(Vec::new(), &json!({}), &new, &w, None).unwrap();
        assert_eq!(
            encode(entries)[0]["fieldsV1"],
            json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                   "f:spec": {".": {}, "f:containers": {}}})
        );
    }

    #[test]
    fn second_applier_conflicts_unless_forced_then_owns_the_field() {
        let config = json!({"spec": {"replicas": 1, "image": "a"}});
        let (live, entries) = apply(
            Vec::new(),
            &json!({}),
            &config,
            &writer("one", Operation::Apply, false),
        )
        .unwrap();
        // Same value: shared, no conflict.
        let (live, entries) = apply(
            entries,
            &live,
            &json!({"spec": {"replicas": 1}}),
            &writer("two", Operation::Apply, false),
        )
        .unwrap();
        // Different value: a conflict naming the field and the manager.
        let conflicts = apply(
            entries.clone(),
            &live,
            &json!({"spec": {"replicas": 2}}),
            &writer("two", Operation::Apply, false),
        )
        .unwrap_err();
        match conflicts.into_error() {
            Error::ApplyConflict { message, causes } => {
                assert_eq!(
                    message,
                    "Apply failed with 1 conflict: conflict with \"one\": .spec.replicas"
                );
                assert_eq!(causes[0].field, ".spec.replicas");
                assert_eq!(causes[0].reason, "FieldManagerConflict");
            }
            other => panic!("{other}"),
        }
        let (live, entries) = apply(
            entries,
            &live,
            &json!({"spec": {"replicas": 2}}),
            &writer("two", Operation::Apply, true),
        )
        .unwrap();
        assert_eq!(live["spec"]["replicas"], 2);
        let one = entries.iter().find(|e| e.manager == "one").unwrap();
        assert_eq!(
            one.fields.to_fields_v1(),
            json!({"f:spec": {"f:image": {}}})
        );
        // "one" stops applying image: it was the only owner, so it goes.
        let (live, _) = apply(
            entries,
            &live,
            &json!({"metadata": {"labels": {"a": "b"}}}),
            &writer("one", Operation::Apply, false),
        )
        .unwrap();
        assert_eq!(live["spec"], json!({"replicas": 2}));
    }

    #[test]
    fn updates_take_fields_from_appliers_without_conflict() {
        let (live, entries) = apply(
            Vec::new(),
            &json!({}),
            &json!({"spec": {"x": 1}}),
            &writer("applier", Operation::Apply, false),
        )
        .unwrap();
        let mut changed = live.clone();
        changed["spec"]["x"] = json!(2);
        let entries = track(
            entries,
            &live,
            &changed,
            &writer("editor", Operation::Update, false),
            None,
        )
        .unwrap();
        let encoded = encode(entries);
        assert_eq!(encoded.as_array().unwrap().len(), 1);
        assert_eq!(encoded[0]["manager"], "editor");
        assert_eq!(encoded[0]["operation"], "Update");
    }

    #[test]
    fn kubectl_takes_over_what_client_side_apply_set() {
        let config = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"},
                            "spec": {"x": 1}});
        let mut live = config.clone();
        live["metadata"]["annotations"] = json!({LAST_APPLIED: config.to_string()});
        let entries = track(
            Vec::new(),
            &json!({}),
            &live,
            &writer("kubectl-client-side-apply", Operation::Update, false),
            None,
        )
        .unwrap();
        let changed = json!({"spec": {"x": 2}});
        assert!(
            apply(
                entries.clone(),
                &live,
                &changed,
                &writer("other", Operation::Apply, false)
            )
            .is_err()
        );
        let (live, _) = apply(
            entries,
            &live,
            &changed,
            &writer("kubectl", Operation::Apply, false),
        )
        .unwrap();
        assert_eq!(live["spec"]["x"], 2);
    }
}
