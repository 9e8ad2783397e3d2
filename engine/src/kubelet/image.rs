//! Pulling an image by digest and unpacking it once into a content-addressed
//! cache under the state dir, for the process runtime.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};

use super::Launch;
use crate::error::{Error, Result};

/// What the engine needs from an image's config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageConfig {
    /// `Entrypoint`.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `Env` as `NAME=value`.
    #[serde(default)]
    pub env: Vec<String>,
    /// `WorkingDir`.
    #[serde(default)]
    pub working_dir: String,
}

/// An image unpacked in the cache.
#[derive(Debug, Clone)]
pub struct UnpackedImage {
    /// The manifest digest (`sha256:…`).
    pub digest: String,
    /// The root filesystem.
    pub rootfs: PathBuf,
    /// The parts of the image config the engine uses.
    pub config: ImageConfig,
}

fn image_error(reference: &str, message: impl Into<String>) -> Error {
    Error::Image {
        reference: reference.to_string(),
        message: message.into(),
    }
}

/// Whether a registry host is on this machine (then plain HTTP is used, as
/// `docker-registry` serves on loopback without TLS).
fn is_loopback_registry(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    host == "localhost" || host == "127.0.0.1" || host == "[::1]"
}

/// Pulls `reference` (unless its digest is cached) and unpacks it under
/// `cache_dir`. Layers are fetched into `cache_dir/blobs` by digest, so
/// images sharing layers download them once.
pub async fn pull_and_unpack(reference: &str, cache_dir: &Path) -> Result<UnpackedImage> {
    let parsed = Reference::from_str(reference).map_err(|e| {
        image_error(
            reference,
            format!("not a valid image reference ({e}); write REGISTRY/REPOSITORY@sha256:DIGEST"),
        )
    })?;
    let rootfs_dir = cache_dir.join("rootfs");
    if let Some(digest) = parsed.digest()
        && let Some(image) = cached(&rootfs_dir, digest).await
    {
        return Ok(image);
    }
    let protocol = if is_loopback_registry(parsed.registry()) {
        ClientProtocol::HttpsExcept(vec![parsed.registry().to_string()])
    } else {
        ClientProtocol::Https
    };
    let client = Client::new(ClientConfig {
        protocol,
        ..ClientConfig::default()
    });
    let auth = RegistryAuth::Anonymous;
    let (manifest, digest, config) = client
        .pull_manifest_and_config(&parsed, &auth)
        .await
        .map_err(|e| image_error(reference, format!("pulling the manifest: {e}")))?;
    if let Some(image) = cached(&rootfs_dir, &digest).await {
        return Ok(image);
    }
    let config = parse_config(&config).map_err(|m| image_error(reference, m))?;

    let blobs = cache_dir.join("blobs");
    tokio::fs::create_dir_all(&blobs)
        .await
        .map_err(|e| image_error(reference, format!("creating {}: {e}", blobs.display())))?;
    let mut layers = Vec::new();
    for layer in &manifest.layers {
        let gzip = match layer.media_type.as_str() {
            manifest::IMAGE_LAYER_GZIP_MEDIA_TYPE
            | manifest::IMAGE_DOCKER_LAYER_GZIP_MEDIA_TYPE => true,
            manifest::IMAGE_LAYER_MEDIA_TYPE | manifest::IMAGE_DOCKER_LAYER_TAR_MEDIA_TYPE => false,
            other => {
                return Err(image_error(
                    reference,
                    format!(
                        "layer {} has media type {other}, which the process runtime cannot unpack (use tar or tar+gzip layers)",
                        layer.digest
                    ),
                ));
            }
        };
        let path = blobs.join(layer.digest.replace(':', "-"));
        if tokio::fs::metadata(&path).await.is_err() {
            let partial = path.with_extension("partial");
            let mut file = tokio::fs::File::create(&partial).await.map_err(|e| {
                image_error(reference, format!("creating {}: {e}", partial.display()))
            })?;
            client
                .pull_blob(&parsed, layer, &mut file)
                .await
                .map_err(|e| {
                    image_error(reference, format!("pulling layer {}: {e}", layer.digest))
                })?;
            tokio::fs::rename(&partial, &path).await.map_err(|e| {
                image_error(reference, format!("storing layer {}: {e}", layer.digest))
            })?;
        }
        layers.push((path, gzip));
    }

    let target = rootfs_dir.join(digest.replace(':', "-"));
    let config_path = target.with_extension("json");
    let reference_owned = reference.to_string();
    let target_clone = target.clone();
    tokio::task::spawn_blocking(move || unpack_layers(&layers, &target_clone))
        .await
        .map_err(|e| image_error(&reference_owned, format!("unpacking: {e}")))?
        .map_err(|e| image_error(&reference_owned, format!("unpacking: {e}")))?;
    let json = serde_json::to_vec(&config).unwrap_or_default();
    tokio::fs::write(&config_path, json)
        .await
        .map_err(|e| image_error(reference, format!("writing {}: {e}", config_path.display())))?;
    Ok(UnpackedImage {
        digest,
        rootfs: target,
        config,
    })
}

async fn cached(rootfs_dir: &Path, digest: &str) -> Option<UnpackedImage> {
    let rootfs = rootfs_dir.join(digest.replace(':', "-"));
    // The config file is written last: its presence marks a complete unpack.
    let json = tokio::fs::read(rootfs.with_extension("json")).await.ok()?;
    let config = serde_json::from_slice(&json).ok()?;
    Some(UnpackedImage {
        digest: digest.to_string(),
        rootfs,
        config,
    })
}

fn parse_config(text: &str) -> Result<ImageConfig, String> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        config: Option<Inner>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Inner {
        entrypoint: Option<Vec<String>>,
        cmd: Option<Vec<String>>,
        env: Option<Vec<String>>,
        working_dir: Option<String>,
    }
    let file: File = serde_json::from_str(text)
        .map_err(|e| format!("the image config is not valid JSON: {e}"))?;
    let inner = file.config.unwrap_or(Inner {
        entrypoint: None,
        cmd: None,
        env: None,
        working_dir: None,
    });
    Ok(ImageConfig {
        entrypoint: inner.entrypoint.unwrap_or_default(),
        cmd: inner.cmd.unwrap_or_default(),
        env: inner.env.unwrap_or_default(),
        working_dir: inner.working_dir.unwrap_or_default(),
    })
}

/// Unpacks layers in order into `target` (via a temporary sibling renamed at
/// the end, so a crash never leaves a half-unpacked cache entry).
fn unpack_layers(layers: &[(PathBuf, bool)], target: &Path) -> std::io::Result<()> {
    let parent = target
        .parent()
        .ok_or_else(|| std::io::Error::other("cache path has no parent"))?;
    std::fs::create_dir_all(parent)?;
    let staging = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(parent)?;
    for (path, gzip) in layers {
        let file = std::fs::File::open(path)?;
        let reader: Box<dyn Read> = if *gzip {
            Box::new(flate2::read::GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut archive = tar::Archive::new(reader);
        archive.set_preserve_permissions(true);
        archive.set_overwrite(true);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let path = entry.path()?.into_owned();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            if let Some(name) = name
                && let Some(hidden) = name.strip_prefix(".wh.")
            {
                let dir = safe_join(staging.path(), path.parent().unwrap_or(Path::new("")));
                if let Some(dir) = dir {
                    if hidden == ".wh..opq" {
                        // Opaque directory: drop what lower layers put there.
                        if let Ok(children) = std::fs::read_dir(&dir) {
                            for child in children.flatten() {
                                remove_any(&child.path());
                            }
                        }
                    } else {
                        remove_any(&dir.join(hidden));
                    }
                }
                continue;
            }
            // unpack_in refuses paths escaping the directory.
            entry.unpack_in(staging.path())?;
        }
    }
    if target.exists() {
        std::fs::remove_dir_all(target)?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, target)?;
    Ok(())
}

fn safe_join(root: &Path, relative: &Path) -> Option<PathBuf> {
    let mut out = root.to_path_buf();
    for component in relative.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn remove_any(path: &Path) {
    let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
}

/// How to run an unpacked image's entrypoint directly. `command` and `args`
/// are the container's overrides of Entrypoint and Cmd.
pub fn launch(image: &UnpackedImage, command: &[String], args: &[String]) -> Result<Launch> {
    let config = &image.config;
    let mut argv: Vec<String> = if command.is_empty() {
        config.entrypoint.clone()
    } else {
        command.to_vec()
    };
    if !args.is_empty() {
        argv.extend(args.iter().cloned());
    } else if command.is_empty() {
        argv.extend(config.cmd.iter().cloned());
    }
    let Some(program) = argv.first().cloned() else {
        return Err(image_error(
            &image.digest,
            "the image has no Entrypoint or Cmd and the container gives no command",
        ));
    };
    let working_dir = safe_join(&image.rootfs, Path::new(&config.working_dir))
        .unwrap_or_else(|| image.rootfs.clone());
    let program_path = if program.starts_with('/') {
        safe_join(&image.rootfs, Path::new(&program))
    } else {
        safe_join(&working_dir, Path::new(&program))
    }
    .ok_or_else(|| {
        image_error(
            &image.digest,
            format!("entrypoint {program} escapes the image"),
        )
    })?;
    if !program_path.is_file() {
        return Err(image_error(
            &image.digest,
            format!("entrypoint {program} is not a file in the image"),
        ));
    }
    let env = config
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(Launch::Process {
        program: program_path,
        arg0: Some(program),
        args: argv[1..].to_vec(),
        cwd: working_dir,
        env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_fields_are_read() {
        let config = parse_config(
            r#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/app/hello"],"Env":["PATH=/bin","A=b=c"],"WorkingDir":"/app"}}"#,
        )
        .unwrap();
        assert_eq!(config.entrypoint, vec!["/app/hello"]);
        assert_eq!(config.env, vec!["PATH=/bin", "A=b=c"]);
        assert_eq!(config.working_dir, "/app");
    }

    #[test]
    fn loopback_registries_use_http() {
        assert!(is_loopback_registry("127.0.0.1:5000"));
        assert!(is_loopback_registry("localhost:5000"));
        assert!(!is_loopback_registry("gcr.io"));
    }

    #[test]
    fn entrypoints_cannot_escape_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let image = UnpackedImage {
            digest: "sha256:x".into(),
            rootfs: dir.path().to_path_buf(),
            config: ImageConfig {
                entrypoint: vec!["/../../bin/sh".into()],
                ..Default::default()
            },
        };
        let err = launch(&image, &[], &[]).unwrap_err().to_string();
        assert!(err.contains("escapes"), "{err}");
    }
}
