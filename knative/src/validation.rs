//! Field-level errors and the name rules Kubernetes and Knative share.
//!
//! Validation returns every cause it finds, each with a field path
//! (`spec.template.spec.containers[0].ports`) and a message, so the engine can
//! answer with a `metav1.Status` of reason `Invalid` and `details.causes[]`,
//! and the CLI can print them all at once.

use std::fmt;

/// The kind of a cause, as Kubernetes names it in `details.causes[].reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CauseType {
    /// A value is malformed or out of range.
    Invalid,
    /// A required value is missing.
    Required,
    /// A value is not among the supported ones.
    NotSupported,
    /// A value appears twice where it must be unique.
    Duplicate,
    /// A field may not be set (here, or at all).
    Forbidden,
    /// A value is too long.
    TooLong,
}

impl CauseType {
    /// The Kubernetes spelling (`FieldValueInvalid`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            CauseType::Invalid => "FieldValueInvalid",
            CauseType::Required => "FieldValueRequired",
            CauseType::NotSupported => "FieldValueNotSupported",
            CauseType::Duplicate => "FieldValueDuplicate",
            CauseType::Forbidden => "FieldValueForbidden",
            CauseType::TooLong => "FieldValueTooLong",
        }
    }
}

/// One reason an object (or okonomi.toml) was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// What kind of problem.
    pub cause: CauseType,
    /// Path of the field, e.g. `spec.template.spec.timeoutSeconds` or `scale.min`.
    pub field: String,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl FieldError {
    /// A cause of the given type.
    pub fn new(cause: CauseType, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            cause,
            field: field.into(),
            message: message.into(),
        }
    }

    /// A malformed or out-of-range value.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CauseType::Invalid, field, message)
    }

    /// A missing value.
    pub fn required(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CauseType::Required, field, message)
    }

    /// A field that may not be set.
    pub fn forbidden(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CauseType::Forbidden, field, message)
    }

    /// A value outside the supported set.
    pub fn not_supported(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CauseType::NotSupported, field, message)
    }

    /// A repeated value.
    pub fn duplicate(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(CauseType::Duplicate, field, message)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All the causes found in one object; empty means valid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// No causes.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when nothing was wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds one cause.
    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// Adds the causes of another check.
    pub fn extend(&mut self, other: FieldErrors) {
        self.0.extend(other.0);
    }

    /// The causes.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.0.iter()
    }

    /// True when some cause concerns exactly this field path.
    pub fn has_field(&self, field: &str) -> bool {
        self.0.iter().any(|error| error.field == field)
    }

    /// The causes as Knative's webhook words them (`apis.FieldError`): each
    /// `MESSAGE: FIELD`, one per line, as kubectl shows after `admission
    /// webhook "…" denied the request: validation failed: `.
    pub fn webhook_message(&self) -> String {
        self.0
            .iter()
            .map(|error| {
                if error.field.is_empty() {
                    error.message.clone()
                } else {
                    format!("{}: {}", error.message, error.field)
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `Ok(())` when empty, the causes otherwise.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  {error}")?;
        }
        Ok(())
    }
}

impl IntoIterator for FieldErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a FieldErrors {
    type Item = &'a FieldError;
    type IntoIter = std::slice::Iter<'a, FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Longest DNS label (RFC 1035 / 1123).
pub const DNS_LABEL_MAX_LENGTH: usize = 63;

/// Checks an RFC 1035 label (`[a-z]([-a-z0-9]*[a-z0-9])?`, ≤ 63 characters),
/// the rule for Knative Service, Configuration and Route names. Returns the
/// problem in words.
pub fn check_dns1035_label(value: &str) -> Result<(), String> {
    check_dns_label(value, true)
}

/// Checks an RFC 1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ≤ 63
/// characters), the rule for namespaces and container names.
pub fn check_dns1123_label(value: &str) -> Result<(), String> {
    check_dns_label(value, false)
}

fn check_dns_label(value: &str, letter_first: bool) -> Result<(), String> {
    let rule = if letter_first {
        "lowercase letters, digits and '-', starting with a letter and ending with a letter or digit (RFC 1035)"
    } else {
        "lowercase letters, digits and '-', starting and ending with a letter or digit (RFC 1123)"
    };
    if value.is_empty() {
        return Err(format!("must not be empty; use {rule}"));
    }
    if value.len() > DNS_LABEL_MAX_LENGTH {
        return Err(format!(
            "{value:?} is {} characters long; the limit is {DNS_LABEL_MAX_LENGTH}",
            value.len()
        ));
    }
    let bytes = value.as_bytes();
    let valid_chars = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    let first_ok = if letter_first {
        bytes[0].is_ascii_lowercase()
    } else {
        bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit()
    };
    let last = bytes[bytes.len() - 1];
    let last_ok = last.is_ascii_lowercase() || last.is_ascii_digit();
    if valid_chars && first_ok && last_ok {
        Ok(())
    } else {
        Err(format!("{value:?} is not a valid name: use {rule}"))
    }
}

/// Checks a Kubernetes resource quantity (`100m`, `64Mi`, `1.5`, `2e3`).
pub fn check_quantity(value: &str) -> Result<(), String> {
    let digits_end = value
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map(|(i, _)| i)
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(digits_end);
    let number_digits = number.trim_start_matches(['+', '-']);
    let number_ok = !number_digits.is_empty()
        && number_digits != "."
        && number_digits.matches('.').count() <= 1;
    let suffix_ok = matches!(
        suffix,
        "" | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
            | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
    ) || (suffix.len() > 1
        && (suffix.starts_with('e') || suffix.starts_with('E'))
        && suffix[1..]
            .trim_start_matches(['+', '-'])
            .chars()
            .all(|c| c.is_ascii_digit())
        && !suffix[1..].trim_start_matches(['+', '-']).is_empty());
    if number_ok && suffix_ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a quantity: use a number with an optional suffix such as 100m, 0.5, 64Mi or 1Gi"
        ))
    }
}

/// The value of a Kubernetes resource quantity (`100m` → 0.1, `64Mi` →
/// 67108864), or `None` when [`check_quantity`] refuses it.
pub fn quantity_value(value: &str) -> Option<f64> {
    check_quantity(value).ok()?;
    let split = value
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(value.len(), |(i, _)| i);
    let (number, suffix) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent => 10f64.powi(exponent[1..].parse().ok()?),
    };
    Some(number * scale)
}

/// Parses a Go-style duration (`"60s"`, `"1m30s"`, `"1h"`, `"500ms"`) as
/// Knative's duration annotations take it.
pub fn parse_duration(value: &str) -> Result<std::time::Duration, String> {
    let hint = "use a duration such as 6s, 90s, 1m30s or 1h";
    if value.is_empty() {
        return Err(format!("empty duration: {hint}"));
    }
    if value == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = value;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!("{value:?} is not a duration: {hint}"));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| format!("{value:?} is not a duration: {hint}"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("{value:?} lacks a unit: {hint}")),
            unit => return Err(format!("{value:?} has an unknown unit {unit:?}: {hint}")),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    std::time::Duration::try_from_secs_f64(total)
        .map_err(|_| format!("{value:?} is out of range: {hint}"))
}

mod annotations;
mod config;
mod objects;
mod revision;
mod traffic;

pub use annotations::validate_autoscaling_annotations;
pub use config::{FeatureFlags, ValidationConfig};
pub use objects::Validate;
pub use revision::{validate_revision_spec, validate_revision_template};
pub use traffic::{TrafficContext, validate_traffic};

/// `base.field`, or `field` when `base` is empty.
pub(crate) fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_owned()
    } else {
        format!("{base}.{field}")
    }
}

#[cfg(test)]
mod quantity_tests {
    use super::quantity_value;

    #[test]
    fn quantities_have_their_kubernetes_values() {
        assert_eq!(quantity_value("100m"), Some(0.1));
        assert_eq!(quantity_value("2"), Some(2.0));
        assert_eq!(quantity_value("64Mi"), Some(67_108_864.0));
        assert_eq!(quantity_value("1G"), Some(1e9));
        assert_eq!(quantity_value("1.5"), Some(1.5));
        assert_eq!(quantity_value("2e3"), Some(2000.0));
        assert_eq!(quantity_value("lots"), None);
        assert_eq!(quantity_value(""), None);
    }
}
