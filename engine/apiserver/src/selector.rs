//! Label and field selectors, parsed from their query-string syntax
//! (`app=x,tier!=db,env in (a,b),!legacy`) and matched against JSON objects.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::resource::ResourceType;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

fn bad(selector: &str, why: &str) -> Error {
    Error::BadRequest(format!(
        "unable to parse requirement: invalid label selector {selector:?}: {why}"
    ))
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(value: &str) -> bool {
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Split on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_set(selector: &str, rest: &str) -> Result<BTreeSet<String>> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| bad(selector, "expected a parenthesised list of values"))?;
    let mut set = BTreeSet::new();
    for v in inner.split(',') {
        let v = v.trim();
        if !valid_value(v) {
            return Err(bad(selector, &format!("invalid value {v:?}")));
        }
        set.insert(v.to_string());
    }
    Ok(set)
}

impl LabelSelector {
    /// Parse the `labelSelector` query syntax.
    pub fn parse(selector: &str) -> Result<Self> {
        let mut requirements = Vec::new();
        if selector.trim().is_empty() {
            return Ok(Self { requirements });
        }
        for part in split_top_level(selector) {
            let part = part.trim();
            if part.is_empty() {
                return Err(bad(selector, "empty requirement"));
            }
            let req = if let Some(key) = part.strip_prefix('!') {
                let key = key.trim();
                if !valid_key(key) {
                    return Err(bad(selector, &format!("invalid key {key:?}")));
                }
                Requirement::DoesNotExist(key.into())
            } else if let Some((key, value)) = part.split_once("!=") {
                Requirement::NotEquals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = part.split_once("==") {
                Requirement::Equals(key.trim().into(), value.trim().into())
            } else if let Some((key, value)) = part.split_once('=') {
                Requirement::Equals(key.trim().into(), value.trim().into())
            } else if let Some((key, rest)) = split_word(part, "notin") {
                Requirement::NotIn(key.into(), parse_set(selector, rest)?)
            } else if let Some((key, rest)) = split_word(part, "in") {
                Requirement::In(key.into(), parse_set(selector, rest)?)
            } else {
                Requirement::Exists(part.into())
            };
            let (key, value) = match &req {
                Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, Some(v)),
                Requirement::In(k, _)
                | Requirement::NotIn(k, _)
                | Requirement::Exists(k)
                | Requirement::DoesNotExist(k) => (k, None),
            };
            if !valid_key(key) {
                return Err(bad(selector, &format!("invalid key {key:?}")));
            }
            if let Some(v) = value
                && !valid_value(v)
            {
                return Err(bad(selector, &format!("invalid value {v:?}")));
            }
            requirements.push(req);
        }
        Ok(Self { requirements })
    }

    /// Whether an object with these labels matches.
    pub fn matches_labels(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, set) => get(k).is_some_and(|v| set.contains(v)),
            Requirement::NotIn(k, set) => !get(k).is_some_and(|v| set.contains(v)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::DoesNotExist(k) => get(k).is_none(),
        })
    }

    /// Whether `object` (with `metadata.labels`) matches.
    pub fn matches(&self, object: &Value) -> bool {
        self.matches_labels(
            object
                .pointer("/metadata/labels")
                .and_then(Value::as_object),
        )
    }
}

/// Split `key word rest` where `word` stands alone (surrounded by whitespace).
fn split_word<'a>(part: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    let mut tokens = part.splitn(2, char::is_whitespace);
    let key = tokens.next()?.trim();
    let rest = tokens.next()?.trim_start();
    let after = rest.strip_prefix(word)?;
    if after.starts_with(|c: char| c.is_whitespace() || c == '(') {
        Some((key, after))
    } else {
        None
    }
}

/// One requirement of a field selector: the JSON pointer of the field, the value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    field: String,
    pointer: String,
    value: String,
    negate: bool,
}

/// A parsed field selector. [`parse`](FieldSelector::parse) knows the fields
/// every kind has (`metadata.name`, `metadata.namespace`);
/// [`parse_for`](FieldSelector::parse_for) also those a built-in kind supports
/// (`status.phase` for pods, `involvedObject.name` for events, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parse the `fieldSelector` query syntax over `metadata.name` and
    /// `metadata.namespace`.
    pub fn parse(selector: &str) -> Result<Self> {
        Self::parse_with(
            selector,
            |field| {
                matches!(field, "metadata.name" | "metadata.namespace").then(|| field.to_string())
            },
            "metadata.name and metadata.namespace",
        )
    }

    /// Parse a field selector for objects of `rt`, with the fields its kind supports.
    pub fn parse_for(rt: &ResourceType, selector: &str) -> Result<Self> {
        let mut supported = vec!["metadata.name", "metadata.namespace"];
        supported.extend(crate::builtin::fields::supported(rt));
        Self::parse_with(
            selector,
            |field| crate::builtin::fields::resolve(rt, field),
            &supported.join(", "),
        )
    }

    fn parse_with(
        selector: &str,
        resolve: impl Fn(&str) -> Option<String>,
        supported: &str,
    ) -> Result<Self> {
        let mut requirements = Vec::new();
        if selector.trim().is_empty() {
            return Ok(Self { requirements });
        }
        for part in selector.split(',') {
            let (field, value, negate) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(Error::BadRequest(format!(
                    "invalid field selector {selector:?}: {part:?} is not of the form field=value"
                )));
            };
            let field = field.trim();
            let Some(stored) = resolve(field) else {
                return Err(Error::BadRequest(format!(
                    "field label not supported: {field} (supported: {supported})"
                )));
            };
            requirements.push(FieldRequirement {
                pointer: crate::builtin::fields::pointer(&stored),
                field: stored,
                value: value.trim().into(),
                negate,
            });
        }
        Ok(Self { requirements })
    }

    /// The name this selector pins down with `metadata.name=NAME`, if any.
    pub fn exact_name(&self) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == "metadata.name" && !r.negate)
            .map(|r| r.value.as_str())
    }

    /// Whether `object` matches. A missing field reads as empty (`false` for
    /// `spec.hostNetwork`), numbers and booleans as their text.
    pub fn matches(&self, object: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = match object.pointer(&r.pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None if r.field == "spec.hostNetwork" => "false".into(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == r.value) != r.negate
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_selector_operators() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        let cases = [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("app in (web,db)", true),
            ("app notin (web,db)", false),
            ("tier notin (back)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("missing!=x", true),
            ("app=web,tier in (front)", true),
            ("app=web,tier=back", false),
            ("", true),
        ];
        for (sel, want) in cases {
            let s = LabelSelector::parse(sel).unwrap();
            assert_eq!(s.matches(&o), want, "{sel}");
        }
    }

    #[test]
    fn label_selector_rejects_garbage() {
        for sel in ["app in web", "a=b=c", "=x", "app in (a b)", ","] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel}");
        }
    }

    #[test]
    fn field_selector() {
        let o = obj(json!({}));
        assert!(FieldSelector::parse("metadata.name=a").unwrap().matches(&o));
        assert!(
            !FieldSelector::parse("metadata.name!=a")
                .unwrap()
                .matches(&o)
        );
        assert!(
            FieldSelector::parse("metadata.namespace==ns,metadata.name=a")
                .unwrap()
                .matches(&o)
        );
        assert!(
            !FieldSelector::parse("metadata.namespace=x")
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("spec.x=a").is_err());
        let pod = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}});
        let pods = crate::resource::ResourceType::pod();
        assert!(
            FieldSelector::parse_for(&pods, "status.phase=Running")
                .unwrap()
                .matches(&pod)
        );
        assert!(
            !FieldSelector::parse_for(&pods, "status.phase!=Running")
                .unwrap()
                .matches(&pod)
        );
        assert!(FieldSelector::parse_for(&pods, "reason=x").is_err());
        let event = json!({"involvedObject": {"name": "hello", "kind": "Service"}, "source": {"component": "c"}});
        let events = crate::resource::ResourceType::events_k8s_io_event();
        assert!(
            FieldSelector::parse_for(
                &events,
                "regarding.name=hello,involvedObject.kind=Service,source=c"
            )
            .unwrap()
            .matches(&event)
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=a")
                .unwrap()
                .exact_name(),
            Some("a")
        );
    }
}
