//! Revision → a Deployment and its autoscaler (the [`Revisions`] it owns:
//! per revision a throttler in the data plane, a scaler deciding the scale
//! and a Deployment running that many Pods), and the revision's status from
//! them: Ready when a Pod answered its readiness probe, Ready=False with the reason and
//! the tail of the logs when instances fail, Active=False at zero, and
//! Ready=False with Kubernetes' `CreateContainerConfigError` naming the
//! ConfigMap or Secret its Pods wait for, until it exists.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use okonomi_apiserver::ResourceType;
use okonomi_knative::serving::{condition_type, reason, set_condition};
use okonomi_knative::{Condition, Revision, RevisionStatus};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::deployment::{self, Deployment, DeploymentStatus};
use super::events::{EventType, Recorder};
use super::resources::RevisionMeta;
use super::writer::ObjectWriter;
use super::{Action, Context, ReconcileResult, decode, now, write_status};
use crate::autoscaler::{AutoscalerConfig, KpaState, scaler};
use crate::dataplane::metrics::{Metrics, RevisionLabels};
use crate::dataplane::upstream::Protocol;
use crate::dataplane::{RevisionKey, Throttler};
use crate::kubelet::artifacts::{self, ArtifactCache};
use crate::kubelet::{KubeletSettings, RUNTIME_ANNOTATION, RuntimeKind, binaries, objects};
use crate::serving_config::ServingConfig;

/// The conditions a Deployment's status means for its revision.
pub fn conditions(pool: &DeploymentStatus, previously_ready: bool) -> Vec<Condition> {
    if pool.ready == 0
        && let Some((why, message)) = &pool.failure
        && [
            objects::CREATE_CONTAINER_CONFIG_ERROR,
            objects::FAILED_MOUNT,
            objects::FAILED_CREATE,
        ]
        .contains(&why.as_str())
    {
        return config_error_conditions(why, message);
    }
    let ever_ready =
        pool.ever_ready || previously_ready || (pool.starts_at_zero && pool.failure.is_none());
    let failing = pool.ready == 0 && pool.failure.is_some();
    let (resources, container) = match (&pool.failure, failing) {
        (Some((why, message)), true) => {
            let condition = Condition::false_(condition_type::RESOURCES_AVAILABLE, why, message);
            let container = Condition::false_(
                condition_type::CONTAINER_HEALTHY,
                reason::EXIT_CODE,
                message,
            );
            (condition, container)
        }
        _ if pool.ready > 0 || ever_ready => (
            Condition::true_(condition_type::RESOURCES_AVAILABLE),
            Condition::true_(condition_type::CONTAINER_HEALTHY),
        ),
        _ => (
            Condition::unknown(
                condition_type::RESOURCES_AVAILABLE,
                reason::DEPLOYING,
                "starting the first instance",
            ),
            Condition::unknown(
                condition_type::CONTAINER_HEALTHY,
                reason::DEPLOYING,
                "waiting for the readiness probe",
            ),
        ),
    };
    let ready = if failing {
        Condition {
            type_: condition_type::READY.to_string(),
            ..resources.clone()
        }
    } else if ever_ready {
        Condition::true_(condition_type::READY)
    } else {
        Condition::unknown(
            condition_type::READY,
            reason::DEPLOYING,
            "waiting for an instance to become ready",
        )
    };
    let active = if pool.ready > 0 {
        Condition::true_(condition_type::ACTIVE)
    } else if pool.desired == 0 && ever_ready {
        Condition::false_(
            condition_type::ACTIVE,
            reason::NO_TRAFFIC,
            "The target is not receiving traffic.",
        )
    } else {
        Condition::unknown(
            condition_type::ACTIVE,
            "Activating",
            "an instance is starting",
        )
    };
    vec![ready, resources, container, active]
}

/// The conditions of a revision whose container cannot be started because
/// its configuration cannot be made (`reason`: Kubernetes'
/// `CreateContainerConfigError`, or `FailedMount` for a volume): Ready=False
/// naming what is missing, until it exists.
pub fn config_error_conditions(reason: &str, message: &str) -> Vec<Condition> {
    vec![
        Condition::false_(condition_type::READY, reason, message),
        Condition::false_(condition_type::RESOURCES_AVAILABLE, reason, message),
        Condition::unknown(
            condition_type::CONTAINER_HEALTHY,
            reason,
            "the container was not started",
        ),
        Condition::false_(
            condition_type::ACTIVE,
            reason,
            "the container was not started",
        ),
    ]
}

/// Reconciles one Revision.
pub async fn reconcile(ctx: &Arc<Context>, namespace: &str, name: &str) -> ReconcileResult {
    let rt = ResourceType::knative_revision();
    let stored = match ctx.store.get(&rt, namespace, name) {
        Ok(stored) => stored,
        Err(e) if e.is_not_found() => return Ok(Action::AwaitChange),
        Err(source) => return Err(super::Error::api("reading", &rt, namespace, name, source)),
    };
    let revision: Revision = decode(stored.clone())?;
    let pool_status = ctx.revisions.ensure(&revision).status();
    let old = revision.status.clone();
    let mut status: RevisionStatus = old.clone().unwrap_or_default();
    let previously_ready = old
        .as_ref()
        .is_some_and(|s| okonomi_knative::Conditions::is_ready(&s.conditions));
    let time = now();
    for condition in conditions(&pool_status, previously_ready) {
        set_condition(&mut status.conditions, condition, time.clone());
    }
    status.observed_generation = revision.metadata.generation;
    // As Knative's revision reconciler does once the tag is resolved: `kn`
    // pins the next revision to this digest (`--lock-to-digest`).
    if let Some(digest) = &pool_status.image_digest {
        let name = revision
            .spec
            .serving_container()
            .and_then(|c| Some(c.name.clone()).filter(|n| !n.is_empty()))
            .unwrap_or_else(|| okonomi_knative::keys::DEFAULT_CONTAINER_NAME.to_owned());
        status.container_statuses = vec![okonomi_knative::ContainerStatus {
            name,
            image_digest: digest.clone(),
        }];
    }
    status.actual_replicas = Some(pool_status.ready as i32);
    status.desired_replicas = Some(pool_status.desired as i32);
    record_readiness(ctx, &stored, old.as_ref(), &status);
    write_status(ctx.store_ref(), &rt, &stored, old.as_ref(), &status).await
}

/// Records an Event when the revision's Ready condition changes: ready, or
/// failed with the reason and message.
fn record_readiness(
    ctx: &Context,
    stored: &serde_json::Value,
    old: Option<&RevisionStatus>,
    new: &RevisionStatus,
) {
    let ready = |status: Option<&RevisionStatus>| {
        status
            .and_then(|s| {
                okonomi_knative::Conditions::get_condition(&s.conditions, condition_type::READY)
            })
            .map(|c| {
                let state = if c.is_true() {
                    "True"
                } else if c.is_false() {
                    "False"
                } else {
                    "Unknown"
                };
                (state, c.reason.clone(), c.message.clone())
            })
    };
    let (before, after) = (ready(old), ready(Some(new)));
    if before == after {
        return;
    }
    let Some((status, reason, message)) = after else {
        return;
    };
    let object = super::events::InvolvedObject::of(&ResourceType::knative_revision(), stored);
    match status {
        "True" => ctx.recorder.record(
            &object,
            EventType::Normal,
            "RevisionReady",
            "Revision becomes ready upon all resources being ready",
            "revision-controller",
        ),
        "False" => ctx.recorder.record(
            &object,
            EventType::Warning,
            reason.as_deref().unwrap_or("RevisionFailed"),
            message.as_deref().unwrap_or("the revision failed"),
            "revision-controller",
        ),
        _ => {}
    }
}

/// Settings every revision's Deployment and autoscaler share.
#[derive(Debug, Clone)]
pub struct RevisionSettings {
    /// How the kubelet runs Pods.
    pub kubelet: KubeletSettings,
    /// Knative's ConfigMaps as they are now (the autoscaler's settings).
    pub config: watch::Receiver<Arc<ServingConfig>>,
    /// Requests that may wait per revision in the activator.
    pub queue_depth: usize,
}

struct Entry {
    /// The revision as it was started (a revision's spec never changes).
    revision: Revision,
    deployment: Arc<Deployment>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// What the revision controller owns per revision: its throttler, its
/// Deployment and its autoscaler, started the first time the revision is
/// reconciled or routed to.
pub struct Revisions {
    settings: RevisionSettings,
    metrics: Arc<Metrics>,
    status_changed: Arc<Notify>,
    entries: Mutex<HashMap<RevisionKey, Entry>>,
    artifacts: Arc<ArtifactCache>,
    writer: ObjectWriter,
    recorder: Recorder,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Revisions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revisions")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Revisions {
    /// No revision yet. `status_changed` is notified when any Deployment's
    /// status changes; their objects are written through `writer`.
    pub fn new(
        settings: RevisionSettings,
        metrics: Arc<Metrics>,
        status_changed: Arc<Notify>,
        writer: ObjectWriter,
        recorder: Recorder,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            settings,
            metrics,
            status_changed,
            entries: Mutex::new(HashMap::new()),
            artifacts: Arc::new(ArtifactCache::new()),
            writer,
            recorder,
            shutdown,
        }
    }

    /// Gives every running revision the scaling spec `autoscaler` makes of
    /// it, as Knative's autoscaler applies a changed `config-autoscaler`
    /// to every PodAutoscaler.
    pub fn reconfigure(&self, autoscaler: &AutoscalerConfig) {
        for entry in self.lock().values() {
            let spec = autoscaler.spec_for_revision(&entry.revision);
            entry.deployment.throttler().set_spec(spec);
        }
    }

    /// The Deployment of a revision, if it runs.
    pub fn get(&self, key: &RevisionKey) -> Option<Arc<Deployment>> {
        self.lock().get(key).map(|e| e.deployment.clone())
    }

    /// Every revision's Deployment.
    pub fn deployments(&self) -> Vec<Arc<Deployment>> {
        self.lock().values().map(|e| e.deployment.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RevisionKey, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Deployment of `revision`, started (code resolved, scaler
    /// running) the first time.
    pub fn ensure(&self, revision: &Revision) -> Arc<Deployment> {
        let key = RevisionKey {
            namespace: revision.namespace().to_string(),
            name: revision.name().to_string(),
        };
        let mut entries = self.lock();
        if let Some(entry) = entries.get(&key) {
            return entry.deployment.clone();
        }
        let annotations: BTreeMap<String, String> =
            revision.metadata.annotations.clone().unwrap_or_default();
        // Scaling settings, and the request timeouts the data plane reads.
        let spec = self
            .settings
            .config
            .borrow()
            .autoscaler
            .spec_for_revision(revision);
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
        let state = KpaState::starting(&spec, restored);
        let pod_spec = deployment::pod_spec(revision, &self.settings.kubelet);
        let starts_at_zero = spec.initial_scale == 0;
        let throttler = Throttler::new(
            key.clone(),
            spec,
            protocol,
            self.settings.queue_depth,
            self.metrics.clone(),
        );
        let deployment = Deployment::new(
            RevisionMeta::of(revision),
            throttler.clone(),
            restored.unwrap_or(0),
            starts_at_zero,
            self.metrics.clone(),
            self.status_changed.clone(),
            self.writer.clone(),
            self.recorder.clone(),
            pod_spec.log_dir.clone(),
        );
        let stop = self.shutdown.child_token();
        let runtime = annotations
            .get(RUNTIME_ANNOTATION)
            .and_then(|r| RuntimeKind::parse(r))
            .unwrap_or(self.settings.kubelet.runtime);
        // Only okonomi's two profiles: the value reaches cargo's command line.
        let profile = match annotations.get(okonomi_knative::keys::BUILD_PROFILE_ANNOTATION) {
            None => Ok(self.settings.kubelet.build_profile.clone()),
            Some(value) => value
                .parse::<okonomi_knative::manifest::BuildProfile>()
                .map(|p| p.as_str().to_string())
                .map_err(|e| {
                    format!(
                        "annotation {}: {e}",
                        okonomi_knative::keys::BUILD_PROFILE_ANNOTATION
                    )
                }),
        };
        let profile_error = profile.as_ref().err().cloned();
        let local_build = artifacts::LocalBuild {
            profile: profile.unwrap_or_default(),
            digest: annotations
                .get(okonomi_knative::keys::BUILD_DIGEST_ANNOTATION)
                .cloned(),
        };
        let container = revision.spec.serving_container().cloned();
        let settings = self.settings.kubelet.clone();
        let task_deployment = deployment.clone();
        let task_stop = stop.clone();
        let artifacts = self.artifacts.clone();
        let revision_id = binaries::RevisionId {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            uid: revision.metadata.uid.clone().unwrap_or_default(),
        };
        let task = tokio::spawn(async move {
            let Some(container) = container else {
                task_deployment.failed("NoContainer", "the revision has no container".into());
                return;
            };
            if let Some(message) = profile_error {
                task_deployment.failed("InvalidBuildProfile", message);
                return;
            }
            let image_ref = container.image.clone().unwrap_or_default();
            let began = std::time::Instant::now();
            let fetched = tokio::select! {
                _ = task_stop.cancelled() => return,
                fetched = artifacts.fetch(&image_ref, runtime, &local_build, &revision_id, &settings) => fetched,
            };
            match &fetched {
                Ok(artifact) => {
                    let (reason, what) = match artifact {
                        artifacts::Artifact::Built(_) => ("Built", "Built"),
                        _ => ("Pulled", "Pulled image"),
                    };
                    task_deployment.revision_event(
                        EventType::Normal,
                        reason,
                        &format!("{what} {image_ref:?} in {:?}", began.elapsed()),
                        "kubelet",
                    );
                }
                Err((reason, message)) => {
                    task_deployment.revision_event(EventType::Warning, reason, message, "kubelet")
                }
            }
            let resolved = fetched.and_then(|artifact| {
                let image_id = artifacts::image_id(&image_ref, &artifact);
                artifacts::launch_for(artifact, &container).map(|launch| (image_id, launch))
            });
            match resolved {
                Ok((image_id, launch)) => {
                    // The scaler decides from when the code is there, so a
                    // long build does not eat the scale-to-zero grace.
                    let (scale, replicas) = watch::channel(restored.unwrap_or(0));
                    tokio::join!(
                        scaler::run(throttler, state, scale, task_stop.clone()),
                        deployment::run(
                            task_deployment,
                            image_id,
                            Arc::new(launch),
                            Arc::new(pod_spec),
                            settings,
                            replicas,
                            task_stop,
                        ),
                    );
                }
                Err((reason, error)) => {
                    tracing::warn!(revision = %task_deployment.key, %error, "cannot run revision");
                    task_deployment.failed(reason, error);
                }
            }
        });
        entries.insert(
            key,
            Entry {
                revision: revision.clone(),
                deployment: deployment.clone(),
                stop,
                task,
            },
        );
        deployment
    }

    /// Stops a deleted revision's Pods.
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

    /// Stops every Pod and waits until they are gone.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let entries: Vec<Entry> = self.lock().drain().map(|(_, e)| e).collect();
        for entry in entries {
            entry.stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(30), entry.task).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use okonomi_knative::Conditions;

    #[test]
    fn a_revision_that_never_started_is_not_ready_with_the_reason() {
        let status = DeploymentStatus {
            ready: 0,
            desired: 1,
            ever_ready: false,
            starts_at_zero: false,
            failure: Some((
                "ExitedBeforeReady".into(),
                "exit status: 3; last log lines:\nboom".into(),
            )),
            ..DeploymentStatus::default()
        };
        let conditions = conditions(&status, false);
        let ready = conditions.get_condition("Ready").unwrap();
        assert!(ready.is_false());
        assert_eq!(ready.reason.as_deref(), Some("ExitedBeforeReady"));
        assert!(ready.message.as_deref().unwrap().contains("boom"));
    }

    #[test]
    fn a_revision_at_zero_stays_ready_but_inactive() {
        let status = DeploymentStatus {
            ready: 0,
            desired: 0,
            ever_ready: true,
            starts_at_zero: false,
            failure: None,
            ..DeploymentStatus::default()
        };
        let conditions = conditions(&status, true);
        assert!(conditions.is_ready());
        assert!(conditions.get_condition("Active").unwrap().is_false());
    }

    #[test]
    fn a_missing_config_map_fails_the_revision_with_kubernetes_reason() {
        let status = DeploymentStatus {
            desired: 1,
            failure: Some((
                objects::CREATE_CONTAINER_CONFIG_ERROR.into(),
                r#"configmap "settings" not found"#.into(),
            )),
            ..DeploymentStatus::default()
        };
        let conditions = conditions(&status, false);
        let ready = conditions.get_condition("Ready").unwrap();
        assert!(ready.is_false());
        assert_eq!(ready.reason.as_deref(), Some("CreateContainerConfigError"));
        assert_eq!(
            ready.message.as_deref(),
            Some(r#"configmap "settings" not found"#)
        );
        let healthy = conditions.get_condition("ContainerHealthy").unwrap();
        assert!(!healthy.is_false() && !healthy.is_true(), "{healthy:?}");
    }
}
