//! Configuration → a Revision per template change, and the latest created
//! and latest ready revision names.

use std::sync::Arc;

use okonomi_apiserver::{ListOptions, ResourceType};
use okonomi_knative::serving::{condition_type, reason, set_condition};
use okonomi_knative::{Condition, Conditions, Configuration, ConfigurationStatus, Revision, keys};

use super::{Action, Context, ReconcileResult, decode, encode, now, owner_reference, write_status};

/// The name of the Revision for the Configuration's current generation:
/// the template's own name, or `NAME-00001`, `NAME-00002`, … (hashed to fit
/// 63 characters, as Knative does).
pub fn revision_name(configuration: &Configuration) -> String {
    if let Some(name) = configuration
        .spec
        .template
        .metadata
        .name
        .as_ref()
        .filter(|n| !n.is_empty())
    {
        return name.clone();
    }
    // Knative's kmeta.ChildName: a 63-character Configuration still gets a
    // valid revision name (truncated, with a hash).
    okonomi_knative::names::child_name(
        configuration.name(),
        &format!("-{:05}", configuration.metadata.generation.unwrap_or(1)),
    )
}

/// The Revision stamped from the Configuration's template (Knative's
/// `MakeRevision`).
pub fn make_revision(configuration: &Configuration) -> Revision {
    let template = &configuration.spec.template;
    let mut revision = Revision::new(&revision_name(configuration), template.spec.clone());
    revision.metadata.namespace = configuration.metadata.namespace.clone();
    let mut labels = template.metadata.labels.clone().unwrap_or_default();
    labels.insert(
        keys::CONFIGURATION_LABEL.to_string(),
        configuration.name().to_string(),
    );
    labels.insert(
        keys::CONFIGURATION_GENERATION_LABEL.to_string(),
        configuration.metadata.generation.unwrap_or(1).to_string(),
    );
    if let Some(uid) = &configuration.metadata.uid {
        labels.insert(keys::CONFIGURATION_UID_LABEL.to_string(), uid.clone());
    }
    let config_labels = configuration.metadata.labels.clone().unwrap_or_default();
    for key in [keys::SERVICE_LABEL, keys::SERVICE_UID_LABEL] {
        if let Some(value) = config_labels.get(key) {
            labels.insert(key.to_string(), value.clone());
        }
    }
    revision.metadata.labels = Some(labels);
    revision.metadata.annotations = template.metadata.annotations.clone();
    revision.metadata.owner_references = Some(vec![owner_reference(
        "Configuration",
        configuration.name(),
        configuration.metadata.uid.as_ref(),
    )]);
    revision
}

fn generation_of(revision: &Revision) -> i64 {
    revision
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(keys::CONFIGURATION_GENERATION_LABEL))
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

/// Reconciles one Configuration.
pub async fn reconcile(ctx: &Arc<Context>, namespace: &str, name: &str) -> ReconcileResult {
    let rt = ResourceType::knative_configuration();
    let revision_rt = ResourceType::knative_revision();
    let stored = match ctx.store.get(&rt, namespace, name) {
        Ok(stored) => stored,
        Err(e) if e.is_not_found() => return Ok(Action::AwaitChange),
        Err(e) => return Err(super::Error::api("reading", &rt, namespace, name, e)),
    };
    let configuration: Configuration = decode(stored.clone())?;
    let latest_name = revision_name(&configuration);
    let latest = match ctx.store.get(&revision_rt, namespace, &latest_name) {
        Ok(value) => decode::<Revision>(value)?,
        Err(e) if e.is_not_found() => {
            let created = ctx
                .store
                .create(&revision_rt, encode(&make_revision(&configuration))?)
                .await
                .map_err(|e| {
                    super::Error::api("creating", &revision_rt, namespace, &latest_name, e)
                })?;
            ctx.recorder.record(
                &super::events::InvolvedObject::of(&rt, &stored),
                super::events::EventType::Normal,
                "Created",
                &format!("Created Revision \"{latest_name}\""),
                "configuration-controller",
            );
            decode(created)?
        }
        Err(e) => {
            return Err(super::Error::api(
                "reading",
                &revision_rt,
                namespace,
                &latest_name,
                e,
            ));
        }
    };

    let revisions: Vec<Revision> = ctx
        .store
        .list(
            &revision_rt,
            &ListOptions::namespace(namespace)
                .labels(format!("{}={name}", keys::CONFIGURATION_LABEL)),
        )
        .map_err(|source| super::Error::List {
            kind: revision_rt.kind.clone(),
            namespace: namespace.to_string(),
            source: Box::new(source),
        })?
        .items
        .into_iter()
        .filter_map(|v| decode::<Revision>(v).ok())
        .collect();
    let latest_ready = revisions
        .iter()
        .filter(|r| r.status.as_ref().is_some_and(|s| s.conditions.is_ready()))
        .max_by_key(|r| generation_of(r))
        .map(|r| r.name().to_string());

    let old = configuration.status.clone();
    let mut status: ConfigurationStatus = old.clone().unwrap_or_default();
    status.observed_generation = configuration.metadata.generation;
    status.latest_created_revision_name = Some(latest_name.clone());
    // latestReady never goes back to an older revision than it had.
    status.latest_ready_revision_name = latest_ready.or(status.latest_ready_revision_name);

    let latest_ready_condition = latest
        .status
        .as_ref()
        .and_then(|s| s.conditions.get_condition(condition_type::READY).cloned());
    let ready = match latest_ready_condition {
        Some(c) if c.is_true() => Condition::true_(condition_type::READY),
        Some(c) if c.is_false() => Condition::false_(
            condition_type::READY,
            reason::REVISION_FAILED,
            &format!(
                "Revision \"{latest_name}\" failed with message: {}.",
                c.message.as_deref().unwrap_or("no message")
            ),
        ),
        _ => Condition::unknown(
            condition_type::READY,
            reason::DEPLOYING,
            &format!("Revision \"{latest_name}\" is not ready yet"),
        ),
    };
    set_condition(&mut status.conditions, ready, now());
    write_status(ctx.store_ref(), &rt, &stored, old.as_ref(), &status).await
}
