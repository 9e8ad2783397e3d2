//! The object store: every object of every resource type, in memory for reads and in
//! SQLite for durability, with Kubernetes write semantics and watches.
//!
//! Writes are serialised (one at a time, each one SQLite transaction) so that
//! resourceVersions are handed out in commit order; reads never wait for SQLite.

mod database;
mod fields;
mod managed;
mod object;
mod removal;
mod watch;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::admission::{Admission, AdmissionRequest, Denial, NoAdmission, Operation};
use crate::error::{Error, Result};
use crate::resource::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use database::{Database, RowChange};
use fields::FieldSet;
pub(crate) use object::name as object_name;
pub use watch::{WatchEvent, WatchStream};

/// How many past events the store keeps so that watches can resume from an older
/// resourceVersion; older ones get `410 Expired`.
const HISTORY: usize = 10_000;
/// How many events a watcher may fall behind before it gets `410 Expired`.
const WATCH_BUFFER: usize = 16_384;
/// The field manager recorded for an apply that names none.
const DEFAULT_APPLY_MANAGER: &str = "okonomi-apiserver";
/// The namespace that always exists.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Filters of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Only objects in this namespace; `None` for all namespaces.
    pub namespace: Option<String>,
    /// A label selector in query syntax (`app=x,tier in (a,b),!legacy`).
    pub label_selector: Option<String>,
    /// A field selector over `metadata.name`, `metadata.namespace` and the fields
    /// the kind supports (see [`FieldSelector::parse_for`]).
    pub field_selector: Option<String>,
    /// At most this many objects per list (`None` or 0: all).
    pub limit: Option<usize>,
    /// The continue token of the previous page.
    pub continue_token: Option<String>,
}

impl ListOptions {
    /// All objects of a namespace.
    pub fn namespace(namespace: impl Into<String>) -> Self {
        Self {
            namespace: Some(namespace.into()),
            ..Default::default()
        }
    }

    /// This filter with a label selector.
    pub fn labels(mut self, selector: impl Into<String>) -> Self {
        self.label_selector = Some(selector.into());
        self
    }

    /// This filter with a field selector.
    pub fn fields(mut self, selector: impl Into<String>) -> Self {
        self.field_selector = Some(selector.into());
        self
    }
}

/// A parsed [`ListOptions`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn parse(rt: &ResourceType, options: &ListOptions) -> Result<Self> {
        Ok(Self {
            namespace: options.namespace.clone().filter(|n| !n.is_empty()),
            labels: LabelSelector::parse(options.label_selector.as_deref().unwrap_or(""))?,
            fields: FieldSelector::parse_for(rt, options.field_selector.as_deref().unwrap_or(""))?,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && object::namespace(object) != ns
        {
            return false;
        }
        self.labels.matches(object) && self.fields.matches(object)
    }

    /// Whether `object` matched when its labels were `labels` (name and namespace
    /// never change, so only the labels of an earlier version matter).
    fn matched_with_labels(&self, object: &Value, labels: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && object::namespace(object) != ns
        {
            return false;
        }
        self.labels.matches_labels(labels.as_object()) && self.fields.matches(object)
    }
}

/// The answer to a list: the matching objects and the store's resourceVersion.
#[derive(Debug, Clone)]
pub struct ObjectList {
    /// Matching objects, ordered by namespace then name.
    pub items: Vec<Value>,
    /// The resourceVersion the list is consistent with; watch from it.
    pub resource_version: u64,
    /// Where the next page starts, when a limit cut the list.
    pub continue_token: Option<String>,
    /// How many matching objects the later pages hold (not given when a label or
    /// field selector was used, as Kubernetes leaves it out then).
    pub remaining_item_count: Option<u64>,
}

/// What a continue token carries: the resourceVersion of the first page and the
/// last object returned. Encoded as Kubernetes does (base64url of JSON), and as
/// opaque to clients.
struct ContinueToken {
    resource_version: u64,
    after: (String, String),
}

impl ContinueToken {
    fn encode(&self) -> String {
        use base64::Engine;
        let start = format!("{}/{}\u{0}", self.after.0, self.after.1);
        let json = json!({"v": "meta.k8s.io/v1", "rv": self.resource_version, "start": start});
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    }

    fn decode(token: &str) -> Result<Self> {
        use base64::Engine;
        let invalid = |why: &str| Error::BadRequest(format!("continue key is not valid: {why}"));
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| invalid("not base64"))?;
        let json: Value =
            serde_json::from_slice(&bytes).map_err(|_| invalid("not a continue token"))?;
        if json["v"] != "meta.k8s.io/v1" {
            return Err(invalid("unknown version"));
        }
        let resource_version = json["rv"]
            .as_u64()
            .filter(|rv| *rv > 0)
            .ok_or_else(|| invalid("no resourceVersion"))?;
        let (namespace, name) = json["start"]
            .as_str()
            .and_then(|s| s.strip_suffix('\u{0}'))
            .and_then(|s| s.split_once('/'))
            .ok_or_else(|| invalid("no start key"))?;
        Ok(Self {
            resource_version,
            after: (namespace.to_string(), name.to_string()),
        })
    }
}

/// Options of a watch.
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// Which objects to watch.
    pub filter: ListOptions,
    /// `None` or `Some(0)`: start with an `Added` event per existing object, then
    /// changes. `Some(rv)`: only changes after `rv` (`410 Expired` if `rv` is older
    /// than the retained history).
    pub resource_version: Option<u64>,
    /// With `resource_version: Some(rv)`, still start with the existing objects; in
    /// any case mark the end of the initial events with a bookmark annotated
    /// `k8s.io/initial-events-end` (the watch-list protocol).
    pub send_initial_events: bool,
    /// Emit a `Bookmark` this often (when the stream is idle).
    pub bookmark_interval: Option<Duration>,
}

/// Per-write options: who writes, and whether to store at all.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// The field manager recorded in managedFields (e.g. `kubectl`, `okonomi-engine`).
    pub field_manager: Option<String>,
    /// Validate and compute the result, but store nothing (`dryRun=All`).
    pub dry_run: bool,
    /// Server-side apply `force`: take over fields other managers own instead of
    /// failing with a conflict.
    pub force: bool,
}

/// A patch of an object.
#[derive(Debug, Clone)]
pub enum Patch {
    /// RFC 7386 JSON merge patch (`application/merge-patch+json`).
    Merge(Value),
    /// RFC 6902 JSON patch (`application/json-patch+json`).
    Json(json_patch::Patch),
    /// Server-side apply (`application/apply-patch+yaml`): the configuration is
    /// merged into the live object (lists replaced whole), fields the manager
    /// applied before and leaves out now are removed when no one else owns them,
    /// and changing a field another manager owns is a conflict unless forced.
    /// Creates the object when it does not exist.
    Apply(Value),
}

/// What happened to an object, as watch events carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One committed change, shared by every live watcher.
#[derive(Debug)]
pub(crate) struct Event {
    pub key: String,
    pub kind: EventKind,
    pub object: Arc<Value>,
    /// The labels before a modification (to tell watchers with selectors when an
    /// object leaves or enters their selection).
    pub previous_labels: Option<Value>,
    pub resource_version: u64,
}

/// A past change kept for watches that resume from an older resourceVersion. The
/// object is kept serialized: old versions are many and rarely read, and the
/// string is the one written to SQLite anyway.
#[derive(Debug)]
pub(crate) struct Retained {
    pub key: String,
    pub kind: EventKind,
    pub body: Arc<str>,
    /// The version this change replaced or deleted (to list as of an older
    /// resourceVersion, for the later pages of a paginated list).
    pub previous: Option<Arc<str>>,
    pub previous_labels: Option<Value>,
    pub resource_version: u64,
}

/// A change with its resourceVersion: (storage key, kind, object, previous labels, rv).
type Prepared = (String, EventKind, Value, Option<Value>, u64);

/// A row to persist: (storage key, namespace, name, rv, body; `None` deletes).
type Row = (String, String, String, u64, Option<Arc<str>>);

type Objects = BTreeMap<(String, String), Arc<Value>>;

pub(crate) struct State {
    objects: HashMap<String, Objects>,
    resource_version: u64,
    history: VecDeque<Retained>,
    /// Every event with a resourceVersion above this is in `history`.
    history_floor: u64,
}

struct Inner {
    state: RwLock<State>,
    write_lock: tokio::sync::Mutex<()>,
    db: Arc<Mutex<Database>>,
    events: broadcast::Sender<Arc<Event>>,
}

/// The object store. Cheap to clone; all clones share one state. A clone made with
/// [`Store::with_admission`] or [`Store::with_write_options`] differs only in how
/// it writes.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    admission: Arc<dyn Admission>,
    write_options: WriteOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("resource_version", &self.resource_version())
            .field("write_options", &self.write_options)
            .finish()
    }
}

/// A change about to be committed.
enum Change {
    Put {
        rt_key: String,
        object: Value,
        /// For a modification, the labels of the version it replaces.
        previous_labels: Option<Value>,
    },
    Delete {
        rt_key: String,
        object: Arc<Value>,
    },
}

/// A type whose objects are stored as another type's: `events.k8s.io/v1` Events
/// are core Events shown through the newer API (see [`crate::builtin::events`]).
#[derive(Debug, Clone, Copy)]
enum View {
    EventsV1,
}

impl View {
    /// The stored type and the view, when `rt` is a view.
    fn of(rt: &ResourceType) -> Option<(ResourceType, View)> {
        (crate::builtin::Builtin::of(rt) == Some(crate::builtin::Builtin::EventsV1))
            .then(|| (ResourceType::event(), View::EventsV1))
    }

    /// A stored object as this view shows it.
    fn show(self, stored: Value) -> Value {
        match self {
            View::EventsV1 => crate::builtin::events::to_events_v1(&stored),
        }
    }

    /// An object of this view as it is stored.
    fn store(self, shown: Value) -> Value {
        match self {
            View::EventsV1 => crate::builtin::events::to_core(&shown),
        }
    }
}

fn lock_poisoned() -> Error {
    Error::Internal("store lock poisoned by a panic".into())
}

impl Store {
    /// Open (or create) the store in the SQLite file at `path`, load every object and
    /// continue resourceVersions above the highest one ever handed out. Creates the
    /// `default` namespace if it is missing.
    pub async fn open(path: &Path) -> Result<Store> {
        let path = path.to_path_buf();
        let db = tokio::task::spawn_blocking(move || Database::open(&path))
            .await
            .map_err(|e| Error::Internal(format!("opening the database panicked: {e}")))??;
        Self::from_database(db).await
    }

    /// A store that lives only in memory (for tests).
    pub async fn open_in_memory() -> Result<Store> {
        Self::from_database(Database::open_in_memory()?).await
    }

    async fn from_database(db: Database) -> Result<Store> {
        let db = Arc::new(Mutex::new(db));
        let loader = db.clone();
        let (rows, resource_version) =
            tokio::task::spawn_blocking(move || loader.lock().map_err(|_| lock_poisoned())?.load())
                .await
                .map_err(|e| Error::Internal(format!("loading the database panicked: {e}")))??;
        let mut objects: HashMap<String, Objects> = HashMap::new();
        let mut unreadable = Vec::new();
        for row in rows {
            match serde_json::from_str::<Value>(&row.body) {
                Ok(value) if value.is_object() => {
                    objects
                        .entry(row.key)
                        .or_default()
                        .insert((row.namespace, row.name), Arc::new(value));
                }
                Ok(_) => unreadable.push((row, "not a JSON object".to_owned())),
                Err(e) => unreadable.push((row, format!("not JSON: {e}"))),
            }
        }
        // One bad row must not keep every other object from being served.
        if !unreadable.is_empty() {
            for (row, reason) in &unreadable {
                tracing::error!(
                    resource = %row.key, namespace = %row.namespace, name = %row.name, %reason,
                    "a stored object cannot be read; it is left out and kept in the table `unreadable` of the database"
                );
            }
            let mover = db.clone();
            tokio::task::spawn_blocking(move || {
                mover
                    .lock()
                    .map_err(|_| lock_poisoned())?
                    .quarantine(&unreadable)
            })
            .await
            .map_err(|e| {
                Error::Internal(format!("setting unreadable rows aside panicked: {e}"))
            })??;
        }
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        let store = Store {
            inner: Arc::new(Inner {
                state: RwLock::new(State {
                    objects,
                    resource_version,
                    history: VecDeque::new(),
                    history_floor: resource_version,
                }),
                write_lock: tokio::sync::Mutex::new(()),
                db,
                events,
            }),
            admission: Arc::new(NoAdmission),
            write_options: WriteOptions::default(),
        };
        let ns = ResourceType::namespace();
        if store.get(&ns, "", DEFAULT_NAMESPACE).is_err() {
            store
                .create(
                    &ns,
                    serde_json::json!({"metadata": {"name": DEFAULT_NAMESPACE}}),
                )
                .await?;
        }
        // Namespaces stored before service accounts were served get theirs now.
        let sa = ResourceType::service_account();
        for namespace in store.list(&ns, &ListOptions::default())?.items {
            let name = object::name(&namespace).to_string();
            if store.get(&sa, &name, DEFAULT_SERVICE_ACCOUNT).is_err()
                && !removal::is_terminating(&namespace)
            {
                let account = serde_json::json!({"metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": name}});
                match store.create(&sa, account).await {
                    Ok(_) => {}
                    Err(e) if e.is_already_exists() => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(store)
    }

    /// A clone of this store whose writes go through `admission`.
    pub fn with_admission(&self, admission: Arc<dyn Admission>) -> Store {
        Store {
            admission,
            ..self.clone()
        }
    }

    /// A clone of this store whose writes use `options`.
    pub fn with_write_options(&self, options: WriteOptions) -> Store {
        Store {
            write_options: options,
            ..self.clone()
        }
    }

    /// The write options this clone uses.
    pub fn write_options(&self) -> &WriteOptions {
        &self.write_options
    }

    /// The highest resourceVersion handed out so far.
    pub fn resource_version(&self) -> u64 {
        self.inner
            .state
            .read()
            .map(|s| s.resource_version)
            .unwrap_or(0)
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, State>> {
        self.inner.state.read().map_err(|_| lock_poisoned())
    }

    /// The object `namespace/name` (namespace ignored for cluster-scoped types).
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value> {
        if let Some((stored, view)) = View::of(rt) {
            return self.get(&stored, namespace, name).map(|o| view.show(o));
        }
        let ns = if rt.namespaced { namespace } else { "" };
        let state = self.read()?;
        state
            .objects
            .get(&rt.storage_key())
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .map(|o| (**o).clone())
            .ok_or_else(|| rt.not_found(name))
    }

    /// Objects matching `options`, with the resourceVersion to watch from. With a
    /// `limit`, at most that many, and a continue token for the rest: the later
    /// pages show the objects as they were when the first page was read (`410
    /// Expired` once that version has left the retained history).
    pub fn list(&self, rt: &ResourceType, options: &ListOptions) -> Result<ObjectList> {
        if let Some((stored, view)) = View::of(rt) {
            let mut listed = self.list(&stored, options)?;
            listed.items = listed.items.into_iter().map(|o| view.show(o)).collect();
            return Ok(listed);
        }
        let filter = Filter::parse(rt, options)?;
        let state = self.read()?;
        let key = rt.storage_key();
        let (resource_version, after) = match &options.continue_token {
            Some(token) => {
                let token = ContinueToken::decode(token)?;
                (token.resource_version, Some(token.after))
            }
            None => (state.resource_version, None),
        };
        let snapshot;
        let objects = if resource_version == state.resource_version {
            state.objects.get(&key)
        } else {
            snapshot = self.objects_at(&state, &key, resource_version)?;
            Some(&snapshot)
        };
        let mut matching = objects
            .into_iter()
            .flat_map(|m| match &after {
                Some(after) => m.range((
                    std::ops::Bound::Excluded(after.clone()),
                    std::ops::Bound::Unbounded,
                )),
                None => m.range::<(String, String), _>(..),
            })
            .filter(|(_, o)| filter.matches(o));
        let limit = options.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let mut items = Vec::new();
        let mut last = None;
        for (id, object) in matching.by_ref().take(limit) {
            items.push((**object).clone());
            last = Some(id.clone());
        }
        let remaining = matching.count() as u64;
        let continue_token = match last {
            Some(after) if remaining > 0 => Some(
                ContinueToken {
                    resource_version,
                    after,
                }
                .encode(),
            ),
            _ => None,
        };
        let selective = options
            .label_selector
            .as_deref()
            .is_some_and(|s| !s.is_empty())
            || options
                .field_selector
                .as_deref()
                .is_some_and(|s| !s.is_empty());
        Ok(ObjectList {
            items,
            resource_version,
            remaining_item_count: (continue_token.is_some() && !selective).then_some(remaining),
            continue_token,
        })
    }

    fn check_namespace(&self, rt: &ResourceType, namespace: &str) -> Result<()> {
        if !rt.namespaced {
            return Ok(());
        }
        let ns = ResourceType::namespace();
        let state = self.read()?;
        match state
            .objects
            .get(&ns.storage_key())
            .and_then(|m| m.get(&(String::new(), namespace.to_string())))
        {
            None => Err(ns.not_found(namespace)),
            Some(found) if removal::is_terminating(found) => Err(Error::Forbidden(format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ))),
            Some(_) => Ok(()),
        }
    }

    fn admit(
        &self,
        rt: &ResourceType,
        operation: Operation,
        old: Option<&Value>,
        object: &mut Value,
    ) -> Result<()> {
        crate::builtin::admit(rt, operation, old, object)?;
        let request = AdmissionRequest {
            resource: rt,
            operation,
            old,
            field_manager: self.write_options.field_manager.as_deref(),
        };
        self.admission
            .admit(&request, object)
            .map_err(|denial| match denial {
                Denial::Invalid(causes) => rt.invalid(object::name(object), causes),
                Denial::Webhook { webhook, message } => Error::BadRequest(format!(
                    "admission webhook \"{webhook}\" denied the request: {message}"
                )),
            })
    }

    /// Create `object` (its namespace defaults to `default`). Status is dropped for
    /// types with a status subresource; set it afterwards with
    /// [`update_status`](Store::update_status). Fails with `AlreadyExists`, or
    /// `NotFound` naming the namespace if it does not exist.
    pub async fn create(&self, rt: &ResourceType, object: Value) -> Result<Value> {
        if let Some((stored, view)) = View::of(rt) {
            return Box::pin(self.create(&stored, view.store(object)))
                .await
                .map(|o| view.show(o));
        }
        let _guard = self.inner.write_lock.lock().await;
        self.create_locked(rt, object, managed::Operation::Update, None)
            .await
    }

    /// `applied`: for an apply, the field set the manager applied.
    async fn create_locked(
        &self,
        rt: &ResourceType,
        mut object: Value,
        operation: managed::Operation,
        applied: Option<&FieldSet>,
    ) -> Result<Value> {
        object::normalize_for_create(rt, &mut object, DEFAULT_NAMESPACE)?;
        let name = object::name(&object).to_string();
        object::check_name(rt, &name)?;
        let namespace = object::namespace(&object).to_string();
        self.check_namespace(rt, &namespace)?;
        if self.get(rt, &namespace, &name).is_ok() {
            return Err(rt.already_exists(&name));
        }
        let time = object::now();
        let writer = self.writer(rt, operation, false, &time);
        let entries = managed::track(Vec::new(), &json!({}), &object, &writer, applied)
            .map_err(managed::Conflicts::into_error)?;
        self.admit(rt, Operation::Create, None, &mut object)?;
        // Admission may not move the object.
        if object::name(&object) != name || object::namespace(&object) != namespace {
            return Err(Error::Internal(
                "admission changed the object's name or namespace".into(),
            ));
        }
        object::stamp_new(&mut object, 0, &time)?;
        object::set_managed_fields(&mut object, managed::encode(entries))?;
        let mut changes = vec![Change::Put {
            rt_key: rt.storage_key(),
            object,
            previous_labels: None,
        }];
        // Every namespace has a `default` ServiceAccount from its first moment, as
        // Kubernetes' service account controller makes one.
        if crate::builtin::Builtin::of(rt) == Some(crate::builtin::Builtin::Namespace) {
            changes.push(Change::Put {
                rt_key: ResourceType::service_account().storage_key(),
                object: default_service_account(&name, &time)?,
                previous_labels: None,
            });
        }
        let committed = self.commit(changes).await?;
        committed
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal("create committed nothing".into()))
    }

    /// Replace an object (PUT). `metadata.resourceVersion` must equal the stored one
    /// (`Conflict` otherwise). Status is kept from the stored object for types with a
    /// status subresource; generation is bumped when anything outside metadata and
    /// status changed. A write that changes nothing returns the stored object
    /// unchanged (same resourceVersion).
    pub async fn update(&self, rt: &ResourceType, object: Value) -> Result<Value> {
        if let Some((stored, view)) = View::of(rt) {
            return Box::pin(self.update(&stored, view.store(object)))
                .await
                .map(|o| view.show(o));
        }
        let _guard = self.inner.write_lock.lock().await;
        self.update_locked(rt, object, false, managed::Operation::Update, None)
            .await
    }

    /// Replace an object's status (PUT `/status`); everything else is kept from the
    /// stored object. `metadata.resourceVersion`, when given, must match.
    pub async fn update_status(&self, rt: &ResourceType, object: Value) -> Result<Value> {
        if let Some((stored, view)) = View::of(rt) {
            return Box::pin(self.update_status(&stored, view.store(object)))
                .await
                .map(|o| view.show(o));
        }
        let _guard = self.inner.write_lock.lock().await;
        self.update_locked(rt, object, true, managed::Operation::Update, None)
            .await
    }

    /// Who writes, as field ownership records it; applies always have a manager.
    fn writer<'a>(
        &'a self,
        rt: &ResourceType,
        operation: managed::Operation,
        status: bool,
        time: &'a str,
    ) -> managed::Writer<'a> {
        let manager = match self.write_options.field_manager.as_deref() {
            Some(m) => Some(m),
            None if operation == managed::Operation::Apply => Some(DEFAULT_APPLY_MANAGER),
            None => None,
        };
        managed::Writer {
            manager,
            operation,
            scope: if status {
                managed::Scope::Status
            } else {
                managed::Scope::Main {
                    status_subresource: rt.status_subresource,
                }
            },
            api_version: rt.api_version(),
            time,
            force: self.write_options.force,
        }
    }

    async fn update_locked(
        &self,
        rt: &ResourceType,
        new: Value,
        status: bool,
        operation: managed::Operation,
        applied: Option<&FieldSet>,
    ) -> Result<Value> {
        if !new.is_object() {
            return Err(Error::BadRequest("the object must be a JSON object".into()));
        }
        let ns = if rt.namespaced {
            let ns = object::namespace(&new);
            if ns.is_empty() { DEFAULT_NAMESPACE } else { ns }
        } else {
            ""
        };
        let name = object::name(&new).to_string();
        let old = self.get(rt, ns, &name)?;
        let current_rv = object::resource_version(&old).unwrap_or(0);
        match object::meta_str(&new, "resourceVersion") {
            Some(given) if !given.is_empty() && given.parse::<u64>().ok() != Some(current_rv) => {
                return Err(rt.conflict(&name));
            }
            Some(given) if !given.is_empty() => {}
            _ if !status => {
                return Err(rt.invalid(
                    &name,
                    vec![crate::status::StatusCause::invalid(
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )],
                ));
            }
            _ => {}
        }
        if let Some(uid) = object::meta_str(&new, "uid")
            && !uid.is_empty()
            && Some(uid) != object::meta_str(&old, "uid")
        {
            return Err(rt.conflict(&name));
        }
        let mut result = if status {
            object::merge_status(&old, &new)
        } else {
            object::merge_update(rt, &old, &new)?
        };
        // managedFields a client sends replace the stored ones (kubectl does so when
        // it moves an object from client-side to server-side apply).
        let sent = managed::decode(&new);
        let entries = if !status && !sent.is_empty() {
            sent
        } else {
            managed::decode(&old)
        };
        let time = object::now();
        let writer = self.writer(rt, operation, status, &time);
        let entries = managed::track(entries, &old, &result, &writer, applied)
            .map_err(managed::Conflicts::into_error)?;
        let operation_kind = if status {
            Operation::UpdateStatus
        } else {
            Operation::Update
        };
        self.admit(rt, operation_kind, Some(&old), &mut result)?;
        if object::name(&result) != name {
            return Err(Error::Internal(
                "admission changed the object's name".into(),
            ));
        }
        if !status {
            object::bump_generation(&old, &mut result)?;
        }
        object::set_managed_fields(&mut result, managed::encode(entries))?;
        if object::same_content(&old, &result) {
            return Ok(old);
        }
        if removal::is_terminating(&old) {
            check_no_new_finalizers(rt, &old, &result)?;
        }
        // The update that empties the finalizers of an object being deleted
        // deletes it: watchers see the update, then the deletion.
        let goes = removal::is_terminating(&result) && !removal::has_finalizers(&result);
        let result = Arc::new(result);
        let mut changes = vec![Change::Put {
            rt_key: rt.storage_key(),
            object: (*result).clone(),
            previous_labels: Some(
                old.pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(Value::Null),
            ),
        }];
        if goes {
            let state = self.read()?;
            changes.extend(removal::plan(
                &state,
                vec![(rt.storage_key(), result)],
                &time,
            )?);
        }
        let committed = self.commit(changes).await?;
        committed
            .into_iter()
            .next()
            .ok_or_else(|| Error::Internal("update committed nothing".into()))
    }

    /// Patch the object `namespace/name`. An [`Patch::Apply`] creates the object when
    /// it does not exist; the others fail with `NotFound`. A patch that changes
    /// nothing returns the stored object unchanged.
    pub async fn patch(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        patch: &Patch,
    ) -> Result<Value> {
        self.patch_inner(rt, namespace, name, patch, false).await
    }

    /// Patch the status of the object `namespace/name` (PATCH `/status`).
    pub async fn patch_status(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        patch: &Patch,
    ) -> Result<Value> {
        self.patch_inner(rt, namespace, name, patch, true).await
    }

    async fn patch_inner(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        patch: &Patch,
        status: bool,
    ) -> Result<Value> {
        if let Some((stored, view)) = View::of(rt) {
            return self
                .patch_view(&stored, view, namespace, name, patch, status)
                .await;
        }
        let _guard = self.inner.write_lock.lock().await;
        let ns = if rt.namespaced { namespace } else { "" };
        let old = match self.get(rt, ns, name) {
            Ok(old) => old,
            Err(e) if e.is_not_found() => {
                if let (Patch::Apply(body), false) = (patch, status) {
                    let mut object = body.clone();
                    let meta = object::metadata_mut(&mut object)?;
                    meta.insert("name".into(), Value::String(name.into()));
                    if rt.namespaced {
                        meta.insert("namespace".into(), Value::String(ns.into()));
                    }
                    let applied = managed::applied_fields(
                        &object,
                        managed::Scope::Main {
                            status_subresource: rt.status_subresource,
                        },
                    );
                    return self
                        .create_locked(rt, object, managed::Operation::Apply, Some(&applied))
                        .await;
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let mut patched = old.clone();
        let mut applied = None;
        let operation = match patch {
            Patch::Merge(p) => {
                json_patch::merge(&mut patched, p);
                managed::Operation::Update
            }
            Patch::Apply(p) => {
                if let Some(given) = object::meta_str(p, "name")
                    && given != name
                {
                    return Err(Error::BadRequest(format!(
                        "the name of the object ({given}) does not match the name on the URL ({name})"
                    )));
                }
                let time = object::now();
                let writer = self.writer(rt, managed::Operation::Apply, status, &time);
                let set = managed::applied_fields(p, writer.scope);
                managed::prune(&mut patched, &managed::decode(&old), &writer, &set);
                json_patch::merge(&mut patched, p);
                applied = Some(set);
                managed::Operation::Apply
            }
            Patch::Json(p) => {
                json_patch::patch(&mut patched, p).map_err(|e| {
                    Error::BadRequest(format!("the JSON patch cannot be applied: {e}"))
                })?;
                managed::Operation::Update
            }
        };
        // A patch cannot move the object; a patched resourceVersion is a precondition.
        {
            let meta = object::metadata_mut(&mut patched)?;
            meta.insert("name".into(), Value::String(name.into()));
            if rt.namespaced {
                meta.insert("namespace".into(), Value::String(ns.into()));
            }
            let rv_set = meta
                .get("resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if !rv_set {
                meta.insert(
                    "resourceVersion".into(),
                    old.pointer("/metadata/resourceVersion")
                        .cloned()
                        .unwrap_or(Value::Null),
                );
            }
        }
        self.update_locked(rt, patched, status, operation, applied.as_ref())
            .await
    }

    /// A patch through a view: applied to the object as the view shows it, then
    /// stored converted back.
    async fn patch_view(
        &self,
        stored: &ResourceType,
        view: View,
        namespace: &str,
        name: &str,
        patch: &Patch,
        status: bool,
    ) -> Result<Value> {
        if let Patch::Apply(body) = patch {
            let patch = Patch::Apply(view.store(body.clone()));
            return Box::pin(self.patch_inner(stored, namespace, name, &patch, status))
                .await
                .map(|o| view.show(o));
        }
        let _guard = self.inner.write_lock.lock().await;
        let old = self.get(stored, namespace, name)?;
        let mut shown = view.show(old.clone());
        match patch {
            Patch::Merge(p) => json_patch::merge(&mut shown, p),
            Patch::Json(p) => json_patch::patch(&mut shown, p)
                .map_err(|e| Error::BadRequest(format!("the JSON patch cannot be applied: {e}")))?,
            Patch::Apply(_) => {}
        }
        let mut back = view.store(shown);
        {
            let meta = object::metadata_mut(&mut back)?;
            meta.insert("name".into(), Value::String(name.into()));
            meta.insert("namespace".into(), Value::String(namespace.into()));
            if meta.get("resourceVersion").is_none_or(Value::is_null) {
                meta.insert(
                    "resourceVersion".into(),
                    old.pointer("/metadata/resourceVersion")
                        .cloned()
                        .unwrap_or(Value::Null),
                );
            }
        }
        self.update_locked(stored, back, status, managed::Operation::Update, None)
            .await
            .map(|o| view.show(o))
    }

    /// Delete the object `namespace/name`. An object with `metadata.finalizers`
    /// only gets a `deletionTimestamp` and stays until an update empties its
    /// finalizers. An object that goes takes with it, transitively, every object
    /// that names it in ownerReferences (and, for a namespace, everything in it).
    /// Returns the object as deleted or as marked.
    pub async fn delete(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value> {
        if let Some((stored, view)) = View::of(rt) {
            return Box::pin(self.delete(&stored, namespace, name))
                .await
                .map(|o| view.show(o));
        }
        let _guard = self.inner.write_lock.lock().await;
        let ns = if rt.namespaced { namespace } else { "" };
        let target = Arc::new(self.get(rt, ns, name)?);
        if rt.storage_key() == ResourceType::namespace().storage_key() && name == DEFAULT_NAMESPACE
        {
            return Err(Error::Forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        let changes = {
            let state = self.read()?;
            removal::plan(
                &state,
                vec![(rt.storage_key(), target.clone())],
                &object::now(),
            )?
        };
        let uid = object::meta_str(&target, "uid").map(str::to_string);
        let committed = self.commit(changes).await?;
        // Already marked and still waiting for its finalizers: nothing changed.
        Ok(committed
            .into_iter()
            .find(|o| object::meta_str(o, "uid").map(str::to_string) == uid)
            .unwrap_or_else(|| (*target).clone()))
    }

    /// Watch objects of `rt`. See [`WatchOptions`] for where the stream starts. The
    /// stream ends after an `Error` event (a `410 Expired` when the watcher fell more
    /// than the buffer behind); it never ends on its own otherwise.
    pub fn watch(&self, rt: &ResourceType, options: &WatchOptions) -> Result<WatchStream> {
        if let Some((stored, view)) = View::of(rt) {
            use futures::StreamExt as _;
            let stream = watch::start(self, &stored, options)?;
            return Ok(Box::pin(
                stream.map(move |event| event.map_object(|o| view.show(o))),
            ));
        }
        watch::start(self, rt, options)
    }

    /// Assign resourceVersions to `changes`, persist them in one transaction, then
    /// apply them in memory and tell the watchers. Must be called with the write lock.
    async fn commit(&self, changes: Vec<Change>) -> Result<Vec<Value>> {
        let mut rv = self.resource_version();
        let mut prepared: Vec<Prepared> = Vec::new();
        for change in changes {
            rv += 1;
            match change {
                Change::Put {
                    rt_key,
                    mut object,
                    previous_labels,
                } => {
                    object::set_resource_version(&mut object, rv)?;
                    let kind = if previous_labels.is_some() {
                        EventKind::Modified
                    } else {
                        EventKind::Added
                    };
                    prepared.push((rt_key, kind, object, previous_labels, rv));
                }
                Change::Delete { rt_key, object } => {
                    let mut object = (*object).clone();
                    object::set_resource_version(&mut object, rv)?;
                    prepared.push((rt_key, EventKind::Deleted, object, None, rv));
                }
            }
        }
        if self.write_options.dry_run {
            return Ok(prepared.into_iter().map(|p| p.2).collect());
        }
        let bodies: Vec<Arc<str>> = prepared
            .iter()
            .map(|(_, _, object, _, _)| Arc::from(object.to_string()))
            .collect();
        let rows: Vec<Row> = prepared
            .iter()
            .zip(&bodies)
            .map(|((key, kind, object, _, rv), body)| {
                (
                    key.clone(),
                    object::namespace(object).to_string(),
                    object::name(object).to_string(),
                    *rv,
                    (*kind != EventKind::Deleted).then(|| body.clone()),
                )
            })
            .collect();
        let previous = self.previous_bodies(&prepared, &bodies)?;
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || {
            let changes: Vec<RowChange<'_>> = rows
                .iter()
                .map(|(key, namespace, name, rv, body)| match body {
                    Some(body) => RowChange::Put {
                        key,
                        namespace,
                        name,
                        resource_version: *rv,
                        body,
                    },
                    None => RowChange::Delete {
                        key,
                        namespace,
                        name,
                    },
                })
                .collect();
            db.lock().map_err(|_| lock_poisoned())?.write(&changes, rv)
        })
        .await
        .map_err(|e| Error::Internal(format!("writing the database panicked: {e}")))??;

        let mut state = self.inner.state.write().map_err(|_| lock_poisoned())?;
        let mut results = Vec::with_capacity(prepared.len());
        for (((key, kind, object, previous_labels, rv), body), previous) in
            prepared.into_iter().zip(bodies).zip(previous)
        {
            let object = Arc::new(object);
            let id = (
                object::namespace(&object).to_string(),
                object::name(&object).to_string(),
            );
            let objects = state.objects.entry(key.clone()).or_default();
            match kind {
                EventKind::Deleted => {
                    objects.remove(&id);
                }
                _ => {
                    objects.insert(id, object.clone());
                }
            }
            state.history.push_back(Retained {
                key: key.clone(),
                kind,
                body,
                previous,
                previous_labels: previous_labels.clone(),
                resource_version: rv,
            });
            if state.history.len() > HISTORY
                && let Some(dropped) = state.history.pop_front()
            {
                state.history_floor = dropped.resource_version;
            }
            // No receivers is fine: nobody is watching.
            let _ = self.inner.events.send(Arc::new(Event {
                key,
                kind,
                object: object.clone(),
                previous_labels,
                resource_version: rv,
            }));
            results.push((*object).clone());
        }
        state.resource_version = rv;
        Ok(results)
    }
}

impl Store {
    /// For each prepared change, the serialized version it replaces (`None` for a
    /// creation); a commit may change one object twice.
    fn previous_bodies(
        &self,
        prepared: &[Prepared],
        bodies: &[Arc<str>],
    ) -> Result<Vec<Option<Arc<str>>>> {
        let state = self.read()?;
        let mut latest: HashMap<(String, String, String), Arc<str>> = HashMap::new();
        Ok(prepared
            .iter()
            .zip(bodies)
            .map(|((key, _, object, _, _), body)| {
                let id = (
                    object::namespace(object).to_string(),
                    object::name(object).to_string(),
                );
                let full = (key.clone(), id.0.clone(), id.1.clone());
                let previous = latest.get(&full).cloned().or_else(|| {
                    state
                        .objects
                        .get(key)
                        .and_then(|m| m.get(&id))
                        .map(|o| Arc::from(o.to_string()))
                });
                latest.insert(full, body.clone());
                previous
            })
            .collect())
    }

    /// The objects of `key` as they were at `resource_version`, undoing the
    /// retained history; `410 Expired` when that history is gone.
    fn objects_at(&self, state: &State, key: &str, resource_version: u64) -> Result<Objects> {
        let mut objects = state.objects.get(key).cloned().unwrap_or_default();
        if resource_version >= state.resource_version {
            return Ok(objects);
        }
        if resource_version < state.history_floor {
            return Err(Error::ContinueExpired);
        }
        let parse = |body: &str| {
            serde_json::from_str::<Value>(body)
                .map(Arc::new)
                .map_err(|e| Error::Internal(format!("a retained version is not JSON: {e}")))
        };
        for event in state
            .history
            .iter()
            .rev()
            .take_while(|e| e.resource_version > resource_version)
            .filter(|e| e.key == key)
        {
            let after = parse(&event.body)?;
            let id = (
                object::namespace(&after).to_string(),
                object::name(&after).to_string(),
            );
            match &event.previous {
                Some(before) => {
                    objects.insert(id, parse(before)?);
                }
                None => {
                    objects.remove(&id);
                }
            }
        }
        Ok(objects)
    }
}

/// The name of the ServiceAccount every namespace has.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// A namespace's `default` ServiceAccount, ready to commit.
fn default_service_account(namespace: &str, time: &str) -> Result<Value> {
    let rt = ResourceType::service_account();
    let mut account =
        json!({"metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace}});
    object::normalize_for_create(&rt, &mut account, namespace)?;
    object::stamp_new(&mut account, 0, time)?;
    Ok(account)
}

/// Kubernetes refuses new finalizers on an object that is being deleted.
fn check_no_new_finalizers(rt: &ResourceType, old: &Value, new: &Value) -> Result<()> {
    let list = |o: &Value| -> Vec<Value> {
        o.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let before = list(old);
    if list(new).iter().any(|f| !before.contains(f)) {
        return Err(rt.invalid(
            object::name(new),
            vec![crate::status::StatusCause {
                reason: "FieldValueForbidden".into(),
                message: "Forbidden: no new finalizers can be added if the object is being deleted"
                    .into(),
                field: "metadata.finalizers".into(),
            }],
        ));
    }
    Ok(())
}

/// Check that an apply patch names this type (apiVersion and kind, when given).
pub(crate) fn check_apply_type(rt: &ResourceType, body: &Value) -> Result<()> {
    object::set_type_meta(rt, &mut body.clone())
}
