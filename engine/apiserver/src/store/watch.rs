//! Watches: a stream of changes per watcher, replayed from the retained history
//! when resuming from a resourceVersion, then fed from a bounded broadcast. A
//! watcher that falls too far behind gets a `410 Expired` error event and its stream
//! ends, so a slow client costs bounded memory.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::BoxStream;
use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{Event, EventKind, Filter, Store, WatchOptions, lock_poisoned};
use crate::error::{Error, Result};
use crate::resource::ResourceType;
use crate::status::Status;

/// One event of a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The object appeared (or, with selectors, entered the selection).
    Added(Value),
    /// The object changed.
    Modified(Value),
    /// The object was deleted (or, with selectors, left the selection); the object
    /// carries the resourceVersion of the deletion.
    Deleted(Value),
    /// Nothing the watcher needs happened up to `resource_version`; resume from it.
    Bookmark {
        /// Resume a watch from here.
        resource_version: u64,
        /// This bookmark ends the initial events of a `send_initial_events` watch.
        initial_events_end: bool,
    },
    /// The watch failed (e.g. `410 Expired`); the stream ends after this.
    Error(Box<Status>),
}

impl WatchEvent {
    /// The Kubernetes event type: `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`.
    pub fn type_name(&self) -> &'static str {
        match self {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark { .. } => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        }
    }

    /// This event with its object (if any) passed through `f`.
    pub(crate) fn map_object(self, f: impl FnOnce(Value) -> Value) -> Self {
        match self {
            WatchEvent::Added(o) => WatchEvent::Added(f(o)),
            WatchEvent::Modified(o) => WatchEvent::Modified(f(o)),
            WatchEvent::Deleted(o) => WatchEvent::Deleted(f(o)),
            other => other,
        }
    }

    /// The object of an Added, Modified or Deleted event.
    pub fn object(&self) -> Option<&Value> {
        match self {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => Some(o),
            _ => None,
        }
    }
}

/// A stream of watch events.
pub type WatchStream = BoxStream<'static, WatchEvent>;

struct Watcher {
    key: String,
    filter: Filter,
    pending: VecDeque<WatchEvent>,
    rx: broadcast::Receiver<Arc<Event>>,
    last_rv: u64,
    bookmarks: Option<tokio::time::Interval>,
    done: bool,
}

fn translate(
    filter: &Filter,
    kind: EventKind,
    object: &Value,
    previous_labels: Option<&Value>,
) -> Option<WatchEvent> {
    let now = filter.matches(object);
    match kind {
        EventKind::Added => now.then(|| WatchEvent::Added(object.clone())),
        EventKind::Deleted => now.then(|| WatchEvent::Deleted(object.clone())),
        EventKind::Modified => {
            let before = previous_labels.is_none_or(|l| filter.matched_with_labels(object, l));
            match (before, now) {
                (true, true) => Some(WatchEvent::Modified(object.clone())),
                (false, true) => Some(WatchEvent::Added(object.clone())),
                (true, false) => Some(WatchEvent::Deleted(object.clone())),
                (false, false) => None,
            }
        }
    }
}

impl Watcher {
    async fn next(&mut self) -> Option<WatchEvent> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        if self.done {
            return None;
        }
        loop {
            let tick = async {
                match &mut self.bookmarks {
                    Some(interval) => {
                        interval.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                received = self.rx.recv() => match received {
                    Ok(event) => {
                        if event.resource_version <= self.last_rv {
                            continue;
                        }
                        self.last_rv = event.resource_version;
                        if event.key != self.key {
                            continue;
                        }
                        let out = translate(
                            &self.filter,
                            event.kind,
                            &event.object,
                            event.previous_labels.as_ref(),
                        );
                        if let Some(out) = out {
                            return Some(out);
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        self.done = true;
                        let error = Error::Expired { requested: self.last_rv, oldest: self.last_rv + 1 };
                        let mut status = error.to_status();
                        status.message = format!(
                            "the watcher fell behind at resourceVersion {}; list again and watch from the new resourceVersion",
                            self.last_rv
                        );
                        return Some(WatchEvent::Error(Box::new(status)));
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = tick => {
                    return Some(WatchEvent::Bookmark { resource_version: self.last_rv, initial_events_end: false });
                }
            }
        }
    }
}

pub(super) fn start(
    store: &Store,
    rt: &ResourceType,
    options: &WatchOptions,
) -> Result<WatchStream> {
    let filter = Filter::parse(rt, &options.filter)?;
    let key = rt.storage_key();
    let state = store.inner.state.read().map_err(|_| lock_poisoned())?;
    // Subscribing under the state lock: writers publish under the write lock, so the
    // snapshot or history taken here and the broadcast neither overlap nor miss.
    let rx = store.inner.events.subscribe();
    let mut pending = VecDeque::new();
    let initial = matches!(options.resource_version, None | Some(0)) || options.send_initial_events;
    let last_rv;
    if initial {
        if let Some(objects) = state.objects.get(&key) {
            pending.extend(
                objects
                    .values()
                    .filter(|o| filter.matches(o))
                    .map(|o| WatchEvent::Added((**o).clone())),
            );
        }
        last_rv = state.resource_version;
        if options.send_initial_events {
            pending.push_back(WatchEvent::Bookmark {
                resource_version: last_rv,
                initial_events_end: true,
            });
        }
    } else {
        let from = options.resource_version.unwrap_or(0);
        if from < state.history_floor {
            return Err(Error::Expired {
                requested: from,
                oldest: state.history_floor,
            });
        }
        for retained in state
            .history
            .iter()
            .filter(|e| e.resource_version > from && e.key == key)
        {
            let object: Value = serde_json::from_str(&retained.body)
                .map_err(|e| Error::Internal(format!("a retained watch event is not JSON: {e}")))?;
            pending.extend(translate(
                &filter,
                retained.kind,
                &object,
                retained.previous_labels.as_ref(),
            ));
        }
        last_rv = state.resource_version.max(from);
    }
    drop(state);
    let bookmarks = options.bookmark_interval.map(|period| {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let watcher = Watcher {
        key,
        filter,
        pending,
        rx,
        last_rv,
        bookmarks,
        done: false,
    };
    Ok(Box::pin(futures::stream::unfold(
        watcher,
        |mut w| async move { w.next().await.map(|event| (event, w)) },
    )))
}
