//! The Deployment controller part: makes and removes a revision's Pods to
//! match the replicas its scaler asks for, each run by the
//! [`kubelet`](crate::kubelet), and keeps the Deployment's status (ready
//! Pods, the last failure) from what the kubelet reports. Ready Pods become
//! the balancer's endpoints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use okonomi_knative::{Revision, keys};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dataplane::metrics::Metrics;
use crate::dataplane::{Endpoint, RevisionKey, Throttler};
use crate::kubelet::logs::{self, LogRing};
use crate::kubelet::{
    Failure, InstanceObserver, InstanceSpec, KubeletSettings, Launch, Readiness, leftovers,
    pod_worker,
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
}

/// One revision's Deployment: its Pods' shared state.
#[derive(Debug)]
pub struct Deployment {
    /// Which revision.
    pub key: RevisionKey,
    throttler: Arc<Throttler>,
    status: Mutex<DeploymentStatus>,
    status_changed: Arc<Notify>,
    ring: LogRing,
    metrics: Arc<Metrics>,
}

impl Deployment {
    /// A Deployment of no Pod yet whose ready Pods serve through
    /// `throttler`. `desired` is the scale it starts at (the one restored
    /// after a restart); `status_changed` is notified whenever
    /// [`status`](Self::status) changes.
    pub fn new(
        throttler: Arc<Throttler>,
        desired: u32,
        starts_at_zero: bool,
        metrics: Arc<Metrics>,
        status_changed: Arc<Notify>,
    ) -> Arc<Self> {
        Arc::new(Self {
            key: throttler.key.clone(),
            throttler,
            status: Mutex::new(DeploymentStatus {
                desired,
                starts_at_zero,
                ..DeploymentStatus::default()
            }),
            status_changed,
            ring: LogRing::default(),
            metrics,
        })
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
            self.status_changed.notify_one();
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
    }

    async fn unready(&self, id: &str) {
        // Drain: requests already on the Pod finish before SIGTERM.
        let left = self.throttler.endpoint_gone(id, DRAIN).await;
        self.update_status(|s| s.ready = left);
    }

    fn failed(&self, _id: &str, failure: Failure) {
        Deployment::failed(self, &failure.reason, failure.message);
    }

    fn started(&self, _id: &str) {
        self.throttler.instance_started();
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
    launch: Arc<Launch>,
    spec: Arc<InstanceSpec>,
    settings: KubeletSettings,
    mut replicas: watch::Receiver<u32>,
    shutdown: CancellationToken,
) {
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut counter = 0u64;
    loop {
        let desired = *replicas.borrow_and_update();
        deployment.update_status(|s| s.desired = desired);
        // Reap Pods whose worker ended on its own.
        running.retain(|_, r| !r.task.is_finished());
        order.retain(|id| running.contains_key(id));
        while (running.len() as u32) < desired {
            counter += 1;
            let id = format!(
                "{}-{}",
                counter,
                &uuid::Uuid::new_v4().simple().to_string()[..6]
            );
            let stop = shutdown.child_token();
            let task = tokio::spawn(pod_worker::supervise(
                id.clone(),
                launch.clone(),
                spec.clone(),
                deployment.ring.clone(),
                deployment.clone(),
                settings.timing.clone(),
                stop.clone(),
            ));
            running.insert(id.clone(), Running { stop, task });
            order.push(id);
        }
        while (running.len() as u32) > desired {
            // Stop the newest first: it is the least likely to be warm.
            let Some(id) = order.pop() else { break };
            if let Some(r) = running.remove(&id) {
                r.stop.cancel();
                tokio::spawn(async move {
                    let _ = r.task.await;
                });
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = replicas.changed() => if changed.is_err() { break },
        }
    }
    for (_, r) in running.drain() {
        r.stop.cancel();
        let _ = r.task.await;
    }
    deployment.throttler.clear();
    deployment.update_status(|s| s.ready = 0);
}

/// What each Pod of `revision` runs with besides its [`Launch`] (the
/// Deployment's pod template).
pub fn pod_spec(revision: &Revision, state_dir: &std::path::Path) -> InstanceSpec {
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
    let log_dir: PathBuf =
        logs::revision_dir(state_dir, revision.namespace(), &group, revision.name());
    InstanceSpec {
        namespace: revision.namespace().to_string(),
        log_dir,
        service,
        configuration,
        revision: revision.name().to_string(),
        env,
        readiness,
        container_port,
        records_dir: leftovers::records_dir(state_dir),
    }
}
