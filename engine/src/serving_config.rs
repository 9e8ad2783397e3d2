//! Knative's configuration, Knative's way: the `config-*` ConfigMaps in the
//! `knative-serving` namespace, read through the engine's own API.
//!
//! - On start the engine creates the namespace and each ConfigMap Knative
//!   ships (`engine/knative-config/`) that does not exist yet, with its
//!   documented `_example` block and checksum annotation, so `kubectl edit
//!   cm config-autoscaler -n knative-serving` works as on a cluster.
//! - A write of one of them is checked as Knative's ConfigMap webhook
//!   checks it ([`validate`]): an edited `_example`, a value that does not
//!   parse or is out of bounds is refused with Knative's message, and the
//!   running configuration stays.
//! - [`follow`] turns every change into a new [`ServingConfig`] at once,
//!   with no restart: admission and the autoscaler read the latest one.
//!
//! Knative's defaults apply to every key not given, and to a ConfigMap that
//! is deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use okonomi_apiserver::{ListOptions, ResourceType, Store, WatchOptions};
use okonomi_knative::ValidationConfig;
use okonomi_knative::cluster_config::{
    self, CONFIG_AUTOSCALER, CONFIG_DEFAULTS, CONFIG_FEATURES, ConfigMapError, KNATIVE_NAMESPACE,
};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::autoscaler::AutoscalerConfig;

/// The ConfigMaps as Knative ships them (name, YAML): the ones the engine
/// acts on. `config-domain`, `config-gc`, `config-deployment` and
/// `config-network` are left out until it does: a ConfigMap an operator can
/// edit to no effect would promise what the engine does not do.
const SHIPPED: [(&str, &str); 3] = [
    (
        CONFIG_AUTOSCALER,
        include_str!("../knative-config/config-autoscaler.yaml"),
    ),
    (
        CONFIG_DEFAULTS,
        include_str!("../knative-config/config-defaults.yaml"),
    ),
    (
        CONFIG_FEATURES,
        include_str!("../knative-config/config-features.yaml"),
    ),
];

/// The names of the ConfigMaps the engine reads.
pub const NAMES: [&str; 3] = [SHIPPED[0].0, SHIPPED[1].0, SHIPPED[2].0];

/// The YAML of the ConfigMap `name` as Knative ships it.
pub fn shipped(name: &str) -> Option<&'static str> {
    SHIPPED.iter().find(|(n, _)| *n == name).map(|(_, y)| *y)
}

/// What the engine reads from Knative's ConfigMaps.
#[derive(Debug, Clone, Default)]
pub struct ServingConfig {
    /// `config-autoscaler`.
    pub autoscaler: AutoscalerConfig,
    /// `config-defaults` and `config-features`, with the autoscaler's limits
    /// (`allow-zero-initial-scale`, `max-scale-limit`) that admission checks.
    pub validation: ValidationConfig,
}

impl ServingConfig {
    /// The configuration from the ConfigMaps' `data` by name; a missing one
    /// is Knative's defaults.
    pub fn from_data(
        maps: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Self, ConfigMapError> {
        let empty = BTreeMap::new();
        let of = |name: &str| maps.get(name).unwrap_or(&empty);
        let autoscaler = autoscaler(of(CONFIG_AUTOSCALER))?;
        let defaults = cluster_config::defaults(of(CONFIG_DEFAULTS))?;
        let features = cluster_config::features(of(CONFIG_FEATURES));
        let validation = ValidationConfig {
            allow_zero_initial_scale: autoscaler.allow_zero_initial_scale,
            max_scale_limit: autoscaler.max_scale_limit,
            ..ValidationConfig::default()
        }
        .with_config_maps(&defaults, features);
        Ok(Self {
            autoscaler,
            validation,
        })
    }
}

fn autoscaler(data: &BTreeMap<String, String>) -> Result<AutoscalerConfig, ConfigMapError> {
    AutoscalerConfig::from_config_map(data).map_err(ConfigMapError::Invalid)
}

/// Whether `name` in `namespace` is one of the ConfigMaps the engine reads.
pub fn is_serving_config(namespace: &str, name: &str) -> bool {
    namespace == KNATIVE_NAMESPACE && shipped(name).is_some()
}

/// Knative's ConfigMap webhook on a write of `name`: the `_example`
/// checksum, then the same parse the engine will apply.
pub fn validate(
    name: &str,
    data: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<(), ConfigMapError> {
    cluster_config::check_example(data, annotations)?;
    match name {
        CONFIG_AUTOSCALER => autoscaler(data).map(drop),
        CONFIG_DEFAULTS => cluster_config::defaults(data).map(drop),
        _ => Ok(()),
    }
}

/// The `data` and annotations of a stored ConfigMap as string maps.
pub fn data_of(object: &Value) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let strings = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    };
    (
        strings(&object["data"]),
        strings(&object["metadata"]["annotations"]),
    )
}

/// Why the engine could not set Knative's ConfigMaps up.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// A shipped ConfigMap that does not parse (a bug in the engine).
    #[error("the shipped {name} is not a ConfigMap: {reason}")]
    Shipped {
        /// Which.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A setting given at start is refused as Knative would refuse it.
    #[error("{name}: validation failed: {source}")]
    Invalid {
        /// Which ConfigMap.
        name: String,
        /// Knative's message.
        #[source]
        source: ConfigMapError,
    },
    /// The store refused a write.
    #[error("writing ConfigMap {KNATIVE_NAMESPACE}/{name}: {source}")]
    Store {
        /// Which ConfigMap.
        name: String,
        /// The API server's error.
        #[source]
        source: Box<okonomi_apiserver::Error>,
    },
}

/// Creates `knative-serving` and each shipped ConfigMap that does not exist;
/// then writes `settings` (ConfigMap name → keys) over the stored `data`,
/// as an operator's `kubectl apply` would. Settings are checked first, so a
/// refused one changes nothing.
pub async fn seed(
    store: &Store,
    settings: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(), SeedError> {
    let store_error = |name: &str| {
        let name = name.to_owned();
        move |source| SeedError::Store {
            name,
            source: Box::new(source),
        }
    };
    for (name, data) in settings {
        let annotations = BTreeMap::new();
        validate(name, data, &annotations).map_err(|source| SeedError::Invalid {
            name: name.clone(),
            source,
        })?;
    }
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": KNATIVE_NAMESPACE}});
    match store.create(&ResourceType::namespace(), namespace).await {
        Ok(_) => {}
        Err(e) if e.is_already_exists() => {}
        Err(e) => return Err(store_error(KNATIVE_NAMESPACE)(e)),
    }
    let rt = ResourceType::config_map();
    for (name, yaml) in SHIPPED {
        match store.get(&rt, KNATIVE_NAMESPACE, name) {
            Ok(_) => continue,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(store_error(name)(e)),
        }
        let object: Value = serde_saphyr::from_str(yaml).map_err(|e| SeedError::Shipped {
            name,
            reason: e.to_string(),
        })?;
        match store.create(&rt, object).await {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(store_error(name)(e)),
        }
    }
    for (name, data) in settings {
        let mut object = match store.get(&rt, KNATIVE_NAMESPACE, name) {
            Ok(object) => object,
            Err(e) => return Err(store_error(name)(e)),
        };
        for (key, value) in data {
            object["data"][key] = Value::String(value.clone());
        }
        store.update(&rt, object).await.map_err(store_error(name))?;
    }
    Ok(())
}

/// The configuration the ConfigMaps in `store` give now.
fn read(store: &Store) -> ServingConfig {
    let listed = match store.list(
        &ResourceType::config_map(),
        &ListOptions::namespace(KNATIVE_NAMESPACE),
    ) {
        Ok(listed) => listed,
        Err(error) => {
            tracing::warn!(%error, "reading Knative's ConfigMaps; keeping Knative's defaults");
            return ServingConfig::default();
        }
    };
    let maps: BTreeMap<String, BTreeMap<String, String>> = listed
        .items
        .iter()
        .filter_map(|object| {
            let name = object["metadata"]["name"].as_str()?;
            shipped(name)?;
            Some((name.to_owned(), data_of(object).0))
        })
        .collect();
    match ServingConfig::from_data(&maps) {
        Ok(config) => config,
        Err(error) => {
            // Admission refuses such a write; this is a store written by
            // something else. Knative keeps its defaults for it too.
            tracing::warn!(%error, "Knative's ConfigMaps do not parse; keeping Knative's defaults");
            ServingConfig::default()
        }
    }
}

/// Sends the current configuration to `tx`, then every change to it until
/// `stop` (a task of its own): a ConfigMap in `knative-serving` written or
/// deleted makes a new one.
pub fn follow(store: Store, tx: watch::Sender<Arc<ServingConfig>>, stop: CancellationToken) {
    tx.send_replace(Arc::new(read(&store)));
    tokio::spawn(async move {
        use futures::StreamExt as _;
        let options = WatchOptions {
            resource_version: Some(store.resource_version()),
            filter: ListOptions::namespace(KNATIVE_NAMESPACE),
            ..Default::default()
        };
        let mut changes = match store.watch(&ResourceType::config_map(), &options) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot watch Knative's ConfigMaps; changes apply on restart");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                event = changes.next() => match event {
                    Some(_) => {
                        let config = read(&store);
                        tracing::info!("Knative's ConfigMaps changed; the new settings apply now");
                        tx.send_replace(Arc::new(config));
                    }
                    None => return,
                },
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knative_s_checksums_match_the_shipped_examples() {
        for (name, yaml) in SHIPPED {
            let object: Value = serde_saphyr::from_str(yaml).unwrap();
            let (data, annotations) = data_of(&object);
            let example = &data[cluster_config::EXAMPLE_KEY];
            assert_eq!(
                cluster_config::example_checksum(example),
                annotations[cluster_config::EXAMPLE_CHECKSUM_ANNOTATION],
                "{name}"
            );
            validate(name, &data, &annotations).unwrap();
        }
    }

    #[test]
    fn the_shipped_config_maps_give_knative_s_defaults() {
        let maps = SHIPPED
            .iter()
            .map(|(name, yaml)| {
                let object: Value = serde_saphyr::from_str(yaml).unwrap();
                (name.to_string(), data_of(&object).0)
            })
            .collect();
        let config = ServingConfig::from_data(&maps).unwrap();
        assert_eq!(config.validation, ValidationConfig::default());
        assert_eq!(config.autoscaler, AutoscalerConfig::default());
    }

    #[test]
    fn unknown_autoscaler_keys_are_ignored_as_knative_ignores_them() {
        let data = BTreeMap::from([
            ("a-key-of-a-later-knative".to_owned(), "x".to_owned()),
            ("stable-window".to_owned(), "6s".to_owned()),
        ]);
        let maps = BTreeMap::from([(CONFIG_AUTOSCALER.to_owned(), data.clone())]);
        let config = ServingConfig::from_data(&maps).unwrap();
        assert_eq!(
            config.autoscaler.stable_window,
            std::time::Duration::from_secs(6)
        );
        validate(CONFIG_AUTOSCALER, &data, &BTreeMap::new()).unwrap();
    }
}
