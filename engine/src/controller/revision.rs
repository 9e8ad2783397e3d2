//! Revision → a running pool, and the revision's status from it: Ready when
//! an instance answered its readiness probe, Ready=False with the reason and
//! the tail of the logs when instances fail, Active=False at zero. A revision
//! whose environment needs objects the engine does not have (ConfigMaps,
//! Secrets, the downward API) never runs: it is Ready=False at once, naming
//! the variable and what to write instead.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Container;
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

/// The reason of a revision whose container configuration cannot be made
/// (Kubernetes' own reason when a ConfigMap or Secret an env var needs is
/// missing).
pub const CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";

/// Why no instance of `revision` may run on the engine, if none may: the
/// first of its containers whose environment cannot be set up (see
/// [`unsupported_env`]). Known from the spec alone, before any status.
pub fn config_error(revision: &Revision) -> Option<String> {
    let namespace = revision.metadata.namespace.as_deref().unwrap_or("default");
    revision
        .spec
        .pod_spec
        .containers
        .iter()
        .find_map(|c| unsupported_env(namespace, c))
}

/// Why `container`'s environment cannot be set up on the engine, if it
/// cannot: an `env[].valueFrom` or `envFrom` source that must exist (not
/// `optional: true`). The engine has no ConfigMaps, Secrets or pods, so
/// there is nothing to take values from; an optional reference is left
/// unset, as Kubernetes does when the object is missing.
pub fn unsupported_env(namespace: &str, container: &Container) -> Option<String> {
    let instead = "The okonomi engine has no ConfigMaps, Secrets or pods to read it from: \
                   give the variable a literal `value` instead (okonomi.toml's [env] \
                   renders as such), or mark the reference `optional: true` to leave it unset";
    for env in container.env.iter().flatten() {
        let Some(source) = &env.value_from else {
            continue;
        };
        let name = &env.name;
        let from = if let Some(key) = &source.config_map_key_ref {
            if key.optional == Some(true) {
                continue;
            }
            format!(
                "key {:?} of ConfigMap {:?} (valueFrom.configMapKeyRef)",
                key.key, key.name
            )
        } else if let Some(key) = &source.secret_key_ref {
            if key.optional == Some(true) {
                continue;
            }
            format!(
                "key {:?} of Secret {:?} (valueFrom.secretKeyRef)",
                key.key, key.name
            )
        } else if let Some(field) = &source.field_ref {
            let hint = match field.field_path.as_str() {
                "metadata.namespace" => {
                    format!("; here it would be {namespace:?}, so write `value: {namespace}`")
                }
                _ => String::new(),
            };
            return Some(format!(
                "environment variable {name:?} takes its value from the pod field {:?} \
                 (valueFrom.fieldRef), but the okonomi engine runs no pods{hint}. \
                 K_SERVICE, K_CONFIGURATION and K_REVISION are set in every instance; \
                 otherwise give {name:?} a literal `value`",
                field.field_path
            ));
        } else if let Some(resource) = &source.resource_field_ref {
            return Some(format!(
                "environment variable {name:?} takes its value from the container resource \
                 {:?} (valueFrom.resourceFieldRef), but the okonomi engine sets no resource \
                 limits: give {name:?} a literal `value` instead",
                resource.resource
            ));
        } else {
            return Some(format!(
                "environment variable {name:?} has an empty valueFrom: give it a literal \
                 `value` instead"
            ));
        };
        return Some(format!(
            "environment variable {name:?} takes its value from {from}. {instead}"
        ));
    }
    for source in container.env_from.iter().flatten() {
        let from = if let Some(config_map) = &source.config_map_ref {
            if config_map.optional == Some(true) {
                continue;
            }
            format!("every key of ConfigMap {:?}", config_map.name)
        } else if let Some(secret) = &source.secret_ref {
            if secret.optional == Some(true) {
                continue;
            }
            format!("every key of Secret {:?}", secret.name)
        } else {
            continue;
        };
        return Some(format!(
            "envFrom takes the environment variables from {from}. {instead}"
        ));
    }
    None
}

/// The conditions of a revision that cannot run because of `message`.
pub fn config_error_conditions(message: &str) -> Vec<Condition> {
    vec![
        Condition::false_(condition_type::READY, CONTAINER_CONFIG_ERROR, message),
        Condition::false_(
            condition_type::RESOURCES_AVAILABLE,
            CONTAINER_CONFIG_ERROR,
            message,
        ),
        Condition::unknown(
            condition_type::CONTAINER_HEALTHY,
            CONTAINER_CONFIG_ERROR,
            "the container was not started",
        ),
        Condition::false_(
            condition_type::ACTIVE,
            CONTAINER_CONFIG_ERROR,
            "the container was not started",
        ),
    ]
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
    if let Some(message) = config_error(&revision) {
        // No pool: its instances would run without the variable.
        let old = revision.status.clone();
        let mut status: RevisionStatus = old.clone().unwrap_or_default();
        let time = now();
        for condition in config_error_conditions(&message) {
            set_condition(&mut status.conditions, condition, time.clone());
        }
        status.observed_generation = revision.metadata.generation;
        status.actual_replicas = Some(0);
        status.desired_replicas = Some(0);
        return write_status(ctx.store_ref(), &rt, &stored, old.as_ref(), &status).await;
    }
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

    fn container(env: serde_json::Value) -> Container {
        serde_json::from_value(serde_json::json!({"name": "user-container", "env": env})).unwrap()
    }

    #[test]
    fn a_secret_in_the_environment_names_the_variable_and_the_way_out() {
        let c = container(serde_json::json!([
            {"name": "PLAIN", "value": "1"},
            {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
        ]));
        let message = unsupported_env("default", &c).unwrap();
        assert!(message.contains("\"DATABASE_URL\""), "{message}");
        assert!(message.contains("Secret \"db\""), "{message}");
        assert!(message.contains("`value`"), "{message}");
        let conditions = config_error_conditions(&message);
        let ready = conditions.get_condition("Ready").unwrap();
        assert!(ready.is_false());
        assert_eq!(ready.reason.as_deref(), Some(CONTAINER_CONFIG_ERROR));
        assert_eq!(ready.message.as_deref(), Some(message.as_str()));
    }

    #[test]
    fn each_kind_of_source_is_explained_and_optional_ones_are_left_unset() {
        let message = |env| unsupported_env("shop", &container(env));
        let config_map = message(serde_json::json!([
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}
        ]))
        .unwrap();
        assert!(
            config_map.contains("ConfigMap \"settings\""),
            "{config_map}"
        );
        let namespace = message(serde_json::json!([
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
        ]))
        .unwrap();
        assert!(namespace.contains("`value: shop`"), "{namespace}");
        let resource = message(serde_json::json!([
            {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}
        ]))
        .unwrap();
        assert!(resource.contains("\"CPUS\""), "{resource}");
        // Optional references to missing objects stay unset, as in Kubernetes.
        assert_eq!(
            message(serde_json::json!([
                {"name": "MODE", "valueFrom": {"configMapKeyRef":
                    {"name": "settings", "key": "mode", "optional": true}}}
            ])),
            None
        );
        assert_eq!(
            message(serde_json::json!([{"name": "A", "value": "b"}])),
            None
        );
        let env_from: Container = serde_json::from_value(serde_json::json!({
            "name": "user-container",
            "envFrom": [{"secretRef": {"name": "creds"}}],
        }))
        .unwrap();
        let from = unsupported_env("default", &env_from).unwrap();
        assert!(from.contains("Secret \"creds\""), "{from}");
    }
}
