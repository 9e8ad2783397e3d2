//! `okonomi://PATH` references: a function crate of the local checkout,
//! built with cargo on deploy and run as a process.
//!
//! A revision is immutable, but the checkout it was built from is not: the
//! binary cargo builds for a revision is kept in the state dir
//! ([`BinaryStore`]), so that after a restart
//! the revision runs the very binary it ran before.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::Launch;
use super::binaries::BinaryStore;
use crate::error::{Error, Result};

/// The scheme of local function references.
pub const SCHEME: &str = "okonomi://";

/// What a build made: how to run it, and the kept binary it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// Runs the kept binary, from the crate's directory.
    pub launch: Launch,
    /// The kept binary's name in the [`BinaryStore`] (`sha256-HEX`).
    pub binary: String,
}

/// Builds the crate at `path` (relative to `source_root` unless absolute)
/// and returns how to run the binary cargo built, where cargo left it.
/// `profile` is a cargo profile name (`release`, `dev`).
pub async fn build(path: &str, source_root: &Path, profile: &str) -> Result<Launch> {
    let (dir, executable) = cargo_build(path, source_root, profile).await?;
    Ok(launch(dir, executable))
}

/// Like [`build`], but keeps the binary in `store` and runs the kept copy,
/// which the next build cannot overwrite.
pub async fn build_and_keep(
    path: &str,
    source_root: &Path,
    profile: &str,
    store: &BinaryStore,
) -> Result<Built> {
    let (dir, executable) = cargo_build(path, source_root, profile).await?;
    let binary = store.keep(path, &executable).await?;
    Ok(Built {
        launch: launch(dir, store.binary_path(&binary)),
        binary,
    })
}

/// Runs cargo build; returns the crate's dir and the binary cargo built.
async fn cargo_build(path: &str, source_root: &Path, profile: &str) -> Result<(PathBuf, PathBuf)> {
    let dir = crate_dir(path, source_root);
    let manifest = dir.join("Cargo.toml");
    let build_error = |message: String| Error::Build {
        path: path.to_string(),
        message,
    };
    if !manifest.is_file() {
        return Err(build_error(format!(
            "{} does not exist: okonomi://PATH must name a function crate relative to {}",
            manifest.display(),
            source_root.display()
        )));
    }
    let output = tokio::process::Command::new("cargo")
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--profile")
        .arg(profile)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| build_error(format!("running cargo (is it installed and on PATH?): {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        return Err(build_error(format!(
            "cargo build failed ({}):\n{}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    let executable = executable_from_messages(&String::from_utf8_lossy(&output.stdout), &manifest)
        .ok_or_else(|| {
            build_error("cargo built no binary: the function crate needs a [[bin]] target".into())
        })?;
    Ok((dir, executable))
}

/// The directory of the crate an `okonomi://PATH` names.
pub(crate) fn crate_dir(path: &str, source_root: &Path) -> PathBuf {
    if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        source_root.join(path)
    }
}

/// Runs `program` as the crate's entrypoint, from the crate's directory
/// (a relative path in the function resolves against its crate, wherever
/// the binary is kept) with the engine's PATH.
pub(crate) fn launch(dir: PathBuf, program: PathBuf) -> Launch {
    Launch::Process {
        program,
        arg0: None,
        args: Vec::new(),
        cwd: dir,
        env: std::env::var("PATH")
            .map(|p| vec![("PATH".to_string(), p)])
            .unwrap_or_default(),
    }
}

/// The binary cargo built for the package of `manifest`.
fn executable_from_messages(stdout: &str, manifest: &Path) -> Option<PathBuf> {
    let mut found = None;
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let Some(executable) = message["executable"].as_str() else {
            continue;
        };
        let is_bin = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "bin"));
        let same_package = message["manifest_path"]
            .as_str()
            .is_some_and(|m| Path::new(m) == manifest);
        if is_bin && same_package {
            found = Some(PathBuf::from(executable));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_binary_is_picked_from_cargo_messages() {
        let manifest = Path::new("/src/functions/hello/Cargo.toml");
        let stdout = r#"{"reason":"compiler-artifact","manifest_path":"/src/runtime/Cargo.toml","target":{"kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","manifest_path":"/src/functions/hello/Cargo.toml","target":{"kind":["bin"]},"executable":"/t/debug/hello"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_from_messages(stdout, manifest),
            Some(PathBuf::from("/t/debug/hello"))
        );
        assert_eq!(executable_from_messages("", manifest), None);
    }

    #[tokio::test]
    async fn a_missing_crate_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = build("functions/nope", dir.path(), "dev")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("Cargo.toml does not exist"), "{err}");
    }
}
