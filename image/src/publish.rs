//! Publishing a built image over the OCI distribution API: blobs the registry
//! already has are skipped (HEAD), the rest uploaded, then manifests, then the tag.

use std::fmt;
use std::sync::Arc;

use oci_client::RegistryOperation;

use crate::build::BuiltImage;
use crate::credentials::Credential;
use crate::error::{Error, Result};
use crate::remote::Remote;

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
}

/// Pushes `image` to `registry` as `REGISTRY/NAME` and returns its digest reference.
pub async fn publish(
    image: &BuiltImage,
    registry: &Registry,
    options: &PublishOptions,
) -> Result<Published> {
    let remote = Remote::connect(
        registry,
        &registry.repository(&image.name),
        options.credential.clone(),
        RegistryOperation::Push,
    )
    .await?;
    publish_to(image, &remote, options).await
}

/// Pushes `image` into the repository `remote` is connected to.
pub async fn publish_to(
    image: &BuiltImage,
    remote: &Remote,
    options: &PublishOptions,
) -> Result<Published> {
    let tag = options.tag.clone().unwrap_or_else(|| "latest".to_string());
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
        credential_source: remote.credential_source().to_string(),
    };
    for (digest, data) in blobs {
        let size = data.len() as u64;
        if remote.push_blob(digest, data).await? {
            published.blobs_uploaded += 1;
            published.bytes_uploaded += size;
            notify(PushEvent::Uploaded {
                digest: digest.to_string(),
                size,
            });
        } else {
            published.blobs_skipped += 1;
            notify(PushEvent::Skipped {
                digest: digest.to_string(),
                size,
            });
        }
    }
    if image.is_index() {
        for platform in &image.platforms {
            remote
                .put_manifest(
                    &remote.digest(&platform.manifest.digest),
                    &platform.manifest,
                )
                .await?;
            notify(PushEvent::Manifest {
                digest: platform.manifest.digest.clone(),
            });
        }
    }
    remote.put_manifest(&remote.tag(&tag), image.top()).await?;
    notify(PushEvent::Manifest {
        digest: image.digest().to_string(),
    });
    published.reference = format!("{}@{}", remote.name(), image.digest());
    Ok(published)
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
