//! The crate's error type. Every variant maps to one `metav1.Status`, rendered once
//! at the HTTP edge by [`Error::to_status`].

use crate::status::{Status, StatusCause, StatusDetails};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the store and the API server can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object (or the namespace it would live in) does not exist.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// Group-qualified resource, e.g. `services.serving.knative.dev` or `namespaces`.
        resource: String,
        /// API group (empty for the core group).
        group: String,
        /// Plural resource name, e.g. `services`.
        plural: String,
        /// Object name.
        name: String,
    },
    /// An object with this name already exists.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// Group-qualified resource.
        resource: String,
        /// API group.
        group: String,
        /// Plural resource name.
        plural: String,
        /// Object name.
        name: String,
    },
    /// The write was based on a stale resourceVersion.
    #[error(
        "Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict {
        /// Group-qualified resource.
        resource: String,
        /// API group.
        group: String,
        /// Plural resource name.
        plural: String,
        /// Object name.
        name: String,
    },
    /// A server-side apply would change fields other managers own; `causes` name
    /// each field and its manager (reason `FieldManagerConflict`).
    #[error("{message}")]
    ApplyConflict {
        /// Kubernetes' text: `Apply failed with 1 conflict: conflict with "m": .spec.x`.
        message: String,
        /// One cause per conflicting field.
        causes: Vec<StatusCause>,
    },
    /// The object failed validation; `causes` name the fields.
    #[error(
        "{} \"{name}\" is invalid: {}",
        qualified_kind(kind, group),
        summary(causes)
    )]
    Invalid {
        /// Kind, e.g. `Service`.
        kind: String,
        /// API group.
        group: String,
        /// Object name.
        name: String,
        /// What is wrong, field by field.
        causes: Vec<StatusCause>,
    },
    /// The request itself is malformed (bad selector, bad patch, bad JSON, …).
    #[error("{0}")]
    BadRequest(String),
    /// A watch asked for a resourceVersion older than the retained history, or a
    /// watcher fell too far behind.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// The resourceVersion asked for (or reached).
        requested: u64,
        /// The oldest resourceVersion still available.
        oldest: u64,
    },
    /// A watch or list asked for a resourceVersion the store has not reached
    /// (Kubernetes' `ResourceVersionTooLarge`, a 504 Timeout).
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion {
        /// The resourceVersion asked for.
        requested: u64,
        /// The store's latest.
        current: u64,
    },
    /// A list's continue token names a resourceVersion older than the retained
    /// history: the rest of that list can no longer be shown consistently.
    #[error(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."
    )]
    ContinueExpired,
    /// The request's content type is not supported (e.g. strategic merge patch).
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {accepted}"
    )]
    UnsupportedMediaType {
        /// The media types that are accepted.
        accepted: String,
    },
    /// The verb is not supported on this path.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// The request is understood but not allowed (e.g. deleting the `default`
    /// namespace).
    #[error("{0}")]
    Forbidden(String),
    /// The server does not offer this (e.g. pod logs with no log backend).
    #[error("{0}")]
    NotImplemented(String),
    /// No or a wrong bearer token.
    #[error("Unauthorized")]
    Unauthorized,
    /// The disk holding the database is full.
    #[error(
        "the disk holding {path} is full: free some space there (the server keeps \
         every object in that file) and try again"
    )]
    DiskFull {
        /// The database file.
        path: String,
    },
    /// The SQLite database failed.
    #[error("storage error in {path}: {source}")]
    Storage {
        /// The database file.
        path: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading or writing a file of the server's state failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Generating or loading certificates failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A kubeconfig file could not be parsed or merged.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The kubeconfig file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A bug or an impossible state; the message says which.
    #[error("internal error: {0}")]
    Internal(String),
}

/// `Kind` for the core group, `Kind.group` otherwise (as Kubernetes words it).
fn qualified_kind(kind: &str, group: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    }
}

fn summary(causes: &[StatusCause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    match parts.len() {
        0 => "invalid object".into(),
        1 => parts.concat(),
        _ => format!("[{}]", parts.join(", ")),
    }
}

impl Error {
    /// The HTTP status code of this error.
    pub fn code(&self) -> u16 {
        match self {
            Error::NotFound { .. } => 404,
            Error::AlreadyExists { .. } => 409,
            Error::Conflict { .. } | Error::ApplyConflict { .. } => 409,
            Error::Invalid { .. } => 422,
            Error::BadRequest(_) => 400,
            Error::Expired { .. } | Error::ContinueExpired => 410,
            Error::TooLargeResourceVersion { .. } => 504,
            Error::UnsupportedMediaType { .. } => 415,
            Error::MethodNotAllowed => 405,
            Error::Unauthorized => 401,
            Error::Forbidden(_) => 403,
            Error::NotImplemented(_) => 501,
            Error::Storage { .. }
            | Error::DiskFull { .. }
            | Error::Io { .. }
            | Error::Tls(_)
            | Error::Kubeconfig { .. }
            | Error::Internal(_) => 500,
        }
    }

    /// The Kubernetes reason of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "NotFound",
            Error::AlreadyExists { .. } => "AlreadyExists",
            Error::Conflict { .. } | Error::ApplyConflict { .. } => "Conflict",
            Error::Invalid { .. } => "Invalid",
            Error::BadRequest(_) => "BadRequest",
            Error::Expired { .. } | Error::ContinueExpired => "Expired",
            Error::TooLargeResourceVersion { .. } => "Timeout",
            Error::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            Error::MethodNotAllowed => "MethodNotAllowed",
            Error::Unauthorized => "Unauthorized",
            Error::Forbidden(_) => "Forbidden",
            Error::NotImplemented(_) => "NotImplemented",
            _ => "InternalError",
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// True for [`Error::Conflict`] (a stale resourceVersion).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    /// True for [`Error::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }

    /// This error as a `metav1.Status`.
    pub fn to_status(&self) -> Status {
        let status = Status::failure(self.code(), self.reason(), self.to_string());
        match self {
            Error::NotFound {
                group,
                plural,
                name,
                ..
            }
            | Error::AlreadyExists {
                group,
                plural,
                name,
                ..
            }
            | Error::Conflict {
                group,
                plural,
                name,
                ..
            } => status.with_details(StatusDetails {
                name: name.clone(),
                group: group.clone(),
                kind: plural.clone(),
                ..Default::default()
            }),
            Error::ApplyConflict { causes, .. } => status.with_details(StatusDetails {
                causes: causes.clone(),
                ..Default::default()
            }),
            Error::TooLargeResourceVersion { .. } => status.with_details(StatusDetails {
                causes: vec![StatusCause {
                    reason: "ResourceVersionTooLarge".into(),
                    message: "Too large resource version".into(),
                    field: String::new(),
                }],
                ..Default::default()
            }),
            Error::Invalid {
                kind,
                group,
                name,
                causes,
            } => status.with_details(StatusDetails {
                name: name.clone(),
                group: group.clone(),
                kind: kind.clone(),
                causes: causes.clone(),
                ..Default::default()
            }),
            _ => status,
        }
    }
}
