//! Flags every verb shares (`-o`, `--color`, `-v`) and what they decide:
//! output format, whether to colour, how much to log.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use owo_colors::OwoColorize;

/// Output format for verbs whose output is data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON, one document.
    Json,
    /// YAML.
    Yaml,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorChoice {
    /// Only when stderr is a terminal and NO_COLOR is unset.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The flags shared by every verb.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Output format where the output is data.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Colour: auto (terminal only), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// More logging (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Global {
    /// Whether to colour messages on stderr.
    pub fn colour(&self) -> bool {
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
            }
        }
    }

    /// Whether progress bars may be drawn (stderr is a terminal).
    pub fn progress(&self) -> bool {
        std::io::stderr().is_terminal()
    }

    /// Sets up tracing on stderr at the level `-v` asks for.
    pub fn init_logging(&self) {
        let level = match self.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        };
        let filter = tracing_subscriber::EnvFilter::try_from_env("OKONOMI_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(self.colour())
            .try_init();
    }

    /// A status line on stderr, e.g. `  Pushed 3 blobs`.
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if self.colour() {
            eprintln!("{:>12} {message}", verb.green().bold());
        } else {
            eprintln!("{verb:>12} {message}");
        }
    }

    /// A warning on stderr.
    pub fn warn(&self, message: impl std::fmt::Display) {
        if self.colour() {
            eprintln!("{} {message}", "warning:".yellow().bold());
        } else {
            eprintln!("warning: {message}");
        }
    }

    /// Prints an error and its causes on stderr.
    pub fn print_error(&self, error: &anyhow::Error) {
        let label = if self.colour() {
            "error:".red().bold().to_string()
        } else {
            "error:".to_string()
        };
        eprintln!("{label} {error}");
        for cause in error.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
    }
}
