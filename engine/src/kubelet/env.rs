//! A container's environment, made as Kubernetes' kubelet makes it
//! (`makeEnvironmentVariables`): `envFrom` sources first, in order, then
//! `env` in order, later names replacing earlier ones; `value` with
//! `$(VAR)` references expanded against what is defined so far;
//! `valueFrom` from a ConfigMap or Secret key, a downward-API pod field or a
//! container resource.
//!
//! A missing object or key that is not `optional` is a [`ConfigError`]
//! with Kubernetes' wording (`configmap "x" not found`, `couldn't find key
//! k in Secret ns/x`), so the Pod waits with `CreateContainerConfigError`
//! until it exists. Values are secrets: [`Environment`]'s `Debug` shows
//! names only.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Container, EnvVar};
use okonomi_knative::validation::quantity_value;

use super::objects::{ConfigError, ConfigObjects, KeyValues, SourceKind};

/// A container's environment: (name, value) in the order they are set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment(pub Vec<(String, String)>);

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Environment {
    /// The names, in order (for podman's `--env NAME`, which takes each
    /// value from its own environment rather than its command line).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }
}

/// What the downward API shows of a Pod and the node it runs on.
#[derive(Debug, Clone, Default)]
pub struct PodFields {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `spec.serviceAccountName`.
    pub service_account: String,
    /// `spec.nodeName`.
    pub node_name: String,
    /// `status.podIP` and `status.hostIP` (both loopback on the engine).
    pub ip: String,
    /// The node's allocatable resources: what `limits.*` means when the
    /// container sets no limit.
    pub node: NodeResources,
}

/// A node's allocatable CPU (cores), memory and ephemeral storage (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NodeResources {
    /// Cores.
    pub cpu: f64,
    /// Bytes of memory.
    pub memory: f64,
    /// Bytes of ephemeral storage.
    pub ephemeral_storage: f64,
}

impl NodeResources {
    /// This machine's: its cores and `MemTotal`, and the free space where
    /// `dir` is.
    pub fn of_this_machine(dir: &std::path::Path) -> Self {
        let cpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024.0)
            })
            .unwrap_or(0.0);
        Self {
            cpu,
            memory,
            ephemeral_storage: free_bytes(dir).unwrap_or(0.0),
        }
    }
}

fn free_bytes(dir: &std::path::Path) -> Option<f64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the struct we own; the path is a valid C
    // string for the duration of the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::statvfs(path.as_ptr(), &mut stat) } == 0;
    ok.then_some(stat.f_bavail as f64 * stat.f_frsize as f64)
}

/// Whether `name` may name an environment variable (Kubernetes' relaxed
/// rule, as Knative's validation: printable ASCII, no `=` or space).
pub fn is_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && name.chars().all(|c| c.is_ascii_graphic())
}

/// The environment of `container` in the Pod `pod`, reading ConfigMaps and
/// Secrets from `objects`.
pub fn resolve(
    container: &Container,
    pod: &PodFields,
    objects: &dyn ConfigObjects,
) -> Result<Environment, ConfigError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| match env
        .iter_mut()
        .find(|(n, _)| *n == name)
    {
        Some(slot) => slot.1 = value,
        None => env.push((name, value)),
    };
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        let (kind, name, optional) = if let Some(r) = &source.config_map_ref {
            (SourceKind::ConfigMap, &r.name, r.optional == Some(true))
        } else if let Some(r) = &source.secret_ref {
            (SourceKind::Secret, &r.name, r.optional == Some(true))
        } else {
            continue;
        };
        let Some(values) = lookup(objects, kind, &pod.namespace, name, optional)? else {
            continue;
        };
        for (key, value) in values.0 {
            let var = format!("{prefix}{key}");
            // Kubernetes skips keys that cannot name a variable (and says so
            // in an event), rather than failing the Pod.
            if is_env_name(&var) {
                set(&mut env, var, lossy(value));
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = value_of(var, container, pod, objects, &env)?;
        if let Some(value) = value {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(Environment(env))
}

/// The value of one `env` entry; `None` when an optional source is missing
/// (the variable is left unset, as Kubernetes does).
fn value_of(
    var: &EnvVar,
    container: &Container,
    pod: &PodFields,
    objects: &dyn ConfigObjects,
    defined: &[(String, String)],
) -> Result<Option<String>, ConfigError> {
    let Some(from) = &var.value_from else {
        let value = var.value.as_deref().unwrap_or_default();
        return Ok(Some(expand(value, |name| {
            defined
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        })));
    };
    let key_ref = if let Some(r) = &from.config_map_key_ref {
        Some((
            SourceKind::ConfigMap,
            &r.name,
            &r.key,
            r.optional == Some(true),
        ))
    } else {
        from.secret_key_ref.as_ref().map(|r| {
            (
                SourceKind::Secret,
                &r.name,
                &r.key,
                r.optional == Some(true),
            )
        })
    };
    if let Some((kind, name, key, optional)) = key_ref {
        let Some(mut values) = lookup(objects, kind, &pod.namespace, name, optional)? else {
            return Ok(None);
        };
        return match values.0.remove(key) {
            Some(value) => Ok(Some(lossy(value))),
            None if optional => Ok(None),
            None => Err(ConfigError::env(format!(
                "couldn't find key {key} in {} {}/{name}",
                kind.kind(),
                pod.namespace
            ))),
        };
    }
    if let Some(field) = &from.field_ref {
        return field_value(&field.field_path, pod)
            .map(Some)
            .map_err(|problem| {
                ConfigError::env(format!(
                    "environment variable {:?}: valueFrom.fieldRef {:?}: {problem}",
                    var.name, field.field_path
                ))
            });
    }
    if let Some(resource) = &from.resource_field_ref {
        let divisor = resource.divisor.as_ref().map(|d| d.0.as_str());
        return resource_value(container, &resource.resource, divisor, &pod.node)
            .map(Some)
            .map_err(|problem| {
                ConfigError::env(format!(
                    "environment variable {:?}: valueFrom.resourceFieldRef {:?}: {problem}",
                    var.name, resource.resource
                ))
            });
    }
    Err(ConfigError::env(format!(
        "environment variable {:?} has an empty valueFrom: give it a value or one source",
        var.name
    )))
}

/// Reads `kind` `namespace/name`: `None` when it is missing and `optional`.
pub fn lookup(
    objects: &dyn ConfigObjects,
    kind: SourceKind,
    namespace: &str,
    name: &str,
    optional: bool,
) -> Result<Option<KeyValues>, ConfigError> {
    match objects.get(kind, namespace, name) {
        Ok(Some(values)) => Ok(Some(values)),
        Ok(None) if optional => Ok(None),
        Ok(None) => Err(ConfigError::env(format!(
            "{} {name:?} not found",
            kind.lower()
        ))),
        Err(problem) => Err(ConfigError::env(problem.to_string())),
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A downward-API pod field, as Kubernetes allows them in `env`.
pub fn field_value(path: &str, pod: &PodFields) -> Result<String, String> {
    let subscript = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
    };
    if let Some(key) = subscript("metadata.labels") {
        return Ok(pod.labels.get(key).cloned().unwrap_or_default());
    }
    if let Some(key) = subscript("metadata.annotations") {
        return Ok(pod.annotations.get(key).cloned().unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => pod.name.clone(),
        "metadata.namespace" => pod.namespace.clone(),
        "spec.nodeName" => pod.node_name.clone(),
        "spec.serviceAccountName" => pod.service_account.clone(),
        "status.podIP" | "status.hostIP" | "status.podIPs" | "status.hostIPs" => pod.ip.clone(),
        "metadata.uid" => {
            return Err(
                "the okonomi engine gives a Pod its uid only when it stores it, \
                        after the container starts: use metadata.name, which is as unique"
                    .into(),
            );
        }
        _ => {
            return Err(
                "not a field the downward API offers: use metadata.name, metadata.namespace, \
                 metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, \
                 spec.serviceAccountName, status.podIP or status.hostIP"
                    .into(),
            );
        }
    })
}

/// A container resource through the downward API: the limit or request,
/// the node's allocatable when no limit is set, divided by `divisor` and
/// rounded up as Kubernetes does.
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    node: &NodeResources,
) -> Result<String, String> {
    let (kind, name) = resource.split_once('.').ok_or_else(|| {
        "use limits.cpu, limits.memory, limits.ephemeral-storage or their requests.*".to_string()
    })?;
    let resources = container.resources.as_ref();
    let quantity = |map: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        map.and_then(|m| m.get(name))
            .and_then(|q| quantity_value(&q.0))
    };
    let limit = quantity(resources.and_then(|r| r.limits.as_ref()));
    let allocatable = match name {
        "cpu" => node.cpu,
        "memory" => node.memory,
        "ephemeral-storage" => node.ephemeral_storage,
        _ => {
            return Err(format!(
                "{name:?} is not a resource the downward API offers: use cpu, memory or ephemeral-storage"
            ));
        }
    };
    let value = match kind {
        "limits" => limit.unwrap_or(allocatable),
        // An unset request defaults to the limit, as the API server's
        // defaulting does.
        "requests" => quantity(resources.and_then(|r| r.requests.as_ref()))
            .or(limit)
            .unwrap_or(0.0),
        _ => return Err(format!("{kind:?} must be limits or requests")),
    };
    let divisor = match divisor {
        None => 1.0,
        Some(text) => match quantity_value(text) {
            Some(d) if d > 0.0 => d,
            _ => return Err(format!("divisor {text:?} is not a positive quantity")),
        },
    };
    Ok(format!("{}", (value / divisor).ceil() as i64))
}

/// Kubernetes' `$(VAR)` expansion: a defined name is replaced by its value,
/// an undefined one is left as written, `$$` is a literal `$`.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(close) = body.find(')')
        {
            let name = &body[..close];
            match lookup(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::kubelet::objects::ReadError;
    use serde_json::json;

    #[derive(Default)]
    struct Objects(HashMap<(SourceKind, String), KeyValues>);

    impl Objects {
        fn with(mut self, kind: SourceKind, name: &str, pairs: &[(&str, &str)]) -> Self {
            let values = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            self.0.insert((kind, name.to_string()), KeyValues(values));
            self
        }
    }

    impl ConfigObjects for Objects {
        fn get(
            &self,
            kind: SourceKind,
            namespace: &str,
            name: &str,
        ) -> Result<Option<KeyValues>, ReadError> {
            assert_eq!(namespace, "team");
            Ok(self.0.get(&(kind, name.to_string())).cloned())
        }
        fn service_account_exists(&self, _: &str, _: &str) -> Result<bool, ReadError> {
            Ok(true)
        }
    }

    fn container(spec: serde_json::Value) -> Container {
        serde_json::from_value(spec).unwrap()
    }

    fn pod() -> PodFields {
        PodFields {
            name: "hello-00001-deployment-abc-xyz12".into(),
            namespace: "team".into(),
            labels: [("app".to_string(), "hello".to_string())].into(),
            service_account: "default".into(),
            node_name: "okonomi".into(),
            ip: "127.0.0.1".into(),
            node: NodeResources {
                cpu: 2.0,
                memory: 8.0 * 1024.0 * 1024.0 * 1024.0,
                ephemeral_storage: 0.0,
            },
            ..PodFields::default()
        }
    }

    #[test]
    fn env_comes_from_sources_in_kubernetes_order() {
        let objects = Objects::default()
            .with(
                SourceKind::ConfigMap,
                "settings",
                &[("MODE", "fast"), ("LEVEL", "3"), ("bad key", "x")],
            )
            .with(
                SourceKind::Secret,
                "db",
                &[("url", "postgres://u:hunter2@db")],
            );
        let c = container(json!({
            "name": "user-container",
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
            "env": [
                {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
                {"name": "APP_MODE", "value": "slow"},
                {"name": "GREETING", "value": "mode $(APP_MODE), $(UNSET) costs $$5"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "MAYBE", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}},
            ],
            "resources": {"limits": {"memory": "64Mi"}},
        }));
        let env = resolve(&c, &pod(), &objects).unwrap();
        let map: BTreeMap<_, _> = env.0.iter().cloned().collect();
        assert_eq!(map["APP_MODE"], "slow", "env replaces envFrom: {map:?}");
        assert_eq!(map["APP_LEVEL"], "3");
        assert!(
            !map.contains_key("APP_bad key"),
            "invalid names are skipped"
        );
        assert_eq!(map["DATABASE_URL"], "postgres://u:hunter2@db");
        assert_eq!(map["GREETING"], "mode slow, $(UNSET) costs $5");
        assert_eq!(map["POD"], "hello-00001-deployment-abc-xyz12");
        assert_eq!(map["APP"], "hello");
        assert_eq!(map["CPUS"], "2", "no CPU limit: the node's cores");
        assert_eq!(map["MEM_MI"], "64");
        assert!(!map.contains_key("MAYBE"));
        // Names only, never values, in Debug.
        let debug = format!("{env:?}");
        assert!(
            debug.contains("DATABASE_URL") && !debug.contains("hunter2"),
            "{debug}"
        );
    }

    #[test]
    fn a_missing_object_or_key_is_named_as_kubernetes_names_it() {
        let objects = Objects::default().with(SourceKind::Secret, "db", &[("url", "x")]);
        let missing = container(json!({"name": "c", "env": [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}
        ]}));
        let error = resolve(&missing, &pod(), &objects).unwrap_err();
        assert_eq!(error.reason, "CreateContainerConfigError");
        assert_eq!(error.message, r#"configmap "settings" not found"#);

        let no_key = container(json!({"name": "c", "env": [
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
        ]}));
        let error = resolve(&no_key, &pod(), &objects).unwrap_err();
        assert_eq!(
            error.message,
            "couldn't find key password in Secret team/db"
        );

        let from = container(json!({"name": "c", "envFrom": [{"secretRef": {"name": "gone"}}]}));
        let error = resolve(&from, &pod(), &objects).unwrap_err();
        assert_eq!(error.message, r#"secret "gone" not found"#);
    }

    #[test]
    fn expansion_follows_kubernetes() {
        let vars = |name: &str| (name == "A").then_some("1");
        assert_eq!(expand("$(A)$(A)", vars), "11");
        assert_eq!(expand("$$(A)", vars), "$(A)");
        assert_eq!(expand("$(B) $A $", vars), "$(B) $A $");
        assert_eq!(expand("$(A", vars), "$(A");
    }

    #[test]
    fn bad_fields_and_resources_say_what_to_use() {
        assert!(
            field_value("spec.containers", &pod())
                .unwrap_err()
                .contains("metadata.name")
        );
        let c = container(json!({"name": "c", "resources": {"requests": {"cpu": "250m"}}}));
        let node = pod().node;
        assert_eq!(
            resource_value(&c, "requests.cpu", Some("1m"), &node).unwrap(),
            "250"
        );
        assert_eq!(
            resource_value(&c, "requests.cpu", None, &node).unwrap(),
            "1"
        );
        assert!(resource_value(&c, "limits.gpu", None, &node).is_err());
        assert!(resource_value(&c, "requests.cpu", Some("0"), &node).is_err());
    }
}
