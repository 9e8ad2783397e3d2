//! `okonomi describe NAME`: a Service's URL, traffic split, conditions and
//! revisions (found by the `serving.knative.dev/service` label, as `kn
//! service describe` finds them).

use std::process::ExitCode;

use kube::api::ListParams;
use okonomi_knative::{Condition, KnativeObject, Revision, Service, TrafficTarget, keys};
use serde::Serialize;

use crate::cluster::{Cluster, ClusterArgs};
use crate::cmd::list::align;
use crate::global::Global;

/// Arguments of `okonomi describe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service name.
    pub name: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Everything `describe` shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Description {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// The external URL.
    pub url: Option<String>,
    /// The cluster-local URL.
    pub address: Option<String>,
    /// metadata.generation.
    pub generation: Option<i64>,
    /// status.observedGeneration.
    pub observed_generation: Option<i64>,
    /// The resolved traffic split.
    pub traffic: Vec<TrafficTarget>,
    /// The Service's conditions.
    pub conditions: Vec<Condition>,
    /// Its revisions, newest first.
    pub revisions: Vec<RevisionSummary>,
}

/// One revision in `describe`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSummary {
    /// Revision name.
    pub name: String,
    /// The Configuration generation that stamped it.
    pub configuration_generation: Option<i64>,
    /// The serving container's image.
    pub image: Option<String>,
    /// Share of traffic it gets now (summed over targets).
    pub percent: i64,
    /// Tags pointing at it.
    pub tags: Vec<String>,
    /// Ready status.
    pub ready: String,
    /// Its conditions.
    pub conditions: Vec<Condition>,
    /// Instances running, where the cluster reports it.
    pub actual_replicas: Option<i32>,
}

/// Runs `okonomi describe`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let cluster = Cluster::connect(args.cluster.context.as_deref()).await?;
    cluster.ensure_knative().await?;
    let namespace = args
        .cluster
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let description = describe(&cluster, &namespace, &args.name).await?;
    crate::output::print(global, &description, text)?;
    Ok(ExitCode::SUCCESS)
}

/// Reads the Service and its revisions.
pub async fn describe(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> anyhow::Result<Description> {
    let object = Some(("service", name, namespace));
    let service = cluster
        .services(namespace)
        .get(name)
        .await
        .map_err(|e| cluster.error(e, &format!("reading service {name:?}"), object))?;
    let revisions = cluster
        .revisions(namespace)
        .list(&ListParams::default().labels(&format!("{}={name}", keys::SERVICE_LABEL)))
        .await
        .map_err(|e| cluster.error(e, &format!("listing revisions of {name:?}"), None))?;
    Ok(summarise(&service, revisions.items))
}

/// Puts a Service and its revisions together (pure, for tests).
pub fn summarise(service: &Service, mut revisions: Vec<Revision>) -> Description {
    let status = service.status.clone().unwrap_or_default();
    revisions.sort_by_key(|r| std::cmp::Reverse(generation_of(r)));
    let revisions = revisions
        .iter()
        .map(|revision| {
            let targets: Vec<&TrafficTarget> = status
                .traffic
                .iter()
                .filter(|t| t.revision_name.as_deref() == Some(revision.name()))
                .collect();
            RevisionSummary {
                name: revision.name().to_owned(),
                configuration_generation: generation_of(revision),
                image: revision
                    .spec
                    .serving_container()
                    .and_then(|c| c.image.clone()),
                percent: targets.iter().filter_map(|t| t.percent).sum(),
                tags: targets.iter().filter_map(|t| t.tag.clone()).collect(),
                ready: revision
                    .ready_condition()
                    .map(|c| format!("{:?}", c.status))
                    .unwrap_or_else(|| "Unknown".into()),
                conditions: revision.conditions().to_vec(),
                actual_replicas: revision.status.as_ref().and_then(|s| s.actual_replicas),
            }
        })
        .collect();
    Description {
        name: service.name().to_owned(),
        namespace: service.namespace().to_owned(),
        url: status.url.clone(),
        address: status.address.as_ref().and_then(|a| a.url.clone()),
        generation: service.metadata.generation,
        observed_generation: status.observed_generation,
        traffic: status.traffic.clone(),
        conditions: status.conditions.clone(),
        revisions,
    }
}

fn generation_of(revision: &Revision) -> Option<i64> {
    revision
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(keys::CONFIGURATION_GENERATION_LABEL))
        .and_then(|g| g.parse().ok())
}

fn text(d: &Description) -> String {
    let mut out = String::new();
    out.push_str(&format!("Name:        {}\n", d.name));
    out.push_str(&format!("Namespace:   {}\n", d.namespace));
    out.push_str(&format!(
        "URL:         {}\n",
        d.url.as_deref().unwrap_or("-")
    ));
    if let Some(address) = &d.address {
        out.push_str(&format!("Cluster URL: {address}\n"));
    }
    out.push_str(&format!(
        "Generation:  {} (observed {})\n",
        d.generation
            .map(|g| g.to_string())
            .unwrap_or_else(|| "-".into()),
        d.observed_generation
            .map(|g| g.to_string())
            .unwrap_or_else(|| "-".into())
    ));
    out.push_str("\nTraffic:\n");
    let mut rows = vec![vec![
        "PERCENT".to_string(),
        "REVISION".into(),
        "TAG".into(),
        "URL".into(),
    ]];
    for t in &d.traffic {
        let revision = match (&t.revision_name, t.latest_revision) {
            (Some(name), Some(true)) => format!("@latest ({name})"),
            (Some(name), _) => name.clone(),
            (None, _) => "@latest".into(),
        };
        rows.push(vec![
            format!("{}%", t.percent.unwrap_or(0)),
            revision,
            t.tag.clone().unwrap_or_default(),
            t.url.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&indent(&align(&rows)));
    out.push_str("\n\nRevisions:\n");
    let mut rows = vec![vec![
        "NAME".to_string(),
        "GEN".into(),
        "TRAFFIC".into(),
        "TAGS".into(),
        "READY".into(),
        "IMAGE".into(),
    ]];
    for r in &d.revisions {
        rows.push(vec![
            r.name.clone(),
            r.configuration_generation
                .map(|g| g.to_string())
                .unwrap_or_default(),
            format!("{}%", r.percent),
            r.tags.join(","),
            r.ready.clone(),
            r.image.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&indent(&align(&rows)));
    out.push_str("\n\nConditions:\n");
    let mut rows = vec![vec![
        "TYPE".to_string(),
        "STATUS".into(),
        "REASON".into(),
        "MESSAGE".into(),
    ]];
    for c in &d.conditions {
        rows.push(vec![
            c.type_.clone(),
            format!("{:?}", c.status),
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&indent(&align(&rows)));
    out
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
