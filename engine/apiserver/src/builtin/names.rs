//! Object names per kind, as Kubernetes validates them: most built-in kinds take
//! an RFC 1123 subdomain, namespaces an RFC 1123 label.

use super::Builtin;
use crate::resource::ResourceType;

/// Longest RFC 1123 label.
const LABEL_MAX: usize = 63;
/// Longest RFC 1123 subdomain.
const SUBDOMAIN_MAX: usize = 253;

const LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn is_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// What is wrong with an RFC 1123 label, in Kubernetes' words.
pub(crate) fn label_problem(value: &str) -> Option<String> {
    if value.len() > LABEL_MAX {
        return Some(format!("must be no more than {LABEL_MAX} characters"));
    }
    (!is_label(value)).then(|| LABEL_RULE.to_string())
}

/// What is wrong with an RFC 1123 subdomain, in Kubernetes' words.
pub(crate) fn subdomain_problem(value: &str) -> Option<String> {
    if value.len() > SUBDOMAIN_MAX {
        return Some(format!("must be no more than {SUBDOMAIN_MAX} characters"));
    }
    (!value.split('.').all(is_label)).then(|| SUBDOMAIN_RULE.to_string())
}

/// What is wrong with `name` for `rt`, if the kind has a rule of its own.
pub(crate) fn problem(rt: &ResourceType, name: &str) -> Option<String> {
    match Builtin::of(rt)? {
        Builtin::Namespace => label_problem(name),
        Builtin::ConfigMap
        | Builtin::Secret
        | Builtin::ServiceAccount
        | Builtin::Pod
        | Builtin::Event
        | Builtin::EventsV1
        | Builtin::Deployment
        | Builtin::ReplicaSet
        | Builtin::PodAutoscaler => subdomain_problem(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_subdomains() {
        assert!(label_problem("rp-a").is_none());
        assert!(label_problem("0abc").is_none());
        assert!(label_problem("RP-A").is_some());
        assert!(label_problem("rp a").is_some());
        assert!(label_problem("-a").is_some());
        assert!(label_problem("a.b").is_some());
        assert!(label_problem(&"a".repeat(64)).is_some());
        assert!(subdomain_problem("hello.17a2b3c4").is_none());
        assert!(subdomain_problem("a..b").is_some());
        assert!(subdomain_problem("Bad_Name").is_some());
        assert!(subdomain_problem(&"a".repeat(254)).is_some());
    }
}
