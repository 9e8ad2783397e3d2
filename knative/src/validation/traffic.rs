//! Traffic block rules (Knative's `TrafficTarget.Validate` and
//! `validateTrafficList`): one target kind per entry, consistent
//! `latestRevision`, percents 0–100 that sum to 100, unique DNS-safe tags.

use std::collections::BTreeSet;

use super::{FieldError, FieldErrors, check_dns1035_label, join};
use crate::serving::TrafficTarget;

/// Where a traffic block lives; a Service owns its Configuration, so its
/// targets may not name one and may omit both names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrafficContext {
    /// `spec.traffic` of a Service.
    Service,
    /// `spec.traffic` of a Route.
    Route,
}

/// Checks a traffic block. `base` is its path (`spec.traffic`), `owner` the
/// Service or Route name (tag URLs are `TAG-OWNER`, which must stay a DNS label).
pub fn validate_traffic(
    traffic: &[TrafficTarget],
    base: &str,
    context: TrafficContext,
    owner: &str,
) -> FieldErrors {
    let mut errors = FieldErrors::new();
    let mut tags = BTreeSet::new();
    let mut sum: i64 = 0;
    for (i, target) in traffic.iter().enumerate() {
        let path = format!("{base}[{i}]");
        let revision = target.revision_name.as_deref().filter(|s| !s.is_empty());
        let configuration = target
            .configuration_name
            .as_deref()
            .filter(|s| !s.is_empty());
        if context == TrafficContext::Service && configuration.is_some() {
            errors.push(FieldError::forbidden(
                join(&path, "configurationName"),
                "must not set the field(s): configurationName; a Service routes to its own Configuration (use latestRevision: true)",
            ));
        }
        match (revision, configuration, target.latest_revision) {
            (Some(_), Some(_), _) => errors.push(FieldError::invalid(
                &path,
                "expected exactly one, got both: configurationName, revisionName",
            )),
            (Some(revision), None, Some(true)) => errors.push(FieldError::invalid(
                join(&path, "latestRevision"),
                format!("may not set revisionName {revision:?} when latestRevision is true"),
            )),
            (None, Some(_), Some(false)) => errors.push(FieldError::invalid(
                join(&path, "latestRevision"),
                "may not set latestRevision to false when configurationName is set",
            )),
            (None, None, Some(false)) => errors.push(FieldError::required(
                join(&path, "revisionName"),
                "latestRevision: false needs a revisionName",
            )),
            (None, None, latest) if context == TrafficContext::Route && latest != Some(true) => {
                errors.push(FieldError::required(
                    &path,
                    "expected exactly one, got neither: configurationName, revisionName",
                ))
            }
            (None, None, _) if context == TrafficContext::Route => {
                errors.push(FieldError::required(
                    join(&path, "configurationName"),
                    "a Route's latestRevision target needs the configurationName to follow",
                ))
            }
            _ => {}
        }
        if let Some(percent) = target.percent {
            if !(0..=100).contains(&percent) {
                errors.push(FieldError::invalid(
                    join(&path, "percent"),
                    format!("expected 0 <= {percent} <= 100"),
                ));
            }
            sum = sum.saturating_add(percent);
        }
        if target.url.is_some() {
            errors.push(FieldError::forbidden(
                join(&path, "url"),
                "must not set the field(s): url; it is output only (status.traffic)",
            ));
        }
        if let Some(tag) = &target.tag {
            let tag_path = join(&path, "tag");
            if let Err(problem) = check_dns1035_label(tag) {
                errors.push(FieldError::invalid(&tag_path, problem));
            } else if !owner.is_empty() && tag.len() + 1 + owner.len() > super::DNS_LABEL_MAX_LENGTH
            {
                errors.push(FieldError::invalid(
                    &tag_path,
                    format!("tag URL host label \"{tag}-{owner}\" is longer than 63 characters; shorten the tag"),
                ));
            }
            if !tags.insert(tag.as_str()) {
                errors.push(FieldError::duplicate(
                    &tag_path,
                    format!("multiple definitions for tag {tag:?}"),
                ));
            }
        }
    }
    if !traffic.is_empty() && sum != 100 {
        errors.push(FieldError::invalid(
            format!("{base}.percent"),
            format!("traffic targets sum to {sum}, want 100"),
        ));
    }
    errors
}
