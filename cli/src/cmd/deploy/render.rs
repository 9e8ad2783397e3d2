//! okonomi.toml + image → Knative Service, for deploys while
//! okonomi-knative's renderer is not in this build: the fields a function
//! needs to run the same on the engine and on a cluster (scale annotations,
//! env, resources, concurrency, timeout, visibility, a restricted security
//! context).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, ResourceRequirements, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use okonomi_knative::manifest::{FunctionManifest, Visibility};
use okonomi_knative::{RevisionSpec, RevisionTemplateSpec, Service, ServiceSpec, keys};

/// The Service for `manifest` running `image`.
pub fn service(manifest: &FunctionManifest, image: &str) -> Service {
    let name = manifest.function.name.clone();
    let mut labels = BTreeMap::from([
        (keys::APP_NAME_LABEL.to_owned(), name.clone()),
        (keys::APP_MANAGED_BY_LABEL.to_owned(), keys::MANAGED_BY_OKONOMI.to_owned()),
    ]);
    if manifest.service.visibility == Some(Visibility::ClusterLocal) {
        labels.insert(keys::VISIBILITY_LABEL.to_owned(), keys::VISIBILITY_CLUSTER_LOCAL.to_owned());
    }
    let scale = &manifest.scale;
    let mut annotations = BTreeMap::new();
    let mut annotate = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            annotations.insert(key.to_owned(), value);
        }
    };
    annotate(keys::MIN_SCALE_ANNOTATION, scale.min.map(|v| v.to_string()));
    annotate(keys::MAX_SCALE_ANNOTATION, scale.max.map(|v| v.to_string()));
    annotate(keys::INITIAL_SCALE_ANNOTATION, scale.initial.map(|v| v.to_string()));
    annotate(keys::TARGET_ANNOTATION, scale.target.map(|v| v.to_string()));
    annotate(keys::METRIC_ANNOTATION, scale.metric.map(|m| m.as_str().to_owned()));
    annotate(keys::TARGET_UTILIZATION_ANNOTATION, scale.utilization.map(|v| v.to_string()));
    annotate(keys::WINDOW_ANNOTATION, scale.window.clone());
    annotate(keys::SCALE_DOWN_DELAY_ANNOTATION, scale.scale_down_delay.clone());

    let quantities = |map: &BTreeMap<String, String>| {
        (!map.is_empty()).then(|| map.iter().map(|(k, v)| (k.clone(), Quantity(v.clone()))).collect())
    };
    let resources = &manifest.resources;
    let container = Container {
        name: keys::DEFAULT_CONTAINER_NAME.to_owned(),
        image: Some(image.to_owned()),
        ports: Some(vec![ContainerPort {
            container_port: keys::DEFAULT_USER_PORT,
            ..Default::default()
        }]),
        env: (!manifest.env.is_empty()).then(|| {
            manifest
                .env
                .iter()
                .map(|(k, v)| EnvVar {
                    name: k.clone(),
                    value: Some(v.clone()),
                    ..Default::default()
                })
                .collect()
        }),
        resources: (!resources.requests.is_empty() || !resources.limits.is_empty()).then(|| ResourceRequirements {
            requests: quantities(&resources.requests),
            limits: quantities(&resources.limits),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut spec = RevisionSpec::with_containers(vec![container]);
    spec.container_concurrency = manifest.service.concurrency.map(i64::from);
    spec.timeout_seconds = manifest.service.timeout.map(i64::from);
    let mut service = Service::new(
        &name,
        ServiceSpec {
            template: RevisionTemplateSpec {
                metadata: Default::default(),
                spec,
            },
            traffic: Vec::new(),
        },
    );
    service.metadata.labels = Some(labels.clone());
    service.spec.template.metadata.labels = Some(labels);
    if !annotations.is_empty() {
        service.spec.template.metadata.annotations = Some(annotations);
    }
    service
}
