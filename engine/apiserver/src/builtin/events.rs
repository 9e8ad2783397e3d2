//! Events are stored once, as core `v1` Events, and served in two views as in
//! Kubernetes: core `v1` and `events.k8s.io/v1`. An event written through either
//! shows in both. The fields map as Kubernetes converts them (message ↔ note,
//! involvedObject ↔ regarding, source ↔ reportingController/Instance,
//! count ↔ series, first/lastTimestamp ↔ eventTime), filling a view's fields
//! from the other API's when only those were written.

use serde_json::{Map, Value, json};

/// `2026-01-02T03:04:05Z` as a MicroTime (`2026-01-02T03:04:05.000000Z`).
fn micro(time: &str) -> String {
    match time.strip_suffix('Z') {
        Some(base) if !base.contains('.') => format!("{base}.000000Z"),
        _ => time.to_string(),
    }
}

/// A MicroTime cut to whole seconds, as a core Time.
fn seconds(time: &str) -> String {
    match time.split_once('.') {
        Some((base, _)) => format!("{base}Z"),
        None => time.to_string(),
    }
}

fn present(object: &Map<String, Value>, field: &str) -> Option<Value> {
    object.get(field).filter(|v| !v.is_null()).cloned()
}

fn text(value: &Option<Value>) -> Option<&str> {
    value
        .as_ref()
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn put(out: &mut Map<String, Value>, field: &str, value: Option<Value>) {
    if let Some(value) = value {
        out.insert(field.into(), value);
    }
}

/// A stored core Event as `events.k8s.io/v1` shows it.
pub(crate) fn to_events_v1(core: &Value) -> Value {
    let Some(core) = core.as_object() else {
        return core.clone();
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("events.k8s.io/v1"));
    out.insert("kind".into(), json!("Event"));
    put(&mut out, "metadata", present(core, "metadata"));
    let first = present(core, "firstTimestamp");
    let last = present(core, "lastTimestamp");
    let event_time = present(core, "eventTime").or_else(|| text(&first).map(|t| json!(micro(t))));
    put(&mut out, "eventTime", event_time);
    let count = present(core, "count");
    let series = present(core, "series").or_else(|| {
        let n = count.as_ref().and_then(Value::as_i64).filter(|n| *n > 1)?;
        Some(json!({"count": n, "lastObservedTime": micro(text(&last)?)}))
    });
    put(&mut out, "series", series);
    let source = present(core, "source");
    let controller = present(core, "reportingComponent")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        .or_else(|| source.as_ref().and_then(|s| s.get("component")).cloned());
    put(&mut out, "reportingController", controller);
    let instance = present(core, "reportingInstance")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        .or_else(|| source.as_ref().and_then(|s| s.get("host")).cloned());
    put(&mut out, "reportingInstance", instance);
    put(&mut out, "action", present(core, "action"));
    put(&mut out, "reason", present(core, "reason"));
    put(&mut out, "regarding", present(core, "involvedObject"));
    put(&mut out, "related", present(core, "related"));
    put(&mut out, "note", present(core, "message"));
    put(&mut out, "type", present(core, "type"));
    put(&mut out, "deprecatedSource", source);
    put(&mut out, "deprecatedFirstTimestamp", first);
    put(&mut out, "deprecatedLastTimestamp", last);
    put(&mut out, "deprecatedCount", count);
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event as it is stored (a core Event).
pub(crate) fn to_core(v1: &Value) -> Value {
    let Some(v1) = v1.as_object() else {
        return v1.clone();
    };
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    put(&mut out, "metadata", present(v1, "metadata"));
    out.insert(
        "involvedObject".into(),
        present(v1, "regarding").unwrap_or_else(|| json!({})),
    );
    put(&mut out, "reason", present(v1, "reason"));
    put(&mut out, "message", present(v1, "note"));
    put(&mut out, "type", present(v1, "type"));
    put(&mut out, "action", present(v1, "action"));
    put(&mut out, "related", present(v1, "related"));
    let event_time = present(v1, "eventTime");
    let series = present(v1, "series");
    put(&mut out, "eventTime", event_time.clone());
    put(&mut out, "series", series.clone());
    let controller = present(v1, "reportingController");
    let instance = present(v1, "reportingInstance");
    put(&mut out, "reportingComponent", controller.clone());
    put(&mut out, "reportingInstance", instance.clone());
    let source = present(v1, "deprecatedSource").or_else(|| {
        let mut source = Map::new();
        put(&mut source, "component", controller);
        put(&mut source, "host", instance);
        (!source.is_empty()).then_some(Value::Object(source))
    });
    put(&mut out, "source", source);
    let first = present(v1, "deprecatedFirstTimestamp")
        .or_else(|| text(&event_time).map(|t| json!(seconds(t))));
    let last = present(v1, "deprecatedLastTimestamp")
        .or_else(|| {
            series
                .as_ref()
                .and_then(|s| s.get("lastObservedTime"))
                .and_then(Value::as_str)
                .map(|t| json!(seconds(t)))
        })
        .or_else(|| first.clone());
    put(&mut out, "firstTimestamp", first);
    put(&mut out, "lastTimestamp", last);
    let count = present(v1, "deprecatedCount")
        .or_else(|| series.as_ref().and_then(|s| s.get("count")).cloned())
        .unwrap_or_else(|| json!(1));
    out.insert("count".into(), count);
    Value::Object(out)
}

/// The core field a field selector on `events.k8s.io/v1` names by its new name.
pub(crate) fn core_field(field: &str) -> String {
    if let Some(rest) = field.strip_prefix("regarding.") {
        return format!("involvedObject.{rest}");
    }
    match field {
        "reportingController" => "reportingComponent".into(),
        "note" => "message".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_event_shows_in_the_new_api_and_back() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "hello.1", "namespace": "default"},
            "involvedObject": {"kind": "Service", "name": "hello", "namespace": "default"},
            "reason": "Created", "message": "Created revision hello-00001", "type": "Normal",
            "source": {"component": "service-controller"},
            "firstTimestamp": "2026-01-02T03:04:05Z", "lastTimestamp": "2026-01-02T03:05:05Z",
            "count": 3,
        });
        let v1 = to_events_v1(&core);
        assert_eq!(v1["note"], "Created revision hello-00001");
        assert_eq!(v1["regarding"]["name"], "hello");
        assert_eq!(v1["reportingController"], "service-controller");
        assert_eq!(v1["eventTime"], "2026-01-02T03:04:05.000000Z");
        assert_eq!(v1["series"]["count"], 3);
        assert_eq!(
            v1["series"]["lastObservedTime"],
            "2026-01-02T03:05:05.000000Z"
        );
        let back = to_core(&v1);
        for field in [
            "involvedObject",
            "reason",
            "message",
            "type",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
        ] {
            assert_eq!(back[field], core[field], "{field}");
        }
    }

    #[test]
    fn a_new_event_shows_in_the_core_api() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "p.1", "namespace": "default"},
            "eventTime": "2026-01-02T03:04:05.123456Z",
            "reportingController": "okonomi.dev/kubelet", "reportingInstance": "engine",
            "action": "Started", "reason": "Started", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "p"}, "note": "Started container",
        });
        let core = to_core(&v1);
        assert_eq!(core["message"], "Started container");
        assert_eq!(core["involvedObject"]["kind"], "Pod");
        assert_eq!(core["source"]["component"], "okonomi.dev/kubelet");
        assert_eq!(core["firstTimestamp"], "2026-01-02T03:04:05Z");
        assert_eq!(core["lastTimestamp"], "2026-01-02T03:04:05Z");
        assert_eq!(core["count"], 1);
    }
}
