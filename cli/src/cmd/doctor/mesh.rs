//! Knative's rules for Istio's mTLS, checked over a cluster's
//! PeerAuthentications and the namespaces that get sidecars.

use super::{Finding, KNATIVE_NAMESPACE};

/// One PeerAuthentication, as far as the mesh rules care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerMode {
    /// Its namespace (the root namespace makes it mesh-wide).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// True when it selects workloads, false for the whole namespace.
    pub workload: bool,
    /// `STRICT`, `PERMISSIVE`, `DISABLE` or `UNSET`.
    pub mode: String,
}

/// Knative's rules for Istio, checked over the PeerAuthentications and the
/// namespaces with sidecar injection (`istio-injection=enabled` or an
/// `istio.io/rev` label):
/// - `knative-serving` must not be STRICT (namespace-wide, or mesh-wide
///   without its own PERMISSIVE): the API server calls Knative's webhooks
///   from outside the mesh;
/// - STRICT anywhere needs sidecars in `knative-serving`: the activator
///   forwards requests to function pods, and STRICT pods refuse plain text;
/// - STRICT in a namespace without injection has no effect (no sidecar
///   enforces it).
pub fn mesh_findings(
    peers: &[PeerMode],
    injected: &[String],
    root_namespace: &str,
) -> Vec<Finding> {
    const CHECK: &str = "mesh";
    let strict = |p: &&PeerMode| p.mode.eq_ignore_ascii_case("STRICT");
    let namespace_mode = |ns: &str| {
        peers
            .iter()
            .find(|p| p.namespace == ns && !p.workload)
            .map(|p| p.mode.to_ascii_uppercase())
    };
    let mesh_strict = peers
        .iter()
        .filter(strict)
        .any(|p| p.namespace == root_namespace && !p.workload);
    let knative_mode = namespace_mode(KNATIVE_NAMESPACE);
    let knative_strict = match knative_mode.as_deref() {
        Some("STRICT") => true,
        Some("PERMISSIVE") | Some("DISABLE") => false,
        _ => mesh_strict,
    };
    let mut findings = Vec::new();
    let permissive = "kubectl apply -f istio/knative-serving/peer-authentication.yaml   (PERMISSIVE for knative-serving)";
    if knative_strict {
        findings.push(Finding::fail(
            CHECK,
            format!("{KNATIVE_NAMESPACE} is under STRICT mTLS{}: the API server calls Knative's webhooks from outside the mesh, so every Service is refused", if knative_mode.is_none() { " (mesh-wide)" } else { "" }),
            permissive,
        ));
    }
    let strict_namespaces: Vec<&str> = peers
        .iter()
        .filter(strict)
        .map(|p| p.namespace.as_str())
        .filter(|ns| *ns != KNATIVE_NAMESPACE)
        .collect();
    let any_strict = mesh_strict || !strict_namespaces.is_empty();
    let knative_injected = injected.iter().any(|n| n == KNATIVE_NAMESPACE);
    if any_strict && !knative_injected {
        let which = if mesh_strict {
            "mesh-wide".to_owned()
        } else {
            let mut list = strict_namespaces.clone();
            list.sort();
            list.dedup();
            format!("in {}", list.join(", "))
        };
        findings.push(Finding::fail(
            CHECK,
            format!("STRICT mTLS {which}, but {KNATIVE_NAMESPACE} has no sidecar injection: the activator's plain-text requests to function pods are refused"),
            "kubectl label namespace knative-serving istio-injection=enabled --overwrite && kubectl rollout restart deployment -n knative-serving",
        ));
    }
    let mut idle: Vec<&str> = strict_namespaces
        .iter()
        .copied()
        .filter(|ns| *ns != root_namespace && !injected.iter().any(|n| n == ns))
        .collect();
    idle.sort();
    idle.dedup();
    for ns in idle {
        findings.push(Finding::warn(
            CHECK,
            format!("STRICT mTLS in {ns}, which has no sidecar injection: no sidecar enforces it, and the function pods there are outside the mesh"),
            format!("kubectl label namespace {ns} istio-injection=enabled --overwrite   (then redeploy its functions)"),
        ));
    }
    if findings.is_empty() {
        findings.push(Finding::pass(
            CHECK,
            if any_strict {
                format!("STRICT mTLS with sidecars in {KNATIVE_NAMESPACE}, which stays PERMISSIVE for its webhooks")
            } else {
                "no STRICT PeerAuthentication: plain text is accepted, so sidecars in knative-serving are optional".to_owned()
            },
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::doctor::Status;

    fn peer(namespace: &str, mode: &str) -> PeerMode {
        PeerMode {
            namespace: namespace.into(),
            name: "default".into(),
            workload: false,
            mode: mode.into(),
        }
    }

    fn statuses(findings: &[Finding]) -> Vec<Status> {
        findings.iter().map(|f| f.status).collect()
    }

    #[test]
    fn strict_functions_need_sidecars_in_knative_serving() {
        let findings = mesh_findings(&[peer("shop", "STRICT")], &["shop".into()], "istio-system");
        assert_eq!(statuses(&findings), [Status::Fail], "{findings:?}");
        assert!(findings[0].message.contains("activator"));
        assert!(findings[0].fix.as_deref().is_some_and(|f| {
            f.contains("kubectl label namespace knative-serving istio-injection=enabled")
        }));
    }

    #[test]
    fn strict_knative_serving_breaks_its_webhooks() {
        let injected = vec!["knative-serving".to_owned()];
        let findings = mesh_findings(&[peer("istio-system", "STRICT")], &injected, "istio-system");
        assert_eq!(statuses(&findings), [Status::Fail], "{findings:?}");
        assert!(findings[0].message.contains("webhooks"));
        // Its own PERMISSIVE policy overrides the mesh-wide STRICT.
        let findings = mesh_findings(
            &[
                peer("istio-system", "STRICT"),
                peer("knative-serving", "PERMISSIVE"),
            ],
            &injected,
            "istio-system",
        );
        assert_eq!(statuses(&findings), [Status::Pass], "{findings:?}");
    }

    #[test]
    fn strict_without_injection_is_only_a_warning() {
        let injected = vec!["knative-serving".to_owned()];
        let findings = mesh_findings(&[peer("batch", "STRICT")], &injected, "istio-system");
        assert_eq!(statuses(&findings), [Status::Warn], "{findings:?}");
        assert!(
            findings[0]
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("namespace batch"))
        );
    }

    #[test]
    fn no_strict_policy_passes() {
        let findings = mesh_findings(
            &[peer("knative-serving", "PERMISSIVE")],
            &[],
            "istio-system",
        );
        assert_eq!(statuses(&findings), [Status::Pass], "{findings:?}");
    }
}
