//! Knative status conditions (`knative.dev/pkg/apis.Condition`) and helpers
//! to read and set them the way Knative's condition sets do.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

/// Condition types Knative Serving uses.
pub mod condition_type {
    /// The happy condition of every kind.
    pub const READY: &str = "Ready";
    /// Service: its Configuration is ready.
    pub const CONFIGURATIONS_READY: &str = "ConfigurationsReady";
    /// Service: its Route is ready.
    pub const ROUTES_READY: &str = "RoutesReady";
    /// Route: every traffic target resolved to a ready Revision.
    pub const ALL_TRAFFIC_ASSIGNED: &str = "AllTrafficAssigned";
    /// Route: the ingress is programmed.
    pub const INGRESS_READY: &str = "IngressReady";
    /// Route: the TLS certificate is provisioned.
    pub const CERTIFICATE_PROVISIONED: &str = "CertificateProvisioned";
    /// Revision: the deployment and autoscaler exist.
    pub const RESOURCES_AVAILABLE: &str = "ResourcesAvailable";
    /// Revision: the containers passed their readiness probes.
    pub const CONTAINER_HEALTHY: &str = "ContainerHealthy";
    /// Revision: instances are running (False when scaled to zero).
    pub const ACTIVE: &str = "Active";
}

/// Reasons Knative's controllers write into conditions.
pub mod reason {
    /// Revision: a new revision is coming up.
    pub const DEPLOYING: &str = "Deploying";
    /// Revision: the image could not be pulled / resolved.
    pub const REVISION_FAILED: &str = "RevisionFailed";
    /// Revision: scaled to zero.
    pub const NO_TRAFFIC: &str = "NoTraffic";
    /// Revision: the container exited.
    pub const EXIT_CODE: &str = "ExitCode";
    /// Revision: the progress deadline passed.
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// Route: a traffic target names a Revision or Configuration that does not exist.
    pub const REVISION_MISSING: &str = "RevisionMissing";
    /// Route: a traffic target names a Configuration without a ready Revision.
    pub const CONFIGURATION_MISSING: &str = "ConfigurationMissing";
    /// Configuration: the latest created revision failed.
    pub const REVISION_FAILED_CONFIGURATION: &str = "RevisionFailed";
    /// Service: the Configuration or Route is still being reconciled.
    pub const OUTDATED_GENERATION: &str = "OutdatedGeneration";
}

/// `status` of a condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known yet (still reconciling).
    #[default]
    Unknown,
}

/// `severity` of a condition: empty for conditions that make Ready false.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConditionSeverity {
    /// Failing this condition fails Ready (serialized as an empty string, omitted).
    #[default]
    #[serde(rename = "")]
    Error,
    /// Informative, does not affect Ready.
    Warning,
    /// Informative, does not affect Ready.
    Info,
}

impl ConditionSeverity {
    fn is_error(&self) -> bool {
        *self == ConditionSeverity::Error
    }
}

/// One status condition, as Knative writes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type, e.g. [`condition_type::READY`].
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// Error (omitted), Warning or Info.
    #[serde(default, skip_serializing_if = "ConditionSeverity::is_error")]
    pub severity: ConditionSeverity,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// One-word CamelCase reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Condition {
    /// A condition of the given type and status, without reason or time.
    pub fn new(type_: &str, status: ConditionStatus) -> Self {
        Self {
            type_: type_.to_owned(),
            status,
            ..Default::default()
        }
    }

    /// A `True` condition.
    pub fn true_(type_: &str) -> Self {
        Self::new(type_, ConditionStatus::True)
    }

    /// A `False` condition with a reason and message.
    pub fn false_(type_: &str, reason: &str, message: &str) -> Self {
        Self::new(type_, ConditionStatus::False).with_reason(reason, message)
    }

    /// An `Unknown` condition with a reason and message.
    pub fn unknown(type_: &str, reason: &str, message: &str) -> Self {
        Self::new(type_, ConditionStatus::Unknown).with_reason(reason, message)
    }

    /// Sets reason and message (an empty string leaves the field out).
    pub fn with_reason(mut self, reason: &str, message: &str) -> Self {
        self.reason = (!reason.is_empty()).then(|| reason.to_owned());
        self.message = (!message.is_empty()).then(|| message.to_owned());
        self
    }

    /// Sets the severity.
    pub fn with_severity(mut self, severity: ConditionSeverity) -> Self {
        self.severity = severity;
        self
    }

    /// True when status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }

    /// True when status is `False`.
    pub fn is_false(&self) -> bool {
        self.status == ConditionStatus::False
    }

    /// Same status, severity, reason and message (the transition time aside).
    fn same_state(&self, other: &Condition) -> bool {
        self.status == other.status
            && self.severity == other.severity
            && self.reason == other.reason
            && self.message == other.message
    }
}

/// Reading and writing a list of conditions (a status's `conditions`).
pub trait Conditions {
    /// The condition of the given type.
    fn get_condition(&self, type_: &str) -> Option<&Condition>;

    /// True when the condition of the given type exists and is `True`.
    fn is_true(&self, type_: &str) -> bool {
        self.get_condition(type_).is_some_and(Condition::is_true)
    }

    /// True when `Ready` is `True`.
    fn is_ready(&self) -> bool {
        self.is_true(condition_type::READY)
    }
}

impl Conditions for [Condition] {
    fn get_condition(&self, type_: &str) -> Option<&Condition> {
        self.iter().find(|condition| condition.type_ == type_)
    }
}

impl Conditions for Vec<Condition> {
    fn get_condition(&self, type_: &str) -> Option<&Condition> {
        self.as_slice().get_condition(type_)
    }
}

/// Sets `condition` in `conditions` the way Knative does: a condition whose
/// state did not change keeps its old `lastTransitionTime`; a changed one gets
/// `now` (time is an argument so tests and controllers stay deterministic);
/// the list stays sorted by type. Returns true when anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut condition: Condition, now: Time) -> bool {
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        if existing.same_state(&condition) {
            return false;
        }
        condition.last_transition_time = Some(now);
        *existing = condition;
        return true;
    }
    condition.last_transition_time = Some(now);
    conditions.push(condition);
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    true
}

/// Removes the condition of the given type; returns true when one was there.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    before != conditions.len()
}
