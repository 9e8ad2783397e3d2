//! What okonomi attaches to every image it builds: the SBOMs and an in-toto
//! provenance statement (SLSA v1) as OCI 1.1 referrers, and with a key a cosign
//! signature and cosign attestations (DSSE envelopes of the provenance and of
//! both SBOMs), stored both where cosign looks (`sha256-HEX.sig` / `.att` tags)
//! and as referrers.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use base64::Engine;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::build::BuiltImage;
use crate::digest::sha256_digest;
use crate::error::Result;
use crate::image::{Blob, CONFIG_MEDIA_TYPE};
use crate::referrers::{self, Artifact, Document};
use crate::remote::Remote;
use crate::sbom::{CYCLONEDX_MEDIA_TYPE, SPDX_MEDIA_TYPE};
use crate::sign::{self, IN_TOTO_PAYLOAD_TYPE, PrivateKey};

/// Layer media type of cosign's simple-signing payload.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding cosign's base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// artifactType of a cosign signature stored as an OCI 1.1 referrer.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// Media type (and artifactType) of DSSE envelopes, cosign's attestation layers.
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The layer annotation naming an attestation's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA v1 provenance predicate type.
pub const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
/// Predicate type of an SPDX SBOM attestation (as `cosign attest --type spdxjson`).
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
/// Predicate type of a CycloneDX SBOM attestation (as `cosign attest --type cyclonedx`).
pub const CYCLONEDX_PREDICATE: &str = "https://cyclonedx.org/bom";
/// The build type okonomi's provenance records.
pub const BUILD_TYPE: &str = "https://okonomi.dev/build/cargo-musl/v1";
/// The builder id okonomi's provenance records (with its version appended).
pub const BUILDER_ID: &str = "https://okonomi.dev/builder/okonomi-build";

/// Facts about the toolchain and the checkout that provenance records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildFacts {
    /// `rustc -V`.
    pub rustc: Option<String>,
    /// `cargo -V`.
    pub cargo: Option<String>,
    /// `git rev-parse HEAD` of the crate's checkout.
    pub commit: Option<String>,
    /// Whether `git status --porcelain` showed changes.
    pub dirty: Option<bool>,
    /// The crate's directory relative to the repository root (`git rev-parse --show-prefix`).
    pub path_in_repository: Option<String>,
}

/// Reads the toolchain and git facts for the crate in `dir`.
pub async fn build_facts(dir: &Path) -> BuildFacts {
    let (rustc, cargo, commit, status, prefix) = tokio::join!(
        output(dir, "rustc", &["-V"]),
        output(dir, "cargo", &["-V"]),
        output(dir, "git", &["rev-parse", "HEAD"]),
        output(dir, "git", &["status", "--porcelain"]),
        output(dir, "git", &["rev-parse", "--show-prefix"]),
    );
    BuildFacts {
        dirty: commit.as_ref().and(status.map(|s| !s.trim().is_empty())),
        rustc,
        cargo,
        commit,
        path_in_repository: prefix.map(|p| p.trim_end_matches('/').to_string()),
    }
}

async fn output(dir: &Path, program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// An in-toto v1 statement about `digest` pushed as `name`.
pub fn statement(name: &str, digest: &str, predicate_type: &str, predicate: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }))
    .unwrap_or_default()
}

/// The SLSA v1 provenance predicate of `image`. No clock readings: the same
/// commit and toolchain give the same bytes.
pub fn provenance(image: &BuiltImage) -> Value {
    let facts = &image.facts;
    let version = env!("CARGO_PKG_VERSION");
    let mut resolved = Vec::new();
    if let Some(commit) = &facts.commit {
        let uri = match &image.source.source {
            Some(src) => format!("git+{src}@{commit}"),
            None => format!("git+unknown@{commit}"),
        };
        resolved.push(json!({
            "uri": uri,
            "digest": {"gitCommit": commit},
            "annotations": {"dirty": facts.dirty.unwrap_or(false)},
        }));
    }
    for (name, v) in [("rustc", &facts.rustc), ("cargo", &facts.cargo)] {
        if let Some(v) = v {
            let number = v.split_whitespace().nth(1).unwrap_or(v);
            resolved.push(json!({"name": name, "uri": format!("pkg:generic/{name}@{number}"), "annotations": {"version": v}}));
        }
    }
    let platforms: Vec<String> = image
        .platforms
        .iter()
        .map(|p| p.platform.to_string())
        .collect();
    let targets: Vec<&str> = image
        .platforms
        .iter()
        .map(|p| p.platform.rust_target())
        .collect();
    json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "package": image.function.package,
                "path": facts.path_in_repository,
                "platforms": platforms,
                "features": image.features,
            },
            "internalParameters": {
                "profile": "release",
                "targets": targets,
                "SOURCE_DATE_EPOCH": image.source.epoch,
            },
            "resolvedDependencies": resolved,
        },
        "runDetails": {
            "builder": {
                "id": format!("{BUILDER_ID}@v{version}"),
                "version": {"okonomi": version, "rustc": facts.rustc, "cargo": facts.cargo},
            },
            "metadata": {},
        },
    })
}

/// The in-toto provenance statement of `image` pushed as `name`.
pub fn provenance_statement(image: &BuiltImage, name: &str) -> Vec<u8> {
    statement(name, image.digest(), SLSA_PROVENANCE, provenance(image))
}

/// Everything attached to one image.
#[derive(Debug, Clone)]
pub struct Attachments {
    /// OCI 1.1 referrers of the image.
    pub referrers: Vec<Artifact>,
    /// cosign's tagged manifests: `(tag, manifest)` for `.sig` and `.att`.
    pub tagged: Vec<(String, Artifact)>,
}

/// The attachments of `image` pushed as `name` (`HOST/REPO`): SBOMs and
/// provenance always; signature and signed attestations with `key`.
pub fn attachments(image: &BuiltImage, name: &str, key: Option<&PrivateKey>) -> Attachments {
    let subject = image.top();
    let epoch = image.source.epoch;
    let spdx = image.spdx();
    let cyclonedx = image.cyclonedx();
    let provenance = provenance_statement(image, name);
    let mut referrers = vec![
        Artifact::referrer(
            subject,
            SPDX_MEDIA_TYPE,
            vec![Document::plain(spdx.clone())],
            epoch,
        ),
        Artifact::referrer(
            subject,
            CYCLONEDX_MEDIA_TYPE,
            vec![Document::plain(cyclonedx.clone())],
            epoch,
        ),
    ];
    let mut tagged = Vec::new();
    match key {
        None => referrers.push(Artifact::referrer(
            subject,
            IN_TOTO_PAYLOAD_TYPE,
            vec![Document::plain(blob(IN_TOTO_PAYLOAD_TYPE, provenance))],
            epoch,
        )),
        Some(key) => {
            let b64 = base64::engine::general_purpose::STANDARD;
            let payload = sign::simple_signing_payload(name, image.digest());
            let signature = b64.encode(key.sign(&payload));
            let signed = Document {
                blob: blob(SIMPLE_SIGNING_MEDIA_TYPE, payload),
                annotations: BTreeMap::from([(SIGNATURE_ANNOTATION.to_string(), signature)]),
            };
            let sbom_statement = |doc: &Blob, predicate_type: &str| {
                let predicate: Value = serde_json::from_slice(&doc.data).unwrap_or_default();
                statement(name, image.digest(), predicate_type, predicate)
            };
            let envelopes: Vec<Document> = [
                (provenance, SLSA_PROVENANCE),
                (sbom_statement(&spdx, SPDX_PREDICATE), SPDX_PREDICATE),
                (
                    sbom_statement(&cyclonedx, CYCLONEDX_PREDICATE),
                    CYCLONEDX_PREDICATE,
                ),
            ]
            .into_iter()
            .map(|(statement, predicate_type)| Document {
                blob: blob(DSSE_MEDIA_TYPE, sign::dsse_envelope(key, &statement)),
                annotations: BTreeMap::from([(
                    PREDICATE_TYPE_ANNOTATION.to_string(),
                    predicate_type.to_string(),
                )]),
            })
            .collect();
            referrers.push(Artifact::referrer(
                subject,
                SIGNATURE_ARTIFACT_TYPE,
                vec![signed.clone()],
                epoch,
            ));
            referrers.push(Artifact::referrer(
                subject,
                DSSE_MEDIA_TYPE,
                envelopes.clone(),
                epoch,
            ));
            let tag = referrers::fallback_tag(image.digest());
            tagged.push((format!("{tag}.sig"), cosign_manifest(vec![signed])));
            tagged.push((format!("{tag}.att"), cosign_manifest(envelopes)));
        }
    }
    Attachments { referrers, tagged }
}

fn blob(media_type: &'static str, data: Vec<u8>) -> Blob {
    Blob {
        media_type,
        digest: sha256_digest(&data),
        data,
    }
}

/// A manifest shaped as cosign's `.sig`/`.att` images: an image config whose
/// diff_ids are the layers' digests (the layers are not compressed).
pub fn cosign_manifest(documents: Vec<Document>) -> Artifact {
    let config = Blob::json(
        CONFIG_MEDIA_TYPE,
        &json!({
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {
                "type": "layers",
                "diff_ids": documents.iter().map(|d| d.blob.digest.clone()).collect::<Vec<_>>(),
            },
        }),
    );
    Artifact::tagged(config, documents)
}

/// Pushes the attachments of `image` (already pushed to `remote`'s repository).
/// A `.sig` or `.att` tag that holds other signatures keeps them: ours are added.
pub async fn attach(remote: &Remote, image: &BuiltImage, attachments: &Attachments) -> Result<()> {
    referrers::attach(remote, image.digest(), &attachments.referrers).await?;
    for (tag, artifact) in &attachments.tagged {
        let merged = match remote.get_manifest(&remote.tag(tag)).await? {
            Some((body, _)) => merge_cosign(&body, artifact, remote).await?,
            None => artifact.clone(),
        };
        // HEAD first: only what the registry lacks (our documents, a merged config) is sent.
        for (digest, data) in merged.blobs() {
            remote.push_blob(digest, data).await?;
        }
        remote
            .put_manifest(&remote.tag(tag), &merged.manifest)
            .await?;
    }
    Ok(())
}

/// Adds the documents of `ours` to the cosign manifest `existing` (from the
/// registry), unless each is there already.
async fn merge_cosign(existing: &[u8], ours: &Artifact, remote: &Remote) -> Result<Artifact> {
    let existing: Value = serde_json::from_slice(existing).unwrap_or_default();
    let layers = existing["layers"].as_array().cloned().unwrap_or_default();
    let mut documents = Vec::new();
    for layer in &layers {
        let (Some(digest), Some(media_type)) =
            (layer["digest"].as_str(), layer["mediaType"].as_str())
        else {
            continue;
        };
        let annotations: BTreeMap<String, String> =
            serde_json::from_value(layer["annotations"].clone()).unwrap_or_default();
        if ours
            .documents
            .iter()
            .any(|d| d.blob.digest == digest && d.annotations == annotations)
        {
            continue;
        }
        // Keep the other signatures' layers as they are; the blob is already in the
        // registry, but its bytes are needed for the descriptor.
        let data = remote
            .get_blob(digest, layer["size"].as_u64().unwrap_or(0))
            .await?;
        let media_type = match media_type {
            SIMPLE_SIGNING_MEDIA_TYPE => SIMPLE_SIGNING_MEDIA_TYPE,
            DSSE_MEDIA_TYPE => DSSE_MEDIA_TYPE,
            _ => continue,
        };
        documents.push(Document {
            blob: blob(media_type, data),
            annotations,
        });
    }
    documents.extend(ours.documents.iter().cloned());
    Ok(cosign_manifest(documents))
}

/// Writes the attachments into the OCI layout at `dir` (after the image): the
/// blobs, and each manifest in index.json (the tagged ones under their tag), so
/// that a layout carries its referrers as OCI's image layout 1.1 describes.
pub async fn write_to_layout(dir: &Path, attachments: &Attachments) -> Result<()> {
    let mut entries: Vec<(Artifact, Option<String>)> = attachments
        .referrers
        .iter()
        .map(|a| (a.clone(), None))
        .collect();
    entries.extend(
        attachments
            .tagged
            .iter()
            .map(|(t, a)| (a.clone(), Some(t.clone()))),
    );
    crate::layout::write_artifacts(dir, entries).await
}
