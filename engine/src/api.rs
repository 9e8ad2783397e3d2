//! The engine's Kubernetes API: okonomi-apiserver's [`Api`] over the
//! engine's store, over HTTPS with the CA, certificate and bearer token kept
//! in `STATE/pki` (kubectl sends tokens only over TLS), with the kubelet's
//! side of `pods/log` ([`EngineLogs`]) and `pods/portforward`
//! ([`EnginePortForward`]) installed.

use std::net::SocketAddr;
use std::sync::Arc;

use okonomi_apiserver::http::Api;
use okonomi_apiserver::tls::{Credentials, serve_tls};
use okonomi_apiserver::{Admission, AdmissionRequest, Denial, Operation, ResourceType, Store};
use okonomi_knative::admission::{KnativeKind, Write, admit};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use futures::future::BoxFuture;
use okonomi_apiserver::logs::{LogError, LogLine, LogRequest, LogStream, PodLogs};
use okonomi_apiserver::portforward::{PodPortForward, PortForwardError, PortRequest, PortStream};

use crate::controller::deployment::Deployment;
use crate::controller::revision::Revisions;
use crate::dataplane::RevisionKey;
use crate::engine::EngineConfig;
use crate::error::{Error, Result};
use crate::kubelet::pod_logs;
use crate::serving_config::ServingConfig;

/// Where the API server listens and how to authenticate.
#[derive(Debug, Clone)]
pub struct ApiHandle {
    /// The bound address.
    pub addr: SocketAddr,
    /// The base URL (`https://127.0.0.1:PORT`).
    pub url: String,
    /// The bearer token clients send.
    pub token: String,
    /// PEM of the CA that signed the server certificate.
    pub ca_pem: String,
}

/// Knative's defaulting and validation (from okonomi-knative) for the four
/// serving kinds, with the settings of Knative's ConfigMaps as they are at
/// the write; and Knative's ConfigMap webhook for those ConfigMaps. Other
/// kinds pass unchanged.
#[derive(Debug, Clone)]
pub struct KnativeAdmission {
    config: watch::Receiver<Arc<ServingConfig>>,
}

impl KnativeAdmission {
    /// Admission that reads the latest of `config`.
    pub fn new(config: watch::Receiver<Arc<ServingConfig>>) -> Self {
        Self { config }
    }
}

/// The webhook that validates Knative's kinds on a cluster, named in what a
/// refused write answers.
const VALIDATION_WEBHOOK: &str = "validation.webhook.serving.knative.dev";

/// The webhook that validates Knative's ConfigMaps on a cluster.
const CONFIG_WEBHOOK: &str = "config.webhook.serving.knative.dev";

/// Knative's ConfigMap webhook: a `config-*` ConfigMap in `knative-serving`
/// must parse as Knative parses it.
fn admit_serving_config(object: &Value) -> Result<(), Denial> {
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    if !crate::serving_config::is_serving_config(namespace, name) {
        return Ok(());
    }
    let (data, annotations) = crate::serving_config::data_of(object);
    crate::serving_config::validate(name, &data, &annotations).map_err(|e| Denial::Webhook {
        webhook: CONFIG_WEBHOOK.into(),
        message: format!("validation failed: {e}"),
    })
}

impl Admission for KnativeAdmission {
    fn admit(&self, request: &AdmissionRequest<'_>, object: &mut Value) -> Result<(), Denial> {
        if request.resource.group.is_empty() && request.resource.kind == "ConfigMap" {
            return admit_serving_config(object);
        }
        if request.resource.group != okonomi_knative::keys::GROUP {
            return Ok(());
        }
        let Some(kind) = KnativeKind::parse(&request.resource.kind) else {
            return Ok(());
        };
        let write = match request.operation {
            Operation::Create => Write::Create,
            Operation::Update => Write::Update,
            Operation::UpdateStatus => Write::UpdateStatus,
        };
        let config = self.config.borrow().clone();
        // Knative's webhook refuses with 400 BadRequest, not the API
        // server's own 422 Invalid: kubectl shows `Error from server
        // (BadRequest): … admission webhook "…" denied the request: …`.
        admit(kind, write, request.old, object, &config.validation).map_err(|errors| {
            Denial::Webhook {
                webhook: VALIDATION_WEBHOOK.into(),
                message: format!("validation failed: {}", errors.webhook_message()),
            }
        })
    }
}

/// The admission the engine installs into its store.
pub fn admission(config: watch::Receiver<Arc<ServingConfig>>) -> Arc<dyn Admission> {
    Arc::new(KnativeAdmission::new(config))
}

/// The Deployment whose Pod `object` (as stored) is.
fn deployment_of(
    revisions: &Revisions,
    namespace: &str,
    object: &Value,
) -> Option<Arc<Deployment>> {
    let revision = object["metadata"]["labels"][okonomi_knative::keys::REVISION_LABEL].as_str()?;
    revisions.get(&RevisionKey {
        namespace: namespace.to_string(),
        name: revision.to_string(),
    })
}

/// `pods/log` from the files the kubelet keeps per Pod and run.
#[derive(Debug, Clone)]
pub struct EngineLogs {
    revisions: Arc<Revisions>,
}

impl EngineLogs {
    /// Logs of the Pods of `revisions`.
    pub fn new(revisions: Arc<Revisions>) -> Self {
        Self { revisions }
    }
}

impl PodLogs for EngineLogs {
    fn logs(&self, request: LogRequest) -> BoxFuture<'static, Result<LogStream, LogError>> {
        let deployment = deployment_of(&self.revisions, &request.namespace, &request.object);
        Box::pin(async move {
            use futures::StreamExt;
            // A Pod of a revision that no longer runs has no log to give.
            let Some(deployment) = deployment else {
                return Ok(futures::stream::empty().boxed());
            };
            let dir = deployment.log_dir();
            let options = &request.options;
            let path = if options.previous {
                pod_logs::previous(dir, &request.pod)
            } else {
                pod_logs::current(dir, &request.pod)
            };
            if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
                if options.previous {
                    return Err(LogError::PreviousNotFound);
                }
                let waiting = request.object["status"]["containerStatuses"][0]["state"]["waiting"]
                    ["reason"]
                    .as_str()
                    .unwrap_or("ContainerCreating")
                    .to_string();
                return Err(LogError::Waiting { reason: waiting });
            }
            let pod = request.pod.clone();
            let alive: Arc<dyn Fn() -> bool + Send + Sync> = if options.previous {
                // The previous run has ended: nothing more will be written.
                Arc::new(|| false)
            } else {
                Arc::new(move || deployment.has_pod(&pod))
            };
            let read = pod_logs::Read {
                tail: options.tail_lines,
                since: options.since,
                follow: options.follow,
            };
            let lines = pod_logs::read(path, read, alive)
                .await
                .map_err(|e| LogError::Failed(Box::new(e)))?;
            Ok(lines
                .map(|line| line.map(|(time, line)| LogLine { time, line }))
                .boxed())
        })
    }
}

/// `pods/portforward`: a TCP connection to the address a Pod listens on.
#[derive(Debug, Clone)]
pub struct EnginePortForward {
    revisions: Arc<Revisions>,
}

impl EnginePortForward {
    /// Forwards to the Pods of `revisions`.
    pub fn new(revisions: Arc<Revisions>) -> Self {
        Self { revisions }
    }
}

impl PodPortForward for EnginePortForward {
    fn connect(
        &self,
        request: PortRequest,
    ) -> BoxFuture<'static, Result<PortStream, PortForwardError>> {
        let deployment = deployment_of(&self.revisions, &request.namespace, &request.object);
        Box::pin(async move {
            let phase = request.object["status"]["phase"]
                .as_str()
                .unwrap_or("Unknown")
                .to_string();
            let addr = deployment
                .and_then(|d| d.pod_addr(&request.pod))
                .ok_or(PortForwardError::NotRunning { phase })?;
            // The engine gives each Pod its own port (PORT); the container's
            // declared port, whatever its number, is that one.
            let declared = request.object["spec"]["containers"][0]["ports"][0]["containerPort"]
                .as_u64()
                .unwrap_or(8080);
            if u64::from(request.port) != declared {
                return Err(PortForwardError::Connect {
                    port: request.port,
                    source: std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        format!(
                            "the pod's container listens on port {declared} only (its containerPort)"
                        ),
                    ),
                });
            }
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|source| PortForwardError::Connect {
                    port: request.port,
                    source,
                })?;
            Ok(Box::new(stream) as PortStream)
        })
    }
}

/// Binds the API port and serves HTTPS (the CA, server certificate and
/// token in `STATE/pki`, made on first start) until `shutdown`.
pub async fn start(
    config: &EngineConfig,
    store: Store,
    revisions: Arc<Revisions>,
    shutdown: CancellationToken,
) -> Result<ApiHandle> {
    let pki = config.state_dir.join("pki");
    let credentials = tokio::task::spawn_blocking(move || Credentials::load_or_create(&pki))
        .await
        .map_err(|e| Error::Api(format!("creating the API credentials: {e}")))?
        .map_err(|e| Error::Api(format!("creating the API credentials: {e}")))?;
    let tls = credentials
        .server_config()
        .map_err(|e| Error::Api(format!("loading the API certificate: {e}")))?;
    let listener = TcpListener::bind(config.api_addr)
        .await
        .map_err(|source| Error::Io {
            context: format!(
                "binding the API server to {} (is another engine running? choose another port)",
                config.api_addr
            ),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Io {
        context: "reading the API server address".into(),
        source,
    })?;
    let router = Api::new(store, ResourceType::all_builtin())
        .with_token(credentials.token.clone())
        .with_pod_logs(Arc::new(EngineLogs::new(revisions.clone())))
        .with_port_forward(Arc::new(EnginePortForward::new(revisions)))
        .router();
    tokio::spawn(async move {
        if let Err(error) = serve_tls(listener, router, tls, shutdown.cancelled_owned()).await {
            tracing::error!(%error, "API server stopped");
        }
    });
    Ok(ApiHandle {
        addr,
        url: format!("https://{addr}"),
        token: credentials.token.clone(),
        ca_pem: credentials.ca_pem.clone(),
    })
}
