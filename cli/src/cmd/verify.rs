//! `okonomi verify IMAGE --key PUB`: checks the image's cosign signature by the
//! key and its signed attestations (provenance, SBOMs), lists its referrers, and
//! with `--sbom FILE` checks that an SBOM describes this very image.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use okonomi_image::sign::PublicKey;
use okonomi_image::verify::{self, Verified, Verifier};

use crate::global::Global;

const EXAMPLES: &str = "\
Examples:
  okonomi verify 127.0.0.1:5000/okonomi/hello@sha256:… --key okonomi.pub
  okonomi verify ghcr.io/me/hello:latest --key okonomi.pub -o json
  okonomi verify IMAGE --key okonomi.pub --sbom hello.spdx.json

Exit status 0 when a signature by the key covers the image's digest and every
attestation signed by the key names that digest; 1 otherwise, with the reason.";

/// Arguments of `okonomi verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The image: HOST/REPO@sha256:… (or HOST/REPO:TAG, resolved to its digest).
    pub image: String,
    /// The public key (okonomi keygen's or cosign's .pub).
    #[arg(long, value_name = "PUB")]
    pub key: PathBuf,
    /// Also check that this SPDX or CycloneDX SBOM (made by okonomi) describes the image.
    #[arg(long, value_name = "FILE")]
    pub sbom: Option<PathBuf>,
}

/// Runs `okonomi verify`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let key = PublicKey::load(&args.key)?;
    let verifier = Verifier::with_key(key);
    let verified = verifier
        .verify(&args.image)
        .await
        .with_context(|| format!("verifying {}", args.image))?;
    if let Some(path) = &args.sbom {
        let bytes = tokio::fs::read(path)
            .await
            .with_context(|| format!("reading the SBOM {}", path.display()))?;
        verify::check_sbom(
            &bytes,
            &path.display().to_string(),
            &verified.reference,
            &verified.digest,
        )?;
    }
    crate::output::print(global, &verified, text)?;
    Ok(ExitCode::SUCCESS)
}

fn text(v: &Verified) -> String {
    let mut out = format!(
        "Verified {}\n  signature    by key {} (signed as {})\n",
        v.reference, v.key, v.signed_identity
    );
    for a in &v.attestations {
        out.push_str(&format!(
            "  attestation  {}{}\n",
            a.predicate_type,
            summary(a)
        ));
    }
    for r in &v.referrers {
        out.push_str(&format!(
            "  referrer     {} {}\n",
            r.artifact_type, r.digest
        ));
    }
    out.trim_end().to_string()
}

/// A few words on what an attestation says.
fn summary(a: &verify::Attestation) -> String {
    let s: serde_json::Value = serde_json::from_slice(&a.statement).unwrap_or_default();
    let p = &s["predicate"];
    if let Some(packages) = p["packages"].as_array() {
        return format!(" ({} packages)", packages.len());
    }
    if let Some(components) = p["components"].as_array() {
        return format!(" ({} components)", components.len());
    }
    let deps = &p["buildDefinition"]["resolvedDependencies"];
    match deps.as_array().and_then(|d| d.first()) {
        Some(d) if d["digest"]["gitCommit"].is_string() => format!(
            " (commit {}{})",
            d["digest"]["gitCommit"].as_str().unwrap_or_default(),
            if d["annotations"]["dirty"] == true {
                ", dirty tree"
            } else {
                ""
            }
        ),
        _ => String::new(),
    }
}
