//! Which Routes reference which Configurations and Revisions, so that a
//! change to one of those re-reconciles the Routes that follow it (Knative's
//! `tracker`: the route reconciler calls `TrackReference` for every traffic
//! target, and the configuration and revision informers call `OnChanged`).
//!
//! A Route may follow a Configuration of any name, created before or after
//! the Route itself: references are recorded whether or not the object
//! exists yet.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The kinds a Route references.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReferenceKind {
    /// A Configuration (a `configurationName` traffic target).
    Configuration,
    /// A Revision (a `revisionName` traffic target).
    Revision,
}

/// One object a Route references.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// What kind of object.
    pub kind: ReferenceKind,
    /// Its namespace (always the Route's: traffic never crosses namespaces).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl Reference {
    /// A reference to the Configuration `namespace/name`.
    pub fn configuration(namespace: &str, name: &str) -> Self {
        Self {
            kind: ReferenceKind::Configuration,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// A reference to the Revision `namespace/name`.
    pub fn revision(namespace: &str, name: &str) -> Self {
        Self {
            kind: ReferenceKind::Revision,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// A Route, by namespace and name.
pub type RouteName = (String, String);

#[derive(Debug, Default)]
struct Index {
    /// Referenced object → the Routes referencing it.
    routes: HashMap<Reference, HashSet<RouteName>>,
    /// Route → what it references (to undo on the next `track`).
    references: HashMap<RouteName, HashSet<Reference>>,
}

/// The index from referenced objects to the Routes that reference them.
#[derive(Debug, Default)]
pub struct Tracker {
    index: Mutex<Index>,
}

impl Tracker {
    /// Records that `route` references exactly `references` now (replacing
    /// what it referenced before).
    pub fn track(&self, route: RouteName, references: impl IntoIterator<Item = Reference>) {
        let references: HashSet<Reference> = references.into_iter().collect();
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let Index {
            routes,
            references: by_route,
        } = &mut *index;
        if let Some(old) = by_route.get(&route) {
            for reference in old.difference(&references) {
                if let Some(set) = routes.get_mut(reference) {
                    set.remove(&route);
                    if set.is_empty() {
                        routes.remove(reference);
                    }
                }
            }
        }
        for reference in &references {
            routes
                .entry(reference.clone())
                .or_default()
                .insert(route.clone());
        }
        if references.is_empty() {
            by_route.remove(&route);
        } else {
            by_route.insert(route, references);
        }
    }

    /// Forgets a deleted Route.
    pub fn forget(&self, route: RouteName) {
        self.track(route, []);
    }

    /// The Routes referencing `reference`, sorted.
    pub fn routes_referencing(&self, reference: &Reference) -> Vec<RouteName> {
        let index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let mut routes: Vec<RouteName> = index
            .routes
            .get(reference)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        routes.sort();
        routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str) -> RouteName {
        ("default".to_string(), name.to_string())
    }

    #[test]
    fn routes_are_found_by_what_they_reference() {
        let tracker = Tracker::default();
        let backend = Reference::configuration("default", "backend");
        tracker.track(route("front"), [backend.clone()]);
        tracker.track(
            route("canary"),
            [
                backend.clone(),
                Reference::revision("default", "backend-00001"),
            ],
        );
        assert_eq!(
            tracker.routes_referencing(&backend),
            vec![route("canary"), route("front")]
        );
        assert_eq!(
            tracker.routes_referencing(&Reference::revision("default", "backend-00001")),
            vec![route("canary")]
        );
        // Same name, other kind or namespace: not referenced.
        assert!(
            tracker
                .routes_referencing(&Reference::revision("default", "backend"))
                .is_empty()
        );
        assert!(
            tracker
                .routes_referencing(&Reference::configuration("other", "backend"))
                .is_empty()
        );
    }

    #[test]
    fn tracking_again_replaces_and_forgetting_removes() {
        let tracker = Tracker::default();
        let old = Reference::configuration("default", "old");
        let new = Reference::configuration("default", "new");
        tracker.track(route("front"), [old.clone()]);
        tracker.track(route("front"), [new.clone()]);
        assert!(tracker.routes_referencing(&old).is_empty());
        assert_eq!(tracker.routes_referencing(&new), vec![route("front")]);
        tracker.forget(route("front"));
        assert!(tracker.routes_referencing(&new).is_empty());
        assert!(tracker.index.lock().unwrap().routes.is_empty());
        assert!(tracker.index.lock().unwrap().references.is_empty());
    }
}
