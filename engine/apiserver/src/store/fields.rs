//! Field sets: which fields of an object a manager owns, as `metadata.managedFields`
//! writes them in the `FieldsV1` format (`{"f:spec":{".":{},"f:x":{}}}`).
//!
//! A set is a tree of path elements. A node is a *member* when the path to it is in
//! the set itself; `FieldsV1` writes a member without children as `{}` and a member
//! with children with an extra `".": {}`. Only `f:` (field) elements are produced
//! here: lists are atomic, as they are for custom resources whose schema does not
//! say otherwise (Knative's does not). Other elements (`k:`, `v:`, `i:`) that a
//! client wrote are kept as they are.
//!
//! The rules follow Kubernetes' structured-merge-diff: an applied configuration
//! owns its leaves (scalars, lists, empty values), never the maps on the way;
//! a comparison of two versions reports added, modified and removed paths, with a
//! map that appears or disappears as a whole reported too (that is where `"."`
//! comes from in the entries of updates).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A set of field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

/// A path as FieldsV1 keys (`["f:spec", "f:template"]`).
pub(crate) type FieldPath = Vec<String>;

/// The key of a field in FieldsV1.
pub(crate) fn field_key(name: &str) -> String {
    format!("f:{name}")
}

impl FieldSet {
    /// Read a FieldsV1 value; anything that is not an object is the empty set.
    pub fn from_fields_v1(value: &Value) -> FieldSet {
        fn node(value: &Value) -> FieldSet {
            let mut set = FieldSet::default();
            match value.as_object() {
                Some(map) if !map.is_empty() => {
                    for (key, child) in map {
                        if key == "." {
                            set.member = true;
                        } else {
                            set.children.insert(key.clone(), node(child));
                        }
                    }
                }
                _ => set.member = true,
            }
            set
        }
        let mut root = FieldSet::default();
        if let Some(map) = value.as_object() {
            for (key, child) in map {
                if key != "." {
                    root.children.insert(key.clone(), node(child));
                }
            }
        }
        root.prune();
        root
    }

    /// The FieldsV1 value of this set.
    pub fn to_fields_v1(&self) -> Value {
        fn node(set: &FieldSet, top: bool) -> Value {
            let mut map = Map::new();
            if set.member && !top && !set.children.is_empty() {
                map.insert(".".into(), Value::Object(Map::new()));
            }
            for (key, child) in &set.children {
                map.insert(key.clone(), node(child, false));
            }
            Value::Object(map)
        }
        node(self, true)
    }

    /// True when no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Drop nodes that hold no member.
    fn prune(&mut self) {
        for child in self.children.values_mut() {
            child.prune();
        }
        self.children.retain(|_, c| !c.is_empty());
    }

    /// Add `path` to the set.
    pub fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for key in path {
            node = node.children.entry(key.clone()).or_default();
        }
        node.member = true;
    }

    /// Every member path, in order.
    pub fn paths(&self) -> Vec<FieldPath> {
        fn walk(set: &FieldSet, prefix: &mut FieldPath, out: &mut Vec<FieldPath>) {
            if set.member && !prefix.is_empty() {
                out.push(prefix.clone());
            }
            for (key, child) in &set.children {
                prefix.push(key.clone());
                walk(child, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    fn node(&self, path: &[String]) -> Option<&FieldSet> {
        let mut node = self;
        for key in path {
            node = node.children.get(key)?;
        }
        Some(node)
    }

    /// Whether `path` itself is in the set.
    pub fn has(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// Whether the set holds `path`, a path below it, or a path above it (an owner
    /// of a whole map owns what is in it).
    pub fn touches(&self, path: &[String]) -> bool {
        (1..path.len()).any(|i| self.has(&path[..i]))
            || self.node(path).is_some_and(|n| !n.is_empty())
    }

    /// The union of two sets.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (key, child) in &other.children {
            let merged = match out.children.get(key) {
                Some(mine) => mine.union(child),
                None => child.clone(),
            };
            out.children.insert(key.clone(), merged);
        }
        out
    }

    /// The paths of this set that are not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            let rest = match other.children.get(key) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(key.clone(), rest);
            }
        }
        out
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            if let Some(theirs) = other.children.get(key) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(key.clone(), both);
                }
            }
        }
        out
    }

    /// The set with `path` and everything below it removed.
    pub fn without_subtree(&self, path: &[String]) -> FieldSet {
        let mut out = self.clone();
        if let Some((last, parents)) = path.split_last() {
            let mut node = &mut out;
            for key in parents {
                match node.children.get_mut(key) {
                    Some(next) => node = next,
                    None => return out,
                }
            }
            node.children.remove(last);
        }
        out.prune();
        out
    }

    /// Only `path` and what is below it.
    pub fn only_subtree(&self, path: &[String]) -> FieldSet {
        let mut out = FieldSet::default();
        if let Some(node) = self.node(path) {
            let mut target = &mut out;
            for key in path {
                target = target.children.entry(key.clone()).or_default();
            }
            *target = node.clone();
        }
        out.prune();
        out
    }

    /// The set an applied configuration owns: its leaves (scalars, lists, empty
    /// values), not the maps on the way to them.
    pub fn of_config(config: &Value) -> FieldSet {
        fn walk(value: &Value, set: &mut FieldSet) {
            if let Some(map) = value.as_object() {
                for (key, child) in map {
                    match child.as_object() {
                        Some(inner) if !inner.is_empty() => {
                            let mut node = FieldSet::default();
                            walk(child, &mut node);
                            if !node.is_empty() {
                                set.children.insert(field_key(key), node);
                            }
                        }
                        // An empty map names no field of its own.
                        Some(_) => {}
                        None => {
                            set.children.insert(
                                field_key(key),
                                FieldSet {
                                    member: true,
                                    children: BTreeMap::new(),
                                },
                            );
                        }
                    }
                }
            }
        }
        let mut set = FieldSet::default();
        walk(config, &mut set);
        set
    }
}

/// What changed between two versions of an object.
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    /// Paths only in the new version.
    pub added: FieldSet,
    /// Paths in both, with different values.
    pub modified: FieldSet,
    /// Paths only in the old version.
    pub removed: FieldSet,
}

impl Comparison {
    /// Compare `old` with `new`. Maps are compared field by field; a map present
    /// on one side only is itself added or removed; everything else (scalars,
    /// lists, and maps that are empty on both sides) is compared as a value.
    pub fn of(old: &Value, new: &Value) -> Comparison {
        let mut comparison = Comparison::default();
        let mut path = Vec::new();
        comparison.walk(Some(old), Some(new), &mut path);
        comparison
    }

    fn walk(&mut self, old: Option<&Value>, new: Option<&Value>, path: &mut FieldPath) {
        let (old_map, new_map) = (
            old.and_then(Value::as_object),
            new.and_then(Value::as_object),
        );
        let map_or_absent =
            |v: Option<&Value>, m: Option<&Map<String, Value>>| v.is_none() || m.is_some();
        let both_maps = map_or_absent(old, old_map) && map_or_absent(new, new_map);
        let both_empty = old_map.is_none_or(Map::is_empty) && new_map.is_none_or(Map::is_empty);
        if !both_maps || both_empty {
            match (old, new) {
                (None, Some(_)) => self.added.insert(path),
                (Some(_), None) => self.removed.insert(path),
                (Some(a), Some(b)) if a != b => self.modified.insert(path),
                _ => {}
            }
            return;
        }
        if !path.is_empty() {
            match (old, new) {
                (None, Some(_)) => self.added.insert(path),
                (Some(_), None) => self.removed.insert(path),
                _ => {}
            }
        }
        let mut keys: Vec<&String> = old_map.into_iter().flat_map(Map::keys).collect();
        keys.extend(new_map.into_iter().flat_map(Map::keys));
        keys.sort();
        keys.dedup();
        for key in keys {
            path.push(field_key(key));
            self.walk(
                old_map.and_then(|m| m.get(key)),
                new_map.and_then(|m| m.get(key)),
                path,
            );
            path.pop();
        }
    }
}

/// A path as Kubernetes prints it in conflicts: `.spec.template.spec.containers`.
pub(crate) fn display_path(path: &[String]) -> String {
    path.iter()
        .map(|key| match key.strip_prefix("f:") {
            Some(name) => format!(".{name}"),
            None => format!("[{key}]"),
        })
        .collect()
}

/// Remove the field at `path` (field keys only) from `object`.
pub(crate) fn remove_path(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = object;
    for key in parents {
        let Some(name) = key.strip_prefix("f:") else {
            return;
        };
        match current.get_mut(name) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let (Some(name), Some(map)) = (last.strip_prefix("f:"), current.as_object_mut()) {
        map.remove(name);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(keys: &[&str]) -> FieldPath {
        keys.iter().map(|k| field_key(k)).collect()
    }

    #[test]
    fn fields_v1_round_trip_with_members_that_have_children() {
        let v1 = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}});
        let set = FieldSet::from_fields_v1(&v1);
        assert!(set.has(&path(&["metadata", "labels"])));
        assert!(set.has(&path(&["metadata", "labels", "app"])));
        assert!(!set.has(&path(&["spec", "template"])));
        assert_eq!(set.to_fields_v1(), v1);
    }

    #[test]
    fn config_owns_leaves_and_lists_not_maps() {
        let config = json!({"metadata": {"labels": {"app": "x"}, "annotations": {}},
                            "spec": {"containers": [{"image": "i"}], "timeout": 5}});
        assert_eq!(
            FieldSet::of_config(&config).to_fields_v1(),
            json!({"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:containers": {}, "f:timeout": {}}})
        );
    }

    #[test]
    fn comparison_reports_new_maps_as_members() {
        let old = json!({"metadata": {"name": "a"}});
        let new = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"n": 1}});
        let c = Comparison::of(&old, &new);
        assert_eq!(
            c.added.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {".": {}, "f:x": {}}},
                   "f:spec": {".": {}, "f:n": {}}})
        );
        assert!(c.modified.is_empty() && c.removed.is_empty());
        let c = Comparison::of(&new, &json!({"metadata": {"name": "b"}, "spec": {"n": 2}}));
        assert_eq!(
            c.modified.to_fields_v1(),
            json!({"f:metadata": {"f:name": {}}, "f:spec": {"f:n": {}}})
        );
        assert_eq!(
            c.removed.to_fields_v1(),
            json!({"f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
        );
    }

    #[test]
    fn set_algebra_and_ownership_of_whole_maps() {
        let a = FieldSet::of_config(&json!({"spec": {"x": 1, "y": 2}}));
        let b = FieldSet::of_config(&json!({"spec": {"y": 3, "z": 4}}));
        assert_eq!(a.intersection(&b).paths(), [path(&["spec", "y"])]);
        assert_eq!(a.difference(&b).paths(), [path(&["spec", "x"])]);
        assert_eq!(a.union(&b).paths().len(), 3);
        let mut whole = FieldSet::default();
        whole.insert(&path(&["spec"]));
        assert!(whole.touches(&path(&["spec", "x"])));
        assert!(a.touches(&path(&["spec"])));
        assert!(!a.touches(&path(&["status"])));
        assert_eq!(display_path(&path(&["spec", "x"])), ".spec.x");
    }
}
