//! ConfigMap and Secret data, as Kubernetes checks it: keys, base64 values,
//! `stringData` folded into `data`, Secret `type`, `immutable`, and the 1 MiB
//! limit. No message here ever contains a Secret's value.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::admission::Operation;
use crate::error::{Error, Result};
use crate::resource::ResourceType;
use crate::status::StatusCause;

/// Largest total data of one ConfigMap or Secret (Kubernetes' limit).
const MAX_DATA: usize = 1024 * 1024;

const KEY_RULE: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
const IMMUTABLE: &str = "Forbidden: field is immutable when `immutable` is set";

fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() || key.len() > 253 {
        return Some(KEY_RULE.into());
    }
    if key == "." || key == ".." {
        return Some("must not be '.' or '..'".into());
    }
    let valid = key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (!valid).then(|| KEY_RULE.into())
}

/// A map field (`data`, `binaryData`, `stringData`) as a JSON object; absent or
/// null is empty.
fn map_field<'a>(object: &'a Value, field: &str) -> Result<Option<&'a Map<String, Value>>> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(Error::BadRequest(format!(
            "{field} must be an object of string values"
        ))),
    }
}

/// Every value of `field` must be a string (named by key, never by value).
fn string_values(
    kind: &str,
    object: &Value,
    field: &str,
    causes: &mut Vec<StatusCause>,
) -> Result<()> {
    if let Some(map) = map_field(object, field)? {
        for (key, value) in map {
            if !value.is_string() {
                return Err(Error::BadRequest(format!(
                    "{kind} in version \"v1\" cannot be handled as a {kind}: {field}[{key}] must be a string"
                )));
            }
            if let Some(problem) = key_problem(key) {
                causes.push(StatusCause::invalid(
                    format!("{field}[{key}]"),
                    format!("Invalid value: {key:?}: {problem}"),
                ));
            }
        }
    }
    Ok(())
}

/// Every value of `field` must be standard base64; returns the decoded size.
fn base64_values(kind: &str, object: &Value, field: &str) -> Result<usize> {
    let mut size = 0;
    if let Some(map) = map_field(object, field)? {
        for (key, value) in map {
            let text = value.as_str().unwrap_or("");
            let decoded = STANDARD.decode(text).map_err(|_| {
                Error::BadRequest(format!(
                    "{kind} in version \"v1\" cannot be handled as a {kind}: {field}[{key}]: illegal base64 data (the value must be base64-encoded; use stringData for plain text)"
                ))
            })?;
            size += decoded.len();
        }
    }
    Ok(size)
}

/// Once `immutable` is true, neither it nor the data may change.
fn check_immutable(
    old: Option<&Value>,
    object: &Value,
    fields: &[&str],
    causes: &mut Vec<StatusCause>,
) {
    let Some(old) = old else {
        return;
    };
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return;
    }
    let absent_is_empty = |o: &Value, f: &str| match o.get(f) {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v) => v.clone(),
    };
    for field in fields {
        if absent_is_empty(old, field) != absent_is_empty(object, field) {
            causes.push(StatusCause {
                reason: "FieldValueForbidden".into(),
                message: IMMUTABLE.into(),
                field: (*field).into(),
            });
        }
    }
    if object.get("immutable") != Some(&Value::Bool(true)) {
        causes.push(StatusCause {
            reason: "FieldValueForbidden".into(),
            message: IMMUTABLE.into(),
            field: "immutable".into(),
        });
    }
}

fn check_immutable_flag(object: &Value, causes: &mut Vec<StatusCause>) {
    if let Some(flag) = object.get("immutable")
        && !flag.is_boolean()
        && !flag.is_null()
    {
        causes.push(StatusCause::invalid(
            "immutable",
            "Invalid value: must be true or false",
        ));
    }
}

fn too_big(size: usize, causes: &mut Vec<StatusCause>) {
    if size > MAX_DATA {
        causes.push(StatusCause {
            reason: "FieldValueTooLong".into(),
            message: format!("Too long: must have at most {MAX_DATA} bytes"),
            field: "data".into(),
        });
    }
}

fn finish(rt: &ResourceType, object: &Value, causes: Vec<StatusCause>) -> Result<()> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(rt.invalid(crate::store::object_name(object), causes))
    }
}

/// ConfigMap: string `data`, base64 `binaryData`, no key in both, `immutable`.
pub(crate) fn admit_config_map(
    rt: &ResourceType,
    operation: Operation,
    old: Option<&Value>,
    object: &mut Value,
) -> Result<()> {
    if operation == Operation::UpdateStatus {
        return Ok(());
    }
    let mut causes = Vec::new();
    string_values("ConfigMap", object, "data", &mut causes)?;
    string_values("ConfigMap", object, "binaryData", &mut causes)?;
    let mut size = base64_values("ConfigMap", object, "binaryData")?;
    if let Some(data) = map_field(object, "data")? {
        size += data
            .values()
            .filter_map(Value::as_str)
            .map(str::len)
            .sum::<usize>();
        if let Some(binary) = map_field(object, "binaryData")? {
            for key in data.keys().filter(|key| binary.contains_key(*key)) {
                causes.push(StatusCause::invalid(
                    format!("data[{key}]"),
                    format!("Invalid value: {key:?}: duplicate of key present in binaryData"),
                ));
            }
        }
    }
    too_big(size, &mut causes);
    check_immutable_flag(object, &mut causes);
    check_immutable(old, object, &["data", "binaryData"], &mut causes);
    finish(rt, object, causes)
}

/// Secret: `stringData` folded into `data` (base64) and removed, `data` base64,
/// `type` defaulted to `Opaque` and fixed once set, the keys a type requires,
/// `immutable`.
pub(crate) fn admit_secret(
    rt: &ResourceType,
    operation: Operation,
    old: Option<&Value>,
    object: &mut Value,
) -> Result<()> {
    if operation == Operation::UpdateStatus {
        return Ok(());
    }
    let mut causes = Vec::new();
    string_values("Secret", object, "stringData", &mut causes)?;
    string_values("Secret", object, "data", &mut causes)?;
    base64_values("Secret", object, "data")?;
    fold_string_data(object)?;
    let size = base64_values("Secret", object, "data")?;
    too_big(size, &mut causes);
    let map = object
        .as_object_mut()
        .ok_or_else(|| Error::BadRequest("the object must be a JSON object".into()))?;
    let secret_type = match map.get("type") {
        None | Some(Value::Null) => "Opaque".to_string(),
        Some(Value::String(t)) if t.is_empty() => "Opaque".to_string(),
        Some(Value::String(t)) => t.clone(),
        Some(_) => {
            return Err(Error::BadRequest(
                "Secret in version \"v1\" cannot be handled as a Secret: type must be a string"
                    .into(),
            ));
        }
    };
    map.insert("type".into(), Value::String(secret_type.clone()));
    if let Some(old_type) = old.and_then(|o| o.get("type")).and_then(Value::as_str)
        && old_type != secret_type
    {
        causes.push(StatusCause::invalid(
            "type",
            format!("Invalid value: {secret_type:?}: field is immutable"),
        ));
    }
    let has = |key: &str| {
        object
            .get("data")
            .and_then(Value::as_object)
            .is_some_and(|d| d.contains_key(key))
    };
    let required: &[&str] = match secret_type.as_str() {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    };
    for key in required {
        if !has(key) {
            causes.push(StatusCause::required(
                format!("data[{key}]"),
                "Required value",
            ));
        }
    }
    check_immutable_flag(object, &mut causes);
    check_immutable(old, object, &["data"], &mut causes);
    finish(rt, object, causes)
}

/// Move `stringData` into `data` (its values win, as in Kubernetes), base64-encoded.
fn fold_string_data(object: &mut Value) -> Result<()> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| Error::BadRequest("the object must be a JSON object".into()))?;
    let Some(string_data) = map.remove("stringData") else {
        return Ok(());
    };
    let Value::Object(string_data) = string_data else {
        return Ok(());
    };
    if string_data.is_empty() {
        return Ok(());
    }
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if data.is_null() {
        *data = Value::Object(Map::new());
    }
    let data = data
        .as_object_mut()
        .ok_or_else(|| Error::BadRequest("data must be an object of string values".into()))?;
    for (key, value) in string_data {
        let text = value.as_str().unwrap_or("");
        data.insert(key, Value::String(STANDARD.encode(text)));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn string_data_is_folded_and_type_defaulted() {
        let rt = ResourceType::secret();
        let mut secret = json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"a": "yy", "b": "zz"}});
        admit_secret(&rt, Operation::Create, None, &mut secret).unwrap();
        assert_eq!(secret["data"], json!({"a": "eXk=", "b": "eno="}));
        assert!(secret.get("stringData").is_none());
        assert_eq!(secret["type"], "Opaque");
    }

    #[test]
    fn bad_base64_is_refused_without_the_value() {
        let rt = ResourceType::secret();
        let mut secret = json!({"metadata": {"name": "s"}, "data": {"a": "hunter2!"}});
        let error = admit_secret(&rt, Operation::Create, None, &mut secret).unwrap_err();
        assert_eq!(error.code(), 400);
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn immutable_data_stays() {
        let rt = ResourceType::config_map();
        let old = json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": true});
        let mut new = json!({"metadata": {"name": "c"}, "data": {"a": "2"}, "immutable": true});
        let error = admit_config_map(&rt, Operation::Update, Some(&old), &mut new).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("data: Forbidden: field is immutable when `immutable` is set"),
            "{error}"
        );
        let mut same = old.clone();
        admit_config_map(&rt, Operation::Update, Some(&old), &mut same).unwrap();
    }
}
