//! Running the `okonomi` binary and `kubectl` as a user would, with the
//! test's own `$KUBECONFIG`, `$OKONOMI_HOME` and registry.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::Context;

/// The finished command: exit code and both streams.
#[derive(Debug, Clone)]
pub struct Run {
    /// What ran, for messages.
    pub command: String,
    /// Exit code (-1 for a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Fails with both streams unless the command exited 0.
    pub fn success(self) -> anyhow::Result<Self> {
        if self.code != 0 {
            anyhow::bail!("{self}");
        }
        Ok(self)
    }

    /// Fails unless the command exited non-zero; returns it for assertions.
    pub fn failure(self) -> anyhow::Result<Self> {
        if self.code == 0 {
            anyhow::bail!("expected a failure but it succeeded:\n{self}");
        }
        Ok(self)
    }

    /// Stdout parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.stdout)
            .with_context(|| format!("stdout of `{}` is not JSON:\n{}", self.command, self.stdout))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {}\n--- stdout\n{}\n--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }
}

/// The `okonomi` binary of this workspace: `$OKONOMI_BIN`, else
/// `target/debug/okonomi` next to this test's executable, which `cargo test
/// --workspace` builds (`cargo build -p okonomi-cli` does it alone). A
/// binary older than a source of the crates it is made of gets a warning on
/// stderr, so a stale CLI does not go unnoticed. (A nested `cargo build` from inside a
/// test would wait forever for the lock its own `cargo test` holds.)
pub fn okonomi_binary() -> anyhow::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| find_binary().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn find_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("OKONOMI_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    // target/debug/deps/TEST-HASH → target/debug/okonomi
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the test executable is not under target/PROFILE/deps")?;
    let binary = profile_dir.join("okonomi");
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .map_err(|_| {
            anyhow::anyhow!(
                "{} does not exist: run `cargo build -p okonomi-cli` first (or `cargo test --workspace`), or set OKONOMI_BIN",
                binary.display()
            )
        })?;
    let root = crate::tools::workspace_root();
    for dir in ["cli", "knative", "engine", "image"] {
        if let Some(newer) = newer_source(&root.join(dir), built) {
            eprintln!(
                "warning: {} is older than {}: these tests run the binary as built; `cargo build -p okonomi-cli` refreshes it",
                binary.display(),
                newer.display()
            );
            break;
        }
    }
    Ok(binary)
}

/// A `.rs` or `Cargo.toml` under `dir` changed after `time`.
fn newer_source(dir: &Path, time: std::time::SystemTime) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n == "target" || n == "tests" || n == "benches" || n == "examples")
            {
                continue;
            }
            if let Some(found) = newer_source(&path, time) {
                return Some(found);
            }
        } else if (path.extension().is_some_and(|e| e == "rs") || path.ends_with("Cargo.toml"))
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|m| m > time)
        {
            return Some(path);
        }
    }
    None
}

/// Runs commands with a fixed environment (kubeconfig, state dir, registry).
#[derive(Debug, Clone)]
pub struct Okonomi {
    /// The okonomi binary.
    pub binary: PathBuf,
    /// Environment every command gets (on top of the test's own).
    pub env: BTreeMap<String, String>,
    /// Variables removed from every command's environment.
    pub env_remove: Vec<String>,
}

impl Okonomi {
    /// A runner for the workspace's binary with `env`.
    pub fn new(env: BTreeMap<String, String>) -> anyhow::Result<Self> {
        Ok(Self {
            binary: okonomi_binary()?,
            env,
            env_remove: vec!["OKONOMI_REGISTRY".into()],
        })
    }

    /// `okonomi ARGS…`.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Run> {
        self.run_program(&self.binary, args, None)
    }

    /// `kubectl ARGS…` with the same environment.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<Run> {
        let kubectl = crate::tools::require("kubectl", "kubectl")?;
        self.run_program(&kubectl, args, None)
    }

    /// `kubectl ARGS…` with `stdin` piped in.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> anyhow::Result<Run> {
        let kubectl = crate::tools::require("kubectl", "kubectl")?;
        self.run_program(&kubectl, args, Some(stdin))
    }

    /// Any program with this environment.
    pub fn run_program(
        &self,
        program: &Path,
        args: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<Run> {
        let mut command = self.command(program);
        command.args(args);
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let shown = format!(
            "{} {}",
            program
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            args.join(" ")
        );
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {shown}"))?;
        if let Some(input) = stdin
            && let Some(mut pipe) = child.stdin.take()
        {
            pipe.write_all(input.as_bytes())?;
        }
        let output = child.wait_with_output()?;
        Ok(Run {
            command: shown,
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// A `Command` for `program` with this environment.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        for key in &self.env_remove {
            command.env_remove(key);
        }
        command.envs(&self.env).env("NO_COLOR", "1");
        command
    }
}
