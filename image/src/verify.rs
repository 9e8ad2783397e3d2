//! Checking an image in a registry against a public key, as `cosign verify` and
//! `cosign verify-attestation` do: a simple-signing payload for the image's digest
//! signed by the key, and DSSE-signed in-toto statements about that digest.
//! Also lists the image's referrers (SBOMs, provenance).
//!
//! The engine calls [`Verifier::verify`] before it runs an image; verified
//! digests are cached, so an image is checked once per process, not per cold start.
//!
//! ```no_run
//! # async fn f() -> Result<(), okonomi_image::verify::VerifyError> {
//! use okonomi_image::verify::Verifier;
//! let pem = std::fs::read_to_string("okonomi.pub").unwrap_or_default();
//! let verifier = Verifier::new(&pem)?;
//! let verified = verifier.verify("127.0.0.1:5000/okonomi/hello@sha256:…").await?;
//! println!("{} signed; {} attestations", verified.digest, verified.attestations.len());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use oci_client::{Reference, RegistryOperation};
use serde_json::Value;

use crate::credentials::Credential;
use crate::error::Error;
use crate::publish::Registry;
use crate::referrers::fallback_tag;
use crate::remote::Remote;
use crate::sign::{self, IN_TOTO_PAYLOAD_TYPE, KeyError, PublicKey};
use crate::supply::{
    DSSE_MEDIA_TYPE, SIGNATURE_ANNOTATION, SIGNATURE_ARTIFACT_TYPE, SIMPLE_SIGNING_MEDIA_TYPE,
    STATEMENT_TYPE,
};

/// Why an image did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The reference does not parse.
    #[error("invalid image reference {reference:?}: {message}")]
    Reference {
        /// What was given.
        reference: String,
        /// What is wrong with it.
        message: String,
    },
    /// The key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The registry failed or refused.
    #[error(transparent)]
    Registry(#[from] Error),
    /// The image is not in the registry.
    #[error("{image}: no such image in the registry")]
    NoImage {
        /// The reference.
        image: String,
    },
    /// There is no signature at all.
    #[error(
        "{image} is not signed: no cosign signature (tag {tag}) and no signature referrer; build it with `okonomi build --sign KEY`"
    )]
    NoSignature {
        /// The image by digest.
        image: String,
        /// The tag cosign's signatures live under.
        tag: String,
    },
    /// Signatures exist, none by this key.
    #[error(
        "{image} is signed, but not by the key {key} ({found} signature(s) checked): verify with the key it was signed with"
    )]
    OtherKey {
        /// The image by digest.
        image: String,
        /// The key's fingerprint.
        key: String,
        /// Signatures seen.
        found: usize,
    },
    /// A signed statement or payload names another image.
    #[error(
        "{image}: {what} is signed by the key but names {named}, not this image's digest {digest}"
    )]
    WrongSubject {
        /// The image.
        image: String,
        /// The signature or attestation.
        what: String,
        /// The digest it names.
        named: String,
        /// The image's digest.
        digest: String,
    },
    /// An SBOM given to check against the image describes another build.
    #[error(
        "the SBOM {path} describes {described}, but {image} is {digest}: the image was rebuilt differently since that SBOM was made (other sources, toolchain or SOURCE_DATE_EPOCH); use the SBOM attached to this image (`okonomi verify` lists it) or rebuild from the recorded commit"
    )]
    SbomMismatch {
        /// The SBOM file.
        path: String,
        /// The image digest the SBOM names.
        described: String,
        /// The image.
        image: String,
        /// Its digest.
        digest: String,
    },
    /// An SBOM file could not be read.
    #[error("{path}: {message}")]
    Sbom {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// One signed attestation found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attestation {
    /// Its predicate type, e.g. `https://slsa.dev/provenance/v1`.
    pub predicate_type: String,
    /// The in-toto statement (decoded from the DSSE envelope).
    #[serde(skip)]
    pub statement: Vec<u8>,
}

/// One referrer of the image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReferrerInfo {
    /// Its artifactType.
    pub artifact_type: String,
    /// Its manifest digest.
    pub digest: String,
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    /// `HOST/REPO@sha256:…`.
    pub reference: String,
    /// The image digest.
    pub digest: String,
    /// The key's fingerprint (sha256 of its DER).
    pub key: String,
    /// The `docker-reference` the valid signature names.
    pub signed_identity: String,
    /// Signed attestations about this digest, by predicate type.
    pub attestations: Vec<Attestation>,
    /// Every referrer the registry lists (SBOMs, provenance, signatures).
    pub referrers: Vec<ReferrerInfo>,
}

/// Checks images against one public key, caching the digests that verified.
pub struct Verifier {
    key: PublicKey,
    credential: Option<Credential>,
    cache: Mutex<HashMap<String, Verified>>,
}

impl Verifier {
    /// A verifier for the SPKI PEM public key `public_key_pem` (okonomi keygen's or cosign's `.pub`).
    pub fn new(public_key_pem: &str) -> Result<Self, VerifyError> {
        Ok(Self::with_key(PublicKey::from_pem(
            public_key_pem,
            Path::new("the public key"),
        )?))
    }

    /// A verifier for `key`.
    pub fn with_key(key: PublicKey) -> Self {
        Verifier {
            key,
            credential: None,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Uses `credential` for the registry instead of the docker configuration.
    pub fn credential(mut self, credential: Credential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// Verifies `reference` (`HOST/REPO@sha256:…` or `HOST/REPO:TAG`): its cosign
    /// signature by the key, and the signed attestations about its digest. A digest
    /// that verified once is answered from the cache; a tag is resolved every time.
    pub async fn verify(&self, reference: &str) -> Result<Verified, VerifyError> {
        let parsed: Reference =
            reference
                .parse()
                .map_err(|e: oci_client::ParseError| VerifyError::Reference {
                    reference: reference.to_string(),
                    message: e.to_string(),
                })?;
        if let Some(digest) = parsed.digest()
            && let Some(hit) = self.cached(digest)
        {
            return Ok(hit);
        }
        let registry = Registry::parse(parsed.registry()).map_err(VerifyError::Registry)?;
        let remote = Remote::connect(
            &registry,
            parsed.repository(),
            self.credential.clone(),
            RegistryOperation::Pull,
        )
        .await?;
        let digest = match parsed.digest() {
            Some(d) => d.to_string(),
            None => {
                let tag = parsed.tag().unwrap_or("latest");
                remote
                    .get_manifest(&remote.tag(tag))
                    .await?
                    .map(|(_, d)| d)
                    .ok_or_else(|| VerifyError::NoImage {
                        image: reference.to_string(),
                    })?
            }
        };
        if let Some(hit) = self.cached(&digest) {
            return Ok(hit);
        }
        let verified = self.check(&remote, &digest).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(digest, verified.clone());
        }
        Ok(verified)
    }

    fn cached(&self, digest: &str) -> Option<Verified> {
        self.cache.lock().ok()?.get(digest).cloned()
    }

    async fn check(&self, remote: &Remote, digest: &str) -> Result<Verified, VerifyError> {
        let image = format!("{}@{digest}", remote.name());
        if remote.get_manifest(&remote.digest(digest)).await?.is_none() {
            return Err(VerifyError::NoImage { image });
        }
        let referrers: Vec<ReferrerInfo> = remote
            .referrers(digest)
            .await?
            .iter()
            .map(|d| ReferrerInfo {
                artifact_type: d["artifactType"].as_str().unwrap_or_default().to_string(),
                digest: d["digest"].as_str().unwrap_or_default().to_string(),
            })
            .collect();
        let tag = fallback_tag(digest);
        // Where cosign keeps signatures, then the signature referrers.
        let mut signature_layers = layers(remote, &remote.tag(&format!("{tag}.sig"))).await?;
        for r in referrers
            .iter()
            .filter(|r| r.artifact_type == SIGNATURE_ARTIFACT_TYPE)
        {
            signature_layers.extend(layers(remote, &remote.digest(&r.digest)).await?);
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut found = 0;
        let mut identity = None;
        for layer in signature_layers
            .iter()
            .filter(|l| l["mediaType"] == SIMPLE_SIGNING_MEDIA_TYPE)
        {
            let Some(signature) = layer["annotations"][SIGNATURE_ANNOTATION]
                .as_str()
                .and_then(|s| b64.decode(s).ok())
            else {
                continue;
            };
            found += 1;
            let payload = fetch(remote, layer).await?;
            if !self.key.verify(&payload, &signature) {
                continue;
            }
            let payload: Value = serde_json::from_slice(&payload).unwrap_or_default();
            let named = payload["critical"]["image"]["docker-manifest-digest"]
                .as_str()
                .unwrap_or_default();
            if named != digest || payload["critical"]["type"] != "cosign container image signature"
            {
                return Err(VerifyError::WrongSubject {
                    image,
                    what: "the signature".into(),
                    named: named.to_string(),
                    digest: digest.to_string(),
                });
            }
            identity = payload["critical"]["identity"]["docker-reference"]
                .as_str()
                .map(str::to_string);
            break;
        }
        let Some(signed_identity) = identity else {
            return Err(if found == 0 {
                VerifyError::NoSignature {
                    image,
                    tag: format!("{tag}.sig"),
                }
            } else {
                VerifyError::OtherKey {
                    image,
                    key: self.key.fingerprint(),
                    found,
                }
            });
        };
        let mut attestations = Vec::new();
        let mut attestation_layers = layers(remote, &remote.tag(&format!("{tag}.att"))).await?;
        for r in referrers
            .iter()
            .filter(|r| r.artifact_type == DSSE_MEDIA_TYPE)
        {
            attestation_layers.extend(layers(remote, &remote.digest(&r.digest)).await?);
        }
        attestation_layers.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
        attestation_layers.dedup_by(|a, b| a["digest"] == b["digest"]);
        for layer in attestation_layers
            .iter()
            .filter(|l| l["mediaType"] == DSSE_MEDIA_TYPE)
        {
            let envelope: Value =
                serde_json::from_slice(&fetch(remote, layer).await?).unwrap_or_default();
            let Some(statement) = envelope["payload"]
                .as_str()
                .and_then(|p| b64.decode(p).ok())
            else {
                continue;
            };
            let payload_type = envelope["payloadType"].as_str().unwrap_or_default();
            let pae = sign::pae(payload_type, &statement);
            let signed = envelope["signatures"].as_array().is_some_and(|sigs| {
                sigs.iter().any(|s| {
                    s["sig"]
                        .as_str()
                        .and_then(|s| b64.decode(s).ok())
                        .is_some_and(|sig| self.key.verify(&pae, &sig))
                })
            });
            if !signed || payload_type != IN_TOTO_PAYLOAD_TYPE {
                // Someone else's attestation: not ours to judge.
                continue;
            }
            let parsed: Value = serde_json::from_slice(&statement).unwrap_or_default();
            let predicate_type = parsed["predicateType"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let about_this = parsed["subject"].as_array().is_some_and(|subjects| {
                subjects.iter().any(|s| {
                    s["digest"]["sha256"].as_str() == Some(digest.trim_start_matches("sha256:"))
                })
            });
            if parsed["_type"] != STATEMENT_TYPE || !about_this {
                return Err(VerifyError::WrongSubject {
                    image,
                    what: format!("the {predicate_type} attestation"),
                    named: parsed["subject"].to_string(),
                    digest: digest.to_string(),
                });
            }
            attestations.push(Attestation {
                predicate_type,
                statement,
            });
        }
        attestations.sort_by(|a, b| a.predicate_type.cmp(&b.predicate_type));
        Ok(Verified {
            reference: image,
            digest: digest.to_string(),
            key: self.key.fingerprint(),
            signed_identity,
            attestations,
            referrers,
        })
    }
}

/// Checks that the SPDX or CycloneDX SBOM in `sbom` (a file's bytes) describes
/// the image `digest`.
pub fn check_sbom(sbom: &[u8], path: &str, image: &str, digest: &str) -> Result<(), VerifyError> {
    let doc: Value = serde_json::from_slice(sbom).map_err(|e| VerifyError::Sbom {
        path: path.to_string(),
        message: format!("not JSON: {e}"),
    })?;
    // okonomi's SPDX names the image package's version as its digest; CycloneDX
    // the metadata component's. Other tools' SBOMs carry no digest to compare.
    let described = doc["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["SPDXID"] == "SPDXRef-Image"))
        .and_then(|p| p["versionInfo"].as_str())
        .or_else(|| doc["metadata"]["component"]["version"].as_str())
        .filter(|v| v.starts_with("sha256:"))
        .ok_or_else(|| VerifyError::Sbom {
            path: path.to_string(),
            message: "it names no image digest (not an SBOM okonomi made)".into(),
        })?;
    if described != digest {
        return Err(VerifyError::SbomMismatch {
            path: path.to_string(),
            described: described.to_string(),
            image: image.to_string(),
            digest: digest.to_string(),
        });
    }
    Ok(())
}

/// The layer descriptors of the manifest at `reference`; none when it is absent.
async fn layers(remote: &Remote, reference: &Reference) -> Result<Vec<Value>, VerifyError> {
    Ok(match remote.get_manifest(reference).await? {
        Some((body, _)) => serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|m| m["layers"].as_array().cloned())
            .unwrap_or_default(),
        None => Vec::new(),
    })
}

async fn fetch(remote: &Remote, layer: &Value) -> Result<Vec<u8>, VerifyError> {
    let digest = layer["digest"].as_str().unwrap_or_default();
    Ok(remote
        .get_blob(digest, layer["size"].as_u64().unwrap_or(u64::MAX))
        .await?)
}
