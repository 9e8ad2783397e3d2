//! Revision → a running pool, and the revision's status from it: Ready when
//! an instance answered its readiness probe, Ready=False with the reason and
//! the tail of the logs when instances fail, Active=False at zero.

use std::sync::Arc;

use okonomi_apiserver::ResourceType;
use okonomi_knative::serving::{condition_type, reason, set_condition};
use okonomi_knative::{Condition, Revision, RevisionStatus};

use super::{Context, ReconcileResult, decode, now, write_status};
use crate::pool::PoolStatus;

/// The conditions a pool status means for its revision.
pub fn conditions(pool: &PoolStatus, previously_ready: bool) -> Vec<Condition> {
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

/// Reconciles one Revision.
pub async fn reconcile(ctx: &Arc<Context>, namespace: &str, name: &str) -> ReconcileResult {
    let rt = ResourceType::knative_revision();
    let stored = match ctx.store.get(&rt, namespace, name) {
        Ok(stored) => stored,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    let revision: Revision = decode(stored.clone())?;
    let pool = ctx.workloads.ensure(&revision);
    let pool_status = pool.status();
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
    status.actual_replicas = Some(pool_status.ready as i32);
    status.desired_replicas = Some(pool_status.desired as i32);
    write_status(ctx.store_ref(), &rt, &stored, old.as_ref(), &status).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use okonomi_knative::Conditions;

    #[test]
    fn a_revision_that_never_started_is_not_ready_with_the_reason() {
        let status = PoolStatus {
            ready: 0,
            desired: 1,
            ever_ready: false,
            starts_at_zero: false,
            failure: Some((
                "ExitedBeforeReady".into(),
                "exit status: 3; last log lines:\nboom".into(),
            )),
        };
        let conditions = conditions(&status, false);
        let ready = conditions.get_condition("Ready").unwrap();
        assert!(ready.is_false());
        assert_eq!(ready.reason.as_deref(), Some("ExitedBeforeReady"));
        assert!(ready.message.as_deref().unwrap().contains("boom"));
    }

    #[test]
    fn a_revision_at_zero_stays_ready_but_inactive() {
        let status = PoolStatus {
            ready: 0,
            desired: 0,
            ever_ready: true,
            starts_at_zero: false,
            failure: None,
        };
        let conditions = conditions(&status, true);
        assert!(conditions.is_ready());
        assert!(conditions.get_condition("Active").unwrap().is_false());
    }
}
