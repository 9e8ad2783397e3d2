//! `Service`: the top-level object users write; it owns one Configuration and
//! one Route of the same name and mirrors their status.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::condition::Condition;
use super::configuration::{ConfigurationSpec, ConfigurationStatus};
use super::object::knative_resource;
use super::revision::RevisionTemplateSpec;
use super::route::{Addressable, RouteSpec, RouteStatus};
use super::traffic::TrafficTarget;

knative_resource! {
    /// A Knative Service (`serving.knative.dev/v1`, kind `Service`, `ksvc`).
    Service { spec: ServiceSpec, status: ServiceStatus, kind: "Service", plural: "services" }
}

/// Knative's `ServiceSpec`: a `ConfigurationSpec` and a `RouteSpec` inline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The Revision template (the Configuration part).
    #[serde(default)]
    pub template: RevisionTemplateSpec,
    /// The traffic split (the Route part); defaults to all traffic to the latest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
}

impl ServiceSpec {
    /// The spec of the Configuration this Service owns.
    pub fn configuration_spec(&self) -> ConfigurationSpec {
        ConfigurationSpec {
            template: self.template.clone(),
        }
    }

    /// The spec of the Route this Service owns.
    pub fn route_spec(&self) -> RouteSpec {
        RouteSpec {
            traffic: self.traffic.clone(),
        }
    }
}

/// Knative's `ServiceStatus`: its own conditions plus the Configuration's and
/// the Route's status fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Generation of the Service the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, ConfigurationsReady, RoutesReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Controller-written annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The external URL (from the Route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The cluster-internal address (from the Route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// The resolved traffic split (from the Route).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficTarget>,
    /// Latest Revision created (from the Configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_created_revision_name: Option<String>,
    /// Latest Revision that became Ready (from the Configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ready_revision_name: Option<String>,
}

impl ServiceStatus {
    /// Copies the Configuration's revision names into this status.
    pub fn set_configuration_fields(&mut self, configuration: &ConfigurationStatus) {
        self.latest_created_revision_name = configuration.latest_created_revision_name.clone();
        self.latest_ready_revision_name = configuration.latest_ready_revision_name.clone();
    }

    /// Copies the Route's url, address and traffic into this status.
    pub fn set_route_fields(&mut self, route: &RouteStatus) {
        self.url = route.url.clone();
        self.address = route.address.clone();
        self.traffic = route.traffic.clone();
    }
}
