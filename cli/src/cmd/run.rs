//! `okonomi run`: build the function for the host, run it on $PORT with the
//! Knative environment, and on source changes (debounced) rebuild and restart.
//! A failed build is shown and the last good build keeps serving.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context;
use okonomi_image::{CargoOutput, FunctionCrate};
use tokio::process::{Child, Command};

use crate::global::Global;
use crate::watch::SourceWatcher;

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

    let mut watcher = if args.no_watch {
        None
    } else {
        Some(SourceWatcher::new(&function.dir)?)
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
            Some(()) = next_change(&mut watcher, Duration::from_millis(args.debounce_ms)) => {
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

async fn next_change(watcher: &mut Option<SourceWatcher>, quiet: Duration) -> Option<()> {
    match watcher {
        Some(w) => w.next_change(quiet).await,
        None => std::future::pending().await,
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
