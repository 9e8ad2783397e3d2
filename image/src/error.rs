//! The one error type of the image builder, with the context a user needs to act.

use std::path::PathBuf;

/// Everything that can go wrong while building, writing or publishing an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path given to build has no Cargo.toml.
    #[error(
        "{path} is not a Cargo crate (no Cargo.toml there): pass the directory of a function crate"
    )]
    NotACrate {
        /// The directory that was searched.
        path: PathBuf,
    },
    /// The crate does not depend on the okonomi runtime or has no binary target.
    #[error("{path} is not an okonomi function: {reason}")]
    NotAFunction {
        /// The crate's Cargo.toml.
        path: PathBuf,
        /// What is missing, and how to add it.
        reason: String,
    },
    /// `cargo metadata` failed or printed something unexpected.
    #[error("cargo metadata failed for {path}: {message}")]
    Metadata {
        /// The manifest that was inspected.
        path: PathBuf,
        /// cargo's message.
        message: String,
    },
    /// The rustup target for a platform is not installed.
    #[error(
        "the Rust target {target} (for {platform}) is not installed: run `rustup target add {target}`"
    )]
    MissingTarget {
        /// The rustc target triple, e.g. `aarch64-unknown-linux-musl`.
        target: String,
        /// The OCI platform it builds for.
        platform: String,
    },
    /// A cross build needs zig or cargo-zigbuild and it is missing.
    #[error("{tool} is not installed (needed to link {platform}): run `{install}`")]
    MissingTool {
        /// The missing program.
        tool: String,
        /// The platform that needs it.
        platform: String,
        /// The command that installs it.
        install: String,
    },
    /// The platform string is not one okonomi builds for.
    #[error("unsupported platform {0:?}: use linux/amd64, linux/arm64 or linux/riscv64")]
    UnsupportedPlatform(String),
    /// The compiler failed.
    #[error("cargo build of {package} for {target} failed ({status}){output}")]
    Compile {
        /// The package being built.
        package: String,
        /// The rustc target triple.
        target: String,
        /// cargo's exit status.
        status: String,
        /// Captured compiler output (empty when it went to the terminal).
        output: String,
    },
    /// cargo finished but named no executable for the package.
    #[error("cargo build of {package} produced no executable")]
    NoExecutable {
        /// The package being built.
        package: String,
    },
    /// A program could not be started at all.
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program, e.g. `cargo`.
        program: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The image reference or registry name is malformed.
    #[error("invalid image reference {reference:?}: {message}")]
    InvalidReference {
        /// What was given.
        reference: String,
        /// What is wrong with it.
        message: String,
    },
    /// No registry was configured anywhere.
    #[error(
        "no registry configured: pass --registry, set OKONOMI_REGISTRY, or set [build] registry in okonomi.toml (or use --local DIR)"
    )]
    NoRegistry,
    /// The registry could not be reached at all.
    #[error("registry {registry} is unreachable ({url}): {message}")]
    RegistryUnreachable {
        /// The registry host.
        registry: String,
        /// The URL that was tried.
        url: String,
        /// The transport error.
        message: String,
    },
    /// The registry refused the credentials (or their absence).
    #[error(
        "registry {registry} answered {status} for {operation}: credentials tried: {credential}; check them (docker login {registry}) or the repository permissions"
    )]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// 401 or 403.
        status: u16,
        /// What was being done, e.g. `HEAD blob`.
        operation: String,
        /// Where the credentials came from, e.g. `~/.docker/config.json auths`.
        credential: String,
    },
    /// Any other registry failure.
    #[error("registry {registry}: {operation} failed: {message}")]
    Registry {
        /// The registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// The registry's error.
        message: String,
    },
    /// The docker configuration or a credential helper failed.
    #[error("credentials for {registry}: {message}")]
    Credentials {
        /// The registry host.
        registry: String,
        /// What went wrong and where.
        message: String,
    },
    /// A signing or verification key could not be read.
    #[error("key {path}: {message}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The private key did not decrypt with the password given.
    #[error(
        "key {path}: wrong password (from ${env}): the key did not decrypt ({message}); set {env} to the password given to `okonomi keygen`"
    )]
    KeyPassword {
        /// The key file.
        path: PathBuf,
        /// The environment variable the password came from.
        env: &'static str,
        /// The decryption error.
        message: String,
    },
    /// The registry would not store a signature, SBOM or attestation.
    #[error(
        "registry {registry} refused the {what} for {digest} ({message}); the image itself was pushed, but it is not signed or attested there: make the repository writable for this credential, or push to another registry"
    )]
    AttachRefused {
        /// The registry host.
        registry: String,
        /// What was being stored, e.g. `signature (tag sha256-….sig)`.
        what: String,
        /// The image digest it is for.
        digest: String,
        /// The registry's answer.
        message: String,
    },
    /// Verification found a problem (no signature, a bad one, an SBOM for another image).
    #[error("{reference}: {message}")]
    Verify {
        /// The image verified.
        reference: String,
        /// What failed, and what to do.
        message: String,
    },
    /// Gathering what an SBOM or provenance needs failed (cargo tree, rustc -vV, git).
    #[error("{what} for {path}: {message}")]
    Inventory {
        /// What was being gathered.
        what: String,
        /// The crate.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A YAML document could not be read or written by resolve.
    #[error("{path}: invalid YAML: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// Result with the image builder's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
