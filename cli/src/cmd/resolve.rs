//! `okonomi resolve -f FILE|DIR`: build every `okonomi://PATH` image referenced in
//! the YAML, push it, and print the YAML with digests in place (as `ko resolve`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use okonomi_image::resolve;

use crate::cmd::build::{self, TargetArgs};
use crate::global::Global;

const EXAMPLES: &str = "\
Examples:
  okonomi resolve -f service.yaml --registry 127.0.0.1:5000/okonomi
  okonomi resolve -f deploy/ | kubectl apply -f -

A reference is `image: okonomi://functions/hello`, a crate path relative to the
current directory. Each distinct path is built and pushed once; comments and layout
of the YAML are kept. Files of a directory (*.yaml, *.yml) are read in name order.";

/// Arguments of `okonomi resolve`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// YAML file or directory of YAML files (`-` for stdin).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// Runs `okonomi resolve`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let documents = read_all(&args.files)?;
    let mut wanted = std::collections::BTreeSet::new();
    for (path, text) in &documents {
        wanted.extend(resolve::find_references(text, path)?);
    }
    let mut images = BTreeMap::new();
    for reference in wanted {
        let crate_path = PathBuf::from(resolve::reference_path(&reference));
        let image = build::build(&crate_path, &args.target, global)
            .await
            .with_context(|| format!("building {reference}"))?;
        let settings = crate::manifest::read(&image.function.dir)?;
        let registry = build::registry(&args.target, settings.registry.as_deref())?;
        let published = build::publish(&image, &registry, &args.target, global).await?;
        images.insert(reference, published.reference);
    }
    let mut first = true;
    for (_, text) in &documents {
        if !first {
            println!("---");
        }
        first = false;
        let out = resolve::substitute(text, &images);
        print!("{out}");
        if !out.ends_with('\n') {
            println!();
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_all(inputs: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut documents = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            let text = std::io::read_to_string(std::io::stdin()).context("reading stdin")?;
            documents.push((input.clone(), text));
        } else if input.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("reading directory {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_yaml(p))
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                documents.push((file, text));
            }
        } else {
            let text = std::fs::read_to_string(input)
                .with_context(|| format!("reading {}", input.display()))?;
            documents.push((input.clone(), text));
        }
    }
    Ok(documents)
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}
