//! The verbs: one module each, with its clap `Args` and `run(args, &Global)`.

pub mod build;
pub mod completions;
pub mod delete;
pub mod deploy;
pub mod describe;
pub mod dev;
pub mod doctor;
pub mod invoke;
pub mod keygen;
pub mod list;
pub mod logs;
pub mod new;
pub mod resolve;
pub mod run;
pub mod traffic;
pub mod up;
pub mod verify;

use std::process::ExitCode;

use clap::Subcommand;

use crate::global::Global;

/// Every verb of the command line.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold a new function crate.
    New(new::Args),
    /// Run a function locally on $PORT, rebuilding and restarting on change.
    Run(run::Args),
    /// Send an HTTP request or a CloudEvent to a function and print the reply.
    Invoke(invoke::Args),
    /// Build a function into an OCI image and push it (or write an OCI layout).
    Build(build::Args),
    /// Make an ECDSA P-256 key pair for signing images (cosign's format).
    Keygen(keygen::Args),
    /// Check an image's signature, SBOMs and provenance against a public key.
    Verify(verify::Args),
    /// Replace okonomi://PATH image references in YAML with built digests.
    Resolve(resolve::Args),
    /// Print shell completions.
    Completions(completions::Args),
    /// Start Knative Serving on this machine (the engine) in the foreground.
    Up(up::Args),
    /// Build, push, apply to the kube context and wait for Ready; print the URL.
    Deploy(deploy::Args),
    /// Deploy, then deploy again on every source change: an edit live in seconds.
    Dev(dev::Args),
    /// List Knative Services.
    List(list::Args),
    /// Show a Service's URL, traffic, conditions and revisions.
    Describe(describe::Args),
    /// Split traffic between revisions and tag them.
    Traffic(traffic::Args),
    /// Delete Knative Services.
    Delete(delete::Args),
    /// Show a function's logs.
    Logs(logs::Args),
    /// Check the kube context's cluster before a first deploy: pass, warn or fail, with fixes.
    Doctor(doctor::Args),
}

impl Command {
    /// Runs the verb; the exit code is for verbs that report more than success.
    pub async fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        match self {
            Command::New(args) => new::run(args, global).await,
            Command::Run(args) => run::run(args, global).await,
            Command::Invoke(args) => invoke::run(args, global).await,
            Command::Build(args) => build::run(args, global).await,
            Command::Keygen(args) => keygen::run(args, global).await,
            Command::Verify(args) => verify::run(args, global).await,
            Command::Resolve(args) => resolve::run(args, global).await,
            Command::Completions(args) => completions::run(args, global).await,
            Command::Up(args) => up::run(args, global).await,
            Command::Deploy(args) => deploy::run(args, global).await,
            Command::Dev(args) => dev::run(args, global).await,
            Command::List(args) => list::run(args, global).await,
            Command::Describe(args) => describe::run(args, global).await,
            Command::Traffic(args) => traffic::run(args, global).await,
            Command::Delete(args) => delete::run(args, global).await,
            Command::Logs(args) => logs::run(args, global).await,
            Command::Doctor(args) => doctor::run(args, global).await,
        }
    }
}
