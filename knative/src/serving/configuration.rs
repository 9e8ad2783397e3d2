//! `Configuration`: the latest desired state of code and config; each change
//! of its template stamps a new Revision.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::object::knative_resource;
use super::revision::RevisionTemplateSpec;

knative_resource! {
    /// A Knative Configuration (`serving.knative.dev/v1`, kind `Configuration`).
    Configuration {
        spec: ConfigurationSpec,
        status: ConfigurationStatus,
        kind: "Configuration",
        plural: "configurations"
    }
}

/// Knative's `ConfigurationSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationSpec {
    /// The template of the Revisions to create.
    #[serde(default)]
    pub template: RevisionTemplateSpec,
}

/// Knative's `ConfigurationStatus`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStatus {
    /// Generation of the Configuration the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Controller-written annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The Revision last stamped from the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision_name: Option<String>,
    /// The newest Revision that became Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision_name: Option<String>,
}
