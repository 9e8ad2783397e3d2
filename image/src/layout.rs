//! Writing a built image as an OCI image layout directory (what `skopeo copy oci:DIR`
//! and `podman load -i DIR` read), instead of pushing it.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::build::BuiltImage;
use crate::error::{Error, Result};
use crate::image::INDEX_MEDIA_TYPE;

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

fn write_blocking(image: &BuiltImage, dir: &Path, tag: &str) -> Result<LayoutImage> {
    let blobs_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs_dir).map_err(|e| Error::io(&blobs_dir, e))?;
    let write =
        |path: PathBuf, data: &[u8]| std::fs::write(&path, data).map_err(|e| Error::io(&path, e));
    write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut all: Vec<(&str, &[u8])> = image.blobs();
    for p in &image.platforms {
        all.push((&p.manifest.digest, &p.manifest.data));
    }
    all.push((&image.top.digest, &image.top.data));
    for (digest, data) in all {
        let path = blobs_dir.join(digest.trim_start_matches("sha256:"));
        if !path.exists() {
            write(path, data)?;
        }
    }
    let index_path = dir.join("index.json");
    let mut manifests: Vec<serde_json::Value> = match std::fs::read(&index_path) {
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["manifests"].as_array().cloned())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    manifests.retain(|m| m["annotations"][REF_NAME] != tag);
    let mut descriptor = image.top.descriptor();
    descriptor["annotations"] = json!({ REF_NAME: tag });
    manifests.push(descriptor);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": manifests,
    });
    write(
        index_path,
        &serde_json::to_vec_pretty(&index).unwrap_or_default(),
    )?;
    Ok(LayoutImage {
        dir: dir.to_path_buf(),
        digest: image.top.digest.clone(),
        tag: tag.to_string(),
    })
}
