//! `okonomi verify`: check an image's cosign signature, its signed SBOM and
//! provenance attestations and its referrers against a public key, and print
//! what was found.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use okonomi_image::signing::PublicKey;
use okonomi_image::verify::Verification;

use crate::global::Global;

const EXAMPLES: &str = "\
Examples:
  okonomi verify 127.0.0.1:5000/okonomi/hello@sha256:… --key okonomi.pub
  okonomi verify ghcr.io/me/hello:latest --key okonomi.pub -o json

Checks: the signature over the digest (cosign's simple signing, tag sha256-HEX.sig or a
referrer); the signed SPDX, CycloneDX and SLSA provenance attestations (tag
sha256-HEX.att), each naming this digest; and the SBOM and provenance referrers. Exit code
1 when anything is missing, signed by another key, or describes another image.";

/// Arguments of `okonomi verify`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// The image: REGISTRY/NAME@sha256:… (what `okonomi build` prints) or REGISTRY/NAME:TAG.
    pub image: String,
    /// The public key (PEM) the image must be signed with.
    #[arg(long, env = "OKONOMI_VERIFY_KEY", value_name = "PUB")]
    pub key: PathBuf,
    /// Speak plain HTTP to this registry even though it is not on loopback.
    #[arg(long)]
    pub insecure_registry: bool,
}

/// Runs `okonomi verify`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let key = PublicKey::read(&args.key)?;
    let verification =
        okonomi_image::verify::verify(&args.image, &key, args.insecure_registry, None).await?;
    crate::output::print(global, &verification, |v| summary(v, &args.key))?;
    if verification.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!(
            "{}: {}",
            verification.reference,
            verification.problems.join("; ")
        )
    }
}

fn summary(v: &Verification, key: &std::path::Path) -> String {
    let mut out = String::new();
    let verdict = if v.problems.is_empty() {
        "Verified"
    } else {
        "NOT verified"
    };
    let _ = writeln!(out, "{verdict} {}", v.reference);
    match &v.signature {
        Some(place) => {
            let _ = writeln!(
                out,
                "  signature   ok: cosign simple signing by {} ({place})",
                key.display()
            );
            if let Some(identity) = &v.signed_identity {
                let _ = writeln!(out, "  identity    {identity}");
            }
        }
        None => {
            let _ = writeln!(out, "  signature   none that verifies");
        }
    }
    for sbom in &v.sboms {
        let _ = writeln!(
            out,
            "  SBOM        {}: {} packages, {}",
            sbom.format,
            sbom.packages,
            if sbom.signed {
                "signed"
            } else {
                "unsigned referrer"
            }
        );
    }
    if let Some(p) = &v.provenance {
        let _ = writeln!(
            out,
            "  provenance  commit {}{}, okonomi {}, {}, {}, profile {}, SOURCE_DATE_EPOCH {}, {}",
            p.commit.as_deref().unwrap_or("unknown"),
            match p.dirty {
                Some(true) => " (dirty)",
                Some(false) => " (clean)",
                None => "",
            },
            p.okonomi,
            p.rustc,
            p.targets.join(", "),
            p.profile,
            p.source_date_epoch,
            if p.signed {
                "signed"
            } else {
                "unsigned referrer"
            }
        );
    }
    let _ = write!(
        out,
        "  referrers   {} ({})",
        v.referrers.len(),
        if v.referrers_api {
            "OCI referrers API".to_string()
        } else {
            format!(
                "tag {}: the registry has no referrers API",
                okonomi_image::attach::referrers_tag(&v.digest)
            )
        }
    );
    for problem in &v.problems {
        let _ = write!(out, "\n  problem     {problem}");
    }
    out
}
