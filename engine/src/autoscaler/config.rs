//! Global autoscaler defaults (mirroring Knative's `config-autoscaler`
//! ConfigMap) and their per-revision overrides from annotations.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};

/// Annotation prefix of every per-revision autoscaling setting.
pub const ANNOTATION_PREFIX: &str = "autoscaling.knative.dev/";

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
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            context: format!("reading autoscaler config {}", path.display()),
            source,
        })?;
        Self::from_yaml(&text).map_err(|message| Error::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses the YAML text of the config file (see [`AutoscalerConfig::load`]).
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
        let map = match value.get("data") {
            Some(data) => data.clone(),
            None => value,
        };
        let map = match map {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => return Ok(Self::default()),
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
        Self::from_settings(&settings)
    }

    /// Applies `config-autoscaler` keys (string values, as in a ConfigMap)
    /// over the defaults, validating them as Knative does.
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Result<Self, String> {
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
                // activator and one metric) are accepted and ignored.
                "_example"
                | "requests-per-second-target-default"
                | "target-burst-capacity"
                | "pod-autoscaler-class"
                | "activator-capacity"
                | "min-non-zero-replicas" => {}
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

        let utilization = float(&["target-utilization-percentage"])
            .map(percentage)
            .unwrap_or(self.container_concurrency_target_percentage);
        // Knative: the target annotation wins, else containerConcurrency (a
        // hard limit) when set, else the soft default; a target above a hard
        // limit is capped to it.
        let mut target =
            float(&["target"])
                .filter(|t| *t > 0.0)
                .unwrap_or(if container_concurrency > 0 {
                    f64::from(container_concurrency)
                } else {
                    self.container_concurrency_target_default
                });
        if container_concurrency > 0 {
            target = target.min(f64::from(container_concurrency));
        }
        let target_per_instance = (target * utilization / 100.0).max(0.01);

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
            target_per_instance,
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
            scale_down_delay: duration(&["scale-down-delay"]).unwrap_or(self.scale_down_delay),
        }
    }
}

/// Everything the KPA needs to know about one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingSpec {
    /// Concurrency to aim for per instance: target × utilization.
    pub target_per_instance: f64,
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
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/reference/knative_serving/config/core/configmaps/autoscaler.yaml"
        ))
        .expect("the reference config-autoscaler (../shared/reference) is readable");
        // The reference keeps every setting inside `_example`: uncomment it
        // the way an operator would, so each documented value is checked.
        let value: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
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
}
