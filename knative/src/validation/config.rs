//! The cluster settings validation depends on: Knative's `config-defaults`
//! limits and `config-features` flags.

/// Knative's `config-features` switches that change what a Revision may use.
/// [`Default`] is Knative's shipped configuration: multi-container on,
/// every `kubernetes.podspec-*` extension off except emptyDir volumes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureFlags {
    /// `multi-container` (enabled by default).
    pub multi_container: bool,
    /// `kubernetes.podspec-nodeselector`.
    pub node_selector: bool,
    /// `kubernetes.podspec-tolerations`.
    pub tolerations: bool,
    /// `kubernetes.podspec-affinity`.
    pub affinity: bool,
    /// `kubernetes.podspec-topologyspreadconstraints`.
    pub topology_spread_constraints: bool,
    /// `kubernetes.podspec-hostaliases`.
    pub host_aliases: bool,
    /// `kubernetes.podspec-runtimeclassname`.
    pub runtime_class_name: bool,
    /// `kubernetes.podspec-priorityclassname`.
    pub priority_class_name: bool,
    /// `kubernetes.podspec-schedulername`.
    pub scheduler_name: bool,
    /// `kubernetes.podspec-dnspolicy`.
    pub dns_policy: bool,
    /// `kubernetes.podspec-dnsconfig`.
    pub dns_config: bool,
    /// `kubernetes.podspec-securitycontext` (pod-level securityContext).
    pub pod_security_context: bool,
    /// `kubernetes.podspec-shareprocessnamespace`.
    pub share_process_namespace: bool,
    /// `kubernetes.podspec-hostipc`, `-hostpid`, `-hostnetwork`.
    pub host_namespaces: bool,
    /// `kubernetes.podspec-init-containers`.
    pub init_containers: bool,
    /// `kubernetes.podspec-volumes-emptydir` (enabled by default).
    pub empty_dir: bool,
    /// `kubernetes.podspec-persistent-volume-claim`.
    pub persistent_volume_claim: bool,
    /// `kubernetes.podspec-fieldref`: env `valueFrom.fieldRef` and
    /// `resourceFieldRef` (the downward API).
    pub field_ref: bool,
    /// `tag-header-based-routing`: the `Knative-Serving-Tag` request
    /// header picks a tagged revision.
    pub tag_header_based_routing: bool,
}

impl Default for FeatureFlags {
    fn default() -> Self {
        Self {
            multi_container: true,
            node_selector: false,
            tolerations: false,
            affinity: false,
            topology_spread_constraints: false,
            host_aliases: false,
            runtime_class_name: false,
            priority_class_name: false,
            scheduler_name: false,
            dns_policy: false,
            dns_config: false,
            pod_security_context: false,
            share_process_namespace: false,
            host_namespaces: false,
            init_containers: false,
            empty_dir: true,
            persistent_volume_claim: false,
            field_ref: false,
            tag_header_based_routing: false,
        }
    }
}

impl FeatureFlags {
    /// Knative's `config-features` keys of the flags that are on, as an
    /// operator would set them (`KEY: enabled`), for messages and docs.
    pub fn enabled_keys(&self) -> Vec<&'static str> {
        let all = [
            (self.multi_container, "multi-container"),
            (self.node_selector, "kubernetes.podspec-nodeselector"),
            (self.tolerations, "kubernetes.podspec-tolerations"),
            (self.affinity, "kubernetes.podspec-affinity"),
            (
                self.topology_spread_constraints,
                "kubernetes.podspec-topologyspreadconstraints",
            ),
            (self.host_aliases, "kubernetes.podspec-hostaliases"),
            (
                self.runtime_class_name,
                "kubernetes.podspec-runtimeclassname",
            ),
            (
                self.priority_class_name,
                "kubernetes.podspec-priorityclassname",
            ),
            (self.scheduler_name, "kubernetes.podspec-schedulername"),
            (self.dns_policy, "kubernetes.podspec-dnspolicy"),
            (self.dns_config, "kubernetes.podspec-dnsconfig"),
            (
                self.pod_security_context,
                "kubernetes.podspec-securitycontext",
            ),
            (
                self.share_process_namespace,
                "kubernetes.podspec-shareprocessnamespace",
            ),
            (self.host_namespaces, "kubernetes.podspec-hostnetwork"),
            (self.init_containers, "kubernetes.podspec-init-containers"),
            (self.empty_dir, "kubernetes.podspec-volumes-emptydir"),
            (
                self.persistent_volume_claim,
                "kubernetes.podspec-persistent-volume-claim",
            ),
            (self.field_ref, "kubernetes.podspec-fieldref"),
            (self.tag_header_based_routing, "tag-header-based-routing"),
        ];
        all.into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, key)| key)
            .collect()
    }
}

/// Limits and defaults of Knative's `config-defaults` and `config-autoscaler`
/// that validation and defaulting use. [`Default`] is Knative's shipped
/// configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationConfig {
    /// `config-features`.
    pub features: FeatureFlags,
    /// `revision-timeout-seconds` (default 300): the default `timeoutSeconds`.
    pub revision_timeout_seconds: i64,
    /// `max-revision-timeout-seconds` (default 600).
    pub max_revision_timeout_seconds: i64,
    /// `container-concurrency` (default 0): the default `containerConcurrency`.
    pub container_concurrency: i64,
    /// `container-concurrency-max-limit` (default 1000).
    pub container_concurrency_max_limit: i64,
    /// `container-name-template` (default `user-container`).
    pub container_name: String,
    /// `enable-service-links` (default false; None leaves the field unset).
    pub enable_service_links: Option<bool>,
    /// `allow-zero-initial-scale` of config-autoscaler (default false).
    pub allow_zero_initial_scale: bool,
    /// `max-scale-limit` of config-autoscaler (default 0 = none).
    pub max_scale_limit: u32,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            features: FeatureFlags::default(),
            revision_timeout_seconds: crate::keys::DEFAULT_TIMEOUT_SECONDS,
            max_revision_timeout_seconds: crate::keys::MAX_TIMEOUT_SECONDS,
            container_concurrency: 0,
            container_concurrency_max_limit: crate::keys::MAX_CONTAINER_CONCURRENCY,
            container_name: crate::keys::DEFAULT_CONTAINER_NAME.to_owned(),
            enable_service_links: Some(false),
            allow_zero_initial_scale: false,
            max_scale_limit: 0,
        }
    }
}

impl ValidationConfig {
    /// The settings of `config-defaults` and `config-features` (see
    /// [`crate::cluster_config::defaults`] and
    /// [`crate::cluster_config::features`]); the autoscaler's limits stay
    /// as given.
    pub fn with_config_maps(
        self,
        defaults: &crate::cluster_config::Defaults,
        features: FeatureFlags,
    ) -> Self {
        Self {
            features,
            revision_timeout_seconds: defaults.revision_timeout_seconds,
            max_revision_timeout_seconds: defaults.max_revision_timeout_seconds,
            container_concurrency: defaults.container_concurrency,
            container_concurrency_max_limit: defaults.container_concurrency_max_limit,
            container_name: defaults.container_name.clone(),
            enable_service_links: defaults.enable_service_links,
            ..self
        }
    }
}
