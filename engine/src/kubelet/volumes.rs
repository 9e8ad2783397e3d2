//! A Pod's volumes, set up as Kubernetes' volume plugins set them up:
//! `configMap`, `secret`, `projected` (ConfigMaps, Secrets and downward-API
//! items), `downwardAPI` and `emptyDir`, each a directory under the Pod's
//! own directory, which the runtime mounts at the container's `mountPath`
//! ([`super::mounts`] for the process runtime, podman's `--volume` for the
//! container runtime).
//!
//! Files are written as Kubernetes' AtomicWriter writes them: the payload in
//! a timestamped `..TIMESTAMP` directory, `..data` a symlink to it, and each
//! top-level name a symlink through `..data`. An update writes a new
//! payload and swaps `..data` in one rename, so a reader sees the old files
//! or the new ones, never a mix; that is how a changed Secret reaches a
//! running Pod.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, Volume, VolumeProjection,
};

use super::env::{PodFields, field_value, lookup, resource_value};
use super::objects::{ConfigError, ConfigObjects, KeyValues, SourceKind};

/// Kubernetes' default file mode for ConfigMap, Secret, projected and
/// downward-API volumes.
const DEFAULT_MODE: u32 = 0o644;

/// One volume mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The directory (or, with `subPath`, the file or directory) on this
    /// machine.
    pub source: PathBuf,
    /// `mountPath` in the container.
    pub target: String,
    /// Whether the container may not write it.
    pub read_only: bool,
}

/// Where a Pod's volumes live: `STATE/pods/NAMESPACE/POD`.
pub fn pod_dir(state_dir: &Path, namespace: &str, pod: &str) -> PathBuf {
    pods_dir(state_dir).join(namespace).join(pod)
}

/// Where every Pod's directory lives (removed when the engine starts: Pods
/// of an earlier run are gone).
pub fn pods_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("pods")
}

/// Sets up (or brings up to date) the volumes `container` mounts, under
/// `pod_dir`, and returns its mounts. A missing ConfigMap or Secret that is
/// not `optional` is a [`ConfigError`] naming it.
pub fn set_up(
    pod_dir: &Path,
    volumes: &[Volume],
    container: &Container,
    pod: &PodFields,
    objects: &dyn ConfigObjects,
) -> Result<Vec<Mount>, ConfigError> {
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .iter()
            .find(|v| v.name == mount.name)
            .ok_or_else(|| {
                ConfigError::mount(&mount.name, "the Pod declares no volume of that name")
            })?;
        let dir = pod_dir.join("volumes").join(safe_name(&volume.name)?);
        let writable = volume.empty_dir.is_some();
        if writable {
            create_dir(&dir, 0o777).map_err(|e| io_error(&volume.name, &dir, e))?;
        } else {
            let files = payload(volume, container, pod, objects)?;
            write_atomically(&dir, &files).map_err(|e| io_error(&volume.name, &dir, e))?;
        }
        let source = match mount.sub_path.as_deref().filter(|p| !p.is_empty()) {
            Some(sub) => dir.join(relative(sub).map_err(|p| ConfigError::mount(&volume.name, p))?),
            None => dir,
        };
        mounts.push(Mount {
            source,
            target: mount.mount_path.clone(),
            read_only: !writable || mount.read_only == Some(true),
        });
    }
    Ok(mounts)
}

/// Whether any volume of `volumes` takes its files from a ConfigMap or
/// Secret (and so follows changes to them).
pub fn follows_objects(volumes: &[Volume]) -> bool {
    volumes.iter().any(|v| {
        v.config_map.is_some()
            || v.secret.is_some()
            || v.projected.as_ref().is_some_and(|p| {
                p.sources
                    .iter()
                    .flatten()
                    .any(|s| s.config_map.is_some() || s.secret.is_some())
            })
    })
}

/// A file of a volume's payload: its bytes and mode.
type Files = BTreeMap<PathBuf, (Vec<u8>, u32)>;

fn payload(
    volume: &Volume,
    container: &Container,
    pod: &PodFields,
    objects: &dyn ConfigObjects,
) -> Result<Files, ConfigError> {
    let name = &volume.name;
    let mut files = Files::new();
    let in_volume = |e: ConfigError| ConfigError::mount(name, e.message);
    if let Some(source) = &volume.config_map {
        let mode = mode(source.default_mode)?;
        let values = lookup(
            objects,
            SourceKind::ConfigMap,
            &pod.namespace,
            &source.name,
            source.optional == Some(true),
        )
        .map_err(in_volume)?;
        project(
            &mut files,
            name,
            SourceKind::ConfigMap,
            values,
            source.items.as_deref(),
            mode,
            source.optional == Some(true),
        )?;
    } else if let Some(source) = &volume.secret {
        let mode = mode(source.default_mode)?;
        let secret = source.secret_name.as_deref().unwrap_or_default();
        let values = lookup(
            objects,
            SourceKind::Secret,
            &pod.namespace,
            secret,
            source.optional == Some(true),
        )
        .map_err(in_volume)?;
        project(
            &mut files,
            name,
            SourceKind::Secret,
            values,
            source.items.as_deref(),
            mode,
            source.optional == Some(true),
        )?;
    } else if let Some(source) = &volume.downward_api {
        let mode = mode(source.default_mode)?;
        downward(
            &mut files,
            name,
            source.items.as_deref(),
            container,
            pod,
            mode,
        )?;
    } else if let Some(projected) = &volume.projected {
        let mode = mode(projected.default_mode)?;
        for source in projected.sources.iter().flatten() {
            projection(&mut files, name, source, container, pod, objects, mode)?;
        }
    } else {
        return Err(ConfigError::mount(
            name,
            "the okonomi engine mounts configMap, secret, projected, downwardAPI and emptyDir \
             volumes only",
        ));
    }
    Ok(files)
}

fn projection(
    files: &mut Files,
    volume: &str,
    source: &VolumeProjection,
    container: &Container,
    pod: &PodFields,
    objects: &dyn ConfigObjects,
    mode: u32,
) -> Result<(), ConfigError> {
    let in_volume = |e: ConfigError| ConfigError::mount(volume, e.message);
    if let Some(s) = &source.config_map {
        let optional = s.optional == Some(true);
        let values = lookup(
            objects,
            SourceKind::ConfigMap,
            &pod.namespace,
            &s.name,
            optional,
        )
        .map_err(in_volume)?;
        project(
            files,
            volume,
            SourceKind::ConfigMap,
            values,
            s.items.as_deref(),
            mode,
            optional,
        )
    } else if let Some(s) = &source.secret {
        let optional = s.optional == Some(true);
        let values = lookup(
            objects,
            SourceKind::Secret,
            &pod.namespace,
            &s.name,
            optional,
        )
        .map_err(in_volume)?;
        project(
            files,
            volume,
            SourceKind::Secret,
            values,
            s.items.as_deref(),
            mode,
            optional,
        )
    } else if let Some(s) = &source.downward_api {
        downward(files, volume, s.items.as_deref(), container, pod, mode)
    } else if source.service_account_token.is_some() {
        Err(ConfigError::mount(
            volume,
            "the okonomi engine issues no service account tokens (projected \
             serviceAccountToken): its API server knows only its own admin token, which a \
             function must not hold; read the API through okonomi's kubeconfig instead",
        ))
    } else {
        Err(ConfigError::mount(
            volume,
            "a projected source must be configMap, secret, downwardAPI or serviceAccountToken",
        ))
    }
}

/// Adds the keys of one ConfigMap or Secret: all of them, or `items`.
fn project(
    files: &mut Files,
    volume: &str,
    kind: SourceKind,
    values: Option<KeyValues>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    optional: bool,
) -> Result<(), ConfigError> {
    let Some(KeyValues(mut values)) = values else {
        return Ok(());
    };
    match items {
        None => {
            for (key, bytes) in values {
                let path = relative(&key).map_err(|p| ConfigError::mount(volume, p))?;
                files.insert(path, (bytes, mode));
            }
        }
        Some(items) => {
            for item in items {
                let Some(bytes) = values.remove(&item.key) else {
                    if optional {
                        continue;
                    }
                    let what = match kind {
                        SourceKind::ConfigMap => "config",
                        SourceKind::Secret => "secret",
                    };
                    return Err(ConfigError::mount(
                        volume,
                        format!(
                            "{} references non-existent {what} key: {}",
                            kind.kind(),
                            item.key
                        ),
                    ));
                };
                let path = relative(&item.path).map_err(|p| ConfigError::mount(volume, p))?;
                let item_mode = match item.mode {
                    Some(m) => self::mode(Some(m))?,
                    None => mode,
                };
                files.insert(path, (bytes, item_mode));
            }
        }
    }
    Ok(())
}

fn downward(
    files: &mut Files,
    volume: &str,
    items: Option<&[DownwardAPIVolumeFile]>,
    container: &Container,
    pod: &PodFields,
    mode: u32,
) -> Result<(), ConfigError> {
    for item in items.into_iter().flatten() {
        let value = if let Some(field) = &item.field_ref {
            field_value(&field.field_path, pod)
        } else if let Some(resource) = &item.resource_field_ref {
            let divisor = resource.divisor.as_ref().map(|d| d.0.as_str());
            resource_value(container, &resource.resource, divisor, &pod.node)
        } else {
            Err("a downwardAPI item needs fieldRef or resourceFieldRef".to_string())
        }
        .map_err(|p| ConfigError::mount(volume, format!("{}: {p}", item.path)))?;
        let path = relative(&item.path).map_err(|p| ConfigError::mount(volume, p))?;
        let item_mode = match item.mode {
            Some(m) => self::mode(Some(m))?,
            None => mode,
        };
        files.insert(path, (value.into_bytes(), item_mode));
    }
    Ok(())
}

/// A file mode from the API (`defaultMode`, `mode`): 0 to 0777.
fn mode(value: Option<i32>) -> Result<u32, ConfigError> {
    match value {
        None => Ok(DEFAULT_MODE),
        Some(m) if (0..=0o777).contains(&m) => Ok(m as u32),
        Some(m) => Err(ConfigError::mount(
            "",
            format!("file mode {m} is not between 0 and 0777 (511)"),
        )),
    }
}

/// A path inside a volume: relative, without `..`, not empty.
fn relative(path: &str) -> Result<PathBuf, String> {
    let candidate = Path::new(path);
    let clean = !path.is_empty()
        && !path.starts_with("..")
        && candidate
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if clean {
        Ok(candidate.to_path_buf())
    } else {
        Err(format!(
            "{path:?} must be a relative path without '..' inside the volume"
        ))
    }
}

fn safe_name(name: &str) -> Result<&str, ConfigError> {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Ok(name)
    } else {
        Err(ConfigError::mount(
            name,
            "a volume name must be a DNS label",
        ))
    }
}

fn io_error(volume: &str, dir: &Path, e: io::Error) -> ConfigError {
    ConfigError::mount(volume, format!("writing {}: {e}", dir.display()))
}

fn create_dir(dir: &Path, mode: u32) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// Writes `files` into `dir` as Kubernetes' AtomicWriter does; unchanged
/// files leave the directory as it is.
pub fn write_atomically(dir: &Path, files: &Files) -> io::Result<()> {
    create_dir(dir, 0o755)?;
    let data = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data)
        && same_payload(&dir.join(&current), files)
    {
        return Ok(());
    }
    let stamp = format!(
        "..{}",
        jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S.%f")
    );
    let payload = dir.join(&stamp);
    create_dir(&payload, 0o755)?;
    for (path, (bytes, mode)) in files {
        let file = payload.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, bytes)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))?;
    }
    let old = std::fs::read_link(&data).ok();
    let staged = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    symlink(&stamp, &staged)?;
    std::fs::rename(&staged, &data)?;
    // Top-level names point through ..data; names no longer there go.
    let top: std::collections::BTreeSet<_> = files
        .keys()
        .filter_map(|p| p.components().next())
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let hidden = name.to_string_lossy().starts_with("..");
        if !hidden && !top.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(name), &link)?;
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

fn same_payload(payload: &Path, files: &Files) -> bool {
    let mut count = 0;
    let all_same = files.iter().all(|(path, (bytes, mode))| {
        let file = payload.join(path);
        std::fs::metadata(&file).is_ok_and(|m| m.permissions().mode() & 0o777 == *mode)
            && std::fs::read(&file).is_ok_and(|b| b == *bytes)
    });
    if !all_same {
        return false;
    }
    fn count_files(dir: &Path, count: &mut usize) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                count_files(&path, count);
            } else {
                *count += 1;
            }
        }
    }
    count_files(payload, &mut count);
    count == files.len()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::kubelet::objects::ReadError;
    use serde_json::json;

    struct Objects(HashMap<(SourceKind, String), KeyValues>);

    impl ConfigObjects for Objects {
        fn get(
            &self,
            kind: SourceKind,
            _: &str,
            name: &str,
        ) -> Result<Option<KeyValues>, ReadError> {
            Ok(self.0.get(&(kind, name.to_string())).cloned())
        }
        fn service_account_exists(&self, _: &str, _: &str) -> Result<bool, ReadError> {
            Ok(true)
        }
    }

    fn values(pairs: &[(&str, &str)]) -> KeyValues {
        KeyValues(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    fn pod() -> PodFields {
        PodFields {
            name: "p".into(),
            namespace: "default".into(),
            ..PodFields::default()
        }
    }

    fn spec(volumes: serde_json::Value, mounts: serde_json::Value) -> (Vec<Volume>, Container) {
        let volumes = serde_json::from_value(volumes).unwrap();
        let container =
            serde_json::from_value(json!({"name": "c", "volumeMounts": mounts})).unwrap();
        (volumes, container)
    }

    #[test]
    fn volumes_are_projected_with_their_modes_and_follow_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut objects = Objects(HashMap::new());
        objects.0.insert(
            (SourceKind::Secret, "db".into()),
            values(&[("password", "hunter2"), ("user", "app")]),
        );
        objects.0.insert(
            (SourceKind::ConfigMap, "settings".into()),
            values(&[("mode", "fast")]),
        );
        let (volumes, container) = spec(
            json!([
                {"name": "secret", "secret": {"secretName": "db", "defaultMode": 0o400}},
                {"name": "settings", "configMap": {"name": "settings", "items": [{"key": "mode", "path": "conf/mode.txt"}]}},
                {"name": "both", "projected": {"sources": [
                    {"secret": {"name": "db", "items": [{"key": "user", "path": "user"}]}},
                    {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                ]}},
                {"name": "scratch", "emptyDir": {}},
            ]),
            json!([
                {"name": "secret", "mountPath": "/var/secret"},
                {"name": "settings", "mountPath": "/etc/settings"},
                {"name": "both", "mountPath": "/both"},
                {"name": "scratch", "mountPath": "/scratch"},
            ]),
        );
        let mounts = set_up(dir.path(), &volumes, &container, &pod(), &objects).unwrap();
        assert_eq!(mounts.len(), 4);
        let secret = &mounts[0];
        assert!(secret.read_only);
        assert_eq!(
            std::fs::read_to_string(secret.source.join("password")).unwrap(),
            "hunter2"
        );
        let mode = std::fs::metadata(secret.source.join("password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        assert_eq!(
            std::fs::read_to_string(mounts[1].source.join("conf/mode.txt")).unwrap(),
            "fast"
        );
        assert!(!mounts[1].source.join("mode").exists(), "items pick keys");
        assert_eq!(
            std::fs::read_to_string(mounts[2].source.join("user")).unwrap(),
            "app"
        );
        assert_eq!(
            std::fs::read_to_string(mounts[2].source.join("name")).unwrap(),
            "p"
        );
        assert!(!mounts[3].read_only);

        // A changed Secret reaches the same directory through ..data.
        objects.0.insert(
            (SourceKind::Secret, "db".into()),
            values(&[("password", "swordfish")]),
        );
        set_up(dir.path(), &volumes, &container, &pod(), &objects).unwrap_err();
        objects.0.insert(
            (SourceKind::Secret, "db".into()),
            values(&[("password", "swordfish"), ("user", "app")]),
        );
        set_up(dir.path(), &volumes, &container, &pod(), &objects).unwrap();
        assert_eq!(
            std::fs::read_to_string(secret.source.join("password")).unwrap(),
            "swordfish"
        );
        let payloads = std::fs::read_dir(&secret.source)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_dir())
            .count();
        assert_eq!(payloads, 1, "the old payload is removed");
    }

    #[test]
    fn missing_objects_keys_and_escaping_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut objects = Objects(HashMap::new());
        let (volumes, container) = spec(
            json!([{"name": "settings", "configMap": {"name": "settings"}}]),
            json!([{"name": "settings", "mountPath": "/etc/settings"}]),
        );
        let error = set_up(dir.path(), &volumes, &container, &pod(), &objects).unwrap_err();
        assert_eq!(error.reason, "FailedMount");
        assert_eq!(
            error.message,
            r#"MountVolume.SetUp failed for volume "settings" : configmap "settings" not found"#
        );

        objects.0.insert(
            (SourceKind::ConfigMap, "settings".into()),
            values(&[("mode", "x")]),
        );
        let (volumes, container) = spec(
            json!([{"name": "settings", "configMap": {"name": "settings", "items": [{"key": "mode", "path": "../../etc/passwd"}]}}]),
            json!([{"name": "settings", "mountPath": "/etc/settings"}]),
        );
        let error = set_up(dir.path(), &volumes, &container, &pod(), &objects).unwrap_err();
        assert!(error.message.contains("without '..'"), "{error}");

        let (volumes, container) = spec(
            json!([{"name": "settings", "configMap": {"name": "settings", "optional": true, "items": [{"key": "nope", "path": "x"}]}}]),
            json!([{"name": "settings", "mountPath": "/etc/settings"}]),
        );
        set_up(dir.path(), &volumes, &container, &pod(), &objects).unwrap();
    }
}
