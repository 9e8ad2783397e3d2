//! `okonomi completions SHELL`: shell completion scripts from the clap definition.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::global::Global;

const EXAMPLES: &str = "\
Examples:
  okonomi completions bash > /etc/bash_completion.d/okonomi
  okonomi completions zsh > \"${fpath[1]}/_okonomi\"
  okonomi completions fish > ~/.config/fish/completions/okonomi.fish";

/// Arguments of `okonomi completions`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

/// Prints the completion script on stdout.
pub async fn run(args: Args, _global: &Global) -> anyhow::Result<ExitCode> {
    let mut command = crate::Cli::command();
    clap_complete::generate(args.shell, &mut command, "okonomi", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
