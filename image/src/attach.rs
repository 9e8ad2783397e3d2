//! What okonomi attaches to an image, as OCI manifests: the SBOMs and the
//! provenance always, and with a key the cosign signature and the signed
//! attestations.
//!
//! Every attachment is an OCI 1.1 referrer (an image manifest with a
//! `subject` naming the image and an `artifactType`). Registries with the
//! referrers API index them by their subject; for those without it (CNCF
//! distribution 2.8, ghcr.io) okonomi keeps the referrers tag schema's index
//! under the tag `sha256-HEX`. The signature and the attestations are also
//! under cosign's own tags, `sha256-HEX.sig` and `sha256-HEX.att`, in the
//! layout cosign writes, so that cosign, Kyverno and Sigstore's
//! policy-controller find them where they look.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::json;

use crate::build::BuiltImage;
use crate::digest::sha256_digest;
use crate::image::{Blob, MANIFEST_MEDIA_TYPE, rfc3339};
use crate::provenance::{SLSA_PREDICATE_TYPE, STATEMENT_MEDIA_TYPE};
use crate::sbom::{
    CYCLONEDX_MEDIA_TYPE, CYCLONEDX_PREDICATE_TYPE, SPDX_MEDIA_TYPE, SPDX_PREDICATE_TYPE,
};
use crate::signing::{
    self, DSSE_MEDIA_TYPE, PrivateKey, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE,
};

/// The OCI 1.1 empty config descriptor's media type.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The artifact type okonomi gives the cosign signature manifest as a referrer.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The artifact type of the attestations manifest (DSSE envelopes) as a referrer.
pub const ATTESTATIONS_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.att.v1+json";
/// The layer annotation cosign names an attestation's predicate type with.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// The config media type cosign gives its signature and attestation manifests.
const COSIGN_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// What an attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// cosign's simple signing signature.
    Signature,
    /// The signed attestations (SBOMs and provenance in DSSE envelopes).
    Attestations,
    /// The SPDX SBOM.
    Spdx,
    /// The CycloneDX SBOM.
    CycloneDx,
    /// The (unsigned) provenance statement.
    Provenance,
}

impl Kind {
    /// How users call it, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Signature => "signature",
            Kind::Attestations => "signed attestations",
            Kind::Spdx => "SPDX SBOM",
            Kind::CycloneDx => "CycloneDX SBOM",
            Kind::Provenance => "provenance",
        }
    }
}

/// One attachment: a manifest, the blobs it names, and cosign's tag for it.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// What it is.
    pub kind: Kind,
    /// Its `artifactType`.
    pub artifact_type: &'static str,
    /// The manifest (with `subject`).
    pub manifest: Blob,
    /// Config and layer blobs, `(digest, bytes)`.
    pub blobs: Vec<(String, Vec<u8>)>,
    /// cosign's tag (`sha256-HEX.sig` / `.att`), if it has one.
    pub tag: Option<String>,
    /// The manifest's annotations (copied into the referrers index).
    pub annotations: BTreeMap<String, String>,
}

impl Artifact {
    /// Its descriptor in a referrers index: with `artifactType` and annotations.
    pub fn referrer_descriptor(&self) -> serde_json::Value {
        let mut d = self.manifest.descriptor();
        d["artifactType"] = json!(self.artifact_type);
        if !self.annotations.is_empty() {
            d["annotations"] = json!(self.annotations);
        }
        d
    }
}

/// cosign's tag for an image digest's signature or attestations: `sha256-HEX.SUFFIX`.
pub fn cosign_tag(digest: &str, suffix: &str) -> String {
    format!("{}.{suffix}", referrers_tag(digest))
}

/// The referrers tag schema's tag: `sha256:HEX` becomes `sha256-HEX`.
pub fn referrers_tag(digest: &str) -> String {
    digest.replacen(':', "-", 1)
}

/// How to sign: the key and the repository the image is pushed as
/// (`HOST/PATH`, the simple signing payload's `docker-reference`).
#[derive(Debug, Clone)]
pub struct Signing<'a> {
    /// The private key.
    pub key: &'a PrivateKey,
    /// `HOST/PATH` of the pushed image.
    pub repository: &'a str,
}

fn layer(media_type: &str, data: &[u8], annotations: serde_json::Value) -> serde_json::Value {
    let mut d = json!({"mediaType": media_type, "digest": sha256_digest(data), "size": data.len()});
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        d["annotations"] = annotations;
    }
    d
}

/// The attachments of `image`, in the order they are pushed: signature and
/// attestations first (with a key), then the SBOMs and the provenance.
pub fn artifacts(image: &BuiltImage, signing: Option<&Signing<'_>>) -> Vec<Artifact> {
    let subject = image.top.descriptor();
    let created = rfc3339(image.source.epoch);
    let mut out = Vec::new();
    if let Some(signing) = signing {
        out.push(signature(image, signing, &subject));
        out.push(attestations(image, signing.key, &subject));
    }
    let empty = b"{}".to_vec();
    let documents: [(Kind, &'static str, &[u8], &str); 3] = [
        (
            Kind::Spdx,
            SPDX_MEDIA_TYPE,
            &image.supply.sboms.spdx,
            "sbom.spdx.json",
        ),
        (
            Kind::CycloneDx,
            CYCLONEDX_MEDIA_TYPE,
            &image.supply.sboms.cyclonedx,
            "sbom.cdx.json",
        ),
        (
            Kind::Provenance,
            STATEMENT_MEDIA_TYPE,
            &image.supply.provenance,
            "provenance.intoto.json",
        ),
    ];
    for (kind, media_type, data, title) in documents {
        let annotations: BTreeMap<String, String> = [(
            "org.opencontainers.image.created".to_string(),
            created.clone(),
        )]
        .into();
        let manifest = Blob::json(
            MANIFEST_MEDIA_TYPE,
            &json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "artifactType": media_type,
                "config": {
                    "mediaType": EMPTY_MEDIA_TYPE,
                    "digest": sha256_digest(&empty),
                    "size": empty.len(),
                },
                "layers": [layer(media_type, data, json!({"org.opencontainers.image.title": title}))],
                "subject": subject,
                "annotations": annotations,
            }),
        );
        out.push(Artifact {
            kind,
            artifact_type: media_type,
            manifest,
            blobs: vec![
                (sha256_digest(&empty), empty.clone()),
                (sha256_digest(data), data.to_vec()),
            ],
            tag: None,
            annotations,
        });
    }
    out
}

/// cosign's config for a signature or attestation manifest: an empty image
/// whose rootfs lists the layers, with Go's zero time.
fn cosign_config(layers: &[&[u8]]) -> Vec<u8> {
    let config = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| sha256_digest(l)).collect::<Vec<_>>(),
        },
        "config": {},
    });
    serde_json::to_vec(&config).unwrap_or_default()
}

fn signature(image: &BuiltImage, signing: &Signing<'_>, subject: &serde_json::Value) -> Artifact {
    let payload = signing::simple_signing_payload(signing.repository, image.digest());
    let sig = base64::engine::general_purpose::STANDARD.encode(signing.key.sign(&payload));
    let config = cosign_config(&[&payload]);
    let manifest = Blob::json(
        MANIFEST_MEDIA_TYPE,
        &json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": SIGNATURE_ARTIFACT_TYPE,
            "config": {"mediaType": COSIGN_CONFIG_MEDIA_TYPE, "digest": sha256_digest(&config), "size": config.len()},
            "layers": [layer(SIMPLE_SIGNING_MEDIA_TYPE, &payload, json!({SIGNATURE_ANNOTATION: sig}))],
            "subject": subject,
        }),
    );
    Artifact {
        kind: Kind::Signature,
        artifact_type: SIGNATURE_ARTIFACT_TYPE,
        manifest,
        blobs: vec![
            (sha256_digest(&config), config),
            (sha256_digest(&payload), payload),
        ],
        tag: Some(cosign_tag(image.digest(), "sig")),
        annotations: BTreeMap::new(),
    }
}

/// An in-toto statement wrapping an SBOM as its predicate, as `cosign attest --type` makes.
fn sbom_statement(image: &BuiltImage, predicate_type: &str, sbom: &[u8]) -> Vec<u8> {
    let predicate: serde_json::Value = serde_json::from_slice(sbom).unwrap_or_default();
    let statement = json!({
        "_type": crate::provenance::STATEMENT_TYPE,
        "subject": [{"name": image.name, "digest": {"sha256": image.digest().trim_start_matches("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    serde_json::to_vec(&statement).unwrap_or_default()
}

fn attestations(image: &BuiltImage, key: &PrivateKey, subject: &serde_json::Value) -> Artifact {
    let statements = [
        (
            SPDX_PREDICATE_TYPE,
            sbom_statement(image, SPDX_PREDICATE_TYPE, &image.supply.sboms.spdx),
        ),
        (
            CYCLONEDX_PREDICATE_TYPE,
            sbom_statement(
                image,
                CYCLONEDX_PREDICATE_TYPE,
                &image.supply.sboms.cyclonedx,
            ),
        ),
        (SLSA_PREDICATE_TYPE, image.supply.provenance.clone()),
    ];
    let envelopes: Vec<(&str, Vec<u8>)> = statements
        .iter()
        .map(|(t, s)| (*t, signing::dsse_envelope(s, key)))
        .collect();
    let layers: Vec<&[u8]> = envelopes.iter().map(|(_, e)| e.as_slice()).collect();
    let config = cosign_config(&layers);
    let manifest = Blob::json(
        MANIFEST_MEDIA_TYPE,
        &json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": ATTESTATIONS_ARTIFACT_TYPE,
            "config": {"mediaType": COSIGN_CONFIG_MEDIA_TYPE, "digest": sha256_digest(&config), "size": config.len()},
            // cosign writes an empty signature annotation on attestation
            // layers: the signature is inside the envelope.
            "layers": envelopes.iter().map(|(t, e)| layer(DSSE_MEDIA_TYPE, e,
                json!({SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: t}))).collect::<Vec<_>>(),
            "subject": subject,
        }),
    );
    let mut blobs = vec![(sha256_digest(&config), config)];
    blobs.extend(envelopes.into_iter().map(|(_, e)| (sha256_digest(&e), e)));
    Artifact {
        kind: Kind::Attestations,
        artifact_type: ATTESTATIONS_ARTIFACT_TYPE,
        manifest,
        blobs,
        tag: Some(cosign_tag(image.digest(), "att")),
        annotations: BTreeMap::new(),
    }
}

/// Adds `artifacts` to a referrers index (the tag schema's, or a layout's):
/// entries already there by digest stay, new ones are appended. `None` when
/// nothing changed.
pub fn merge_referrers_index(
    existing: Option<&serde_json::Value>,
    artifacts: &[Artifact],
) -> Option<Vec<u8>> {
    let mut manifests: Vec<serde_json::Value> = existing
        .and_then(|v| v["manifests"].as_array().cloned())
        .unwrap_or_default();
    let before = manifests.len();
    for artifact in artifacts {
        if !manifests
            .iter()
            .any(|m| m["digest"] == artifact.manifest.digest.as_str())
        {
            manifests.push(artifact.referrer_descriptor());
        }
    }
    if existing.is_some() && manifests.len() == before {
        return None;
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": crate::image::INDEX_MEDIA_TYPE,
        "manifests": manifests,
    });
    Some(serde_json::to_vec(&index).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(data: &[u8]) -> Artifact {
        Artifact {
            kind: Kind::Spdx,
            artifact_type: SPDX_MEDIA_TYPE,
            manifest: Blob::json(MANIFEST_MEDIA_TYPE, &json!({"x": data})),
            blobs: Vec::new(),
            tag: None,
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn tags_follow_cosign_and_the_referrers_tag_schema() {
        assert_eq!(referrers_tag("sha256:ab"), "sha256-ab");
        assert_eq!(cosign_tag("sha256:ab", "sig"), "sha256-ab.sig");
    }

    #[test]
    fn the_referrers_index_keeps_what_it_had_and_adds_new_entries_once() {
        let (a, b) = (artifact(b"a"), artifact(b"b"));
        let first = merge_referrers_index(None, std::slice::from_ref(&a)).unwrap();
        let first: serde_json::Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(first["mediaType"], crate::image::INDEX_MEDIA_TYPE);
        assert_eq!(first["manifests"][0]["artifactType"], SPDX_MEDIA_TYPE);
        assert_eq!(first["manifests"][0]["digest"], a.manifest.digest.as_str());
        // Nothing new: no push.
        assert!(merge_referrers_index(Some(&first), std::slice::from_ref(&a)).is_none());
        let both = merge_referrers_index(Some(&first), &[a.clone(), b.clone()]).unwrap();
        let both: serde_json::Value = serde_json::from_slice(&both).unwrap();
        let digests: Vec<&str> = both["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap())
            .collect();
        assert_eq!(
            digests,
            [a.manifest.digest.as_str(), b.manifest.digest.as_str()]
        );
    }
}
