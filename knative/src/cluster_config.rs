//! Knative's `config-domain`, `config-features` and `config-network`
//! ConfigMaps (namespace `knative-serving`) read as Knative 1.23 reads them,
//! for `okonomi doctor`: which domain a Route gets, whether a feature flag
//! lets a field through, which ingress class serves Routes. Pure functions
//! over the ConfigMaps' `data`.

use std::collections::BTreeMap;

/// Namespace Knative Serving keeps its configuration in.
pub const KNATIVE_NAMESPACE: &str = "knative-serving";
/// ConfigMap that maps Routes to domains.
pub const CONFIG_DOMAIN: &str = "config-domain";
/// ConfigMap of feature flags.
pub const CONFIG_FEATURES: &str = "config-features";
/// ConfigMap of networking settings (ingress class, schemes, TLS).
pub const CONFIG_NETWORK: &str = "config-network";
/// The key every Knative ConfigMap may carry as documentation; never a setting.
pub const EXAMPLE_KEY: &str = "_example";
/// The domain Routes get when no catch-all is configured (Knative's
/// `DefaultDomain`, `svc.` + the cluster domain): cluster-local, so no
/// external URL.
pub const CLUSTER_LOCAL_DOMAIN: &str = "svc.cluster.local";
/// `config-network` key of the ingress class (and the deprecated spelling).
pub const INGRESS_CLASS_KEYS: [&str; 2] = ["ingress-class", "ingress.class"];
/// net-istio's ingress class, Knative's default.
pub const ISTIO_INGRESS_CLASS: &str = "istio.ingress.networking.knative.dev";

/// What `config-domain` gives a Route with no labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainChoice {
    /// The domain Knative picks.
    pub domain: String,
    /// Every catch-all key (no selector), sorted; Knative picks the first.
    pub catch_alls: Vec<String>,
    /// Keys whose value is not the YAML Knative expects, with why.
    pub unreadable: Vec<(String, String)>,
}

impl DomainChoice {
    /// True when the chosen domain only names cluster-local addresses.
    pub fn is_cluster_local(&self) -> bool {
        self.domain == CLUSTER_LOCAL_DOMAIN || self.domain.ends_with(".svc.cluster.local")
    }
}

#[derive(serde::Deserialize, Default)]
struct DomainValue {
    #[serde(default)]
    selector: BTreeMap<String, String>,
}

/// The domain of a Route without labels, as Knative's
/// `NewDomainFromConfigMap` + `LookupDomainForLabels` decide it: keys whose
/// value has no `selector` are catch-alls; with none, `svc.cluster.local`
/// is added; among catch-alls the lexically smallest key wins.
pub fn default_domain(data: &BTreeMap<String, String>) -> DomainChoice {
    let mut catch_alls = Vec::new();
    let mut unreadable = Vec::new();
    for (key, value) in data {
        if key == EXAMPLE_KEY {
            continue;
        }
        let parsed: Result<Option<DomainValue>, _> = if value.trim().is_empty() {
            Ok(None)
        } else {
            serde_saphyr::from_str(value)
        };
        match parsed {
            Ok(v) if v.as_ref().is_none_or(|v| v.selector.is_empty()) => {
                catch_alls.push(key.clone())
            }
            Ok(_) => {}
            Err(e) => unreadable.push((key.clone(), e.to_string())),
        }
    }
    catch_alls.sort();
    let domain = catch_alls
        .first()
        .cloned()
        .unwrap_or_else(|| CLUSTER_LOCAL_DOMAIN.to_owned());
    DomainChoice {
        domain,
        catch_alls,
        unreadable,
    }
}

/// Knative's feature flag values (`Enabled`, `Allowed`, `Disabled`, any case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// On for every Revision.
    Enabled,
    /// On for Revisions that opt in; for the `kubernetes.podspec-*` fields
    /// Knative's field mask lets them through as with Enabled.
    Allowed,
    /// Off.
    Disabled,
}

impl Flag {
    fn parse(text: &str) -> Option<Self> {
        [
            ("enabled", Flag::Enabled),
            ("allowed", Flag::Allowed),
            ("disabled", Flag::Disabled),
        ]
        .into_iter()
        .find(|(name, _)| text.trim().eq_ignore_ascii_case(name))
        .map(|(_, flag)| flag)
    }

    /// Knative's shipped default of `key` (`config-features` in
    /// knative-v1.23.0): `multi-container` and
    /// `kubernetes.podspec-volumes-emptydir` enabled, the rest disabled.
    pub fn default_of(key: &str) -> Self {
        match key {
            "multi-container" | "kubernetes.podspec-volumes-emptydir" => Flag::Enabled,
            _ => Flag::Disabled,
        }
    }
}

/// A feature flag as Knative reads `config-features`: the value if it is one
/// of Knative's (case-insensitive), else the default (Knative ignores what
/// it cannot read).
pub fn feature_flag(data: &BTreeMap<String, String>, key: &str) -> Flag {
    data.get(key)
        .and_then(|v| Flag::parse(v))
        .unwrap_or_else(|| Flag::default_of(key))
}

/// True when `flag` lets a Revision that needs `key` through Knative's
/// admission: `multi-container` must be Enabled; the `kubernetes.podspec-*`
/// fields pass unless Disabled.
pub fn flag_admits(key: &str, flag: Flag) -> bool {
    if key == "multi-container" {
        flag == Flag::Enabled
    } else {
        flag != Flag::Disabled
    }
}

/// The ingress class of `config-network` (net-istio's when unset).
pub fn ingress_class(data: &BTreeMap<String, String>) -> String {
    INGRESS_CLASS_KEYS
        .iter()
        .find_map(|key| data.get(*key).filter(|v| !v.trim().is_empty()))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| ISTIO_INGRESS_CLASS.to_owned())
}
