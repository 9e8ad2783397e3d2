//! The running side of revisions: one [`Pool`] per revision, its code
//! resolved (built, pulled or unpacked) once, then scaled by its own loop.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use okonomi_knative::Revision;
use okonomi_knative::keys;
use tokio::sync::{Notify, OnceCell, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::autoscaler::AutoscalerConfig;
use crate::dataplane::metrics::{Metrics, RevisionLabels};
use crate::dataplane::upstream::Protocol;
use crate::instance::supervisor::{InstanceObserver, SupervisorTiming};
use crate::instance::{
    InstanceSpec, Launch, RUNTIME_ANNOTATION, Readiness, RuntimeKind, binaries, build, container,
    image, leftovers, logs,
};
use crate::pool::{self, Pool, RevisionKey};

/// Settings every revision's workload shares.
#[derive(Debug, Clone)]
pub struct WorkloadSettings {
    /// The engine's state dir (image cache and logs live under it).
    pub state_dir: PathBuf,
    /// Autoscaler defaults.
    pub autoscaler: AutoscalerConfig,
    /// Runtime for images (per-revision `okonomi.dev/runtime` overrides).
    pub runtime: RuntimeKind,
    /// Where `okonomi://PATH` references are resolved.
    pub source_root: PathBuf,
    /// Cargo profile for `okonomi://` builds.
    pub build_profile: String,
    /// Supervision timing.
    pub timing: SupervisorTiming,
    /// Requests that may wait per revision in the activator.
    pub queue_depth: usize,
}

/// What an image reference resolves to, before a revision's command/args.
#[derive(Debug, Clone)]
enum Artifact {
    /// An `okonomi://` crate, built and its binary kept.
    Built(build::Built),
    /// An image unpacked for the process runtime.
    Unpacked(image::UnpackedImage),
    /// An image pulled into podman's store.
    Pulled(String),
}

type Fetched = Result<Artifact, (&'static str, String)>;

/// A failed resolution: a condition reason and a message.
struct Failure(&'static str, String);

impl From<crate::error::Error> for Failure {
    fn from(error: crate::error::Error) -> Self {
        Self("BuildFailed", error.to_string())
    }
}

/// A resolution started at some instant, finished or in progress.
type CacheEntry = (Instant, Arc<OnceCell<Fetched>>);

/// Resolutions shared by revisions with the same image, so a thousand
/// services of one image build or pull it once.
#[derive(Debug)]
struct ArtifactCache {
    entries: Mutex<HashMap<(String, RuntimeKind), CacheEntry>>,
    /// Bounds concurrent builds and pulls.
    permits: Semaphore,
}

/// How long a local build is reused: `okonomi://` sources change between
/// deploys, image digests never do.
const BUILD_REUSE: Duration = Duration::from_secs(30);

impl ArtifactCache {
    fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            permits: Semaphore::new(4),
        }
    }

    /// What `revision` runs. An `okonomi://` revision built before runs
    /// its kept binary, with no cargo run (a revision is immutable, the
    /// checkout is not); a new one shares the build of its image.
    async fn fetch(
        &self,
        image_ref: &str,
        runtime: RuntimeKind,
        revision: &binaries::RevisionId,
        settings: &WorkloadSettings,
    ) -> Fetched {
        let Some(path) = image_ref.strip_prefix(build::SCHEME) else {
            return self.shared(image_ref, runtime, settings).await;
        };
        let store = binaries::BinaryStore::new(&settings.state_dir);
        let shared = async {
            match self.shared(image_ref, runtime, settings).await {
                Ok(Artifact::Built(built)) => Ok(built),
                Ok(_) => Err(Failure(
                    "BuildFailed",
                    format!("{image_ref} did not resolve to a build"),
                )),
                Err((reason, message)) => Err(Failure(reason, message)),
            }
        };
        store
            .resolve(revision, path, &settings.source_root, shared)
            .await
            .map(Artifact::Built)
            .map_err(|Failure(reason, message)| (reason, message))
    }

    /// Resolves an image reference once for every revision of it.
    async fn shared(
        &self,
        image_ref: &str,
        runtime: RuntimeKind,
        settings: &WorkloadSettings,
    ) -> Fetched {
        let local = image_ref.starts_with(build::SCHEME);
        let key = (
            image_ref.to_string(),
            if local { RuntimeKind::Process } else { runtime },
        );
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = |created: &Instant, cell: &Arc<OnceCell<Fetched>>| {
                let failed = cell.get().is_some_and(|r| r.is_err());
                !failed && (!local || created.elapsed() < BUILD_REUSE || !cell.initialized())
            };
            match entries.get(&key) {
                Some((created, cell)) if fresh(created, cell) => cell.clone(),
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    entries.insert(key, (Instant::now(), cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_init(|| async {
            let _permit = self.permits.acquire().await;
            fetch(image_ref, runtime, settings).await
        })
        .await
        .clone()
    }
}

struct Entry {
    pool: Arc<Pool>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Every revision's pool.
pub struct Workloads {
    settings: WorkloadSettings,
    metrics: Arc<Metrics>,
    status_changed: Arc<Notify>,
    entries: Mutex<HashMap<RevisionKey, Entry>>,
    artifacts: Arc<ArtifactCache>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Workloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workloads")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Workloads {
    /// No workload yet. `status_changed` is notified when any pool's status
    /// changes.
    pub fn new(
        settings: WorkloadSettings,
        metrics: Arc<Metrics>,
        status_changed: Arc<Notify>,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            settings,
            metrics,
            status_changed,
            entries: Mutex::new(HashMap::new()),
            artifacts: Arc::new(ArtifactCache::new()),
            shutdown,
        }
    }

    /// The pool of a revision, if it runs.
    pub fn get(&self, key: &RevisionKey) -> Option<Arc<Pool>> {
        self.lock().get(key).map(|e| e.pool.clone())
    }

    /// Every pool.
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        self.lock().values().map(|e| e.pool.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RevisionKey, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pool of `revision`, started (code resolved, scaler running) the
    /// first time.
    pub fn ensure(&self, revision: &Revision) -> Arc<Pool> {
        let key = RevisionKey {
            namespace: revision.namespace().to_string(),
            name: revision.name().to_string(),
        };
        let mut entries = self.lock();
        if let Some(entry) = entries.get(&key) {
            return entry.pool.clone();
        }
        let annotations: BTreeMap<String, String> =
            revision.metadata.annotations.clone().unwrap_or_default();
        // Scaling settings, and the request timeouts the data plane reads.
        let spec = self.settings.autoscaler.spec_for_revision(revision);
        let restored = revision
            .status
            .as_ref()
            .and_then(|s| s.desired_replicas)
            .and_then(|d| u32::try_from(d).ok());
        // Knative's rule: a container port named h2c is spoken to in HTTP/2.
        let protocol = Protocol::for_port_name(
            revision
                .spec
                .serving_container()
                .and_then(|c| c.ports.as_ref())
                .and_then(|ports| ports.first())
                .and_then(|port| port.name.as_deref()),
        );
        let pool = Pool::new(
            key.clone(),
            spec,
            protocol,
            self.settings.queue_depth,
            self.metrics.clone(),
            self.status_changed.clone(),
            restored,
        );
        let stop = self.shutdown.child_token();
        let instance_spec = instance_spec(revision, &self.settings);
        let runtime = annotations
            .get(RUNTIME_ANNOTATION)
            .and_then(|r| RuntimeKind::parse(r))
            .unwrap_or(self.settings.runtime);
        let container = revision.spec.serving_container().cloned();
        let settings = self.settings.clone();
        let task_pool = pool.clone();
        let task_stop = stop.clone();
        let artifacts = self.artifacts.clone();
        let config_error = crate::controller::revision::config_error(revision);
        let revision_id = binaries::RevisionId {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            uid: revision.metadata.uid.clone().unwrap_or_default(),
        };
        let task = tokio::spawn(async move {
            let Some(container) = container else {
                task_pool.failed("", "NoContainer", "the revision has no container".into());
                return;
            };
            // Never start an instance without a variable its spec requires,
            // whoever asked for the pool.
            if let Some(message) = config_error {
                task_pool.failed(
                    "",
                    crate::controller::revision::CONTAINER_CONFIG_ERROR,
                    message,
                );
                return;
            }
            let image_ref = container.image.clone().unwrap_or_default();
            let fetched = tokio::select! {
                _ = task_stop.cancelled() => return,
                fetched = artifacts.fetch(&image_ref, runtime, &revision_id, &settings) => fetched,
            };
            let resolved = fetched.and_then(|artifact| launch_for(artifact, &container));
            match resolved {
                Ok(launch) => {
                    pool::run(
                        task_pool,
                        Arc::new(launch),
                        Arc::new(instance_spec),
                        settings.timing.clone(),
                        task_stop,
                    )
                    .await
                }
                Err((reason, error)) => {
                    tracing::warn!(revision = %task_pool.key, %error, "cannot run revision");
                    task_pool.failed("", reason, error);
                }
            }
        });
        entries.insert(
            key,
            Entry {
                pool: pool.clone(),
                stop,
                task,
            },
        );
        pool
    }

    /// Stops a deleted revision's instances.
    pub fn remove(&self, key: &RevisionKey) {
        let entry = self.lock().remove(key);
        if let Some(entry) = entry {
            entry.stop.cancel();
            self.metrics.forget(&RevisionLabels {
                namespace: key.namespace.clone(),
                revision: key.name.clone(),
            });
            tokio::spawn(async move {
                let _ = entry.task.await;
            });
        }
    }

    /// Stops every instance and waits until they are gone.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let entries: Vec<Entry> = self.lock().drain().map(|(_, e)| e).collect();
        for entry in entries {
            entry.stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(30), entry.task).await;
        }
    }
}

fn instance_spec(revision: &Revision, settings: &WorkloadSettings) -> InstanceSpec {
    let labels = revision.metadata.labels.clone().unwrap_or_default();
    let configuration = labels
        .get(keys::CONFIGURATION_LABEL)
        .cloned()
        .unwrap_or_default();
    let service = labels
        .get(keys::SERVICE_LABEL)
        .cloned()
        .unwrap_or_else(|| configuration.clone());
    let container = revision.spec.serving_container();
    let env = container
        .and_then(|c| c.env.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| e.value.map(|v| (e.name, v)))
        .collect();
    let readiness = container
        .and_then(|c| c.readiness_probe.as_ref())
        .and_then(|p| p.http_get.as_ref())
        .map(|h| Readiness::HttpGet {
            path: h.path.clone().unwrap_or_else(|| "/".into()),
        })
        .unwrap_or(Readiness::Tcp);
    let container_port = container
        .and_then(|c| c.ports.as_ref())
        .and_then(|p| p.first())
        .and_then(|p| u16::try_from(p.container_port).ok());
    let group = if service.is_empty() {
        revision.name().to_string()
    } else {
        service.clone()
    };
    InstanceSpec {
        namespace: revision.namespace().to_string(),
        log_dir: logs::revision_dir(
            &settings.state_dir,
            revision.namespace(),
            &group,
            revision.name(),
        ),
        service,
        configuration,
        revision: revision.name().to_string(),
        env,
        readiness,
        container_port,
        records_dir: leftovers::records_dir(&settings.state_dir),
    }
}

/// Builds, unpacks or pulls an image reference; errors carry a condition
/// reason.
async fn fetch(image_ref: &str, runtime: RuntimeKind, settings: &WorkloadSettings) -> Fetched {
    if let Some(path) = image_ref.strip_prefix(build::SCHEME) {
        let store = binaries::BinaryStore::new(&settings.state_dir);
        return build::build_and_keep(path, &settings.source_root, &settings.build_profile, &store)
            .await
            .map(Artifact::Built)
            .map_err(|e| ("BuildFailed", e.to_string()));
    }
    if image_ref.is_empty() {
        return Err(("NoImage", "the container has no image".into()));
    }
    match runtime {
        RuntimeKind::Process => {
            let cache = settings.state_dir.join("images");
            image::pull_and_unpack(image_ref, &cache)
                .await
                .map(Artifact::Unpacked)
                .map_err(|e| ("ImagePullFailed", e.to_string()))
        }
        RuntimeKind::Container => container::pull(image_ref)
            .await
            .map(|()| Artifact::Pulled(image_ref.to_string()))
            .map_err(|e| ("ImagePullFailed", e.to_string())),
    }
}

/// How one revision runs an artifact, with its container's command and args.
fn launch_for(
    artifact: Artifact,
    container: &k8s_openapi::api::core::v1::Container,
) -> Result<Launch, (&'static str, String)> {
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    match artifact {
        Artifact::Built(built) => Ok(built_launch(built.launch, command, args)),
        Artifact::Unpacked(unpacked) => image::launch(&unpacked, &command, &args)
            .map_err(|e| ("ImageNotRunnable", e.to_string())),
        Artifact::Pulled(image) => Ok(Launch::Container {
            image,
            command,
            args,
        }),
    }
}

/// An `okonomi://` build run with the container's command and args: the
/// built binary is the image's entrypoint, so a command replaces it (found
/// on PATH unless it is a path, relative to the crate) and args replace its
/// (empty) arguments.
fn built_launch(launch: Launch, command: Vec<String>, args: Vec<String>) -> Launch {
    match launch {
        Launch::Process {
            program,
            cwd,
            env,
            args: _,
        } => {
            let mut argv = command.into_iter();
            match argv.next() {
                Some(first) => {
                    let program = if first.contains('/') {
                        cwd.join(first)
                    } else {
                        PathBuf::from(first)
                    };
                    Launch::Process {
                        program,
                        args: argv.chain(args).collect(),
                        cwd,
                        env,
                    }
                }
                None => Launch::Process {
                    program,
                    args,
                    cwd,
                    env,
                },
            }
        }
        other => other,
    }
}
