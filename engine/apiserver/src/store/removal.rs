//! Deletion with finalizers and cascades, as one set of changes.
//!
//! An object that lists `metadata.finalizers` is not removed: it gets a
//! `deletionTimestamp` (and `deletionGracePeriodSeconds: 0`) and stays until an
//! update empties its finalizers, then it goes. An object that goes takes with it,
//! transitively, what names it in `ownerReferences` (the garbage collector's
//! background cascade, done at once) and, for a namespace, everything in it. A
//! namespace that still holds objects waiting for their finalizers stays,
//! `Terminating`, and goes with the last of them.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Change, State, object};
use crate::error::Result;
use crate::resource::ResourceType;

/// Whether `object` waits for finalizers before it can go.
pub(crate) fn has_finalizers(object: &Value) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// Whether `object` has been asked to go.
pub(crate) fn is_terminating(object: &Value) -> bool {
    object::meta_str(object, "deletionTimestamp").is_some()
}

/// `object` marked for deletion at `time`.
fn marked(object: &Value, time: &str, is_namespace: bool) -> Result<Value> {
    let mut object = object.clone();
    let meta = object::metadata_mut(&mut object)?;
    meta.insert("deletionTimestamp".into(), Value::String(time.into()));
    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    if is_namespace && let Some(map) = object.as_object_mut() {
        map.insert("status".into(), json!({"phase": "Terminating"}));
    }
    Ok(object)
}

type Id = (String, String, String);

fn id(key: &str, object: &Value) -> Id {
    (
        key.to_string(),
        object::namespace(object).to_string(),
        object::name(object).to_string(),
    )
}

/// The changes that delete `roots` (storage key and object; an object whose
/// finalizers were just emptied counts as having none, whatever the store holds).
pub(crate) fn plan(
    state: &State,
    roots: Vec<(String, Arc<Value>)>,
    time: &str,
) -> Result<Vec<Change>> {
    let ns_key = ResourceType::namespace().storage_key();
    let mut queue: VecDeque<(String, Arc<Value>)> = roots.into();
    let mut seen: HashSet<Id> = HashSet::new();
    let mut removed: HashSet<Id> = HashSet::new();
    let mut changes = Vec::new();
    let mut namespaces: Vec<Arc<Value>> = Vec::new();
    while let Some((key, target)) = queue.pop_front() {
        if !seen.insert(id(&key, &target)) {
            continue;
        }
        let is_namespace = key == ns_key;
        if has_finalizers(&target) {
            if !is_terminating(&target) {
                changes.push(Change::Put {
                    rt_key: key.clone(),
                    object: marked(&target, time, is_namespace)?,
                    previous_labels: Some(labels(&target)),
                });
            }
            continue;
        }
        if is_namespace {
            let name = object::name(&target);
            for (k, objects) in &state.objects {
                for ((ns, _), o) in objects {
                    if ns == name {
                        queue.push_back((k.clone(), o.clone()));
                    }
                }
            }
            namespaces.push(target);
            continue;
        }
        removed.insert(id(&key, &target));
        if let Some(uid) = object::meta_str(&target, "uid") {
            for (k, objects) in &state.objects {
                for o in objects.values() {
                    if object::owner_uids(o).any(|u| u == uid) {
                        queue.push_back((k.clone(), o.clone()));
                    }
                }
            }
        }
        changes.push(Change::Delete {
            rt_key: key,
            object: target,
        });
    }
    // A namespace goes when nothing is left in it: either it is being deleted now,
    // or it was Terminating and its last object just went.
    let touched = changes.iter().filter_map(|c| match c {
        Change::Delete { object, .. } => Some(object::namespace(object).to_string()),
        Change::Put { .. } => None,
    });
    let waiting: Vec<Arc<Value>> = touched
        .collect::<HashSet<_>>()
        .into_iter()
        .filter_map(|ns| {
            state
                .objects
                .get(&ns_key)?
                .get(&(String::new(), ns))
                .cloned()
        })
        .filter(|ns| is_terminating(ns))
        .collect();
    let mut checked: HashSet<String> = HashSet::new();
    for namespace in namespaces.into_iter().chain(waiting) {
        let name = object::name(&namespace).to_string();
        if !checked.insert(name.clone()) {
            continue;
        }
        let left = state.objects.iter().any(|(k, objects)| {
            objects.iter().any(|((ns, n), _)| {
                *ns == name && !removed.contains(&(k.clone(), ns.clone(), n.clone()))
            })
        });
        if !left {
            changes.push(Change::Delete {
                rt_key: ns_key.clone(),
                object: namespace,
            });
        } else if !is_terminating(&namespace) {
            changes.push(Change::Put {
                rt_key: ns_key.clone(),
                object: marked(&namespace, time, true)?,
                previous_labels: Some(labels(&namespace)),
            });
        }
    }
    Ok(changes)
}

fn labels(object: &Value) -> Value {
    object
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(Value::Null)
}
