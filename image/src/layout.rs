//! Writing a built image as an OCI image layout directory (what
//! `skopeo copy oci:DIR:TAG` and `podman pull oci:DIR:TAG` read), instead of
//! pushing it. The layout names several manifests (the image, its referrers
//! index, with a key its signature and attestations), so readers take the
//! image by its tag.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::attach::{self, Signing};
use crate::build::BuiltImage;
use crate::error::{Error, Result};
use crate::image::INDEX_MEDIA_TYPE;
use crate::signing::PrivateKey;

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
/// Its SBOMs and provenance go in too, as referrers listed by the
/// referrers tag schema's index under the name `sha256-HEX`.
pub async fn write_layout(image: &BuiltImage, dir: &Path, tag: &str) -> Result<LayoutImage> {
    write_layout_signed(image, dir, tag, None).await
}

/// [`write_layout`], and with a key the cosign signature and attestations
/// as well, named `sha256-HEX.sig` and `sha256-HEX.att` as in a registry.
pub async fn write_layout_signed(
    image: &BuiltImage,
    dir: &Path,
    tag: &str,
    key: Option<PrivateKey>,
) -> Result<LayoutImage> {
    let image = image.clone();
    let dir = dir.to_path_buf();
    let tag = tag.to_string();
    let path = dir.clone();
    tokio::task::spawn_blocking(move || write_blocking(&image, &dir, &tag, key.as_ref()))
        .await
        .map_err(|e| Error::io(&path, std::io::Error::other(e)))?
}

fn write_blocking(
    image: &BuiltImage,
    dir: &Path,
    tag: &str,
    key: Option<&PrivateKey>,
) -> Result<LayoutImage> {
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
    // In a layout the image has no registry: the signature names it by its name.
    let signing = key.map(|key| Signing {
        key,
        repository: &image.name,
    });
    let artifacts = attach::artifacts(image, signing.as_ref());
    for artifact in &artifacts {
        for (digest, data) in &artifact.blobs {
            all.push((digest, data));
        }
        all.push((&artifact.manifest.digest, &artifact.manifest.data));
    }
    let referrers_name = attach::referrers_tag(&image.top.digest);
    let referrers = attach::merge_referrers_index(None, &artifacts).unwrap_or_default();
    let referrers_digest = crate::digest::sha256_digest(&referrers);
    all.push((&referrers_digest, &referrers));
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
    let mut named = vec![(tag.to_string(), image.top.descriptor())];
    named.push((
        referrers_name,
        json!({"mediaType": INDEX_MEDIA_TYPE, "digest": referrers_digest, "size": referrers.len()}),
    ));
    for artifact in &artifacts {
        if let Some(name) = &artifact.tag {
            named.push((name.clone(), artifact.referrer_descriptor()));
        }
    }
    for (name, mut descriptor) in named {
        manifests.retain(|m| m["annotations"][REF_NAME] != name.as_str());
        descriptor["annotations"] = json!({ REF_NAME: name });
        manifests.push(descriptor);
    }
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
