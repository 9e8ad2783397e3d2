//! The engine's Kubernetes API: okonomi-apiserver's [`Api`] over the
//! engine's store, with a bearer token kept in the state dir.

use std::net::SocketAddr;
use std::sync::Arc;

use okonomi_apiserver::http::Api;
use okonomi_apiserver::{Admission, NoAdmission, ResourceType, Store};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::engine::EngineConfig;
use crate::error::{Error, Result};

/// Where the API server listens and how to authenticate.
#[derive(Debug, Clone)]
pub struct ApiHandle {
    /// The bound address.
    pub addr: SocketAddr,
    /// The base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// The bearer token clients send.
    pub token: String,
}

/// The admission the engine installs into its store.
pub fn admission() -> Arc<dyn Admission> {
    Arc::new(NoAdmission)
}

async fn token(config: &EngineConfig) -> Result<String> {
    let path = config.state_dir.join("token");
    match tokio::fs::read_to_string(&path).await {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
        _ => {
            let token = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            tokio::fs::write(&path, &token)
                .await
                .map_err(|source| Error::Io {
                    context: format!("writing the API token {}", path.display()),
                    source,
                })?;
            Ok(token)
        }
    }
}

/// Binds the API port and serves until `shutdown`.
pub async fn start(
    config: &EngineConfig,
    store: Store,
    shutdown: CancellationToken,
) -> Result<ApiHandle> {
    let token = token(config).await?;
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
        .with_token(token.clone())
        .router();
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "API server stopped");
        }
    });
    Ok(ApiHandle {
        addr,
        url: format!("http://{addr}"),
        token,
    })
}
