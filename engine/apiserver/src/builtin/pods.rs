//! A Pod's status as Kubernetes' Pod strategy sets it on create: whatever the
//! writer sent is replaced by phase `Pending` and the QoS class of its
//! containers' resources (`GetPodQOS` in Kubernetes' `qos` package). A watcher
//! then sees every new Pod as Pending from its ADDED event, before the kubelet
//! reports anything, as on Kubernetes.

use serde_json::{Value, json};

/// The resources the QoS class is computed from (Kubernetes ignores others).
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// The status a Pod is stored with when it is created.
pub(crate) fn status_on_create(pod: &Value) -> Value {
    json!({"phase": "Pending", "qosClass": qos_class(&pod["spec"])})
}

/// `BestEffort` without any cpu or memory request or limit; `Guaranteed` when
/// every container limits both and its requests (defaulted to the limits)
/// equal them; `Burstable` otherwise.
fn qos_class(spec: &Value) -> &'static str {
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|field| spec[field].as_array())
        .flatten();
    let mut any = false;
    let mut guaranteed = true;
    for container in containers {
        let resources = &container["resources"];
        for resource in QOS_RESOURCES {
            let request = quantity(&resources["requests"][resource]);
            let limit = quantity(&resources["limits"][resource]);
            if request.is_some_and(|q| q != 0.0) || limit.is_some_and(|q| q != 0.0) {
                any = true;
            }
            match (request, limit) {
                // Kubernetes defaults a missing request to the limit.
                (None, Some(limit)) if limit != 0.0 => {}
                (Some(request), Some(limit)) if limit != 0.0 && request == limit => {}
                _ => guaranteed = false,
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// A resource quantity (`500m`, `128Mi`, `1e3`, `2`) as a number, to compare
/// requests with limits written in different units. `None` when absent or not
/// a quantity (validation elsewhere names a malformed one).
fn quantity(value: &Value) -> Option<f64> {
    if let Some(number) = value.as_f64() {
        return Some(number);
    }
    let text = value.as_str()?.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => {
            let power: i32 = exponent.strip_prefix(['e', 'E'])?.parse().ok()?;
            10f64.powi(power)
        }
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_different_units_compare_equal() {
        assert_eq!(quantity(&json!("1")), quantity(&json!("1000m")));
        assert_eq!(quantity(&json!("1Ki")), quantity(&json!(1024)));
        assert_eq!(quantity(&json!("1e3")), quantity(&json!("1k")));
        assert_eq!(quantity(&json!("lots")), None);
        assert_eq!(quantity(&Value::Null), None);
    }

    #[test]
    fn the_qos_class_follows_requests_and_limits() {
        let spec =
            |resources: Value| json!({"containers": [{"name": "c", "resources": resources}]});
        assert_eq!(qos_class(&spec(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&spec(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(json!({
                "requests": {"cpu": "1000m", "memory": "1Gi"},
                "limits": {"cpu": "1", "memory": "1024Mi"},
            }))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&spec(json!({"limits": {"cpu": "1"}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&spec(json!({"requests": {"memory": "64Mi"}}))),
            "Burstable"
        );
    }
}
