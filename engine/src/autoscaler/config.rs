//! Global autoscaler defaults (mirroring Knative's `config-autoscaler`
//! ConfigMap) and their per-revision overrides from annotations.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use okonomi_knative::{Revision, RevisionSpec};

use crate::error::{Error, Result};

/// Annotation prefix of every per-revision autoscaling setting.
pub const ANNOTATION_PREFIX: &str = "autoscaling.knative.dev/";

/// The smallest target of any metric (Knative's `autoscaling.TargetMin`).
pub const TARGET_MIN: f64 = 0.01;

/// Share of the `rps` target to aim for, as a percentage, unless the
/// revision sets `target-utilization-percentage`. Knative fixes it at 70%
/// (`TargetUtilization` is not read from config-autoscaler).
pub const RPS_TARGET_UTILIZATION_PERCENTAGE: f64 = 70.0;

/// The metric a revision scales on (`autoscaling.knative.dev/metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScalingMetric {
    /// Requests in flight (held or proxied), the KPA's default.
    #[default]
    Concurrency,
    /// Requests arriving per second (`rps`).
    Rps,
}

impl ScalingMetric {
    /// The metric named by an annotation value; any other value (admission
    /// rejects them for the KPA) scales on concurrency, as Knative does.
    pub fn from_annotation(value: &str) -> Self {
        match value.trim() {
            okonomi_knative::keys::METRIC_RPS => Self::Rps,
            _ => Self::Concurrency,
        }
    }
}

/// Cluster-wide autoscaler settings, the keys and defaults of Knative's
/// `config-autoscaler` ConfigMap.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscalerConfig {
    /// `container-concurrency-target-percentage`: share of the concurrency
    /// target to aim for in a stable state, as a percentage (70 → 70%).
    pub container_concurrency_target_percentage: f64,
    /// `container-concurrency-target-default`: the soft concurrency target per
    /// instance when a revision sets no `containerConcurrency`.
    pub container_concurrency_target_default: f64,
    /// `requests-per-second-target-default`: requests per second per instance
    /// for revisions scaled on the `rps` metric without a target annotation.
    pub requests_per_second_target_default: f64,
    /// `target-burst-capacity`: concurrent requests of spare capacity to keep
    /// beyond the current load before the activator leaves the request path;
    /// 0 = the activator is in the path only at zero, -1 = always.
    pub target_burst_capacity: f64,
    /// `stable-window`: the window averaged in stable mode.
    pub stable_window: Duration,
    /// `panic-window-percentage`: the panic window as a percentage of the
    /// stable window.
    pub panic_window_percentage: f64,
    /// `panic-threshold-percentage`: panic when the panic-window demand reaches
    /// this percentage of the current capacity.
    pub panic_threshold_percentage: f64,
    /// `max-scale-up-rate`: at most this ratio of desired to ready instances
    /// per decision.
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate`: at most this ratio of ready to desired instances
    /// per decision.
    pub max_scale_down_rate: f64,
    /// `enable-scale-to-zero`.
    pub enable_scale_to_zero: bool,
    /// `scale-to-zero-grace-period`: how long a revision that needs no
    /// instance keeps its last one.
    pub scale_to_zero_grace_period: Duration,
    /// `scale-to-zero-pod-retention-period`: the minimum time the last
    /// instance stays after the decision to scale to zero.
    pub scale_to_zero_pod_retention_period: Duration,
    /// `initial-scale`: instances a new revision starts with.
    pub initial_scale: u32,
    /// `allow-zero-initial-scale`.
    pub allow_zero_initial_scale: bool,
    /// `min-scale`: default lower bound.
    pub min_scale: u32,
    /// `max-scale`: default upper bound (0 = unbounded).
    pub max_scale: u32,
    /// `scale-down-delay`: how long a lower demand must last before the
    /// scale goes down.
    pub scale_down_delay: Duration,
    /// `max-scale-limit`: the highest allowed max-scale (0 = any).
    pub max_scale_limit: u32,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        Self {
            container_concurrency_target_percentage: 70.0,
            container_concurrency_target_default: 100.0,
            requests_per_second_target_default: 200.0,
            target_burst_capacity: 211.0,
            stable_window: Duration::from_secs(60),
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            enable_scale_to_zero: true,
            scale_to_zero_grace_period: Duration::from_secs(30),
            scale_to_zero_pod_retention_period: Duration::ZERO,
            initial_scale: 1,
            allow_zero_initial_scale: false,
            min_scale: 0,
            max_scale: 0,
            scale_down_delay: Duration::ZERO,
            max_scale_limit: 0,
        }
    }
}

/// Parses a Go duration as Knative writes them (`60s`, `1m30s`, `500ms`, `0`),
/// with the same rules admission applies to the annotations.
pub fn parse_duration(text: &str) -> Option<Duration> {
    okonomi_knative::validation::parse_duration(text.trim()).ok()
}

/// Reads a percentage that may also be written as a fraction in (0, 1]
/// (Knative accepts `0.7` for 70%).
fn percentage(value: f64) -> f64 {
    if value > 0.0 && value <= 1.0 {
        value * 100.0
    } else {
        value
    }
}

impl AutoscalerConfig {
    /// Loads the config file: either a `config-autoscaler` ConfigMap (its
    /// `data` is used) or a plain map of the same keys. Keys not given keep
    /// Knative's defaults.
    pub fn load(path: &Path) -> Result<Self> {
        let settings = Self::load_settings(path)?;
        Self::from_settings(&settings).map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The settings of the config file (see [`AutoscalerConfig::load`]),
    /// checked, as `config-autoscaler` keys.
    pub fn load_settings(path: &Path) -> Result<BTreeMap<String, String>> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            context: format!("reading autoscaler config {}", path.display()),
            source,
        })?;
        let invalid = |message| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        let settings = Self::yaml_settings(&text).map_err(invalid)?;
        Self::from_settings(&settings).map_err(invalid)?;
        Ok(settings)
    }

    /// Parses the YAML text of the config file (see [`AutoscalerConfig::load`]).
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        Self::from_settings(&Self::yaml_settings(text)?)
    }

    /// The keys of the config file's YAML text, as strings.
    fn yaml_settings(text: &str) -> Result<BTreeMap<String, String>, String> {
        let value: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
        let map = match value.get("data") {
            Some(data) => data.clone(),
            None => value,
        };
        let map = match map {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => return Ok(BTreeMap::new()),
            other => return Err(format!("expected a map of settings, found {other}")),
        };
        let mut settings = BTreeMap::new();
        for (key, value) in map {
            let text = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            settings.insert(key, text);
        }
        Ok(settings)
    }

    /// Applies `config-autoscaler` keys (string values) over the defaults,
    /// validating them as Knative does; a key Knative does not document is
    /// refused (a typo in the engine's `--autoscaler` file).
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Result<Self, String> {
        Self::parse(settings, false)
    }

    /// The `data` of the `config-autoscaler` ConfigMap, read as Knative
    /// reads it: keys it does not know are ignored, not refused.
    pub fn from_config_map(data: &BTreeMap<String, String>) -> Result<Self, String> {
        Self::parse(data, true)
    }

    fn parse(settings: &BTreeMap<String, String>, ignore_unknown: bool) -> Result<Self, String> {
        let mut config = Self::default();
        for (key, value) in settings {
            let float = || -> Result<f64, String> {
                value
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{key}: `{value}` is not a number"))
            };
            let int = || -> Result<u32, String> {
                value
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| format!("{key}: `{value}` is not a non-negative integer"))
            };
            let duration = || -> Result<Duration, String> {
                parse_duration(value).ok_or_else(|| {
                    format!("{key}: `{value}` is not a duration (write e.g. `60s` or `1m30s`)")
                })
            };
            let boolean = || -> Result<bool, String> {
                match value.trim() {
                    "true" => Ok(true),
                    "false" => Ok(false),
                    _ => Err(format!("{key}: `{value}` is not `true` or `false`")),
                }
            };
            match key.as_str() {
                "container-concurrency-target-percentage" => {
                    config.container_concurrency_target_percentage = percentage(float()?)
                }
                "container-concurrency-target-default" => {
                    config.container_concurrency_target_default = float()?
                }
                "requests-per-second-target-default" => {
                    config.requests_per_second_target_default = float()?
                }
                "target-burst-capacity" => config.target_burst_capacity = float()?,
                "stable-window" => config.stable_window = duration()?,
                "panic-window-percentage" => config.panic_window_percentage = float()?,
                "panic-threshold-percentage" => config.panic_threshold_percentage = float()?,
                "max-scale-up-rate" => config.max_scale_up_rate = float()?,
                "max-scale-down-rate" => config.max_scale_down_rate = float()?,
                "enable-scale-to-zero" => config.enable_scale_to_zero = boolean()?,
                "scale-to-zero-grace-period" => config.scale_to_zero_grace_period = duration()?,
                "scale-to-zero-pod-retention-period" => {
                    config.scale_to_zero_pod_retention_period = duration()?
                }
                "initial-scale" => config.initial_scale = int()?,
                "allow-zero-initial-scale" => config.allow_zero_initial_scale = boolean()?,
                "min-scale" => config.min_scale = int()?,
                "max-scale" => config.max_scale = int()?,
                "scale-down-delay" => config.scale_down_delay = duration()?,
                "max-scale-limit" => config.max_scale_limit = int()?,
                // Documented keys the engine has no use for (there is one
                // activator and one autoscaler class) are accepted and ignored.
                "_example"
                | "pod-autoscaler-class"
                | "activator-capacity"
                | "min-non-zero-replicas" => {}
                _ if ignore_unknown => {}
                other => return Err(format!("unknown setting `{other}`")),
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Knative's validation of `config-autoscaler`.
    pub fn validate(&self) -> Result<(), String> {
        if self.container_concurrency_target_percentage <= 1.0
            || self.container_concurrency_target_percentage > 100.0
        {
            return Err("container-concurrency-target-percentage must be in (1, 100]".into());
        }
        if self.container_concurrency_target_default * self.container_concurrency_target_percentage
            / 100.0
            < 0.01
        {
            return Err("container-concurrency-target-default × percentage must be ≥ 0.01".into());
        }
        // Knative's own check (the ConfigMap's comment says "greater than
        // 1.0", the code accepts any target from autoscaling.TargetMin on).
        if self.requests_per_second_target_default.is_nan()
            || self.requests_per_second_target_default < TARGET_MIN
        {
            return Err(format!(
                "requests-per-second-target-default must be at least {TARGET_MIN}"
            ));
        }
        if self.target_burst_capacity < 0.0 && self.target_burst_capacity != -1.0
            || !self.target_burst_capacity.is_finite()
        {
            return Err(
                "target-burst-capacity must be either non-negative or -1 (for unlimited)".into(),
            );
        }
        if self.stable_window < Duration::from_secs(6)
            || self.stable_window > Duration::from_secs(3600)
            || self.stable_window.subsec_nanos() != 0
        {
            return Err("stable-window must be whole seconds in [6s, 1h]".into());
        }
        if !(1.0..=100.0).contains(&self.panic_window_percentage) {
            return Err("panic-window-percentage must be in [1, 100]".into());
        }
        if self.panic_threshold_percentage < 110.0 || self.panic_threshold_percentage > 1000.0 {
            return Err("panic-threshold-percentage must be in [110, 1000]".into());
        }
        if self.max_scale_up_rate <= 1.0 {
            return Err("max-scale-up-rate must be greater than 1".into());
        }
        if self.max_scale_down_rate <= 1.0 {
            return Err("max-scale-down-rate must be greater than 1".into());
        }
        if self.initial_scale == 0 && !self.allow_zero_initial_scale {
            return Err("initial-scale is 0 but allow-zero-initial-scale is false".into());
        }
        if self.max_scale != 0 && self.min_scale > self.max_scale {
            return Err("min-scale must not exceed max-scale".into());
        }
        if self.max_scale_limit != 0
            && (self.max_scale == 0 || self.max_scale > self.max_scale_limit)
        {
            return Err("max-scale must be within max-scale-limit".into());
        }
        Ok(())
    }

    /// The scaling spec of one revision: these defaults overridden by its
    /// `autoscaling.knative.dev/*` annotations and its `containerConcurrency`
    /// (0 = unlimited). Values that do not parse keep the default (the
    /// apiserver's validation rejects them before they get here).
    pub fn spec_for(
        &self,
        annotations: &BTreeMap<String, String>,
        container_concurrency: u32,
    ) -> ScalingSpec {
        let get = |names: &[&str]| {
            names.iter().find_map(|name| {
                annotations
                    .get(&format!("{ANNOTATION_PREFIX}{name}"))
                    .map(|s| s.trim().to_string())
            })
        };
        let float = |names: &[&str]| get(names).and_then(|v| v.parse::<f64>().ok());
        let int = |names: &[&str]| get(names).and_then(|v| v.parse::<u32>().ok());
        let duration = |names: &[&str]| get(names).and_then(|v| parse_duration(&v));

        // Knative's ResolveMetricTarget: the total (one instance's capacity)
        // is the target annotation, else for concurrency containerConcurrency
        // (a hard limit) when set, else the metric's default; a concurrency
        // target above the hard limit is capped to it. The target aimed for
        // is that total times the utilization.
        let metric = get(&["metric"])
            .map(|m| ScalingMetric::from_annotation(&m))
            .unwrap_or_default();
        let (default_total, default_utilization) = match metric {
            ScalingMetric::Rps => (
                self.requests_per_second_target_default,
                RPS_TARGET_UTILIZATION_PERCENTAGE,
            ),
            ScalingMetric::Concurrency if container_concurrency > 0 => (
                f64::from(container_concurrency),
                self.container_concurrency_target_percentage,
            ),
            ScalingMetric::Concurrency => (
                self.container_concurrency_target_default,
                self.container_concurrency_target_percentage,
            ),
        };
        let utilization = float(&["target-utilization-percentage"])
            .map(percentage)
            .unwrap_or(default_utilization);
        let mut total_value = float(&["target"])
            .filter(|t| *t > 0.0)
            .unwrap_or(default_total);
        if metric == ScalingMetric::Concurrency && container_concurrency > 0 {
            total_value = total_value.min(f64::from(container_concurrency));
        }
        let target_per_instance = (total_value * utilization / 100.0).max(TARGET_MIN);
        let target_burst_capacity = float(&["target-burst-capacity", "targetBurstCapacity"])
            .filter(|b| *b >= 0.0 || *b == -1.0)
            .unwrap_or(self.target_burst_capacity);

        let stable_window = duration(&["window"]).unwrap_or(self.stable_window);
        let panic_window_percentage =
            float(&["panic-window-percentage"]).unwrap_or(self.panic_window_percentage);
        // Rounded to the closest whole second, at least 1s (as documented).
        let panic_window = Duration::from_secs(
            ((stable_window.as_secs_f64() * panic_window_percentage / 100.0).round() as u64).max(1),
        );
        let panic_threshold_percentage =
            float(&["panic-threshold-percentage"]).unwrap_or(self.panic_threshold_percentage);
        let initial_scale = int(&["initial-scale", "initialScale"]).unwrap_or(self.initial_scale);
        let initial_scale = if initial_scale == 0 && !self.allow_zero_initial_scale {
            1
        } else {
            initial_scale
        };
        ScalingSpec {
            metric,
            target_per_instance,
            total_value,
            target_burst_capacity,
            container_concurrency,
            stable_window,
            panic_window,
            panic_threshold: panic_threshold_percentage / 100.0,
            max_scale_up_rate: self.max_scale_up_rate,
            max_scale_down_rate: self.max_scale_down_rate,
            enable_scale_to_zero: self.enable_scale_to_zero,
            scale_to_zero_grace: self
                .scale_to_zero_grace_period
                .max(self.scale_to_zero_pod_retention_period)
                .max(duration(&["scale-to-zero-pod-retention-period"]).unwrap_or(Duration::ZERO)),
            min_scale: int(&["min-scale", "minScale"]).unwrap_or(self.min_scale),
            max_scale: int(&["max-scale", "maxScale"]).unwrap_or(self.max_scale),
            initial_scale,
            scale_down_delay: duration(&["scale-down-delay", "scaleDownDelay"])
                .unwrap_or(self.scale_down_delay),
            request_timeouts: RequestTimeouts::default(),
        }
    }

    /// The scaling spec of `revision` (its annotations and
    /// `containerConcurrency`, see [`AutoscalerConfig::spec_for`]), carrying
    /// its request timeouts for the data plane.
    pub fn spec_for_revision(&self, revision: &Revision) -> ScalingSpec {
        let annotations = revision.metadata.annotations.clone().unwrap_or_default();
        let container_concurrency = revision
            .spec
            .container_concurrency
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(0);
        ScalingSpec {
            request_timeouts: RequestTimeouts::of(&revision.spec),
            ..self.spec_for(&annotations, container_concurrency)
        }
    }
}

/// Knative's `revision-timeout-seconds` default, for a revision that did not
/// go through admission's defaulting.
const DEFAULT_TIMEOUT: Duration =
    Duration::from_secs(okonomi_knative::keys::DEFAULT_TIMEOUT_SECONDS as u64);

/// The per-request time limits of a revision, for the data plane to apply
/// (as Knative's queue-proxy does). `None` means no limit: like the
/// queue-proxy, a zero value sets no timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTimeouts {
    /// `timeoutSeconds`: the longest a request may take in all, from the
    /// moment it reaches the revision to the end of its response.
    pub total: Option<Duration>,
    /// `responseStartTimeoutSeconds`: the longest an instance may take to
    /// start answering (send the first bytes) once it has the request.
    pub response_start: Option<Duration>,
    /// `idleTimeoutSeconds`: the longest a request may stay open with no
    /// bytes coming from the instance.
    pub idle: Option<Duration>,
}

impl Default for RequestTimeouts {
    fn default() -> Self {
        Self {
            total: Some(DEFAULT_TIMEOUT),
            response_start: None,
            idle: None,
        }
    }
}

impl RequestTimeouts {
    /// The limits a revision's spec sets (admission has checked the ranges:
    /// negative values cannot get here, and are treated as no limit).
    pub fn of(spec: &RevisionSpec) -> Self {
        let seconds = |value: Option<i64>| {
            value
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
        };
        Self {
            total: match spec.timeout_seconds {
                None => Some(DEFAULT_TIMEOUT),
                set => seconds(set),
            },
            response_start: seconds(spec.response_start_timeout_seconds),
            idle: seconds(spec.idle_timeout_seconds),
        }
    }
}

/// Everything the KPA needs to know about one revision (Knative's
/// `DeciderSpec`), and the revision's request timeouts for the data plane.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingSpec {
    /// The metric scaled on.
    pub metric: ScalingMetric,
    /// Value of the metric to aim for per instance: total × utilization
    /// (Knative's `TargetValue`).
    pub target_per_instance: f64,
    /// What one instance can take of the metric before utilization (the
    /// target annotation, else containerConcurrency or the metric's default;
    /// Knative's `TotalValue`): the capacity in the burst computation.
    pub total_value: f64,
    /// Spare capacity to keep before the activator leaves the request path
    /// (`target-burst-capacity`; 0 = only at zero, -1 = always in the path).
    pub target_burst_capacity: f64,
    /// The revision's `containerConcurrency` (0 = unlimited): the hard limit
    /// the balancer enforces per instance.
    pub container_concurrency: u32,
    /// Window averaged in stable mode.
    pub stable_window: Duration,
    /// Window averaged for the panic decision.
    pub panic_window: Duration,
    /// Panic when panic-window demand ÷ ready instances reaches this ratio.
    pub panic_threshold: f64,
    /// Maximum ratio of desired to ready instances per decision.
    pub max_scale_up_rate: f64,
    /// Maximum ratio of ready to desired instances per decision.
    pub max_scale_down_rate: f64,
    /// Whether the revision may reach zero instances.
    pub enable_scale_to_zero: bool,
    /// How long the last instance stays once zero is wanted.
    pub scale_to_zero_grace: Duration,
    /// Lower bound of the scale.
    pub min_scale: u32,
    /// Upper bound of the scale (0 = unbounded).
    pub max_scale: u32,
    /// Instances a new revision starts with.
    pub initial_scale: u32,
    /// How long a lower demand must persist before scaling down.
    pub scale_down_delay: Duration,
    /// The revision's request time limits (not used for scaling: carried
    /// here so the data plane finds them on the revision's pool).
    pub request_timeouts: RequestTimeouts,
}

impl Default for ScalingSpec {
    fn default() -> Self {
        AutoscalerConfig::default().spec_for(&BTreeMap::new(), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{ANNOTATION_PREFIX}{k}"), v.to_string()))
            .collect()
    }

    #[test]
    fn reference_configmap_parses_to_knative_defaults() {
        let text =
            crate::serving_config::shipped(okonomi_knative::cluster_config::CONFIG_AUTOSCALER)
                .unwrap();
        // The reference keeps every setting inside `_example`: uncomment it
        // the way an operator would, so each documented value is checked.
        let value: serde_json::Value = serde_saphyr::from_str(text).unwrap();
        let example = value["data"]["_example"].as_str().unwrap();
        let uncommented: String = example
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .map(|l| format!("{}\n", l.trim()))
            .collect();
        let parsed = AutoscalerConfig::from_yaml(&uncommented).unwrap();
        assert_eq!(parsed, AutoscalerConfig::default());
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("ten seconds"), None);
        assert_eq!(parse_duration("10"), None);
    }

    #[test]
    fn target_is_concurrency_times_utilization() {
        let config = AutoscalerConfig::default();
        // Unlimited concurrency: the soft default 100 at 70%.
        assert_eq!(
            config.spec_for(&BTreeMap::new(), 0).target_per_instance,
            70.0
        );
        // containerConcurrency 10 → "7 concurrent connections per pod".
        assert_eq!(
            config.spec_for(&BTreeMap::new(), 10).target_per_instance,
            7.0
        );
        // The target annotation wins, capped by a hard limit.
        let spec = config.spec_for(&annotations(&[("target", "50")]), 0);
        assert_eq!(spec.target_per_instance, 35.0);
        let spec = config.spec_for(&annotations(&[("target", "50")]), 10);
        assert_eq!(spec.target_per_instance, 7.0);
        // Utilization accepts a percentage or a fraction.
        let spec = config.spec_for(
            &annotations(&[("target-utilization-percentage", "0.5")]),
            10,
        );
        assert_eq!(spec.target_per_instance, 5.0);
    }

    #[test]
    fn panic_window_is_a_rounded_share_of_the_stable_window() {
        let config = AutoscalerConfig::default();
        let spec = config.spec_for(&BTreeMap::new(), 0);
        assert_eq!(spec.stable_window, Duration::from_secs(60));
        assert_eq!(spec.panic_window, Duration::from_secs(6));
        assert_eq!(spec.panic_threshold, 2.0);
        let spec = config.spec_for(&annotations(&[("window", "6s")]), 0);
        assert_eq!(spec.panic_window, Duration::from_secs(1));
        let spec = config.spec_for(
            &annotations(&[("window", "20s"), ("panic-window-percentage", "25")]),
            0,
        );
        assert_eq!(spec.panic_window, Duration::from_secs(5));
    }

    #[test]
    fn bounds_and_delays_come_from_annotations() {
        let config = AutoscalerConfig::default();
        let spec = config.spec_for(
            &annotations(&[
                ("min-scale", "2"),
                ("maxScale", "5"),
                ("initial-scale", "3"),
                ("scale-down-delay", "15s"),
            ]),
            0,
        );
        assert_eq!(
            (spec.min_scale, spec.max_scale, spec.initial_scale),
            (2, 5, 3)
        );
        assert_eq!(spec.scale_down_delay, Duration::from_secs(15));
        // Zero initial scale is refused unless the operator allows it.
        let spec = config.spec_for(&annotations(&[("initial-scale", "0")]), 0);
        assert_eq!(spec.initial_scale, 1);
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        let err = AutoscalerConfig::from_yaml("stable-window: soon").unwrap_err();
        assert!(err.contains("stable-window"), "{err}");
        let err = AutoscalerConfig::from_yaml("max-scale-up-rate: \"1\"").unwrap_err();
        assert!(err.contains("greater than 1"), "{err}");
        let err = AutoscalerConfig::from_yaml("stable-windw: 60s").unwrap_err();
        assert!(err.contains("unknown setting"), "{err}");
        let config = AutoscalerConfig::from_yaml(
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  stable-window: \"10s\"\n",
        )
        .unwrap();
        assert_eq!(config.stable_window, Duration::from_secs(10));
    }

    /// The reference config-autoscaler with its `_example` block applied.
    fn reference_config() -> AutoscalerConfig {
        let text =
            crate::serving_config::shipped(okonomi_knative::cluster_config::CONFIG_AUTOSCALER)
                .unwrap();
        let value: serde_json::Value = serde_saphyr::from_str(text).unwrap();
        let example = value["data"]["_example"].as_str().unwrap();
        let uncommented: String = example
            .lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .map(|l| format!("{}\n", l.trim()))
            .collect();
        AutoscalerConfig::from_yaml(&uncommented).unwrap()
    }

    #[test]
    fn rps_and_burst_capacity_come_from_the_reference_configmap() {
        let config = reference_config();
        assert_eq!(config.requests_per_second_target_default, 200.0);
        assert_eq!(config.target_burst_capacity, 211.0);
        let rps = config.spec_for(&annotations(&[("metric", "rps")]), 0);
        assert_eq!(rps.metric, ScalingMetric::Rps);
        assert_eq!(rps.total_value, 200.0);
        assert_eq!(rps.target_per_instance, 140.0);
        assert_eq!(rps.target_burst_capacity, 211.0);
        // containerConcurrency limits concurrency targets, not rps ones.
        let rps = config.spec_for(&annotations(&[("metric", "rps"), ("target", "500")]), 10);
        assert_eq!(rps.total_value, 500.0);
        assert_eq!(rps.target_per_instance, 350.0);
        let rps = config.spec_for(
            &annotations(&[("metric", "rps"), ("target-utilization-percentage", "50")]),
            0,
        );
        assert_eq!(rps.target_per_instance, 100.0);
        // Concurrency stays the default metric.
        let concurrency = config.spec_for(&BTreeMap::new(), 10);
        assert_eq!(concurrency.metric, ScalingMetric::Concurrency);
        assert_eq!(concurrency.total_value, 10.0);
        // The revision's annotation overrides the burst capacity.
        for (value, expected) in [("0", 0.0), ("-1", -1.0), ("50.5", 50.5)] {
            let spec = config.spec_for(&annotations(&[("target-burst-capacity", value)]), 0);
            assert_eq!(spec.target_burst_capacity, expected, "{value}");
        }
        let operator = AutoscalerConfig::from_yaml(
            "requests-per-second-target-default: \"50\"\ntarget-burst-capacity: \"-1\"\n",
        )
        .unwrap();
        let spec = operator.spec_for(&annotations(&[("metric", "rps")]), 0);
        assert_eq!(spec.target_per_instance, 35.0);
        assert_eq!(spec.target_burst_capacity, -1.0);
    }

    #[test]
    fn bad_rps_and_burst_settings_are_refused() {
        let err = AutoscalerConfig::from_yaml("target-burst-capacity: \"-2\"").unwrap_err();
        assert!(err.contains("non-negative or -1"), "{err}");
        let err =
            AutoscalerConfig::from_yaml("requests-per-second-target-default: \"0\"").unwrap_err();
        assert!(err.contains("at least 0.01"), "{err}");
        let err =
            AutoscalerConfig::from_yaml("requests-per-second-target-default: lots").unwrap_err();
        assert!(err.contains("not a number"), "{err}");
    }

    #[test]
    fn request_timeouts_are_carried_from_the_revision() {
        use okonomi_knative::RevisionSpec;
        let config = AutoscalerConfig::default();
        let mut revision = Revision::new("hello-00001", RevisionSpec::default());
        // Nothing set (no admission defaulting): Knative's 300s in all.
        let spec = config.spec_for_revision(&revision);
        assert_eq!(
            spec.request_timeouts,
            RequestTimeouts {
                total: Some(Duration::from_secs(300)),
                response_start: None,
                idle: None,
            }
        );
        revision.spec.timeout_seconds = Some(120);
        revision.spec.response_start_timeout_seconds = Some(10);
        revision.spec.idle_timeout_seconds = Some(30);
        revision.spec.container_concurrency = Some(4);
        revision.metadata.annotations = Some(annotations(&[("metric", "rps")]));
        let spec = config.spec_for_revision(&revision);
        assert_eq!(
            spec.request_timeouts,
            RequestTimeouts {
                total: Some(Duration::from_secs(120)),
                response_start: Some(Duration::from_secs(10)),
                idle: Some(Duration::from_secs(30)),
            }
        );
        assert_eq!(spec.container_concurrency, 4);
        assert_eq!(spec.metric, ScalingMetric::Rps);
        // Zero sets no timer, as in Knative's queue-proxy.
        revision.spec.timeout_seconds = Some(0);
        revision.spec.idle_timeout_seconds = Some(0);
        let spec = config.spec_for_revision(&revision);
        assert_eq!(spec.request_timeouts.total, None);
        assert_eq!(spec.request_timeouts.idle, None);
    }
}
