//! `okonomi keygen`: an ECDSA P-256 key pair for signing images, the private
//! key as encrypted PKCS#8 PEM (mode 0600), the public key as PEM, which
//! cosign, Kyverno and Sigstore's policy-controller verify with.

use std::path::PathBuf;
use std::process::ExitCode;

use okonomi_image::signing;

use crate::global::Global;

const EXAMPLES: &str = "\
Examples:
  OKONOMI_SIGNING_PASSWORD=… okonomi keygen               # okonomi.key + okonomi.pub
  OKONOMI_SIGNING_PASSWORD=… okonomi keygen keys/release  # keys/release.key + .pub
  okonomi build --sign okonomi.key --registry 127.0.0.1:5000/okonomi
  okonomi verify 127.0.0.1:5000/okonomi/hello@sha256:… --key okonomi.pub

The password comes from OKONOMI_SIGNING_PASSWORD (never from the command line, where
ps and shell history would show it). The private key is PKCS#8 encrypted with scrypt and
AES-256-CBC; `openssl pkey -in okonomi.key` reads it. See docs/supply-chain.md.";

/// Arguments of `okonomi keygen`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Where to write: PREFIX.key (private, 0600) and PREFIX.pub.
    #[arg(default_value = "okonomi")]
    pub prefix: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
}

/// Runs `okonomi keygen`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let password = std::env::var(signing::PASSWORD_ENV).map_err(|_| {
        anyhow::anyhow!(
            "set {} to the password that will protect the private key",
            signing::PASSWORD_ENV
        )
    })?;
    let pair = signing::generate(password.as_bytes())?;
    let (private, public) = signing::write_key_pair(&args.prefix, &pair, args.force)?;
    global.status(
        "Wrote",
        format!(
            "private key {} (0600, encrypted) and public key {}",
            private.display(),
            public.display()
        ),
    );
    println!("{}", public.display());
    Ok(ExitCode::SUCCESS)
}
