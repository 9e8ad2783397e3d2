//! [`Validate`] for the four kinds: metadata, template, traffic and the
//! rules about what an update may change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{
    FieldError, FieldErrors, TrafficContext, ValidationConfig, check_dns1035_label,
    check_dns1123_label, parse_duration, validate_autoscaling_annotations, validate_revision_spec,
    validate_revision_template, validate_traffic,
};
use crate::keys;
use crate::serving::{Configuration, Revision, Route, Service};

/// Knative's admission checks for a kind, beyond what the CRD schema says.
/// Run them after [`crate::defaults::SetDefaults`], as Knative's webhook does.
pub trait Validate {
    /// Every rule the object breaks (empty when valid).
    fn validate(&self, config: &ValidationConfig) -> FieldErrors;

    /// [`Validate::validate`] plus the rules about what may change from `old`.
    fn validate_update(&self, old: &Self, config: &ValidationConfig) -> FieldErrors {
        let _ = old;
        self.validate(config)
    }
}

fn validate_metadata(meta: &ObjectMeta, errors: &mut FieldErrors) {
    match meta.name.as_deref().filter(|name| !name.is_empty()) {
        Some(name) => {
            if let Err(problem) = check_dns1035_label(name) {
                errors.push(FieldError::invalid("metadata.name", problem));
            }
        }
        None => match meta
            .generate_name
            .as_deref()
            .filter(|prefix| !prefix.is_empty())
        {
            // generateName gets 5 random characters appended by the API server.
            Some(prefix) => {
                let sample = format!("{prefix}abcde");
                if let Err(problem) = check_dns1035_label(&sample) {
                    errors.push(FieldError::invalid("metadata.generateName", problem));
                }
            }
            None => errors.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            )),
        },
    }
    if let Some(namespace) = meta.namespace.as_deref().filter(|ns| !ns.is_empty())
        && let Err(problem) = check_dns1123_label(namespace)
    {
        errors.push(FieldError::invalid("metadata.namespace", problem));
    }
    if let Some(value) = meta
        .labels
        .as_ref()
        .and_then(|labels| labels.get(keys::VISIBILITY_LABEL))
        && value != keys::VISIBILITY_CLUSTER_LOCAL
    {
        errors.push(FieldError::not_supported(
            format!("metadata.labels.{}", keys::VISIBILITY_LABEL),
            format!(
                "{value:?} is not supported; use {:?} or leave the label out",
                keys::VISIBILITY_CLUSTER_LOCAL
            ),
        ));
    }
    if let Some(value) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(keys::ROLLOUT_DURATION_ANNOTATION))
        && let Err(problem) = parse_duration(value)
    {
        errors.push(FieldError::invalid(
            format!("metadata.annotations.{}", keys::ROLLOUT_DURATION_ANNOTATION),
            problem,
        ));
    }
}

/// A fixed template name promises a fixed Revision: the template may not
/// change under the same name (Knative: "Saw the following changes without a
/// name change").
fn validate_template_rename(
    new: &crate::serving::RevisionTemplateSpec,
    old: &crate::serving::RevisionTemplateSpec,
    errors: &mut FieldErrors,
) {
    if let Some(name) = new.metadata.name.as_deref().filter(|n| !n.is_empty())
        && old.metadata.name.as_deref() == Some(name)
        && new != old
    {
        errors.push(FieldError::invalid(
            "spec.template.metadata.name",
            format!("the template changed but kept the name {name:?}; give it a new name (or remove the name)"),
        ));
    }
}

impl Validate for Service {
    fn validate(&self, config: &ValidationConfig) -> FieldErrors {
        let mut errors = FieldErrors::new();
        validate_metadata(&self.metadata, &mut errors);
        let name = self.metadata.name.as_deref().unwrap_or_default();
        errors.extend(validate_revision_template(
            &self.spec.template,
            Some(name).filter(|n| !n.is_empty()),
            "spec.template",
            config,
        ));
        errors.extend(validate_traffic(
            &self.spec.traffic,
            "spec.traffic",
            TrafficContext::Service,
            name,
        ));
        errors
    }

    fn validate_update(&self, old: &Self, config: &ValidationConfig) -> FieldErrors {
        let mut errors = self.validate(config);
        validate_template_rename(&self.spec.template, &old.spec.template, &mut errors);
        errors
    }
}

impl Validate for Configuration {
    fn validate(&self, config: &ValidationConfig) -> FieldErrors {
        let mut errors = FieldErrors::new();
        validate_metadata(&self.metadata, &mut errors);
        let name = self.metadata.name.as_deref().filter(|n| !n.is_empty());
        errors.extend(validate_revision_template(
            &self.spec.template,
            name,
            "spec.template",
            config,
        ));
        errors
    }

    fn validate_update(&self, old: &Self, config: &ValidationConfig) -> FieldErrors {
        let mut errors = self.validate(config);
        validate_template_rename(&self.spec.template, &old.spec.template, &mut errors);
        errors
    }
}

impl Validate for Route {
    fn validate(&self, _config: &ValidationConfig) -> FieldErrors {
        let mut errors = FieldErrors::new();
        validate_metadata(&self.metadata, &mut errors);
        let name = self.metadata.name.as_deref().unwrap_or_default();
        errors.extend(validate_traffic(
            &self.spec.traffic,
            "spec.traffic",
            TrafficContext::Route,
            name,
        ));
        errors
    }
}

impl Validate for Revision {
    fn validate(&self, config: &ValidationConfig) -> FieldErrors {
        let mut errors = FieldErrors::new();
        validate_metadata(&self.metadata, &mut errors);
        if let Some(annotations) = &self.metadata.annotations {
            errors.extend(validate_autoscaling_annotations(
                annotations,
                "metadata.annotations",
                config,
            ));
        }
        errors.extend(validate_revision_spec(&self.spec, "spec", config));
        errors
    }

    fn validate_update(&self, old: &Self, config: &ValidationConfig) -> FieldErrors {
        let mut errors = self.validate(config);
        if self.spec != old.spec {
            errors.push(FieldError::forbidden(
                "spec",
                "a Revision is immutable; change the Service or Configuration template to get a new one",
            ));
        }
        errors
    }
}
