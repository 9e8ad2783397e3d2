//! `okonomi logs NAME`: a function's logs, the serving container's logs
//! (`user-container` unless named) of the service's pods (label
//! `serving.knative.dev/service`) through the core API's `pods/log`. One code
//! path for every target: okonomi's engine serves Pods and their logs as a
//! cluster does.

use std::process::ExitCode;

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, LogParams};
use okonomi_knative::keys;

use crate::cluster::{Cluster, ClusterArgs};
use crate::global::Global;

const EXAMPLES: &str = "\
Examples:
  okonomi logs hello                 the last 100 lines of every instance
  okonomi logs hello --tail 20 -f    and follow
  okonomi logs hello --context gke";

/// Arguments of `okonomi logs`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The service name.
    pub name: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Lines to show from the end of each instance's log.
    #[arg(long, default_value_t = 100)]
    pub tail: usize,
    /// Keep streaming new lines.
    #[arg(short, long)]
    pub follow: bool,
}

/// Runs `okonomi logs`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let cluster = Cluster::connect(args.cluster.context.as_deref()).await?;
    let namespace = args
        .cluster
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    pod_logs(&cluster, &namespace, &args, global).await
}

async fn pod_logs(
    cluster: &Cluster,
    namespace: &str,
    args: &Args,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    let object = Some(("service", args.name.as_str(), namespace));
    let service = cluster
        .services(namespace)
        .get(&args.name)
        .await
        .map_err(|e| cluster.error(e, &format!("reading service {:?}", args.name), object))?;
    // Knative keeps the name okonomi gave the serving container (else
    // "user-container"); the queue-proxy beside it is not the function.
    let container = service
        .spec
        .template
        .spec
        .serving_container()
        .map(|c| c.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| keys::DEFAULT_CONTAINER_NAME.to_owned());
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!("{}={}", keys::SERVICE_LABEL, args.name)))
        .await
        .map_err(|e| cluster.error(e, &format!("listing the pods of {:?}", args.name), None))?;
    if list.items.is_empty() {
        global.status(
            "No pods",
            format!(
                "{namespace}/{} has no running instance (scaled to zero?)",
                args.name
            ),
        );
        return Ok(ExitCode::SUCCESS);
    }
    let params = LogParams {
        container: Some(container),
        follow: args.follow,
        tail_lines: Some(i64::try_from(args.tail).unwrap_or(i64::MAX)),
        ..Default::default()
    };
    let mut streams = Vec::new();
    for pod in &list.items {
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        let reader = pods
            .log_stream(&name, &params)
            .await
            .map_err(|e| cluster.error(e, &format!("reading the logs of pod {name:?}"), None))?;
        let prefix = name.clone();
        streams.push(
            reader
                .lines()
                .map(move |line| (prefix.clone(), line))
                .boxed(),
        );
    }
    let mut merged = futures::stream::select_all(streams);
    while let Some((pod, line)) = merged.next().await {
        match line {
            Ok(line) => println!("{pod} {line}"),
            Err(e) => global.warn(format!("log stream of {pod} ended: {e}")),
        }
    }
    Ok(ExitCode::SUCCESS)
}
