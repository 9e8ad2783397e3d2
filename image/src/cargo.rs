//! Finding a function crate and compiling it into a static binary with cargo
//! (or cargo-zigbuild for cross targets).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

use crate::error::{Error, Result};
use crate::platform::Platform;

/// The package name of the okonomi runtime a function must depend on.
pub const RUNTIME_PACKAGE: &str = "okonomi";

/// A crate that is an okonomi function, as cargo describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCrate {
    /// Cargo package name.
    pub package: String,
    /// The binary target to ship.
    pub binary: String,
    /// The crate's directory.
    pub dir: PathBuf,
    /// Its Cargo.toml.
    pub manifest_path: PathBuf,
    /// The workspace root (the crate's dir when standalone).
    pub workspace_root: PathBuf,
    /// The `repository` field of the package, for the source label.
    pub repository: Option<String>,
    /// Cargo's target directory (honours CARGO_TARGET_DIR).
    pub target_dir: PathBuf,
}

impl FunctionCrate {
    /// Whether the crate is a member of a larger workspace.
    pub fn in_workspace(&self) -> bool {
        self.workspace_root != self.dir
    }
}

/// Where cargo's human output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CargoOutput {
    /// To this process's stderr (the CLI).
    #[default]
    Inherit,
    /// Captured and put into the error on failure (libraries, servers).
    Capture,
}

/// Reads a crate with `cargo metadata` and checks it is a function: it depends on
/// the okonomi runtime and has a binary target.
pub async fn inspect(path: &Path) -> Result<FunctionCrate> {
    let manifest_path = if path.is_file() {
        path.to_path_buf()
    } else {
        path.join("Cargo.toml")
    };
    if !manifest_path.is_file() {
        return Err(Error::NotACrate {
            path: path.to_path_buf(),
        });
    }
    let manifest_path =
        std::fs::canonicalize(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    let output = Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(&manifest_path)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| Error::Spawn {
            program: "cargo".into(),
            source,
        })?;
    let metadata_error = |message: String| Error::Metadata {
        path: manifest_path.clone(),
        message,
    };
    if !output.status.success() {
        return Err(metadata_error(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| metadata_error(e.to_string()))?;
    select_function(&metadata, &manifest_path)
}

/// Picks the package at `manifest_path` out of `cargo metadata` output and checks it.
pub fn select_function(
    metadata: &serde_json::Value,
    manifest_path: &Path,
) -> Result<FunctionCrate> {
    let not_function = |reason: &str| Error::NotAFunction {
        path: manifest_path.to_path_buf(),
        reason: reason.to_string(),
    };
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["manifest_path"].as_str().map(Path::new) == Some(manifest_path))
        .ok_or_else(|| not_function("it has no [package] (a virtual workspace manifest?)"))?;
    let name = package["name"].as_str().unwrap_or_default().to_string();
    let depends_on_runtime = package["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| d["name"] == RUNTIME_PACKAGE && d["kind"].is_null());
    if !depends_on_runtime {
        return Err(not_function(
            "it does not depend on the okonomi runtime: add `okonomi = { path = \"…/runtime\" }` to [dependencies] (or create one with `okonomi new`)",
        ));
    }
    let bins: Vec<&str> = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .filter_map(|t| t["name"].as_str())
        .collect();
    let binary = bins
        .iter()
        .find(|b| **b == name)
        .or(bins.first())
        .ok_or_else(|| {
            not_function("it has no binary target: add src/main.rs that calls the okonomi runtime")
        })?
        .to_string();
    let dir = manifest_path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let workspace_root = metadata["workspace_root"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.clone());
    let target_dir = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("target"));
    Ok(FunctionCrate {
        target_dir,
        package: name,
        binary,
        repository: package["repository"].as_str().map(str::to_string),
        dir,
        manifest_path: manifest_path.to_path_buf(),
        workspace_root,
    })
}

/// Checks that the toolchain can build `platform`, with the install command when not.
pub async fn check_toolchain(platform: Platform) -> Result<()> {
    let target = platform.rust_target();
    // rustup is optional (distribution toolchains): only check when it answers.
    if let Ok(out) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .stdin(Stdio::null())
        .output()
        .await
        && out.status.success()
    {
        let installed = String::from_utf8_lossy(&out.stdout);
        if !installed.lines().any(|l| l.trim() == target) {
            return Err(Error::MissingTarget {
                target: target.into(),
                platform: platform.to_string(),
            });
        }
    }
    if platform.needs_zig() {
        if !runs("cargo-zigbuild", &["--version"]).await {
            return Err(Error::MissingTool {
                tool: "cargo-zigbuild".into(),
                platform: platform.to_string(),
                install: "cargo install cargo-zigbuild".into(),
            });
        }
        // cargo-zigbuild finds zig on PATH or as PyPI's ziglang module.
        if !runs("zig", &["version"]).await && !runs("python3", &["-m", "ziglang", "version"]).await
        {
            return Err(Error::MissingTool {
                tool: "zig".into(),
                platform: platform.to_string(),
                install: "pip install ziglang".into(),
            });
        }
    }
    Ok(())
}

async fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// What one cargo build made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compiled {
    /// The function's executable.
    pub executable: PathBuf,
    /// Package ids of every unit cargo compiled (or found fresh) for it: with the
    /// real feature resolution of this build, unlike `cargo metadata`'s, which
    /// unifies features across the whole workspace.
    pub packages: BTreeSet<String>,
}

/// Compiles the function for `platform` in release mode.
pub async fn compile(
    krate: &FunctionCrate,
    platform: Platform,
    features: &[String],
    output: CargoOutput,
) -> Result<Compiled> {
    check_toolchain(platform).await?;
    let target = platform.rust_target();
    let subcommand = if platform.needs_zig() {
        "zigbuild"
    } else {
        "build"
    };
    let mut args = vec![
        "--release".to_string(),
        "--target".to_string(),
        target.to_string(),
    ];
    if !features.is_empty() {
        args.push("--features".into());
        args.push(features.join(","));
    }
    run_cargo(krate, subcommand, &args, target, output).await
}

/// Compiles the function for the host (for `okonomi run`), debug unless `release`.
pub async fn compile_native(
    krate: &FunctionCrate,
    release: bool,
    output: CargoOutput,
) -> Result<PathBuf> {
    let args: Vec<String> = if release {
        vec!["--release".into()]
    } else {
        Vec::new()
    };
    Ok(run_cargo(krate, "build", &args, "host", output)
        .await?
        .executable)
}

async fn run_cargo(
    krate: &FunctionCrate,
    subcommand: &str,
    args: &[String],
    target: &str,
    output: CargoOutput,
) -> Result<Compiled> {
    let program = format!("cargo {subcommand}");
    let mut cmd = Command::new("cargo");
    cmd.arg(subcommand)
        .arg("--message-format=json-render-diagnostics")
        .args(args);
    if krate.in_workspace() {
        // A workspace member builds from the workspace so it shares Cargo.lock and target/.
        cmd.arg("-p")
            .arg(&krate.package)
            .current_dir(&krate.workspace_root);
    } else {
        cmd.current_dir(&krate.dir);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(match output {
            CargoOutput::Inherit => Stdio::inherit(),
            CargoOutput::Capture => Stdio::piped(),
        });
    // Dropping the future (Ctrl-C, a newer change in `okonomi run`) stops cargo too.
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    let stderr_task = child.stderr.take().map(|mut stderr| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut buf).await;
            String::from_utf8_lossy(&buf).into_owned()
        })
    });
    let mut executable = None;
    let mut packages = BTreeSet::new();
    if let Some(stdout) = child.stdout.take() {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if message["reason"] == "compiler-artifact"
                && let Some(id) = message["package_id"].as_str()
            {
                packages.insert(id.to_string());
            }
            if let Some(path) = executable_from_message(&message, &krate.binary) {
                executable = Some(path);
            }
        }
    }
    let status = child.wait().await.map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    let captured = match stderr_task {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    };
    if !status.success() {
        return Err(Error::Compile {
            package: krate.package.clone(),
            target: target.into(),
            status: status.to_string(),
            output: if captured.is_empty() {
                String::new()
            } else {
                format!(":\n{}", captured.trim_end())
            },
        });
    }
    let executable = executable.ok_or_else(|| Error::NoExecutable {
        package: krate.package.clone(),
    })?;
    Ok(Compiled {
        executable,
        packages,
    })
}

/// The executable path from one `--message-format=json` message, if it is the artifact of `binary`.
fn executable_from_message(message: &serde_json::Value, binary: &str) -> Option<PathBuf> {
    if message["reason"] != "compiler-artifact" || message["target"]["name"] != binary {
        return None;
    }
    if !message["target"]["kind"]
        .as_array()?
        .iter()
        .any(|k| k == "bin")
    {
        return None;
    }
    message["executable"].as_str().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(deps: serde_json::Value, kinds: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "workspace_root": "/ws",
            "target_directory": "/ws/target",
            "packages": [{
                "name": "f", "manifest_path": "/ws/f/Cargo.toml", "repository": null,
                "dependencies": deps,
                "targets": [{"name": "f", "kind": kinds}],
            }],
        })
    }

    #[test]
    fn accepts_a_function_and_rejects_other_crates() {
        let path = Path::new("/ws/f/Cargo.toml");
        let ok = select_function(
            &metadata(
                serde_json::json!([{"name": "okonomi", "kind": null}]),
                serde_json::json!(["bin"]),
            ),
            path,
        )
        .unwrap();
        assert_eq!(ok.binary, "f");
        assert!(ok.in_workspace());
        let no_dep = select_function(
            &metadata(serde_json::json!([]), serde_json::json!(["bin"])),
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(
            no_dep.contains("does not depend on the okonomi runtime"),
            "{no_dep}"
        );
        let no_bin = select_function(
            &metadata(
                serde_json::json!([{"name": "okonomi", "kind": null}]),
                serde_json::json!(["lib"]),
            ),
            path,
        )
        .unwrap_err()
        .to_string();
        assert!(no_bin.contains("has no binary target"), "{no_bin}");
    }

    #[test]
    fn finds_the_executable_in_cargo_messages() {
        let line = r#"{"reason":"compiler-artifact","target":{"name":"f","kind":["bin"]},"executable":"/t/f"}"#;
        let message: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            executable_from_message(&message, "f"),
            Some(PathBuf::from("/t/f"))
        );
        assert_eq!(executable_from_message(&message, "g"), None);
        assert_eq!(
            executable_from_message(&serde_json::json!("not json"), "f"),
            None
        );
    }
}
