//! `okonomi keygen`: a new ECDSA P-256 key pair for `okonomi build --sign`, in
//! formats cosign, Kyverno and Sigstore's policy-controller read: PREFIX.key
//! (PKCS#8 PEM encrypted with OKONOMI_KEY_PASSWORD, mode 0600) and PREFIX.pub
//! (SPKI PEM).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use okonomi_image::sign::{self, PASSWORD_ENV};
use serde::Serialize;

use crate::global::Global;

const EXAMPLES: &str = "\
Examples:
  OKONOMI_KEY_PASSWORD=… okonomi keygen                  # okonomi.key + okonomi.pub
  OKONOMI_KEY_PASSWORD=… okonomi keygen --output-key-prefix keys/hello
  cosign verify --key okonomi.pub --insecure-ignore-tlog IMAGE

The password is read from OKONOMI_KEY_PASSWORD only (never a flag: flags show in `ps`).
An empty password is refused. Existing files are never overwritten.";

/// Arguments of `okonomi keygen`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Path prefix of the pair: writes PREFIX.key and PREFIX.pub.
    /// (cosign keygen's flag name; `-o` is the output format, as everywhere.)
    #[arg(long, default_value = "okonomi", value_name = "PREFIX")]
    pub output_key_prefix: PathBuf,
}

/// What keygen prints with `-o json|yaml`.
#[derive(Debug, Serialize)]
pub struct KeygenReport {
    /// The encrypted private key.
    pub private_key: PathBuf,
    /// The public key.
    pub public_key: PathBuf,
    /// sha256 of the DER public key.
    pub fingerprint: String,
}

/// Runs `okonomi keygen`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let password = std::env::var_os(PASSWORD_ENV)
        .filter(|p| !p.is_empty())
        .with_context(|| {
            format!("set {PASSWORD_ENV} to the password that will protect the private key")
        })?;
    let prefix = args.output_key_prefix.clone();
    // scrypt key derivation takes a moment of CPU: keep it off the async threads.
    let (private_key, public_key, public) = tokio::task::spawn_blocking(move || {
        sign::write_key_pair(&prefix, password.as_encoded_bytes())
    })
    .await
    .context("key generation stopped")??;
    global.status(
        "Wrote",
        format!(
            "{} (encrypted, 0600) and {}",
            private_key.display(),
            public_key.display()
        ),
    );
    let report = KeygenReport {
        private_key,
        public_key,
        fingerprint: public.fingerprint(),
    };
    crate::output::print(global, &report, |r| r.public_key.display().to_string())?;
    Ok(ExitCode::SUCCESS)
}
