//! Resource types: what the API serves (group, version, kind, plural, short names,
//! printer columns) and the Knative Serving v1 kinds plus core namespaces.

use crate::error::Error;

/// One kind of object the API serves, as a CRD would describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// API group; empty for the core group (`/api/v1`).
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Service`.
    pub kind: String,
    /// Plural resource name used in URLs, e.g. `services`.
    pub plural: String,
    /// Singular name, e.g. `service`.
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names accepted by kubectl, e.g. `ksvc`.
    pub short_names: Vec<String>,
    /// Categories, e.g. `all`, `knative`.
    pub categories: Vec<String>,
    /// Extra table columns for `kubectl get`, after NAME.
    pub printer_columns: Vec<PrinterColumn>,
    /// Whether the type has a `/status` subresource (status is then ignored by
    /// create, update and patch of the main resource).
    pub status_subresource: bool,
}

/// A table column taken from the object by a JSONPath, like a CRD's
/// `additionalPrinterColumns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column title, e.g. `URL`.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `date`, …
    pub type_: String,
    /// JSONPath, e.g. `.status.conditions[?(@.type=='Ready')].status`.
    pub json_path: String,
    /// 0 for default output, higher for `-o wide`.
    pub priority: i32,
}

impl PrinterColumn {
    fn new(name: &str, type_: &str, json_path: &str) -> Self {
        Self {
            name: name.into(),
            type_: type_.into(),
            json_path: json_path.into(),
            priority: 0,
        }
    }
}

/// The group of Knative Serving.
pub const SERVING_GROUP: &str = "serving.knative.dev";

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn ready_columns() -> Vec<PrinterColumn> {
    vec![
        PrinterColumn::new(
            "Ready",
            "string",
            ".status.conditions[?(@.type=='Ready')].status",
        ),
        PrinterColumn::new(
            "Reason",
            "string",
            ".status.conditions[?(@.type=='Ready')].reason",
        ),
    ]
}

impl ResourceType {
    fn serving(
        kind: &str,
        plural: &str,
        short_names: &[&str],
        columns: Vec<PrinterColumn>,
    ) -> Self {
        Self {
            group: SERVING_GROUP.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced: true,
            short_names: strings(short_names),
            categories: strings(&["all", "knative", "serving"]),
            printer_columns: columns,
            status_subresource: true,
        }
    }

    /// `services.serving.knative.dev` (ksvc).
    pub fn knative_service() -> Self {
        let mut columns = vec![
            PrinterColumn::new("URL", "string", ".status.url"),
            PrinterColumn::new(
                "LatestCreated",
                "string",
                ".status.latestCreatedRevisionName",
            ),
            PrinterColumn::new("LatestReady", "string", ".status.latestReadyRevisionName"),
        ];
        columns.extend(ready_columns());
        Self::serving("Service", "services", &["kservice", "ksvc"], columns)
    }

    /// `configurations.serving.knative.dev` (config, cfg, kcfg).
    pub fn knative_configuration() -> Self {
        let mut columns = vec![
            PrinterColumn::new(
                "LatestCreated",
                "string",
                ".status.latestCreatedRevisionName",
            ),
            PrinterColumn::new("LatestReady", "string", ".status.latestReadyRevisionName"),
        ];
        columns.extend(ready_columns());
        Self::serving(
            "Configuration",
            "configurations",
            &["config", "cfg", "kcfg"],
            columns,
        )
    }

    /// `revisions.serving.knative.dev` (rev).
    pub fn knative_revision() -> Self {
        let mut columns = vec![
            PrinterColumn::new(
                "Config Name",
                "string",
                ".metadata.labels['serving\\.knative\\.dev/configuration']",
            ),
            PrinterColumn::new(
                "Generation",
                "string",
                ".metadata.labels['serving\\.knative\\.dev/configurationGeneration']",
            ),
        ];
        columns.extend(ready_columns());
        columns.push(PrinterColumn::new(
            "Actual Replicas",
            "integer",
            ".status.actualReplicas",
        ));
        columns.push(PrinterColumn::new(
            "Desired Replicas",
            "integer",
            ".status.desiredReplicas",
        ));
        Self::serving("Revision", "revisions", &["rev"], columns)
    }

    /// `routes.serving.knative.dev` (rt).
    pub fn knative_route() -> Self {
        let mut columns = vec![PrinterColumn::new("URL", "string", ".status.url")];
        columns.extend(ready_columns());
        Self::serving("Route", "routes", &["rt"], columns)
    }

    /// Core `namespaces` (ns).
    pub fn namespace() -> Self {
        Self {
            group: String::new(),
            version: "v1".into(),
            kind: "Namespace".into(),
            plural: "namespaces".into(),
            singular: "namespace".into(),
            namespaced: false,
            short_names: strings(&["ns"]),
            categories: Vec::new(),
            printer_columns: vec![PrinterColumn::new("Status", "string", ".status.phase")],
            status_subresource: true,
        }
    }

    /// A core (`/api/v1`) kind.
    fn core(kind: &str, plural: &str, short_names: &[&str], namespaced: bool) -> Self {
        Self {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: strings(short_names),
            categories: Vec::new(),
            printer_columns: Vec::new(),
            status_subresource: false,
        }
    }

    /// Core `configmaps` (cm): written by users, read by revisions.
    pub fn config_map() -> Self {
        Self::core("ConfigMap", "configmaps", &["cm"], true)
    }

    /// Core `secrets`: written by users, read by revisions; never logged.
    pub fn secret() -> Self {
        Self::core("Secret", "secrets", &[], true)
    }

    /// Core `serviceaccounts` (sa); a `default` one per namespace.
    pub fn service_account() -> Self {
        Self::core("ServiceAccount", "serviceaccounts", &["sa"], true)
    }

    /// Core `pods` (po): one per running instance, owned by the engine.
    pub fn pod() -> Self {
        let mut pod = Self::core("Pod", "pods", &["po"], true);
        pod.categories = strings(&["all"]);
        pod.status_subresource = true;
        pod
    }

    /// Core `events` (ev), written by the engine's parts.
    pub fn event() -> Self {
        Self::core("Event", "events", &["ev"], true)
    }

    /// `events.events.k8s.io/v1`: the same events in the newer API.
    pub fn events_k8s_io_event() -> Self {
        let mut event = Self::core("Event", "events", &["ev"], true);
        event.group = "events.k8s.io".into();
        event
    }

    /// `deployments.apps/v1` (deploy): one per revision, owned by the engine.
    pub fn deployment() -> Self {
        let mut deployment = Self::core("Deployment", "deployments", &["deploy"], true);
        deployment.group = "apps".into();
        deployment.categories = strings(&["all"]);
        deployment.status_subresource = true;
        deployment
    }

    /// `replicasets.apps/v1` (rs): the Deployment's current ReplicaSet.
    pub fn replica_set() -> Self {
        let mut replica_set = Self::core("ReplicaSet", "replicasets", &["rs"], true);
        replica_set.group = "apps".into();
        replica_set.categories = strings(&["all"]);
        replica_set.status_subresource = true;
        replica_set
    }

    /// `podautoscalers.autoscaling.internal.knative.dev/v1alpha1` (kpa, pa):
    /// one per revision, owned by the engine.
    pub fn pod_autoscaler() -> Self {
        let mut columns = vec![
            PrinterColumn::new("DesiredScale", "integer", ".status.desiredScale"),
            PrinterColumn::new("ActualScale", "integer", ".status.actualScale"),
        ];
        columns.extend(ready_columns());
        Self {
            group: "autoscaling.internal.knative.dev".into(),
            version: "v1alpha1".into(),
            kind: "PodAutoscaler".into(),
            plural: "podautoscalers".into(),
            singular: "podautoscaler".into(),
            namespaced: true,
            short_names: strings(&["kpa", "pa"]),
            categories: strings(&["all", "knative-internal", "autoscaling"]),
            printer_columns: columns,
            status_subresource: true,
        }
    }

    /// The core and apps kinds below the Knative objects.
    pub fn kubernetes_core() -> Vec<Self> {
        vec![
            Self::config_map(),
            Self::secret(),
            Self::service_account(),
            Self::pod(),
            Self::event(),
            Self::events_k8s_io_event(),
            Self::deployment(),
            Self::replica_set(),
        ]
    }

    /// The four Knative Serving v1 kinds.
    pub fn knative_serving() -> Vec<Self> {
        vec![
            Self::knative_service(),
            Self::knative_configuration(),
            Self::knative_revision(),
            Self::knative_route(),
        ]
    }

    /// Everything the engine serves: namespaces, the core and apps kinds, the
    /// Knative Serving kinds and Knative's PodAutoscaler.
    pub fn all_builtin() -> Vec<Self> {
        let mut all = vec![Self::namespace()];
        all.extend(Self::kubernetes_core());
        all.extend(Self::knative_serving());
        all.push(Self::pod_autoscaler());
        all
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group`, or just `plural` for the core group (as in error messages).
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The key the store files objects of this type under.
    pub fn storage_key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// Kind of the list of this type, e.g. `ServiceList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub(crate) fn not_found(&self, name: &str) -> Error {
        Error::NotFound {
            resource: self.qualified_resource(),
            group: self.group.clone(),
            plural: self.plural.clone(),
            name: name.into(),
        }
    }

    pub(crate) fn already_exists(&self, name: &str) -> Error {
        Error::AlreadyExists {
            resource: self.qualified_resource(),
            group: self.group.clone(),
            plural: self.plural.clone(),
            name: name.into(),
        }
    }

    pub(crate) fn conflict(&self, name: &str) -> Error {
        Error::Conflict {
            resource: self.qualified_resource(),
            group: self.group.clone(),
            plural: self.plural.clone(),
            name: name.into(),
        }
    }

    pub(crate) fn invalid(&self, name: &str, causes: Vec<crate::status::StatusCause>) -> Error {
        Error::Invalid {
            kind: self.kind.clone(),
            group: self.group.clone(),
            name: name.into(),
            causes,
        }
    }
}
