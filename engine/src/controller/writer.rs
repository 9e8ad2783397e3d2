//! Writes the engine's own objects (Pods, Deployments, ReplicaSets,
//! PodAutoscalers, Events) into the store off the request path, as the
//! kubelet's status manager does: producers hand over the whole object they
//! want and return at once; one task writes, and a newer state of an object
//! replaces one not yet written (coalescing), so the queue never holds more
//! than one entry per object and a slow store costs intermediate states,
//! never a request's time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use okonomi_apiserver::{ResourceType, Store};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Objects that may wait to be written at once; beyond it new objects are
/// dropped with a warning (an update of one already waiting always fits).
pub const CAPACITY: usize = 65_536;

/// Which object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    storage: String,
    namespace: String,
    name: String,
}

/// What to make of one object.
#[derive(Debug, Clone)]
enum Op {
    /// Create it, or bring its metadata (labels, annotations, owners,
    /// finalizers), spec and status to these; then mark it for deletion
    /// when `terminating` (it stays, Terminating, while it has finalizers).
    Apply {
        rt: ResourceType,
        object: Box<Value>,
        terminating: bool,
    },
    /// Delete it for good (its finalizers dropped).
    Remove { rt: ResourceType },
}

#[derive(Debug, Default)]
struct Pending {
    ops: HashMap<Key, Op>,
    order: VecDeque<Key>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    pending: Mutex<Pending>,
    wake: Notify,
    idle: Notify,
}

/// The handle producers write through (cheap to clone).
#[derive(Debug, Clone)]
pub struct ObjectWriter {
    inner: Arc<Inner>,
}

fn key_of(rt: &ResourceType, object: &Value) -> Key {
    Key {
        storage: rt.storage_key(),
        namespace: object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        name: object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

impl ObjectWriter {
    /// A writer into `store`; nothing is written until [`run`](Self::run).
    pub fn new(store: Store) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                pending: Mutex::new(Pending::default()),
                wake: Notify::new(),
                idle: Notify::new(),
            }),
        }
    }

    /// Creates or updates `object` (of type `rt`) to what it says.
    pub fn apply(&self, rt: &ResourceType, object: Value) {
        self.push(
            key_of(rt, &object),
            Op::Apply {
                rt: rt.clone(),
                object: Box::new(object),
                terminating: false,
            },
        );
    }

    /// Like [`apply`](Self::apply), then marks the object for deletion: it
    /// shows as Terminating until [`remove`](Self::remove) drops its
    /// finalizers.
    pub fn terminate(&self, rt: &ResourceType, object: Value) {
        self.push(
            key_of(rt, &object),
            Op::Apply {
                rt: rt.clone(),
                object: Box::new(object),
                terminating: true,
            },
        );
    }

    /// Deletes `namespace/name` for good.
    pub fn remove(&self, rt: &ResourceType, namespace: &str, name: &str) {
        self.push(
            Key {
                storage: rt.storage_key(),
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
            Op::Remove { rt: rt.clone() },
        );
    }

    fn push(&self, key: Key, op: Op) {
        let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waiting) = pending.ops.get_mut(&key) {
            *waiting = op;
        } else if pending.ops.len() >= CAPACITY {
            tracing::warn!(
                kind = %key.storage, namespace = %key.namespace, name = %key.name,
                "too many objects wait to be written; dropping this one's update"
            );
            return;
        } else {
            pending.order.push_back(key.clone());
            pending.ops.insert(key, op);
        }
        drop(pending);
        self.inner.wake.notify_one();
    }

    fn pop(&self) -> Option<(Key, Op)> {
        let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(key) = pending.order.pop_front() {
            if let Some(op) = pending.ops.remove(&key) {
                return Some((key, op));
            }
        }
        None
    }

    /// Resolves once nothing waits to be written (for tests and shutdown).
    pub async fn flushed(&self) {
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let empty = self
                .inner
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ops
                .is_empty();
            if empty {
                return;
            }
            idle.await;
        }
    }

    /// Writes until `shutdown`, then writes what is left.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.pop() {
                Some((key, op)) => self.write(key, op).await,
                None => {
                    self.inner.idle.notify_waiters();
                    tokio::select! {
                        _ = self.inner.wake.notified() => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            }
        }
        while let Some((key, op)) = self.pop() {
            self.write(key, op).await;
        }
        self.inner.idle.notify_waiters();
    }

    async fn write(&self, key: Key, op: Op) {
        let store = &self.inner.store;
        match op {
            Op::Apply {
                rt,
                object,
                terminating,
            } => {
                let (namespace, name) = names(&object);
                if let Err(error) = apply(store, &rt, *object, terminating).await {
                    // Conflicts come from a write racing ours; the next state
                    // of the object (there always is one) puts it right.
                    tracing::warn!(kind = %rt.kind, %namespace, %name, %error, "writing object");
                }
            }
            Op::Remove { rt } => {
                if let Err(error) = remove(store, &rt, &key.namespace, &key.name).await {
                    tracing::warn!(kind = %rt.kind, namespace = %key.namespace, name = %key.name, %error, "removing object");
                }
            }
        }
    }
}

fn names(object: &Value) -> (String, String) {
    (
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The metadata fields a writer owns; everything else is the store's.
const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "ownerReferences", "finalizers"];

async fn apply(
    store: &Store,
    rt: &ResourceType,
    object: Value,
    terminating: bool,
) -> Result<(), okonomi_apiserver::Error> {
    let (namespace, name) = names(&object);
    let stored = match store.get(rt, &namespace, &name) {
        Ok(stored) => Some(stored),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    let mut object = object;
    resolve_involved(store, &namespace, &mut object)?;
    if !resolve_owners(store, &namespace, &mut object)? {
        // Its owner is not (or no longer) there: nothing to show.
        return Ok(());
    }
    let stored = match stored {
        Some(stored) => stored,
        None if terminating => return Ok(()),
        None => match store.create(rt, object.clone()).await {
            Ok(created) => created,
            // Its owner went meanwhile: nothing to show.
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        },
    };
    let being_deleted = stored["metadata"]["deletionTimestamp"].is_string();
    let mut wanted = stored.clone();
    for field in OWNED_METADATA {
        // No new finalizers on an object being deleted (Kubernetes' rule).
        if field == "finalizers" && being_deleted {
            continue;
        }
        match object["metadata"].get(field) {
            Some(value) => wanted["metadata"][field] = value.clone(),
            None => {
                if let Some(meta) = wanted["metadata"].as_object_mut() {
                    meta.remove(field);
                }
            }
        }
    }
    if let Some(spec) = object.get("spec") {
        wanted["spec"] = spec.clone();
    }
    let mut current = stored.clone();
    if wanted != stored {
        current = store.update(rt, wanted).await?;
    }
    if let Some(status) = object.get("status") {
        let status = observed(status, &current);
        if current.get("status") == Some(&status) {
            return finish(store, rt, &namespace, &name, terminating, being_deleted).await;
        }
        let mut with_status = current.clone();
        with_status["status"] = status;
        if let Some(meta) = with_status["metadata"].as_object_mut() {
            meta.remove("resourceVersion");
        }
        store.update_status(rt, with_status).await?;
    }
    finish(store, rt, &namespace, &name, terminating, being_deleted).await
}

async fn finish(
    store: &Store,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    terminating: bool,
    being_deleted: bool,
) -> Result<(), okonomi_apiserver::Error> {
    if terminating && !being_deleted {
        store.delete(rt, namespace, name).await?;
    }
    Ok(())
}

/// `status` as written over `current`: `observedGeneration: null` becomes
/// the generation just written, and a condition whose status did not
/// change keeps its `lastTransitionTime`.
fn observed(status: &Value, current: &Value) -> Value {
    let mut status = status.clone();
    if status.get("observedGeneration").is_some_and(Value::is_null) {
        status["observedGeneration"] = current["metadata"]["generation"].clone();
    }
    let before = current["status"]["conditions"].as_array();
    if let (Some(conditions), Some(before)) = (
        status.get_mut("conditions").and_then(Value::as_array_mut),
        before,
    ) {
        for condition in conditions {
            let same = before
                .iter()
                .find(|c| c["type"] == condition["type"] && c["status"] == condition["status"]);
            if let Some(same) = same {
                condition["lastTransitionTime"] = same["lastTransitionTime"].clone();
            }
        }
    }
    status
}

/// The engine's own kinds whose uids the store chooses.
fn owned_type(kind: Option<&str>) -> Option<ResourceType> {
    match kind {
        Some("Deployment") => Some(ResourceType::deployment()),
        Some("ReplicaSet") => Some(ResourceType::replica_set()),
        Some("Pod") => Some(ResourceType::pod()),
        Some("PodAutoscaler") => Some(ResourceType::pod_autoscaler()),
        _ => None,
    }
}

/// Fills in an Event's `involvedObject.uid` when it was written without
/// one (kubectl describe selects events by it); left out when the object
/// is gone.
fn resolve_involved(
    store: &Store,
    namespace: &str,
    object: &mut Value,
) -> Result<(), okonomi_apiserver::Error> {
    let Some(involved) = object.get_mut("involvedObject") else {
        return Ok(());
    };
    if involved.get("uid").is_some() {
        return Ok(());
    }
    let Some(rt) = owned_type(involved["kind"].as_str()) else {
        return Ok(());
    };
    let name = involved["name"].as_str().unwrap_or_default();
    match store.get(&rt, namespace, name) {
        Ok(stored) => involved["uid"] = stored["metadata"]["uid"].clone(),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Fills in the uid of each owner reference written with an empty one
/// (an owner the engine made, whose uid the store chose). False when such
/// an owner does not exist.
fn resolve_owners(
    store: &Store,
    namespace: &str,
    object: &mut Value,
) -> Result<bool, okonomi_apiserver::Error> {
    let Some(owners) = object
        .pointer_mut("/metadata/ownerReferences")
        .and_then(Value::as_array_mut)
    else {
        return Ok(true);
    };
    for owner in owners {
        if owner["uid"] != "" {
            continue;
        }
        let Some(rt) = owned_type(owner["kind"].as_str()) else {
            continue;
        };
        let name = owner["name"].as_str().unwrap_or_default();
        match store.get(&rt, namespace, name) {
            Ok(stored) => owner["uid"] = stored["metadata"]["uid"].clone(),
            Err(e) if e.is_not_found() => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Deletes `namespace/name` for good: marks it, then drops its finalizers.
pub async fn remove(
    store: &Store,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
) -> Result<(), okonomi_apiserver::Error> {
    let stored = match store.delete(rt, namespace, name).await {
        Ok(stored) => stored,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    if stored["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
    {
        let mut done = stored;
        if let Some(meta) = done["metadata"].as_object_mut() {
            meta.remove("finalizers");
        }
        match store.update(rt, done).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
