//! Assembling layers into an OCI image: config, manifest, and an index when
//! there are several platforms. Everything here is pure and deterministic.

use std::collections::BTreeMap;

use serde_json::json;

use crate::digest::sha256_digest;
use crate::layer::{Layer, LayerBuilder, NONROOT_ID};
use crate::platform::Platform;

/// OCI media type of an image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI media type of an image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// OCI media type of an image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// OCI media type of a gzip layer.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Where the function binary lives in the image.
pub const APP_DIR: &str = "/app";

/// A content-addressed JSON document (config, manifest or index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Its media type.
    pub media_type: &'static str,
    /// `sha256:…` of `data`.
    pub digest: String,
    /// The exact bytes that are pushed and digested.
    pub data: Vec<u8>,
}

impl Blob {
    pub(crate) fn json(media_type: &'static str, value: &serde_json::Value) -> Self {
        // serde_json writes a Value deterministically (sorted keys, or insertion
        // order under preserve_order): the same value gives the same bytes.
        let data = serde_json::to_vec(value).unwrap_or_default();
        Blob {
            media_type,
            digest: sha256_digest(&data),
            data,
        }
    }

    /// An OCI descriptor pointing at this blob.
    pub fn descriptor(&self) -> serde_json::Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.data.len()})
    }
}

/// What goes into an image besides the binary.
#[derive(Debug, Clone, Default)]
pub struct ImageMetadata {
    /// Name of the executable inside [`APP_DIR`].
    pub binary_name: String,
    /// Seconds since the epoch used for every mtime and `created`.
    pub epoch: u64,
    /// Extra environment, in order.
    pub env: Vec<(String, String)>,
    /// Image labels (the OCI annotations source, revision, created are added here).
    pub labels: BTreeMap<String, String>,
}

/// The image for one platform.
#[derive(Debug, Clone)]
pub struct PlatformImage {
    /// The platform.
    pub platform: Platform,
    /// Layers, base first.
    pub layers: Vec<Layer>,
    /// The image config.
    pub config: Blob,
    /// The image manifest.
    pub manifest: Blob,
}

/// `/etc/passwd` of the base layer: root and distroless's nonroot, no login shells.
pub const PASSWD: &[u8] =
    b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
/// `/etc/group` of the base layer.
pub const GROUP: &[u8] = b"root:x:0:\nnonroot:x:65532:\n";
/// `/etc/nsswitch.conf` of the base layer: hosts from files, then DNS.
pub const NSSWITCH: &[u8] = b"hosts: files dns\n";
/// Where the CA bundle sits in the image.
pub const CA_CERTIFICATES_PATH: &str = "etc/ssl/certs/ca-certificates.crt";

/// The regular files of the base layer, `(path, contents)`, in path order:
/// what the layer holds and what the SBOM lists as its contents.
pub fn base_files(ca_certificates: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("etc/group", GROUP.to_vec()),
        ("etc/nsswitch.conf", NSSWITCH.to_vec()),
        ("etc/passwd", PASSWD.to_vec()),
        (CA_CERTIFICATES_PATH, ca_certificates.to_vec()),
    ]
}

/// The base layer: no shell, just what a static binary expects of a Linux system.
pub fn base_layer(ca_certificates: Vec<u8>, epoch: u64) -> std::io::Result<Layer> {
    let mut base = LayerBuilder::new();
    for (path, data) in base_files(&ca_certificates) {
        base.file(path, data, 0o644);
    }
    base.dir("tmp", 0o1777, 0)
        .dir("root", 0o700, 0)
        .dir("home/nonroot", 0o700, NONROOT_ID);
    base.finish(epoch, "okonomi base: passwd, group, CA certificates, /tmp")
}

/// The layer holding the function binary at `/app/NAME`.
pub fn binary_layer(name: &str, binary: Vec<u8>, epoch: u64) -> std::io::Result<Layer> {
    let mut layer = LayerBuilder::new();
    layer.file(&format!("{APP_DIR}/{name}"), binary, 0o755);
    layer.finish(epoch, &format!("okonomi function binary {APP_DIR}/{name}"))
}

/// RFC 3339 form of an epoch, as OCI's `created` wants it.
pub fn rfc3339(epoch: u64) -> String {
    jiff::Timestamp::from_second(i64::try_from(epoch).unwrap_or(0))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Builds config and manifest for one platform from its layers.
pub fn assemble(platform: Platform, layers: Vec<Layer>, meta: &ImageMetadata) -> PlatformImage {
    let created = rfc3339(meta.epoch);
    let mut env = vec![
        format!("PATH={APP_DIR}"),
        "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt".to_string(),
    ];
    env.extend(meta.env.iter().map(|(k, v)| format!("{k}={v}")));
    let history: Vec<_> = layers
        .iter()
        .map(|l| json!({"created": created, "created_by": "okonomi build", "comment": l.comment}))
        .collect();
    let config = Blob::json(
        CONFIG_MEDIA_TYPE,
        &json!({
            "created": created,
            "architecture": platform.architecture(),
            "os": platform.os(),
            "config": {
                "User": format!("{NONROOT_ID}:{NONROOT_ID}"),
                "Entrypoint": [format!("{APP_DIR}/{}", meta.binary_name)],
                "Env": env,
                "WorkingDir": "/",
                "Labels": meta.labels,
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": history,
        }),
    );
    let manifest = Blob::json(
        MANIFEST_MEDIA_TYPE,
        &json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": config.descriptor(),
            "layers": layers.iter().map(|l| json!({
                "mediaType": LAYER_MEDIA_TYPE,
                "digest": l.digest,
                "size": l.compressed.len(),
            })).collect::<Vec<_>>(),
            "annotations": meta.labels,
        }),
    );
    PlatformImage {
        platform,
        layers,
        config,
        manifest,
    }
}

/// An image index over several platform manifests.
pub fn index(images: &[PlatformImage], annotations: &BTreeMap<String, String>) -> Blob {
    Blob::json(
        INDEX_MEDIA_TYPE,
        &json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": images.iter().map(|i| {
                let mut d = i.manifest.descriptor();
                d["platform"] = json!({"architecture": i.platform.architecture(), "os": i.platform.os()});
                d
            }).collect::<Vec<_>>(),
            "annotations": annotations,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_user_entrypoint_and_diff_ids() {
        let base = base_layer(b"CERT".to_vec(), 7).unwrap();
        let bin = binary_layer("hello", b"\x7fELF".to_vec(), 7).unwrap();
        let meta = ImageMetadata {
            binary_name: "hello".into(),
            epoch: 7,
            ..Default::default()
        };
        let image = assemble(Platform::LinuxAmd64, vec![base.clone(), bin.clone()], &meta);
        let config: serde_json::Value = serde_json::from_slice(&image.config.data).unwrap();
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["Entrypoint"][0], "/app/hello");
        assert_eq!(config["created"], "1970-01-01T00:00:07Z");
        assert_eq!(config["rootfs"]["diff_ids"][1], bin.diff_id.as_str());
        let manifest: serde_json::Value = serde_json::from_slice(&image.manifest.data).unwrap();
        assert_eq!(manifest["config"]["digest"], image.config.digest.as_str());
        assert_eq!(manifest["layers"][0]["digest"], base.digest.as_str());
        let again = assemble(Platform::LinuxAmd64, vec![base, bin], &meta);
        assert_eq!(again.manifest, image.manifest);
        let idx = index(&[image, again], &BTreeMap::new());
        let idx: serde_json::Value = serde_json::from_slice(&idx.data).unwrap();
        assert_eq!(idx["manifests"][0]["platform"]["architecture"], "amd64");
    }
}
