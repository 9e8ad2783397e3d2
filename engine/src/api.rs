//! The engine's Kubernetes API: okonomi-apiserver's [`Api`] over the
//! engine's store, over HTTPS with the CA, certificate and bearer token kept
//! in `STATE/pki` (kubectl sends tokens only over TLS).

use std::net::SocketAddr;
use std::sync::Arc;

use okonomi_apiserver::http::Api;
use okonomi_apiserver::tls::{Credentials, serve_tls};
use okonomi_apiserver::{Admission, AdmissionRequest, Operation, ResourceType, StatusCause, Store};
use okonomi_knative::ValidationConfig;
use okonomi_knative::admission::{KnativeKind, Write, admit};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::engine::EngineConfig;
use crate::error::{Error, Result};

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
/// serving kinds; other kinds pass unchanged.
#[derive(Debug, Clone, Default)]
pub struct KnativeAdmission {
    config: ValidationConfig,
}

impl KnativeAdmission {
    /// Admission with the engine's autoscaler limits.
    pub fn new(autoscaler: &crate::autoscaler::AutoscalerConfig) -> Self {
        Self {
            config: ValidationConfig {
                allow_zero_initial_scale: autoscaler.allow_zero_initial_scale,
                max_scale_limit: autoscaler.max_scale_limit,
                ..ValidationConfig::default()
            },
        }
    }
}

impl Admission for KnativeAdmission {
    fn admit(
        &self,
        request: &AdmissionRequest<'_>,
        object: &mut Value,
    ) -> Result<(), Vec<StatusCause>> {
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
        admit(kind, write, request.old, object, &self.config).map_err(|errors| {
            errors
                .0
                .into_iter()
                .map(|e| StatusCause {
                    reason: e.cause.as_str().to_string(),
                    message: e.message,
                    field: e.field,
                })
                .collect()
        })
    }
}

/// The admission the engine installs into its store.
pub fn admission(autoscaler: &crate::autoscaler::AutoscalerConfig) -> Arc<dyn Admission> {
    Arc::new(KnativeAdmission::new(autoscaler))
}

/// Binds the API port and serves HTTPS (the CA, server certificate and
/// token in `STATE/pki`, made on first start) until `shutdown`.
pub async fn start(
    config: &EngineConfig,
    store: Store,
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
