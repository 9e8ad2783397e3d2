//! Printers for the built-in kinds: the columns `kubectl get` shows against
//! Kubernetes, computed in code as Kubernetes' own printers are (READY counts
//! containers, STATUS picks a container's reason, LAST SEEN reads three fields).

use serde_json::{Value, json};

use super::human_duration_since;
use crate::builtin::Builtin;
use crate::resource::ResourceType;

/// One column of a built-in printer.
pub(super) struct Column {
    pub name: &'static str,
    pub type_: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    pub priority: i32,
}

const fn col(
    name: &'static str,
    type_: &'static str,
    priority: i32,
    description: &'static str,
) -> Column {
    Column {
        name,
        type_,
        format: if matches!(name.as_bytes(), b"Name") {
            "name"
        } else {
            ""
        },
        description,
        priority,
    }
}

const NAME: Column = col(
    "Name",
    "string",
    0,
    "Name must be unique within a namespace.",
);
const AGE: Column = col(
    "Age",
    "string",
    0,
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);
/// The wide columns of Deployments and ReplicaSets alike.
const CONTAINERS: Column = col(
    "Containers",
    "string",
    1,
    "Names of each container in the template.",
);
const IMAGES: Column = col(
    "Images",
    "string",
    1,
    "Images referenced by each container in the template.",
);

const POD: &[Column] = &[
    NAME,
    col(
        "Ready",
        "string",
        0,
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    col(
        "Status",
        "string",
        0,
        "The aggregate status of the containers in this pod.",
    ),
    col(
        "Restarts",
        "string",
        0,
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    col("IP", "string", 1, "IP address allocated to the pod."),
    col(
        "Node",
        "string",
        1,
        "Name of the Node this pod is assigned to.",
    ),
    col(
        "Nominated Node",
        "string",
        1,
        "Name of the Node this pod is nominated to, if any.",
    ),
    col(
        "Readiness Gates",
        "string",
        1,
        "The readiness gates of this pod, if any.",
    ),
];
const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "string", 0, "Number of the pod with ready state"),
    col(
        "Up-to-date",
        "integer",
        0,
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    col(
        "Available",
        "integer",
        0,
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    col(
        "Selector",
        "string",
        1,
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.",
    ),
];
const REPLICA_SET: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        0,
        "Replicas is the number of desired replicas.",
    ),
    col(
        "Current",
        "integer",
        0,
        "Replicas is the most recently observed number of replicas.",
    ),
    col(
        "Ready",
        "integer",
        0,
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    col(
        "Selector",
        "string",
        1,
        "Selector is a label query over pods that should match the replica count.",
    ),
];
const EVENT: &[Column] = &[
    col(
        "Last Seen",
        "string",
        0,
        "Time when last this event was seen.",
    ),
    col("Type", "string", 0, "Type of this event (Normal, Warning)."),
    col("Reason", "string", 0, "Why the action was taken."),
    col(
        "Object",
        "string",
        0,
        "The object that this event is about.",
    ),
    col(
        "Subobject",
        "string",
        1,
        "The subobject (a field path) that this event is about.",
    ),
    col("Source", "string", 1, "The component reporting this event."),
    col(
        "Message",
        "string",
        0,
        "A human-readable description of the status of this operation.",
    ),
    col(
        "First Seen",
        "string",
        1,
        "The time at which the event was first recorded.",
    ),
    col(
        "Count",
        "string",
        1,
        "The number of times this event has occurred.",
    ),
    col(
        "Name",
        "string",
        1,
        "Name must be unique within a namespace.",
    ),
];
const CONFIG_MAP: &[Column] = &[
    NAME,
    col("Data", "string", 0, "Data contains the configuration data."),
    AGE,
];
const SECRET: &[Column] = &[
    NAME,
    col("Type", "string", 0, "The type of the secret"),
    col("Data", "string", 0, "The number of keys in the secret"),
    AGE,
];
const SERVICE_ACCOUNT: &[Column] = &[
    NAME,
    col(
        "Secrets",
        "string",
        0,
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
    ),
    AGE,
];

/// How a printer fills a row from an object.
type Cells = fn(&Value) -> Vec<Value>;

/// A built-in printer: its columns and how to fill a row.
pub(super) struct Printer {
    pub columns: &'static [Column],
    pub cells: Cells,
}

/// The printer of a built-in kind, if it has one.
pub(super) fn find(rt: &ResourceType) -> Option<Printer> {
    let (columns, cells): (&'static [Column], Cells) = match Builtin::of(rt)? {
        Builtin::Pod => (POD, pod),
        Builtin::Deployment => (DEPLOYMENT, deployment),
        Builtin::ReplicaSet => (REPLICA_SET, replica_set),
        Builtin::Event => (EVENT, event),
        Builtin::EventsV1 => (EVENT, event_v1),
        Builtin::ConfigMap => (CONFIG_MAP, config_map),
        Builtin::Secret => (SECRET, secret),
        Builtin::ServiceAccount => (SERVICE_ACCOUNT, service_account),
        Builtin::Namespace | Builtin::PodAutoscaler => return None,
    };
    Some(Printer { columns, cells })
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn int_at(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn array_at<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn name(object: &Value) -> Value {
    json!(str_at(object, "/metadata/name"))
}

fn age(object: &Value) -> Value {
    json!(human_duration_since(str_at(
        object,
        "/metadata/creationTimestamp"
    )))
}

fn none_if_empty(text: &str) -> Value {
    json!(if text.is_empty() { "<none>" } else { text })
}

fn count_of(object: &Value, fields: &[&str]) -> Value {
    let n: usize = fields
        .iter()
        .filter_map(|f| object.get(*f).and_then(Value::as_object))
        .map(serde_json::Map::len)
        .sum();
    json!(n)
}

/// kubectl's pod STATUS and READY, following Kubernetes' `printPod`.
fn pod(object: &Value) -> Vec<Value> {
    let total = array_at(object, "/spec/containers").len();
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart: Option<String> = None;
    let mut reason = str_at(object, "/status/phase").to_string();
    if !str_at(object, "/status/reason").is_empty() {
        reason = str_at(object, "/status/reason").to_string();
    }
    let mut initializing = false;
    let init_statuses = array_at(object, "/status/initContainerStatuses");
    let init_total = array_at(object, "/spec/initContainers").len();
    for (i, status) in init_statuses.iter().enumerate() {
        restarts += int_at(status, "/restartCount");
        let exit = status
            .pointer("/state/terminated/exitCode")
            .and_then(Value::as_i64);
        if exit == Some(0) {
            continue;
        }
        initializing = true;
        let terminated_reason = str_at(status, "/state/terminated/reason");
        let waiting_reason = str_at(status, "/state/waiting/reason");
        reason = if exit.is_some() {
            if terminated_reason.is_empty() {
                format!("Init:ExitCode:{}", exit.unwrap_or(0))
            } else {
                format!("Init:{terminated_reason}")
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{init_total}")
        };
        break;
    }
    if !initializing {
        restarts = 0;
        let mut has_running = false;
        for status in array_at(object, "/status/containerStatuses").iter().rev() {
            restarts += int_at(status, "/restartCount");
            if let Some(finished) = status
                .pointer("/lastState/terminated/finishedAt")
                .and_then(Value::as_str)
                && last_restart.as_deref().is_none_or(|l| finished > l)
            {
                last_restart = Some(finished.to_string());
            }
            let waiting = str_at(status, "/state/waiting/reason");
            let terminated = status.pointer("/state/terminated");
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(terminated) = terminated {
                let why = str_at(terminated, "/reason");
                reason = if !why.is_empty() {
                    why.to_string()
                } else if int_at(terminated, "/signal") != 0 {
                    format!("Signal:{}", int_at(terminated, "/signal"))
                } else {
                    format!("ExitCode:{}", int_at(terminated, "/exitCode"))
                };
            } else if status.get("ready") == Some(&Value::Bool(true))
                && status.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = array_at(object, "/status/conditions")
                .iter()
                .any(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        reason = if str_at(object, "/status/reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let restarts = match last_restart {
        Some(when) => format!("{restarts} ({} ago)", human_duration_since(&when)),
        None => restarts.to_string(),
    };
    let gates = array_at(object, "/spec/readinessGates");
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = array_at(object, "/status/conditions");
        let met = gates
            .iter()
            .filter(|g| {
                conditions.iter().any(|c| {
                    str_at(c, "/type") == str_at(g, "/conditionType")
                        && str_at(c, "/status") == "True"
                })
            })
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        name(object),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
        age(object),
        none_if_empty(str_at(object, "/status/podIP")),
        none_if_empty(str_at(object, "/spec/nodeName")),
        none_if_empty(str_at(object, "/status/nominatedNodeName")),
        json!(gates),
    ]
}

/// `k=v,k2=v2` of a label selector's matchLabels (and `k in (a,b)` style
/// expressions), as kubectl shows a selector.
fn selector(object: &Value) -> String {
    let mut parts: Vec<String> = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for expression in array_at(object, "/spec/selector/matchExpressions") {
        let key = str_at(expression, "/key");
        let values: Vec<&str> = array_at(expression, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match str_at(expression, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    parts.sort();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn containers_and_images(object: &Value) -> (Value, Value) {
    let containers = array_at(object, "/spec/template/spec/containers");
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

fn deployment(object: &Value) -> Vec<Value> {
    let desired = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (containers, images) = containers_and_images(object);
    vec![
        name(object),
        json!(format!(
            "{}/{desired}",
            int_at(object, "/status/readyReplicas")
        )),
        json!(int_at(object, "/status/updatedReplicas")),
        json!(int_at(object, "/status/availableReplicas")),
        age(object),
        containers,
        images,
        json!(selector(object)),
    ]
}

fn replica_set(object: &Value) -> Vec<Value> {
    let desired = object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let (containers, images) = containers_and_images(object);
    vec![
        name(object),
        json!(desired),
        json!(int_at(object, "/status/replicas")),
        json!(int_at(object, "/status/readyReplicas")),
        age(object),
        containers,
        images,
        json!(selector(object)),
    ]
}

/// Kubernetes' `printEvent`: LAST SEEN from the series, lastTimestamp or
/// eventTime; OBJECT as `kind/name`.
fn event(object: &Value) -> Vec<Value> {
    let first = match str_at(object, "/firstTimestamp") {
        "" => human_duration_since(str_at(object, "/eventTime")),
        t => human_duration_since(t),
    };
    let mut last = match str_at(object, "/lastTimestamp") {
        "" => first.clone(),
        t => human_duration_since(t),
    };
    let mut count = int_at(object, "/count");
    if object.get("series").is_some_and(|s| !s.is_null()) {
        last = human_duration_since(str_at(object, "/series/lastObservedTime"));
        count = int_at(object, "/series/count");
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(object, "/involvedObject/kind").to_ascii_lowercase();
    let target = match str_at(object, "/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let mut source = str_at(object, "/source/component").to_string();
    if source.is_empty() {
        source = str_at(object, "/reportingComponent").to_string();
    }
    let host = match str_at(object, "/source/host") {
        "" => str_at(object, "/reportingInstance"),
        h => h,
    };
    if !host.is_empty() {
        source = format!("{source}, {host}");
    }
    vec![
        json!(last),
        json!(str_at(object, "/type")),
        json!(str_at(object, "/reason")),
        json!(target),
        json!(str_at(object, "/involvedObject/fieldPath")),
        json!(source),
        json!(str_at(object, "/message").trim()),
        json!(first),
        json!(count),
        name(object),
    ]
}

fn event_v1(object: &Value) -> Vec<Value> {
    event(&crate::builtin::events::to_core(object))
}

fn config_map(object: &Value) -> Vec<Value> {
    vec![
        name(object),
        count_of(object, &["data", "binaryData"]),
        age(object),
    ]
}

fn secret(object: &Value) -> Vec<Value> {
    vec![
        name(object),
        json!(str_at(object, "/type")),
        count_of(object, &["data"]),
        age(object),
    ]
}

fn service_account(object: &Value) -> Vec<Value> {
    vec![
        name(object),
        json!(array_at(object, "/secrets").len()),
        age(object),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pod_status_follows_kubernetes() {
        let running = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "user-container"}, {"name": "queue-proxy"}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1", "containerStatuses": [
                {"name": "user-container", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2020-01-01T00:00:00Z"}}},
                {"name": "queue-proxy", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
            ]},
        });
        let cells = pod(&running);
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert!(
            cells[3].as_str().unwrap().starts_with("2 ("),
            "{}",
            cells[3]
        );
        assert_eq!(cells[5], "127.0.0.1");
        assert_eq!(cells[6], "<none>");
        let mut terminating = running.clone();
        terminating["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
        assert_eq!(pod(&terminating)[2], "Terminating");
        let pending = json!({"metadata": {"name": "p"}, "spec": {"containers": [{}]}, "status": {"phase": "Pending"}});
        assert_eq!(pod(&pending)[1], "0/1");
        assert_eq!(pod(&pending)[2], "Pending");
    }

    #[test]
    fn event_object_and_count() {
        let e = json!({
            "metadata": {"name": "hello.1"},
            "involvedObject": {"kind": "Service", "name": "hello"},
            "reason": "Created", "message": " made it ", "type": "Normal",
            "lastTimestamp": "2020-01-01T00:00:00Z", "count": 4,
        });
        let cells = event(&e);
        assert_eq!(cells[3], "service/hello");
        assert_eq!(cells[6], "made it");
        assert_eq!(cells[8], 4);
    }
}
