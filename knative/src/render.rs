//! okonomi.toml + an image reference → the Knative Service that runs the
//! function, and YAML for `kubectl apply -f` / `kn service create --filename`.
//!
//! What the Service carries: the `autoscaling.knative.dev/*` annotations of
//! `[scale]`, `containerConcurrency` and `timeoutSeconds`, the environment and
//! resources, probes on the runtime's `/health/readiness` and
//! `/health/liveness`, one port named `h2c` on 8080, a security context that
//! passes Pod Security "restricted", the `app.kubernetes.io` labels,
//! visibility, placement (nodeSelector/tolerations) and sidecars.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, HTTPGetAction, Probe, ResourceRequirements,
    SeccompProfile, SecurityContext, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::keys;
use crate::manifest::{
    Cloud, FunctionManifest, Profile, ResourcesSection, SidecarSection, Visibility,
};
use crate::serving::{RevisionSpec, RevisionTemplateSpec, Service, ServiceSpec};
use crate::validation::{FeatureFlags, Validate, ValidationConfig};

/// Port the okonomi runtime listens on (Knative passes it as `PORT`).
pub const FUNCTION_PORT: i32 = 8080;
/// Readiness path the okonomi runtime serves (503 while draining).
pub const READINESS_PATH: &str = "/health/readiness";
/// Liveness path the okonomi runtime serves.
pub const LIVENESS_PATH: &str = "/health/liveness";
/// The non-root uid (and gid) okonomi images run as (distroless "nonroot").
pub const FUNCTION_UID: i64 = 65532;
/// Annotation carrying okonomi.toml's `function.description`.
pub const DESCRIPTION_ANNOTATION: &str = "okonomi.dev/description";
/// Label carrying okonomi.toml's `function.kind` (`http` or `cloudevent`).
pub const KIND_LABEL: &str = "okonomi.dev/kind";
/// Extended resource name of NVIDIA GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// Choices that do not come from okonomi.toml.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions<'a> {
    /// Target namespace (default: `function.namespace`, else none, so the
    /// kube context's namespace applies).
    pub namespace: Option<&'a str>,
    /// Deployment target; decides the node labels of `[placement]`
    /// (default: generic `okonomi.dev/*` labels).
    pub profile: Option<&'a Profile>,
    /// `app.kubernetes.io/version` (default: the Cargo.toml version
    /// [`FunctionManifest::load`] found, if any).
    pub version: Option<&'a str>,
}

/// A rendered Service and what the cluster must allow for it.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedService {
    /// The Service.
    pub service: Service,
    /// Knative `config-features` keys (in `knative-serving/config-features`)
    /// that must be `enabled` for the cluster to accept it, e.g.
    /// `kubernetes.podspec-nodeselector`.
    pub required_features: Vec<&'static str>,
}

impl RenderedService {
    /// A sentence for the user when feature flags are needed, else `None`.
    pub fn feature_note(&self) -> Option<String> {
        if self.required_features.is_empty() {
            return None;
        }
        let patch = self
            .required_features
            .iter()
            .map(|key| format!("\"{key}\":\"enabled\""))
            .collect::<Vec<_>>()
            .join(",");
        Some(format!(
            "{} needs Knative feature flag(s) {} on the cluster: kubectl patch configmap/config-features -n knative-serving --type merge -p '{{\"data\":{{{patch}}}}}'",
            self.service.name(),
            self.required_features.join(", "),
        ))
    }
}

/// Renders the Service for `manifest` running `image`, and checks it with
/// Knative's validation (feature flags it needs counted as enabled).
pub fn render_service(
    manifest: &FunctionManifest,
    image: &str,
    options: &RenderOptions<'_>,
) -> Result<RenderedService> {
    let name = manifest.function.name.clone();
    let cloud = options.profile.map(|p| p.cloud).unwrap_or(Cloud::Local);

    let mut labels = BTreeMap::from([
        (keys::APP_NAME_LABEL.to_owned(), name.clone()),
        (keys::APP_COMPONENT_LABEL.to_owned(), "function".to_owned()),
        (keys::APP_PART_OF_LABEL.to_owned(), "okonomi".to_owned()),
        (
            keys::APP_MANAGED_BY_LABEL.to_owned(),
            keys::MANAGED_BY_OKONOMI.to_owned(),
        ),
        (
            KIND_LABEL.to_owned(),
            manifest.function.kind.as_str().to_owned(),
        ),
    ]);
    if let Some(version) = options.version.or(manifest.cargo_version.as_deref()) {
        labels.insert(keys::APP_VERSION_LABEL.to_owned(), version.to_owned());
    }
    // Pods carry the app labels too, so `kubectl get pods -l` and mesh policy find them.
    let pod_labels = labels.clone();
    if manifest.service.visibility == Some(Visibility::ClusterLocal) {
        labels.insert(
            keys::VISIBILITY_LABEL.to_owned(),
            keys::VISIBILITY_CLUSTER_LOCAL.to_owned(),
        );
    }
    let annotations: BTreeMap<String, String> = manifest
        .function
        .description
        .iter()
        .map(|d| (DESCRIPTION_ANNOTATION.to_owned(), d.clone()))
        .collect();

    let mut function = Container {
        name: name.clone(),
        image: Some(image.to_owned()),
        ports: Some(vec![ContainerPort {
            name: Some(keys::PORT_NAME_H2C.to_owned()),
            container_port: FUNCTION_PORT,
            ..Default::default()
        }]),
        env: env_vars(&manifest.env),
        resources: resources(&manifest.resources, None),
        readiness_probe: Some(http_probe(READINESS_PATH)),
        liveness_probe: Some(http_probe(LIVENESS_PATH)),
        security_context: Some(restricted_security_context()),
        ..Default::default()
    };

    let placement = &manifest.placement;
    let mut node_selector = placement.node_selector.clone();
    if let Some(pool) = &placement.node_pool {
        node_selector.insert(cloud.node_pool_label().to_owned(), pool.clone());
    }
    let mut tolerations: Vec<Toleration> = placement
        .tolerations
        .iter()
        .map(|t| Toleration {
            key: t.key.clone(),
            operator: t.operator.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            toleration_seconds: None,
        })
        .collect();
    if placement.accelerator.is_some() || placement.gpus.is_some() {
        if let Some(accelerator) = &placement.accelerator {
            node_selector.insert(cloud.accelerator_label().to_owned(), accelerator.clone());
        }
        let gpus = placement.gpus.unwrap_or(1);
        function = Container {
            resources: resources(&manifest.resources, Some(gpus)),
            ..function
        };
        if let Some(toleration) = gpu_toleration(cloud)
            && !tolerations.iter().any(|t| t.key == toleration.key)
        {
            tolerations.push(toleration);
        }
    }

    let mut containers = vec![function];
    containers.extend(manifest.sidecars.iter().map(sidecar));

    let mut required_features = Vec::new();
    if !manifest.sidecars.is_empty() {
        required_features.push("multi-container");
    }
    if !node_selector.is_empty() {
        required_features.push("kubernetes.podspec-nodeselector");
    }
    if !tolerations.is_empty() {
        required_features.push("kubernetes.podspec-tolerations");
    }

    let mut spec = RevisionSpec::with_containers(containers);
    spec.container_concurrency = manifest.service.concurrency.map(i64::from);
    spec.timeout_seconds = manifest.service.timeout.map(i64::from);
    spec.pod_spec.node_selector = (!node_selector.is_empty()).then_some(node_selector);
    spec.pod_spec.tolerations = (!tolerations.is_empty()).then_some(tolerations);

    let template_annotations = scale_annotations(manifest);
    let service = Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: options
                .namespace
                .map(str::to_owned)
                .or_else(|| manifest.function.namespace.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        spec: ServiceSpec {
            template: RevisionTemplateSpec {
                metadata: ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: (!template_annotations.is_empty()).then_some(template_annotations),
                    ..Default::default()
                },
                spec,
            },
            traffic: Vec::new(),
        },
        status: None,
    };

    let config = ValidationConfig {
        features: FeatureFlags {
            node_selector: required_features.contains(&"kubernetes.podspec-nodeselector"),
            tolerations: required_features.contains(&"kubernetes.podspec-tolerations"),
            ..FeatureFlags::default()
        },
        ..ValidationConfig::default()
    };
    let causes = service.validate(&config);
    if !causes.is_empty() {
        return Err(Error::Invalid {
            kind: "Service".to_owned(),
            name: service.name().to_owned(),
            causes,
        });
    }
    // multi-container is on by default; only mention the flags that are off by default.
    required_features.retain(|key| *key != "multi-container");
    Ok(RenderedService {
        service,
        required_features,
    })
}

/// `[scale]` as `autoscaling.knative.dev/*` annotations (only the fields set).
pub fn scale_annotations(manifest: &FunctionManifest) -> BTreeMap<String, String> {
    let scale = &manifest.scale;
    let mut annotations = BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            annotations.insert(key.to_owned(), value);
        }
    };
    put(keys::MIN_SCALE_ANNOTATION, scale.min.map(|v| v.to_string()));
    put(keys::MAX_SCALE_ANNOTATION, scale.max.map(|v| v.to_string()));
    put(
        keys::INITIAL_SCALE_ANNOTATION,
        scale.initial.map(|v| v.to_string()),
    );
    put(keys::TARGET_ANNOTATION, scale.target.map(format_number));
    put(
        keys::METRIC_ANNOTATION,
        scale.metric.map(|m| m.as_str().to_owned()),
    );
    put(
        keys::TARGET_UTILIZATION_ANNOTATION,
        scale.utilization.map(format_number),
    );
    put(keys::WINDOW_ANNOTATION, scale.window.clone());
    put(
        keys::SCALE_DOWN_DELAY_ANNOTATION,
        scale.scale_down_delay.clone(),
    );
    annotations
}

/// `100.0` → `"100"`, `0.5` → `"0.5"`: Knative parses either, people read the short one.
fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        value.to_string()
    }
}

fn env_vars(env: &BTreeMap<String, String>) -> Option<Vec<EnvVar>> {
    (!env.is_empty()).then(|| {
        env.iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                value_from: None,
            })
            .collect()
    })
}

fn resources(section: &ResourcesSection, gpus: Option<u32>) -> Option<ResourceRequirements> {
    let quantities = |map: &BTreeMap<String, String>| -> BTreeMap<String, Quantity> {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    };
    let requests = quantities(&section.requests);
    let mut limits = quantities(&section.limits);
    if let Some(gpus) = gpus {
        limits.insert(GPU_RESOURCE.to_owned(), Quantity(gpus.to_string()));
    }
    if requests.is_empty() && limits.is_empty() {
        return None;
    }
    Some(ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        claims: None,
    })
}

/// The toleration a GPU function needs on `cloud`, if the cloud taints its
/// GPU nodes and does not add the toleration itself. None of the clouds
/// okonomi knows does both, so nothing is added (and no Knative tolerations
/// flag is needed) unless okonomi.toml lists tolerations:
/// - GKE taints GPU nodes `nvidia.com/gpu=present:NoSchedule`, but its
///   ExtendedResourceToleration admission adds the toleration to every pod
///   that asks for `nvidia.com/gpu`;
/// - EKS (eksctl and managed node groups) and AKS do not taint GPU nodes
///   unless the operator asks (`--node-taints`), and then okonomi.toml's
///   `[[placement.tolerations]]` names the operator's taint;
/// - kind and the engine have no GPU nodes of their own.
fn gpu_toleration(cloud: Cloud) -> Option<Toleration> {
    match cloud {
        Cloud::Gke | Cloud::Eks | Cloud::Aks | Cloud::Kind | Cloud::Local => None,
    }
}

fn http_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(FUNCTION_PORT),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container security context of Pod Security "restricted": non-root
/// uid 65532, read-only root, no privilege escalation, all capabilities
/// dropped, the runtime's default seccomp profile. Set per container because
/// a pod-level securityContext needs a Knative feature flag.
pub fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(FUNCTION_UID),
        run_as_group: Some(FUNCTION_UID),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

/// A sidecar's security context: [`restricted_security_context`] without the
/// function's uid and gid, so a third-party image runs as its own user,
/// unless okonomi.toml's `user`, `group` or `read_only_root` say otherwise.
/// `user = 0` is root, so `runAsNonRoot` goes with it.
pub fn sidecar_security_context(section: &SidecarSection) -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(section.user != Some(0)),
        run_as_user: section.user,
        run_as_group: section.group,
        read_only_root_filesystem: Some(section.read_only_root.unwrap_or(true)),
        ..restricted_security_context()
    }
}

fn sidecar(section: &SidecarSection) -> Container {
    Container {
        name: section.name.clone(),
        image: Some(section.image.clone()),
        command: (!section.command.is_empty()).then(|| section.command.clone()),
        args: (!section.args.is_empty()).then(|| section.args.clone()),
        env: env_vars(&section.env),
        resources: resources(&section.resources, None),
        security_context: Some(sidecar_security_context(section)),
        ..Default::default()
    }
}

/// YAML as kubectl prints it: plain or quoted scalars, no folded `>` blocks
/// (a long image digest stays on one line, where people and tools grep it).
fn yaml_options() -> serde_saphyr::SerializerOptions {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    options
}

/// One object as YAML (a single document, no leading `---`).
pub fn to_yaml<T: Serialize>(object: &T) -> Result<String> {
    Ok(serde_saphyr::to_string_with_options(
        object,
        yaml_options(),
    )?)
}

/// Several objects as one multi-document YAML stream (`---` between them),
/// as `kubectl apply -f -` reads it.
pub fn to_yaml_documents<T: Serialize>(objects: &[T]) -> Result<String> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&to_yaml(object)?);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}
