//! The verbs: one module each, with its clap `Args` and `run(args, &Global)`.

pub mod build;
pub mod completions;
pub mod invoke;
pub mod new;
pub mod resolve;
pub mod run;

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
    /// Replace okonomi://PATH image references in YAML with built digests.
    Resolve(resolve::Args),
    /// Print shell completions.
    Completions(completions::Args),
}

impl Command {
    /// Runs the verb; the exit code is for verbs that report more than success.
    pub async fn run(self, global: &Global) -> anyhow::Result<ExitCode> {
        match self {
            Command::New(args) => new::run(args, global).await,
            Command::Run(args) => run::run(args, global).await,
            Command::Invoke(args) => invoke::run(args, global).await,
            Command::Build(args) => build::run(args, global).await,
            Command::Resolve(args) => resolve::run(args, global).await,
            Command::Completions(args) => completions::run(args, global).await,
        }
    }
}
