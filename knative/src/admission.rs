//! Knative's admission webhook as one pure function over JSON objects, for
//! API servers that store `serde_json::Value` (okonomi's engine): decode the
//! object into its typed form, apply [`SetDefaults`], run [`Validate`] (or
//! [`Validate::validate_update`] against the stored object), write the
//! defaulted object back.
//!
//! Decoding also prunes fields the types do not know, as kube-apiserver
//! prunes what a structural CRD schema does not list.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::defaults::SetDefaults;
use crate::serving::{Configuration, Revision, Route, Service};
use crate::validation::{FieldError, FieldErrors, Validate, ValidationConfig};

/// The Knative kinds admission knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KnativeKind {
    /// `services.serving.knative.dev`.
    Service,
    /// `configurations.serving.knative.dev`.
    Configuration,
    /// `revisions.serving.knative.dev`.
    Revision,
    /// `routes.serving.knative.dev`.
    Route,
}

impl KnativeKind {
    /// From a kind (`Service`) or a plural resource name (`services`).
    pub fn parse(kind_or_plural: &str) -> Option<Self> {
        match kind_or_plural {
            "Service" | "services" => Some(Self::Service),
            "Configuration" | "configurations" => Some(Self::Configuration),
            "Revision" | "revisions" => Some(Self::Revision),
            "Route" | "routes" => Some(Self::Route),
            _ => None,
        }
    }
}

/// The kind of write being admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// A new object.
    Create,
    /// A change of spec or metadata; `old` is the stored object.
    Update,
    /// A write to the `/status` subresource: types are checked, nothing else
    /// (controllers own status).
    UpdateStatus,
}

/// Defaults and validates `object` in place. `old` is the stored object for
/// updates. On rejection returns every cause, each with its field path
/// (`spec.template.spec.containers[0].image`), ready for a `metav1.Status`
/// of reason `Invalid`.
pub fn admit(
    kind: KnativeKind,
    write: Write,
    old: Option<&Value>,
    object: &mut Value,
    config: &ValidationConfig,
) -> Result<(), FieldErrors> {
    match kind {
        KnativeKind::Service => admit_typed::<Service>(write, old, object, config),
        KnativeKind::Configuration => admit_typed::<Configuration>(write, old, object, config),
        KnativeKind::Revision => admit_typed::<Revision>(write, old, object, config),
        KnativeKind::Route => admit_typed::<Route>(write, old, object, config),
    }
}

fn admit_typed<T>(
    write: Write,
    old: Option<&Value>,
    object: &mut Value,
    config: &ValidationConfig,
) -> Result<(), FieldErrors>
where
    T: DeserializeOwned + Serialize + SetDefaults + Validate,
{
    let mut typed: T = decode(object)?;
    if write == Write::UpdateStatus {
        return Ok(());
    }
    typed.set_defaults(config);
    let causes = match (write, old) {
        (Write::Update, Some(old)) => {
            // The stored object passed admission once; if it no longer decodes
            // (an older format), judge the new one on its own.
            match serde_json::from_value::<T>(old.clone()) {
                Ok(old) => typed.validate_update(&old, config),
                Err(_) => typed.validate(config),
            }
        }
        _ => typed.validate(config),
    };
    causes.into_result()?;
    *object = serde_json::to_value(&typed).map_err(|e| {
        FieldErrors(vec![FieldError::invalid(
            "",
            format!("cannot encode the object: {e}"),
        )])
    })?;
    Ok(())
}

fn decode<T: DeserializeOwned>(object: &Value) -> Result<T, FieldErrors> {
    serde_path_to_error::deserialize(object).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { String::new() } else { path };
        FieldErrors(vec![FieldError::invalid(
            field,
            error.into_inner().to_string(),
        )])
    })
}
