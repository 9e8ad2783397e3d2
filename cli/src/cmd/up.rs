//! `okonomi up`: Knative Serving on this machine, in the foreground. Starts
//! okonomi's engine (Kubernetes API over HTTPS, controllers, router,
//! autoscaler, instances), merges the context `okonomi` into the kubeconfig,
//! optionally deploys functions, prints where everything is, and on Ctrl-C
//! (or SIGTERM) stops every instance cleanly before it exits.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use okonomi_engine::{Engine, EngineConfig};
use tokio_util::sync::CancellationToken;

use crate::global::Global;

const EXAMPLES: &str = "\
Examples:
  okonomi up --deploy functions/hello      the engine, with hello deployed
  curl -H 'Host: hello.default.localhost' http://127.0.0.1:8080/
  kubectl --context okonomi get ksvc
  okonomi up --api-port 0 --http-port 0    free ports (printed on start)
  okonomi up --config knative-config/      seed Knative's config-* ConfigMaps
  kubectl edit cm config-autoscaler -n knative-serving    change them live

State (database, TLS material, images, logs) lives in --state-dir, $OKONOMI_HOME or ~/.okonomi.
The context `okonomi` is merged into the first file of $KUBECONFIG (or ~/.kube/config)
without touching other contexts; --no-current-context leaves the current context alone.";

/// Name of the kubeconfig cluster, user and context.
pub const CONTEXT: &str = "okonomi";

/// Arguments of `okonomi up`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// State directory (default $OKONOMI_HOME, else ~/.okonomi).
    #[arg(long, env = "OKONOMI_HOME", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Port of the Kubernetes API on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 6443)]
    pub api_port: u16,
    /// Port of the functions' HTTP router on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Domain of function URLs: `http://NAME.NAMESPACE.DOMAIN`.
    #[arg(long, default_value = "localhost")]
    pub domain: String,
    /// Deploy these function crates once the engine is up (repeatable).
    #[arg(long = "deploy", value_name = "PATH")]
    pub deploy: Vec<PathBuf>,
    /// Merge the context without making it the current one.
    #[arg(long)]
    pub no_current_context: bool,
    /// A directory of Knative `config-*` ConfigMap YAML files (config-autoscaler,
    /// config-defaults, config-features, …) whose settings are written into
    /// `knative-serving` at start, as `kubectl apply -f DIR` would.
    #[arg(long = "config", value_name = "DIR")]
    pub knative_config: Option<PathBuf>,
}

/// The state directory: the flag / $OKONOMI_HOME, else ~/.okonomi.
pub fn state_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(flag
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(EngineConfig::default_state_dir))
}

/// Runs `okonomi up` until Ctrl-C or SIGTERM.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let mut config = EngineConfig {
        state_dir: state_dir(args.state_dir.clone())?,
        domain: args.domain.clone(),
        knative_config_dir: args.knative_config.clone(),
        ..EngineConfig::default()
    };
    config.api_addr.set_port(args.api_port);
    config.http_addr.set_port(args.http_port);
    let (engine, started) = EngineThread::start(config)?;
    let info = started
        .await
        .context("the engine stopped while starting")??;

    let kubeconfig = okonomi_apiserver::kubeconfig::default_path()?;
    let entry = okonomi_apiserver::kubeconfig::KubeconfigEntry {
        name: CONTEXT.into(),
        server: info.api_url.clone(),
        ca_pem: info.ca_pem.clone(),
        token: info.token.clone(),
        namespace: None,
        set_current: !args.no_current_context,
    };
    let path = kubeconfig.clone();
    tokio::task::spawn_blocking(move || okonomi_apiserver::kubeconfig::merge(&path, &entry))
        .await?
        .with_context(|| {
            format!(
                "merging the context {CONTEXT:?} into {}",
                kubeconfig.display()
            )
        })?;

    global.status("Engine", format!("state in {}", info.state_dir.display()));
    global.status(
        "API",
        format!(
            "{} (context {CONTEXT:?} in {})",
            info.api_url,
            kubeconfig.display()
        ),
    );
    global.status(
        "Router",
        format!(
            "http://{} (Host: NAME.NAMESPACE.{})",
            info.http_addr, args.domain
        ),
    );

    for path in &args.deploy {
        let deploy = DeployCli::try_parse_from([
            "deploy".as_ref(),
            path.as_os_str(),
            "--context".as_ref(),
            CONTEXT.as_ref(),
        ])?;
        // A function that fails to deploy is reported; the engine keeps serving the others.
        if let Err(error) = crate::cmd::deploy::run(deploy.args, global).await {
            global.print_error(&error.context(format!("deploying {}", path.display())));
        }
    }
    global.status("Serving", "press Ctrl-C to stop every instance and exit");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    terminate.recv().await;
    global.status("Stopping", "draining instances");
    drop(engine);
    Ok(ExitCode::SUCCESS)
}

#[derive(Parser)]
struct DeployCli {
    #[command(flatten)]
    args: crate::cmd::deploy::Args,
}

/// Where the started engine listens.
struct Started {
    api_url: String,
    ca_pem: String,
    token: String,
    http_addr: std::net::SocketAddr,
    state_dir: PathBuf,
}

/// The engine on a thread and runtime of its own, so that however this
/// command's future ends — SIGTERM, or Ctrl-C dropping it — dropping the
/// handle stops every instance cleanly (SIGTERM, drain) before the process
/// exits.
struct EngineThread {
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EngineThread {
    fn start(
        config: EngineConfig,
    ) -> anyhow::Result<(
        Self,
        tokio::sync::oneshot::Receiver<anyhow::Result<Started>>,
    )> {
        let stop = CancellationToken::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let token = stop.clone();
        let thread = std::thread::Builder::new()
            .name("okonomi-engine".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = tx.send(Err(anyhow::anyhow!("starting the engine's runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let state_dir = config.state_dir.clone();
                    let engine = match Engine::start(config).await {
                        Ok(engine) => engine,
                        Err(e) => {
                            let _ =
                                tx.send(Err(anyhow::Error::new(e).context("starting the engine")));
                            return;
                        }
                    };
                    // The engine serves its Kubernetes API over HTTPS itself
                    // (kubectl sends bearer tokens only over TLS).
                    let api = engine.api();
                    let _ = tx.send(Ok(Started {
                        api_url: api.url.clone(),
                        ca_pem: api.ca_pem.clone(),
                        token: api.token.clone(),
                        http_addr: engine.http_addr(),
                        state_dir,
                    }));
                    token.cancelled().await;
                    engine.shutdown().await;
                });
            })
            .context("starting the engine thread")?;
        Ok((
            Self {
                stop,
                thread: Some(thread),
            },
            rx,
        ))
    }
}

impl Drop for EngineThread {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            // Blocking on purpose: the process must not exit before its
            // instances are stopped. The engine runs on its own runtime, so
            // this cannot starve it.
            let _ = thread.join();
        }
    }
}
