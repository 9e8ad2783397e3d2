//! The engine's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the engine was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Knative's ConfigMaps could not be set up (or a setting given at
    /// start is refused as Knative refuses it).
    #[error("Knative's ConfigMaps: {0}")]
    KnativeConfig(#[source] Box<crate::serving_config::SeedError>),
    /// A configuration file is invalid.
    #[error("invalid config {}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Pulling or unpacking an image failed.
    #[error("image {reference}: {message}")]
    Image {
        /// The image reference.
        reference: String,
        /// What went wrong.
        message: String,
    },
    /// Building an `okonomi://` function failed.
    #[error("building {path}: {message}")]
    Build {
        /// The function's path.
        path: String,
        /// What went wrong (with cargo's output tail).
        message: String,
    },
    /// An instance could not be started.
    #[error("starting instance of {revision}: {message}")]
    Instance {
        /// The revision.
        revision: String,
        /// What went wrong.
        message: String,
    },
    /// The API server or its store failed.
    #[error("api server: {0}")]
    Api(String),
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
