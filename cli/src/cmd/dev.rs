//! `okonomi dev [PATH]`: deploy the function, then on every source change
//! (debounced) deploy it again, so each successful build is rolled out as a new
//! revision on the current context. On the engine that is a `dev`-profile
//! host build, live in seconds; against a cluster with a registry, an image
//! build and push. A build that fails is shown and applies nothing: the last
//! good revision keeps serving. The swap is Knative's own: the route moves to
//! the new revision once it is Ready, so no request is dropped.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::cmd::deploy;
use crate::global::Global;
use crate::watch::SourceWatcher;

const EXAMPLES: &str = "\
Examples:
  okonomi dev                          # the function in ., on the current context
  okonomi dev functions/hello          # edit src/main.rs: the URL answers the new code
  okonomi dev --release                # the release profile (slower builds, faster code)

Takes every flag of `okonomi deploy`. Stop with Ctrl-C; the last revision keeps serving.";

/// Arguments of `okonomi dev`: those of `okonomi deploy`, plus the debounce.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    pub deploy: deploy::Args,
    /// Quiet period after a change before deploying, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub debounce_ms: u64,
}

/// Runs `okonomi dev` until Ctrl-C.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    if args.deploy.dry_run {
        bail!(
            "okonomi dev deploys on every change; to print the manifests use `okonomi deploy --dry-run`"
        );
    }
    if args.deploy.image.is_some() {
        bail!(
            "okonomi dev watches a function's sources; with --image there is nothing to build: use `okonomi deploy --image`"
        );
    }
    if args.deploy.no_wait {
        bail!(
            "okonomi dev waits for each revision to be Ready before it watches again; drop --no-wait"
        );
    }
    let dir = args.deploy.path.clone();
    if !dir.is_dir() {
        bail!(
            "{} is not a directory: pass the directory of a function crate (e.g. functions/hello)",
            dir.display()
        );
    }
    // Watch before the first build, so an edit made while it runs is not missed.
    let mut watcher = SourceWatcher::new(&dir)?;
    let quiet = Duration::from_millis(args.debounce_ms);
    deploy_once(&args, global).await;
    global.status("Watching", format!("{} (Ctrl-C to stop)", dir.display()));
    while watcher.next_change(quiet).await.is_some() {
        global.status("Changed", format!("{}: deploying", dir.display()));
        deploy_once(&args, global).await;
        global.status("Watching", format!("{}", dir.display()));
    }
    bail!("the file watcher of {} stopped", dir.display())
}

/// One deploy; its failure is printed, not returned, so watching goes on.
async fn deploy_once(args: &Args, global: &Global) {
    let started = std::time::Instant::now();
    match deploy::run(args.deploy.clone(), global).await {
        Ok(code) if code == ExitCode::SUCCESS => global.status(
            "Live",
            format!(
                "{:.1}s after the change was seen",
                started.elapsed().as_secs_f64()
            ),
        ),
        Ok(_) => {
            global.warn("the deploy did not become Ready: the last good revision keeps serving")
        }
        Err(error) => {
            global.print_error(&error);
            global.warn("nothing was applied: the last good revision keeps serving");
        }
    }
}
