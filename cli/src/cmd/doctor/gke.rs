//! Pull rights on GKE: the node service account's Artifact Registry role,
//! read with gcloud (the only cloud where doctor checks them rather than
//! advising).

use std::path::PathBuf;

use okonomi_knative::FunctionManifest;

use super::{CHECK_TIMEOUT, Finding};
use crate::cluster::Cluster;

/// Why a gcloud call told doctor nothing.
#[derive(Debug, thiserror::Error)]
pub enum GcloudError {
    /// gcloud ran and failed.
    #[error("`gcloud {command}` failed: {stderr}")]
    Failed {
        /// The arguments.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// gcloud could not be started.
    #[error("cannot run gcloud: {0}")]
    Spawn(#[source] std::io::Error),
    /// gcloud did not finish in time.
    #[error("`gcloud {command}` took longer than {seconds}s")]
    Timeout {
        /// The arguments.
        command: String,
        /// The limit.
        seconds: u64,
    },
}

/// Roles that let a service account pull from Artifact Registry.
const AR_PULL_ROLES: [&str; 6] = [
    "roles/artifactregistry.reader",
    "roles/artifactregistry.writer",
    "roles/artifactregistry.repoAdmin",
    "roles/artifactregistry.admin",
    "roles/editor",
    "roles/owner",
];

/// The role of `member` (`serviceAccount:EMAIL`) in an IAM policy
/// (`gcloud … get-iam-policy --format=json`) that lets it pull, if any.
pub fn pull_role(policy: &serde_json::Value, member: &str) -> Option<String> {
    policy["bindings"].as_array()?.iter().find_map(|binding| {
        let role = binding["role"].as_str()?;
        let has = binding["members"]
            .as_array()?
            .iter()
            .any(|m| m.as_str() == Some(member));
        (has && AR_PULL_ROLES.contains(&role)).then(|| role.to_owned())
    })
}

/// Runs gcloud with a timeout; stdout on success.
async fn gcloud(args: &[&str]) -> Result<String, GcloudError> {
    let mut command = tokio::process::Command::new("gcloud");
    command.args(args).kill_on_drop(true);
    match tokio::time::timeout(CHECK_TIMEOUT, command.output()).await {
        Ok(Ok(out)) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        Ok(Ok(out)) => Err(GcloudError::Failed {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }),
        Ok(Err(e)) => Err(GcloudError::Spawn(e)),
        Err(_) => Err(GcloudError::Timeout {
            command: args.join(" "),
            seconds: CHECK_TIMEOUT.as_secs(),
        }),
    }
}

/// GKE: the node service account's Artifact Registry role on the repository
/// or its project, read with gcloud.
pub async fn gke_pull(
    cluster: &Cluster,
    manifest: Option<&FunctionManifest>,
    registry: &str,
    host: &str,
) -> Finding {
    const CHECK: &str = "pull";
    let location = host.trim_end_matches("-docker.pkg.dev");
    let mut parts = registry.split('/').skip(1);
    let (Some(project), Some(repository)) = (parts.next(), parts.next()) else {
        return Finding::warn(
            CHECK,
            format!("not checked: {registry} does not name HOST/PROJECT/REPOSITORY"),
            "",
        );
    };
    // gke_PROJECT_LOCATION_CLUSTER, as get-credentials names contexts.
    let from_context: Vec<&str> = cluster.context.splitn(4, '_').collect();
    let (cluster_location, cluster_name) = match from_context.as_slice() {
        ["gke", _, location, name] => ((*location).to_owned(), (*name).to_owned()),
        _ => {
            let profile = manifest.and_then(|m| m.profile.as_ref());
            match (
                profile.and_then(|p| p.region.clone()),
                profile.and_then(|p| p.cluster.clone()),
            ) {
                (Some(l), Some(c)) => (l, c),
                _ => {
                    return Finding::warn(
                        CHECK,
                        "not checked: the context is not gke_PROJECT_LOCATION_CLUSTER and okonomi.toml names no region and cluster",
                        grant_command(repository, location, project, "NODE_SERVICE_ACCOUNT"),
                    );
                }
            }
        }
    };
    let grant_unknown = grant_command(repository, location, project, "NODE_SERVICE_ACCOUNT");
    if which("gcloud").is_none() {
        return Finding::warn(
            CHECK,
            "not checked: gcloud is not on PATH. Organisations created after May 2024 no longer give the node service account roles/artifactregistry.reader by default",
            grant_unknown,
        );
    }
    let account = match gcloud(&[
        "container",
        "clusters",
        "describe",
        &cluster_name,
        "--location",
        &cluster_location,
        "--project",
        project,
        "--format=value(nodeConfig.serviceAccount,autoscaling.autoprovisioningNodePoolDefaults.serviceAccount)",
    ])
    .await
    {
        Ok(out) => out
            .split_whitespace()
            .find(|s| !s.is_empty())
            .unwrap_or("default")
            .to_owned(),
        Err(e) => return Finding::warn(CHECK, format!("not checked: {e}"), grant_unknown),
    };
    let account = if account == "default" {
        match gcloud(&[
            "projects",
            "describe",
            project,
            "--format=value(projectNumber)",
        ])
        .await
        {
            Ok(number) => format!("{number}-compute@developer.gserviceaccount.com"),
            Err(e) => return Finding::warn(CHECK, format!("not checked: {e}"), grant_unknown),
        }
    } else {
        account
    };
    let member = format!("serviceAccount:{account}");
    let grant = grant_command(repository, location, project, &account);
    for args in [
        vec![
            "artifacts",
            "repositories",
            "get-iam-policy",
            repository,
            "--location",
            location,
            "--project",
            project,
            "--format=json",
        ],
        vec!["projects", "get-iam-policy", project, "--format=json"],
    ] {
        match gcloud(&args).await {
            Ok(text) => {
                let policy: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if let Some(role) = pull_role(&policy, &member) {
                    return Finding::pass(
                        CHECK,
                        format!(
                            "the node service account {account} has {role} (`gcloud {}`)",
                            args[..3].join(" ")
                        ),
                    );
                }
            }
            Err(e) => return Finding::warn(CHECK, format!("not checked: {e}"), grant),
        }
    }
    Finding::fail(
        CHECK,
        format!(
            "the node service account {account} has no Artifact Registry read role on {repository} or project {project}: pods fail with ImagePullBackOff"
        ),
        grant,
    )
}

fn grant_command(repository: &str, location: &str, project: &str, account: &str) -> String {
    format!(
        "gcloud artifacts repositories add-iam-policy-binding {repository} --location {location} --project {project} --member serviceAccount:{account} --role roles/artifactregistry.reader"
    )
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_roles_are_read_from_iam_policies() {
        let policy = serde_json::json!({"bindings": [
            {"role": "roles/logging.logWriter", "members": ["serviceAccount:n@p.iam.gserviceaccount.com"]},
            {"role": "roles/artifactregistry.reader", "members": ["user:me@example.com", "serviceAccount:n@p.iam.gserviceaccount.com"]}
        ]});
        assert_eq!(
            pull_role(&policy, "serviceAccount:n@p.iam.gserviceaccount.com").as_deref(),
            Some("roles/artifactregistry.reader")
        );
        assert_eq!(
            pull_role(&policy, "serviceAccount:other@p.iam.gserviceaccount.com"),
            None
        );
    }
}
