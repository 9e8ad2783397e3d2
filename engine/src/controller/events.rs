//! Events, as client-go's event recorder makes them: one `v1` Event per
//! (object, reason, message), a repeat folded into it (count + 1, a new
//! lastTimestamp), written through the [`ObjectWriter`] off the request
//! path, and deleted an hour after they last happened (Kubernetes' default
//! `--event-ttl`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use okonomi_apiserver::{ListOptions, ResourceType, Store};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::resources::{NODE_NAME, time};
use super::writer::ObjectWriter;

/// How long an Event is kept after it last happened.
pub const TTL: Duration = Duration::from_secs(3600);

/// Distinct events remembered for folding; the oldest is forgotten beyond
/// it (its next repeat starts a new Event, as client-go's LRU does).
const REMEMBERED: usize = 4096;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something a user may want to act on.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InvolvedObject {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid (empty when not known).
    pub uid: String,
}

impl InvolvedObject {
    /// The object `stored` (of type `rt`) as read from the store.
    pub fn of(rt: &ResourceType, stored: &Value) -> Self {
        let api_version = if rt.group.is_empty() {
            rt.version.clone()
        } else {
            format!("{}/{}", rt.group, rt.version)
        };
        let meta = &stored["metadata"];
        let text = |field: &str| meta[field].as_str().unwrap_or_default().to_string();
        Self {
            api_version,
            kind: rt.kind.clone(),
            namespace: text("namespace"),
            name: text("name"),
            uid: text("uid"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FoldKey {
    object: InvolvedObject,
    reason: String,
    message: String,
}

#[derive(Debug, Clone)]
struct Folded {
    name: String,
    count: u64,
    first: String,
    last: Timestamp,
    type_: EventType,
    component: String,
}

/// Records Events (cheap to clone).
#[derive(Debug, Clone)]
pub struct Recorder {
    writer: ObjectWriter,
    seen: Arc<Mutex<HashMap<FoldKey, Folded>>>,
}

impl Recorder {
    /// A recorder writing through `writer`.
    pub fn new(writer: ObjectWriter) -> Self {
        Self {
            writer,
            seen: Arc::default(),
        }
    }

    /// Records that `reason` happened to `object`, as `component` saw it.
    pub fn record(
        &self,
        object: &InvolvedObject,
        type_: EventType,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let now = Timestamp::now();
        let key = FoldKey {
            object: object.clone(),
            reason: reason.to_string(),
            message: message.to_string(),
        };
        let folded = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() >= REMEMBERED && !seen.contains_key(&key) {
                let oldest = seen
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    seen.remove(&oldest);
                }
            }
            let folded = seen.entry(key.clone()).or_insert_with(|| Folded {
                // client-go's name: the object's, then the time in hex.
                name: format!("{}.{:x}", object.name, now.as_nanosecond().unsigned_abs()),
                count: 0,
                first: time(now),
                last: now,
                type_,
                component: component.to_string(),
            });
            folded.count += 1;
            folded.last = now;
            folded.clone()
        };
        self.writer
            .apply(&ResourceType::event(), make_event(&key, &folded));
    }

    /// Deletes, every minute until `shutdown`, the Events of `store` that
    /// last happened more than [`TTL`] ago.
    pub async fn expire(self, store: Store, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            self.expire_now(&store, Timestamp::now());
        }
    }

    /// Deletes the Events that last happened more than [`TTL`] before `now`.
    pub fn expire_now(&self, store: &Store, now: Timestamp) {
        let Ok(cutoff) = now.checked_sub(jiff::SignedDuration::from_secs(TTL.as_secs() as i64))
        else {
            return;
        };
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, f| f.last >= cutoff);
        let rt = ResourceType::event();
        let events = match store.list(&rt, &ListOptions::default()) {
            Ok(list) => list.items,
            Err(error) => {
                tracing::warn!(%error, "listing events to expire");
                return;
            }
        };
        for event in events {
            let last = event["lastTimestamp"]
                .as_str()
                .or_else(|| event["metadata"]["creationTimestamp"].as_str())
                .and_then(|t| t.parse::<Timestamp>().ok());
            if last.is_some_and(|last| last < cutoff) {
                let namespace = event["metadata"]["namespace"].as_str().unwrap_or("default");
                let name = event["metadata"]["name"].as_str().unwrap_or_default();
                self.writer.remove(&rt, namespace, name);
            }
        }
    }
}

fn make_event(key: &FoldKey, folded: &Folded) -> Value {
    let object = &key.object;
    let mut involved = json!({
        "apiVersion": object.api_version,
        "kind": object.kind,
        "namespace": object.namespace,
        "name": object.name,
    });
    if !object.uid.is_empty() {
        involved["uid"] = json!(object.uid);
    }
    if object.kind == "Pod" {
        involved["fieldPath"] = json!("spec.containers{user-container}");
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": folded.name, "namespace": object.namespace},
        "involvedObject": involved,
        "reason": key.reason,
        "message": key.message,
        "type": folded.type_.as_str(),
        "count": folded.count,
        "firstTimestamp": folded.first,
        "lastTimestamp": time(folded.last),
        "source": {"component": folded.component, "host": NODE_NAME},
        "reportingComponent": folded.component,
        "reportingInstance": NODE_NAME,
    })
}
