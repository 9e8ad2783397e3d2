//! Publishing a built image over the OCI distribution API: blobs the registry
//! already has are skipped (HEAD), the rest uploaded, then manifests, then the tag.

use std::fmt;
use std::sync::Arc;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::{Client, Reference, RegistryOperation};

use crate::attach::{self, Artifact, Signing};
use crate::build::BuiltImage;
use crate::credentials::{self, Credential};
use crate::error::{Error, Result};
use crate::signing::PrivateKey;

/// A registry and repository prefix, e.g. `127.0.0.1:5000/okonomi` or `ghcr.io/me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// `host[:port]`.
    pub host: String,
    /// Repository prefix under the host (may be empty).
    pub prefix: String,
    /// Speak plain HTTP (always for loopback registries).
    pub insecure: bool,
}

impl Registry {
    /// Parses `HOST[:PORT][/PREFIX]`; an `http://` scheme or a loopback host means plain HTTP.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |message: &str| Error::InvalidReference {
            reference: text.to_string(),
            message: message.to_string(),
        };
        let (rest, http) = match text.trim() {
            t if t.starts_with("http://") => (&t[7..], true),
            t if t.starts_with("https://") => (&t[8..], false),
            t => (t, false),
        };
        let rest = rest.trim_end_matches('/');
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(invalid("empty registry"));
        }
        // docker's rule: the first component is a host when it has a dot or a port or is localhost.
        if !(host.contains('.') || host.contains(':') || host == "localhost") {
            return Err(invalid(
                "the registry must start with a host, e.g. 127.0.0.1:5000/okonomi or ghcr.io/USER",
            ));
        }
        if prefix
            .chars()
            .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c)))
        {
            return Err(invalid(
                "repository names are lower-case letters, digits, '.', '_', '-' and '/'",
            ));
        }
        let mut registry = Registry {
            host: host.to_string(),
            prefix: prefix.to_string(),
            insecure: http,
        };
        registry.insecure |= registry.is_loopback();
        Ok(registry)
    }

    /// Whether the host is localhost or a loopback address (plain HTTP, as docker and ko do).
    pub fn is_loopback(&self) -> bool {
        let name = match self.host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => self
                .host
                .rsplit_once(':')
                .map_or(self.host.as_str(), |(h, _)| h),
        };
        name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The repository for a function name: `PREFIX/NAME`.
    pub fn repository(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", self.prefix, name)
        }
    }

    pub(crate) fn url(&self) -> String {
        format!(
            "{}://{}/v2/",
            if self.insecure { "http" } else { "https" },
            self.host
        )
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "{}", self.host)
        } else {
            write!(f, "{}/{}", self.host, self.prefix)
        }
    }
}

/// What happened to one blob during a push, for progress display.
#[derive(Debug, Clone)]
pub enum PushEvent {
    /// Starting: this many blobs will be checked.
    Start {
        /// Number of distinct blobs.
        blobs: usize,
        /// Their total size.
        bytes: u64,
    },
    /// The registry already had this blob.
    Skipped {
        /// Its digest.
        digest: String,
        /// Its size.
        size: u64,
    },
    /// This blob was uploaded.
    Uploaded {
        /// Its digest.
        digest: String,
        /// Its size.
        size: u64,
    },
    /// A manifest or index was put.
    Manifest {
        /// Its digest.
        digest: String,
    },
}

/// Receives [`PushEvent`]s (the CLI draws a progress bar with them).
pub type PushProgress = Arc<dyn Fn(&PushEvent) + Send + Sync>;

/// Options of a push.
#[derive(Clone, Default)]
pub struct PublishOptions {
    /// Tag to put the image under as well as its digest (default `latest`).
    pub tag: Option<String>,
    /// Credentials to use instead of looking in the docker config.
    pub credential: Option<Credential>,
    /// Progress callback.
    pub progress: Option<PushProgress>,
    /// Sign the pushed digest (and the attestations) with this key.
    pub signing: Option<PrivateKey>,
}

/// The outcome of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// `REGISTRY/NAME@sha256:…`, what to deploy.
    pub reference: String,
    /// `sha256:…` of the top-level manifest or index.
    pub digest: String,
    /// The tag that was set.
    pub tag: String,
    /// Bytes of blobs (layers and configs) uploaded.
    pub bytes_uploaded: u64,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Blobs the registry already had.
    pub blobs_skipped: usize,
    /// Where the credentials came from.
    pub credential_source: String,
    /// What was attached to the image (SBOMs, provenance, signature, attestations).
    pub attached: Vec<Attached>,
    /// Whether the registry answered the OCI 1.1 referrers API; when not,
    /// the referrers tag schema's index (tag `sha256-HEX`) lists them.
    pub referrers_api: bool,
}

/// One attachment as pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// What it is (`signature`, `SPDX SBOM`, …).
    pub kind: String,
    /// Its manifest digest.
    pub digest: String,
    /// cosign's tag for it, if any.
    pub tag: Option<String>,
}

/// Pushes `image` to `registry` as `REGISTRY/NAME` and returns its digest reference.
pub async fn publish(
    image: &BuiltImage,
    registry: &Registry,
    options: &PublishOptions,
) -> Result<Published> {
    let credential = match &options.credential {
        Some(c) => c.clone(),
        None => credentials::lookup(&registry.host).await?,
    };
    let repository = registry.repository(&image.name);
    let tag = options.tag.clone().unwrap_or_else(|| "latest".to_string());
    let tagged = Reference::with_tag(registry.host.clone(), repository.clone(), tag.clone());
    let client = client_for(registry);
    let fail =
        |operation: &str, e: OciDistributionError| map_error(registry, &credential, operation, e);
    client
        .auth(&tagged, &credential.auth, RegistryOperation::Push)
        .await
        .map_err(|e| fail("authenticate", e))?;
    let notify = |event: PushEvent| {
        if let Some(progress) = &options.progress {
            progress(&event);
        }
    };
    let blobs = image.blobs();
    notify(PushEvent::Start {
        blobs: blobs.len(),
        bytes: blobs.iter().map(|b| b.1.len() as u64).sum(),
    });
    let mut published = Published {
        reference: String::new(),
        digest: image.digest().to_string(),
        tag: tag.clone(),
        bytes_uploaded: 0,
        blobs_uploaded: 0,
        blobs_skipped: 0,
        credential_source: credential.source.clone(),
        attached: Vec::new(),
        referrers_api: false,
    };
    for (digest, data) in blobs {
        let size = data.len() as u64;
        if client
            .blob_exists(&tagged, digest)
            .await
            .map_err(|e| fail("check blob (HEAD)", e))?
        {
            published.blobs_skipped += 1;
            notify(PushEvent::Skipped {
                digest: digest.to_string(),
                size,
            });
            continue;
        }
        client
            .push_blob(&tagged, data.to_vec(), digest)
            .await
            .map_err(|e| fail("upload blob", e))?;
        published.blobs_uploaded += 1;
        published.bytes_uploaded += size;
        notify(PushEvent::Uploaded {
            digest: digest.to_string(),
            size,
        });
    }
    // A no-change rebuild finds its tag already naming this digest: nothing
    // to put (and a registry that has become read-only is not written to).
    let current = client
        .fetch_manifest_digest(&tagged, &credential.auth)
        .await
        .ok();
    if current.as_deref() != Some(image.digest()) {
        if image.is_index() {
            for platform in &image.platforms {
                let by_digest = Reference::with_digest(
                    registry.host.clone(),
                    repository.clone(),
                    platform.manifest.digest.clone(),
                );
                push_manifest(&client, &by_digest, &platform.manifest)
                    .await
                    .map_err(|e| fail("put manifest", e))?;
                notify(PushEvent::Manifest {
                    digest: platform.manifest.digest.clone(),
                });
            }
        }
        push_manifest(&client, &tagged, image.top())
            .await
            .map_err(|e| fail("put manifest", e))?;
        notify(PushEvent::Manifest {
            digest: image.digest().to_string(),
        });
    }
    let repository_ref = format!("{}/{}", registry.host, repository);
    let signing = options.signing.as_ref().map(|key| Signing {
        key,
        repository: &repository_ref,
    });
    let artifacts = attach::artifacts(image, signing.as_ref());
    for artifact in &artifacts {
        push_artifact(&client, registry, &repository, &credential, image, artifact).await?;
        published.attached.push(Attached {
            kind: artifact.kind.describe().to_string(),
            digest: artifact.manifest.digest.clone(),
            tag: artifact.tag.clone(),
        });
    }
    published.referrers_api =
        supports_referrers(registry, &repository, image.digest(), &credential).await;
    if !published.referrers_api {
        let index_tag = Reference::with_tag(
            registry.host.clone(),
            repository.clone(),
            attach::referrers_tag(image.digest()),
        );
        let existing: Option<serde_json::Value> = client
            .pull_manifest_raw(
                &index_tag,
                &credential.auth,
                &[crate::image::INDEX_MEDIA_TYPE],
            )
            .await
            .ok()
            .and_then(|(bytes, _)| serde_json::from_slice(&bytes).ok());
        if let Some(index) = attach::merge_referrers_index(existing.as_ref(), &artifacts) {
            client
                .push_manifest_raw(
                    &index_tag,
                    index,
                    http::HeaderValue::from_static(crate::image::INDEX_MEDIA_TYPE),
                )
                .await
                .map_err(|e| Error::AttachRefused {
                    registry: registry.host.clone(),
                    what: format!(
                        "referrers index (tag {})",
                        attach::referrers_tag(image.digest())
                    ),
                    digest: image.digest().to_string(),
                    message: map_error(registry, &credential, "put manifest", e).to_string(),
                })?;
        }
    }
    published.reference = format!("{}/{}@{}", registry.host, repository, image.digest());
    Ok(published)
}

/// An oci-client for `registry`: plain HTTP where it is insecure, timeouts set.
pub(crate) fn client_for(registry: &Registry) -> Client {
    Client::new(ClientConfig {
        protocol: if registry.insecure {
            ClientProtocol::HttpsExcept(vec![registry.host.clone()])
        } else {
            ClientProtocol::Https
        },
        // One request per blob: a single PUT is simplest for every registry we know.
        use_monolithic_push: true,
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_timeout: Some(std::time::Duration::from_secs(300)),
        ..Default::default()
    })
}

/// Pushes one attachment: its blobs unless present, then its manifest (under
/// cosign's tag, or by digest) unless the registry has it already.
async fn push_artifact(
    client: &Client,
    registry: &Registry,
    repository: &str,
    credential: &Credential,
    image: &BuiltImage,
    artifact: &Artifact,
) -> Result<()> {
    let what = match &artifact.tag {
        Some(tag) => format!("{} (tag {tag})", artifact.kind.describe()),
        None => format!(
            "{} (referrer {})",
            artifact.kind.describe(),
            artifact.manifest.digest
        ),
    };
    let refused = |operation: &str, e: OciDistributionError| Error::AttachRefused {
        registry: registry.host.clone(),
        what: what.clone(),
        digest: image.digest().to_string(),
        message: map_error(registry, credential, operation, e).to_string(),
    };
    let target = match &artifact.tag {
        Some(tag) => {
            Reference::with_tag(registry.host.clone(), repository.to_string(), tag.clone())
        }
        None => Reference::with_digest(
            registry.host.clone(),
            repository.to_string(),
            artifact.manifest.digest.clone(),
        ),
    };
    let current = client
        .fetch_manifest_digest(&target, &credential.auth)
        .await
        .ok();
    if current.as_deref() == Some(artifact.manifest.digest.as_str()) {
        return Ok(());
    }
    for (digest, data) in &artifact.blobs {
        if !client
            .blob_exists(&target, digest)
            .await
            .map_err(|e| refused("check blob (HEAD)", e))?
        {
            client
                .push_blob(&target, data.clone(), digest)
                .await
                .map_err(|e| refused("upload blob", e))?;
        }
    }
    push_manifest(client, &target, &artifact.manifest)
        .await
        .map_err(|e| refused("put manifest", e))?;
    Ok(())
}

/// Whether the registry serves the OCI 1.1 referrers API for this repository.
/// Anything but a 200 with an image index (a 404 from distribution 2.8, a 401
/// from a token registry this probe does not log in to) means: keep the tag
/// schema's index too, which every client also reads.
pub(crate) async fn supports_referrers(
    registry: &Registry,
    repository: &str,
    digest: &str,
    credential: &Credential,
) -> bool {
    let Ok(client) = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
    else {
        return false;
    };
    let url = format!("{}{repository}/referrers/{digest}", registry.url());
    let mut request = client
        .get(url)
        .header(http::header::ACCEPT, crate::image::INDEX_MEDIA_TYPE);
    if let oci_client::secrets::RegistryAuth::Basic(user, password) = &credential.auth {
        request = request.basic_auth(user, Some(password));
    }
    match request.send().await {
        Ok(response) => {
            response.status() == reqwest::StatusCode::OK
                && response
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with(crate::image::INDEX_MEDIA_TYPE))
        }
        Err(_) => false,
    }
}

async fn push_manifest(
    client: &Client,
    reference: &Reference,
    blob: &crate::image::Blob,
) -> std::result::Result<String, OciDistributionError> {
    let content_type = http::HeaderValue::from_static(blob.media_type);
    // Raw bytes: the registry must store exactly what we digested.
    client
        .push_manifest_raw(reference, blob.data.clone(), content_type)
        .await
}

/// Turns an oci-client error into one that says what to do.
pub(crate) fn map_error(
    registry: &Registry,
    credential: &Credential,
    operation: &str,
    e: OciDistributionError,
) -> Error {
    let unauthorized = |status: u16| Error::Unauthorized {
        registry: registry.host.clone(),
        status,
        operation: operation.to_string(),
        credential: credential.source.clone(),
    };
    match e {
        OciDistributionError::RequestError(err) => {
            if let Some(status) = err.status().map(|s| s.as_u16())
                && (status == 401 || status == 403)
            {
                return unauthorized(status);
            }
            if err.is_connect() || err.is_timeout() {
                return Error::RegistryUnreachable {
                    registry: registry.host.clone(),
                    url: registry.url(),
                    message: error_chain(&err),
                };
            }
            Error::Registry {
                registry: registry.host.clone(),
                operation: operation.to_string(),
                message: error_chain(&err),
            }
        }
        OciDistributionError::UnauthorizedError { .. } => unauthorized(401),
        OciDistributionError::AuthenticationFailure(_) => unauthorized(401),
        OciDistributionError::ServerError { code, .. } if code == 401 || code == 403 => {
            unauthorized(code)
        }
        OciDistributionError::RegistryError { envelope, url } => {
            let text = format!("{envelope:?}");
            if text.contains("Unauthorized") || text.contains("Denied") {
                unauthorized(if text.contains("Denied") { 403 } else { 401 })
            } else {
                Error::Registry {
                    registry: registry.host.clone(),
                    operation: operation.to_string(),
                    message: format!("{url}: {text}"),
                }
            }
        }
        other => Error::Registry {
            registry: registry.host.clone(),
            operation: operation.to_string(),
            message: other.to_string(),
        },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_registries() {
        let r = Registry::parse("127.0.0.1:5000/okonomi").unwrap();
        assert_eq!(
            (r.host.as_str(), r.prefix.as_str(), r.insecure),
            ("127.0.0.1:5000", "okonomi", true)
        );
        assert_eq!(r.repository("hello"), "okonomi/hello");
        let g = Registry::parse("ghcr.io/me/fns").unwrap();
        assert!(!g.insecure);
        assert_eq!(g.repository("hello"), "me/fns/hello");
        assert!(Registry::parse("localhost:5000").unwrap().insecure);
        assert!(
            Registry::parse("http://reg.internal:80/x")
                .unwrap()
                .insecure
        );
        let err = Registry::parse("okonomi").unwrap_err().to_string();
        assert!(err.contains("must start with a host"), "{err}");
        assert!(Registry::parse("ghcr.io/Me").is_err());
    }
}
