//! The Deployment controller part: makes and removes a revision's Pods to
//! match the replicas its scaler asks for, each run by the
//! [`kubelet`](crate::kubelet), and keeps the Deployment's status (ready
//! Pods, the last failure) from what the kubelet reports. Ready Pods become
//! the balancer's endpoints. Every change shows as the revision's
//! Deployment, ReplicaSet, PodAutoscaler and Pod objects
//! ([`resources`]), handed to the [`ObjectWriter`] so
//! that no request waits on the store. A Pod a user deletes is stopped and
//! replaced; a Deployment scaled by hand is put back
//! ([`Deployment::republish`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use okonomi_knative::{Revision, keys};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use okonomi_apiserver::ResourceType;

use super::events::{EventType, InvolvedObject, Recorder};
use super::resources::{
    self, ContainerState, Counts, PodState, RevisionMeta, Terminated, make_deployment, make_pod,
    make_pod_autoscaler, make_replica_set,
};
use super::writer::ObjectWriter;
use crate::dataplane::metrics::Metrics;
use crate::dataplane::{Endpoint, RevisionKey, Throttler};
use crate::kubelet::logs::{self, LogRing};
use crate::kubelet::{
    Failure, InstanceObserver, InstanceSpec, KubeletSettings, Launch, Readiness, leftovers,
    objects, pod_worker, volumes,
};

/// How long a stopping Pod may take to finish the requests already on it
/// before it gets SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

/// A revision's Deployment as the revision controller reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentStatus {
    /// Pods ready now.
    pub ready: u32,
    /// Pods wanted (`spec.replicas`).
    pub desired: u32,
    /// Whether some Pod was ever ready.
    pub ever_ready: bool,
    /// Whether the revision starts at zero Pods (initial-scale 0), so it
    /// counts as ready before any Pod ran.
    pub starts_at_zero: bool,
    /// The last failure (reason, message with log tail), cleared when a Pod
    /// becomes ready.
    pub failure: Option<(String, String)>,
    /// `REPO@sha256:…` the serving container's image resolved to, once it
    /// has (Knative's `status.containerStatuses[].imageDigest`).
    pub image_digest: Option<String>,
}

/// One revision's Deployment: its Pods' shared state.
#[derive(Debug)]
pub struct Deployment {
    /// Which revision.
    pub key: RevisionKey,
    meta: RevisionMeta,
    throttler: Arc<Throttler>,
    status: Mutex<DeploymentStatus>,
    status_changed: Arc<Notify>,
    ring: LogRing,
    metrics: Arc<Metrics>,
    writer: ObjectWriter,
    recorder: Recorder,
    pods: Mutex<BTreeMap<String, PodState>>,
    /// Where its Pods' logs are.
    log_dir: PathBuf,
    /// The running image's `imageID`, once it resolved.
    image_id: Mutex<String>,
    /// Pods a user deleted, for the run loop to stop and replace.
    evicted: Mutex<HashSet<String>>,
    evict: Notify,
}

impl Deployment {
    /// A Deployment of no Pod yet whose ready Pods serve through
    /// `throttler`. `desired` is the scale it starts at (the one restored
    /// after a restart); `status_changed` is notified whenever
    /// [`status`](Self::status) changes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        meta: RevisionMeta,
        throttler: Arc<Throttler>,
        desired: u32,
        starts_at_zero: bool,
        metrics: Arc<Metrics>,
        status_changed: Arc<Notify>,
        writer: ObjectWriter,
        recorder: Recorder,
        log_dir: PathBuf,
    ) -> Arc<Self> {
        let deployment = Arc::new(Self {
            key: throttler.key.clone(),
            meta,
            throttler,
            status: Mutex::new(DeploymentStatus {
                desired,
                starts_at_zero,
                ..DeploymentStatus::default()
            }),
            status_changed,
            ring: LogRing::default(),
            metrics,
            writer,
            recorder,
            log_dir,
            pods: Mutex::new(BTreeMap::new()),
            image_id: Mutex::new(String::new()),
            evicted: Mutex::new(HashSet::new()),
            evict: Notify::new(),
        });
        deployment.republish();
        deployment
    }

    /// The revision, as Events name it.
    pub fn revision_ref(&self) -> InvolvedObject {
        InvolvedObject {
            api_version: okonomi_knative::keys::API_VERSION.into(),
            kind: "Revision".into(),
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
            uid: self.meta.uid.clone(),
        }
    }

    fn owned_ref(&self, api_version: &str, kind: &str, name: &str) -> InvolvedObject {
        InvolvedObject {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: self.meta.namespace.clone(),
            name: name.to_string(),
            // The writer fills in the uid the store chose.
            uid: String::new(),
        }
    }

    /// Records an Event about the revision.
    pub fn revision_event(&self, type_: EventType, reason: &str, message: &str, component: &str) {
        self.recorder
            .record(&self.revision_ref(), type_, reason, message, component);
    }

    fn pod_event(&self, pod: &str, type_: EventType, reason: &str, message: &str) {
        let component = if reason == "Scheduled" {
            "default-scheduler"
        } else {
            "kubelet"
        };
        self.recorder.record(
            &self.owned_ref("v1", "Pod", pod),
            type_,
            reason,
            message,
            component,
        );
    }

    /// Events for the scale moving from `from` to `to` Pods.
    fn scaled(&self, from: u32, to: u32) {
        let verb = if to > from { "up" } else { "down" };
        self.recorder.record(
            &self.owned_ref("apps/v1", "Deployment", &self.meta.deployment_name()),
            EventType::Normal,
            "ScalingReplicaSet",
            &format!(
                "Scaled {verb} replica set {} from {from} to {to}",
                self.meta.replica_set_name()
            ),
            "deployment-controller",
        );
        let spec = self.throttler.spec();
        if from == 0 {
            let why = if self.throttler.requests_now() > 0 {
                "a request arrived with no Pod to take it"
            } else {
                "the revision's initial or minimum scale"
            };
            self.revision_event(
                EventType::Normal,
                "ScaledFromZero",
                &format!("Scaled from 0 to {to}: {why}"),
                "autoscaler",
            );
        } else if to == 0 {
            self.revision_event(
                EventType::Normal,
                "ScaledToZero",
                &format!(
                    "Scaled from {from} to 0: no requests for the stable window ({:?}) and the scale-to-zero grace period ({:?})",
                    spec.stable_window, spec.scale_to_zero_grace
                ),
                "autoscaler",
            );
        }
    }

    /// The objects the revision's Pods are made from.
    pub fn meta(&self) -> &RevisionMeta {
        &self.meta
    }

    /// Hands the Deployment, ReplicaSet and PodAutoscaler as they are now
    /// to the writer (also to put back a Deployment someone changed).
    pub fn republish(&self) {
        let status = self.status();
        let pods = self.lock_pods().len() as u32;
        let counts = Counts {
            desired: status.desired,
            pods,
            ready: status.ready,
            ever_ready: status.ever_ready || status.starts_at_zero,
            failure: status.failure.filter(|_| status.ready == 0),
        };
        let now = resources::time(jiff::Timestamp::now());
        self.writer.apply(
            &ResourceType::deployment(),
            make_deployment(&self.meta, &counts, &now),
        );
        self.writer.apply(
            &ResourceType::replica_set(),
            make_replica_set(&self.meta, &counts),
        );
        self.writer.apply(
            &ResourceType::pod_autoscaler(),
            make_pod_autoscaler(&self.meta, &counts, &now),
        );
    }

    /// Whether the Deployment object `object` says what the autoscaler
    /// wants (else [`republish`](Self::republish) puts it back).
    pub fn owns_replicas(&self, object: &serde_json::Value) -> bool {
        object["spec"]["replicas"].as_u64() == Some(u64::from(self.status().desired))
    }

    /// Whether the Pod `name` is one of this Deployment's and not gone yet.
    pub fn has_pod(&self, name: &str) -> bool {
        self.lock_pods().contains_key(name)
    }

    /// Where the Pod `name` answers, if it is ready.
    pub fn pod_addr(&self, name: &str) -> Option<SocketAddr> {
        self.throttler
            .endpoints()
            .iter()
            .find(|e| e.id == name)
            .map(|e| e.addr)
    }

    /// The directory of the revision's Pod logs.
    pub fn log_dir(&self) -> &std::path::Path {
        &self.log_dir
    }

    /// A user deleted the Pod `name`: it is stopped and replaced.
    pub fn evicted(&self, name: &str) {
        let ours = self
            .lock_pods()
            .get(name)
            .is_some_and(|pod| !pod.terminating);
        if ours {
            self.evicted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string());
            self.evict.notify_one();
        }
    }

    fn lock_pods(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PodState>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the Pod `name` and hands it to the writer.
    fn update_pod(&self, name: &str, change: impl FnOnce(&mut PodState)) {
        let mut pods = self.lock_pods();
        let Some(pod) = pods.get_mut(name) else {
            return;
        };
        let before = pod.clone();
        change(pod);
        if *pod == before {
            return;
        }
        let object = make_pod(&self.meta, pod);
        if pod.terminating {
            self.writer.terminate(&ResourceType::pod(), object);
        } else {
            self.writer.apply(&ResourceType::pod(), object);
        }
    }

    fn pod_created(&self, name: &str) {
        let now = resources::time(jiff::Timestamp::now());
        let image_id = self
            .image_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let pod = PodState::new(name.to_string(), image_id, &now);
        self.writer
            .apply(&ResourceType::pod(), make_pod(&self.meta, &pod));
        self.lock_pods().insert(name.to_string(), pod);
        self.republish();
        self.pod_event(
            name,
            EventType::Normal,
            "Scheduled",
            &format!(
                "Successfully assigned {}/{name} to {}",
                self.meta.namespace,
                resources::NODE_NAME
            ),
        );
        self.pod_event(
            name,
            EventType::Normal,
            "Pulled",
            &format!(
                "Container image \"{}\" already present on machine",
                self.meta.container["image"].as_str().unwrap_or_default()
            ),
        );
    }

    fn pod_gone(&self, name: &str) {
        self.lock_pods().remove(name);
        self.writer
            .remove(&ResourceType::pod(), &self.meta.namespace, name);
        self.republish();
    }

    /// The throttler its ready Pods serve through.
    pub fn throttler(&self) -> &Arc<Throttler> {
        &self.throttler
    }

    /// The current status.
    pub fn status(&self) -> DeploymentStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The revision's recent log lines.
    pub fn log_tail(&self, lines: usize) -> Vec<String> {
        self.ring.tail(lines)
    }

    fn update_status(&self, change: impl FnOnce(&mut DeploymentStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let before = status.clone();
        change(&mut status);
        if *status != before {
            self.metrics
                .set_instances(self.throttler.labels(), status.desired, status.ready);
            drop(status);
            self.status_changed.notify_one();
            self.republish();
        }
    }

    /// Records a failure that keeps every Pod from running (no container,
    /// an image that does not resolve).
    pub fn failed(&self, reason: &str, message: String) {
        self.throttler.failed(reason, &message);
        let reason = reason.to_string();
        self.update_status(|s| s.failure = Some((reason, message)));
    }
}

impl InstanceObserver for Deployment {
    fn ready(&self, id: &str, addr: SocketAddr, pid: Option<u32>) {
        let ready = self
            .throttler
            .endpoint_ready(Endpoint::new(id.to_string(), addr, pid));
        self.update_status(|s| {
            s.failure = None;
            s.ever_ready = true;
            s.ready = ready;
        });
        let now = resources::time(jiff::Timestamp::now());
        self.update_pod(id, |pod| {
            pod.ready = true;
            pod.ready_changed = now;
        });
    }

    async fn unready(&self, id: &str) {
        let now = resources::time(jiff::Timestamp::now());
        self.update_pod(id, |pod| {
            if pod.ready {
                pod.ready = false;
                pod.ready_changed = now;
            }
        });
        // Drain: requests already on the Pod finish before SIGTERM.
        let left = self.throttler.endpoint_gone(id, DRAIN).await;
        self.update_status(|s| s.ready = left);
    }

    fn failed(&self, id: &str, failure: Failure) {
        let now = resources::time(jiff::Timestamp::now());
        self.update_pod(id, |pod| {
            let started_at = match &pod.state {
                ContainerState::Running { started_at } => started_at.clone(),
                _ => now.clone(),
            };
            if let Some(exit_code) = failure.exit_code {
                pod.last_state = Some(Terminated {
                    exit_code,
                    reason: if exit_code == 0 { "Completed" } else { "Error" }.into(),
                    message: String::new(),
                    started_at,
                    finished_at: now.clone(),
                });
                pod.restart_count += 1;
                pod.state = ContainerState::Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: format!(
                        "back-off {:?} restarting failed container={} pod={}",
                        failure.retry_in,
                        resources::USER_CONTAINER,
                        pod.name
                    ),
                };
            } else if failure.reason == objects::FAILED_MOUNT {
                // The kubelet keeps a Pod whose volumes cannot be set up
                // in ContainerCreating, and says why in FailedMount events.
                pod.state = ContainerState::Waiting {
                    reason: "ContainerCreating".into(),
                    message: String::new(),
                };
            } else {
                let reason = if failure.reason == objects::CREATE_CONTAINER_CONFIG_ERROR {
                    objects::CREATE_CONTAINER_CONFIG_ERROR
                } else {
                    "CreateContainerError"
                };
                pod.state = ContainerState::Waiting {
                    reason: reason.into(),
                    message: failure.message.clone(),
                };
            }
            if pod.ready {
                pod.ready = false;
                pod.ready_changed = now;
            }
        });
        if failure.reason == "ProbeTimeout" {
            let first = failure.message.lines().next().unwrap_or_default();
            self.pod_event(
                id,
                EventType::Warning,
                "Unhealthy",
                &format!("Readiness probe failed: {first}"),
            );
        }
        if failure.exit_code.is_some() {
            self.pod_event(
                id,
                EventType::Warning,
                "BackOff",
                &format!(
                    "Back-off restarting failed container {} in pod {id}",
                    resources::USER_CONTAINER
                ),
            );
        } else if failure.reason == objects::FAILED_MOUNT {
            self.pod_event(
                id,
                EventType::Warning,
                objects::FAILED_MOUNT,
                &failure.message,
            );
        } else {
            let first = failure.message.lines().next().unwrap_or_default();
            self.pod_event(id, EventType::Warning, "Failed", &format!("Error: {first}"));
        }
        Deployment::failed(self, &failure.reason, failure.message);
    }

    fn started(&self, id: &str) {
        self.throttler.instance_started();
        let container = resources::USER_CONTAINER;
        self.pod_event(
            id,
            EventType::Normal,
            "Created",
            &format!("Created container {container}"),
        );
        self.pod_event(
            id,
            EventType::Normal,
            "Started",
            &format!("Started container {container}"),
        );
        let now = resources::time(jiff::Timestamp::now());
        self.update_pod(id, |pod| {
            pod.start_time.get_or_insert_with(|| now.clone());
            pod.state = ContainerState::Running { started_at: now };
        });
    }
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Runs `deployment`'s Pods from `launch` until `shutdown`, as many as
/// `replicas` says whenever it changes; on shutdown stops every Pod and
/// waits for them.
pub async fn run(
    deployment: Arc<Deployment>,
    image_id: String,
    launch: Arc<Launch>,
    spec: Arc<InstanceSpec>,
    settings: KubeletSettings,
    mut replicas: watch::Receiver<u32>,
    shutdown: CancellationToken,
) {
    if image_id.contains("@sha256:") {
        let digest = image_id.clone();
        deployment.update_status(|s| s.image_digest = Some(digest));
    }
    *deployment
        .image_id
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = image_id;
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut scale = deployment.status().desired;
    loop {
        let evicted: Vec<String> = deployment
            .evicted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for id in evicted {
            if let Some(r) = running.remove(&id) {
                stop_pod(&deployment, &id, r);
            }
        }
        let desired = *replicas.borrow_and_update();
        deployment.update_status(|s| s.desired = desired);
        if desired != scale {
            deployment.scaled(scale, desired);
            scale = desired;
        }
        // Reap Pods whose worker ended on its own.
        running.retain(|_, r| !r.task.is_finished());
        order.retain(|id| running.contains_key(id));
        let mut refused = false;
        while (running.len() as u32) < desired {
            let id = deployment.meta.new_pod_name();
            if !deployment.admits(&settings.config, &id) {
                refused = true;
                break;
            }
            if running.contains_key(&id) {
                continue;
            }
            deployment.pod_created(&id);
            let stop = shutdown.child_token();
            let worker = pod_worker::supervise(
                id.clone(),
                launch.clone(),
                spec.clone(),
                deployment.ring.clone(),
                deployment.clone(),
                settings.timing.clone(),
                stop.clone(),
            );
            let task = {
                let deployment = deployment.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    worker.await;
                    deployment.pod_gone(&id);
                })
            };
            running.insert(id.clone(), Running { stop, task });
            order.push(id);
        }
        while (running.len() as u32) > desired {
            // Stop the newest first: it is the least likely to be warm.
            let Some(id) = order.pop() else { break };
            if let Some(r) = running.remove(&id) {
                stop_pod(&deployment, &id, r);
            }
        }
        // A refused Pod is tried again when its ServiceAccount may exist.
        let mut config_changes = settings.config.changes.clone();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = replicas.changed() => if changed.is_err() { break },
            _ = deployment.evict.notified() => {}
            Ok(()) = config_changes.changed(), if refused => {}
        }
    }
    for (id, r) in running.drain() {
        deployment.update_pod(&id, |pod| pod.terminating = true);
        r.stop.cancel();
        let _ = r.task.await;
    }
    deployment.throttler.clear();
    deployment.update_status(|s| s.ready = 0);
}

impl Deployment {
    /// Whether the Pod `pod` may be created, as Kubernetes' ServiceAccount
    /// admission decides: its account must exist. A refusal is the
    /// ReplicaSet's `FailedCreate` (an Event, and the revision's reason).
    fn admits(&self, config: &objects::ConfigSource, pod: &str) -> bool {
        let namespace = &self.meta.namespace;
        let account = &self.meta.service_account;
        let message = match config.objects.service_account_exists(namespace, account) {
            Ok(true) => return true,
            Ok(false) => objects::missing_service_account(pod, namespace, account),
            Err(e) => format!("pods {pod:?} could not be admitted: {e}"),
        };
        self.recorder.record(
            &self.owned_ref("apps/v1", "ReplicaSet", &self.meta.replica_set_name()),
            EventType::Warning,
            objects::FAILED_CREATE,
            &format!("Error creating: {message}"),
            "replicaset-controller",
        );
        self.failed(objects::FAILED_CREATE, message);
        false
    }
}

/// Stops the Pod `id` (Terminating until its worker is done) without
/// waiting for it.
fn stop_pod(deployment: &Deployment, id: &str, pod: Running) {
    deployment.update_pod(id, |pod| pod.terminating = true);
    deployment.pod_event(
        id,
        EventType::Normal,
        "Killing",
        &format!("Stopping container {}", resources::USER_CONTAINER),
    );
    pod.stop.cancel();
    tokio::spawn(async move {
        let _ = pod.task.await;
    });
}

/// What each Pod of `revision` runs with besides its [`Launch`] (the
/// Deployment's pod template).
pub fn pod_spec(revision: &Revision, settings: &KubeletSettings) -> InstanceSpec {
    let state_dir = settings.state_dir.as_path();
    let meta = RevisionMeta::of(revision);
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
    let log_dir: PathBuf =
        logs::revision_dir(state_dir, revision.namespace(), &group, revision.name());
    InstanceSpec {
        namespace: revision.namespace().to_string(),
        log_dir,
        service,
        configuration,
        revision: revision.name().to_string(),
        container: container.cloned().unwrap_or_default(),
        volumes: revision.spec.pod_spec.volumes.clone().unwrap_or_default(),
        labels: meta.pod_labels(),
        annotations: revision.metadata.annotations.clone().unwrap_or_default(),
        service_account: meta.service_account.clone(),
        pods_dir: volumes::pods_dir(state_dir),
        config: settings.config.clone(),
        readiness,
        container_port,
        records_dir: leftovers::records_dir(state_dir),
    }
}
