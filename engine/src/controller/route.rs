//! Route → traffic targets resolved to revisions, hosts in the data plane,
//! and the Route's status (url, address, traffic with tag URLs).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use okonomi_apiserver::ResourceType;
use okonomi_knative::serving::{condition_type, reason, set_condition};
use okonomi_knative::{
    Addressable, Condition, Conditions, Configuration, Revision, Route, RouteStatus, TrafficTarget,
};

use super::tracker::Reference;
use super::{Action, Context, ReconcileResult, decode, now, write_status};
use crate::dataplane::{Destination, Split};

/// Default request timeout (Knative's revision-timeout-seconds).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A traffic target resolved to a revision.
#[derive(Debug, Clone)]
struct Resolved {
    target: TrafficTarget,
    revision: Revision,
}

/// What a Route's traffic targets reference: the Configurations it follows
/// and the Revisions it names.
pub fn references(namespace: &str, route: &Route) -> Vec<Reference> {
    route
        .spec
        .traffic
        .iter()
        .flat_map(|target| {
            let configuration = target
                .configuration_name
                .as_deref()
                .map(|name| Reference::configuration(namespace, name));
            let revision = target
                .revision_name
                .as_deref()
                .map(|name| Reference::revision(namespace, name));
            configuration.into_iter().chain(revision)
        })
        .collect()
}

/// Reconciles one Route.
pub async fn reconcile(ctx: &Arc<Context>, namespace: &str, name: &str) -> ReconcileResult {
    let rt = ResourceType::knative_route();
    let stored = match ctx.store.get(&rt, namespace, name) {
        Ok(stored) => stored,
        Err(e) if e.is_not_found() => {
            ctx.queue
                .tracker()
                .forget((namespace.to_string(), name.to_string()));
            ctx.set_route_hosts(namespace, name, Vec::new());
            return Ok(Action::AwaitChange);
        }
        Err(e) => return Err(super::Error::api("reading", &rt, namespace, name, e)),
    };
    let route: Route = decode(stored.clone())?;
    // Every target, existing yet or not: a change to any of them reconciles
    // this Route again (Knative's TrackReference).
    ctx.queue.tracker().track(
        (namespace.to_string(), name.to_string()),
        references(namespace, &route),
    );
    let mut resolved = Vec::new();
    // (reason, message, whether a target failed rather than is pending).
    let mut missing: Option<(String, String, bool)> = None;
    for target in &route.spec.traffic {
        let revision_name = if let Some(revision) = &target.revision_name {
            Some(revision.clone())
        } else if let Some(configuration) = &target.configuration_name {
            match ctx.store.get(
                &ResourceType::knative_configuration(),
                namespace,
                configuration,
            ) {
                Ok(value) => {
                    let configuration: Configuration = decode(value)?;
                    let ready = configuration
                        .status
                        .as_ref()
                        .and_then(|s| s.latest_ready_revision_name.clone());
                    if ready.is_none() {
                        let failed = configuration
                            .status
                            .as_ref()
                            .and_then(|s| s.conditions.get_condition(condition_type::READY))
                            .filter(|c| c.is_false())
                            .and_then(|c| c.message.clone());
                        missing.get_or_insert((
                            reason::CONFIGURATION_MISSING.to_string(),
                            failed.unwrap_or_else(|| {
                                format!(
                                    "Configuration \"{}\" does not have any ready Revision.",
                                    configuration.name()
                                )
                            }),
                            false,
                        ));
                    }
                    ready
                }
                Err(_) => {
                    missing.get_or_insert((
                        reason::CONFIGURATION_MISSING.to_string(),
                        format!(
                            "Configuration \"{configuration}\" referenced in traffic not found."
                        ),
                        false,
                    ));
                    None
                }
            }
        } else {
            None
        };
        let Some(revision_name) = revision_name else {
            continue;
        };
        match ctx
            .store
            .get(&ResourceType::knative_revision(), namespace, &revision_name)
        {
            Ok(value) => {
                let revision: Revision = decode(value)?;
                // Like Knative, only a Ready revision is routed to: one not
                // ready yet keeps the Route waiting (Unknown), a failed one
                // fails it; what was routed before keeps being served.
                let ready = revision
                    .status
                    .as_ref()
                    .filter(|s| s.observed_generation == revision.metadata.generation)
                    .and_then(|s| s.conditions.get_condition(condition_type::READY));
                match ready {
                    Some(c) if c.is_true() => resolved.push(Resolved {
                        target: target.clone(),
                        revision,
                    }),
                    Some(c) if c.is_false() => {
                        let why = c.message.clone().unwrap_or_default();
                        missing.get_or_insert((
                            reason::REVISION_MISSING.to_string(),
                            format!("Revision \"{revision_name}\" failed to become ready: {why}"),
                            true,
                        ));
                    }
                    _ => {
                        missing.get_or_insert((
                            reason::REVISION_MISSING.to_string(),
                            format!("Revision \"{revision_name}\" is not yet ready."),
                            false,
                        ));
                    }
                }
            }
            Err(_) => {
                missing.get_or_insert((
                    reason::REVISION_MISSING.to_string(),
                    format!("Revision \"{revision_name}\" referenced in traffic not found."),
                    // Knative's MarkMissingTrafficTarget: False, so that a
                    // wait (kn's, okonomi's) stops at once with the reason.
                    true,
                ));
            }
        }
    }

    let domain_suffix = format!("{name}.{namespace}.{}", ctx.domain);
    let old = route.status.clone();
    let mut status: RouteStatus = old.clone().unwrap_or_default();
    status.observed_generation = route.metadata.generation;
    status.url = Some(ctx.url(&domain_suffix));
    status.address = Some(Addressable::url(&ctx.url(&domain_suffix)));
    let time = now();

    if let Some((why, message, failed)) = missing {
        status.traffic = Vec::new();
        let condition = |type_: &str| {
            if failed {
                Condition::false_(type_, &why, &message)
            } else {
                Condition::unknown(type_, &why, &message)
            }
        };
        set_condition(
            &mut status.conditions,
            condition(condition_type::ALL_TRAFFIC_ASSIGNED),
            time.clone(),
        );
        set_condition(
            &mut status.conditions,
            condition(condition_type::READY),
            time,
        );
        // Keep serving what was routed before until the new targets resolve.
        return write_status(ctx.store_ref(), &rt, &stored, old.as_ref(), &status).await;
    }

    // The data plane: the main host by percent, each tag at its own host.
    let mut main: BTreeMap<String, (Revision, u32)> = BTreeMap::new();
    let mut tagged: Vec<(String, String, Revision)> = Vec::new();
    let mut traffic = Vec::new();
    for Resolved { target, revision } in &resolved {
        let percent = target.percent.unwrap_or(0).clamp(0, 100) as u32;
        if percent > 0 {
            main.entry(revision.name().to_string())
                .or_insert_with(|| (revision.clone(), 0))
                .1 += percent;
        }
        let mut status_target = TrafficTarget {
            tag: target.tag.clone(),
            revision_name: Some(revision.name().to_string()),
            configuration_name: None,
            latest_revision: Some(target.latest_revision.unwrap_or(false)),
            percent: Some(i64::from(percent)),
            url: None,
        };
        if let Some(tag) = &target.tag {
            let host = format!("{tag}-{domain_suffix}");
            status_target.url = Some(ctx.url(&host));
            tagged.push((tag.clone(), host, revision.clone()));
        }
        traffic.push(status_target);
    }
    let destination = |revisions: Vec<(Revision, u32)>,
                       tags: HashMap<String, Arc<Destination>>|
     -> Arc<Destination> {
        let timeout = revisions
            .iter()
            .filter_map(|(r, _)| r.spec.timeout_seconds)
            .filter_map(|s| u64::try_from(s).ok())
            .max()
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TIMEOUT);
        Arc::new(Destination {
            splits: revisions
                .into_iter()
                .map(|(revision, percent)| Split {
                    throttler: ctx.revisions.ensure(&revision).throttler().clone(),
                    percent,
                })
                .collect(),
            timeout,
            tags,
        })
    };
    let mut hosts = Vec::new();
    let mut by_tag = HashMap::new();
    for (tag, host, revision) in tagged {
        let tagged = destination(vec![(revision, 100)], HashMap::new());
        by_tag.insert(tag, tagged.clone());
        hosts.push((host, tagged));
    }
    if !main.is_empty() {
        hosts.push((
            domain_suffix.clone(),
            destination(main.into_values().collect(), by_tag),
        ));
    }
    ctx.set_route_hosts(namespace, name, hosts);

    status.traffic = traffic;
    set_condition(
        &mut status.conditions,
        Condition::true_(condition_type::ALL_TRAFFIC_ASSIGNED),
        time.clone(),
    );
    set_condition(
        &mut status.conditions,
        Condition::true_(condition_type::INGRESS_READY),
        time.clone(),
    );
    set_condition(
        &mut status.conditions,
        Condition::true_(condition_type::READY),
        time,
    );
    write_status(ctx.store_ref(), &rt, &stored, old.as_ref(), &status).await
}
