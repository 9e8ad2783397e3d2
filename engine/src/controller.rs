//! Controllers, as Knative's: Service → Configuration + Route,
//! Configuration → Revisions, Revision → a Deployment and its autoscaler,
//! Deployment → Pods, Route → the data plane's routing table. Each
//! `reconcile` is a plain async function of one object and the shared
//! [`Context`] returning an [`Action`] or an [`Error`]; a single worker
//! drains a deduplicating, bounded queue fed by Store watches, so reconciles
//! never race each other, and a failing object is retried with exponential
//! back-off of its own ([`Backoff`], as client-go's rate limiter).
//! A change to a Configuration or Revision also queues every Route whose
//! traffic references it, whatever its name ([`tracker`]).

pub mod configuration;
pub mod deployment;
pub mod events;
pub mod resources;
pub mod revision;
pub mod route;
pub mod service;
pub mod tracker;
pub mod writer;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use okonomi_apiserver::{ResourceType, Store, WatchEvent, WatchOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::dataplane::RevisionKey;
use crate::dataplane::router::SharedRoutes;
use crate::dataplane::{Destination, RouteTable};
use deployment::DeploymentStatus;
use revision::Revisions;
use tracker::{Reference, Tracker};

/// Work items: which object to reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A Knative Service.
    Service(String, String),
    /// A Configuration.
    Configuration(String, String),
    /// A Revision.
    Revision(String, String),
    /// A Route.
    Route(String, String),
}

/// Capacity of the work queue; watchers wait when it is full.
const QUEUE_CAPACITY: usize = 8192;

/// A bounded queue that holds each key at most once, with the tracker of
/// what Routes reference (as Knative's controller `Impl` carries its work
/// queue and its `Tracker`).
#[derive(Debug, Clone)]
pub struct WorkQueue {
    tx: mpsc::Sender<Key>,
    pending: Arc<Mutex<HashSet<Key>>>,
    tracker: Arc<Tracker>,
}

impl WorkQueue {
    fn new() -> (Self, mpsc::Receiver<Key>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        (
            Self {
                tx,
                pending: Arc::new(Mutex::new(HashSet::new())),
                tracker: Arc::new(Tracker::default()),
            },
            rx,
        )
    }

    /// Which Routes reference which Configurations and Revisions.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Queues `key` unless it is already waiting.
    pub async fn add(&self, key: Key) {
        let fresh = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone());
        if fresh {
            let _ = self.tx.send(key).await;
        }
    }

    /// Queues `key` after `delay` (retry after an error).
    pub fn add_after(&self, key: Key, delay: Duration) {
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key).await;
        });
    }

    fn done(&self, key: &Key) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The hosts one Route serves and where each goes.
pub type RouteHosts = Vec<(String, Arc<Destination>)>;

/// What every reconcile shares.
#[derive(Debug)]
pub struct Context {
    /// The object store (writes as field manager `okonomi-engine`).
    pub store: Store,
    /// What the revision controller runs per revision.
    pub revisions: Arc<Revisions>,
    /// The data plane's routing table.
    pub routes: SharedRoutes,
    /// Per Route object, the hosts it serves.
    pub route_hosts: Mutex<HashMap<(String, String), RouteHosts>>,
    /// Domain of the URLs (`localhost`).
    pub domain: String,
    /// The data plane's port (part of URLs unless 80).
    pub http_port: u16,
    /// The work queue.
    pub queue: WorkQueue,
    /// Records Events.
    pub recorder: events::Recorder,
}

impl Context {
    /// `http://HOST[:PORT]`.
    pub fn url(&self, host: &str) -> String {
        if self.http_port == 80 {
            format!("http://{host}")
        } else {
            format!("http://{host}:{}", self.http_port)
        }
    }

    /// Publishes the hosts of one Route (none when it is deleted) into the
    /// data plane.
    pub fn set_route_hosts(&self, namespace: &str, name: &str, hosts: RouteHosts) {
        let mut all = self.route_hosts.lock().unwrap_or_else(|e| e.into_inner());
        let key = (namespace.to_string(), name.to_string());
        if hosts.is_empty() {
            all.remove(&key);
        } else {
            all.insert(key, hosts);
        }
        let mut table = RouteTable::default();
        for hosts in all.values() {
            for (host, destination) in hosts {
                table.insert(host, destination.clone());
            }
        }
        *self.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }
}

/// Why a reconcile failed; the object is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store refused or failed a read or a write.
    #[error("{action} {kind} {namespace}/{name}")]
    Api {
        /// What the controller was doing (`reading`, `creating`, …).
        action: &'static str,
        /// The object's kind.
        kind: String,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API server's error (boxed: it is large, and errors are rare).
        #[source]
        source: Box<okonomi_apiserver::Error>,
    },
    /// Listing objects failed.
    #[error("listing {kind} in {namespace}")]
    List {
        /// The kind listed.
        kind: String,
        /// The namespace.
        namespace: String,
        /// The API server's error.
        #[source]
        source: Box<okonomi_apiserver::Error>,
    },
    /// A stored object does not decode into its type.
    #[error("stored object does not decode")]
    Decode(#[source] serde_json::Error),
    /// An object does not encode.
    #[error("object does not encode")]
    Encode(#[source] serde_json::Error),
}

impl Error {
    /// An [`Error::Api`] on `rt` `namespace/name`.
    pub fn api(
        action: &'static str,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        source: okonomi_apiserver::Error,
    ) -> Self {
        Self::Api {
            action,
            kind: rt.kind.clone(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            source: Box::new(source),
        }
    }
}

/// What to do with an object after a successful reconcile (kube-runtime's
/// `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the object (or something it watches) changes.
    AwaitChange,
    /// Reconcile again after this long.
    RequeueAfter(Duration),
}

/// The outcome of one reconcile.
pub type ReconcileResult = Result<Action, Error>;

/// Per-object exponential back-off after failures (client-go's
/// `ItemExponentialFailureRateLimiter`): 5 ms, doubling, at most 5 min;
/// forgotten after a success.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: HashMap<Key, u32>,
}

impl Backoff {
    /// First delay.
    pub const BASE: Duration = Duration::from_millis(5);
    /// Longest delay.
    pub const MAX: Duration = Duration::from_secs(300);

    /// How long to wait before retrying `key`, which just failed.
    pub fn failed(&mut self, key: &Key) -> Duration {
        let failures = self.failures.entry(key.clone()).or_insert(0);
        let delay = Self::BASE
            .checked_mul(1u32 << (*failures).min(31))
            .unwrap_or(Self::MAX)
            .min(Self::MAX);
        *failures = failures.saturating_add(1);
        delay
    }

    /// `key` reconciled: its next failure starts from the first delay.
    pub fn succeeded(&mut self, key: &Key) {
        self.failures.remove(key);
    }
}

/// Now, as a Kubernetes timestamp.
pub fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// Decodes a stored object into its Knative type.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(Error::Decode)
}

/// Encodes a Knative object for the store.
pub fn encode<T: Serialize>(object: &T) -> Result<Value, Error> {
    serde_json::to_value(object).map_err(Error::Encode)
}

/// An owner reference to `owner` (controller, blocking deletion).
pub fn owner_reference(kind: &str, name: &str, uid: Option<&String>) -> OwnerReference {
    OwnerReference {
        api_version: okonomi_knative::keys::API_VERSION.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        uid: uid.cloned().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Writes `status` into the stored object unless it is unchanged.
pub async fn write_status<S: Serialize + PartialEq>(
    store: &Store,
    rt: &ResourceType,
    stored: &Value,
    old: Option<&S>,
    new: &S,
) -> ReconcileResult {
    if old == Some(new) {
        return Ok(Action::AwaitChange);
    }
    let mut object = stored.clone();
    object["status"] = encode(new)?;
    // Status is only written here: last writer wins, no conflict retries.
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("resourceVersion");
    }
    match store.update_status(rt, object).await {
        Ok(_) => Ok(Action::AwaitChange),
        Err(e) if e.is_not_found() => Ok(Action::AwaitChange),
        Err(source) => {
            let (namespace, name) = meta(stored);
            Err(Error::api(
                "updating the status of",
                rt,
                &namespace,
                &name,
                source,
            ))
        }
    }
}

async fn dispatch(ctx: &Arc<Context>, key: &Key) -> ReconcileResult {
    match key {
        Key::Service(ns, name) => service::reconcile(ctx, ns, name).await,
        Key::Configuration(ns, name) => configuration::reconcile(ctx, ns, name).await,
        Key::Revision(ns, name) => revision::reconcile(ctx, ns, name).await,
        Key::Route(ns, name) => route::reconcile(ctx, ns, name).await,
    }
}

fn meta(object: &Value) -> (String, String) {
    let ns = object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (ns, name)
}

fn label(object: &Value, key: &str) -> Option<String> {
    object["metadata"]["labels"][key]
        .as_str()
        .map(str::to_string)
}

/// Keys to reconcile when `object` of type `kind` changed.
fn keys_for(tracker: &Tracker, kind: &str, object: &Value, deleted: bool) -> Vec<Key> {
    use okonomi_knative::keys::{CONFIGURATION_LABEL, SERVICE_LABEL};
    let (ns, name) = meta(object);
    let mut keys = Vec::new();
    let routes_referencing = |reference: Reference| {
        tracker
            .routes_referencing(&reference)
            .into_iter()
            .map(|(ns, name)| Key::Route(ns, name))
    };
    match kind {
        "Service" => keys.push(Key::Service(ns, name)),
        "Configuration" => {
            if !deleted {
                keys.push(Key::Configuration(ns.clone(), name.clone()));
            }
            if let Some(service) = label(object, SERVICE_LABEL) {
                keys.push(Key::Service(ns.clone(), service));
            }
            // Routes following this configuration, whatever their names.
            keys.extend(routes_referencing(Reference::configuration(&ns, &name)));
        }
        "Revision" => {
            keys.push(Key::Revision(ns.clone(), name.clone()));
            if let Some(configuration) = label(object, CONFIGURATION_LABEL) {
                keys.push(Key::Configuration(ns.clone(), configuration));
            }
            // Routes naming this revision in a traffic target.
            keys.extend(routes_referencing(Reference::revision(&ns, &name)));
        }
        "Route" => {
            keys.push(Key::Route(ns.clone(), name));
            if let Some(service) = label(object, SERVICE_LABEL) {
                keys.push(Key::Service(ns, service));
            }
        }
        _ => {}
    }
    keys
}

async fn watch_kind(ctx: Arc<Context>, rt: ResourceType, shutdown: CancellationToken) {
    loop {
        let stream = match ctx.store.watch(&rt, &WatchOptions::default()) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::error!(%error, kind = %rt.kind, "cannot watch");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let mut stream = stream;
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                event = stream.next() => event,
            };
            let Some(event) = event else { break };
            let (object, deleted) = match event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => (o, false),
                WatchEvent::Deleted(o) => (o, true),
                WatchEvent::Bookmark { .. } => continue,
                // Fell behind: start over with a fresh list.
                WatchEvent::Error(_) => break,
            };
            if deleted {
                on_deleted(&ctx, &rt.kind, &object);
            }
            on_owned_changed(&ctx, &rt.kind, &object, deleted);
            for key in keys_for(ctx.queue.tracker(), &rt.kind, &object, deleted) {
                ctx.queue.add(key).await;
            }
        }
    }
}

/// A Pod or Deployment the engine owns changed: a Pod someone deleted is
/// stopped and replaced (as its ReplicaSet would), a Deployment scaled by
/// hand is put back (as Knative's revision reconciler does).
fn on_owned_changed(ctx: &Context, kind: &str, object: &Value, deleted: bool) {
    if kind != "Pod" && kind != "Deployment" {
        return;
    }
    let Some(revision) = label(object, okonomi_knative::keys::REVISION_LABEL) else {
        return;
    };
    let (namespace, name) = meta(object);
    let Some(deployment) = ctx.revisions.get(&RevisionKey {
        namespace,
        name: revision,
    }) else {
        return;
    };
    match kind {
        "Pod" if deleted || object["metadata"]["deletionTimestamp"].is_string() => {
            deployment.evicted(&name)
        }
        "Deployment" if !deleted && !deployment.owns_replicas(object) => deployment.republish(),
        _ => {}
    }
}

fn on_deleted(ctx: &Context, kind: &str, object: &Value) {
    let (ns, name) = meta(object);
    match kind {
        "Revision" => ctx.revisions.remove(&RevisionKey {
            namespace: ns,
            name,
        }),
        "Route" => {
            ctx.queue.tracker().forget((ns.clone(), name.clone()));
            ctx.set_route_hosts(&ns, &name, Vec::new());
        }
        _ => {}
    }
}

/// Re-reconciles revisions whose Deployment's status changed (a Pod became
/// ready, failed, or the scale moved).
async fn watch_deployments(ctx: Arc<Context>, changed: Arc<Notify>, shutdown: CancellationToken) {
    let mut last: HashMap<RevisionKey, DeploymentStatus> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = changed.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        let deployments = ctx.revisions.deployments();
        let mut seen = HashSet::new();
        for deployment in deployments {
            let status = deployment.status();
            let key = &deployment.key;
            seen.insert(key.clone());
            if last.get(key) != Some(&status) {
                last.insert(key.clone(), status);
                ctx.queue
                    .add(Key::Revision(key.namespace.clone(), key.name.clone()))
                    .await;
            }
        }
        last.retain(|k, _| seen.contains(k));
    }
}

/// Runs the controllers until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    rx: mpsc::Receiver<Key>,
    deployment_changes: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut tasks = Vec::new();
    for rt in [
        ResourceType::knative_service(),
        ResourceType::knative_configuration(),
        ResourceType::knative_revision(),
        ResourceType::knative_route(),
        ResourceType::pod(),
        ResourceType::deployment(),
    ] {
        tasks.push(tokio::spawn(watch_kind(ctx.clone(), rt, shutdown.clone())));
    }
    tasks.push(tokio::spawn(watch_deployments(
        ctx.clone(),
        deployment_changes,
        shutdown.clone(),
    )));
    let mut backoff = Backoff::default();
    let mut rx = rx;
    loop {
        let key = tokio::select! {
            _ = shutdown.cancelled() => break,
            key = rx.recv() => key,
        };
        let Some(key) = key else { break };
        ctx.queue.done(&key);
        match dispatch(&ctx, &key).await {
            Ok(action) => {
                backoff.succeeded(&key);
                if let Action::RequeueAfter(delay) = action {
                    ctx.queue.add_after(key, delay);
                }
            }
            Err(error) => {
                let delay = backoff.failed(&key);
                let error = error_chain(&error);
                tracing::warn!(?key, %error, ?delay, "reconcile failed; retrying");
                ctx.queue.add_after(key, delay);
            }
        }
    }
    for task in tasks {
        task.abort();
    }
}

/// `error` and its sources, one after the other.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A new work queue and its receiving end for [`run`].
pub fn queue() -> (WorkQueue, mpsc::Receiver<Key>) {
    WorkQueue::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_exponentially_per_object_and_reset_on_success() {
        let mut backoff = Backoff::default();
        let a = Key::Revision("default".into(), "a".into());
        let b = Key::Revision("default".into(), "b".into());
        let first = backoff.failed(&a);
        let second = backoff.failed(&a);
        let third = backoff.failed(&a);
        assert_eq!(first, Backoff::BASE);
        assert_eq!(second, first * 2);
        assert_eq!(third, second * 2);
        // Another object starts from the first delay.
        assert_eq!(backoff.failed(&b), Backoff::BASE);
        for _ in 0..64 {
            backoff.failed(&a);
        }
        assert_eq!(backoff.failed(&a), Backoff::MAX);
        backoff.succeeded(&a);
        assert_eq!(backoff.failed(&a), Backoff::BASE);
    }
}
