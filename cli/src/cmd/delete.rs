//! `okonomi delete NAME`: delete a Knative Service (its Configuration,
//! Route and Revisions go with it) and wait until it is gone, as
//! `kubectl delete` does.

use std::process::ExitCode;
use std::time::Duration;

use kube::api::{DeleteParams, PropagationPolicy};

use crate::cluster::{Cluster, ClusterArgs, ClusterError};
use crate::global::Global;

/// Arguments of `okonomi delete`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service names.
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Return without waiting for the service to disappear.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait for it to disappear.
    #[arg(long, default_value = "120s", value_parser = crate::duration::parse)]
    pub timeout: Duration,
}

/// Runs `okonomi delete`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let cluster = Cluster::connect(args.cluster.context.as_deref()).await?;
    cluster.ensure_knative().await?;
    let namespace = args
        .cluster
        .namespace
        .clone()
        .unwrap_or_else(|| cluster.default_namespace.clone());
    let api = cluster.services(&namespace);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    for name in &args.names {
        let object = Some(("service", name.as_str(), namespace.as_str()));
        api.delete(name, &params)
            .await
            .map_err(|e| cluster.error(e, &format!("deleting service {name:?}"), object))?;
        if !args.no_wait {
            let gone = tokio::time::timeout(args.timeout, async {
                loop {
                    match api.get_opt(name).await {
                        Ok(None) => return Ok(()),
                        Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                        Err(e) => {
                            return Err(cluster.error(
                                e,
                                &format!("reading service {name:?}"),
                                object,
                            ));
                        }
                    }
                }
            })
            .await;
            match gone {
                Ok(result) => result?,
                Err(_) => {
                    return Err(ClusterError::Timeout {
                        name: name.clone(),
                        after: args.timeout,
                        state: "it is still there after the delete".into(),
                        revision: String::new(),
                    }
                    .into());
                }
            }
        }
        global.status("Deleted", format!("service {namespace}/{name}"));
    }
    Ok(ExitCode::SUCCESS)
}
