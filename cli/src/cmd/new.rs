//! `okonomi new NAME`: scaffold a function crate (Cargo.toml on the runtime,
//! src/main.rs with a test, okonomi.toml) that builds and passes its test as generated.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::ValueEnum;

use crate::global::Global;

const EXAMPLES: &str = "\
Examples:
  okonomi new greeter                               # ./greeter, HTTP
  okonomi new functions/orders --template cloudevent
  okonomi new greeter --okonomi-path ~/src/okonomi/runtime

The runtime is not on crates.io yet, so the crate depends on it by path: from
--okonomi-path or $OKONOMI_PATH, else the okonomi workspace the new crate is created
in. The crate is its own workspace (an empty [workspace] table), so it builds even
inside another workspace; to make it a member instead, delete that table and add the
path to the enclosing workspace's members.";

/// What kind of function to scaffold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// An HTTP handler.
    Http,
    /// A CloudEvents handler that replies with an event.
    Cloudevent,
}

/// Arguments of `okonomi new`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Directory to create; its last component is the function name.
    pub path: PathBuf,
    /// Kind of function.
    #[arg(long, value_enum, default_value_t = Template::Http)]
    pub template: Template,
    /// The okonomi runtime crate (a directory with its Cargo.toml).
    #[arg(long, env = "OKONOMI_PATH", value_name = "DIR")]
    pub okonomi_path: Option<PathBuf>,
}

/// Runs `okonomi new`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let name = args
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .context("the path must end in the function name")?
        .to_string();
    check_name(&name)?;
    if args.path.exists() {
        bail!(
            "{} already exists: choose another name or remove it",
            args.path.display()
        );
    }
    let parent = match args.path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = std::fs::canonicalize(&parent)
        .with_context(|| format!("{} does not exist", parent.display()))?;
    let runtime = match &args.okonomi_path {
        Some(p) => std::fs::canonicalize(p)
            .with_context(|| format!("--okonomi-path {} does not exist", p.display()))?,
        None => find_runtime(&parent).context(
            "cannot find the okonomi runtime: crates.io has no okonomi crate yet, so pass \
             --okonomi-path /path/to/okonomi/runtime (or set OKONOMI_PATH)",
        )?,
    };
    if !is_runtime(&runtime) {
        bail!(
            "{} is not the okonomi runtime (no Cargo.toml with name = \"okonomi\")",
            runtime.display()
        );
    }
    let dir = parent.join(&name);
    let runtime_rel = relative(&runtime, &dir);
    let main = match args.template {
        Template::Http => include_str!("../../templates/http/main.rs"),
        Template::Cloudevent => include_str!("../../templates/cloudevent/main.rs"),
    }
    .replace("{{name}}", &name);
    let kind = match args.template {
        Template::Http => "http",
        Template::Cloudevent => "cloudevent",
    };
    let cargo_toml = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
# The okonomi runtime is not on crates.io yet: a path dependency.
okonomi = {{ path = "{runtime}" }}

# Its own workspace, so it builds wherever it is (see `okonomi new --help`).
[workspace]

[profile.release]
# Small, fast static binaries for the image.
opt-level = 3
lto = "fat"
codegen-units = 1
strip = true
"#,
        runtime = runtime_rel.display().to_string().replace('\\', "/"),
    );
    let okonomi_toml = format!(
        "[function]\nname = \"{name}\"\nkind = \"{kind}\"\n\n[build]\n# registry = \"127.0.0.1:5000/okonomi\"\nplatforms = [\"linux/amd64\"]\n\n[scale]\nmin = 0\nmax = 10\n"
    );
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write("Cargo.toml", &cargo_toml)?;
    write("src/main.rs", &main)?;
    write("okonomi.toml", &okonomi_toml)?;
    write(".gitignore", "/target\n")?;
    // Start from the runtime workspace's lock file: the same dependency versions
    // it is tested with, and compiled artefacts a shared target dir can reuse.
    if let Some(lock) = workspace_lock(&runtime) {
        let _ = std::fs::copy(lock, dir.join("Cargo.lock"));
    }
    global.status(
        "Created",
        format!("{kind} function {name} in {}", dir.display()),
    );
    eprintln!(
        "  next: cd {} && cargo test && okonomi run",
        args.path.display()
    );
    if let Some(ws) = enclosing_workspace(&parent) {
        eprintln!(
            "  it is its own workspace; to make it a member of {} instead, delete its [workspace] table and add \"{}\" to members",
            ws.join("Cargo.toml").display(),
            relative(&dir, &ws).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Knative Service names are DNS-1035 labels; Cargo needs a valid package name too.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "invalid function name {name:?}: use lower-case letters, digits and '-', starting with a letter (a DNS-1035 label, at most 63 characters)"
        );
    }
    if name == "okonomi" || name == "test" {
        bail!("invalid function name {name:?}: it clashes with a crate the function depends on");
    }
    Ok(())
}

fn is_runtime(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| {
            t.get("package")?
                .get("name")?
                .as_str()
                .map(|n| n == "okonomi")
        })
        .unwrap_or(false)
}

/// `runtime/` of the nearest enclosing okonomi workspace.
fn find_runtime(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join("runtime"))
        .find(|candidate| is_runtime(candidate))
}

fn enclosing_workspace(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|d| {
        let text = std::fs::read_to_string(d.join("Cargo.toml")).ok()?;
        text.parse::<toml::Table>().ok()?.get("workspace")?;
        Some(d.to_path_buf())
    })
}

fn workspace_lock(runtime: &Path) -> Option<PathBuf> {
    runtime
        .ancestors()
        .map(|d| d.join("Cargo.lock"))
        .find(|p| p.is_file())
}

/// `to` relative to `from` (both absolute), e.g. `../../runtime`.
fn relative(to: &Path, from: &Path) -> PathBuf {
    let to: Vec<_> = to.components().collect();
    let from: Vec<_> = from.components().collect();
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    if common <= 1 {
        // Nothing shared but the root: an absolute path reads better than ../../..
        return to.iter().collect();
    }
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/w/runtime"), Path::new("/w/functions/x")),
            PathBuf::from("../../runtime")
        );
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/c")),
            PathBuf::from("/a/b")
        );
    }

    #[test]
    fn names_must_be_dns_labels() {
        assert!(check_name("hello-2").is_ok());
        let err = check_name("Hello_World").unwrap_err().to_string();
        assert!(
            err.contains("invalid function name \"Hello_World\""),
            "{err}"
        );
        assert!(check_name("2fast").is_err());
        assert!(check_name("okonomi").is_err());
    }
}
