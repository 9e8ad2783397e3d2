//! The crate's error type.

use std::path::PathBuf;

use crate::validation::FieldErrors;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// okonomi.toml is not valid TOML or a field has the wrong type or name.
    #[error("{}{location}: {field}: {message}", path.display())]
    ManifestSyntax {
        /// The okonomi.toml file.
        path: PathBuf,
        /// `:LINE:COLUMN` of the offending text, or empty.
        location: String,
        /// Dotted path of the offending field (e.g. `scale.min`), or `(document)`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// okonomi.toml parsed, but values break the rules (ranges, names, …).
    #[error("{}: invalid okonomi.toml:\n{causes}", path.display())]
    ManifestInvalid {
        /// The okonomi.toml file.
        path: PathBuf,
        /// One cause per offending field.
        causes: FieldErrors,
    },
    /// A profile was asked for by name and okonomi.toml does not define it.
    #[error("{}: no profile {name:?} ([profiles.{name}]); defined: {known}", path.display())]
    UnknownProfile {
        /// The okonomi.toml file.
        path: PathBuf,
        /// The requested profile.
        name: String,
        /// The profiles the file defines, comma-separated.
        known: String,
    },
    /// A rendered or submitted object breaks Knative's rules.
    #[error("invalid {kind} {name:?}:\n{causes}")]
    Invalid {
        /// Kind of the object.
        kind: String,
        /// Name of the object.
        name: String,
        /// One cause per offending field.
        causes: FieldErrors,
    },
    /// An object could not be written as YAML.
    #[error("cannot write YAML: {0}")]
    Yaml(#[from] serde_saphyr::ser_error::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
