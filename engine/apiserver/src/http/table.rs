//! `meta.k8s.io` `Table` responses for `kubectl get`: the built-in kinds through
//! their own printers ([`printers`]), the others as NAME, then the type's printer
//! columns evaluated with the small JSONPath subset CRDs use.

mod printers;

use serde_json::{Value, json};

use crate::resource::{PrinterColumn, ResourceType};

/// The Table version a client asked for, if any.
pub(super) fn requested(accept: &str) -> Option<&'static str> {
    for item in accept.split(',') {
        let params: Vec<&str> = item.split(';').map(str::trim).collect();
        if params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io") {
            if params.contains(&"v=v1") {
                return Some("meta.k8s.io/v1");
            }
            if params.contains(&"v=v1beta1") {
                return Some("meta.k8s.io/v1beta1");
            }
        }
    }
    None
}

fn columns(rt: &ResourceType) -> Vec<PrinterColumn> {
    let mut columns = rt.printer_columns.clone();
    if rt.group.is_empty() {
        // Built-in types end with AGE, as kubectl shows for namespaces.
        columns.push(PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            json_path: ".metadata.creationTimestamp".into(),
            priority: 0,
        });
    }
    columns
}

fn column_definitions(rt: &ResourceType) -> Vec<Value> {
    if let Some(printer) = printers::find(rt) {
        return printer
            .columns
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "type": c.type_,
                    "format": c.format,
                    "description": c.description,
                    "priority": c.priority,
                })
            })
            .collect();
    }
    let mut defs = vec![json!({
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": "Name must be unique within a namespace.",
        "priority": 0,
    })];
    defs.extend(columns(rt).iter().map(|c| {
        json!({
            "name": c.name,
            "type": if c.type_ == "date" { "string" } else { c.type_.as_str() },
            "format": "",
            "description": format!("{} ({})", c.name, c.json_path),
            "priority": c.priority,
        })
    }));
    defs
}

fn row(rt: &ResourceType, object: &Value, include_object: &str) -> Value {
    let cells = match printers::find(rt) {
        Some(printer) => (printer.cells)(object),
        None => cells(rt, object),
    };
    let object = match include_object {
        "None" => Value::Null,
        "Object" => object.clone(),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    };
    json!({"cells": cells, "object": object})
}

/// The cells of a kind without a printer: NAME, then its columns.
fn cells(rt: &ResourceType, object: &Value) -> Vec<Value> {
    let mut cells = vec![
        object
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
    ];
    for column in columns(rt) {
        let value = evaluate(&column.json_path, object);
        cells.push(match (value, column.type_.as_str()) {
            (Some(Value::String(ts)), "date") => Value::String(human_duration_since(&ts)),
            (Some(v @ Value::String(_)), _)
            | (Some(v @ Value::Number(_)), _)
            | (Some(v @ Value::Bool(_)), _) => v,
            (Some(Value::Null), _) | (None, _) => Value::Null,
            (Some(other), _) => Value::String(other.to_string()),
        });
    }
    cells
}

/// A Table of `objects`. `with_columns: false` leaves out the column definitions
/// (watch events after the first, as the real API server does).
pub(super) fn table(
    rt: &ResourceType,
    table_version: &str,
    objects: &[Value],
    resource_version: Option<String>,
    include_object: &str,
    with_columns: bool,
) -> Value {
    let mut metadata = serde_json::Map::new();
    if let Some(rv) = resource_version {
        metadata.insert("resourceVersion".into(), Value::String(rv));
    }
    json!({
        "kind": "Table",
        "apiVersion": table_version,
        "metadata": metadata,
        "columnDefinitions": if with_columns { column_definitions(rt) } else { Vec::new() },
        "rows": objects.iter().map(|o| row(rt, o, include_object)).collect::<Vec<_>>(),
    })
}

/// The time since `timestamp` as kubectl shows ages (`45s`, `3m20s`, `17m`,
/// `5h3m`, `3d4h`, `400d`, `2y30d`), following Kubernetes' `HumanDuration`;
/// `<unknown>` for a missing or unreadable timestamp.
pub(super) fn human_duration_since(timestamp: &str) -> String {
    let Ok(then) = timestamp.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    human_duration(jiff::Timestamp::now().as_second() - then.as_second())
}

fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let s = seconds.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let minutes = s / 60;
    if minutes < 10 {
        return match s % 60 {
            0 => format!("{minutes}m"),
            rest => format!("{minutes}m{rest}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = s / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            rest => format!("{hours}h{rest}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            rest => format!("{}d{rest}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            rest => format!("{}y{rest}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// One step of a JSONPath.
#[derive(Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    Filter { key: String, value: String },
}

fn parse(path: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let chars: Vec<char> = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .chars()
        .collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let end = find_close(&chars, i)?;
                let inner: String = chars[i + 1..end].iter().collect();
                let inner = inner.trim();
                if let Some(quoted) = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    steps.push(Step::Field(quoted.replace("\\.", ".")));
                } else if let Some(filter) =
                    inner.strip_prefix("?(").and_then(|s| s.strip_suffix(')'))
                {
                    let filter = filter.trim().strip_prefix("@.")?;
                    let (key, value) = filter.split_once("==")?;
                    let value = value.trim().trim_matches('\'').trim_matches('"');
                    steps.push(Step::Filter {
                        key: key.trim().into(),
                        value: value.into(),
                    });
                } else {
                    steps.push(Step::Index(inner.parse().ok()?));
                }
                i = end + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut i = open + 1;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) if c == '\\' => i += 1,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == ']' => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// The first value `path` selects in `object`.
pub(super) fn evaluate(path: &str, object: &Value) -> Option<Value> {
    let steps = parse(path)?;
    let mut current = vec![object];
    for step in &steps {
        let mut next = Vec::new();
        for value in current {
            match step {
                Step::Field(name) => {
                    if let Some(v) = value.get(name) {
                        next.push(v);
                    }
                }
                Step::Index(i) => {
                    if let Some(v) = value.get(*i) {
                        next.push(v);
                    }
                }
                Step::Filter { key, value: want } => {
                    if let Some(items) = value.as_array() {
                        next.extend(items.iter().filter(|item| {
                            item.get(key).is_some_and(|v| match v {
                                Value::String(s) => s == want,
                                other => want.as_str() == other.to_string().as_str(),
                            })
                        }));
                    }
                }
            }
        }
        current = next;
    }
    current.first().map(|v| (*v).clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let o = json!({
            "metadata": {"labels": {"serving.knative.dev/configuration": "hello"}},
            "status": {"url": "http://x", "conditions": [
                {"type": "ConfigurationsReady", "status": "False"},
                {"type": "Ready", "status": "True", "reason": "Fine"}
            ]}
        });
        assert_eq!(evaluate(".status.url", &o), Some(json!("http://x")));
        assert_eq!(
            evaluate(".status.conditions[?(@.type=='Ready')].status", &o),
            Some(json!("True"))
        );
        assert_eq!(
            evaluate(".status.conditions[?(@.type=='Ready')].reason", &o),
            Some(json!("Fine"))
        );
        assert_eq!(
            evaluate(
                ".metadata.labels['serving\\.knative\\.dev/configuration']",
                &o
            ),
            Some(json!("hello"))
        );
        assert_eq!(
            evaluate(".status.conditions[0].type", &o),
            Some(json!("ConfigurationsReady"))
        );
        assert_eq!(evaluate(".status.missing", &o), None);
    }

    #[test]
    fn ages_as_kubectl_shows_them() {
        let cases = [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (900, "15m"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (3 * 86400 + 4 * 3600, "3d4h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400 + 86400, "3y1d"),
        ];
        for (seconds, shown) in cases {
            assert_eq!(human_duration(seconds), shown, "{seconds}");
        }
    }

    #[test]
    fn table_accept() {
        assert_eq!(
            requested(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ),
            Some("meta.k8s.io/v1")
        );
        assert_eq!(requested("application/json"), None);
    }
}
