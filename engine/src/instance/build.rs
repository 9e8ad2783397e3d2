//! `okonomi://PATH` references: a function crate of the local checkout,
//! built with cargo on deploy and run as a process.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::Launch;
use crate::error::{Error, Result};

/// The scheme of local function references.
pub const SCHEME: &str = "okonomi://";

/// Builds the crate at `path` (relative to `source_root` unless absolute)
/// and returns how to run its binary. `profile` is a cargo profile name
/// (`release`, `dev`).
pub async fn build(path: &str, source_root: &Path, profile: &str) -> Result<Launch> {
    let dir = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        source_root.join(path)
    };
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
    Ok(Launch::Process {
        program: executable,
        args: Vec::new(),
        cwd: dir,
        env: std::env::var("PATH")
            .map(|p| vec![("PATH".to_string(), p)])
            .unwrap_or_default(),
    })
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
