//! One Pod's life (the kubelet's pod worker): start, wait for readiness, serve, restart after a
//! crash with backoff, and on scale-down drain, SIGTERM, then SIGKILL.

use std::net::SocketAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::env::{self, Environment, NodeResources, PodFields};
use super::logs::{self, LogRing};
use super::mounts::{self, RootPlan};
use super::objects::{CREATE_CONTAINER_CONFIG_ERROR, ConfigError, FAILED_MOUNT};
use super::prober::probe;
use super::volumes::{self, Mount};
use super::{InstanceSpec, Launch, container, leftovers};

/// What the pod worker tells the owner of the instance (its Deployment).
pub trait InstanceObserver: Send + Sync + 'static {
    /// The instance `id` (process `pid`) answers at `addr`.
    fn ready(&self, id: &str, addr: SocketAddr, pid: Option<u32>);
    /// The instance stops taking new requests; returns once requests in
    /// flight on it have finished (or a drain timeout passed).
    fn unready(&self, id: &str) -> impl Future<Output = ()> + Send;
    /// The instance failed to start or crashed; it is restarted after
    /// `failure.retry_in`.
    fn failed(&self, id: &str, failure: Failure);
    /// The instance's process started (for cold-start accounting).
    fn started(&self, id: &str);
}

/// Why an instance's run ended before it was stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// A condition reason (`Crashed`, `ExitedBeforeReady`, `ProbeTimeout`…).
    pub reason: String,
    /// What happened, with the last log lines.
    pub message: String,
    /// The process's exit code (128 + the signal when killed by one), if
    /// it ran and exited.
    pub exit_code: Option<i32>,
    /// When the pod worker starts it again (its back-off).
    pub retry_in: Duration,
}

/// Timing knobs of supervision.
#[derive(Debug, Clone)]
pub struct SupervisorTiming {
    /// How long an instance may take to become ready before it is reported
    /// failed (it keeps being retried).
    pub ready_timeout: Duration,
    /// Between SIGTERM and SIGKILL.
    pub termination_grace: Duration,
    /// First restart delay; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest restart delay.
    pub max_backoff: Duration,
}

impl Default for SupervisorTiming {
    fn default() -> Self {
        Self {
            ready_timeout: Duration::from_secs(60),
            termination_grace: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Picks a free loopback port for an instance's PORT.
fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

fn send_sigterm(child: &Child) {
    if let Some(pid) = child.id()
        && let Ok(pid) = libc::pid_t::try_from(pid)
    {
        // SAFETY: kill(2) with a pid of our own live child has no memory
        // safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// Runs the instance until `stop` is cancelled.
pub async fn supervise<O: InstanceObserver>(
    id: String,
    launch: Arc<Launch>,
    spec: Arc<InstanceSpec>,
    ring: LogRing,
    observer: Arc<O>,
    timing: SupervisorTiming,
    stop: CancellationToken,
) {
    let mut backoff = timing.initial_backoff;
    let mut changes = spec.config.changes.clone();
    loop {
        if stop.is_cancelled() {
            break;
        }
        let started_at = Instant::now();
        changes.mark_unchanged();
        let outcome = run_once(&id, &launch, &spec, &ring, &*observer, &timing, &stop).await;
        let waits_for_config;
        match outcome {
            Outcome::Stopped => break,
            Outcome::Failed {
                reason,
                message,
                exit_code,
            } => {
                waits_for_config =
                    reason == CREATE_CONTAINER_CONFIG_ERROR || reason == FAILED_MOUNT;
                if started_at.elapsed() > Duration::from_secs(30) {
                    backoff = timing.initial_backoff;
                }
                tracing::warn!(instance = %id, revision = %spec.revision, %reason, "{message}");
                observer.failed(
                    &id,
                    Failure {
                        reason,
                        message,
                        exit_code,
                        retry_in: backoff,
                    },
                );
            }
        }
        // A Pod waiting for a ConfigMap or Secret starts as soon as one
        // is written, not only after its back-off.
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
            Ok(()) = changes.changed(), if waits_for_config => {}
        }
        backoff = (backoff * 2).min(timing.max_backoff);
    }
    if spec
        .container
        .volume_mounts
        .as_ref()
        .is_some_and(|m| !m.is_empty())
    {
        let pod_dir = spec.pods_dir.join(&spec.namespace).join(&id);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(pod_dir)).await;
    }
}

enum Outcome {
    Stopped,
    Failed {
        reason: String,
        message: String,
        exit_code: Option<i32>,
    },
}

/// Kubernetes' exit code: the process's, or 128 + the signal that killed it.
fn exit_code(status: &ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
}

fn describe_exit(status: std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(e) => format!("wait failed: {e}"),
    }
}

fn with_tail(message: String, ring: &LogRing) -> String {
    let tail = ring.tail(10);
    if tail.is_empty() {
        message
    } else {
        format!("{message}; last log lines:\n{}", tail.join("\n"))
    }
}

async fn run_once<O: InstanceObserver>(
    id: &str,
    launch: &Launch,
    spec: &InstanceSpec,
    ring: &LogRing,
    observer: &O,
    timing: &SupervisorTiming,
    stop: &CancellationToken,
) -> Outcome {
    let port = match free_port() {
        Ok(port) => port,
        Err(e) => {
            return Outcome::Failed {
                reason: "NoPort".into(),
                message: format!("no free loopback port: {e}"),
                exit_code: None,
            };
        }
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let prepared = match prepare(id, launch, spec).await {
        Ok(prepared) => prepared,
        Err(error) => {
            return Outcome::Failed {
                reason: error.reason.to_string(),
                message: error.message,
                exit_code: None,
            };
        }
    };
    let container_name = format!("okonomi-{}-{id}", spec.revision);
    let contract = contract_env(spec, port);
    let mut command = match launch {
        Launch::Process {
            program,
            arg0,
            args,
            cwd,
            env: image_env,
        } => {
            let mut command = Command::new(program);
            if let Some(arg0) = arg0 {
                command.arg0(arg0);
            }
            command.args(args).current_dir(cwd).env_clear();
            // The image's environment, then the container's, then the
            // runtime contract's, each replacing the one before.
            command.envs(image_env.iter().cloned());
            command.envs(prepared.env.0.iter().cloned());
            command.envs(contract.iter().cloned());
            command
        }
        Launch::Container {
            image,
            command,
            args,
        } => {
            let mut env = prepared.env.clone();
            env.0.extend(contract.iter().cloned());
            container::command(
                &container_name,
                image,
                command,
                args,
                &env,
                &prepared.mounts,
            )
        }
    };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    // If the engine dies without stopping its instances (kill -9), they get
    // SIGTERM instead of lingering as orphans holding their ports. An
    // engine that died between fork and prctl would never send it: then
    // the parent is already another process and the instance must not
    // start. (Whatever survives SIGTERM is killed on the next start from
    // its leftovers record.)
    let engine = std::process::id();
    // SAFETY: the closure runs between fork and exec and only calls
    // prctl(2), getppid(2) and, through `RootPlan::enter`, unshare(2),
    // mount(2), chroot(2) and chdir(2), which are async-signal-safe, and
    // builds io::Errors from raw codes, which does not allocate.
    let root = prepared.root.map(Arc::new);
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if u32::try_from(libc::getppid()) != Ok(engine) {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            // A Pod with volumes on the process runtime: its own mount
            // namespace and root (see `mounts`).
            if let Some(root) = &root {
                root.enter()?;
            }
            Ok(())
        });
    }

    let log_file = match super::pod_logs::open_run(&spec.log_dir, id).await {
        Ok((_, file)) => Arc::new(tokio::sync::Mutex::new(file)),
        Err(e) => {
            return Outcome::Failed {
                reason: "LogFile".into(),
                message: format!("opening the log file in {}: {e}", spec.log_dir.display()),
                exit_code: None,
            };
        }
    };
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Outcome::Failed {
                reason: "StartFailed".into(),
                message: format!("could not start {launch:?}: {e}"),
                exit_code: None,
            };
        }
    };
    observer.started(id);
    let record_path =
        leftovers::record_path(&spec.records_dir, &spec.namespace, &spec.revision, id);
    let container = matches!(launch, Launch::Container { .. }).then(|| container_name.clone());
    if let Some(record) = child
        .id()
        .and_then(|pid| leftovers::Record::of(pid, container))
    {
        leftovers::write(&record_path, &record).await;
    }
    let outcome = watch(
        id,
        launch,
        spec,
        ring,
        observer,
        timing,
        stop,
        child,
        log_file,
        addr,
        &container_name,
    )
    .await;
    // The instance is gone on every path out of `watch`.
    leftovers::remove(&record_path).await;
    outcome
}

/// Follows a started instance: readiness, then serving until it exits or
/// `stop`; returns once the process is gone.
#[allow(clippy::too_many_arguments)]
async fn watch<O: InstanceObserver>(
    id: &str,
    launch: &Launch,
    spec: &InstanceSpec,
    ring: &LogRing,
    observer: &O,
    timing: &SupervisorTiming,
    stop: &CancellationToken,
    mut child: Child,
    log_file: Arc<tokio::sync::Mutex<tokio::fs::File>>,
    addr: SocketAddr,
    container_name: &str,
) -> Outcome {
    let port = addr.port();
    let prefix = format!("[{id}]");
    if let Some(out) = child.stdout.take() {
        tokio::spawn(logs::pump(
            out,
            ring.clone(),
            log_file.clone(),
            prefix.clone(),
        ));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(logs::pump(err, ring.clone(), log_file, prefix));
    }

    // Readiness: poll quickly at first (cold starts are milliseconds), then
    // back off.
    let deadline = Instant::now() + timing.ready_timeout;
    let mut interval = Duration::from_millis(2);
    loop {
        if probe(addr, &spec.readiness).await {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Give the log pumps a moment to catch the last lines.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Outcome::Failed {
                exit_code: exit_code(&status),
                reason: "ExitedBeforeReady".into(),
                message: with_tail(
                    format!("the instance exited before it was ready ({status})"),
                    ring,
                ),
            };
        }
        if Instant::now() >= deadline {
            terminate(&mut child, timing.termination_grace, launch, container_name).await;
            return Outcome::Failed {
                // Killed by the kubelet, as Kubernetes reports it.
                exit_code: Some(137),
                reason: "ProbeTimeout".into(),
                message: with_tail(
                    format!(
                        "not ready within {:?} (readiness: {:?} on port {port})",
                        timing.ready_timeout, spec.readiness
                    ),
                    ring,
                ),
            };
        }
        tokio::select! {
            _ = stop.cancelled() => {
                terminate(&mut child, timing.termination_grace, launch, container_name).await;
                return Outcome::Stopped;
            }
            _ = tokio::time::sleep(interval) => {}
        }
        interval = (interval * 2).min(Duration::from_millis(200));
    }
    observer.ready(id, addr, child.id());

    let mut changes = spec.config.changes.clone();
    let follows = volumes::follows_objects(&spec.volumes);
    loop {
        tokio::select! {
            status = child.wait() => {
                observer.unready(id).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Outcome::Failed {
                    exit_code: status.as_ref().ok().and_then(exit_code),
                    reason: "Crashed".into(),
                    message: with_tail(format!("the instance exited ({})", describe_exit(status)), ring),
                };
            }
            _ = stop.cancelled() => {
                observer.unready(id).await;
                terminate(&mut child, timing.termination_grace, launch, container_name).await;
                return Outcome::Stopped;
            }
            Ok(()) = changes.changed(), if follows => refresh_volumes(id, spec).await,
        }
    }
}

/// What a Pod's container starts with besides its [`Launch`].
struct Prepared {
    env: Environment,
    mounts: Vec<Mount>,
    /// The mount namespace of a process-runtime Pod with volumes.
    root: Option<RootPlan>,
}

/// The downward API's view of Pod `id`.
fn pod_fields(id: &str, spec: &InstanceSpec) -> PodFields {
    static NODE: OnceLock<NodeResources> = OnceLock::new();
    PodFields {
        name: id.to_string(),
        namespace: spec.namespace.clone(),
        labels: spec.labels.clone(),
        annotations: spec.annotations.clone(),
        service_account: spec.service_account.clone(),
        node_name: super::NODE_NAME.to_string(),
        ip: "127.0.0.1".into(),
        node: *NODE.get_or_init(|| NodeResources::of_this_machine(&spec.pods_dir)),
    }
}

/// Makes the container's environment and sets its volumes up, as the
/// kubelet does before each start: what is missing keeps it from starting.
async fn prepare(id: &str, launch: &Launch, spec: &InstanceSpec) -> Result<Prepared, ConfigError> {
    let fields = pod_fields(id, spec);
    let env = env::resolve(&spec.container, &fields, &*spec.config.objects)?;
    if spec
        .container
        .volume_mounts
        .as_ref()
        .is_none_or(Vec::is_empty)
    {
        return Ok(Prepared {
            env,
            mounts: Vec::new(),
            root: None,
        });
    }
    let pod_dir = spec.pods_dir.join(&spec.namespace).join(id);
    let cwd = match launch {
        Launch::Process { cwd, .. } => Some(cwd.clone()),
        Launch::Container { .. } => None,
    };
    let (volumes, container, objects) = (
        spec.volumes.clone(),
        spec.container.clone(),
        spec.config.objects.clone(),
    );
    // File system work: off the runtime's threads.
    tokio::task::spawn_blocking(move || {
        let mounts = volumes::set_up(&pod_dir, &volumes, &container, &fields, &*objects)?;
        let root = match cwd {
            Some(cwd) => Some(
                RootPlan::prepare(&mounts::root_dir(&pod_dir), &mounts, &cwd)
                    .map_err(|e| ConfigError::mount("root", e))?,
            ),
            None => None,
        };
        Ok(Prepared { env, mounts, root })
    })
    .await
    .map_err(|e| ConfigError::mount("root", e))?
}

/// Brings a running Pod's volumes up to date after a ConfigMap or Secret
/// changed (what cannot be read keeps its old files, as on Kubernetes).
async fn refresh_volumes(id: &str, spec: &InstanceSpec) {
    let fields = pod_fields(id, spec);
    let pod_dir = spec.pods_dir.join(&spec.namespace).join(id);
    let (volumes, container, objects) = (
        spec.volumes.clone(),
        spec.container.clone(),
        spec.config.objects.clone(),
    );
    let result = tokio::task::spawn_blocking(move || {
        volumes::set_up(&pod_dir, &volumes, &container, &fields, &*objects).map(drop)
    })
    .await;
    if let Ok(Err(error)) = result {
        tracing::warn!(pod = %id, reason = error.reason, "{}", error.message);
    }
}

/// The runtime contract's variables.
fn contract_env(spec: &InstanceSpec, port: u16) -> Vec<(String, String)> {
    vec![
        ("PORT".into(), port.to_string()),
        ("K_SERVICE".into(), spec.service.clone()),
        ("K_CONFIGURATION".into(), spec.configuration.clone()),
        ("K_REVISION".into(), spec.revision.clone()),
    ]
}

async fn terminate(child: &mut Child, grace: Duration, launch: &Launch, container_name: &str) {
    send_sigterm(child);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
    if matches!(launch, Launch::Container { .. }) {
        container::remove(container_name).await;
    }
}
