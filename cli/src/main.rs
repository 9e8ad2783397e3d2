//! The okonomi command line. Its verbs:
//!
//! - writing a function: `new` (scaffold a crate), `run` (serve it on $PORT,
//!   rebuilding on change), `invoke` (send it a request or a CloudEvent);
//! - images: `build` (compile, assemble, push or write an OCI layout),
//!   `resolve` (replace `okonomi://PATH` references in YAML with digests);
//! - supply chain: `keygen` (a signing key pair), `verify` (an image's
//!   signature, SBOMs and provenance);
//! - a cluster or the engine: `up` (Knative Serving on this machine),
//!   `deploy` (build, apply, wait, print the URL), `dev` (deploy again on
//!   every source change), `list`, `describe`, `traffic` (split and tag),
//!   `delete`, `logs`, `doctor` (a cluster's preflight);
//! - the shell: `completions`.
//!
//! Each verb is one module in `cmd/` with its clap `Args` and an
//! `async fn run(args, &Global)`, dispatched from [`cmd::Command`]; a test
//! below fails when a verb is missing from this list.
//!
//! Exit codes (scripts can trust them):
//! 0 success; 1 the operation failed (build, push, I/O, …); 2 bad usage
//! (unknown flag, missing argument); 3 `invoke` got a non-2xx answer;
//! 130 interrupted (Ctrl-C).

mod cluster;
mod cmd;
mod duration;
mod global;
mod localhost;
mod manifest;
mod output;
mod progress;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::global::Global;

// `okonomi up` runs the engine's data plane in this process: glibc's malloc
// cost it about a quarter of its requests/s (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code: the operation failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad usage (clap's own code too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: `invoke` received a non-2xx status.
pub const EXIT_REMOTE_ERROR: u8 = 3;
/// Exit code: interrupted by Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

const AFTER_HELP: &str = "\
Examples:
  okonomi new greeter                      scaffold a function crate
  okonomi run functions/hello              run it on $PORT, rebuilding on change
  okonomi invoke --data 'hi'               call the locally running function
  okonomi build functions/hello --registry 127.0.0.1:5000/okonomi
  okonomi resolve -f service.yaml | kubectl apply -f -
  okonomi doctor functions/hello            check the cluster before the first deploy

Exit codes: 0 success, 1 failure, 2 bad usage, 3 invoke got a non-2xx answer, 130 interrupted.";

/// okonomi: Rust functions as Knative Services, built without Docker.
#[derive(Debug, Parser)]
#[command(name = "okonomi", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.global.init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let global = cli.global;
    let result = runtime.block_on(async {
        tokio::select! {
            r = cli.command.run(&global) => r.map(Some),
            _ = tokio::signal::ctrl_c() => Ok(None),
        }
    });
    match result {
        Ok(Some(code)) => code,
        Ok(None) => ExitCode::from(EXIT_INTERRUPTED),
        Err(e) => {
            global.print_error(&e);
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The crate documentation above names every verb clap knows, so a new
    /// verb cannot ship undocumented there.
    #[test]
    fn crate_doc_lists_every_verb() {
        let doc: String = include_str!("main.rs")
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let missing: Vec<String> = super::Cli::command()
            .get_subcommands()
            .map(|verb| verb.get_name().to_owned())
            .filter(|name| name != "help" && !doc.contains(&format!("`{name}`")))
            .collect();
        assert!(
            missing.is_empty(),
            "cli/src/main.rs's doc comment does not name these verbs: {missing:?}"
        );
    }
}
