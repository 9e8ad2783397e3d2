//! Choosing a kubeconfig context and building a client for it, with the
//! checks a deploy needs before it writes anything (Knative present,
//! namespace present).

use k8s_openapi::api::core::v1::Namespace;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Api, Client, Config};
use okonomi_knative::{Revision, Service};

use super::error::ClusterError;

/// A connection to one cluster through one kubeconfig context.
#[derive(Clone)]
pub struct Cluster {
    /// The kube-rs client.
    pub client: Client,
    /// The context's name.
    pub context: String,
    /// The API server URL.
    pub server: String,
    /// The context's default namespace ("default" when it names none).
    pub default_namespace: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("context", &self.context)
            .field("server", &self.server)
            .finish()
    }
}

impl Cluster {
    /// Connects through `context`, or the kubeconfig's current context.
    /// Reads `$KUBECONFIG` (colon-separated files, merged) or `~/.kube/config`.
    pub async fn connect(context: Option<&str>) -> Result<Self, ClusterError> {
        let kubeconfig = read_kubeconfig()?;
        let name = match context {
            Some(name) => name.to_owned(),
            None => kubeconfig
                .current_context
                .clone()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| ClusterError::NoContext {
                    detail: "the kubeconfig has no current-context".into(),
                })?,
        };
        if !kubeconfig.contexts.iter().any(|c| c.name == name) {
            let available: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            if available.is_empty() {
                return Err(ClusterError::NoContext {
                    detail: format!("the kubeconfig has no contexts, so not {name:?} either"),
                });
            }
            return Err(ClusterError::UnknownContext {
                name,
                available: available.join(", "),
            });
        }
        let options = KubeConfigOptions {
            context: Some(name.clone()),
            ..Default::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|source| ClusterError::Kubeconfig {
                context: name.clone(),
                source,
            })?;
        let server = config.cluster_url.to_string();
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|source| ClusterError::Api {
            action: format!("creating a client for context {name:?}"),
            source,
        })?;
        Ok(Self {
            client,
            context: name,
            server: server.trim_end_matches('/').to_owned(),
            default_namespace,
        })
    }

    /// Maps a kube error (see [`ClusterError::from_kube`]).
    pub fn error(
        &self,
        source: kube::Error,
        action: &str,
        object: Option<(&'static str, &str, &str)>,
    ) -> ClusterError {
        ClusterError::from_kube(source, action, &self.context, &self.server, object)
    }

    /// Fails with [`ClusterError::KnativeMissing`] unless discovery lists
    /// `serving.knative.dev/v1` with its services.
    pub async fn ensure_knative(&self) -> Result<(), ClusterError> {
        match self
            .client
            .list_api_group_resources(okonomi_knative::keys::API_VERSION)
            .await
        {
            Ok(list) if list.resources.iter().any(|r| r.name == "services") => Ok(()),
            Ok(_) => Err(ClusterError::KnativeMissing {
                context: self.context.clone(),
            }),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                Err(ClusterError::KnativeMissing {
                    context: self.context.clone(),
                })
            }
            Err(e) => Err(self.error(e, "discovering the cluster's APIs", None)),
        }
    }

    /// Fails with [`ClusterError::NamespaceMissing`] when `namespace` does not
    /// exist. A user who may not read namespaces (RBAC) passes: the write
    /// that follows will say what is wrong.
    pub async fn ensure_namespace(&self, namespace: &str) -> Result<(), ClusterError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.get_opt(namespace).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ClusterError::NamespaceMissing {
                namespace: namespace.to_owned(),
                context: self.context.clone(),
            }),
            Err(kube::Error::Api(status)) if status.is_forbidden() => Ok(()),
            Err(e) => Err(self.error(e, &format!("reading namespace {namespace:?}"), None)),
        }
    }

    /// The Knative Services of a namespace.
    pub fn services(&self, namespace: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// The Knative Services of every namespace.
    pub fn all_services(&self) -> Api<Service> {
        Api::all(self.client.clone())
    }

    /// The Knative Revisions of a namespace.
    pub fn revisions(&self, namespace: &str) -> Api<Revision> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// True when the API server is okonomi's engine, known by the suffix of
    /// its `/version` gitVersion ([`is_engine_version`]), the one check
    /// `deploy`, `logs` and `doctor` share. Which APIs it serves says
    /// nothing: the engine serves Pods like any cluster.
    pub async fn is_engine(&self) -> Result<bool, ClusterError> {
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| self.error(e, "reading the server's /version", None))?;
        Ok(is_engine_version(&info.git_version))
    }
}

/// The suffix of the engine's `gitVersion` (`v1.33.0-okonomi`): it reports
/// the Kubernetes API it speaks, and says it is okonomi's engine.
pub const ENGINE_VERSION_SUFFIX: &str = "-okonomi";

/// Whether an API server's `gitVersion` is the engine's.
pub fn is_engine_version(git_version: &str) -> bool {
    git_version.ends_with(ENGINE_VERSION_SUFFIX)
}

/// Reads and merges the kubeconfig files, mapping "there is none" to
/// [`ClusterError::NoContext`].
fn read_kubeconfig() -> Result<Kubeconfig, ClusterError> {
    match Kubeconfig::read() {
        Ok(config) => Ok(config),
        Err(KubeconfigError::FindPath) => Err(ClusterError::NoContext {
            detail: "no $KUBECONFIG and no home directory to find ~/.kube/config in".into(),
        }),
        Err(KubeconfigError::ReadConfig(e, path)) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ClusterError::NoContext {
                detail: format!("there is no kubeconfig at {}", path.display()),
            })
        }
        Err(source) => Err(ClusterError::Kubeconfig {
            context: String::new(),
            source,
        }),
    }
}

#[cfg(test)]
mod engine_version_tests {
    use super::is_engine_version;

    #[test]
    fn the_engine_is_known_by_its_version_suffix_only() {
        assert!(is_engine_version("v1.33.0-okonomi"));
        for other in [
            "v1.30.2-gke.1576000",
            "v1.33.1",
            "v1.29.0+k3s1",
            "",
            "okonomi",
        ] {
            assert!(!is_engine_version(other), "{other}");
        }
    }
}
