//! `TrafficTarget`: one entry of a Route's (or Service's) traffic block.

use serde::{Deserialize, Serialize};

/// Where a share of a Route's traffic goes (Knative's `v1.TrafficTarget`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficTarget {
    /// Optional name exposing this target at its own URL (`TAG-NAME.NS.DOMAIN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A fixed Revision to send traffic to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_name: Option<String>,
    /// A Configuration whose latest ready Revision gets the traffic
    /// (not allowed inside a Service, which owns its Configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_name: Option<String>,
    /// Follow the latest ready Revision (true) or stay on `revisionName` (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<bool>,
    /// Share of the traffic, 0–100; all entries sum to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i64>,
    /// Status only: the URL of a tagged target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl TrafficTarget {
    /// `{latestRevision: true, percent}`.
    pub fn latest(percent: i64) -> Self {
        Self {
            latest_revision: Some(true),
            percent: Some(percent),
            ..Default::default()
        }
    }

    /// `{revisionName, latestRevision: false, percent}`.
    pub fn revision(name: &str, percent: i64) -> Self {
        Self {
            revision_name: Some(name.to_owned()),
            latest_revision: Some(false),
            percent: Some(percent),
            ..Default::default()
        }
    }

    /// The same target with a tag.
    pub fn with_tag(mut self, tag: &str) -> Self {
        self.tag = Some(tag.to_owned());
        self
    }
}
