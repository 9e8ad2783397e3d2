//! Starting and stopping the whole engine: the store, the API server, the
//! controllers and the data plane.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use okonomi_apiserver::{ListOptions, ResourceType, Store, WriteOptions};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

use crate::autoscaler::AutoscalerConfig;
use crate::controller::events::Recorder;
use crate::controller::revision::{RevisionSettings, Revisions};
use crate::controller::writer::ObjectWriter;
use crate::controller::{self, Context};
use crate::dataplane::activator::ActivatorLayer;
use crate::dataplane::forwarded::ForwardedLayer;
use crate::dataplane::metrics::Metrics;
use crate::dataplane::proxy::Proxy;
use crate::dataplane::router::{Router, SharedRoutes, TagHeaderRouting};
use crate::dataplane::server::ClientLimits;
use crate::dataplane::{RouteTable, server};
use crate::error::{Error, Result};
use crate::kubelet::pod_worker::SupervisorTiming;
use crate::kubelet::{ConfigSource, KubeletSettings, RuntimeKind, leftovers, volumes};
use crate::serving_config::{self, ServingConfig};
use okonomi_knative::cluster_config::{self, CONFIG_AUTOSCALER};

/// How the engine is set up. [`EngineConfig::default`] gives the defaults of
/// `okonomi up`.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where state lives: the database, TLS material, image cache, logs.
    /// Default `$OKONOMI_HOME`, else `~/.okonomi`.
    pub state_dir: PathBuf,
    /// Address of the Kubernetes API (HTTPS). Default `127.0.0.1:6443`; port
    /// 0 picks a free one.
    pub api_addr: SocketAddr,
    /// Address of the data plane (HTTP). Default `127.0.0.1:8080`; port 0
    /// picks a free one.
    pub http_addr: SocketAddr,
    /// Domain of service URLs: `http://NAME.NAMESPACE.DOMAIN`. Default
    /// `localhost`.
    pub domain: String,
    /// A `config-autoscaler` YAML file (a ConfigMap, or a map of its keys)
    /// whose settings are written into `knative-serving/config-autoscaler`
    /// at start; `None` keeps what is stored (Knative's defaults at first).
    pub autoscaler_config: Option<PathBuf>,
    /// A directory of Knative `config-*` ConfigMap YAML files whose `data`
    /// is written over the stored ConfigMaps at start (`okonomi up
    /// --config DIR`).
    pub knative_config_dir: Option<PathBuf>,
    /// Runtime for images: the process runtime (default) or podman.
    pub runtime: RuntimeKind,
    /// Directory `okonomi://PATH` references are relative to. Default: the
    /// current directory.
    pub source_root: PathBuf,
    /// Cargo profile for `okonomi://` builds whose template names none
    /// (`okonomi.dev/build-profile`). Default `dev`: quick to rebuild, as a
    /// local loop wants; the annotation asks for `release`.
    pub build_profile: String,
    /// How long an instance may take to become ready before its revision is
    /// reported failed. Default 60 s.
    pub ready_timeout: Duration,
    /// How long a request may wait for an instance. Default 60 s.
    pub activator_timeout: Duration,
    /// How many requests may wait per revision. Default 10 000.
    pub queue_depth: usize,
    /// What a client of the data plane may hold (header-read timeout,
    /// connection caps).
    pub client_limits: ClientLimits,
}

impl EngineConfig {
    /// `$OKONOMI_HOME`, else `~/.okonomi`, else `./.okonomi`.
    pub fn default_state_dir() -> PathBuf {
        if let Some(home) = std::env::var_os("OKONOMI_HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(home);
        }
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".okonomi"))
            .unwrap_or_else(|| PathBuf::from(".okonomi"))
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            state_dir: Self::default_state_dir(),
            api_addr: SocketAddr::from(([127, 0, 0, 1], 6443)),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            domain: "localhost".into(),
            autoscaler_config: None,
            knative_config_dir: None,
            runtime: RuntimeKind::Process,
            source_root: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            build_profile: "dev".into(),
            ready_timeout: Duration::from_secs(60),
            activator_timeout: Duration::from_secs(60),
            queue_depth: 10_000,
            client_limits: ClientLimits::default(),
        }
    }
}

/// What to say when `state_dir` was used before (it has the engine's TLS
/// material) but its database is missing or empty: the engine then starts
/// with no objects, and whatever was stored is gone without a word
/// otherwise.
fn lost_state(state_dir: &std::path::Path) -> Option<String> {
    let db = state_dir.join("okonomi.db");
    let used_before = state_dir.join("pki").is_dir();
    let state = match std::fs::metadata(&db) {
        Err(_) => "missing",
        Ok(meta) if meta.len() == 0 => "empty",
        Ok(_) => return None,
    };
    used_before.then(|| {
        format!(
            "{} is {state} though this state dir was used before ({} exists): starting with no objects; \
             the Services, Secrets and ConfigMaps stored before are not there (restore the file from a backup \
             to get them back)",
            db.display(),
            state_dir.join("pki").display()
        )
    })
}

/// A running engine.
#[derive(Debug)]
pub struct Engine {
    store: Store,
    http_addr: SocketAddr,
    api: crate::api::ApiHandle,
    revisions: Arc<Revisions>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    writer_stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    config: EngineConfig,
}

impl EngineConfig {
    /// The settings to write into Knative's ConfigMaps at start (name →
    /// keys): every `*.yaml`/`*.yml` ConfigMap of `knative_config_dir`, then
    /// the `autoscaler_config` file over `config-autoscaler`.
    fn knative_settings(&self) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
        let mut settings: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        if let Some(dir) = &self.knative_config_dir {
            let entries = std::fs::read_dir(dir).map_err(io(format!(
                "reading the Knative config dir {}",
                dir.display()
            )))?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            for file in files {
                for (name, data) in config_maps_in(&file)? {
                    settings.entry(name).or_default().extend(data);
                }
            }
        }
        if let Some(path) = &self.autoscaler_config {
            settings
                .entry(CONFIG_AUTOSCALER.to_owned())
                .or_default()
                .extend(
                    AutoscalerConfig::load_settings(path)?
                        .into_iter()
                        .filter(|(key, _)| key != cluster_config::EXAMPLE_KEY),
                );
        }
        Ok(settings)
    }
}

/// The `config-*` ConfigMaps in one YAML file (one or more documents), by
/// name with their `data`.
fn config_maps_in(file: &std::path::Path) -> Result<Vec<(String, BTreeMap<String, String>)>> {
    let invalid = |message: String| Error::Config {
        path: file.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(file).map_err(io(format!("reading {}", file.display())))?;
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&text).map_err(|e| invalid(format!("not valid YAML: {e}")))?;
    let mut found = Vec::new();
    for document in documents.into_iter().filter(|d| !d.is_null()) {
        let name = document["metadata"]["name"].as_str().unwrap_or_default();
        if document["kind"] != "ConfigMap" || serving_config::shipped(name).is_none() {
            return Err(invalid(format!(
                "expected Knative ConfigMaps ({}), found {} {name:?}",
                serving_config::NAMES.join(", "),
                document["kind"].as_str().unwrap_or("no kind"),
            )));
        }
        let mut data = BTreeMap::new();
        for (key, value) in document["data"].as_object().into_iter().flatten() {
            let Some(value) = value.as_str() else {
                return Err(invalid(format!(
                    "{name}: data.{key} must be a string (quote it: \"{value}\")"
                )));
            };
            if key != cluster_config::EXAMPLE_KEY {
                data.insert(key.clone(), value.to_owned());
            }
        }
        found.push((name.to_owned(), data));
    }
    Ok(found)
}

/// Creates `dir` readable by the engine's user alone.
async fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::create_dir_all(dir).await?;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

impl Engine {
    /// Opens the store under the state dir, binds both ports, and starts the
    /// API server, the controllers and the data plane. Revisions come back at
    /// the scale they had.
    pub async fn start(config: EngineConfig) -> Result<Engine> {
        tokio::fs::create_dir_all(&config.state_dir)
            .await
            .map_err(io(format!(
                "creating the state dir {}",
                config.state_dir.display()
            )))?;
        let settings = config.knative_settings()?;
        // Admission reads Knative's ConfigMaps as they are at each write;
        // the follower below keeps them current.
        let (serving_config, serving_config_rx) =
            watch::channel(Arc::new(ServingConfig::default()));
        let db = config.state_dir.join("okonomi.db");
        if let Some(warning) = lost_state(&config.state_dir) {
            tracing::warn!("{warning}");
        }
        let store = Store::open(&db)
            .await
            .map_err(|e| Error::Api(format!("opening {}: {e}", db.display())))?
            .with_admission(crate::api::admission(serving_config_rx.clone()));
        serving_config::seed(&store, &settings)
            .await
            .map_err(|e| Error::KnativeConfig(Box::new(e)))?;
        let controller_store = store.with_write_options(WriteOptions {
            field_manager: Some("okonomi-engine".into()),
            ..WriteOptions::default()
        });

        let http_listener = TcpListener::bind(config.http_addr)
            .await
            .map_err(io(format!(
                "binding the data plane to {} (is another engine running? choose another port)",
                config.http_addr
            )))?;
        let http_addr = http_listener
            .local_addr()
            .map_err(io("reading the data plane address".into()))?;
        // Instances a killed engine left running (it had no chance to stop
        // them) go before any new one starts. This comes after opening the
        // store and binding the port, so a second engine on the same state
        // dir fails above instead of killing the first one's instances.
        let reaped = leftovers::reap(&leftovers::records_dir(&config.state_dir)).await;
        if reaped > 0 {
            tracing::warn!(
                reaped,
                "stopped instances the previous engine left running (it did not shut down cleanly)"
            );
        }

        let shutdown = CancellationToken::new();
        serving_config::follow(store.clone(), serving_config, shutdown.child_token());
        let metrics = Arc::new(Metrics::default());
        // Pods are the engine's own: those a previous run left are gone.
        remove_stale_pods(&controller_store).await;
        let pods_dir = volumes::pods_dir(&config.state_dir);
        if let Err(e) = tokio::fs::remove_dir_all(&pods_dir).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %pods_dir.display(), error = %e, "removing the volumes of an earlier run's Pods");
        }
        // Pods' volumes hold Secret values: only the engine's user may read them.
        create_private_dir(&pods_dir)
            .await
            .map_err(io(format!("creating {}", pods_dir.display())))?;
        let writer = ObjectWriter::new(controller_store.clone());
        let recorder = Recorder::new(writer.clone());
        // The writer outlives the rest: stopping Pods still write.
        let writer_stop = CancellationToken::new();
        let deployment_changes = Arc::new(Notify::new());
        let revisions = Arc::new(Revisions::new(
            RevisionSettings {
                kubelet: KubeletSettings {
                    state_dir: config.state_dir.clone(),
                    runtime: config.runtime,
                    source_root: config.source_root.clone(),
                    build_profile: config.build_profile.clone(),
                    timing: SupervisorTiming {
                        ready_timeout: config.ready_timeout,
                        ..SupervisorTiming::default()
                    },
                    config: ConfigSource::follow(store.clone(), shutdown.child_token()),
                },
                config: serving_config_rx.clone(),
                queue_depth: config.queue_depth,
            },
            metrics.clone(),
            deployment_changes.clone(),
            writer.clone(),
            recorder.clone(),
            shutdown.child_token(),
        ));
        let routes: SharedRoutes = Arc::new(RwLock::new(Arc::new(RouteTable::default())));
        let (queue, queue_rx) = controller::queue();
        let ctx = Arc::new(Context {
            store: controller_store,
            revisions: revisions.clone(),
            routes: routes.clone(),
            route_hosts: Default::default(),
            domain: config.domain.clone(),
            http_port: http_addr.port(),
            queue,
            recorder: recorder.clone(),
        });

        // Restore the routing table before the data plane accepts anything,
        // so a restarted engine answers at once for every service.
        let routes_now = ctx
            .store
            .list(&ResourceType::knative_route(), &ListOptions::default())
            .map_err(|e| Error::Api(format!("listing routes: {e}")))?;
        for route in routes_now.items {
            let namespace = route["metadata"]["namespace"].as_str().unwrap_or("default");
            let name = route["metadata"]["name"].as_str().unwrap_or_default();
            if let Err(error) = controller::route::reconcile(&ctx, namespace, name).await {
                tracing::warn!(%namespace, %name, %error, "restoring route");
            }
        }

        let api = crate::api::start(
            &config,
            store.clone(),
            revisions.clone(),
            shutdown.child_token(),
        )
        .await?;

        let tag_header: TagHeaderRouting = Arc::new(AtomicBool::new(
            serving_config_rx
                .borrow()
                .validation
                .features
                .tag_header_based_routing,
        ));
        let switched = tag_header.clone();
        let domain = config.domain.clone();
        let activator_timeout = config.activator_timeout;
        let data_metrics = metrics.clone();
        // One stack per data-plane thread, each with its own client pool.
        let make_stack = move || {
            Router::new(
                routes.clone(),
                data_metrics.clone(),
                domain.clone(),
                tag_header.clone(),
                ServiceBuilder::new()
                    .layer(ActivatorLayer::new(activator_timeout))
                    .layer(ForwardedLayer)
                    .service(Proxy::default()),
            )
        };
        let reconfigured = revisions.clone();
        let mut config_changes = serving_config_rx;
        let reconfigure = async move {
            while config_changes.changed().await.is_ok() {
                let config = config_changes.borrow_and_update().clone();
                reconfigured.reconfigure(&config.autoscaler);
                switched.store(
                    config.validation.features.tag_header_based_routing,
                    Ordering::Relaxed,
                );
            }
        };
        let tasks = vec![
            tokio::spawn(reconfigure),
            tokio::spawn(writer.clone().run(writer_stop.clone())),
            tokio::spawn(recorder.expire(store.clone(), shutdown.child_token())),
            tokio::spawn(server::serve(
                http_listener,
                make_stack,
                config.client_limits,
                shutdown.child_token(),
            )),
            tokio::spawn(controller::run(
                ctx,
                queue_rx,
                deployment_changes,
                shutdown.child_token(),
            )),
        ];
        tracing::info!(%http_addr, api = %api.addr, state_dir = %config.state_dir.display(), "engine started");
        Ok(Engine {
            store,
            http_addr,
            api,
            revisions,
            metrics,
            shutdown,
            writer_stop,
            tasks,
            config,
        })
    }

    /// Where the data plane listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the Kubernetes API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api.addr
    }

    /// The engine's object store (in-process access to every object).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The Prometheus text of the engine's metrics (also at `/metrics` on
    /// the data plane).
    pub fn metrics(&self) -> String {
        self.metrics.render()
    }

    /// The ready instances of a revision (none when it is at zero or does
    /// not exist).
    pub fn instances(
        &self,
        namespace: &str,
        revision: &str,
    ) -> Vec<Arc<crate::dataplane::Endpoint>> {
        let key = crate::dataplane::RevisionKey {
            namespace: namespace.to_string(),
            name: revision.to_string(),
        };
        self.revisions
            .get(&key)
            .map(|deployment| deployment.throttler().endpoints().iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The config the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The API server's connection details (URL, token, CA), as written
    /// into the kubeconfig.
    pub fn api(&self) -> &crate::api::ApiHandle {
        &self.api
    }

    /// Stops the data plane and the controllers, then every instance
    /// (SIGTERM, drain, SIGKILL after the grace period), and waits.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.revisions.shutdown().await;
        self.writer_stop.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }
}

/// Deletes every Pod in the store: a Pod is a process of this engine, and
/// those of a previous run are gone (their leftovers reaped).
async fn remove_stale_pods(store: &Store) {
    let rt = ResourceType::pod();
    let pods = match store.list(&rt, &ListOptions::default()) {
        Ok(pods) => pods.items,
        Err(error) => {
            tracing::warn!(%error, "listing the previous run's pods");
            return;
        }
    };
    for pod in pods {
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        if let Err(error) = crate::controller::writer::remove(store, &rt, namespace, name).await {
            tracing::warn!(%namespace, %name, %error, "removing a previous run's pod");
        }
    }
}

/// Runs the engine until `shutdown` completes (e.g. Ctrl-C), then stops
/// every instance cleanly. This is what `okonomi up` calls.
pub async fn run(config: EngineConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    let engine = Engine::start(config).await?;
    shutdown.await;
    engine.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_used_state_dir_without_its_database_is_said_out_loud() {
        let dir = tempfile::tempdir().unwrap();
        // A new state dir: nothing to say.
        assert_eq!(lost_state(dir.path()), None);
        std::fs::create_dir(dir.path().join("pki")).unwrap();
        let missing = lost_state(dir.path()).unwrap();
        assert!(missing.contains("okonomi.db is missing"), "{missing}");
        std::fs::write(dir.path().join("okonomi.db"), b"").unwrap();
        let empty = lost_state(dir.path()).unwrap();
        assert!(empty.contains("okonomi.db is empty"), "{empty}");
        assert!(empty.contains("restore the file from a backup"), "{empty}");
        std::fs::write(dir.path().join("okonomi.db"), b"SQLite format 3\0").unwrap();
        assert_eq!(lost_state(dir.path()), None);
    }
}
