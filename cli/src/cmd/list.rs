//! `okonomi list`: the Knative Services of a namespace (or all), with URL,
//! latest revision and readiness, as `kn service list` shows them.

use std::process::ExitCode;

use kube::api::ListParams;
use okonomi_knative::{KnativeObject, Service};
use serde::Serialize;

use crate::cluster::{Cluster, ClusterArgs};
use crate::global::Global;

const EXAMPLES: &str = "\
Examples:
  okonomi list                      services in the context's namespace
  okonomi list -A                   every namespace
  okonomi list --context gke -o yaml";

/// Arguments of `okonomi list`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// List services in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// One row of `okonomi list`.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRow {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// URL, once routed.
    pub url: Option<String>,
    /// Latest created revision.
    pub latest_created: Option<String>,
    /// Latest ready revision.
    pub latest_ready: Option<String>,
    /// "True", "False" or "Unknown".
    pub ready: String,
    /// Reason of a Ready condition that is not True.
    pub reason: Option<String>,
}

impl ServiceRow {
    /// The row for one Service.
    pub fn of(service: &Service) -> Self {
        let status = service.status.as_ref();
        let ready = service.ready_condition();
        Self {
            namespace: service.namespace().to_owned(),
            name: service.name().to_owned(),
            url: status.and_then(|s| s.url.clone()),
            latest_created: status.and_then(|s| s.latest_created_revision_name.clone()),
            latest_ready: status.and_then(|s| s.latest_ready_revision_name.clone()),
            ready: ready
                .map(|c| format!("{:?}", c.status))
                .unwrap_or_else(|| "Unknown".into()),
            reason: ready
                .filter(|c| !c.is_true())
                .and_then(|c| c.reason.clone()),
        }
    }
}

/// Runs `okonomi list`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let cluster = Cluster::connect(args.cluster.context.as_deref()).await?;
    cluster.ensure_knative().await?;
    let namespace = args
        .cluster
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let api = if args.all_namespaces {
        cluster.all_services()
    } else {
        cluster.ensure_namespace(&namespace).await?;
        cluster.services(&namespace)
    };
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| cluster.error(e, "listing services", None))?;
    let mut rows: Vec<ServiceRow> = list.items.iter().map(ServiceRow::of).collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let all = args.all_namespaces;
    crate::output::print(global, &rows, |rows| table(rows, all))?;
    if rows.is_empty() && global.output == crate::global::Format::Text {
        global.status(
            "Empty",
            format!(
                "no services in {}",
                if all {
                    "any namespace".into()
                } else {
                    format!("namespace {namespace:?}")
                }
            ),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Aligned text columns, kn style.
fn table(rows: &[ServiceRow], with_namespace: bool) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["NAME", "URL", "LATEST", "READY", "REASON"];
    if with_namespace {
        header.insert(0, "NAMESPACE");
    }
    lines.push(header.iter().map(|s| s.to_string()).collect());
    for row in rows {
        let mut cells = vec![
            row.name.clone(),
            row.url.clone().unwrap_or_default(),
            row.latest_created.clone().unwrap_or_default(),
            row.ready.clone(),
            row.reason.clone().unwrap_or_default(),
        ];
        if with_namespace {
            cells.insert(0, row.namespace.clone());
        }
        lines.push(cells);
    }
    align(&lines)
}

/// Pads every column to its widest cell.
pub fn align(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            lines
                .iter()
                .filter_map(|l| l.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    lines
        .iter()
        .map(|line| {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                if i + 1 == line.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(&format!("{cell:<width$}   ", width = widths[i]));
                }
            }
            text.trim_end().to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
