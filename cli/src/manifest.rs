//! The few okonomi.toml fields the CLI's build needs (function name, registry,
//! platforms), read through `okonomi_knative::manifest`, which owns the format
//! and checks every value.

use std::path::Path;

use anyhow::Context;
use okonomi_knative::manifest::{FunctionManifest, MANIFEST_FILE};

/// What build reads from okonomi.toml.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BuildSettings {
    /// `[function] name` (the Cargo package name when left out).
    pub name: Option<String>,
    /// `[build] registry`.
    pub registry: Option<String>,
    /// `[build] platforms`.
    pub platforms: Vec<String>,
}

/// Reads `DIR/okonomi.toml` if present (absent: defaults, the package name is the image name).
pub fn read(dir: &Path) -> anyhow::Result<BuildSettings> {
    if !dir.join(MANIFEST_FILE).is_file() {
        return Ok(BuildSettings::default());
    }
    let manifest = FunctionManifest::load(dir)
        .with_context(|| format!("reading {}", dir.join(MANIFEST_FILE).display()))?;
    Ok(BuildSettings {
        name: Some(manifest.function.name).filter(|n| !n.is_empty()),
        registry: manifest.build.registry,
        platforms: manifest.build.platforms,
    })
}
