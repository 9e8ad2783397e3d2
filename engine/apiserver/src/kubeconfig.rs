//! Merging the `okonomi` cluster, user and context into a kubeconfig file without
//! disturbing anything else in it (other entries and unknown fields are kept; the
//! file is replaced atomically).

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::tls::write_atomically;

/// What to merge into a kubeconfig.
#[derive(Debug, Clone)]
pub struct KubeconfigEntry {
    /// Name of the cluster, user and context (`okonomi`).
    pub name: String,
    /// The API server URL, e.g. `https://127.0.0.1:6443`.
    pub server: String,
    /// PEM of the CA that signed the server certificate.
    pub ca_pem: String,
    /// The bearer token.
    pub token: String,
    /// The context's default namespace, if any.
    pub namespace: Option<String>,
    /// Make this the current context.
    pub set_current: bool,
}

/// The kubeconfig kubectl would write to: the first entry of `$KUBECONFIG`, else
/// `~/.kube/config`.
pub fn default_path() -> Result<PathBuf> {
    if let Some(list) = std::env::var_os("KUBECONFIG")
        && let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty())
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME").ok_or_else(|| Error::Kubeconfig {
        path: "~/.kube/config".into(),
        message: "neither KUBECONFIG nor HOME is set; set KUBECONFIG to the file to write".into(),
    })?;
    Ok(PathBuf::from(home).join(".kube").join("config"))
}

fn upsert(config: &mut Map<String, Value>, list: &str, name: &str, field: &str, values: Value) {
    let entries = config
        .entry(list)
        .or_insert_with(|| Value::Array(Vec::new()));
    if !entries.is_array() {
        *entries = Value::Array(Vec::new());
    }
    let Some(entries) = entries.as_array_mut() else {
        return;
    };
    let position = entries
        .iter()
        .position(|e| e.get("name").and_then(Value::as_str) == Some(name));
    let entry = match position {
        Some(i) => &mut entries[i],
        None => {
            entries.push(json!({"name": name, field: {}}));
            let last = entries.len() - 1;
            &mut entries[last]
        }
    };
    let Some(entry) = entry.as_object_mut() else {
        return;
    };
    let inner = entry.entry(field).or_insert_with(|| json!({}));
    if !inner.is_object() {
        *inner = json!({});
    }
    if let (Some(inner), Some(values)) = (inner.as_object_mut(), values.as_object()) {
        for (k, v) in values {
            if v.is_null() {
                inner.remove(k);
            } else {
                inner.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Merge `entry` into the kubeconfig at `path` (created if missing). Blocking file
/// I/O.
pub fn merge(path: &Path, entry: &KubeconfigEntry) -> Result<()> {
    let display = path.display().to_string();
    let bad = |message: String| Error::Kubeconfig {
        path: display.clone(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(Error::Io {
                action: "reading",
                path: display.clone(),
                source: e,
            });
        }
    };
    let mut config: Value = if text.trim().is_empty() {
        json!({})
    } else {
        serde_saphyr::from_str_with_options(&text, serde_saphyr::options! { strict_booleans: true })
            .map_err(|e| {
                bad(format!(
                    "not valid YAML ({e}); fix or move the file and try again"
                ))
            })?
    };
    if config.is_null() {
        config = json!({});
    }
    let map = config
        .as_object_mut()
        .ok_or_else(|| bad("the top level is not a mapping".into()))?;
    map.entry("apiVersion").or_insert_with(|| json!("v1"));
    map.entry("kind").or_insert_with(|| json!("Config"));
    let ca_data = base64::engine::general_purpose::STANDARD.encode(entry.ca_pem.as_bytes());
    upsert(
        map,
        "clusters",
        &entry.name,
        "cluster",
        json!({"server": entry.server, "certificate-authority-data": ca_data,
               "certificate-authority": null, "insecure-skip-tls-verify": null}),
    );
    upsert(
        map,
        "users",
        &entry.name,
        "user",
        json!({"token": entry.token, "tokenFile": null}),
    );
    upsert(
        map,
        "contexts",
        &entry.name,
        "context",
        json!({"cluster": entry.name, "user": entry.name, "namespace": entry.namespace}),
    );
    let current = map
        .get("current-context")
        .and_then(Value::as_str)
        .unwrap_or("");
    if entry.set_current || current.is_empty() {
        map.insert("current-context".into(), json!(entry.name));
    }
    let yaml =
        serde_saphyr::to_string(&config).map_err(|e| bad(format!("cannot write YAML: {e}")))?;
    write_atomically(path, yaml.as_bytes(), true)
}
