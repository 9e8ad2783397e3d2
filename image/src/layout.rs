//! Writing a built image as an OCI image layout directory (what `skopeo copy oci:DIR`
//! and `podman load -i DIR` read), instead of pushing it.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::build::BuiltImage;
use crate::error::{Error, Result};
use crate::image::INDEX_MEDIA_TYPE;
use crate::referrers::Artifact;

/// The annotation naming an image in a layout's index.json.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An image written into a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutImage {
    /// The layout directory.
    pub dir: PathBuf,
    /// `sha256:…` of the top-level manifest or index.
    pub digest: String,
    /// The ref name in index.json (the tag).
    pub tag: String,
}

impl LayoutImage {
    /// The transport reference skopeo and podman understand: `oci:DIR:TAG`.
    pub fn transport_reference(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }
}

/// Writes `image` into the layout at `dir` (created if needed), named `tag`.
/// Blobs already there are kept; an older image with the same tag is replaced in index.json.
pub async fn write_layout(image: &BuiltImage, dir: &Path, tag: &str) -> Result<LayoutImage> {
    let image = image.clone();
    let dir = dir.to_path_buf();
    let tag = tag.to_string();
    let path = dir.clone();
    tokio::task::spawn_blocking(move || write_blocking(&image, &dir, &tag))
        .await
        .map_err(|e| Error::io(&path, std::io::Error::other(e)))?
}

/// Adds artifacts to the layout at `dir` (which holds their subject already):
/// their blobs, and their manifests in index.json, under a ref name when given.
/// An entry with the same digest or ref name is replaced.
pub async fn write_artifacts(dir: &Path, artifacts: Vec<(Artifact, Option<String>)>) -> Result<()> {
    let dir = dir.to_path_buf();
    let path = dir.clone();
    tokio::task::spawn_blocking(move || {
        let blobs_dir = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs_dir).map_err(|e| Error::io(&blobs_dir, e))?;
        let mut additions = Vec::new();
        for (artifact, name) in &artifacts {
            let mut blobs = artifact.blobs();
            blobs.push((&artifact.manifest.digest, &artifact.manifest.data));
            for (digest, data) in blobs {
                write_blob(&blobs_dir, digest, data)?;
            }
            let mut descriptor = artifact.index_descriptor();
            if let Some(name) = name {
                descriptor["annotations"] = json!({ REF_NAME: name });
            }
            additions.push(descriptor);
        }
        update_index(&dir, additions)
    })
    .await
    .map_err(|e| Error::io(&path, std::io::Error::other(e)))?
}

fn write_blob(blobs_dir: &Path, digest: &str, data: &[u8]) -> Result<()> {
    let path = blobs_dir.join(digest.trim_start_matches("sha256:"));
    if !path.exists() {
        std::fs::write(&path, data).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// Adds `descriptors` to index.json, dropping older entries with the same digest or ref name.
fn update_index(dir: &Path, descriptors: Vec<serde_json::Value>) -> Result<()> {
    let index_path = dir.join("index.json");
    let mut manifests: Vec<serde_json::Value> = match std::fs::read(&index_path) {
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["manifests"].as_array().cloned())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    manifests.retain(|m| {
        !descriptors.iter().any(|d| {
            d["digest"] == m["digest"]
                || (d["annotations"][REF_NAME].is_string()
                    && d["annotations"][REF_NAME] == m["annotations"][REF_NAME])
        })
    });
    manifests.extend(descriptors);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": manifests,
    });
    std::fs::write(
        &index_path,
        serde_json::to_vec_pretty(&index).unwrap_or_default(),
    )
    .map_err(|e| Error::io(&index_path, e))
}

fn write_blocking(image: &BuiltImage, dir: &Path, tag: &str) -> Result<LayoutImage> {
    let blobs_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs_dir).map_err(|e| Error::io(&blobs_dir, e))?;
    let oci_layout = dir.join("oci-layout");
    std::fs::write(&oci_layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(|e| Error::io(&oci_layout, e))?;
    let mut all: Vec<(&str, &[u8])> = image.blobs();
    for p in &image.platforms {
        all.push((&p.manifest.digest, &p.manifest.data));
    }
    all.push((&image.top.digest, &image.top.data));
    for (digest, data) in all {
        write_blob(&blobs_dir, digest, data)?;
    }
    let mut descriptor = image.top.descriptor();
    descriptor["annotations"] = json!({ REF_NAME: tag });
    update_index(dir, vec![descriptor])?;
    Ok(LayoutImage {
        dir: dir.to_path_buf(),
        digest: image.top.digest.clone(),
        tag: tag.to_string(),
    })
}
