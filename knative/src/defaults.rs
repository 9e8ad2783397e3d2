//! Knative's defaulting (`SetDefaults` of the v1 types), as the webhook applies
//! it before validation: container names, `timeoutSeconds`,
//! `containerConcurrency`, `enableServiceLinks`, the readiness probe of the
//! serving container, and the traffic block.

use k8s_openapi::api::core::v1::{Container, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::serving::{Configuration, Revision, RevisionSpec, Route, Service, TrafficTarget};
use crate::validation::ValidationConfig;

/// Fills in what Knative's admission webhook fills in. Idempotent.
pub trait SetDefaults {
    /// Applies the defaults of the given cluster configuration.
    fn set_defaults(&mut self, config: &ValidationConfig);
}

impl SetDefaults for RevisionSpec {
    fn set_defaults(&mut self, config: &ValidationConfig) {
        if self.timeout_seconds.is_none() {
            self.timeout_seconds = Some(config.revision_timeout_seconds);
        }
        if self.container_concurrency.is_none() {
            self.container_concurrency = Some(config.container_concurrency);
        }
        if self.pod_spec.enable_service_links.is_none() {
            self.pod_spec.enable_service_links = config.enable_service_links;
        }
        let containers = &mut self.pod_spec.containers;
        default_container_names(containers, &config.container_name);
        let single = containers.len() == 1;
        for container in containers.iter_mut() {
            let serving = single || container.ports.as_ref().is_some_and(|p| !p.is_empty());
            if serving {
                default_readiness_probe(container);
            }
        }
    }
}

/// Knative names a lone unnamed container `user-container` and unnamed
/// containers of a multi-container pod `user-container-INDEX`.
fn default_container_names(containers: &mut [Container], base: &str) {
    if let [only] = containers {
        if only.name.is_empty() {
            only.name = base.to_owned();
        }
        return;
    }
    let mut taken: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
    for (i, container) in containers.iter_mut().enumerate() {
        if container.name.is_empty() {
            let mut name = format!("{base}-{i}");
            let mut extra = 0;
            while taken.contains(&name) {
                extra += 1;
                name = format!("{base}-{i}-{extra}");
            }
            taken.push(name.clone());
            container.name = name;
        }
    }
}

/// A serving container without a readiness handler gets a TCP probe on the
/// user port (port 0 means "the container port"), success threshold 1.
fn default_readiness_probe(container: &mut Container) {
    let probe = container.readiness_probe.get_or_insert_with(Probe::default);
    if probe.tcp_socket.is_none()
        && probe.http_get.is_none()
        && probe.exec.is_none()
        && probe.grpc.is_none()
    {
        probe.tcp_socket = Some(TCPSocketAction {
            port: IntOrString::Int(0),
            host: None,
        });
    }
    if probe
        .success_threshold
        .is_none_or(|threshold| threshold == 0)
    {
        probe.success_threshold = Some(1);
    }
}

/// Every target without `latestRevision` follows the latest unless it names a Revision.
fn default_traffic_targets(traffic: &mut [TrafficTarget]) {
    for target in traffic {
        if target.latest_revision.is_none() {
            target.latest_revision =
                Some(target.revision_name.as_deref().is_none_or(str::is_empty));
        }
    }
}

impl SetDefaults for Service {
    fn set_defaults(&mut self, config: &ValidationConfig) {
        self.spec.template.spec.set_defaults(config);
        if self.spec.traffic.is_empty() {
            self.spec.traffic = vec![TrafficTarget::latest(100)];
        }
        default_traffic_targets(&mut self.spec.traffic);
    }
}

impl SetDefaults for Configuration {
    fn set_defaults(&mut self, config: &ValidationConfig) {
        self.spec.template.spec.set_defaults(config);
    }
}

impl SetDefaults for Revision {
    fn set_defaults(&mut self, config: &ValidationConfig) {
        self.spec.set_defaults(config);
    }
}

impl SetDefaults for Route {
    fn set_defaults(&mut self, _config: &ValidationConfig) {
        default_traffic_targets(&mut self.spec.traffic);
    }
}
