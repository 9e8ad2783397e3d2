//! Cloud profiles: where a function is deployed (GKE, EKS, AKS, kind or the
//! local engine) and what that implies for its registry, kube context and
//! node labels.

use serde::{Deserialize, Serialize};

use crate::validation::{FieldError, FieldErrors, check_dns1123_label};

/// The kinds of target okonomi knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// Google Kubernetes Engine with Artifact Registry.
    Gke,
    /// Amazon EKS with ECR.
    Eks,
    /// Azure AKS with ACR.
    Aks,
    /// kind on the local machine with a local registry.
    Kind,
    /// okonomi's own engine (`okonomi up`).
    #[default]
    Local,
}

impl Cloud {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Gke => "gke",
            Cloud::Eks => "eks",
            Cloud::Aks => "aks",
            Cloud::Kind => "kind",
            Cloud::Local => "local",
        }
    }

    /// Node label that names a node's pool on this cloud.
    pub fn node_pool_label(self) -> &'static str {
        match self {
            Cloud::Gke => "cloud.google.com/gke-nodepool",
            Cloud::Eks => "eks.amazonaws.com/nodegroup",
            Cloud::Aks => "kubernetes.azure.com/agentpool",
            Cloud::Kind | Cloud::Local => "okonomi.dev/node-pool",
        }
    }

    /// Node label that names a node's accelerator on this cloud.
    pub fn accelerator_label(self) -> &'static str {
        match self {
            Cloud::Gke => "cloud.google.com/gke-accelerator",
            Cloud::Eks => "k8s.amazonaws.com/accelerator",
            Cloud::Aks => "kubernetes.azure.com/accelerator",
            Cloud::Kind | Cloud::Local => "okonomi.dev/accelerator",
        }
    }
}

/// Default Artifact Registry / ECR / ACR repository when a profile names none.
pub const DEFAULT_REPOSITORY: &str = "okonomi";
/// Default kind cluster name (`kind create cluster --name okonomi`).
pub const DEFAULT_KIND_CLUSTER: &str = "okonomi";
/// Registry address kind's local-registry recipe publishes on the host.
pub const KIND_LOCAL_REGISTRY: &str = "localhost:5001";
/// Kube context the engine writes into the kubeconfig.
pub const ENGINE_CONTEXT: &str = "okonomi";

/// `[profile]` or `[profiles.NAME]`: a deployment target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The kind of target.
    pub cloud: Cloud,
    /// Kube context to use (default: derived from cloud and cluster, see
    /// [`Profile::context`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// GCP project (gke).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// GCP region / location (gke) or AWS region (eks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// AWS account id (eks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Azure Container Registry name, without `.azurecr.io` (aks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_name: Option<String>,
    /// Repository inside the registry (default `okonomi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Explicit registry prefix, overriding the derived one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Domain Knative serves the functions under (informational; the
    /// cluster's config-domain decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

impl Profile {
    /// A profile of the given cloud with nothing else set.
    pub fn new(cloud: Cloud) -> Self {
        Self {
            cloud,
            ..Default::default()
        }
    }

    fn repository(&self) -> &str {
        self.repository.as_deref().unwrap_or(DEFAULT_REPOSITORY)
    }

    /// The registry prefix images are pushed under:
    /// gke `REGION-docker.pkg.dev/PROJECT/REPO`,
    /// eks `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO`,
    /// aks `NAME.azurecr.io/REPO`, kind `localhost:5001/REPO`;
    /// `registry` overrides; local has none (the CLI picks the engine's).
    pub fn registry(&self) -> Option<String> {
        if let Some(registry) = &self.registry {
            return Some(registry.clone());
        }
        let repository = self.repository();
        match self.cloud {
            Cloud::Gke => Some(format!(
                "{}-docker.pkg.dev/{}/{repository}",
                self.region.as_deref()?,
                self.project.as_deref()?
            )),
            Cloud::Eks => Some(format!(
                "{}.dkr.ecr.{}.amazonaws.com/{repository}",
                self.account.as_deref()?,
                self.region.as_deref()?
            )),
            Cloud::Aks => Some(format!(
                "{}.azurecr.io/{repository}",
                self.registry_name.as_deref()?
            )),
            Cloud::Kind => Some(format!("{KIND_LOCAL_REGISTRY}/{repository}")),
            Cloud::Local => None,
        }
    }

    /// The kube context: `context` if set, else the name the cloud's CLI
    /// writes: gke `gke_PROJECT_REGION_CLUSTER` (`gcloud container clusters
    /// get-credentials`), eks `arn:aws:eks:REGION:ACCOUNT:cluster/CLUSTER`
    /// (`aws eks update-kubeconfig`), aks `CLUSTER` (`az aks get-credentials`),
    /// kind `kind-CLUSTER`, local `okonomi`.
    pub fn context(&self) -> Option<String> {
        if let Some(context) = &self.context {
            return Some(context.clone());
        }
        match self.cloud {
            Cloud::Gke => Some(format!(
                "gke_{}_{}_{}",
                self.project.as_deref()?,
                self.region.as_deref()?,
                self.cluster.as_deref()?
            )),
            Cloud::Eks => Some(format!(
                "arn:aws:eks:{}:{}:cluster/{}",
                self.region.as_deref()?,
                self.account.as_deref()?,
                self.cluster.as_deref()?
            )),
            Cloud::Aks => self.cluster.clone(),
            Cloud::Kind => Some(format!(
                "kind-{}",
                self.cluster.as_deref().unwrap_or(DEFAULT_KIND_CLUSTER)
            )),
            Cloud::Local => Some(ENGINE_CONTEXT.to_owned()),
        }
    }

    /// Rules the fields must follow; `field` is the TOML path of the profile.
    pub fn check(&self, field: &str, errors: &mut FieldErrors) {
        let explicit_registry = self.registry.is_some();
        let mut need = |value: &Option<String>, key: &str, why: &str| {
            if value.as_deref().is_none_or(str::is_empty) {
                errors.push(FieldError::required(
                    format!("{field}.{key}"),
                    why.to_owned(),
                ));
            }
        };
        match self.cloud {
            Cloud::Gke if !explicit_registry => {
                need(
                    &self.project,
                    "project",
                    "gke needs the GCP project of the Artifact Registry (or set registry)",
                );
                need(
                    &self.region,
                    "region",
                    "gke needs the Artifact Registry region, e.g. asia-northeast1 (or set registry)",
                );
            }
            Cloud::Eks if !explicit_registry => {
                need(
                    &self.account,
                    "account",
                    "eks needs the AWS account id of the ECR registry (or set registry)",
                );
                need(
                    &self.region,
                    "region",
                    "eks needs the AWS region, e.g. ap-northeast-1 (or set registry)",
                );
            }
            Cloud::Aks if !explicit_registry => {
                need(
                    &self.registry_name,
                    "registry_name",
                    "aks needs the ACR name (NAME of NAME.azurecr.io) (or set registry)",
                );
            }
            _ => {}
        }
        if let Some(registry) = &self.registry
            && let Err(problem) = super::check_registry(registry)
        {
            errors.push(FieldError::invalid(format!("{field}.registry"), problem));
        }
        if let Some(account) = &self.account
            && (account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()))
        {
            errors.push(FieldError::invalid(
                format!("{field}.account"),
                format!("{account:?} is not an AWS account id (12 digits)"),
            ));
        }
        if let Some(cluster) = &self.cluster
            && self.cloud == Cloud::Kind
            && let Err(problem) = check_dns1123_label(cluster)
        {
            errors.push(FieldError::invalid(format!("{field}.cluster"), problem));
        }
    }
}
