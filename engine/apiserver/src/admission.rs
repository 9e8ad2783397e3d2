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

/// Defaulting and validation of objects before they are stored.
///
/// The store calls [`admit`](Admission::admit) on every create, update, patch and
/// status update, after it has applied its own semantics (status kept or taken,
/// metadata carried over) and before it assigns uid, generation and resourceVersion.
/// Implementations mutate `object` to apply defaults, then validate it; returning
/// `Err(causes)` rejects the write with a `422 Invalid` whose causes name the fields.
pub trait Admission: Send + Sync + 'static {
    /// Default then validate `object`.
    fn admit(
        &self,
        request: &AdmissionRequest<'_>,
        object: &mut Value,
    ) -> Result<(), Vec<StatusCause>>;
}

/// Admission that accepts everything unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAdmission;

impl Admission for NoAdmission {
    fn admit(&self, _: &AdmissionRequest<'_>, _: &mut Value) -> Result<(), Vec<StatusCause>> {
        Ok(())
    }
}
