//! The `autoscaling.knative.dev/*` annotation rules (Knative's
//! `pkg/apis/autoscaling` validation): numbers in range, min ≤ max,
//! durations at second precision inside their windows.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{FieldError, FieldErrors, ValidationConfig, parse_duration};
use crate::keys;

/// Older camelCase spellings Knative still accepts beside the kebab-case keys.
const ALIASES: [(&str, &str); 6] = [
    (
        keys::MIN_SCALE_ANNOTATION,
        "autoscaling.knative.dev/minScale",
    ),
    (
        keys::MAX_SCALE_ANNOTATION,
        "autoscaling.knative.dev/maxScale",
    ),
    (
        keys::INITIAL_SCALE_ANNOTATION,
        "autoscaling.knative.dev/initialScale",
    ),
    (
        keys::SCALE_DOWN_DELAY_ANNOTATION,
        "autoscaling.knative.dev/scaleDownDelay",
    ),
    (
        keys::TARGET_UTILIZATION_ANNOTATION,
        "autoscaling.knative.dev/targetUtilizationPercentage",
    ),
    (
        keys::TARGET_BURST_CAPACITY_ANNOTATION,
        "autoscaling.knative.dev/targetBurstCapacity",
    ),
];

struct Reader<'a> {
    annotations: &'a BTreeMap<String, String>,
    base: &'a str,
    errors: FieldErrors,
}

impl<'a> Reader<'a> {
    fn path(&self, key: &str) -> String {
        super::join(self.base, key)
    }

    /// The value under `key` or its alias (both set is an error), with the key used.
    fn get(&mut self, key: &'static str) -> Option<(&'a str, String)> {
        let alias = ALIASES
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, alias)| *alias);
        let main = self.annotations.get(key);
        let old = alias.and_then(|alias| self.annotations.get(alias));
        match (main, old, alias) {
            (Some(_), Some(_), Some(alias)) => {
                self.errors.push(FieldError::invalid(
                    self.path(key),
                    format!("set only one of {key} and {alias} (the latter is its old spelling)"),
                ));
                None
            }
            (Some(value), _, _) => Some((value.as_str(), self.path(key))),
            (None, Some(value), Some(alias)) => Some((value.as_str(), self.path(alias))),
            _ => None,
        }
    }

    fn int(&mut self, key: &'static str, min: i64, max: Option<i64>) -> Option<i64> {
        let (value, path) = self.get(key)?;
        match value.trim().parse::<i64>() {
            Ok(n) if n >= min && max.is_none_or(|max| n <= max) => Some(n),
            Ok(n) => {
                let range = match max {
                    Some(max) => format!("{min} <= {n} <= {max}"),
                    None => format!("{n} >= {min}"),
                };
                self.errors
                    .push(FieldError::invalid(path, format!("expected {range}")));
                None
            }
            Err(_) => {
                self.errors.push(FieldError::invalid(
                    path,
                    format!("{value:?} is not a whole number"),
                ));
                None
            }
        }
    }

    fn float(
        &mut self,
        key: &'static str,
        min: f64,
        max: Option<f64>,
        extra_ok: Option<f64>,
    ) -> Option<f64> {
        let (value, path) = self.get(key)?;
        match value.trim().parse::<f64>() {
            Ok(x)
                if x.is_finite()
                    && (Some(x) == extra_ok || (x >= min && max.is_none_or(|max| x <= max))) =>
            {
                Some(x)
            }
            Ok(x) => {
                let range = match max {
                    Some(max) => format!("{min} <= {x} <= {max}"),
                    None => format!("{x} >= {min}"),
                };
                self.errors
                    .push(FieldError::invalid(path, format!("expected {range}")));
                None
            }
            Err(_) => {
                self.errors.push(FieldError::invalid(
                    path,
                    format!("{value:?} is not a number"),
                ));
                None
            }
        }
    }

    fn duration(&mut self, key: &'static str, min: Duration, max: Duration) -> Option<Duration> {
        let (value, path) = self.get(key)?;
        match parse_duration(value) {
            Ok(d) if d.subsec_nanos() != 0 => {
                self.errors.push(FieldError::invalid(
                    path,
                    format!("{value:?} must be whole seconds"),
                ));
                None
            }
            Ok(d) if d < min || d > max => {
                self.errors.push(FieldError::invalid(
                    path,
                    format!(
                        "expected {}s <= {value} <= {}s",
                        min.as_secs(),
                        max.as_secs()
                    ),
                ));
                None
            }
            Ok(d) => Some(d),
            Err(problem) => {
                self.errors.push(FieldError::invalid(path, problem));
                None
            }
        }
    }
}

/// Checks the autoscaling annotations of a Revision template (`base` is the
/// path of the annotations map, e.g. `spec.template.metadata.annotations`).
pub fn validate_autoscaling_annotations(
    annotations: &BTreeMap<String, String>,
    base: &str,
    config: &ValidationConfig,
) -> FieldErrors {
    let mut r = Reader {
        annotations,
        base,
        errors: FieldErrors::new(),
    };

    let class = match annotations.get(keys::AUTOSCALING_CLASS_ANNOTATION) {
        Some(class) if class.is_empty() => {
            r.errors.push(FieldError::invalid(
                r.path(keys::AUTOSCALING_CLASS_ANNOTATION),
                format!(
                    "must not be empty; use {} or {}",
                    keys::KPA_CLASS,
                    keys::HPA_CLASS
                ),
            ));
            keys::KPA_CLASS
        }
        Some(class) => class.as_str(),
        None => keys::KPA_CLASS,
    };

    if let Some(metric) = annotations.get(keys::METRIC_ANNOTATION) {
        let allowed: &[&str] = match class {
            keys::KPA_CLASS => &[keys::METRIC_CONCURRENCY, keys::METRIC_RPS],
            keys::HPA_CLASS => &[keys::METRIC_CPU, keys::METRIC_MEMORY],
            _ => &[],
        };
        // Other classes belong to custom autoscalers, which define their own metrics.
        if !allowed.is_empty() && !allowed.contains(&metric.as_str()) {
            r.errors.push(FieldError::not_supported(
                r.path(keys::METRIC_ANNOTATION),
                format!("{metric:?} is not a metric of class {class}; use one of {allowed:?}"),
            ));
        }
    }

    let max_limit = (config.max_scale_limit > 0).then_some(i64::from(config.max_scale_limit));
    let min = r.int(keys::MIN_SCALE_ANNOTATION, 0, Some(i64::from(i32::MAX)));
    let max = r.int(
        keys::MAX_SCALE_ANNOTATION,
        0,
        Some(max_limit.unwrap_or(i64::from(i32::MAX))),
    );
    if let Some(limit) = max_limit
        && max == Some(0)
    {
        r.errors.push(FieldError::invalid(
            r.path(keys::MAX_SCALE_ANNOTATION),
            format!("max-scale=0 (unlimited) is above the cluster's max-scale-limit {limit}"),
        ));
    }
    if let (Some(min), Some(max)) = (min, max)
        && max != 0
        && min > max
    {
        r.errors.push(FieldError::invalid(
            r.path(keys::MIN_SCALE_ANNOTATION),
            format!("min-scale={min} is greater than max-scale={max}"),
        ));
    }
    let initial_min = if config.allow_zero_initial_scale {
        0
    } else {
        1
    };
    r.int(
        keys::INITIAL_SCALE_ANNOTATION,
        initial_min,
        Some(i64::from(i32::MAX)),
    );
    r.int(
        keys::ACTIVATION_SCALE_ANNOTATION,
        1,
        Some(i64::from(i32::MAX)),
    );

    r.float(keys::TARGET_ANNOTATION, 0.01, None, None);
    r.float(keys::TARGET_UTILIZATION_ANNOTATION, 1.0, Some(100.0), None);
    r.float(
        keys::TARGET_BURST_CAPACITY_ANNOTATION,
        0.0,
        None,
        Some(-1.0),
    );
    r.float(
        keys::PANIC_WINDOW_PERCENTAGE_ANNOTATION,
        1.0,
        Some(100.0),
        None,
    );
    r.float(
        keys::PANIC_THRESHOLD_PERCENTAGE_ANNOTATION,
        110.0,
        Some(1000.0),
        None,
    );

    let hour = Duration::from_secs(3600);
    if class == keys::KPA_CLASS {
        r.duration(keys::WINDOW_ANNOTATION, Duration::from_secs(6), hour);
    }
    r.duration(keys::SCALE_DOWN_DELAY_ANNOTATION, Duration::ZERO, hour);
    r.duration(
        keys::SCALE_TO_ZERO_POD_RETENTION_PERIOD_ANNOTATION,
        Duration::ZERO,
        hour,
    );

    r.errors
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The annotation keys that fail validation for `pairs`.
    fn invalid(pairs: &[(&str, &str)]) -> Vec<String> {
        let annotations: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        validate_autoscaling_annotations(&annotations, "", &ValidationConfig::default())
            .iter()
            .map(|e| e.field.clone())
            .collect()
    }

    #[test]
    fn rps_and_concurrency_are_the_kpa_metrics() {
        assert!(invalid(&[(keys::METRIC_ANNOTATION, "rps")]).is_empty());
        assert!(invalid(&[(keys::METRIC_ANNOTATION, "concurrency")]).is_empty());
        assert_eq!(
            invalid(&[(keys::METRIC_ANNOTATION, "requests")]),
            vec![keys::METRIC_ANNOTATION]
        );
        // An rps target has the same floor as any other target.
        assert!(
            invalid(&[
                (keys::METRIC_ANNOTATION, "rps"),
                (keys::TARGET_ANNOTATION, "150")
            ])
            .is_empty()
        );
        assert_eq!(
            invalid(&[
                (keys::METRIC_ANNOTATION, "rps"),
                (keys::TARGET_ANNOTATION, "0.001")
            ]),
            vec![keys::TARGET_ANNOTATION]
        );
    }

    #[test]
    fn target_burst_capacity_is_non_negative_or_minus_one() {
        for ok in ["0", "-1", "211", "12.5"] {
            assert!(
                invalid(&[(keys::TARGET_BURST_CAPACITY_ANNOTATION, ok)]).is_empty(),
                "{ok}"
            );
        }
        for bad in ["-2", "-0.5", "lots", "NaN", "inf"] {
            assert_eq!(
                invalid(&[(keys::TARGET_BURST_CAPACITY_ANNOTATION, bad)]),
                vec![keys::TARGET_BURST_CAPACITY_ANNOTATION],
                "{bad}"
            );
        }
        // The old spelling is read, and both at once are refused.
        assert!(invalid(&[("autoscaling.knative.dev/targetBurstCapacity", "-1")]).is_empty());
        assert_eq!(
            invalid(&[
                ("autoscaling.knative.dev/targetBurstCapacity", "-1"),
                (keys::TARGET_BURST_CAPACITY_ANNOTATION, "10"),
            ]),
            vec![keys::TARGET_BURST_CAPACITY_ANNOTATION]
        );
    }
}
