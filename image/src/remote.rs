//! One repository in a registry, spoken to over the OCI distribution API with
//! oci-client: the blob, manifest and referrers calls that publishing, attaching
//! and verifying share, with errors that say what to do.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::{Client, Reference, RegistryOperation};

use crate::credentials::{self, Credential};
use crate::error::{Error, Result};
use crate::image::Blob;
use crate::publish::Registry;

/// What a connection is for (push needs write access).
pub use oci_client::RegistryOperation as Operation;

/// The largest manifest, index or attestation okonomi reads (a stranger's registry
/// could send anything): 4 MiB, the limit the distribution spec suggests for manifests.
pub const MAX_DOCUMENT: usize = 4 * 1024 * 1024;

/// Manifest media types okonomi asks for when reading one.
pub const ACCEPTED_MANIFESTS: &[&str] = &[
    crate::image::MANIFEST_MEDIA_TYPE,
    crate::image::INDEX_MEDIA_TYPE,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// A repository (`HOST/REPO`) with an authenticated client.
pub struct Remote {
    client: Client,
    /// The registry.
    pub registry: Registry,
    /// The repository under the host, e.g. `okonomi/hello`.
    pub repository: String,
    credential: Credential,
}

impl Remote {
    /// Connects to `repository` on `registry` for `operation`, with `credential`
    /// or, when none is given, what the docker configuration holds for the host.
    pub async fn connect(
        registry: &Registry,
        repository: &str,
        credential: Option<Credential>,
        operation: RegistryOperation,
    ) -> Result<Self> {
        let credential = match credential {
            Some(c) => c,
            None => credentials::lookup(&registry.host).await?,
        };
        let client = Client::new(ClientConfig {
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
        });
        let remote = Remote {
            client,
            registry: registry.clone(),
            repository: repository.to_string(),
            credential,
        };
        remote
            .client
            .auth(&remote.tag("latest"), &remote.credential.auth, operation)
            .await
            .map_err(|e| remote.fail("authenticate", e))?;
        Ok(remote)
    }

    /// Where the credentials came from, for messages.
    pub fn credential_source(&self) -> &str {
        &self.credential.source
    }

    /// `HOST/REPO`, the name cosign signs as `docker-reference`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry.host, self.repository)
    }

    /// A reference to `tag` in this repository.
    pub fn tag(&self, tag: &str) -> Reference {
        Reference::with_tag(
            self.registry.host.clone(),
            self.repository.clone(),
            tag.to_string(),
        )
    }

    /// A reference to `digest` in this repository.
    pub fn digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.registry.host.clone(),
            self.repository.clone(),
            digest.to_string(),
        )
    }

    /// Uploads a blob unless the registry has it (HEAD first); true when uploaded.
    pub async fn push_blob(&self, digest: &str, data: &[u8]) -> Result<bool> {
        let at = self.tag("latest");
        if self
            .client
            .blob_exists(&at, digest)
            .await
            .map_err(|e| self.fail("check blob (HEAD)", e))?
        {
            return Ok(false);
        }
        self.client
            .push_blob(&at, data.to_vec(), digest)
            .await
            .map_err(|e| self.fail("upload blob", e))?;
        Ok(true)
    }

    /// Puts a manifest or index under `reference` (a tag or its digest).
    pub async fn put_manifest(&self, reference: &Reference, blob: &Blob) -> Result<()> {
        let content_type = http::HeaderValue::from_static(blob.media_type);
        // Raw bytes: the registry must store exactly what we digested.
        self.client
            .push_manifest_raw(reference, blob.data.clone(), content_type)
            .await
            .map_err(|e| self.fail(&format!("put manifest {}", describe(reference)), e))?;
        Ok(())
    }

    /// The manifest or index at `reference` and its digest, or none when the
    /// registry has no such tag or digest.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<Option<(Vec<u8>, String)>> {
        match self
            .client
            .pull_manifest_raw(reference, &self.credential.auth, ACCEPTED_MANIFESTS)
            .await
        {
            Ok((body, _)) if body.len() > MAX_DOCUMENT => Err(Error::Registry {
                registry: self.registry.host.clone(),
                operation: format!("get manifest {}", describe(reference)),
                message: format!(
                    "the manifest is {} bytes, over the {MAX_DOCUMENT} okonomi reads",
                    body.len()
                ),
            }),
            Ok((body, digest)) => Ok(Some((body.to_vec(), digest))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.fail(&format!("get manifest {}", describe(reference)), e)),
        }
    }

    /// A small blob (an SBOM, a signature payload, an attestation), checked against
    /// its digest and refused past `MAX_DOCUMENT` bytes.
    pub async fn get_blob(&self, digest: &str, size: u64) -> Result<Vec<u8>> {
        let operation = format!("get blob {digest}");
        if size > MAX_DOCUMENT as u64 {
            return Err(Error::Registry {
                registry: self.registry.host.clone(),
                operation,
                message: format!("the blob is {size} bytes, over the {MAX_DOCUMENT} okonomi reads"),
            });
        }
        self.get_large_blob(digest).await
    }

    /// A blob of any size (a layer), checked against its digest.
    pub async fn get_large_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let operation = format!("get blob {digest}");
        let mut data = Vec::new();
        let descriptor = oci_client::manifest::OciDescriptor {
            digest: digest.to_string(),
            ..Default::default()
        };
        self.client
            .pull_blob(&self.tag("latest"), &descriptor, &mut data)
            .await
            .map_err(|e| self.fail(&operation, e))?;
        // oci-client checks the digest as it reads; check again, it costs little.
        if crate::digest::sha256_digest(&data) != digest {
            return Err(Error::Registry {
                registry: self.registry.host.clone(),
                operation,
                message: "the registry sent bytes that do not match the digest".into(),
            });
        }
        Ok(data)
    }

    /// The referrers of `digest` (the OCI 1.1 referrers API, or the tag schema
    /// when the registry has no such API), as descriptors.
    pub async fn referrers(&self, digest: &str) -> Result<Vec<serde_json::Value>> {
        let index = self
            .client
            .pull_referrers(&self.digest(digest), None)
            .await
            .map_err(|e| self.fail(&format!("list referrers of {digest}"), e))?;
        let index = serde_json::to_value(index).unwrap_or_default();
        Ok(index["manifests"].as_array().cloned().unwrap_or_default())
    }

    /// Turns an oci-client error into one that says what to do.
    pub fn fail(&self, operation: &str, e: OciDistributionError) -> Error {
        map_error(&self.registry, &self.credential, operation, e)
    }
}

fn describe(reference: &Reference) -> String {
    match (reference.tag(), reference.digest()) {
        (_, Some(d)) => d.to_string(),
        (Some(t), None) => format!(":{t}"),
        (None, None) => String::new(),
    }
}

fn is_not_found(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::BlobUnknown
            )
        }),
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        _ => false,
    }
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
