//! Reading the Kubernetes protobuf encoding of core objects, which kubectl's typed
//! clients send (e.g. `kubectl create namespace` posts
//! `application/vnd.kubernetes.protobuf`). Only what those commands send is read: the
//! `runtime.Unknown` envelope, TypeMeta and the ObjectMeta name, generateName,
//! labels and annotations, ConfigMap and Secret data, and the spec of the reviews `kubectl auth can-i` sends
//! (SelfSubjectAccessReview, SelfSubjectRulesReview).

use serde_json::{Map, Value, json};

use crate::error::Error;

const MAGIC: &[u8] = b"k8s\x00";

fn bad(what: &str) -> Error {
    Error::BadRequest(format!("the protobuf body is malformed: {what}"))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

enum Field<'a> {
    Bytes(u32, &'a [u8]),
    Varint(u32, u64),
    Other,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, Error> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .bytes
                .split_first()
                .ok_or_else(|| bad("truncated varint"))?;
            self.bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("varint too long"))
    }

    fn next(&mut self) -> Result<Option<Field<'a>>, Error> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| bad("field number"))?;
        match key & 7 {
            0 => Ok(Some(Field::Varint(tag, self.varint()?))),
            1 => self.skip(8),
            5 => self.skip(4),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| bad("length"))?;
                if len > self.bytes.len() {
                    return Err(bad("truncated field"));
                }
                let (field, rest) = self.bytes.split_at(len);
                self.bytes = rest;
                Ok(Some(Field::Bytes(tag, field)))
            }
            _ => Err(bad("unsupported wire type")),
        }
    }

    fn skip(&mut self, n: usize) -> Result<Option<Field<'a>>, Error> {
        if n > self.bytes.len() {
            return Err(bad("truncated fixed field"));
        }
        self.bytes = &self.bytes[n..];
        Ok(Some(Field::Other))
    }
}

fn fields(bytes: &[u8]) -> Result<Vec<(u32, &[u8])>, Error> {
    let mut reader = Reader { bytes };
    let mut out = Vec::new();
    while let Some(field) = reader.next()? {
        if let Field::Bytes(tag, data) = field {
            out.push((tag, data));
        }
    }
    Ok(out)
}

/// The varint fields of a message (booleans, numbers).
fn varints(bytes: &[u8]) -> Result<Vec<(u32, u64)>, Error> {
    let mut reader = Reader { bytes };
    let mut out = Vec::new();
    while let Some(field) = reader.next()? {
        if let Field::Varint(tag, value) = field {
            out.push((tag, value));
        }
    }
    Ok(out)
}

/// A map entry whose value is bytes, as JSON carries them (base64).
fn bytes_entry(bytes: &[u8]) -> Result<(String, String), Error> {
    use base64::Engine as _;
    let mut key = String::new();
    let mut value = String::new();
    for (tag, data) in fields(bytes)? {
        match tag {
            1 => key = text(data)?,
            2 => value = base64::engine::general_purpose::STANDARD.encode(data),
            _ => {}
        }
    }
    Ok((key, value))
}

/// Map fields (`tag` → JSON name, values bytes or text) and a bool field of
/// the ConfigMap and Secret messages.
fn data_fields(
    object: &mut Map<String, Value>,
    raw: &[u8],
    maps: &[(u32, &str, bool)],
    immutable_tag: u32,
    strings_at: &[(u32, &str)],
) -> Result<(), Error> {
    for (tag, data) in fields(raw)? {
        if let Some((_, name, binary)) = maps.iter().find(|(t, _, _)| *t == tag) {
            let (key, value) = if *binary {
                bytes_entry(data)?
            } else {
                map_entry(data)?
            };
            object
                .entry(name.to_string())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .map(|m| m.insert(key, json!(value)));
        } else if let Some((_, name)) = strings_at.iter().find(|(t, _)| *t == tag) {
            object.insert((*name).into(), json!(text(data)?));
        }
    }
    for (tag, value) in varints(raw)? {
        if tag == immutable_tag {
            object.insert("immutable".into(), json!(value != 0));
        }
    }
    Ok(())
}

fn text(bytes: &[u8]) -> Result<String, Error> {
    String::from_utf8(bytes.to_vec()).map_err(|_| bad("a string is not UTF-8"))
}

fn map_entry(bytes: &[u8]) -> Result<(String, String), Error> {
    let mut key = String::new();
    let mut value = String::new();
    for (tag, data) in fields(bytes)? {
        match tag {
            1 => key = text(data)?,
            2 => value = text(data)?,
            _ => {}
        }
    }
    Ok((key, value))
}

fn object_meta(bytes: &[u8]) -> Result<Value, Error> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    for (tag, data) in fields(bytes)? {
        match tag {
            1 => {
                meta.insert("name".into(), json!(text(data)?));
            }
            2 => {
                meta.insert("generateName".into(), json!(text(data)?));
            }
            3 => {
                meta.insert("namespace".into(), json!(text(data)?));
            }
            6 => {
                meta.insert("resourceVersion".into(), json!(text(data)?));
            }
            11 => {
                let (k, v) = map_entry(data)?;
                labels.insert(k, json!(v));
            }
            12 => {
                let (k, v) = map_entry(data)?;
                annotations.insert(k, json!(v));
            }
            _ => {}
        }
    }
    meta.retain(|_, v| v.as_str().is_some_and(|s| !s.is_empty()));
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    Ok(Value::Object(meta))
}

/// Decode a protobuf-encoded core object into JSON (type and object metadata only).
pub(super) fn decode(bytes: &[u8]) -> Result<Value, Error> {
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing the k8s\\0 prefix"))?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for (tag, data) in fields(body)? {
        match tag {
            1 => {
                for (t, d) in fields(data)? {
                    match t {
                        1 => api_version = text(d)?,
                        2 => kind = text(d)?,
                        _ => {}
                    }
                }
            }
            2 => raw = data,
            _ => {}
        }
    }
    let mut object = Map::new();
    if !api_version.is_empty() {
        object.insert("apiVersion".into(), json!(api_version));
    }
    if !kind.is_empty() {
        object.insert("kind".into(), json!(kind));
    }
    for (tag, data) in fields(raw)? {
        match tag {
            1 => {
                object.insert("metadata".into(), object_meta(data)?);
            }
            2 if kind == "SelfSubjectAccessReview" => {
                object.insert("spec".into(), access_review_spec(data)?);
            }
            2 if kind == "SelfSubjectRulesReview" => {
                object.insert("spec".into(), strings(data, &[(1, "namespace")])?);
            }
            _ => {}
        }
    }
    match kind.as_str() {
        "Secret" => data_fields(
            &mut object,
            raw,
            &[(2, "data", true), (4, "stringData", false)],
            5,
            &[(3, "type")],
        )?,
        "ConfigMap" => data_fields(
            &mut object,
            raw,
            &[(2, "data", false), (3, "binaryData", true)],
            4,
            &[],
        )?,
        _ => {}
    }
    Ok(Value::Object(object))
}

/// The string fields `names` (tag, JSON name) of a message.
fn strings(bytes: &[u8], names: &[(u32, &str)]) -> Result<Value, Error> {
    let mut out = Map::new();
    for (tag, data) in fields(bytes)? {
        if let Some((_, name)) = names.iter().find(|(t, _)| *t == tag) {
            out.insert((*name).into(), json!(text(data)?));
        }
    }
    Ok(Value::Object(out))
}

/// `SelfSubjectAccessReviewSpec`: resourceAttributes (1) or nonResourceAttributes (2).
fn access_review_spec(bytes: &[u8]) -> Result<Value, Error> {
    let mut spec = Map::new();
    for (tag, data) in fields(bytes)? {
        match tag {
            1 => {
                let attributes = strings(
                    data,
                    &[
                        (1, "namespace"),
                        (2, "verb"),
                        (3, "group"),
                        (4, "version"),
                        (5, "resource"),
                        (6, "subresource"),
                        (7, "name"),
                    ],
                )?;
                spec.insert("resourceAttributes".into(), attributes);
            }
            2 => {
                let attributes = strings(data, &[(1, "path"), (2, "verb")])?;
                spec.insert("nonResourceAttributes".into(), attributes);
            }
            _ => {}
        }
    }
    Ok(Value::Object(spec))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_kubectl_create_namespace_sends() {
        let body = b"k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x1b\n\x13\n\x03foo\x12\x00\x1a\x00\"\x00*\x002\x008\x00B\x00\x12\x00\x1a\x02\n\x00\x1a\x00\"\x00";
        assert_eq!(
            decode(body).unwrap(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}})
        );
        assert!(decode(b"{}").is_err());
    }
}
