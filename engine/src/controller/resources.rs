//! The objects the engine shows for each revision, made by pure functions
//! as Knative's `pkg/reconciler/revision/resources` makes them: the
//! Deployment `REVISION-deployment`, its ReplicaSet
//! `REVISION-deployment-HASH`, its Pods `REVISION-deployment-HASH-XXXXX`,
//! and the PodAutoscaler `REVISION`, with Knative's labels and owners
//! (Revision → Deployment → ReplicaSet → Pod; Revision → PodAutoscaler).
//!
//! The ReplicaSet is kept although a revision's template never changes (so
//! there is only ever one): kubectl's `describe deploy` and `rollout status`
//! read it, and a Pod's owner and name are those of a Pod on Kubernetes.
//! There is no `queue-proxy` container: the engine's activator does its
//! work in-process.

use std::collections::BTreeMap;

use jiff::Timestamp;
use okonomi_knative::{Revision, keys};
use serde_json::{Value, json};

use crate::kubelet::objects;

/// The container name Knative gives the user's container.
pub const USER_CONTAINER: &str = "user-container";

/// The finalizer that keeps a stopping Pod (Terminating) until its process
/// is gone.
pub const POD_FINALIZER: &str = "okonomi.dev/kubelet";

pub use crate::kubelet::NODE_NAME;

/// Kubernetes' alphabet for generated name suffixes (no vowels, no
/// look-alikes).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// What the objects of one revision are made from.
#[derive(Debug, Clone)]
pub struct RevisionMeta {
    /// Namespace.
    pub namespace: String,
    /// Revision name.
    pub name: String,
    /// Revision uid.
    pub uid: String,
    /// The labels every object of the revision carries.
    pub labels: BTreeMap<String, String>,
    /// The revision's serving container, as the user wrote it.
    pub container: Value,
    /// Whether its port is named `h2c`.
    pub h2c: bool,
    /// `terminationGracePeriodSeconds` of its Pods (the revision's timeout).
    pub grace_seconds: i64,
    /// `pod-template-hash` of its ReplicaSet.
    pub template_hash: String,
    /// The revision's volumes (`[]` when none).
    pub volumes: Value,
    /// Its Pods' service account.
    pub service_account: String,
}

impl RevisionMeta {
    /// The meta of `revision`.
    pub fn of(revision: &Revision) -> Self {
        let name = revision.name().to_string();
        let uid = revision.metadata.uid.clone().unwrap_or_default();
        let mut labels = revision.metadata.labels.clone().unwrap_or_default();
        // Labels only the Revision itself carries (routing state) stay there.
        labels.remove(keys::ROUTING_STATE_LABEL);
        labels.insert(keys::REVISION_LABEL.to_string(), name.clone());
        labels.insert(keys::REVISION_UID_LABEL.to_string(), uid.clone());
        labels
            .entry("app".to_string())
            .or_insert_with(|| name.clone());
        let container = revision
            .spec
            .serving_container()
            .and_then(|c| serde_json::to_value(c).ok())
            .unwrap_or_else(|| json!({}));
        let h2c = container["ports"][0]["name"] == "h2c";
        let grace_seconds = revision.spec.timeout_seconds.unwrap_or(300);
        let pod_spec = &revision.spec.pod_spec;
        let volumes = pod_spec
            .volumes
            .as_ref()
            .and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or_else(|| json!([]));
        let service_account = pod_spec
            .service_account_name
            .clone()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "default".into());
        Self {
            volumes,
            service_account,
            namespace: revision.namespace().to_string(),
            template_hash: template_hash(&uid),
            name,
            uid,
            labels,
            container,
            h2c,
            grace_seconds,
        }
    }

    /// `REVISION-deployment`.
    pub fn deployment_name(&self) -> String {
        okonomi_knative::names::child_name(&self.name, "-deployment")
    }

    /// `REVISION-deployment-HASH`.
    pub fn replica_set_name(&self) -> String {
        format!("{}-{}", self.deployment_name(), self.template_hash)
    }

    /// A new Pod name, `REVISION-deployment-HASH-XXXXX`.
    pub fn new_pod_name(&self) -> String {
        let suffix: String = (0..5)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect();
        // As the API server's generateName: the prefix cut to 58 characters
        // so that the name with its five random ones fits 63.
        let mut prefix = format!("{}-", self.replica_set_name());
        prefix.truncate(58);
        format!("{prefix}{suffix}")
    }

    fn owner(&self) -> Value {
        json!([{
            "apiVersion": keys::API_VERSION,
            "kind": "Revision",
            "name": self.name,
            "uid": self.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }])
    }

    fn selector(&self) -> Value {
        json!({"matchLabels": {keys::REVISION_UID_LABEL: self.uid}})
    }

    /// The labels of its Pods (the revision's, with `pod-template-hash`).
    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert("pod-template-hash".into(), self.template_hash.clone());
        labels
    }

    fn pod_spec(&self) -> Value {
        let mut container = self.container.clone();
        // Knative keeps the name the Service gave its container (kn, kubectl
        // logs -c and okonomi logs ask for it); unnamed, it is user-container.
        container["name"] = json!(self.container_name());
        let mut spec = json!({
            "containers": [container],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": self.grace_seconds,
            "serviceAccountName": self.service_account,
            "enableServiceLinks": false,
        });
        if self.volumes.as_array().is_some_and(|v| !v.is_empty()) {
            spec["volumes"] = self.volumes.clone();
        }
        spec
    }

    /// The serving container's name in the Pod.
    fn container_name(&self) -> String {
        self.container["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or(USER_CONTAINER)
            .to_string()
    }

    fn image(&self) -> String {
        self.container["image"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// A stable `pod-template-hash` for a revision uid (the template never
/// changes): 10 characters of Kubernetes' alphabet.
pub fn template_hash(uid: &str) -> String {
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in uid.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..10)
        .map(|_| {
            let c = ALPHABET[(hash % ALPHABET.len() as u64) as usize] as char;
            hash /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// Kubernetes' timestamp format (seconds).
pub fn time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn condition(type_: &str, status: bool, reason: &str, message: &str, at: &str) -> Value {
    let mut condition = json!({
        "type": type_,
        "status": if status { "True" } else { "False" },
        "lastTransitionTime": at,
    });
    if !reason.is_empty() {
        condition["reason"] = json!(reason);
    }
    if !message.is_empty() {
        condition["message"] = json!(message);
    }
    condition
}

/// What a revision's Deployment, ReplicaSet and PodAutoscaler report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Pods wanted (the autoscaler's scale).
    pub desired: u32,
    /// Pods that exist.
    pub pods: u32,
    /// Pods ready.
    pub ready: u32,
    /// Whether a Pod was ever ready.
    pub ever_ready: bool,
    /// The last failure (reason, message) while no Pod is ready.
    pub failure: Option<(String, String)>,
}

/// The revision's Deployment.
pub fn make_deployment(meta: &RevisionMeta, counts: &Counts, now: &str) -> Value {
    let available = counts.ready >= counts.desired;
    // A Pod the API refused is the ReplicaSet's failure, not the rollout's.
    let replica_failure = counts
        .failure
        .as_ref()
        .filter(|(reason, _)| reason == objects::FAILED_CREATE);
    let (progressing, progressing_reason, progressing_message) = match &counts.failure {
        Some((reason, message)) if counts.ready == 0 && replica_failure.is_none() => {
            (false, reason.as_str(), message.as_str())
        }
        _ if counts.ever_ready || counts.desired == 0 => (
            true,
            "NewReplicaSetAvailable",
            "ReplicaSet has successfully progressed.",
        ),
        _ => (true, "ReplicaSetUpdated", "ReplicaSet is progressing."),
    };
    let mut conditions = vec![
        condition(
            "Available",
            available,
            if available {
                "MinimumReplicasAvailable"
            } else {
                "MinimumReplicasUnavailable"
            },
            if available {
                "Deployment has minimum availability."
            } else {
                "Deployment does not have minimum availability."
            },
            now,
        ),
        condition(
            "Progressing",
            progressing,
            progressing_reason,
            progressing_message,
            now,
        ),
    ];
    if let Some((reason, message)) = replica_failure {
        conditions.push(condition("ReplicaFailure", true, reason, message, now));
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": meta.deployment_name(),
            "namespace": meta.namespace,
            "labels": meta.labels,
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "ownerReferences": meta.owner(),
        },
        "spec": {
            "replicas": counts.desired,
            "selector": meta.selector(),
            "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 0,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": meta.labels},
                "spec": meta.pod_spec(),
            },
        },
        "status": {
            "observedGeneration": null,
            "replicas": counts.pods,
            "updatedReplicas": counts.pods,
            "readyReplicas": counts.ready,
            "availableReplicas": counts.ready,
            "unavailableReplicas": counts.pods.saturating_sub(counts.ready),
            "conditions": conditions,
        },
    })
}

/// The Deployment's one ReplicaSet.
pub fn make_replica_set(meta: &RevisionMeta, counts: &Counts) -> Value {
    let labels = meta.pod_labels();
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": meta.replica_set_name(),
            "namespace": meta.namespace,
            "labels": labels,
            "annotations": {
                "deployment.kubernetes.io/desired-replicas": counts.desired.to_string(),
                "deployment.kubernetes.io/revision": "1",
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": meta.deployment_name(),
                "uid": "",
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": counts.desired,
            "selector": {"matchLabels": {
                keys::REVISION_UID_LABEL: meta.uid,
                "pod-template-hash": meta.template_hash,
            }},
            "template": {
                "metadata": {"labels": labels},
                "spec": meta.pod_spec(),
            },
        },
        "status": {
            "observedGeneration": null,
            "replicas": counts.pods,
            "fullyLabeledReplicas": counts.pods,
            "readyReplicas": counts.ready,
            "availableReplicas": counts.ready,
        },
    })
}

/// The revision's PodAutoscaler (`kubectl get kpa`).
pub fn make_pod_autoscaler(meta: &RevisionMeta, counts: &Counts, now: &str) -> Value {
    let active = counts.ready > 0;
    let (active_reason, active_message) = if active {
        ("", "")
    } else if counts.desired == 0 && (counts.ever_ready || counts.failure.is_none()) {
        ("NoTraffic", "The target is not receiving traffic.")
    } else if let Some((reason, message)) = &counts.failure {
        (reason.as_str(), message.as_str())
    } else {
        (
            "Queued",
            "Requests to the target are being buffered as resources are provisioned.",
        )
    };
    let initialized = counts.ever_ready || counts.desired == 0 && counts.failure.is_none();
    json!({
        "apiVersion": "autoscaling.internal.knative.dev/v1alpha1",
        "kind": "PodAutoscaler",
        "metadata": {
            "name": meta.name,
            "namespace": meta.namespace,
            "labels": meta.labels,
            "annotations": {keys::AUTOSCALING_CLASS_ANNOTATION: keys::KPA_CLASS},
            "ownerReferences": meta.owner(),
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta.deployment_name()},
            "protocolType": if meta.h2c { "h2c" } else { "http1" },
            "reachability": "Reachable",
        },
        "status": {
            "observedGeneration": null,
            "desiredScale": counts.desired,
            "actualScale": counts.ready,
            "serviceName": meta.name,
            "metricsServiceName": format!("{}-private", meta.name),
            "conditions": [
                condition("Active", active, active_reason, active_message, now),
                condition("Ready", active, active_reason, active_message, now),
                condition("SKSReady", true, "", "", now),
                condition("ScaleTargetInitialized", initialized, "", "", now),
            ],
        },
    })
}

/// A container's state as the kubelet reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Not running: `ContainerCreating`, `CrashLoopBackOff`…
    Waiting {
        /// Kubernetes' reason.
        reason: String,
        /// What happened.
        message: String,
    },
    /// Running since.
    Running {
        /// Started at.
        started_at: String,
    },
    /// Ended.
    Terminated(Terminated),
}

/// How a container's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminated {
    /// Exit code (137 for SIGKILL, as Kubernetes counts it).
    pub exit_code: i32,
    /// `Error`, `Completed`, `OOMKilled`…
    pub reason: String,
    /// What the engine knows of why.
    pub message: String,
    /// Started at.
    pub started_at: String,
    /// Finished at.
    pub finished_at: String,
}

impl ContainerState {
    fn to_json(&self) -> Value {
        match self {
            ContainerState::Waiting { reason, message } => {
                let mut waiting = json!({"reason": reason});
                if !message.is_empty() {
                    waiting["message"] = json!(message);
                }
                json!({"waiting": waiting})
            }
            ContainerState::Running { started_at } => {
                json!({"running": {"startedAt": started_at}})
            }
            ContainerState::Terminated(t) => t.to_json(),
        }
    }
}

impl Terminated {
    fn to_json(&self) -> Value {
        let mut terminated = json!({
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        });
        if !self.message.is_empty() {
            terminated["message"] = json!(self.message);
        }
        json!({"terminated": terminated})
    }
}

/// One Pod as its Deployment knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    /// `REVISION-deployment-HASH-XXXXX`.
    pub name: String,
    /// When the Pod was made (scheduled).
    pub created: String,
    /// When its first container run started.
    pub start_time: Option<String>,
    /// The container's state now.
    pub state: ContainerState,
    /// How its previous run ended.
    pub last_state: Option<Terminated>,
    /// Whether it passes its readiness probe.
    pub ready: bool,
    /// When `ready` last changed.
    pub ready_changed: String,
    /// Times the container restarted.
    pub restart_count: u32,
    /// The image's digest reference (`REPO@sha256:…`), or the kept
    /// binary's for `okonomi://`.
    pub image_id: String,
    /// Whether it is stopping (shown as Terminating).
    pub terminating: bool,
}

impl PodState {
    /// A Pod just scheduled, its container being created.
    pub fn new(name: String, image_id: String, now: &str) -> Self {
        Self {
            name,
            created: now.to_string(),
            start_time: None,
            state: ContainerState::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            },
            last_state: None,
            ready: false,
            ready_changed: now.to_string(),
            restart_count: 0,
            image_id,
            terminating: false,
        }
    }
}

/// A Pod of the revision.
pub fn make_pod(meta: &RevisionMeta, pod: &PodState) -> Value {
    let unready = if pod.ready {
        String::new()
    } else {
        format!(
            "containers with unready status: [{}]",
            meta.container_name()
        )
    };
    let running = !matches!(
        &pod.state,
        ContainerState::Waiting { reason, .. } if reason == "ContainerCreating"
    );
    let phase = if pod.start_time.is_some() && running {
        "Running"
    } else {
        "Pending"
    };
    let mut status = json!({
        "phase": phase,
        "conditions": [
            condition("PodScheduled", true, "", "", &pod.created),
            condition("Initialized", true, "", "", &pod.created),
            condition("ContainersReady", pod.ready, if pod.ready { "" } else { "ContainersNotReady" }, &unready, &pod.ready_changed),
            condition("Ready", pod.ready, if pod.ready { "" } else { "ContainersNotReady" }, &unready, &pod.ready_changed),
        ],
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": "127.0.0.1",
        "podIPs": [{"ip": "127.0.0.1"}],
        "qosClass": "BestEffort",
        "containerStatuses": [{
            "name": meta.container_name(),
            "ready": pod.ready,
            "started": matches!(pod.state, ContainerState::Running { .. }),
            "restartCount": pod.restart_count,
            "image": meta.image(),
            "imageID": pod.image_id,
            "state": pod.state.to_json(),
            "lastState": pod.last_state.as_ref().map(Terminated::to_json).unwrap_or_else(|| json!({})),
        }],
    });
    if let Some(start) = &pod.start_time {
        status["startTime"] = json!(start);
    }
    let mut spec = meta.pod_spec();
    spec["nodeName"] = json!(NODE_NAME);
    spec["schedulerName"] = json!("default-scheduler");
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.name,
            "namespace": meta.namespace,
            "labels": meta.pod_labels(),
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": meta.replica_set_name(),
                "uid": "",
                "controller": true,
                "blockOwnerDeletion": true,
            }],
            "finalizers": [POD_FINALIZER],
        },
        "spec": spec,
        "status": status,
    })
}
