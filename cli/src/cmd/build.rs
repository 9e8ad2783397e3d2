//! `okonomi build`: compile a function, assemble its image, push it (or write an
//! OCI layout) and print `REGISTRY/NAME@sha256:…` on stdout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use okonomi_image::digest::sha256_digest;
use okonomi_image::signing::{self, PrivateKey};
use okonomi_image::{BuildOptions, BuiltImage, CargoOutput, Platform, PublishOptions, Registry};
use serde::Serialize;

use crate::global::Global;
use crate::{manifest, progress};

const EXAMPLES: &str = "\
Examples:
  okonomi build functions/hello --registry 127.0.0.1:5000/okonomi
  OKONOMI_REGISTRY=ghcr.io/me okonomi build                 # the crate in .
  okonomi build --platform linux/amd64,linux/arm64          # an image index
  okonomi build --local ./layout                            # OCI layout, no push
  skopeo inspect oci:./layout:latest

Stdout carries only the image reference (REGISTRY/NAME@sha256:…); progress goes to stderr.
The registry comes from --registry, OKONOMI_REGISTRY, or [build] registry in okonomi.toml.
Registries on localhost/127.0.0.1 are spoken to over plain HTTP; credentials come from
~/.docker/config.json (auths, credHelpers, credsStore). Builds are reproducible: mtimes and
`created` come from SOURCE_DATE_EPOCH, else the crate's last commit time, else 0.
arm64 needs `pip install ziglang` and `cargo install cargo-zigbuild`.

Every image gets an SPDX and a CycloneDX SBOM and an SLSA provenance statement, attached
as OCI referrers. With --sign KEY (from `okonomi keygen`; password in
OKONOMI_SIGNING_PASSWORD) the digest is signed in cosign's format and the SBOMs and
provenance become signed attestations: `okonomi verify IMAGE --key okonomi.pub` or
`cosign verify --key okonomi.pub IMAGE` checks them. See docs/supply-chain.md.";

/// Arguments of `okonomi build`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The function crate (directory with Cargo.toml).
    #[arg(default_value = ".")]
    pub path: PathBuf,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Write an OCI image layout to DIR instead of pushing.
    #[arg(long, value_name = "DIR", conflicts_with = "registry")]
    pub local: Option<PathBuf>,
    /// Sign the image digest and its SBOM and provenance attestations with this
    /// private key (`okonomi keygen`), in cosign's format; the key's password
    /// comes from OKONOMI_SIGNING_PASSWORD.
    #[arg(long, env = "OKONOMI_SIGNING_KEY", value_name = "KEY")]
    pub sign: Option<PathBuf>,
}

/// Where and how to build and push: shared by build, resolve and deploy.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Registry and repository prefix, e.g. 127.0.0.1:5000/okonomi or ghcr.io/me.
    #[arg(long, env = "OKONOMI_REGISTRY", value_name = "REGISTRY")]
    pub registry: Option<String>,
    /// Platforms to build (comma-separated or repeated): linux/amd64, linux/arm64.
    #[arg(long = "platform", value_delimiter = ',', value_name = "OS/ARCH")]
    pub platforms: Vec<String>,
    /// Tag to push as well as the digest.
    #[arg(long, default_value = "latest")]
    pub tag: String,
    /// Speak plain HTTP to this registry even though it is not on loopback.
    #[arg(long)]
    pub insecure_registry: bool,
    /// Cargo features to enable for the function (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub features: Vec<String>,
}

/// What build prints with `-o json|yaml`.
#[derive(Debug, Serialize)]
pub struct BuildReport {
    /// Image reference by digest (or `oci:DIR:TAG` for --local).
    pub reference: String,
    /// Top-level digest.
    pub digest: String,
    /// Platforms built.
    pub platforms: Vec<String>,
    /// Compressed size of each platform's image.
    pub compressed_bytes: Vec<u64>,
    /// Blob bytes uploaded (0 for --local).
    pub bytes_uploaded: u64,
    /// Blobs the registry already had.
    pub blobs_skipped: usize,
    /// `sha256:…` of the SPDX SBOM document.
    pub spdx_digest: String,
    /// `sha256:…` of the CycloneDX SBOM document.
    pub cyclonedx_digest: String,
    /// `sha256:…` of the provenance statement.
    pub provenance_digest: String,
    /// Whether the digest was signed.
    pub signed: bool,
    /// What was attached to the image in the registry.
    pub attached: Vec<AttachedReport>,
}

/// One attachment in the build report.
#[derive(Debug, Serialize)]
pub struct AttachedReport {
    /// What it is.
    pub kind: String,
    /// Its manifest digest.
    pub digest: String,
    /// cosign's tag for it, if any.
    pub tag: Option<String>,
}

/// Runs `okonomi build`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    // Know where the image goes before spending a build on it.
    let registry = match &args.local {
        Some(_) => None,
        None => {
            let settings = manifest::read(&args.path)?;
            Some(registry(&args.target, settings.registry.as_deref())?)
        }
    };
    // A wrong password should cost a second, not a build.
    let key = match &args.sign {
        Some(path) => Some(signing_key(path)?),
        None => None,
    };
    let image = build(&args.path, &args.target, global).await?;
    let report = match (&args.local, registry) {
        (Some(dir), _) => {
            let signed = key.is_some();
            let written =
                okonomi_image::write_layout_signed(&image, dir, &args.target.tag, key).await?;
            global.status(
                "Wrote",
                format!("OCI layout {}", written.transport_reference()),
            );
            let mut r = report(&image, written.transport_reference(), 0, 0);
            r.signed = signed;
            r
        }
        (None, Some(registry)) => {
            let signed = key.is_some();
            let published = publish_signed(&image, &registry, &args.target, global, key).await?;
            let mut r = report(
                &image,
                published.reference,
                published.bytes_uploaded,
                published.blobs_skipped,
            );
            r.signed = signed;
            r.attached = published
                .attached
                .into_iter()
                .map(|a| AttachedReport {
                    kind: a.kind,
                    digest: a.digest,
                    tag: a.tag,
                })
                .collect();
            r
        }
        (None, None) => return Err(okonomi_image::Error::NoRegistry.into()),
    };
    crate::output::print(global, &report, |r| r.reference.clone())?;
    Ok(ExitCode::SUCCESS)
}

fn report(
    image: &BuiltImage,
    reference: String,
    bytes_uploaded: u64,
    blobs_skipped: usize,
) -> BuildReport {
    BuildReport {
        reference,
        digest: image.digest().to_string(),
        platforms: image
            .platforms
            .iter()
            .map(|p| p.platform.to_string())
            .collect(),
        compressed_bytes: image
            .platforms
            .iter()
            .filter_map(|p| image.compressed_size(p.platform))
            .collect(),
        bytes_uploaded,
        blobs_skipped,
        spdx_digest: sha256_digest(&image.supply.sboms.spdx),
        cyclonedx_digest: sha256_digest(&image.supply.sboms.cyclonedx),
        provenance_digest: sha256_digest(&image.supply.provenance),
        signed: false,
        attached: Vec::new(),
    }
}

/// Reads and decrypts the signing key, its password from OKONOMI_SIGNING_PASSWORD.
pub fn signing_key(path: &Path) -> anyhow::Result<PrivateKey> {
    let password = std::env::var(signing::PASSWORD_ENV).map_err(|_| {
        anyhow::anyhow!(
            "--sign {}: set {} to the key's password (the one given to `okonomi keygen`)",
            path.display(),
            signing::PASSWORD_ENV
        )
    })?;
    Ok(PrivateKey::read(path, password.as_bytes())?)
}

/// Builds the function at `path` with name and platforms from okonomi.toml unless overridden.
pub async fn build(
    path: &Path,
    target: &TargetArgs,
    global: &Global,
) -> anyhow::Result<BuiltImage> {
    let settings = manifest::read(path)?;
    let platform_names = if target.platforms.is_empty() {
        settings.platforms.clone()
    } else {
        target.platforms.clone()
    };
    let platforms = platform_names
        .iter()
        .map(|p| p.parse::<Platform>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = BuildOptions::new(path);
    options.name = settings.name.clone();
    if !platforms.is_empty() {
        options.platforms = platforms;
    }
    options.features = target.features.clone();
    options.cargo_output = CargoOutput::Inherit;
    let shown: Vec<String> = options.platforms.iter().map(Platform::to_string).collect();
    global.status(
        "Building",
        format!("{} for {}", path.display(), shown.join(", ")),
    );
    let started = std::time::Instant::now();
    let image = okonomi_image::build_function(&options).await?;
    let size = image
        .platforms
        .first()
        .and_then(|p| image.compressed_size(p.platform))
        .unwrap_or(0);
    global.status(
        "Built",
        format!(
            "{} {} ({} compressed) in {:.1}s",
            image.name,
            image.digest(),
            human_bytes(size),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(image)
}

/// The registry from flags/env, else okonomi.toml.
pub fn registry(target: &TargetArgs, from_manifest: Option<&str>) -> anyhow::Result<Registry> {
    let text = target
        .registry
        .as_deref()
        .or(from_manifest)
        .ok_or(okonomi_image::Error::NoRegistry)?;
    let mut registry = Registry::parse(text)?;
    registry.insecure |= target.insecure_registry;
    Ok(registry)
}

/// Pushes with a progress bar and a summary line (attaching the SBOMs and
/// provenance, unsigned).
pub async fn publish(
    image: &BuiltImage,
    registry: &Registry,
    target: &TargetArgs,
    global: &Global,
) -> anyhow::Result<okonomi_image::Published> {
    publish_signed(image, registry, target, global, None).await
}

/// [`publish`], signing the digest and the attestations with `key`.
pub async fn publish_signed(
    image: &BuiltImage,
    registry: &Registry,
    target: &TargetArgs,
    global: &Global,
    key: Option<PrivateKey>,
) -> anyhow::Result<okonomi_image::Published> {
    let (bar, callback) = progress::push_progress(global);
    let options = PublishOptions {
        tag: Some(target.tag.clone()),
        credential: None,
        progress: Some(callback),
        signing: key,
    };
    let result = okonomi_image::publish(image, registry, &options).await;
    bar.finish_and_clear();
    let published = result.with_context(|| format!("pushing {} to {registry}", image.name))?;
    global.status(
        "Pushed",
        format!(
            "{} uploaded in {} blobs, {} already present",
            human_bytes(published.bytes_uploaded),
            published.blobs_uploaded,
            published.blobs_skipped
        ),
    );
    let kinds: Vec<&str> = published.attached.iter().map(|a| a.kind.as_str()).collect();
    global.status(
        "Attached",
        format!(
            "{} ({})",
            kinds.join(", "),
            if published.referrers_api {
                "OCI referrers API".to_string()
            } else {
                format!(
                    "no referrers API: listed under tag {}",
                    okonomi_image::attach::referrers_tag(&published.digest)
                )
            }
        ),
    );
    Ok(published)
}

/// `1.2 MiB` style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
