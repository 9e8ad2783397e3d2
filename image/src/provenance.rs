//! Build provenance: an in-toto statement (v1) with an SLSA v1 provenance
//! predicate saying who built the image, from which commit (and whether the
//! tree was dirty), with which okonomi, rustc and cargo, for which targets
//! and profile, and with which `SOURCE_DATE_EPOCH`.
//!
//! Like the image and its SBOMs, the statement is a pure function of the
//! sources and the toolchain: it records no start or finish time and no
//! invocation id, so two builds of the same commit give the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::json;
use tokio::process::Command;

use crate::cargo::FunctionCrate;
use crate::digest::sha256_digest;
use crate::platform::Platform;
use crate::source::SourceInfo;

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA v1 provenance's predicate type.
pub const SLSA_PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// Media type (and OCI artifact type) of an unsigned in-toto statement.
pub const STATEMENT_MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// The build type: where the parameters below are documented.
pub const BUILD_TYPE: &str =
    "https://github.com/okonomi-dev/okonomi/blob/main/docs/supply-chain.md#provenance";
/// The builder's id: the okonomi command run on the author's or CI's machine.
pub const BUILDER_ID: &str = "https://github.com/okonomi-dev/okonomi/okonomi-build";

/// What the provenance records, gathered while building.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildFacts {
    /// The package built.
    pub package: String,
    /// The source repository URL, if known.
    pub repository: Option<String>,
    /// `git rev-parse HEAD` where the crate is, if in git.
    pub commit: Option<String>,
    /// Whether the files that went into the build differ from the commit.
    pub dirty: Option<bool>,
    /// The crate's directory relative to the git top level (`functions/hello`).
    pub path_in_repository: Option<String>,
    /// Platforms built, e.g. `linux/amd64`.
    pub platforms: Vec<String>,
    /// rustc target triples.
    pub targets: Vec<String>,
    /// Cargo features enabled.
    pub features: Vec<String>,
    /// `release`.
    pub profile: String,
    /// `CARGO_PROFILE_RELEASE_*` overrides in the environment (they change the binary).
    pub profile_overrides: BTreeMap<String, String>,
    /// The epoch every timestamp in the image uses.
    pub source_date_epoch: u64,
    /// Where the epoch came from: `SOURCE_DATE_EPOCH`, `commit` or `none`.
    pub epoch_source: String,
    /// `rustc -V`.
    pub rustc: String,
    /// `cargo -V`.
    pub cargo: String,
    /// `sha256` hex of the workspace's Cargo.lock.
    pub cargo_lock_sha256: Option<String>,
}

/// Gathers [`BuildFacts`] for a build of `function` (all but `dirty`, which
/// needs the inventory's local directories: [`BuildFacts::with_dirty`]).
pub async fn gather(
    function: &FunctionCrate,
    source: &SourceInfo,
    platforms: &[Platform],
    features: &[String],
) -> BuildFacts {
    let dir = &function.dir;
    let run_dir = if function.in_workspace() {
        &function.workspace_root
    } else {
        &function.dir
    };
    let (commit, prefix, rustc, cargo) = tokio::join!(
        git(dir, &["rev-parse", "HEAD"]),
        git(dir, &["rev-parse", "--show-prefix"]),
        first_line(run_dir, "rustc", &["-V"]),
        first_line(run_dir, "cargo", &["-V"]),
    );
    let env_epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    let epoch_source = if env_epoch.is_some() {
        "SOURCE_DATE_EPOCH"
    } else if source.revision.is_some() {
        "commit"
    } else {
        "none"
    };
    let profile_overrides = std::env::vars()
        .filter(|(k, _)| k.starts_with("CARGO_PROFILE_RELEASE_"))
        .collect();
    let cargo_lock_sha256 = tokio::fs::read(function.workspace_root.join("Cargo.lock"))
        .await
        .ok()
        .map(|bytes| {
            sha256_digest(&bytes)
                .trim_start_matches("sha256:")
                .to_string()
        });
    BuildFacts {
        package: function.package.clone(),
        repository: source.source.clone(),
        commit,
        dirty: None,
        path_in_repository: prefix.map(|p| p.trim_end_matches('/').to_string()),
        platforms: platforms.iter().map(Platform::to_string).collect(),
        targets: platforms
            .iter()
            .map(|p| p.rust_target().to_string())
            .collect(),
        features: features.to_vec(),
        profile: "release".into(),
        profile_overrides,
        source_date_epoch: source.epoch,
        epoch_source: epoch_source.into(),
        rustc,
        cargo,
        cargo_lock_sha256,
    }
}

impl BuildFacts {
    /// Sets `dirty`: whether any of `paths` (the crate's local sources: it and
    /// its path dependencies), Cargo.lock or the workspace manifest differ from
    /// the commit. Unknown outside git.
    pub async fn with_dirty(mut self, function: &FunctionCrate, paths: &[PathBuf]) -> Self {
        if self.commit.is_none() {
            return self;
        }
        let mut watched: Vec<PathBuf> = paths.to_vec();
        watched.push(function.dir.clone());
        watched.push(function.workspace_root.join("Cargo.lock"));
        watched.push(function.workspace_root.join("Cargo.toml"));
        watched.sort();
        watched.dedup();
        let mut args: Vec<String> = vec!["status".into(), "--porcelain".into(), "--".into()];
        args.extend(watched.iter().map(|p| p.display().to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.dirty = git_raw(&function.dir, &refs)
            .await
            .map(|out| !out.trim().is_empty());
        self
    }
}

/// The in-toto statement for the image `name` at `digest`, as JSON bytes.
pub fn statement(facts: &BuildFacts, name: &str, digest: &str) -> Vec<u8> {
    let mut source = json!({});
    if let Some(repository) = &facts.repository {
        source["uri"] = json!(repository);
    }
    if let Some(commit) = &facts.commit {
        source["commit"] = json!(commit);
    }
    if let Some(dirty) = facts.dirty {
        source["dirty"] = json!(dirty);
    }
    if let Some(path) = &facts.path_in_repository {
        source["path"] = json!(path);
    }
    let mut resolved = Vec::new();
    if let Some(commit) = &facts.commit {
        // Without a known repository URL the commit alone names the source.
        resolved.push(match &facts.repository {
            Some(r) => json!({"uri": format!("git+{r}@{commit}"), "digest": {"gitCommit": commit}}),
            None => json!({"name": "source", "digest": {"gitCommit": commit}}),
        });
    }
    if let Some(lock) = &facts.cargo_lock_sha256 {
        resolved.push(json!({"name": "Cargo.lock", "digest": {"sha256": lock}}));
    }
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicateType": SLSA_PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "source": source,
                    "package": facts.package,
                    "platforms": facts.platforms,
                    "features": facts.features,
                    "profile": facts.profile,
                },
                "internalParameters": {
                    "targets": facts.targets,
                    "SOURCE_DATE_EPOCH": facts.source_date_epoch,
                    "epochSource": facts.epoch_source,
                    "profileOverrides": facts.profile_overrides,
                },
                "resolvedDependencies": resolved,
            },
            "runDetails": {
                "builder": {
                    "id": BUILDER_ID,
                    "version": {
                        "okonomi": env!("CARGO_PKG_VERSION"),
                        "rustc": facts.rustc,
                        "cargo": facts.cargo,
                    },
                },
                // No startedOn/finishedOn or invocationId: they would make
                // every build's provenance differ.
                "metadata": {},
            },
        },
    });
    serde_json::to_vec_pretty(&statement).unwrap_or_default()
}

/// `sha256:…` the statement's first subject names, if any.
pub fn subject_digest(statement: &serde_json::Value) -> Option<String> {
    statement["subject"][0]["digest"]["sha256"]
        .as_str()
        .map(|h| format!("sha256:{h}"))
}

async fn first_line(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await;
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        _ => "unknown".into(),
    }
}

async fn git(dir: &Path, args: &[&str]) -> Option<String> {
    git_raw(dir, args)
        .await
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

async fn git_raw(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_names_the_image_and_the_build() {
        let facts = BuildFacts {
            package: "hello".into(),
            repository: Some("https://github.com/okonomi-dev/okonomi".into()),
            commit: Some("abc".into()),
            dirty: Some(false),
            platforms: vec!["linux/amd64".into()],
            targets: vec!["x86_64-unknown-linux-musl".into()],
            profile: "release".into(),
            source_date_epoch: 7,
            epoch_source: "commit".into(),
            rustc: "rustc 1.95.0".into(),
            cargo: "cargo 1.95.0".into(),
            ..Default::default()
        };
        let bytes = statement(&facts, "hello", "sha256:0123");
        assert_eq!(bytes, statement(&facts, "hello", "sha256:0123"));
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["_type"], STATEMENT_TYPE);
        assert_eq!(value["predicateType"], SLSA_PREDICATE_TYPE);
        assert_eq!(subject_digest(&value).as_deref(), Some("sha256:0123"));
        let p = &value["predicate"];
        assert_eq!(
            p["buildDefinition"]["externalParameters"]["source"]["commit"],
            "abc"
        );
        assert_eq!(
            p["buildDefinition"]["externalParameters"]["source"]["dirty"],
            false
        );
        assert_eq!(
            p["buildDefinition"]["internalParameters"]["SOURCE_DATE_EPOCH"],
            7
        );
        assert_eq!(
            p["runDetails"]["builder"]["version"]["rustc"],
            "rustc 1.95.0"
        );
        assert_eq!(
            p["buildDefinition"]["resolvedDependencies"][0]["uri"],
            "git+https://github.com/okonomi-dev/okonomi@abc"
        );
    }
}
