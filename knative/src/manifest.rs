//! okonomi.toml, the function manifest that lives next to a function's
//! Cargo.toml: its name, build, scaling, service knobs, environment,
//! resources, placement, sidecars, mesh policy and cloud profiles.
//!
//! Parsing reports the file, the line and the dotted field (`scale.min`) of
//! the first syntax or type error; [`FunctionManifest::check`] then reports
//! every rule a value breaks. `docs/okonomi-toml.md` documents each field.

mod profile;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

pub use profile::{Cloud, KIND_LOCAL_REGISTRY, Profile};

use crate::error::{Error, Result};
use crate::validation::{
    FieldError, FieldErrors, check_dns1035_label, check_dns1123_label, check_quantity,
    parse_duration,
};

/// File name of the manifest.
pub const MANIFEST_FILE: &str = "okonomi.toml";

/// The parsed okonomi.toml.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionManifest {
    /// `[function]`: identity of the function.
    pub function: FunctionSection,
    /// `[build]`: where images go.
    #[serde(default, skip_serializing_if = "is_default")]
    pub build: BuildSection,
    /// `[scale]`: autoscaling annotations.
    #[serde(default, skip_serializing_if = "is_default")]
    pub scale: ScaleSection,
    /// `[service]`: request handling.
    #[serde(default, skip_serializing_if = "is_default")]
    pub service: ServiceSection,
    /// `[env]`: environment variables of the function's container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `[resources]`: requests and limits of the function's container.
    #[serde(default, skip_serializing_if = "is_default")]
    pub resources: ResourcesSection,
    /// `[placement]`: node pool, accelerator, node selector, tolerations.
    #[serde(default, skip_serializing_if = "is_default")]
    pub placement: PlacementSection,
    /// `[[sidecars]]`: extra containers in the function's pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<SidecarSection>,
    /// `[istio]`: mesh policy for this function.
    #[serde(default, skip_serializing_if = "is_default")]
    pub istio: IstioSection,
    /// `[profile]`: the default deployment target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    /// `[profiles.NAME]`: further targets, picked with `--profile NAME`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub profiles: BTreeMap<String, Profile>,
    /// The file this manifest was read from (not part of the TOML).
    #[serde(skip)]
    pub source: PathBuf,
    /// `[package] version` of the Cargo.toml beside it, when [`FunctionManifest::load`]
    /// found a literal one (not part of the TOML); rendered as `app.kubernetes.io/version`.
    #[serde(skip)]
    pub cargo_version: Option<String>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// `[function]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSection {
    /// Knative Service name (DNS-1035). When okonomi.toml leaves it out,
    /// [`FunctionManifest::load`] takes the Cargo package name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Namespace to deploy into (default: the kube context's, or `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How the function is invoked.
    #[serde(default)]
    pub kind: FunctionKind,
    /// Free text, rendered as an annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `function.kind`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionKind {
    /// Plain HTTP requests.
    #[default]
    Http,
    /// CloudEvents over HTTP.
    Cloudevent,
}

impl FunctionKind {
    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionKind::Http => "http",
            FunctionKind::Cloudevent => "cloudevent",
        }
    }
}

/// `[build]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// Registry and repository prefix images are pushed to
    /// (`--registry` and `OKONOMI_REGISTRY` override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Target platforms, `linux/amd64` and/or `linux/arm64`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// `engine-profile`: the cargo profile of builds for okonomi's engine
    /// (`okonomi deploy` without a registry): `dev` (the default: incremental,
    /// a change is live in seconds) or `release` (what images get). Images for
    /// a registry are always built with `release`.
    #[serde(
        default,
        rename = "engine-profile",
        skip_serializing_if = "Option::is_none"
    )]
    pub engine_profile: Option<BuildProfile>,
}

/// A cargo profile okonomi builds with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildProfile {
    /// Cargo's `dev` profile: incremental, unoptimised; quick to rebuild.
    #[default]
    Dev,
    /// The `release` profile: what function images are built with.
    Release,
}

impl BuildProfile {
    /// The name cargo knows it by (`--profile NAME`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dev => "dev",
            Self::Release => "release",
        }
    }
}

/// A profile name that is neither `dev` nor `release`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a build profile okonomi uses: use dev or release")]
pub struct UnknownBuildProfile(pub String);

impl std::str::FromStr for BuildProfile {
    type Err = UnknownBuildProfile;

    fn from_str(value: &str) -> std::result::Result<Self, Self::Err> {
        match value {
            "dev" => Ok(Self::Dev),
            "release" => Ok(Self::Release),
            other => Err(UnknownBuildProfile(other.to_string())),
        }
    }
}

impl std::fmt::Display for BuildProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Platforms okonomi can build for.
pub const SUPPORTED_PLATFORMS: [&str; 2] = ["linux/amd64", "linux/arm64"];

/// `[scale]`: each field becomes an `autoscaling.knative.dev/*` annotation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleSection {
    /// `min-scale`: instances kept even without traffic (0 = scale to zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    /// `max-scale`: upper bound (0 = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    /// `initial-scale`: instances a new revision starts with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<u32>,
    /// `target`: per-instance target of the metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<f64>,
    /// `metric`: concurrency or rps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<ScaleMetric>,
    /// `target-utilization-percentage`, 1–100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization: Option<f64>,
    /// `window`: stable window, 6s–1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// `scale-down-delay`, 0s–1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay: Option<String>,
}

/// `scale.metric`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleMetric {
    /// In-flight requests per instance.
    Concurrency,
    /// Requests per second per instance.
    Rps,
}

impl ScaleMetric {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            ScaleMetric::Concurrency => crate::keys::METRIC_CONCURRENCY,
            ScaleMetric::Rps => crate::keys::METRIC_RPS,
        }
    }
}

/// `[service]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSection {
    /// `containerConcurrency`, 0–1000 (0 = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// `timeoutSeconds`, 1–600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// Who can reach the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
}

/// `service.visibility`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Visibility {
    /// Reachable through the ingress gateway.
    #[default]
    Public,
    /// Reachable only inside the cluster (`networking.knative.dev/visibility`).
    ClusterLocal,
}

/// `[resources]` (also used by each sidecar).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcesSection {
    /// Requests, e.g. `{ cpu = "100m", memory = "64Mi" }`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity_map"
    )]
    pub requests: BTreeMap<String, String>,
    /// Limits, e.g. `{ memory = "128Mi" }`.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "quantity_map"
    )]
    pub limits: BTreeMap<String, String>,
}

/// Accepts `cpu = 1` as well as `cpu = "1"`: a quantity is a string in
/// Kubernetes, but a bare number is what people write in TOML.
fn quantity_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Quantity {
        Text(String),
        Integer(i64),
        Float(f64),
    }
    let map = BTreeMap::<String, Quantity>::deserialize(deserializer)?;
    Ok(map
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                Quantity::Text(text) => text,
                Quantity::Integer(n) => n.to_string(),
                Quantity::Float(x) => x.to_string(),
            };
            (key, text)
        })
        .collect())
}

/// `[placement]`: where the function's pods may run. Rendered as
/// `nodeSelector` and `tolerations`, which Knative accepts only with the
/// `kubernetes.podspec-nodeselector` and `kubernetes.podspec-tolerations`
/// feature flags on (see [`PlacementSection::needs_feature_flags`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementSection {
    /// Node pool name; the label key depends on the profile's cloud
    /// (`cloud.google.com/gke-nodepool`, `eks.amazonaws.com/nodegroup`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_pool: Option<String>,
    /// Accelerator type (e.g. `nvidia-tesla-t4` on GKE); adds the cloud's
    /// accelerator node label and the `nvidia.com/gpu` limit (no toleration:
    /// see `render::gpu_toleration` for why no cloud needs one rendered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator: Option<String>,
    /// Number of GPUs (`nvidia.com/gpu` limit); default 1 with an accelerator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<u32>,
    /// Further node labels to select on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<TolerationSection>,
}

impl PlacementSection {
    /// True when rendering needs Knative's nodeSelector/tolerations feature flags.
    pub fn needs_feature_flags(&self) -> bool {
        *self != PlacementSection::default()
    }
}

/// One `[[placement.tolerations]]` entry (Kubernetes `Toleration`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TolerationSection {
    /// Taint key (empty with `operator = "Exists"` tolerates everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Equal` (default) or `Exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Taint value for `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute` (empty = all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
}

/// One `[[sidecars]]` entry: an extra container beside the function (a log
/// shipper, a proxy). Sidecars take no port: Knative routes to the one
/// container that declares a port, the function.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarSection {
    /// Container name (DNS-1123 label, unique in the pod).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Requests and limits.
    #[serde(default, skip_serializing_if = "is_default")]
    pub resources: ResourcesSection,
    /// uid the sidecar runs as (`runAsUser`). Unset, it keeps its image's
    /// user; `0` runs it as root and drops `runAsNonRoot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<i64>,
    /// gid the sidecar runs as (`runAsGroup`); unset, its image's group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<i64>,
    /// Whether the root file system is read-only (default true); images that
    /// write beside their binaries need `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root: Option<bool>,
}

/// `[istio]`: the function's mesh policy, rendered by [`crate::istio`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IstioSection {
    /// Workload principals allowed to call the function, as Istio writes
    /// them: `cluster.local/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callers: Vec<String>,
    /// Namespaces whose workloads may all call the function.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caller_namespaces: Vec<String>,
    /// Mutual TLS mode for the function's pods (default strict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MtlsMode>,
}

/// `istio.mtls`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MtlsMode {
    /// Only mutual-TLS traffic.
    #[default]
    Strict,
    /// Mutual TLS and plain text.
    Permissive,
}

impl MtlsMode {
    /// The Istio spelling (`STRICT`, `PERMISSIVE`).
    pub fn as_istio(self) -> &'static str {
        match self {
            MtlsMode::Strict => "STRICT",
            MtlsMode::Permissive => "PERMISSIVE",
        }
    }
}

impl FunctionManifest {
    /// Reads `DIR/okonomi.toml` (or the file itself when given one), fills
    /// `function.name` from `DIR/Cargo.toml` when left out, and checks every
    /// value. Blocking file I/O: call it from `spawn_blocking` on a runtime.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let (dir, path) = if dir.is_file() {
            (
                dir.parent().unwrap_or(Path::new(".")).to_path_buf(),
                dir.to_path_buf(),
            )
        } else {
            (dir.to_path_buf(), dir.join(MANIFEST_FILE))
        };
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let mut manifest = Self::parse(&text, &path)?;
        let package = cargo_package(&dir.join("Cargo.toml"))?;
        if manifest.function.name.is_empty() {
            manifest.function.name = package.name.unwrap_or_default();
        }
        manifest.cargo_version = package.version;
        manifest.check_or_error()?;
        Ok(manifest)
    }

    /// Parses and checks manifest text; `source` names the file in errors.
    /// Does not consult Cargo.toml, so `function.name` must be set.
    pub fn from_toml_str(text: &str, source: impl AsRef<Path>) -> Result<Self> {
        let manifest = Self::parse(text, source.as_ref())?;
        manifest.check_or_error()?;
        Ok(manifest)
    }

    /// The manifest as TOML text.
    pub fn to_toml_string(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        let syntax_error = |error: toml::de::Error, field: String| Error::ManifestSyntax {
            path: path.to_path_buf(),
            location: error
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or_default(),
            field,
            message: error.message().trim_end().to_owned(),
        };
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|e| syntax_error(e, "(document)".to_owned()))?;
        let mut manifest: FunctionManifest = serde_path_to_error::deserialize(deserializer)
            .map_err(|error| {
                let field = error.path().to_string();
                let field = if field == "." {
                    "(document)".to_owned()
                } else {
                    field
                };
                syntax_error(error.into_inner(), field)
            })?;
        manifest.source = path.to_path_buf();
        Ok(manifest)
    }

    fn check_or_error(&self) -> Result<()> {
        let causes = self.check();
        if causes.is_empty() {
            Ok(())
        } else {
            Err(Error::ManifestInvalid {
                path: self.source.clone(),
                causes,
            })
        }
    }

    /// Every rule the values break, each with its dotted field path.
    pub fn check(&self) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let function = &self.function;
        if function.name.is_empty() {
            errors.push(FieldError::required(
                "function.name",
                "set [function] name = \"...\" (or keep okonomi.toml next to a Cargo.toml whose package name is a valid name)",
            ));
        } else if let Err(problem) = check_dns1035_label(&function.name) {
            errors.push(FieldError::invalid("function.name", problem));
        }
        if let Some(namespace) = &function.namespace
            && let Err(problem) = check_dns1123_label(namespace)
        {
            errors.push(FieldError::invalid("function.namespace", problem));
        }
        if let Some(registry) = &self.build.registry
            && let Err(problem) = check_registry(registry)
        {
            errors.push(FieldError::invalid("build.registry", problem));
        }
        for (i, platform) in self.build.platforms.iter().enumerate() {
            if !SUPPORTED_PLATFORMS.contains(&platform.as_str()) {
                errors.push(FieldError::not_supported(
                    format!("build.platforms[{i}]"),
                    format!("{platform:?} is not supported; use one of {SUPPORTED_PLATFORMS:?}"),
                ));
            }
        }
        self.check_scale(&mut errors);
        if let Some(concurrency) = self.service.concurrency
            && i64::from(concurrency) > crate::keys::MAX_CONTAINER_CONCURRENCY
        {
            errors.push(FieldError::invalid(
                "service.concurrency",
                format!(
                    "{concurrency} is above {}; use 0 (unlimited) to 1000",
                    crate::keys::MAX_CONTAINER_CONCURRENCY
                ),
            ));
        }
        if let Some(timeout) = self.service.timeout
            && (timeout == 0 || i64::from(timeout) > crate::keys::MAX_TIMEOUT_SECONDS)
        {
            errors.push(FieldError::invalid(
                "service.timeout",
                format!(
                    "{timeout} is out of range; use 1 to {} seconds",
                    crate::keys::MAX_TIMEOUT_SECONDS
                ),
            ));
        }
        check_env("env", &self.env, true, &mut errors);
        check_resources("resources", &self.resources, &mut errors);
        self.check_placement(&mut errors);
        self.check_sidecars(&mut errors);
        self.check_istio(&mut errors);
        if let Some(profile) = &self.profile {
            profile.check("profile", &mut errors);
        }
        for (name, profile) in &self.profiles {
            profile.check(&format!("profiles.{name}"), &mut errors);
        }
        errors
    }

    fn check_scale(&self, errors: &mut FieldErrors) {
        let scale = &self.scale;
        if let (Some(min), Some(max)) = (scale.min, scale.max)
            && max != 0
            && min > max
        {
            errors.push(FieldError::invalid(
                "scale.min",
                format!("min ({min}) is above max ({max}); lower min or raise max (0 = unlimited)"),
            ));
        }
        if scale.initial == Some(0) {
            errors.push(FieldError::invalid(
                "scale.initial",
                "0 needs allow-zero-initial-scale: \"true\" in the cluster's config-autoscaler; use 1 or more, or leave it out",
            ));
        }
        if let (Some(initial), Some(max)) = (scale.initial, scale.max)
            && max != 0
            && initial > max
        {
            errors.push(FieldError::invalid(
                "scale.initial",
                format!("initial ({initial}) is above max ({max})"),
            ));
        }
        if let Some(target) = scale.target
            && (target.is_nan() || target < 0.01)
        {
            errors.push(FieldError::invalid(
                "scale.target",
                format!("{target} must be at least 0.01"),
            ));
        }
        if let Some(utilization) = scale.utilization
            && !(1.0..=100.0).contains(&utilization)
        {
            errors.push(FieldError::invalid(
                "scale.utilization",
                format!("{utilization} is not a percentage from 1 to 100"),
            ));
        }
        if let Some(window) = &scale.window {
            match parse_duration(window) {
                Ok(d)
                    if d < std::time::Duration::from_secs(6)
                        || d > std::time::Duration::from_secs(3600) =>
                {
                    errors.push(FieldError::invalid(
                        "scale.window",
                        format!("{window:?} is out of range; use 6s to 1h"),
                    ))
                }
                Ok(d) if d.subsec_nanos() != 0 => errors.push(FieldError::invalid(
                    "scale.window",
                    format!("{window:?} must be whole seconds"),
                )),
                Ok(_) => {}
                Err(problem) => errors.push(FieldError::invalid("scale.window", problem)),
            }
        }
        if let Some(delay) = &scale.scale_down_delay {
            match parse_duration(delay) {
                Ok(d) if d > std::time::Duration::from_secs(3600) => {
                    errors.push(FieldError::invalid(
                        "scale.scale_down_delay",
                        format!("{delay:?} is out of range; use 0s to 1h"),
                    ))
                }
                Ok(d) if d.subsec_nanos() != 0 => errors.push(FieldError::invalid(
                    "scale.scale_down_delay",
                    format!("{delay:?} must be whole seconds"),
                )),
                Ok(_) => {}
                Err(problem) => errors.push(FieldError::invalid("scale.scale_down_delay", problem)),
            }
        }
    }

    fn check_placement(&self, errors: &mut FieldErrors) {
        let placement = &self.placement;
        if placement.gpus.is_some_and(|gpus| gpus == 0) {
            errors.push(FieldError::invalid(
                "placement.gpus",
                "use at least 1, or leave gpus out",
            ));
        }
        for (key, field) in [
            (&placement.node_pool, "placement.node_pool"),
            (&placement.accelerator, "placement.accelerator"),
        ] {
            if key.as_deref().is_some_and(str::is_empty) {
                errors.push(FieldError::invalid(
                    field,
                    "must not be empty; leave it out instead",
                ));
            }
        }
        for (i, toleration) in placement.tolerations.iter().enumerate() {
            let field = format!("placement.tolerations[{i}]");
            match toleration.operator.as_deref() {
                None | Some("Equal") => {
                    if toleration.key.is_none() {
                        errors.push(FieldError::required(
                            format!("{field}.key"),
                            "operator Equal needs a key (use operator = \"Exists\" to match every taint)",
                        ));
                    }
                }
                Some("Exists") => {
                    if toleration.value.is_some() {
                        errors.push(FieldError::invalid(
                            format!("{field}.value"),
                            "operator Exists takes no value",
                        ));
                    }
                }
                Some(other) => errors.push(FieldError::not_supported(
                    format!("{field}.operator"),
                    format!("{other:?} is not supported; use \"Equal\" or \"Exists\""),
                )),
            }
            if let Some(effect) = &toleration.effect
                && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect.as_str())
            {
                errors.push(FieldError::not_supported(
                    format!("{field}.effect"),
                    format!(
                        "{effect:?} is not supported; use NoSchedule, PreferNoSchedule or NoExecute"
                    ),
                ));
            }
        }
    }

    fn check_sidecars(&self, errors: &mut FieldErrors) {
        let mut names = vec![
            crate::keys::DEFAULT_CONTAINER_NAME.to_owned(),
            self.function.name.clone(),
        ];
        for (i, sidecar) in self.sidecars.iter().enumerate() {
            let field = format!("sidecars[{i}]");
            if let Err(problem) = check_dns1123_label(&sidecar.name) {
                errors.push(FieldError::invalid(format!("{field}.name"), problem));
            } else if names.contains(&sidecar.name) {
                errors.push(FieldError::duplicate(
                    format!("{field}.name"),
                    format!(
                        "{:?} is already taken in the pod; pick another container name",
                        sidecar.name
                    ),
                ));
            }
            names.push(sidecar.name.clone());
            if sidecar.image.trim().is_empty() {
                errors.push(FieldError::required(
                    format!("{field}.image"),
                    "set the sidecar's image reference",
                ));
            }
            check_env(&format!("{field}.env"), &sidecar.env, false, errors);
            check_resources(&format!("{field}.resources"), &sidecar.resources, errors);
            for (key, id) in [("user", sidecar.user), ("group", sidecar.group)] {
                if id.is_some_and(|id| !(0..=i64::from(i32::MAX)).contains(&id)) {
                    errors.push(FieldError::invalid(
                        format!("{field}.{key}"),
                        format!(
                            "use an id from 0 to {}, or leave {key} out to keep the image's",
                            i32::MAX
                        ),
                    ));
                }
            }
        }
    }

    fn check_istio(&self, errors: &mut FieldErrors) {
        for (i, caller) in self.istio.callers.iter().enumerate() {
            let parts: Vec<&str> = caller.split('/').collect();
            let well_formed = parts.len() == 5
                && !parts[0].is_empty()
                && parts[1] == "ns"
                && !parts[2].is_empty()
                && parts[3] == "sa"
                && !parts[4].is_empty();
            if !well_formed {
                errors.push(FieldError::invalid(
                    format!("istio.callers[{i}]"),
                    format!("{caller:?} is not a workload principal; write TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT, e.g. cluster.local/ns/frontend/sa/web"),
                ));
            }
        }
        for (i, namespace) in self.istio.caller_namespaces.iter().enumerate() {
            if let Err(problem) = check_dns1123_label(namespace) {
                errors.push(FieldError::invalid(
                    format!("istio.caller_namespaces[{i}]"),
                    problem,
                ));
            }
        }
    }

    /// Namespace to deploy into when the command line names none.
    pub fn namespace(&self) -> &str {
        self.function.namespace.as_deref().unwrap_or("default")
    }

    /// The profile to deploy with: `[profiles.NAME]` when a name is given,
    /// `[profile]` otherwise (which may be absent).
    pub fn select_profile(&self, name: Option<&str>) -> Result<Option<&Profile>> {
        match name {
            None => Ok(self.profile.as_ref()),
            Some(name) => match self.profiles.get(name) {
                Some(profile) => Ok(Some(profile)),
                None if self
                    .profile
                    .as_ref()
                    .is_some_and(|p| p.cloud.as_str() == name) =>
                {
                    Ok(self.profile.as_ref())
                }
                None => Err(Error::UnknownProfile {
                    path: self.source.clone(),
                    name: name.to_owned(),
                    known: if self.profiles.is_empty() {
                        "none".to_owned()
                    } else {
                        self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                    },
                }),
            },
        }
    }

    /// The registry to push to: `[build] registry`, else the profile's.
    /// (`--registry` and `OKONOMI_REGISTRY` come first; the CLI applies them.)
    pub fn registry(&self, profile: Option<&Profile>) -> Option<String> {
        self.build
            .registry
            .clone()
            .or_else(|| profile.and_then(Profile::registry))
    }
}

/// A registry prefix as image references use it: `HOST[:PORT][/PATH]`.
pub(crate) fn check_registry(registry: &str) -> Result<(), String> {
    let hint = "write HOST[:PORT]/REPOSITORY, e.g. 127.0.0.1:5000/okonomi or europe-docker.pkg.dev/PROJECT/REPO";
    if registry.contains("://") {
        Err(format!("{registry:?} has a URL scheme; {hint}"))
    } else if registry.is_empty() || registry.starts_with('/') || registry.ends_with('/') {
        Err(format!("{registry:?} is not a registry prefix; {hint}"))
    } else if registry.chars().any(|c| c.is_whitespace() || c == '@') {
        Err(format!("{registry:?} contains a space or '@'; {hint}"))
    } else {
        Ok(())
    }
}

fn check_env(
    field: &str,
    env: &BTreeMap<String, String>,
    function: bool,
    errors: &mut FieldErrors,
) {
    for name in env.keys() {
        let path = format!("{field}.{name}");
        if name.is_empty() || name.contains('=') || !name.chars().all(|c| c.is_ascii_graphic()) {
            errors.push(FieldError::invalid(
                path,
                "an environment variable name must be printable ASCII without '=' or spaces",
            ));
        } else if function && crate::keys::RESERVED_ENV_VARS.contains(&name.as_str()) {
            errors.push(FieldError::forbidden(
                path,
                format!(
                    "{name} is reserved: Knative sets it for every instance; pick another name"
                ),
            ));
        }
    }
}

fn check_resources(field: &str, resources: &ResourcesSection, errors: &mut FieldErrors) {
    for (kind, map) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        for (name, value) in map {
            if let Err(problem) = check_quantity(value) {
                errors.push(FieldError::invalid(
                    format!("{field}.{kind}.{name}"),
                    problem,
                ));
            }
        }
    }
}

/// What okonomi takes from a function's Cargo.toml.
#[derive(Default)]
struct CargoPackage {
    /// The package name, made a valid Knative name candidate.
    name: Option<String>,
    /// A literal version (`version.workspace = true` gives none).
    version: Option<String>,
}

fn cargo_package(cargo_toml: &Path) -> Result<CargoPackage> {
    let text = match std::fs::read_to_string(cargo_toml) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(CargoPackage::default());
        }
        Err(source) => {
            return Err(Error::Read {
                path: cargo_toml.to_path_buf(),
                source,
            });
        }
    };
    let table: toml::Table = toml::from_str(&text).map_err(|error| Error::ManifestSyntax {
        path: cargo_toml.to_path_buf(),
        location: error
            .span()
            .map(|span| line_column(&text, span.start))
            .unwrap_or_default(),
        field: "(document)".to_owned(),
        message: error.message().trim_end().to_owned(),
    })?;
    let package = table.get("package");
    let text_field = |key: &str| {
        package
            .and_then(|p| p.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    let inherits_version = package
        .and_then(|p| p.get("version"))
        .and_then(|v| v.get("workspace"))
        .and_then(|w| w.as_bool())
        == Some(true);
    let version = match text_field("version") {
        Some(version) => Some(version),
        None if inherits_version => cargo_toml.parent().and_then(workspace_version),
        None => None,
    };
    Ok(CargoPackage {
        // Cargo allows '_' in package names; a Knative name does not.
        name: text_field("name").map(|name| name.replace('_', "-").to_ascii_lowercase()),
        version,
    })
}

/// `[workspace.package] version` of the nearest workspace above `dir`, for
/// packages that say `version.workspace = true`. Best effort: unreadable
/// files just mean no version label.
fn workspace_version(dir: &Path) -> Option<String> {
    dir.ancestors().skip(1).take(16).find_map(|ancestor| {
        let text = std::fs::read_to_string(ancestor.join("Cargo.toml")).ok()?;
        let table: toml::Table = toml::from_str(&text).ok()?;
        let workspace = table.get("workspace")?;
        Some(
            workspace
                .get("package")?
                .get("version")?
                .as_str()?
                .to_owned(),
        )
    })
}

fn line_column(text: &str, offset: usize) -> String {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
    format!(":{line}:{column}")
}
