//! Verifying what is attached to an image in a registry: the cosign
//! signature over the digest, the signed attestations (SPDX, CycloneDX,
//! SLSA provenance), and the plain SBOM and provenance referrers, each
//! checked to describe this very digest.

use base64::Engine;
use oci_client::{Reference, RegistryOperation};

use crate::attach::{self, PREDICATE_TYPE_ANNOTATION};
use crate::credentials::{self, Credential};
use crate::digest::sha256_digest;
use crate::error::{Error, Result};
use crate::image::{INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::provenance::{self, SLSA_PREDICATE_TYPE, STATEMENT_MEDIA_TYPE};
use crate::publish::{self, Registry};
use crate::sbom::{
    self, CYCLONEDX_MEDIA_TYPE, CYCLONEDX_PREDICATE_TYPE, SPDX_MEDIA_TYPE, SPDX_PREDICATE_TYPE,
};
use crate::signing::{self, PublicKey, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_TYPE};

/// What `verify` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Verification {
    /// `HOST/REPO@sha256:…`.
    pub reference: String,
    /// The image digest verified.
    pub digest: String,
    /// The signature, if one verified: where it was found.
    pub signature: Option<String>,
    /// The simple signing payload's `docker-reference`.
    pub signed_identity: Option<String>,
    /// Predicate types of the attestations that verified.
    pub attestations: Vec<String>,
    /// The SBOMs found: `(format, packages, signed)`.
    pub sboms: Vec<SbomFound>,
    /// The provenance found (signed if in the attestations).
    pub provenance: Option<ProvenanceFound>,
    /// Whether the registry has the referrers API (else the tag schema was read).
    pub referrers_api: bool,
    /// Every referrer listed for the digest: `(artifactType, digest)`.
    pub referrers: Vec<(String, String)>,
    /// What is wrong; empty when everything verified.
    pub problems: Vec<String>,
}

/// One SBOM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SbomFound {
    /// `SPDX` or `CycloneDX`.
    pub format: String,
    /// Packages or components listed.
    pub packages: usize,
    /// Whether it came in a signed attestation.
    pub signed: bool,
}

/// The provenance's main facts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProvenanceFound {
    /// The git commit.
    pub commit: Option<String>,
    /// Whether the tree was dirty.
    pub dirty: Option<bool>,
    /// The okonomi version that built it.
    pub okonomi: String,
    /// `rustc -V`.
    pub rustc: String,
    /// Targets.
    pub targets: Vec<String>,
    /// The cargo profile.
    pub profile: String,
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: u64,
    /// Whether it came in a signed attestation.
    pub signed: bool,
}

impl ProvenanceFound {
    fn from_statement(statement: &serde_json::Value, signed: bool) -> Self {
        let p = &statement["predicate"];
        let definition = &p["buildDefinition"];
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        ProvenanceFound {
            commit: definition["externalParameters"]["source"]["commit"]
                .as_str()
                .map(str::to_string),
            dirty: definition["externalParameters"]["source"]["dirty"].as_bool(),
            okonomi: text(&p["runDetails"]["builder"]["version"]["okonomi"]),
            rustc: text(&p["runDetails"]["builder"]["version"]["rustc"]),
            targets: definition["internalParameters"]["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect(),
            profile: text(&definition["externalParameters"]["profile"]),
            source_date_epoch: definition["internalParameters"]["SOURCE_DATE_EPOCH"]
                .as_u64()
                .unwrap_or_default(),
            signed,
        }
    }
}

struct Remote {
    client: oci_client::Client,
    registry: Registry,
    repository: String,
    credential: Credential,
}

impl Remote {
    fn reference(&self, tag_or_digest: &str) -> Reference {
        if tag_or_digest.starts_with("sha256:") {
            Reference::with_digest(
                self.registry.host.clone(),
                self.repository.clone(),
                tag_or_digest.to_string(),
            )
        } else {
            Reference::with_tag(
                self.registry.host.clone(),
                self.repository.clone(),
                tag_or_digest.to_string(),
            )
        }
    }

    /// A manifest as JSON, `None` when the registry has none by that name.
    async fn manifest(&self, tag_or_digest: &str, media_type: &str) -> Option<serde_json::Value> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(
                &self.reference(tag_or_digest),
                &self.credential.auth,
                &[media_type],
            )
            .await
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// A blob's bytes, checked against its digest.
    async fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.client
            .pull_blob(&self.reference(digest), digest, &mut out)
            .await
            .ok()?;
        (sha256_digest(&out) == digest).then_some(out)
    }
}

/// Splits `HOST/REPO@sha256:…` or `HOST/REPO[:TAG]` into a registry, a
/// repository and a tag or digest.
pub fn parse_image(text: &str, insecure: bool) -> Result<(Registry, String, String)> {
    let invalid = |message: &str| Error::InvalidReference {
        reference: text.to_string(),
        message: message.to_string(),
    };
    let (name, tag_or_digest) = match text.split_once('@') {
        Some((name, digest)) => (name, digest.to_string()),
        None => match text.rsplit_once(':') {
            // A colon after the last slash is a tag; before it, a port.
            Some((name, tag)) if !tag.contains('/') => (name, tag.to_string()),
            _ => (text, "latest".to_string()),
        },
    };
    let (host, repository) = name
        .split_once('/')
        .ok_or_else(|| invalid("expected HOST/REPOSITORY@sha256:… as `okonomi build` prints"))?;
    let mut registry = Registry::parse(host)?;
    registry.insecure |= insecure;
    if repository.is_empty() {
        return Err(invalid("no repository after the host"));
    }
    Ok((registry, repository.to_string(), tag_or_digest))
}

/// Verifies the image `reference` against `key`. Problems found are in
/// [`Verification::problems`]; errors are for what stopped the check itself
/// (an unreachable registry, a malformed reference).
pub async fn verify(
    reference: &str,
    key: &PublicKey,
    insecure: bool,
    credential: Option<Credential>,
) -> Result<Verification> {
    let (registry, repository, tag_or_digest) = parse_image(reference, insecure)?;
    let credential = match credential {
        Some(c) => c,
        None => credentials::lookup(&registry.host).await?,
    };
    let remote = Remote {
        client: publish::client_for(&registry),
        registry,
        repository,
        credential,
    };
    let fail =
        |operation: &str, e| publish::map_error(&remote.registry, &remote.credential, operation, e);
    let image_ref = remote.reference(&tag_or_digest);
    remote
        .client
        .auth(&image_ref, &remote.credential.auth, RegistryOperation::Pull)
        .await
        .map_err(|e| fail("authenticate", e))?;
    let digest = remote
        .client
        .fetch_manifest_digest(&image_ref, &remote.credential.auth)
        .await
        .map_err(|e| fail("find the image (HEAD manifest)", e))?;
    let mut v = Verification {
        reference: format!("{}/{}@{}", remote.registry.host, remote.repository, digest),
        digest: digest.clone(),
        ..Default::default()
    };

    // The referrers: the API where the registry has it, else the tag schema.
    v.referrers_api = publish::supports_referrers(
        &remote.registry,
        &remote.repository,
        &digest,
        &remote.credential,
    )
    .await;
    let index = remote
        .client
        .pull_referrers(&remote.reference(&digest), None)
        .await
        .ok()
        .and_then(|i| serde_json::to_value(i).ok());
    let listed = remote
        .manifest(&attach::referrers_tag(&digest), INDEX_MEDIA_TYPE)
        .await;
    // oci-client's index type drops artifactType: read it from the raw index.
    let entries: Vec<serde_json::Value> = listed
        .or(index)
        .and_then(|i| i["manifests"].as_array().cloned())
        .unwrap_or_default();
    for entry in &entries {
        let digest_of = entry["digest"].as_str().unwrap_or_default().to_string();
        let artifact_type = match entry["artifactType"].as_str() {
            Some(t) => t.to_string(),
            None => remote
                .manifest(&digest_of, MANIFEST_MEDIA_TYPE)
                .await
                .and_then(|m| m["artifactType"].as_str().map(str::to_string))
                .unwrap_or_default(),
        };
        v.referrers.push((artifact_type, digest_of));
    }

    check_signature(&remote, key, &digest, &mut v).await;
    check_attestations(&remote, key, &digest, &mut v).await;
    check_referrers(&remote, &digest, &mut v).await;
    Ok(v)
}

async fn check_signature(remote: &Remote, key: &PublicKey, digest: &str, v: &mut Verification) {
    let tag = attach::cosign_tag(digest, "sig");
    let mut manifests = Vec::new();
    if let Some(m) = remote.manifest(&tag, MANIFEST_MEDIA_TYPE).await {
        manifests.push((format!("tag {tag}"), m));
    }
    for (artifact_type, d) in v.referrers.clone() {
        if artifact_type == attach::SIGNATURE_ARTIFACT_TYPE
            && let Some(m) = remote.manifest(&d, MANIFEST_MEDIA_TYPE).await
        {
            manifests.push((format!("referrer {d}"), m));
        }
    }
    if manifests.is_empty() {
        v.problems.push(format!(
            "no signature: the registry has no tag {tag} and no signature referrer for {digest}; sign it with `okonomi build --sign KEY`"
        ));
        return;
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut found = Vec::new();
    for (place, manifest) in &manifests {
        for layer in manifest["layers"].as_array().into_iter().flatten() {
            let (Some(layer_digest), Some(sig)) = (
                layer["digest"].as_str(),
                layer["annotations"][SIGNATURE_ANNOTATION].as_str(),
            ) else {
                continue;
            };
            let Some(payload) = remote.blob(layer_digest).await else {
                continue;
            };
            let Ok(sig) = b64.decode(sig) else { continue };
            if !key.verify(&payload, &sig) {
                continue;
            }
            let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
            if claims["critical"]["type"] != SIMPLE_SIGNING_TYPE
                || claims["critical"]["image"]["docker-manifest-digest"] != digest
            {
                v.problems.push(format!(
                    "the signature in {place} verifies but signs {}, not {digest}",
                    claims["critical"]["image"]["docker-manifest-digest"]
                ));
                continue;
            }
            v.signed_identity = claims["critical"]["identity"]["docker-reference"]
                .as_str()
                .map(str::to_string);
            found.push(place.clone());
        }
    }
    if found.is_empty() {
        v.problems.push(format!(
            "the signature ({}) does not verify with {}: it was signed with another key, or changed",
            manifests.iter().map(|m| m.0.as_str()).collect::<Vec<_>>().join(", "),
            key.path.display()
        ));
    } else {
        v.signature = Some(found.join(", "));
    }
}

async fn check_attestations(remote: &Remote, key: &PublicKey, digest: &str, v: &mut Verification) {
    let tag = attach::cosign_tag(digest, "att");
    let Some(manifest) = remote.manifest(&tag, MANIFEST_MEDIA_TYPE).await else {
        v.problems.push(format!(
            "no signed attestations: the registry has no tag {tag} (SBOMs and provenance signed by `okonomi build --sign`)"
        ));
        return;
    };
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        let predicate_type = layer["annotations"][PREDICATE_TYPE_ANNOTATION]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        let Some(envelope) = remote
            .blob(layer["digest"].as_str().unwrap_or_default())
            .await
        else {
            v.problems.push(format!(
                "the {predicate_type} attestation's blob is missing or damaged"
            ));
            continue;
        };
        let Some(opened) = signing::open_envelope(&envelope, key) else {
            v.problems.push(format!(
                "the {predicate_type} attestation does not verify with {}",
                key.path.display()
            ));
            continue;
        };
        let statement: serde_json::Value =
            serde_json::from_slice(&opened.statement).unwrap_or_default();
        let subject = provenance::subject_digest(&statement);
        if subject.as_deref() != Some(digest) {
            v.problems.push(format!(
                "the signed {} attestation describes {}, not this image {digest}: the image was rebuilt differently after it was attested (or the attestation was copied from another image); rebuild and sign again",
                predicate_name(&predicate_type),
                subject.unwrap_or_else(|| "no image".into())
            ));
            continue;
        }
        let predicate = &statement["predicate"];
        match statement["predicateType"].as_str().unwrap_or_default() {
            SPDX_PREDICATE_TYPE | CYCLONEDX_PREDICATE_TYPE => {
                let described = sbom::described_digest(predicate);
                if described.as_deref() != Some(digest) {
                    v.problems.push(format!(
                        "the signed {} SBOM lists the contents of {}, not of this image {digest}: the image was rebuilt differently after the SBOM was made",
                        predicate_name(&predicate_type),
                        described.unwrap_or_else(|| "no image".into())
                    ));
                    continue;
                }
                v.sboms.push(SbomFound {
                    format: predicate_name(&predicate_type).to_string(),
                    packages: sbom::package_count(predicate),
                    signed: true,
                });
            }
            SLSA_PREDICATE_TYPE => {
                v.provenance = Some(ProvenanceFound::from_statement(&statement, true));
            }
            _ => {}
        }
        v.attestations.push(predicate_type);
    }
    for (wanted, name) in [
        (SPDX_PREDICATE_TYPE, "SPDX SBOM"),
        (CYCLONEDX_PREDICATE_TYPE, "CycloneDX SBOM"),
        (SLSA_PREDICATE_TYPE, "SLSA provenance"),
    ] {
        if !v.attestations.iter().any(|a| a == wanted)
            && !v
                .problems
                .iter()
                .any(|p| p.contains(predicate_name(wanted)))
        {
            v.problems
                .push(format!("no signed {name} attestation in {tag}"));
        }
    }
}

fn predicate_name(predicate_type: &str) -> &'static str {
    match predicate_type {
        SPDX_PREDICATE_TYPE => "SPDX",
        CYCLONEDX_PREDICATE_TYPE => "CycloneDX",
        SLSA_PREDICATE_TYPE => "SLSA provenance",
        _ => "unknown",
    }
}

/// The plain referrers: each must have this image as its subject and
/// describe this digest.
async fn check_referrers(remote: &Remote, digest: &str, v: &mut Verification) {
    for (artifact_type, referrer) in v.referrers.clone() {
        let format = match artifact_type.as_str() {
            SPDX_MEDIA_TYPE => "SPDX",
            CYCLONEDX_MEDIA_TYPE => "CycloneDX",
            STATEMENT_MEDIA_TYPE => "provenance",
            _ => continue,
        };
        let Some(manifest) = remote.manifest(&referrer, MANIFEST_MEDIA_TYPE).await else {
            v.problems.push(format!(
                "the {format} referrer {referrer} is listed but missing"
            ));
            continue;
        };
        if manifest["subject"]["digest"] != digest {
            v.problems.push(format!(
                "the {format} referrer {referrer} has subject {}, not {digest}",
                manifest["subject"]["digest"]
            ));
            continue;
        }
        let Some(document) = (match manifest["layers"][0]["digest"].as_str() {
            Some(d) => remote.blob(d).await,
            None => None,
        }) else {
            v.problems.push(format!(
                "the {format} referrer {referrer} has no readable document"
            ));
            continue;
        };
        let document: serde_json::Value = serde_json::from_slice(&document).unwrap_or_default();
        let described = if format == "provenance" {
            provenance::subject_digest(&document)
        } else {
            sbom::described_digest(&document)
        };
        if described.as_deref() != Some(digest) {
            v.problems.push(format!(
                "the {format} document in referrer {referrer} describes {}, not this image {digest}: the image was rebuilt differently after it was made",
                described.unwrap_or_else(|| "no image".into())
            ));
            continue;
        }
        if format == "provenance" {
            if v.provenance.is_none() {
                v.provenance = Some(ProvenanceFound::from_statement(&document, false));
            }
        } else if !v.sboms.iter().any(|s| s.format == format) {
            v.sboms.push(SbomFound {
                format: format.to_string(),
                packages: sbom::package_count(&document),
                signed: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_into_registry_repository_and_digest() {
        let (r, repo, d) = parse_image("127.0.0.1:5000/okonomi/hello@sha256:ab", false).unwrap();
        assert_eq!(
            (r.host.as_str(), repo.as_str(), d.as_str()),
            ("127.0.0.1:5000", "okonomi/hello", "sha256:ab")
        );
        assert!(r.insecure);
        let (_, repo, tag) = parse_image("ghcr.io/me/hello:v1", false).unwrap();
        assert_eq!((repo.as_str(), tag.as_str()), ("me/hello", "v1"));
        let (_, _, tag) = parse_image("localhost:5000/hello", false).unwrap();
        assert_eq!(tag, "latest");
        assert!(parse_image("hello", false).is_err());
    }
}
