//! Service → a Configuration and a Route of the same name, and the
//! Service's status folded from theirs.

use std::collections::BTreeMap;
use std::sync::Arc;

use okonomi_apiserver::ResourceType;
use okonomi_knative::serving::{condition_type, reason, set_condition};
use okonomi_knative::{
    Condition, Conditions, Configuration, ConfigurationSpec, Route, RouteSpec, Service,
    ServiceStatus, TrafficTarget, keys,
};

use super::{Action, Context, ReconcileResult, decode, encode, now, owner_reference, write_status};

/// Annotations that describe the Service object itself and are not copied
/// to its children.
const NOT_INHERITED: [&str; 1] = ["kubectl.kubernetes.io/last-applied-configuration"];

fn child_metadata(service: &Service) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    labels.insert(keys::SERVICE_LABEL.to_string(), service.name().to_string());
    if let Some(uid) = &service.metadata.uid {
        labels.insert(keys::SERVICE_UID_LABEL.to_string(), uid.clone());
    }
    let mut annotations = service.metadata.annotations.clone().unwrap_or_default();
    for key in NOT_INHERITED {
        annotations.remove(key);
    }
    (labels, annotations)
}

/// The Configuration a Service owns (Knative's `MakeConfiguration`).
pub fn make_configuration(service: &Service) -> Configuration {
    let (labels, annotations) = child_metadata(service);
    let mut configuration = Configuration::new(service.name(), service.spec.configuration_spec());
    configuration.metadata.namespace = service.metadata.namespace.clone();
    configuration.metadata.labels = Some(labels);
    configuration.metadata.annotations = Some(annotations);
    configuration.metadata.owner_references = Some(vec![owner_reference(
        "Service",
        service.name(),
        service.metadata.uid.as_ref(),
    )]);
    configuration
}

/// The Route a Service owns (Knative's `MakeRoute`): traffic defaults to
/// 100% latest, and latest-revision targets follow the Service's
/// Configuration.
pub fn make_route(service: &Service) -> Route {
    let (labels, annotations) = child_metadata(service);
    let mut traffic = service.spec.route_spec().traffic;
    if traffic.is_empty() {
        traffic.push(TrafficTarget::latest(100));
    }
    for target in &mut traffic {
        if target.revision_name.is_none() || target.latest_revision == Some(true) {
            target.configuration_name = Some(service.name().to_string());
            target.latest_revision = Some(true);
            target.revision_name = None;
        }
    }
    let mut route = Route::new(service.name(), RouteSpec { traffic });
    route.metadata.namespace = service.metadata.namespace.clone();
    route.metadata.labels = Some(labels);
    route.metadata.annotations = Some(annotations);
    route.metadata.owner_references = Some(vec![owner_reference(
        "Service",
        service.name(),
        service.metadata.uid.as_ref(),
    )]);
    route
}

/// Creates `desired` (with the `Created` Event on `parent` that Knative's
/// service controller records) or updates the stored object's spec, labels
/// and annotations when they differ. Returns the stored object.
async fn apply_child<T>(
    ctx: &Context,
    parent: &super::events::InvolvedObject,
    rt: &ResourceType,
    namespace: &str,
    desired: &T,
    same: impl Fn(&T, &T) -> bool,
    merge: impl Fn(&mut T, &T),
) -> Result<T, super::Error>
where
    T: serde::Serialize + serde::de::DeserializeOwned + okonomi_knative::KnativeObject,
{
    let name = desired.metadata().name.clone().unwrap_or_default();
    match ctx.store.get(rt, namespace, &name) {
        Ok(value) => {
            let mut existing: T = decode(value)?;
            if same(&existing, desired) {
                return Ok(existing);
            }
            merge(&mut existing, desired);
            let stored = ctx
                .store
                .update(rt, encode(&existing)?)
                .await
                .map_err(|e| super::Error::api("updating", rt, namespace, &name, e))?;
            decode(stored)
        }
        Err(e) if e.is_not_found() => {
            let stored = ctx
                .store
                .create(rt, encode(desired)?)
                .await
                .map_err(|e| super::Error::api("creating", rt, namespace, &name, e))?;
            ctx.recorder.record(
                parent,
                super::events::EventType::Normal,
                "Created",
                &format!("Created {} {name:?}", rt.kind),
                "service-controller",
            );
            decode(stored)
        }
        Err(e) => Err(super::Error::api("reading", rt, namespace, &name, e)),
    }
}

/// Reconciles one Service.
pub async fn reconcile(ctx: &Arc<Context>, namespace: &str, name: &str) -> ReconcileResult {
    let rt = ResourceType::knative_service();
    let stored = match ctx.store.get(&rt, namespace, name) {
        Ok(stored) => stored,
        Err(e) if e.is_not_found() => return Ok(Action::AwaitChange),
        Err(e) => return Err(super::Error::api("reading", &rt, namespace, name, e)),
    };
    let service: Service = decode(stored.clone())?;

    let parent = super::events::InvolvedObject::of(&rt, &stored);
    let desired_cfg = make_configuration(&service);
    let configuration = apply_child(
        ctx,
        &parent,
        &ResourceType::knative_configuration(),
        namespace,
        &desired_cfg,
        |a, b| {
            a.spec == b.spec
                && a.metadata.labels == b.metadata.labels
                && a.metadata.annotations == b.metadata.annotations
        },
        |a, b| {
            a.spec = ConfigurationSpec {
                template: b.spec.template.clone(),
            };
            a.metadata.labels = b.metadata.labels.clone();
            a.metadata.annotations = b.metadata.annotations.clone();
        },
    )
    .await?;
    let desired_route = make_route(&service);
    let route = apply_child(
        ctx,
        &parent,
        &ResourceType::knative_route(),
        namespace,
        &desired_route,
        |a, b| {
            a.spec == b.spec
                && a.metadata.labels == b.metadata.labels
                && a.metadata.annotations == b.metadata.annotations
        },
        |a, b| {
            a.spec = b.spec.clone();
            a.metadata.labels = b.metadata.labels.clone();
            a.metadata.annotations = b.metadata.annotations.clone();
        },
    )
    .await?;

    let old = service.status.clone();
    let mut status = old.clone().unwrap_or_default();
    status.observed_generation = service.metadata.generation;
    let time = now();

    // ConfigurationsReady mirrors the Configuration's Ready once it has seen
    // the current spec.
    let cfg_status = configuration.status.clone().unwrap_or_default();
    let cfg_current = cfg_status.observed_generation == configuration.metadata.generation;
    let cfg_condition = match cfg_status.conditions.get_condition(condition_type::READY) {
        Some(c) if cfg_current => Condition {
            type_: condition_type::CONFIGURATIONS_READY.to_string(),
            last_transition_time: None,
            ..c.clone()
        },
        _ => Condition::unknown(
            condition_type::CONFIGURATIONS_READY,
            reason::OUTDATED_GENERATION,
            "the Configuration has not been reconciled yet",
        ),
    };
    status.set_configuration_fields(&cfg_status);

    let route_status = route.status.clone().unwrap_or_default();
    let route_current = route_status.observed_generation == route.metadata.generation;
    // Like Knative: the Route is not ready for the Service until every
    // latest-revision target points at the Configuration's latest ready one.
    let migrated = route_status
        .traffic
        .iter()
        .filter(|t| t.latest_revision == Some(true))
        .all(|t| t.revision_name == cfg_status.latest_ready_revision_name);
    let route_condition = match route_status.conditions.get_condition(condition_type::READY) {
        Some(c) if route_current && c.is_true() && !migrated => Condition::unknown(
            condition_type::ROUTES_READY,
            "TrafficNotMigrated",
            "traffic is not yet migrated to the latest ready revision",
        ),
        Some(c) if route_current => Condition {
            type_: condition_type::ROUTES_READY.to_string(),
            last_transition_time: None,
            ..c.clone()
        },
        _ => Condition::unknown(
            condition_type::ROUTES_READY,
            reason::OUTDATED_GENERATION,
            "the Route has not been reconciled yet",
        ),
    };
    if route_current {
        status.set_route_fields(&route_status);
    }
    let ready = if cfg_condition.is_false() {
        Condition {
            type_: condition_type::READY.to_string(),
            ..cfg_condition.clone()
        }
    } else if route_condition.is_false() {
        Condition {
            type_: condition_type::READY.to_string(),
            ..route_condition.clone()
        }
    } else if cfg_condition.is_true() && route_condition.is_true() {
        Condition::true_(condition_type::READY)
    } else {
        let pending = if cfg_condition.is_true() {
            &route_condition
        } else {
            &cfg_condition
        };
        Condition::unknown(
            condition_type::READY,
            pending.reason.as_deref().unwrap_or(reason::DEPLOYING),
            pending.message.as_deref().unwrap_or(""),
        )
    };
    set_condition(&mut status.conditions, cfg_condition, time.clone());
    set_condition(&mut status.conditions, route_condition, time.clone());
    set_condition(&mut status.conditions, ready, time);
    write_status::<ServiceStatus>(ctx.store_ref(), &rt, &stored, old.as_ref(), &status).await
}

impl Context {
    /// The store, for helpers taking `&Store`.
    pub fn store_ref(&self) -> &okonomi_apiserver::Store {
        &self.store
    }
}
