//! Waiting for a Service the way `kn service create` does: watch it by
//! `fieldSelector=metadata.name=NAME`, trust `Ready` only once
//! `status.observedGeneration` has caught up with `metadata.generation`,
//! succeed on Ready=True, fail on Ready=False with the reason and message
//! (plus the latest revision's own conditions, where image pull and crash
//! failures are spelled out).

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{ListParams, WatchEvent, WatchParams};
use okonomi_knative::ConditionStatus;
use okonomi_knative::{KnativeObject, Service};

use super::connect::Cluster;
use super::error::ClusterError;

/// What the wait saw last.
#[derive(Debug)]
pub enum WaitOutcome {
    /// Ready=True at the wanted generation.
    Ready(Box<Service>),
    /// Ready=False at the wanted generation.
    Failed(Box<Service>),
    /// Still reconciling.
    Pending,
}

/// Classifies a Service: settled only when observedGeneration reached both
/// its own generation and `min_generation` (the one our write produced).
pub fn classify(service: Service, min_generation: Option<i64>) -> WaitOutcome {
    let generation = service.metadata.generation;
    let observed = service.observed_generation();
    let caught_up = match (generation, observed) {
        (Some(g), Some(o)) => o >= g && min_generation.is_none_or(|m| o >= m),
        (None, _) => true,
        (Some(_), None) => false,
    };
    if !caught_up {
        return WaitOutcome::Pending;
    }
    match service.ready_condition().map(|c| c.status) {
        Some(ConditionStatus::True) => WaitOutcome::Ready(Box::new(service)),
        Some(ConditionStatus::False) => WaitOutcome::Failed(Box::new(service)),
        _ => WaitOutcome::Pending,
    }
}

/// Waits until `name` is Ready at `min_generation` or later, fails on
/// Ready=False, gives up after `timeout`.
pub async fn wait_ready(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    min_generation: Option<i64>,
    timeout: Duration,
) -> Result<Service, ClusterError> {
    let mut last: Option<Service> = None;
    let watched = tokio::time::timeout(
        timeout,
        watch_until_settled(cluster, namespace, name, min_generation, &mut last),
    )
    .await;
    match watched {
        Ok(Ok(WaitOutcome::Ready(service))) => Ok(*service),
        Ok(Ok(WaitOutcome::Failed(service))) => Err(not_ready(cluster, namespace, &service).await),
        Ok(Ok(WaitOutcome::Pending)) => unreachable_pending(name),
        Ok(Err(e)) => Err(e),
        Err(_elapsed) => {
            let state = last
                .as_ref()
                .map(describe_state)
                .unwrap_or_else(|| "no status yet".into());
            let revision = match &last {
                Some(service) => revision_problems(cluster, namespace, service).await,
                None => String::new(),
            };
            Err(ClusterError::Timeout {
                name: name.to_owned(),
                after: timeout,
                state,
                revision,
            })
        }
    }
}

fn unreachable_pending(name: &str) -> Result<Service, ClusterError> {
    // watch_until_settled only returns settled outcomes; keep a clear error
    // rather than a panic should that ever change.
    Err(ClusterError::Timeout {
        name: name.to_owned(),
        after: Duration::ZERO,
        state: "the wait ended without a settled state".into(),
        revision: String::new(),
    })
}

/// GET, then WATCH from its resourceVersion; re-GET when the watch ends or
/// the version is too old (410), until the Service settles.
async fn watch_until_settled(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    min_generation: Option<i64>,
    last: &mut Option<Service>,
) -> Result<WaitOutcome, ClusterError> {
    let api = cluster.services(namespace);
    let object = Some(("service", name, namespace));
    loop {
        let list = api
            .list(&ListParams::default().fields(&format!("metadata.name={name}")))
            .await
            .map_err(|e| cluster.error(e, &format!("reading service {name:?}"), object))?;
        let resource_version = list
            .metadata
            .resource_version
            .clone()
            .unwrap_or_else(|| "0".into());
        let Some(service) = list.items.into_iter().next() else {
            return Err(ClusterError::NotFound {
                kind: "service",
                name: name.to_owned(),
                namespace: namespace.to_owned(),
            });
        };
        *last = Some(service.clone());
        match classify(service, min_generation) {
            WaitOutcome::Pending => {}
            settled => return Ok(settled),
        }
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(290);
        let stream = api
            .watch(&params, &resource_version)
            .await
            .map_err(|e| cluster.error(e, &format!("watching service {name:?}"), object))?;
        let mut stream = stream.boxed();
        loop {
            let event = match stream.try_next().await {
                Ok(Some(event)) => event,
                // The server ended the watch (timeout) or the stream broke:
                // start again from a fresh GET.
                Ok(None) | Err(_) => break,
            };
            match event {
                WatchEvent::Added(service) | WatchEvent::Modified(service) => {
                    *last = Some(service.clone());
                    match classify(service, min_generation) {
                        WaitOutcome::Pending => {}
                        settled => return Ok(settled),
                    }
                }
                WatchEvent::Deleted(_) => {
                    return Err(ClusterError::NotFound {
                        kind: "service",
                        name: name.to_owned(),
                        namespace: namespace.to_owned(),
                    });
                }
                WatchEvent::Bookmark(_) => {}
                // 410 Gone and other watch errors: re-list.
                WatchEvent::Error(_) => break,
            }
        }
    }
}

/// A Ready=False service as an error carrying its revision's details.
async fn not_ready(cluster: &Cluster, namespace: &str, service: &Service) -> ClusterError {
    let ready = service.ready_condition();
    ClusterError::NotReady {
        name: service.name().to_owned(),
        reason: ready
            .and_then(|c| c.reason.clone())
            .unwrap_or_else(|| "Unknown".into()),
        message: ready.and_then(|c| c.message.clone()).unwrap_or_default(),
        revision: revision_problems(cluster, namespace, service).await,
    }
}

/// "Ready=Unknown (Deploying: …)" for a timeout message.
fn describe_state(service: &Service) -> String {
    if !service.is_reconciled() {
        return format!(
            "the controller has not observed generation {} yet",
            service.metadata.generation.unwrap_or_default()
        );
    }
    match service.ready_condition() {
        Some(c) => {
            let mut text = format!("Ready={:?}", c.status);
            if let Some(reason) = &c.reason {
                text.push_str(&format!(" ({reason}"));
                if let Some(message) = &c.message {
                    text.push_str(&format!(": {message}"));
                }
                text.push(')');
            }
            text
        }
        None => "no Ready condition yet".into(),
    }
}

/// The latest created revision's False conditions, one per line, e.g.
/// "\n  revision hello-00002: ContainerHealthy=False ImagePullBackOff: …".
pub async fn revision_problems(cluster: &Cluster, namespace: &str, service: &Service) -> String {
    let Some(revision_name) = service
        .status
        .as_ref()
        .and_then(|s| s.latest_created_revision_name.clone())
    else {
        return String::new();
    };
    let Ok(Some(revision)) = cluster.revisions(namespace).get_opt(&revision_name).await else {
        return String::new();
    };
    let mut text = String::new();
    let mut shown: Vec<&str> = Vec::new();
    for condition in revision.conditions().iter().filter(|c| c.is_false()) {
        text.push_str(&format!(
            "\n  revision {revision_name}: {}=False",
            condition.type_
        ));
        if let Some(reason) = &condition.reason {
            text.push_str(&format!(" {reason}"));
        }
        // The same failure often sits in several conditions: say it once.
        if let Some(message) = condition.message.as_deref()
            && !shown.contains(&message)
        {
            text.push_str(&format!(": {message}"));
            shown.push(message);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use okonomi_knative::serving::{Condition, condition_type};
    use okonomi_knative::{ServiceSpec, ServiceStatus};

    use super::*;

    fn service(generation: i64, observed: Option<i64>, ready: Option<Condition>) -> Service {
        let mut service = Service::new("hello", ServiceSpec::default());
        service.metadata.generation = Some(generation);
        service.status = Some(ServiceStatus {
            observed_generation: observed,
            conditions: ready.into_iter().collect(),
            ..Default::default()
        });
        service
    }

    #[test]
    fn ready_counts_only_at_the_observed_generation() {
        let ready = Condition::true_(condition_type::READY);
        assert!(matches!(
            classify(service(2, Some(1), Some(ready.clone())), None),
            WaitOutcome::Pending
        ));
        assert!(matches!(
            classify(service(2, Some(2), Some(ready.clone())), None),
            WaitOutcome::Ready(_)
        ));
        // Our write produced generation 3: an older Ready does not count.
        assert!(matches!(
            classify(service(2, Some(2), Some(ready)), Some(3)),
            WaitOutcome::Pending
        ));
    }

    #[test]
    fn ready_false_fails_and_unknown_waits() {
        let failed =
            Condition::false_(condition_type::READY, "RevisionFailed", "image pull failed");
        assert!(matches!(
            classify(service(1, Some(1), Some(failed)), Some(1)),
            WaitOutcome::Failed(_)
        ));
        let unknown = Condition::unknown(condition_type::READY, "Deploying", "");
        assert!(matches!(
            classify(service(1, Some(1), Some(unknown)), Some(1)),
            WaitOutcome::Pending
        ));
        assert!(matches!(
            classify(service(1, Some(1), None), Some(1)),
            WaitOutcome::Pending
        ));
    }

    #[test]
    fn timeout_state_names_the_condition() {
        let unknown = Condition::unknown(
            condition_type::READY,
            "Deploying",
            "waiting for an instance",
        );
        assert_eq!(
            describe_state(&service(1, Some(1), Some(unknown))),
            "Ready=Unknown (Deploying: waiting for an instance)"
        );
        assert_eq!(
            describe_state(&service(2, Some(1), None)),
            "the controller has not observed generation 2 yet"
        );
    }
}
