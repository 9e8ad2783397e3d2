//! `Revision`: an immutable snapshot of code and configuration, and the
//! template (`RevisionTemplateSpec`) Configurations and Services stamp them from.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::object::knative_resource;

knative_resource! {
    /// A Knative Revision (`serving.knative.dev/v1`, kind `Revision`).
    Revision { spec: RevisionSpec, status: RevisionStatus, kind: "Revision", plural: "revisions" }
}

/// Knative's `RevisionSpec`: a Kubernetes `PodSpec` (inline) plus the
/// request-level knobs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSpec {
    /// The pod: containers, volumes, service account, node selector, …
    #[serde(flatten)]
    pub pod_spec: PodSpec,
    /// Maximum in-flight requests per instance; 0 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_concurrency: Option<i64>,
    /// Maximum duration of a request, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// Maximum time until the first response byte, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_start_timeout_seconds: Option<i64>,
    /// Maximum idle time of a request (no bytes either way), in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<i64>,
}

impl RevisionSpec {
    /// The spec with the given containers and nothing else.
    pub fn with_containers(containers: Vec<Container>) -> Self {
        Self {
            pod_spec: PodSpec {
                containers,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The container that serves traffic: the one with a port, or the only one.
    pub fn serving_container(&self) -> Option<&Container> {
        let containers = &self.pod_spec.containers;
        if containers.len() == 1 {
            return containers.first();
        }
        containers
            .iter()
            .find(|c| c.ports.as_ref().is_some_and(|ports| !ports.is_empty()))
    }
}

/// Knative's `RevisionTemplateSpec`: the metadata and spec of Revisions to stamp.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionTemplateSpec {
    /// Labels and annotations (autoscaling, …) copied to each Revision;
    /// `name` fixes the Revision name.
    #[serde(default, skip_serializing_if = "is_empty_meta")]
    pub metadata: ObjectMeta,
    /// The Revision spec.
    #[serde(default)]
    pub spec: RevisionSpec,
}

fn is_empty_meta(meta: &ObjectMeta) -> bool {
    *meta == ObjectMeta::default()
}

/// Knative's `RevisionStatus`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    /// Generation of the Revision the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, ResourcesAvailable, ContainerHealthy, Active.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Controller-written annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// A URL where the Revision's logs can be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    /// Resolved image digests of the containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    /// Resolved image digests of the init containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,
    /// Instances running and ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_replicas: Option<i32>,
    /// Instances the autoscaler asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<i32>,
}

/// A container's resolved image (`status.containerStatuses[]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// The container name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `REPO@sha256:…` the image tag resolved to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_digest: String,
}
