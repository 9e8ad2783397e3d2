//! Rules for a Revision's spec and template that the CRD schemas leave out
//! (Knative's `k8s_validation.go` and `revision_validation.go`): containers
//! and their single port, reserved ports, environment variables and mount
//! paths, request limits, feature-flagged pod fields, template names.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    FieldError, FieldErrors, ValidationConfig, check_dns1035_label, check_dns1123_label,
    check_quantity, join, validate_autoscaling_annotations,
};
use crate::keys;
use crate::serving::{RevisionSpec, RevisionTemplateSpec};

/// Checks a Revision template: its name (when set) must be DNS-1035, at most
/// 63 characters and start with `PARENT-`; its annotations follow the
/// autoscaling rules; its spec follows [`validate_revision_spec`].
/// `parent` is the owning Service/Configuration name; `base` the template's
/// path (`spec.template`).
pub fn validate_revision_template(
    template: &RevisionTemplateSpec,
    parent: Option<&str>,
    base: &str,
    config: &ValidationConfig,
) -> FieldErrors {
    let mut errors = FieldErrors::new();
    let meta = join(base, "metadata");
    if let Some(name) = template
        .metadata
        .name
        .as_deref()
        .filter(|name| !name.is_empty())
    {
        let path = join(&meta, "name");
        if let Err(problem) = check_dns1035_label(name) {
            errors.push(FieldError::invalid(&path, problem));
        }
        if let Some(parent) = parent
            && !name.starts_with(&format!("{parent}-"))
        {
            errors.push(FieldError::invalid(
                &path,
                format!("{name:?} must have prefix \"{parent}-\" (a Revision is named after its Configuration)"),
            ));
        }
    }
    if let Some(annotations) = &template.metadata.annotations {
        errors.extend(validate_autoscaling_annotations(
            annotations,
            &join(&meta, "annotations"),
            config,
        ));
    }
    errors.extend(validate_revision_spec(
        &template.spec,
        &join(base, "spec"),
        config,
    ));
    errors
}

/// Checks a Revision spec; `base` is its path (`spec.template.spec` inside a
/// Service, `spec` inside a Revision).
pub fn validate_revision_spec(
    spec: &RevisionSpec,
    base: &str,
    config: &ValidationConfig,
) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if let Some(cc) = spec.container_concurrency
        && (cc < 0 || cc > config.container_concurrency_max_limit)
    {
        errors.push(FieldError::invalid(
            join(base, "containerConcurrency"),
            format!(
                "expected 0 <= {cc} <= {}",
                config.container_concurrency_max_limit
            ),
        ));
    }
    let max_timeout = config.max_revision_timeout_seconds;
    if let Some(timeout) = spec.timeout_seconds
        && (timeout < 0 || timeout > max_timeout)
    {
        errors.push(FieldError::invalid(
            join(base, "timeoutSeconds"),
            format!("expected 0 <= {timeout} <= {max_timeout}"),
        ));
    }
    if let Some(start) = spec.response_start_timeout_seconds {
        let limit = spec
            .timeout_seconds
            .filter(|t| *t > 0)
            .unwrap_or(max_timeout);
        if start < 0 || start > limit {
            errors.push(FieldError::invalid(
                join(base, "responseStartTimeoutSeconds"),
                format!("expected 0 <= {start} <= {limit} (timeoutSeconds)"),
            ));
        }
    }
    if let Some(idle) = spec.idle_timeout_seconds
        && (idle < 0 || idle > max_timeout)
    {
        errors.push(FieldError::invalid(
            join(base, "idleTimeoutSeconds"),
            format!("expected 0 <= {idle} <= {max_timeout}"),
        ));
    }
    validate_pod_fields(spec, base, config, &mut errors);
    validate_containers(spec, base, config, &mut errors);
    errors
}

fn validate_pod_fields(
    spec: &RevisionSpec,
    base: &str,
    config: &ValidationConfig,
    errors: &mut FieldErrors,
) {
    let pod = &spec.pod_spec;
    let flags = &config.features;
    let flagged: [(bool, bool, &str, &str); 14] = [
        (
            pod.node_selector.is_some(),
            flags.node_selector,
            "nodeSelector",
            "kubernetes.podspec-nodeselector",
        ),
        (
            pod.tolerations.is_some(),
            flags.tolerations,
            "tolerations",
            "kubernetes.podspec-tolerations",
        ),
        (
            pod.affinity.is_some(),
            flags.affinity,
            "affinity",
            "kubernetes.podspec-affinity",
        ),
        (
            pod.topology_spread_constraints.is_some(),
            flags.topology_spread_constraints,
            "topologySpreadConstraints",
            "kubernetes.podspec-topologyspreadconstraints",
        ),
        (
            pod.host_aliases.is_some(),
            flags.host_aliases,
            "hostAliases",
            "kubernetes.podspec-hostaliases",
        ),
        (
            pod.runtime_class_name.is_some(),
            flags.runtime_class_name,
            "runtimeClassName",
            "kubernetes.podspec-runtimeclassname",
        ),
        (
            pod.priority_class_name.is_some(),
            flags.priority_class_name,
            "priorityClassName",
            "kubernetes.podspec-priorityclassname",
        ),
        (
            pod.scheduler_name.is_some(),
            flags.scheduler_name,
            "schedulerName",
            "kubernetes.podspec-schedulername",
        ),
        (
            pod.dns_policy.is_some(),
            flags.dns_policy,
            "dnsPolicy",
            "kubernetes.podspec-dnspolicy",
        ),
        (
            pod.dns_config.is_some(),
            flags.dns_config,
            "dnsConfig",
            "kubernetes.podspec-dnsconfig",
        ),
        (
            pod.security_context.is_some(),
            flags.pod_security_context,
            "securityContext",
            "kubernetes.podspec-securitycontext",
        ),
        (
            pod.share_process_namespace.is_some(),
            flags.share_process_namespace,
            "shareProcessNamespace",
            "kubernetes.podspec-shareprocessnamespace",
        ),
        (
            pod.host_network.is_some() || pod.host_pid.is_some() || pod.host_ipc.is_some(),
            flags.host_namespaces,
            "hostNetwork",
            "kubernetes.podspec-hostnetwork",
        ),
        (
            pod.init_containers.is_some(),
            flags.init_containers,
            "initContainers",
            "kubernetes.podspec-init-containers",
        ),
    ];
    for (set, enabled, field, flag) in flagged {
        if set && !enabled {
            errors.push(FieldError::forbidden(
                join(base, field),
                format!("must not set the field(s): {field}; the cluster's config-features needs {flag}: enabled"),
            ));
        }
    }
    // Fields Knative's RevisionSpec does not carry at all.
    let unsupported: [(bool, &str); 17] = [
        (
            pod.active_deadline_seconds.is_some(),
            "activeDeadlineSeconds",
        ),
        (pod.ephemeral_containers.is_some(), "ephemeralContainers"),
        (pod.hostname.is_some(), "hostname"),
        (pod.host_users.is_some(), "hostUsers"),
        (pod.node_name.is_some(), "nodeName"),
        (pod.os.is_some(), "os"),
        (pod.overhead.is_some(), "overhead"),
        (pod.preemption_policy.is_some(), "preemptionPolicy"),
        (pod.priority.is_some(), "priority"),
        (pod.readiness_gates.is_some(), "readinessGates"),
        (pod.resource_claims.is_some(), "resourceClaims"),
        (pod.restart_policy.is_some(), "restartPolicy"),
        (pod.scheduling_gates.is_some(), "schedulingGates"),
        (pod.service_account.is_some(), "serviceAccount"),
        (pod.set_hostname_as_fqdn.is_some(), "setHostnameAsFQDN"),
        (pod.subdomain.is_some(), "subdomain"),
        (
            pod.termination_grace_period_seconds.is_some(),
            "terminationGracePeriodSeconds",
        ),
    ];
    for (set, field) in unsupported {
        if set {
            errors.push(FieldError::forbidden(
                join(base, field),
                format!("must not set the field(s): {field}; Knative Revisions do not support it"),
            ));
        }
    }
    if let Some(account) = &pod.service_account_name
        && let Err(problem) = check_dns1123_subdomain(account)
    {
        errors.push(FieldError::invalid(
            join(base, "serviceAccountName"),
            problem,
        ));
    }
    let mut volume_names = BTreeSet::new();
    for (i, volume) in pod.volumes.iter().flatten().enumerate() {
        let path = format!("{}[{i}]", join(base, "volumes"));
        if let Err(problem) = check_dns1123_label(&volume.name) {
            errors.push(FieldError::invalid(join(&path, "name"), problem));
        }
        if !volume_names.insert(volume.name.as_str()) {
            errors.push(FieldError::duplicate(
                join(&path, "name"),
                format!("volume {:?} is declared twice", volume.name),
            ));
        }
        let sources = [
            volume.config_map.is_some(),
            volume.secret.is_some(),
            volume.projected.is_some(),
            volume.empty_dir.is_some(),
            volume.persistent_volume_claim.is_some(),
        ];
        let allowed_count = sources.iter().filter(|s| **s).count();
        if allowed_count != 1 {
            errors.push(FieldError::invalid(
                &path,
                "expected exactly one of configMap, secret, projected, emptyDir, persistentVolumeClaim",
            ));
        }
        if volume.empty_dir.is_some() && !config.features.empty_dir {
            errors.push(FieldError::forbidden(
                join(&path, "emptyDir"),
                "the cluster's config-features needs kubernetes.podspec-volumes-emptydir: enabled",
            ));
        }
        if volume.persistent_volume_claim.is_some() && !config.features.persistent_volume_claim {
            errors.push(FieldError::forbidden(
                join(&path, "persistentVolumeClaim"),
                "the cluster's config-features needs kubernetes.podspec-persistent-volume-claim: enabled",
            ));
        }
    }
}

fn validate_containers(
    spec: &RevisionSpec,
    base: &str,
    config: &ValidationConfig,
    errors: &mut FieldErrors,
) {
    let containers = &spec.pod_spec.containers;
    let list = join(base, "containers");
    if containers.is_empty() {
        errors.push(FieldError::required(
            &list,
            "at least one container is required",
        ));
        return;
    }
    if containers.len() > 1 && !config.features.multi_container {
        errors.push(FieldError::forbidden(
            &list,
            "more than one container needs the cluster's config-features multi-container: enabled",
        ));
    }
    // Across all containers exactly one port (or none with a single container):
    // Knative routes to one port of one container.
    let port_count: usize = containers
        .iter()
        .map(|c| c.ports.as_ref().map_or(0, Vec::len))
        .sum();
    if port_count > 1 {
        errors.push(FieldError::invalid(
            &list,
            "more than one container port is set: only a single port is allowed across all containers",
        ));
    } else if port_count == 0 && containers.len() > 1 {
        errors.push(FieldError::required(
            &list,
            "exactly one container must declare a port (the one that serves requests) when there are several",
        ));
    }
    let volumes: BTreeSet<&str> = spec
        .pod_spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let mut names = BTreeSet::new();
    for (i, container) in containers.iter().enumerate() {
        let path = format!("{list}[{i}]");
        if !container.name.is_empty() {
            if let Err(problem) = check_dns1123_label(&container.name) {
                errors.push(FieldError::invalid(join(&path, "name"), problem));
            }
            if !names.insert(container.name.as_str()) {
                errors.push(FieldError::duplicate(
                    join(&path, "name"),
                    format!("container name {:?} is used twice", container.name),
                ));
            }
        }
        let serving =
            containers.len() == 1 || container.ports.as_ref().is_some_and(|p| !p.is_empty());
        validate_container(container, &path, serving, &volumes, config, errors);
    }
}

fn validate_container(
    container: &Container,
    path: &str,
    serving: bool,
    volumes: &BTreeSet<&str>,
    config: &ValidationConfig,
    errors: &mut FieldErrors,
) {
    match container.image.as_deref() {
        None => errors.push(FieldError::required(
            join(path, "image"),
            "missing field(s): image",
        )),
        Some(image) if image.trim().is_empty() => errors.push(FieldError::required(
            join(path, "image"),
            "missing field(s): image",
        )),
        Some(image) => {
            if let Err(problem) = check_image_reference(image) {
                errors.push(FieldError::invalid(join(path, "image"), problem));
            }
        }
    }
    let forbidden: [(bool, &str); 7] = [
        (container.lifecycle.is_some(), "lifecycle"),
        (container.stdin.is_some(), "stdin"),
        (container.stdin_once.is_some(), "stdinOnce"),
        (container.tty.is_some(), "tty"),
        (container.volume_devices.is_some(), "volumeDevices"),
        (container.resize_policy.is_some(), "resizePolicy"),
        (
            container.restart_policy.is_some() || container.restart_policy_rules.is_some(),
            "restartPolicy",
        ),
    ];
    for (set, field) in forbidden {
        if set {
            errors.push(FieldError::forbidden(
                join(path, field),
                format!("must not set the field(s): {field}; Knative containers do not support it"),
            ));
        }
    }
    let mut user_port = keys::DEFAULT_USER_PORT;
    for (j, port) in container.ports.iter().flatten().enumerate() {
        let port_path = format!("{}[{j}]", join(path, "ports"));
        if let Some(name) = &port.name
            && !["", keys::PORT_NAME_H2C, keys::PORT_NAME_HTTP1].contains(&name.as_str())
        {
            errors.push(FieldError::not_supported(
                join(&port_path, "name"),
                format!("port name {name:?} is not allowed; name must be empty, or one of: 'h2c', 'http1'"),
            ));
        }
        if let Some(protocol) = &port.protocol
            && protocol != "TCP"
            && !protocol.is_empty()
        {
            errors.push(FieldError::not_supported(
                join(&port_path, "protocol"),
                format!("protocol {protocol:?} is not allowed; use TCP"),
            ));
        }
        if port.host_ip.is_some() || port.host_port.is_some() {
            errors.push(FieldError::forbidden(
                join(
                    &port_path,
                    if port.host_port.is_some() {
                        "hostPort"
                    } else {
                        "hostIP"
                    },
                ),
                "must not set hostIP or hostPort: Knative routes requests itself",
            ));
        }
        if !(0..=65535).contains(&port.container_port) {
            errors.push(FieldError::invalid(
                join(&port_path, "containerPort"),
                format!("expected 0 <= {} <= 65535", port.container_port),
            ));
        } else if keys::RESERVED_PORTS.contains(&port.container_port) {
            errors.push(FieldError::invalid(
                join(&port_path, "containerPort"),
                format!(
                    "{} is a reserved port (Knative keeps {} for queue-proxy, metrics and profiling); pick another",
                    port.container_port,
                    keys::RESERVED_PORTS.map(|p| p.to_string()).join(", ")
                ),
            ));
        }
        if port.container_port > 0 {
            user_port = port.container_port;
        }
    }
    for (j, env) in container.env.iter().flatten().enumerate() {
        let env_path = format!("{}[{j}]", join(path, "env"));
        if env.name.is_empty() {
            errors.push(FieldError::required(
                join(&env_path, "name"),
                "an environment variable needs a name",
            ));
        } else if env.name.contains('=') || !env.name.chars().all(|c| c.is_ascii_graphic()) {
            errors.push(FieldError::invalid(
                join(&env_path, "name"),
                format!(
                    "{:?} must be printable ASCII without '=' or spaces",
                    env.name
                ),
            ));
        } else if keys::RESERVED_ENV_VARS.contains(&env.name.as_str()) {
            errors.push(FieldError::invalid(
                join(&env_path, "name"),
                format!(
                    "{:?} is a reserved environment variable: Knative sets it",
                    env.name
                ),
            ));
        }
        if let Some(from) = &env.value_from
            && !config.features.field_ref
        {
            for (set, field) in [
                (from.field_ref.is_some(), "fieldRef"),
                (from.resource_field_ref.is_some(), "resourceFieldRef"),
            ] {
                if set {
                    errors.push(FieldError::forbidden(
                        join(&join(&env_path, "valueFrom"), field),
                        format!(
                            "must not set the field(s): {field} (the cluster's config-features \
                             needs kubernetes.podspec-fieldref: enabled; or give the variable a \
                             value)"
                        ),
                    ));
                }
            }
        }
        if env.value.is_some() && env.value_from.is_some() {
            errors.push(FieldError::invalid(
                &env_path,
                "expected exactly one, got both: value, valueFrom",
            ));
        }
    }
    if let Some(resources) = &container.resources {
        for (kind, map) in [
            ("requests", &resources.requests),
            ("limits", &resources.limits),
        ] {
            for (name, quantity) in map.iter().flatten() {
                if let Err(problem) = check_quantity(&quantity.0) {
                    errors.push(FieldError::invalid(
                        format!("{}.{kind}.{name}", join(path, "resources")),
                        problem,
                    ));
                }
            }
        }
    }
    for (j, mount) in container.volume_mounts.iter().flatten().enumerate() {
        let mount_path = format!("{}[{j}]", join(path, "volumeMounts"));
        if !volumes.contains(mount.name.as_str()) {
            errors.push(FieldError::invalid(
                join(&mount_path, "name"),
                format!("volumeMount has no matching volume {:?}", mount.name),
            ));
        }
        let clean = clean_path(&mount.mount_path);
        if !mount.mount_path.starts_with('/') {
            errors.push(FieldError::invalid(
                join(&mount_path, "mountPath"),
                format!("{:?} must be an absolute path", mount.mount_path),
            ));
        } else if keys::RESERVED_MOUNT_PATHS.contains(&clean.as_str()) {
            errors.push(FieldError::invalid(
                join(&mount_path, "mountPath"),
                format!("mountPath {clean:?} is a reserved path"),
            ));
        }
    }
    for (probe, field) in [
        (&container.readiness_probe, "readinessProbe"),
        (&container.liveness_probe, "livenessProbe"),
        (&container.startup_probe, "startupProbe"),
    ] {
        if let Some(probe) = probe {
            validate_probe(
                probe,
                &join(path, field),
                serving.then_some(user_port),
                errors,
            );
        }
    }
}

fn validate_probe(probe: &Probe, path: &str, user_port: Option<i32>, errors: &mut FieldErrors) {
    let handlers = [
        probe.exec.is_some(),
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
        probe.grpc.is_some(),
    ];
    if handlers.iter().filter(|h| **h).count() > 1 {
        errors.push(FieldError::invalid(
            path,
            "expected exactly one, got several: exec, grpc, httpGet, tcpSocket",
        ));
    }
    for (value, field) in [
        (probe.initial_delay_seconds, "initialDelaySeconds"),
        (probe.timeout_seconds, "timeoutSeconds"),
        (probe.period_seconds, "periodSeconds"),
        (probe.success_threshold, "successThreshold"),
        (probe.failure_threshold, "failureThreshold"),
    ] {
        if let Some(value) = value
            && value < 0
        {
            errors.push(FieldError::invalid(
                join(path, field),
                format!("expected {value} >= 0"),
            ));
        }
    }
    // The serving container's probes go through queue-proxy to the user port:
    // a probe on another port would never reach the container.
    let Some(user_port) = user_port else { return };
    let port = probe
        .http_get
        .as_ref()
        .map(|h| (&h.port, "httpGet"))
        .or_else(|| probe.tcp_socket.as_ref().map(|t| (&t.port, "tcpSocket")));
    if let Some((IntOrString::Int(port), handler)) = port
        && *port != 0
        && *port != user_port
    {
        errors.push(FieldError::invalid(
            join(&join(path, handler), "port"),
            format!("may only probe the container port {user_port}, not {port}"),
        ));
    }
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
fn check_dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.len() > 253 {
        return Err(format!("{value:?} is longer than 253 characters"));
    }
    for label in value.split('.') {
        check_dns1123_label(label).map_err(|_| {
            format!("{value:?} is not a valid name: use lowercase letters, digits, '-' and '.' (RFC 1123 subdomain)")
        })?;
    }
    Ok(())
}

/// The scheme of okonomi's own source references (`okonomi://PATH`), which
/// the engine builds itself; a real cluster's webhook refuses them.
const LOCAL_SCHEME: &str = "okonomi://";

/// Checks an image reference as Knative's webhook does (go-containerregistry's
/// `name.ParseReference` with weak validation: the distribution grammar, a
/// tag or a digest optional), worded as Knative words it: `Failed to parse
/// image reference: image: "X", error: could not parse reference: X`.
/// `okonomi://PATH` is okonomi's own reference and only needs a path.
pub fn check_image_reference(image: &str) -> Result<(), String> {
    if let Some(path) = image.strip_prefix(LOCAL_SCHEME) {
        return if path.trim().is_empty() {
            Err(format!(
                "Failed to parse image reference: image: {image:?}, error: okonomi:// needs the path of a function crate, e.g. okonomi://functions/hello"
            ))
        } else {
            Ok(())
        };
    }
    image
        .parse::<oci_spec::distribution::Reference>()
        .map(|_| ())
        .map_err(|error| {
            format!(
                "Failed to parse image reference: image: {image:?}, error: could not parse reference: {image} ({error})"
            )
        })
}

/// An absolute path cleaned as Go's `path.Clean` does (Knative compares mount
/// paths after it): repeated slashes, `.` and `..` resolved, no trailing slash.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod image_reference_tests {
    use super::check_image_reference;

    #[test]
    fn registry_references_with_tags_and_digests_are_accepted() {
        for image in [
            "hello",
            "ghcr.io/okonomi/hello:v1",
            "127.0.0.1:5000/okonomi/hello",
            "europe-docker.pkg.dev/p/r/hello@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "okonomi://functions/hello",
        ] {
            assert_eq!(check_image_reference(image), Ok(()), "{image}");
        }
    }

    #[test]
    fn malformed_references_are_refused_as_knative_words_it() {
        for image in [
            "not a valid image!!",
            "Hello",
            "hello world",
            "hello:",
            "hello@sha256:abc",
            "okonomi://",
        ] {
            let problem = check_image_reference(image).expect_err(image);
            assert!(
                problem.starts_with("Failed to parse image reference: image: "),
                "{problem}"
            );
            assert!(problem.contains(&format!("{image:?}")), "{problem}");
        }
    }
}
