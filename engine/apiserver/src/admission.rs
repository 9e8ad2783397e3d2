//! Admission: kind-specific defaulting and validation, plugged into the [`Store`]
//! from outside so that Knative's rules live in `okonomi-knative`, not here.
//!
//! [`Store`]: crate::Store

use serde_json::Value;

use crate::resource::ResourceType;
use crate::status::StatusCause;

/// Which write is being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A new object (POST, or an apply patch that creates).
    Create,
    /// A change to an existing object's spec or metadata (PUT, PATCH).
    Update,
    /// A change to an existing object's status (`/status` subresource).
    UpdateStatus,
}

/// What is being written, for [`Admission::admit`].
#[derive(Debug, Clone, Copy)]
pub struct AdmissionRequest<'a> {
    /// The type of the object.
    pub resource: &'a ResourceType,
    /// The kind of write.
    pub operation: Operation,
    /// The object as stored before this write (`None` for a create).
    pub old: Option<&'a Value>,
    /// The field manager of the write (`kubectl-client-side-apply`, `kn`, …), if given.
    pub field_manager: Option<&'a str>,
}

/// Why admission refused a write: the two ways a Kubernetes API server
/// answers a refused object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The API server's own validation, as for a built-in kind: `422
    /// Invalid`, the causes naming the fields.
    Invalid(Vec<StatusCause>),
    /// A validating admission webhook said no, as Knative's do for its
    /// kinds and ConfigMaps: `400 BadRequest` with the message
    /// `admission webhook "WEBHOOK" denied the request: MESSAGE`, which is
    /// what kubectl and kn users see from a cluster.
    Webhook {
        /// The webhook's name, e.g. `validation.webhook.serving.knative.dev`.
        webhook: String,
        /// What it said, e.g. `validation failed: …`.
        message: String,
    },
}

impl From<Vec<StatusCause>> for Denial {
    fn from(causes: Vec<StatusCause>) -> Self {
        Self::Invalid(causes)
    }
}

/// Defaulting and validation of objects before they are stored.
///
/// The store calls [`admit`](Admission::admit) on every create, update, patch and
/// status update, after it has applied its own semantics (status kept or taken,
/// metadata carried over) and before it assigns uid, generation and resourceVersion.
/// Implementations mutate `object` to apply defaults, then validate it; returning
/// a [`Denial`] rejects the write.
pub trait Admission: Send + Sync + 'static {
    /// Default then validate `object`.
    fn admit(&self, request: &AdmissionRequest<'_>, object: &mut Value) -> Result<(), Denial>;
}

/// Admission that accepts everything unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAdmission;

impl Admission for NoAdmission {
    fn admit(&self, _: &AdmissionRequest<'_>, _: &mut Value) -> Result<(), Denial> {
        Ok(())
    }
}
