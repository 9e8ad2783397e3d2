//! Attaching documents to an image as OCI 1.1 referrers: an image manifest with
//! an `artifactType`, the empty config, the documents as layers and the image as
//! its `subject`. A registry with the referrers API indexes them itself; for one
//! without it (CNCF distribution 2.8, for one) okonomi keeps the referrers tag
//! schema's index under the tag `sha256-HEX`, as the distribution spec says.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::digest::sha256_digest;
use crate::error::{Error, Result};
use crate::image::{self, Blob, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::remote::Remote;

/// Media type of OCI's empty descriptor (`{}`), the config of artifacts.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The content of the empty descriptor.
pub const EMPTY: &[u8] = b"{}";

/// One document inside an artifact, with the layer descriptor's annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The bytes, as stored.
    pub blob: Blob,
    /// Annotations of its layer descriptor (cosign's signature goes here).
    pub annotations: BTreeMap<String, String>,
}

impl Document {
    /// A document with no annotations.
    pub fn plain(blob: Blob) -> Self {
        Document {
            blob,
            annotations: BTreeMap::new(),
        }
    }

    fn descriptor(&self) -> Value {
        let mut d = self.blob.descriptor();
        if !self.annotations.is_empty() {
            d["annotations"] = json!(self.annotations);
        }
        d
    }
}

/// An artifact manifest and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Its `artifactType`.
    pub artifact_type: String,
    /// The config blob (OCI's empty one for referrers).
    pub config: Blob,
    /// The documents, in order.
    pub documents: Vec<Document>,
    /// The manifest itself.
    pub manifest: Blob,
}

impl Artifact {
    /// The referrer of `subject` holding `documents`; `created` (the build's epoch)
    /// is its only annotation, so the same documents give the same manifest.
    pub fn referrer(
        subject: &Blob,
        artifact_type: &str,
        documents: Vec<Document>,
        epoch: u64,
    ) -> Self {
        let config = Blob {
            media_type: EMPTY_MEDIA_TYPE,
            digest: sha256_digest(EMPTY),
            data: EMPTY.to_vec(),
        };
        let manifest = Blob::json(
            MANIFEST_MEDIA_TYPE,
            &json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "artifactType": artifact_type,
                "config": config.descriptor(),
                "layers": documents.iter().map(Document::descriptor).collect::<Vec<_>>(),
                "subject": subject.descriptor(),
                "annotations": {"org.opencontainers.image.created": image::rfc3339(epoch)},
            }),
        );
        Artifact {
            artifact_type: artifact_type.to_string(),
            config,
            documents,
            manifest,
        }
    }

    /// A manifest with an image config, the shape cosign gives its `.sig` and
    /// `.att` tags (no subject: the tag names the image).
    pub fn tagged(config: Blob, documents: Vec<Document>) -> Self {
        let manifest = Blob::json(
            MANIFEST_MEDIA_TYPE,
            &json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "config": config.descriptor(),
                "layers": documents.iter().map(Document::descriptor).collect::<Vec<_>>(),
            }),
        );
        Artifact {
            artifact_type: String::new(),
            config,
            documents,
            manifest,
        }
    }

    /// Its descriptor in a referrers index (with `artifactType`).
    pub fn index_descriptor(&self) -> Value {
        let mut d = self.manifest.descriptor();
        if !self.artifact_type.is_empty() {
            d["artifactType"] = json!(self.artifact_type);
        }
        d
    }

    /// The config and the documents, `(digest, bytes)`.
    pub fn blobs(&self) -> Vec<(&str, &[u8])> {
        std::iter::once(&self.config)
            .chain(self.documents.iter().map(|d| &d.blob))
            .map(|b| (b.digest.as_str(), b.data.as_slice()))
            .collect()
    }
}

/// The tag the referrers tag schema keeps the index of `digest`'s referrers under.
pub fn fallback_tag(digest: &str) -> String {
    digest.replace(':', "-")
}

/// Pushes `artifacts` as referrers of `subject` (already in the repository) and
/// makes sure they can be listed: when the registry's referrers API does not list
/// them, they are added to the tag schema's index.
pub async fn attach(remote: &Remote, subject: &str, artifacts: &[Artifact]) -> Result<()> {
    for artifact in artifacts {
        for (digest, data) in artifact.blobs() {
            remote.push_blob(digest, data).await?;
        }
        remote
            .put_manifest(
                &remote.digest(&artifact.manifest.digest),
                &artifact.manifest,
            )
            .await?;
    }
    let listed: Vec<String> = remote
        .referrers(subject)
        .await?
        .iter()
        .filter_map(|d| d["digest"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<&Artifact> = artifacts
        .iter()
        .filter(|a| !listed.contains(&a.manifest.digest))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let tag = remote.tag(&fallback_tag(subject));
    let mut manifests = match remote.get_manifest(&tag).await? {
        Some((body, _)) => serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["manifests"].as_array().cloned())
            .ok_or_else(|| Error::Registry {
                registry: remote.registry.host.clone(),
                operation: format!("update the referrers index :{}", fallback_tag(subject)),
                message: "the tag holds something that is not an image index; delete the tag and build again".into(),
            })?,
        None => Vec::new(),
    };
    manifests.extend(missing.iter().map(|a| a.index_descriptor()));
    let index = referrers_index(manifests);
    remote.put_manifest(&tag, &index).await
}

/// An image index listing `manifests`, each once, in digest order (so the same
/// set gives the same bytes whatever order they were attached in).
pub fn referrers_index(mut manifests: Vec<Value>) -> Blob {
    manifests.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    manifests.dedup_by(|a, b| a["digest"] == b["digest"]);
    Blob::json(
        INDEX_MEDIA_TYPE,
        &json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_referrer_names_its_subject_and_artifact_type() {
        let subject = Blob::json(MANIFEST_MEDIA_TYPE, &json!({"schemaVersion": 2}));
        let doc = Blob::json("application/spdx+json", &json!({"spdxVersion": "SPDX-2.3"}));
        let a = Artifact::referrer(
            &subject,
            "application/spdx+json",
            vec![Document::plain(doc.clone())],
            0,
        );
        let m: Value = serde_json::from_slice(&a.manifest.data).unwrap();
        assert_eq!(m["artifactType"], "application/spdx+json");
        assert_eq!(m["subject"]["digest"], subject.digest.as_str());
        assert_eq!(m["config"]["mediaType"], EMPTY_MEDIA_TYPE);
        assert_eq!(
            m["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(m["layers"][0]["digest"], doc.digest.as_str());
        assert_eq!(fallback_tag("sha256:ab"), "sha256-ab");
        let twice = referrers_index(vec![a.index_descriptor(), a.index_descriptor()]);
        let i: Value = serde_json::from_slice(&twice.data).unwrap();
        assert_eq!(i["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(i["manifests"][0]["artifactType"], "application/spdx+json");
    }
}
