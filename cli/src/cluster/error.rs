//! What goes wrong when talking to a cluster, phrased for the person at the
//! keyboard: each message names the object and says what to do next.

use std::time::Duration;

/// How to get a kube context, shown whenever there is none.
pub const GET_A_CONTEXT: &str = "start the local engine with `okonomi up` (it adds the context \"okonomi\"), \
or fetch credentials for a cluster: `gcloud container clusters get-credentials CLUSTER --region REGION` (GKE), \
`aws eks update-kubeconfig --name CLUSTER` (EKS), `az aks get-credentials --name CLUSTER --resource-group GROUP` (AKS)";

/// Where the Knative install instructions live.
pub const INSTALL_DOC: &str = "docs/clouds/";

/// A failure talking to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No kubeconfig, or one without a current context.
    #[error("no Kubernetes context to deploy to ({detail}): {GET_A_CONTEXT}")]
    NoContext {
        /// What was missing.
        detail: String,
    },
    /// `--context NAME` names a context the kubeconfig does not have.
    #[error(
        "the kubeconfig has no context {name:?} (it has: {available}); list them with `kubectl config get-contexts`"
    )]
    UnknownContext {
        /// The context asked for.
        name: String,
        /// The contexts the kubeconfig has, comma-separated.
        available: String,
    },
    /// The kubeconfig exists but cannot be used.
    #[error("cannot use the kubeconfig for context {context:?}: {source}")]
    Kubeconfig {
        /// The context.
        context: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The API server did not answer.
    #[error(
        "cannot reach the Kubernetes API at {server} (context {context:?}): {detail}; \
is the cluster up? For the local engine run `okonomi up`"
    )]
    Unreachable {
        /// The context.
        context: String,
        /// The API server URL.
        server: String,
        /// The transport error.
        detail: String,
    },
    /// The cluster has no `serving.knative.dev/v1` API.
    #[error(
        "Knative Serving is not installed on the cluster of context {context:?} (its API has no serving.knative.dev/v1); \
install Knative Serving and net-istio as {INSTALL_DOC} describes for your cloud, or use the local engine: `okonomi up`"
    )]
    KnativeMissing {
        /// The context.
        context: String,
    },
    /// The target namespace does not exist.
    #[error(
        "namespace {namespace:?} does not exist on the cluster of context {context:?}; \
create it with `kubectl create namespace {namespace}` or choose another with --namespace"
    )]
    NamespaceMissing {
        /// The namespace.
        namespace: String,
        /// The context.
        context: String,
    },
    /// A function or service name that Knative would reject.
    #[error(
        "{name:?} is not a valid service name: {reason}; use lowercase letters, digits and '-', \
starting with a letter, at most 63 characters (set [function] name in okonomi.toml or pass --name)"
    )]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object does not exist.
    #[error(
        "{kind} {name:?} not found in namespace {namespace:?}; `okonomi list -n {namespace}` shows what is deployed"
    )]
    NotFound {
        /// Kind, e.g. "service".
        kind: &'static str,
        /// Name.
        name: String,
        /// Namespace.
        namespace: String,
    },
    /// The API server refused the object (422 Invalid, 400 BadRequest, 409 Conflict).
    #[error("the cluster rejected {kind} {name:?}: {message}")]
    Rejected {
        /// Kind.
        kind: &'static str,
        /// Name.
        name: String,
        /// The server's message and causes.
        message: String,
    },
    /// RBAC said no.
    #[error(
        "the cluster of context {context:?} does not allow {action}: {message}; ask the cluster admin for access"
    )]
    Forbidden {
        /// What was attempted.
        action: String,
        /// The context.
        context: String,
        /// The server's message.
        message: String,
    },
    /// The API server refused the credentials (401).
    #[error(
        "the Kubernetes API at {server} (context {context:?}) refused the credentials: {message}; \
for the local engine start `okonomi up` again (it rewrites the \"okonomi\" context's token), \
for a cloud cluster fetch credentials again (e.g. `gcloud container clusters get-credentials CLUSTER`)"
    )]
    Unauthorized {
        /// The context.
        context: String,
        /// The API server URL.
        server: String,
        /// The server's message.
        message: String,
    },
    /// The API server answered with an error Status not covered above.
    #[error("{action} failed: {message} ({reason}, HTTP {code})")]
    Refused {
        /// What was attempted.
        action: String,
        /// The Status's message and causes.
        message: String,
        /// The Status's reason, e.g. `InternalError`.
        reason: String,
        /// The HTTP status code.
        code: u16,
    },
    /// Any other API failure.
    #[error("{action} failed: {source}")]
    Api {
        /// What was attempted.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The Service reported Ready=False.
    #[error("service {name:?} is not ready: {reason}: {message}{revision}")]
    NotReady {
        /// Service name.
        name: String,
        /// The Ready condition's reason.
        reason: String,
        /// The Ready condition's message.
        message: String,
        /// The latest revision's failing conditions, each on its own line (may be empty).
        revision: String,
    },
    /// The wait ran out of time.
    #[error("service {name:?} was not ready after {}s: {state}{revision}; raise --timeout or look at `okonomi describe {name}` and `okonomi logs {name}`", after.as_secs())]
    Timeout {
        /// Service name.
        name: String,
        /// How long we waited.
        after: Duration,
        /// The last state seen.
        state: String,
        /// The latest revision's failing conditions (may be empty).
        revision: String,
    },
}

impl ClusterError {
    /// Maps a kube error from `action` on `kind`/`name` in `namespace` to
    /// the most helpful variant.
    pub fn from_kube(
        source: kube::Error,
        action: &str,
        context: &str,
        server: &str,
        object: Option<(&'static str, &str, &str)>,
    ) -> Self {
        match source {
            kube::Error::Api(status) => {
                let message = describe_status(&status);
                if status.code == 401 {
                    return ClusterError::Unauthorized {
                        context: context.to_owned(),
                        server: server.to_owned(),
                        message,
                    };
                }
                if status.is_forbidden() {
                    return ClusterError::Forbidden {
                        action: action.to_owned(),
                        context: context.to_owned(),
                        message,
                    };
                }
                if status.is_not_found()
                    && let Some(details) = &status.details
                    && details.kind == "namespaces"
                {
                    return ClusterError::NamespaceMissing {
                        namespace: details.name.clone(),
                        context: context.to_owned(),
                    };
                }
                if let Some((kind, name, namespace)) = object {
                    if status.is_not_found() {
                        return ClusterError::NotFound {
                            kind,
                            name: name.to_owned(),
                            namespace: namespace.to_owned(),
                        };
                    }
                    if status.is_invalid() || status.code == 400 || status.is_conflict() {
                        return ClusterError::Rejected {
                            kind,
                            name: name.to_owned(),
                            message,
                        };
                    }
                }
                ClusterError::Refused {
                    action: action.to_owned(),
                    message,
                    reason: status.reason.clone(),
                    code: status.code,
                }
            }
            kube::Error::HyperError(e) => ClusterError::Unreachable {
                context: context.to_owned(),
                server: server.to_owned(),
                detail: error_chain(&e),
            },
            kube::Error::Service(e) => ClusterError::Unreachable {
                context: context.to_owned(),
                server: server.to_owned(),
                detail: error_chain(e.as_ref()),
            },
            other => ClusterError::Api {
                action: action.to_owned(),
                source: other,
            },
        }
    }
}

/// The status message plus every cause with its field.
fn describe_status(status: &kube::core::Status) -> String {
    let mut message = if status.message.is_empty() {
        format!("{} ({})", status.reason, status.code)
    } else {
        status.message.clone()
    };
    if let Some(details) = &status.details {
        for cause in &details.causes {
            if !message.contains(&cause.message) {
                if cause.field.is_empty() {
                    message.push_str(&format!("; {}", cause.message));
                } else {
                    message.push_str(&format!("; {}: {}", cause.field, cause.message));
                }
            }
        }
    }
    message
}

/// An error and its sources on one line, for transport errors whose
/// top-level text ("client error (Connect)") says little.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(cause) = current {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use kube::core::response::{StatusCause, StatusDetails};

    use super::*;

    fn api_error(
        code: u16,
        reason: &str,
        message: &str,
        details: Option<StatusDetails>,
    ) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            status: Some(kube::core::response::StatusSummary::Failure),
            code,
            message: message.into(),
            metadata: None,
            reason: reason.into(),
            details,
        }))
    }

    fn details(kind: &str, name: &str, causes: Vec<StatusCause>) -> Option<StatusDetails> {
        Some(StatusDetails {
            name: name.into(),
            group: String::new(),
            kind: kind.into(),
            uid: String::new(),
            causes,
            retry_after_seconds: 0,
        })
    }

    fn map(error: kube::Error) -> ClusterError {
        ClusterError::from_kube(
            error,
            "applying service \"hello\"",
            "gke",
            "https://10.0.0.1",
            Some(("service", "hello", "prod")),
        )
    }

    #[test]
    fn a_missing_namespace_is_named_with_the_fix() {
        let error = map(api_error(
            404,
            "NotFound",
            "namespaces \"prod\" not found",
            details("namespaces", "prod", vec![]),
        ));
        assert_eq!(
            error.to_string(),
            "namespace \"prod\" does not exist on the cluster of context \"gke\"; create it with `kubectl create namespace prod` or choose another with --namespace"
        );
    }

    #[test]
    fn a_missing_service_points_at_list() {
        let error = map(api_error(
            404,
            "NotFound",
            "services.serving.knative.dev \"hello\" not found",
            details("services", "hello", vec![]),
        ));
        assert_eq!(
            error.to_string(),
            "service \"hello\" not found in namespace \"prod\"; `okonomi list -n prod` shows what is deployed"
        );
    }

    #[test]
    fn invalid_objects_carry_every_cause() {
        let causes = vec![StatusCause {
            reason: "FieldValueInvalid".into(),
            message: "must be at most 600".into(),
            field: "spec.template.spec.timeoutSeconds".into(),
        }];
        let error = map(api_error(
            422,
            "Invalid",
            "Service \"hello\" is invalid",
            details("Service", "hello", causes),
        ));
        assert_eq!(
            error.to_string(),
            "the cluster rejected service \"hello\": Service \"hello\" is invalid; spec.template.spec.timeoutSeconds: must be at most 600"
        );
    }

    #[test]
    fn forbidden_says_who_to_ask() {
        let error = map(api_error(
            403,
            "Forbidden",
            "services is forbidden: User \"dev\" cannot patch",
            None,
        ));
        let text = error.to_string();
        assert!(
            text.starts_with("the cluster of context \"gke\" does not allow applying service \"hello\": services is forbidden"),
            "{text}"
        );
        assert!(text.ends_with("ask the cluster admin for access"), "{text}");
    }

    #[test]
    fn a_refused_token_says_how_to_get_a_fresh_one_with_no_debug_structure() {
        let error = map(api_error(401, "Unauthorized", "Unauthorized", None));
        let text = error.to_string();
        assert!(
            text.starts_with("the Kubernetes API at https://10.0.0.1 (context \"gke\") refused the credentials: Unauthorized"),
            "{text}"
        );
        assert!(text.contains("okonomi up"), "{text}");
        assert!(!text.contains("Status {"), "{text}");
        assert!(std::error::Error::source(&error).is_none());
    }

    #[test]
    fn other_error_statuses_are_their_message() {
        let error = map(api_error(
            500,
            "InternalError",
            "the state database is full",
            None,
        ));
        assert_eq!(
            error.to_string(),
            "applying service \"hello\" failed: the state database is full (InternalError, HTTP 500)"
        );
        assert!(std::error::Error::source(&error).is_none());
    }
}
