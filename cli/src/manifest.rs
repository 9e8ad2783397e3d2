//! The few okonomi.toml fields the CLI's build needs (function name, registry,
//! platforms). Kept behind [`read`] so it can switch to `okonomi_knative::manifest`.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// What build reads from okonomi.toml.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BuildSettings {
    /// `[function] name`.
    pub name: Option<String>,
    /// `[build] registry`.
    pub registry: Option<String>,
    /// `[build] platforms`.
    pub platforms: Vec<String>,
}

#[derive(Deserialize, Default)]
struct File {
    #[serde(default)]
    function: Function,
    #[serde(default)]
    build: Build,
}

#[derive(Deserialize, Default)]
struct Function {
    name: Option<String>,
}

#[derive(Deserialize, Default)]
struct Build {
    registry: Option<String>,
    #[serde(default)]
    platforms: Vec<String>,
}

/// Reads `DIR/okonomi.toml` if present (absent: defaults).
pub fn read(dir: &Path) -> anyhow::Result<BuildSettings> {
    let path = dir.join("okonomi.toml");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BuildSettings::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let file: File = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid okonomi.toml", path.display()))?;
    Ok(BuildSettings {
        name: file.function.name,
        registry: file.build.registry,
        platforms: file.build.platforms,
    })
}
