//! The build stage: a function crate in, a [`BuiltImage`] (all blobs in memory) out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cache::LayerCache;
use crate::cargo::{self, CargoOutput, FunctionCrate};
use crate::error::{Error, Result};
use crate::image::{self, Blob, ImageMetadata, PlatformImage};
use crate::layer::Layer;
use crate::platform::Platform;
use crate::provenance::{self, BuildFacts};
use crate::sbom::{self, BaseFile, Inventory, SbomInput, Sboms};
use crate::source::{self, SourceInfo};

/// Where the host keeps its CA bundle (Debian's ca-certificates).
pub const HOST_CA_CERTIFICATES: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What to build and how.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The function crate's directory (or its Cargo.toml).
    pub path: PathBuf,
    /// Image name (last repository component); default: the Cargo package name.
    pub name: Option<String>,
    /// Platforms; several make an image index. Default: linux/amd64.
    pub platforms: Vec<Platform>,
    /// Cargo features to enable (e.g. `okonomi/mimalloc`).
    pub features: Vec<String>,
    /// Extra environment baked into the image config.
    pub env: Vec<(String, String)>,
    /// The CA bundle copied into the base layer.
    pub ca_certificates: PathBuf,
    /// Where cargo's output goes.
    pub cargo_output: CargoOutput,
    /// Reuse compressed binary layers from `<target-dir>/okonomi/layers`.
    pub layer_cache: bool,
}

impl BuildOptions {
    /// Defaults for the crate at `path`: linux/amd64, host CA bundle, cargo output on stderr.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        BuildOptions {
            path: path.into(),
            name: None,
            platforms: vec![Platform::LinuxAmd64],
            features: Vec::new(),
            env: Vec::new(),
            ca_certificates: PathBuf::from(HOST_CA_CERTIFICATES),
            cargo_output: CargoOutput::Inherit,
            layer_cache: true,
        }
    }
}

/// A built image, ready to publish or write as a layout.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// Image name (the repository's last component).
    pub name: String,
    /// The function crate.
    pub function: FunctionCrate,
    /// Epoch, revision and source used for labels.
    pub source: SourceInfo,
    /// One image per platform, in the order asked.
    pub platforms: Vec<PlatformImage>,
    /// The top-level document the digest names: the manifest of the only
    /// platform, or an index over several.
    pub top: Blob,
    /// What is attached to the image: its SBOMs and provenance.
    pub supply: Supply,
}

/// The documents that describe an image, made with it (see [`crate::sbom`]
/// and [`crate::provenance`]); signing them happens at publish time.
#[derive(Debug, Clone)]
pub struct Supply {
    /// SPDX and CycloneDX SBOMs.
    pub sboms: Sboms,
    /// The in-toto statement with the SLSA provenance predicate.
    pub provenance: Vec<u8>,
    /// What the provenance records.
    pub facts: BuildFacts,
    /// The crates linked into the binary.
    pub inventory: Inventory,
}

impl BuiltImage {
    /// The top-level manifest or index, which the digest names.
    pub fn top(&self) -> &Blob {
        &self.top
    }

    /// Whether the top-level document is an image index (several platforms).
    pub fn is_index(&self) -> bool {
        self.top.media_type == image::INDEX_MEDIA_TYPE
    }

    /// `sha256:…` of the top-level manifest or index.
    pub fn digest(&self) -> &str {
        &self.top().digest
    }

    /// Every distinct layer and config blob, `(digest, bytes)`, sorted by digest.
    pub fn blobs(&self) -> Vec<(&str, &[u8])> {
        let mut blobs = BTreeMap::new();
        for p in &self.platforms {
            for l in &p.layers {
                blobs.insert(l.digest.as_str(), l.compressed.as_slice());
            }
            blobs.insert(p.config.digest.as_str(), p.config.data.as_slice());
        }
        blobs.into_iter().collect()
    }

    /// Compressed size of one platform's image: config + layers + manifest.
    pub fn compressed_size(&self, platform: Platform) -> Option<u64> {
        let p = self.platforms.iter().find(|p| p.platform == platform)?;
        let layers: usize = p.layers.iter().map(|l| l.compressed.len()).sum();
        Some((layers + p.config.data.len() + p.manifest.data.len()) as u64)
    }
}

/// Builds the function at `options.path`: checks it is a function, compiles it for
/// each platform, lays it on the base layer and assembles manifests (and an index).
pub async fn build_function(options: &BuildOptions) -> Result<BuiltImage> {
    let function = cargo::inspect(&options.path).await?;
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| function.package.clone());
    let source = source::source_info(&function.dir, function.repository.as_deref()).await;
    let ca = tokio::fs::read(&options.ca_certificates)
        .await
        .map_err(|e| Error::io(&options.ca_certificates, e))?;
    let epoch = source.epoch;
    let base_files = BaseFile::list(&image::base_files(&ca));
    let base = blocking(
        move || image::base_layer(ca, epoch),
        &options.ca_certificates,
    )
    .await?;
    let mut labels = BTreeMap::new();
    labels.insert(
        "org.opencontainers.image.created".to_string(),
        image::rfc3339(epoch),
    );
    labels.insert("org.opencontainers.image.title".to_string(), name.clone());
    if let Some(revision) = &source.revision {
        labels.insert(
            "org.opencontainers.image.revision".to_string(),
            revision.clone(),
        );
    }
    if let Some(src) = &source.source {
        labels.insert("org.opencontainers.image.source".to_string(), src.clone());
    }
    let meta = ImageMetadata {
        binary_name: function.binary.clone(),
        epoch,
        env: options.env.clone(),
        labels: labels.clone(),
    };
    let platforms = if options.platforms.is_empty() {
        vec![Platform::LinuxAmd64]
    } else {
        let mut p = options.platforms.clone();
        p.dedup();
        p
    };
    // With several platforms, check every toolchain before compiling anything:
    // fail fast on a missing zig (compile checks each one again).
    if platforms.len() > 1 {
        for platform in &platforms {
            cargo::check_toolchain(*platform).await?;
        }
    }
    let mut images = Vec::with_capacity(platforms.len());
    for platform in platforms.iter().copied() {
        let executable =
            cargo::compile(&function, platform, &options.features, options.cargo_output).await?;
        let binary = tokio::fs::read(&executable)
            .await
            .map_err(|e| Error::io(&executable, e))?;
        let bin_name = function.binary.clone();
        let cache = options
            .layer_cache
            .then(|| LayerCache::new(function.target_dir.join("okonomi/layers")));
        let bin_layer = blocking(
            move || match cache {
                Some(cache) => cache.binary_layer(&bin_name, binary, epoch),
                None => image::binary_layer(&bin_name, binary, epoch),
            },
            &executable,
        )
        .await?;
        images.push(image::assemble(
            platform,
            vec![base.clone(), bin_layer],
            &meta,
        ));
    }
    let top = match images.as_slice() {
        [only] => only.manifest.clone(),
        several => image::index(several, &labels),
    };
    // After compiling: cargo has resolved (and locked) exactly what it built.
    // The inventory (cargo tree) and the toolchain facts (rustc -V, cargo -V,
    // git) are independent: ask for them at once, as a no-change rebuild waits
    // for both.
    let (inventory, facts) = tokio::join!(
        sbom::inventory(&function, &platforms, &options.features),
        provenance::gather(&function, &source, &platforms, &options.features),
    );
    let inventory = inventory?;
    let local_dirs: Vec<PathBuf> = inventory.local_dirs.iter().cloned().collect();
    let facts = facts.with_dirty(&function, &local_dirs).await;
    let sboms = Sboms::new(&SbomInput {
        name: &name,
        digest: &top.digest,
        epoch,
        inventory: &inventory,
        base: &base_files,
    });
    let provenance = provenance::statement(&facts, &name, &top.digest);
    Ok(BuiltImage {
        name,
        function,
        source,
        platforms: images,
        top,
        supply: Supply {
            sboms,
            provenance,
            facts,
            inventory,
        },
    })
}

async fn blocking(
    f: impl FnOnce() -> std::io::Result<Layer> + Send + 'static,
    path: &Path,
) -> Result<Layer> {
    // Compressing a few MiB takes tens of milliseconds: keep it off the async threads.
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::io(path, std::io::Error::other(e)))?
        .map_err(|e| Error::io(path, e))
}
