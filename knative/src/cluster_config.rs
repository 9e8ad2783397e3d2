//! Knative's `config-*` ConfigMaps (namespace `knative-serving`) read as
//! Knative 1.23 reads them: which domain a Route gets, whether a feature flag
//! lets a field through, which ingress class serves Routes (for `okonomi
//! doctor`), the `config-defaults` and `config-features` admission depends
//! on, and the checks Knative's ConfigMap webhook makes before one is
//! stored (for the engine). Pure functions over the ConfigMaps' `data`.

use std::collections::BTreeMap;

/// Namespace Knative Serving keeps its configuration in.
pub const KNATIVE_NAMESPACE: &str = "knative-serving";
/// ConfigMap that maps Routes to domains.
pub const CONFIG_DOMAIN: &str = "config-domain";
/// ConfigMap of feature flags.
pub const CONFIG_FEATURES: &str = "config-features";
/// ConfigMap of networking settings (ingress class, schemes, TLS).
pub const CONFIG_NETWORK: &str = "config-network";
/// ConfigMap of defaults and limits for Revisions.
pub const CONFIG_DEFAULTS: &str = "config-defaults";
/// ConfigMap of the autoscaler's settings.
pub const CONFIG_AUTOSCALER: &str = "config-autoscaler";
/// ConfigMap of revision garbage collection.
pub const CONFIG_GC: &str = "config-gc";
/// ConfigMap of Deployment settings (tag resolution, progress deadline).
pub const CONFIG_DEPLOYMENT: &str = "config-deployment";
/// The annotation that holds the checksum of a ConfigMap's `_example`.
pub const EXAMPLE_CHECKSUM_ANNOTATION: &str = "knative.dev/example-checksum";
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

/// Why Knative's ConfigMap webhook refuses a `config-*` ConfigMap; the text
/// is Knative's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigMapError {
    /// `_example` was edited: its checksum annotation no longer matches.
    #[error(
        "the update modifies a key in \"_example\" which is probably not what you want. \
         Instead, copy the respective setting to the top-level of the ConfigMap, directly \
         below \"data\""
    )]
    ExampleModified,
    /// A value that does not parse as its key's type.
    #[error("failed to parse {key:?}: {reason}")]
    Parse {
        /// The key.
        key: String,
        /// Go's parser message, as Knative reports it.
        reason: String,
    },
    /// A value outside its bounds (Knative's `ErrOutOfBoundsValue`).
    #[error("expected {low} <= {value} <= {high}: {key}")]
    OutOfBounds {
        /// The key.
        key: &'static str,
        /// The value given.
        value: i64,
        /// The lowest allowed.
        low: i64,
        /// The highest allowed.
        high: i64,
    },
    /// Two settings that contradict each other.
    #[error("{key} ({value}) cannot be greater than {limit_key} ({limit})")]
    Exceeds {
        /// The key that is too large.
        key: &'static str,
        /// Its value.
        value: i64,
        /// The key that bounds it.
        limit_key: &'static str,
        /// That key's value.
        limit: i64,
    },
    /// A setting the engine reads but cannot honour (said plainly rather than
    /// ignored).
    #[error("{key}: {reason}")]
    Unsupported {
        /// The key.
        key: &'static str,
        /// What the engine cannot do.
        reason: &'static str,
    },
    /// Any other of Knative's validation messages.
    #[error("{0}")]
    Invalid(String),
}

/// Knative's checksum of an `_example` value (`configmap.Checksum`): the
/// CRC-32 (IEEE) of the trimmed text, each run of newlines written as the
/// two characters `\n`, in eight hex digits.
pub fn example_checksum(example: &str) -> String {
    let mut normalised = String::with_capacity(example.len());
    let mut in_newlines = false;
    let trimmed = example.trim();
    let mut chars = trimmed.chars().peekable();
    while let Some(c) = chars.next() {
        let newline = c == '\n' || (c == '\r' && chars.peek() == Some(&'\n'));
        if newline {
            if c == '\r' {
                chars.next();
            }
            if !in_newlines {
                normalised.push_str("\\n");
            }
            in_newlines = true;
        } else {
            in_newlines = false;
            normalised.push(c);
        }
    }
    format!("{:08x}", crc32fast::hash(normalised.as_bytes()))
}

/// The webhook's first check of every known ConfigMap: an `_example` with a
/// checksum annotation must still match it.
pub fn check_example(
    data: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Result<(), ConfigMapError> {
    match (
        data.get(EXAMPLE_KEY),
        annotations.get(EXAMPLE_CHECKSUM_ANNOTATION),
    ) {
        (Some(example), Some(sum)) if *sum != example_checksum(example) => {
            Err(ConfigMapError::ExampleModified)
        }
        _ => Ok(()),
    }
}

/// Knative's `config-features` as admission reads it: each flag as its
/// value says (Knative ignores values it cannot read), a field allowed
/// unless its flag is `Disabled`, more than one container only when
/// `multi-container` is `Enabled`.
pub fn features(data: &BTreeMap<String, String>) -> crate::validation::FeatureFlags {
    let on = |key: &str| flag_admits(key, feature_flag(data, key));
    crate::validation::FeatureFlags {
        multi_container: on("multi-container"),
        node_selector: on("kubernetes.podspec-nodeselector"),
        tolerations: on("kubernetes.podspec-tolerations"),
        affinity: on("kubernetes.podspec-affinity"),
        topology_spread_constraints: on("kubernetes.podspec-topologyspreadconstraints"),
        host_aliases: on("kubernetes.podspec-hostaliases"),
        runtime_class_name: on("kubernetes.podspec-runtimeclassname"),
        priority_class_name: on("kubernetes.podspec-priorityclassname"),
        scheduler_name: on("kubernetes.podspec-schedulername"),
        dns_policy: on("kubernetes.podspec-dnspolicy"),
        dns_config: on("kubernetes.podspec-dnsconfig"),
        pod_security_context: on("kubernetes.podspec-securitycontext"),
        share_process_namespace: on("kubernetes.podspec-shareprocessnamespace"),
        host_namespaces: on("kubernetes.podspec-hostnetwork")
            || on("kubernetes.podspec-hostipc")
            || on("kubernetes.podspec-hostpid"),
        init_containers: on("kubernetes.podspec-init-containers"),
        empty_dir: on("kubernetes.podspec-volumes-emptydir"),
        persistent_volume_claim: on("kubernetes.podspec-persistent-volume-claim"),
        field_ref: on("kubernetes.podspec-fieldref"),
        tag_header_based_routing: on("tag-header-based-routing"),
    }
}

/// The `config-defaults` settings admission applies, as Knative's
/// `NewDefaultsConfigFromMap` reads and checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    /// `revision-timeout-seconds` (300).
    pub revision_timeout_seconds: i64,
    /// `max-revision-timeout-seconds` (600).
    pub max_revision_timeout_seconds: i64,
    /// `container-concurrency` (0).
    pub container_concurrency: i64,
    /// `container-concurrency-max-limit` (1000).
    pub container_concurrency_max_limit: i64,
    /// `container-name-template` (`user-container`).
    pub container_name: String,
    /// `enable-service-links` (`false`; `default` leaves the field unset).
    pub enable_service_links: Option<bool>,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            revision_timeout_seconds: crate::keys::DEFAULT_TIMEOUT_SECONDS,
            max_revision_timeout_seconds: crate::keys::MAX_TIMEOUT_SECONDS,
            container_concurrency: 0,
            container_concurrency_max_limit: crate::keys::MAX_CONTAINER_CONCURRENCY,
            container_name: crate::keys::DEFAULT_CONTAINER_NAME.to_owned(),
            enable_service_links: Some(false),
        }
    }
}

/// Reads `config-defaults` as Knative does: Knative's defaults for keys not
/// given, its parse and bounds messages for values that are wrong. Keys the
/// engine has no use for (resource defaults, response-start and idle
/// timeouts beyond their bounds check) are checked and otherwise ignored.
pub fn defaults(data: &BTreeMap<String, String>) -> Result<Defaults, ConfigMapError> {
    let mut d = Defaults::default();
    let int = |key: &str| -> Result<Option<i64>, ConfigMapError> {
        data.get(key)
            .map(|v| {
                v.parse::<i64>().map_err(|_| ConfigMapError::Parse {
                    key: key.to_owned(),
                    reason: format!("strconv.ParseInt: parsing {v:?}: invalid syntax"),
                })
            })
            .transpose()
    };
    if let Some(v) = int("revision-timeout-seconds")? {
        d.revision_timeout_seconds = v;
    }
    if let Some(v) = int("max-revision-timeout-seconds")? {
        d.max_revision_timeout_seconds = v;
    }
    if let Some(v) = int("container-concurrency")? {
        d.container_concurrency = v;
    }
    if let Some(v) = int("container-concurrency-max-limit")? {
        d.container_concurrency_max_limit = v;
    }
    let idle = int("revision-idle-timeout-seconds")?.unwrap_or(0);
    let response_start =
        int("revision-response-start-timeout-seconds")?.unwrap_or(d.revision_timeout_seconds);
    if let Some(v) = data.get("enable-service-links") {
        d.enable_service_links = match v.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            "default" => None,
            _ => {
                return Err(ConfigMapError::Parse {
                    key: "enable-service-links".into(),
                    reason: format!("strconv.ParseBool: parsing {v:?}: invalid syntax"),
                });
            }
        };
    }
    if let Some(v) = data.get("container-name-template") {
        if v.contains("{{") {
            return Err(ConfigMapError::Unsupported {
                key: "container-name-template",
                reason: "the okonomi engine takes a plain container name, not a Go template",
            });
        }
        d.container_name = v.clone();
    }
    let timeout = d.revision_timeout_seconds;
    if timeout > d.max_revision_timeout_seconds {
        return Err(ConfigMapError::Exceeds {
            key: "revision-timeout-seconds",
            value: timeout,
            limit_key: "max-revision-timeout-seconds",
            limit: d.max_revision_timeout_seconds,
        });
    }
    if response_start > 0 && response_start > timeout {
        return Err(ConfigMapError::Exceeds {
            key: "revision-response-start-timeout-seconds",
            value: response_start,
            limit_key: "revision-timeout-seconds",
            limit: timeout,
        });
    }
    if idle > 0 && idle > timeout {
        return Err(ConfigMapError::Exceeds {
            key: "revision-idle-timeout-seconds",
            value: idle,
            limit_key: "revision-timeout-seconds",
            limit: timeout,
        });
    }
    if d.container_concurrency_max_limit < 1 {
        return Err(ConfigMapError::OutOfBounds {
            key: "container-concurrency-max-limit",
            value: d.container_concurrency_max_limit,
            low: 1,
            high: i64::from(i32::MAX),
        });
    }
    if d.container_concurrency < 0 || d.container_concurrency > d.container_concurrency_max_limit {
        return Err(ConfigMapError::OutOfBounds {
            key: "container-concurrency",
            value: d.container_concurrency,
            low: 0,
            high: d.container_concurrency_max_limit,
        });
    }
    Ok(d)
}
