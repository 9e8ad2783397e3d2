//! What the kubelet reads from the API server to set a Pod's configuration
//! up: ConfigMaps and Secrets (Kubernetes' kubelet has a ConfigMap and a
//! Secret manager for the same), whether the Pod's ServiceAccount exists
//! (Kubernetes' ServiceAccount admission refuses a Pod whose account does
//! not), and the news that one of them changed, so that a Pod waiting for a
//! missing object starts as soon as it exists and mounted files follow
//! their object.
//!
//! Values read here are the user's secrets: nothing in this module or its
//! callers puts a value in a log line, an error or a `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use okonomi_apiserver::{ResourceType, Store};
use serde_json::Value;
use tokio::sync::watch;

/// The two kinds a Pod's configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// `v1` ConfigMap.
    ConfigMap,
    /// `v1` Secret.
    Secret,
}

impl SourceKind {
    /// The kind as Kubernetes' messages name it in `"… not found"`
    /// (`configmap`, `secret`).
    pub fn lower(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
        }
    }

    /// The kind's name (`ConfigMap`, `Secret`).
    pub fn kind(self) -> &'static str {
        match self {
            Self::ConfigMap => "ConfigMap",
            Self::Secret => "Secret",
        }
    }
}

/// The keys and values of one ConfigMap (`data` and `binaryData`) or Secret
/// (`data`, decoded). Its `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KeyValues(pub BTreeMap<String, Vec<u8>>);

impl fmt::Debug for KeyValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Why a Pod's configuration cannot be set up (yet). The message names the
/// object and key as Kubernetes' kubelet does, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// Kubernetes' reason: `CreateContainerConfigError` for the
    /// environment, `FailedMount` for volumes.
    pub reason: &'static str,
    /// What is missing or wrong.
    pub message: String,
}

/// Kubernetes' reason when a container's environment cannot be made.
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
/// Kubernetes' reason (an event's) when a volume cannot be set up.
pub const FAILED_MOUNT: &str = "FailedMount";

impl ConfigError {
    /// An environment error.
    pub fn env(message: impl Into<String>) -> Self {
        Self {
            reason: CREATE_CONTAINER_CONFIG_ERROR,
            message: message.into(),
        }
    }

    /// A volume error for `volume`, worded as the kubelet's
    /// `MountVolume.SetUp failed` event.
    pub fn mount(volume: &str, message: impl fmt::Display) -> Self {
        Self {
            reason: FAILED_MOUNT,
            message: format!("MountVolume.SetUp failed for volume {volume:?} : {message}"),
        }
    }
}

/// An object that exists but could not be read; the message names it and
/// says why, never what it holds.
#[derive(Debug, thiserror::Error)]
#[error("reading {kind} {namespace}/{name}: {source}")]
pub struct ReadError {
    kind: &'static str,
    namespace: String,
    name: String,
    #[source]
    source: Box<okonomi_apiserver::Error>,
}

/// Where the kubelet reads ConfigMaps, Secrets and ServiceAccounts.
pub trait ConfigObjects: Send + Sync + 'static {
    /// The object `namespace/name` of `kind`, `Ok(None)` when it does not
    /// exist.
    fn get(
        &self,
        kind: SourceKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<KeyValues>, ReadError>;

    /// Whether the ServiceAccount `namespace/name` exists.
    fn service_account_exists(&self, namespace: &str, name: &str) -> Result<bool, ReadError>;
}

/// Kubernetes' message for a Pod refused because its ServiceAccount is
/// missing (the ReplicaSet's `FailedCreate`).
pub fn missing_service_account(pod: &str, namespace: &str, account: &str) -> String {
    format!(
        "pods \"{pod}\" is forbidden: error looking up service account \
         {namespace}/{account}: serviceaccount \"{account}\" not found"
    )
}

/// The reason a ReplicaSet gives when it cannot create a Pod.
pub const FAILED_CREATE: &str = "FailedCreate";

/// The kubelet's access to ConfigMaps and Secrets, and the news that one
/// changed (a counter that moves on every change).
#[derive(Clone)]
pub struct ConfigSource {
    /// Where objects are read.
    pub objects: Arc<dyn ConfigObjects>,
    /// Moves whenever a ConfigMap, Secret or ServiceAccount is written or
    /// deleted.
    pub changes: watch::Receiver<u64>,
}

impl fmt::Debug for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSource").finish_non_exhaustive()
    }
}

impl ConfigSource {
    /// A source of no ConfigMap or Secret, where every ServiceAccount
    /// exists, that never changes (for Pods whose spec needs none, and for
    /// tests).
    pub fn none() -> Self {
        struct Nothing;
        impl ConfigObjects for Nothing {
            fn get(&self, _: SourceKind, _: &str, _: &str) -> Result<Option<KeyValues>, ReadError> {
                Ok(None)
            }
            fn service_account_exists(&self, _: &str, _: &str) -> Result<bool, ReadError> {
                Ok(true)
            }
        }
        let (_, changes) = watch::channel(0);
        Self {
            objects: Arc::new(Nothing),
            changes,
        }
    }

    /// Reads from `store`, and follows its ConfigMaps, Secrets and
    /// ServiceAccounts until
    /// `stop` (a task of its own).
    pub fn follow(store: Store, stop: tokio_util::sync::CancellationToken) -> Self {
        let (tx, changes) = watch::channel(0u64);
        let watched = store.clone();
        tokio::spawn(async move {
            use futures::StreamExt as _;
            let options = okonomi_apiserver::WatchOptions {
                resource_version: Some(watched.resource_version()),
                ..Default::default()
            };
            let streams = [
                ResourceType::config_map(),
                ResourceType::secret(),
                ResourceType::service_account(),
            ]
                .iter()
                .filter_map(|rt| match watched.watch(rt, &options) {
                    Ok(stream) => Some(stream),
                    Err(error) => {
                        tracing::warn!(kind = %rt.kind, %error, "cannot watch for configuration changes");
                        None
                    }
                })
                .collect::<Vec<_>>();
            let mut all = futures::stream::select_all(streams);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    event = all.next() => match event {
                        Some(_) => tx.send_modify(|n| *n += 1),
                        None => return,
                    },
                }
            }
        });
        Self {
            objects: Arc::new(store),
            changes,
        }
    }
}

impl ConfigObjects for Store {
    fn get(
        &self,
        kind: SourceKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<KeyValues>, ReadError> {
        let rt = match kind {
            SourceKind::ConfigMap => ResourceType::config_map(),
            SourceKind::Secret => ResourceType::secret(),
        };
        Ok(read(self, &rt, kind.lower(), namespace, name)?.map(|o| key_values(kind, &o)))
    }

    fn service_account_exists(&self, namespace: &str, name: &str) -> Result<bool, ReadError> {
        let rt = ResourceType::service_account();
        Ok(read(self, &rt, "serviceaccount", namespace, name)?.is_some())
    }
}

fn read(
    store: &Store,
    rt: &ResourceType,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, ReadError> {
    match store.get(rt, namespace, name) {
        Ok(object) => Ok(Some(object)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(source) => Err(ReadError {
            kind,
            namespace: namespace.into(),
            name: name.into(),
            source: Box::new(source),
        }),
    }
}

/// The keys and values of a stored ConfigMap or Secret (the API server has
/// checked that `data` of a Secret and `binaryData` are base64).
pub fn key_values(kind: SourceKind, object: &Value) -> KeyValues {
    let decode = |v: &Value| {
        v.as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
    };
    let mut out = BTreeMap::new();
    let fields: &[(&str, bool)] = match kind {
        SourceKind::ConfigMap => &[("data", false), ("binaryData", true)],
        SourceKind::Secret => &[("data", true)],
    };
    for (field, base64) in fields {
        for (key, value) in object[field].as_object().into_iter().flatten() {
            let bytes = if *base64 {
                decode(value)
            } else {
                value.as_str().map(|s| s.as_bytes().to_vec())
            };
            if let Some(bytes) = bytes {
                out.insert(key.clone(), bytes);
            }
        }
    }
    KeyValues(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_secret_is_decoded_and_a_config_map_keeps_both_fields() {
        let secret = json!({"data": {"password": "aHVudGVyMg=="}});
        let values = key_values(SourceKind::Secret, &secret);
        assert_eq!(values.0["password"], b"hunter2");
        assert_eq!(format!("{values:?}"), r#"{"password"}"#);

        let config_map = json!({"data": {"mode": "fast"}, "binaryData": {"blob": "AAE="}});
        let values = key_values(SourceKind::ConfigMap, &config_map);
        assert_eq!(values.0["mode"], b"fast");
        assert_eq!(values.0["blob"], [0, 1]);
    }
}
