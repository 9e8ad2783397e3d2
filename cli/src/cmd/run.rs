//! `okonomi run`: build the function for the host, run it on $PORT with the
//! Knative environment, and on source changes (debounced) rebuild and restart.
//! A failed build is shown and the last good build keeps serving.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use notify::{EventKind, RecursiveMode, Watcher};
use okonomi_image::{CargoOutput, FunctionCrate};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::global::Global;

const EXAMPLES: &str = "\
Examples:
  okonomi run                          # the function in ., on $PORT (default 8080)
  okonomi run functions/hello --port 9000
  okonomi run --release --no-watch

Then, from another terminal: okonomi invoke";

/// Arguments of `okonomi run`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The function crate.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Port to serve on.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Build with --release.
    #[arg(long)]
    pub release: bool,
    /// Do not watch sources (build and run once).
    #[arg(long)]
    pub no_watch: bool,
    /// Quiet period after a change before rebuilding, in milliseconds.
    #[arg(long, default_value_t = 300)]
    pub debounce_ms: u64,
}

/// Runs `okonomi run` until Ctrl-C (or until the function exits, with --no-watch).
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let function = okonomi_image::cargo::inspect(&args.path).await?;
    let settings = crate::manifest::read(&function.dir)?;
    let name = settings.name.unwrap_or_else(|| function.package.clone());
    let staging = function.target_dir.join("okonomi-run");
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;

    let (tx, mut changes) = mpsc::channel::<()>(1);
    let _watcher = if args.no_watch {
        None
    } else {
        Some(watch(&function.dir, tx)?)
    };

    let mut generation = 0u32;
    let mut child: Option<Child> = None;
    match build(&function, &args, &staging, generation, global).await {
        Ok(binary) => child = Some(start(&binary, &name, args.port, global)?),
        Err(e) if args.no_watch => return Err(e),
        Err(e) => {
            global.print_error(&e);
            global.warn("waiting for a change to rebuild");
        }
    }
    loop {
        tokio::select! {
            Some(()) = changes.recv() => {
                // Debounce: wait for a quiet period, folding in further changes.
                let quiet = Duration::from_millis(args.debounce_ms);
                while let Ok(Some(())) = tokio::time::timeout(quiet, changes.recv()).await {}
                generation += 1;
                global.status("Changed", "rebuilding");
                match build(&function, &args, &staging, generation, global).await {
                    Ok(binary) => {
                        if let Some(old) = child.take() {
                            stop(old).await;
                        }
                        child = Some(start(&binary, &name, args.port, global)?);
                    }
                    Err(e) => {
                        global.print_error(&e);
                        if child.is_some() {
                            global.warn("build failed: the last good build keeps serving");
                        }
                    }
                }
            }
            status = wait(&mut child) => {
                global.warn(format!("the function exited ({status})"));
                child = None;
                if args.no_watch {
                    return Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::from(crate::EXIT_FAILURE) });
                }
            }
        }
    }
}

async fn wait(child: &mut Option<Child>) -> std::process::ExitStatus {
    match child {
        Some(c) => match c.wait().await {
            Ok(status) => status,
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Builds and copies the binary aside, so cargo can replace it while it runs.
async fn build(
    function: &FunctionCrate,
    args: &Args,
    staging: &Path,
    generation: u32,
    global: &Global,
) -> anyhow::Result<PathBuf> {
    let started = std::time::Instant::now();
    let built =
        okonomi_image::cargo::compile_native(function, args.release, CargoOutput::Inherit).await?;
    let copy = staging.join(format!("{}-{generation}", function.binary));
    tokio::fs::copy(&built, &copy)
        .await
        .with_context(|| format!("copying {} to {}", built.display(), copy.display()))?;
    if generation > 0 {
        let _ =
            tokio::fs::remove_file(staging.join(format!("{}-{}", function.binary, generation - 1)))
                .await;
    }
    global.status(
        "Built",
        format!(
            "{} in {:.1}s",
            function.package,
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(copy)
}

fn start(binary: &Path, name: &str, port: u16, global: &Global) -> anyhow::Result<Child> {
    let child = Command::new(binary)
        .env("PORT", port.to_string())
        .env("K_SERVICE", name)
        .env("K_CONFIGURATION", name)
        .env("K_REVISION", format!("{name}-local"))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    global.status("Serving", format!("{name} on http://127.0.0.1:{port}/"));
    Ok(child)
}

/// SIGTERM (the runtime drains), then SIGKILL after 10 s.
async fn stop(mut child: Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_ok()
        {
            return;
        }
    }
    let _ = child.kill().await;
}

fn watch(dir: &Path, tx: mpsc::Sender<()>) -> anyhow::Result<notify::RecommendedWatcher> {
    let root = dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
        // Reads are not changes: rustc opening the sources must not trigger a rebuild.
        if let Ok(event) = result
            && !matches!(event.kind, EventKind::Access(_))
            && event.paths.iter().any(|p| is_source(&root, p))
        {
            // A full channel already holds a pending rebuild: this change joins it.
            let _ = tx.try_send(());
        }
    })
    .context("starting the file watcher")?;
    watcher
        .watch(dir, RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", dir.display()))?;
    Ok(watcher)
}

/// Changes under target/ or hidden directories are build output, not sources;
/// so is Cargo.lock, which cargo itself rewrites during the build.
fn is_source(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return true;
    };
    // The directory itself changes when target/ appears; Cargo.lock is rewritten by cargo.
    if rel.as_os_str().is_empty() || rel == Path::new("Cargo.lock") {
        return false;
    }
    !rel.components().any(|c| {
        let s = c.as_os_str().to_string_lossy();
        s == "target" || s.starts_with('.')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_output_is_not_a_source() {
        let root = Path::new("/f");
        assert!(is_source(root, Path::new("/f/src/main.rs")));
        assert!(is_source(root, Path::new("/f/okonomi.toml")));
        assert!(!is_source(root, Path::new("/f/target/debug/f")));
        assert!(!is_source(root, Path::new("/f/.git/index")));
        assert!(!is_source(root, Path::new("/f/Cargo.lock")));
        assert!(!is_source(root, Path::new("/f")));
    }
}
