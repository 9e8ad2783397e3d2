//! The kube context a suite runs against: okonomi's engine, started here with
//! `okonomi up` (temp `$OKONOMI_HOME`, temp `$KUBECONFIG`, free loopback
//! ports, a loopback docker-registry), or — with `OKONOMI_TEST_CONTEXT=NAME` —
//! any cluster with Knative Serving the user's kubeconfig reaches.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::{Okonomi, Run};
use crate::http::Http;
use crate::process::Guard;
use crate::services::Registry;
use crate::tools::free_port;

/// Where the scenarios run.
#[derive(Debug)]
pub struct Target {
    /// Runs okonomi and kubectl with the target's environment.
    pub okonomi: Okonomi,
    /// The kube context.
    pub context: String,
    /// The namespace the scenarios deploy into.
    pub namespace: String,
    /// HTTP to function URLs.
    pub http: Http,
    /// The engine, when the target is the local one.
    pub engine: Option<Engine>,
    /// The registry images are pushed to.
    pub registry: String,
}

/// The engine started for a test.
#[derive(Debug)]
pub struct Engine {
    /// `okonomi up`.
    pub process: Guard,
    /// Its state directory ($OKONOMI_HOME).
    pub home: PathBuf,
    /// Its kubeconfig.
    pub kubeconfig: PathBuf,
    /// The Kubernetes API port.
    pub api_port: u16,
    /// The HTTP (functions) port.
    pub http_port: u16,
    /// Where `okonomi up` writes its output.
    pub log: PathBuf,
    _registry: Registry,
    _dir: tempfile::TempDir,
}

impl Target {
    /// The engine (default) or `$OKONOMI_TEST_CONTEXT`.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("OKONOMI_TEST_CONTEXT") {
            Ok(context) if !context.is_empty() => Self::context(&context),
            _ => Self::engine(),
        }
    }

    /// True for the local engine.
    pub fn is_engine(&self) -> bool {
        self.engine.is_some()
    }

    /// A real cluster through the user's kubeconfig.
    pub fn context(context: &str) -> anyhow::Result<Self> {
        let registry = std::env::var("OKONOMI_REGISTRY").ok().filter(|r| !r.is_empty()).context(
            "OKONOMI_TEST_CONTEXT needs OKONOMI_REGISTRY: a registry this machine can push to and the cluster can pull from (see docs/portability.md)",
        )?;
        let namespace = std::env::var("OKONOMI_TEST_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "okonomi-portability".into());
        let mut env = BTreeMap::new();
        env.insert("OKONOMI_REGISTRY".into(), registry.clone());
        let okonomi = Okonomi::new(env)?;
        let target = Self {
            okonomi,
            context: context.to_owned(),
            namespace: namespace.clone(),
            http: Http::new(None)?,
            engine: None,
            registry,
        };
        let existing = target.kubectl(&["get", "namespace", &namespace])?;
        if existing.code != 0 {
            target
                .kubectl(&["create", "namespace", &namespace])?
                .success()?;
        }
        Ok(target)
    }

    /// Starts the engine with `okonomi up` and waits until kubectl reaches it.
    pub fn engine() -> anyhow::Result<Self> {
        Self::engine_with(BTreeMap::new())
    }

    /// The engine with `extra` in the environment of `okonomi up` and of every
    /// command run through the target. An empty value removes the variable:
    /// `OKONOMI_REGISTRY=""` deploys `okonomi://` builds instead of images.
    pub fn engine_with(extra: BTreeMap<String, String>) -> anyhow::Result<Self> {
        let registry = Registry::start()?;
        let dir = tempfile::tempdir()?;
        let home = dir.path().join("okonomi-home");
        let kubeconfig = dir.path().join("kube").join("config");
        std::fs::create_dir_all(kubeconfig.parent().context("kubeconfig has a parent")?)?;
        let api_port = free_port()?;
        let http_port = free_port()?;
        let mut env = BTreeMap::new();
        env.insert("KUBECONFIG".into(), kubeconfig.display().to_string());
        env.insert("OKONOMI_HOME".into(), home.display().to_string());
        env.insert(
            "OKONOMI_REGISTRY".into(),
            format!("{}/okonomi", registry.address),
        );
        for (key, value) in extra {
            if value.is_empty() {
                env.remove(&key);
            } else {
                env.insert(key, value);
            }
        }
        let okonomi = Okonomi::new(env)?;
        let log = dir.path().join("okonomi-up.log");
        let log_file = std::fs::File::create(&log)?;
        let process = spawn_up(&okonomi, api_port, http_port, log_file)?;
        let mut target = Self {
            okonomi,
            context: "okonomi".into(),
            namespace: "default".into(),
            http: Http::new(Some(http_port))?,
            registry: format!("{}/okonomi", registry.address),
            engine: Some(Engine {
                process,
                home,
                kubeconfig,
                api_port,
                http_port,
                log,
                _registry: registry,
                _dir: dir,
            }),
        };
        target.wait_for_api(Duration::from_secs(120))?;
        Ok(target)
    }

    /// Kills the engine with SIGKILL, as `kill -9` or the OOM killer would:
    /// it gets no chance to stop its instances. Returns once the `okonomi up`
    /// process is gone.
    pub fn kill_engine(&mut self) -> anyhow::Result<()> {
        let engine = self
            .engine
            .as_mut()
            .context("only the local engine can be killed")?;
        engine.process.kill();
        Ok(())
    }

    /// Starts `okonomi up` again on the same state dir, kubeconfig and ports
    /// (after [`Target::kill_engine`] or a crash), appending to the same log.
    /// Returns once the data plane's port accepts connections; then
    /// [`Target::wait_for_api`] waits for the Kubernetes API.
    pub fn restart_engine(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let engine = self
            .engine
            .as_mut()
            .context("only the local engine can be restarted")?;
        let log_file = std::fs::OpenOptions::new().append(true).open(&engine.log)?;
        engine.process = spawn_up(&self.okonomi, engine.api_port, engine.http_port, log_file)?;
        let http_port = engine.http_port;
        let deadline = Instant::now() + timeout;
        while std::net::TcpStream::connect(("127.0.0.1", http_port)).is_err() {
            if let Some(engine) = &mut self.engine
                && let Err(e) = engine.process.check_running()
            {
                anyhow::bail!("{e}; its output:\n{}", self.engine_log());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the restarted engine did not listen on {http_port} within {}s; its output:\n{}",
                    timeout.as_secs(),
                    self.engine_log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Waits until `kubectl get ksvc` answers through the context.
    pub fn wait_for_api(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(engine) = &mut self.engine
                && let Err(e) = engine.process.check_running()
            {
                anyhow::bail!("{e}; its output:\n{}", self.engine_log());
            }
            let run = self.kubectl(&["get", "ksvc"])?;
            if run.code == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "the engine's API did not answer within {}s: {run}\nokonomi up said:\n{}",
                    timeout.as_secs(),
                    self.engine_log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What `okonomi up` has printed so far.
    pub fn engine_log(&self) -> String {
        self.engine
            .as_ref()
            .and_then(|e| std::fs::read_to_string(&e.log).ok())
            .unwrap_or_default()
    }

    /// `okonomi ARGS… --context CONTEXT` (the flags go after the verb's own).
    pub fn okonomi(&self, args: &[&str]) -> anyhow::Result<Run> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--context", self.context.as_str()]);
        self.okonomi.run(&all)
    }

    /// `okonomi ARGS… --context CONTEXT -n NAMESPACE`.
    pub fn okonomi_ns(&self, args: &[&str]) -> anyhow::Result<Run> {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-n", self.namespace.as_str()]);
        self.okonomi(&all)
    }

    /// `kubectl --context CONTEXT ARGS…`.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<Run> {
        let mut all = vec!["--context", self.context.as_str()];
        all.extend(args);
        self.okonomi.kubectl(&all)
    }

    /// `kubectl --context CONTEXT -n NAMESPACE ARGS…`.
    pub fn kubectl_ns(&self, args: &[&str]) -> anyhow::Result<Run> {
        let mut all = vec!["-n", self.namespace.as_str()];
        all.extend(args);
        self.kubectl(&all)
    }

    /// `kubectl … -f -` with `stdin`.
    pub fn kubectl_ns_stdin(&self, args: &[&str], stdin: &str) -> anyhow::Result<Run> {
        let mut all = vec![
            "--context",
            self.context.as_str(),
            "-n",
            self.namespace.as_str(),
        ];
        all.extend(args);
        self.okonomi.kubectl_stdin(&all, stdin)
    }

    /// `okonomi deploy PATH --timeout TIMEOUT ARGS…` in the target's
    /// namespace; the URL it printed.
    pub fn deploy(&self, path: &str, timeout: &str, extra: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["deploy", path, "--timeout", timeout];
        args.extend(extra);
        let run = self.okonomi_ns(&args)?.success()?;
        let url = run.stdout.trim().to_owned();
        anyhow::ensure!(
            url.starts_with("http://") || url.starts_with("https://"),
            "deploy printed no URL:\n{run}"
        );
        Ok(url)
    }

    /// Waits (up to `timeout`) until `revision` reports no instances in
    /// `status.actualReplicas`, which Knative and the engine both keep; on
    /// a cluster also until none of its Pods is left.
    pub fn wait_scaled_to_zero(&self, revision: &str, timeout: Duration) -> anyhow::Result<()> {
        self.eventually(
            &format!("revision {revision} scaling to zero"),
            timeout,
            || {
                let rev = self
                    .kubectl_ns(&["get", "revision", revision, "-o", "json"])?
                    .success()?
                    .json()?;
                let replicas = rev["status"]["actualReplicas"].as_i64();
                if !self.is_engine() {
                    let pods = self
                        .kubectl_ns(&[
                            "get",
                            "pods",
                            "-l",
                            &format!("serving.knative.dev/revision={revision}"),
                            "-o",
                            "json",
                        ])?
                        .success()?
                        .json()?;
                    let running = pods["items"].as_array().map(|p| p.len()).unwrap_or(0);
                    return Ok((replicas == Some(0) && running == 0).then_some(()));
                }
                Ok((replicas == Some(0)).then_some(()))
            },
        )
    }

    /// The Knative Service as JSON (kubectl get ksvc NAME -o json).
    pub fn ksvc(&self, name: &str) -> anyhow::Result<serde_json::Value> {
        self.kubectl_ns(&["get", "ksvc", name, "-o", "json"])?
            .success()?
            .json()
    }

    /// Polls `check` until it returns Some, up to `timeout`.
    pub fn eventually<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> anyhow::Result<Option<T>>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + timeout;
        let mut last_error = None;
        loop {
            match check() {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            }
            if Instant::now() > deadline {
                let detail = last_error
                    .map(|e| format!(": last error: {e:#}"))
                    .unwrap_or_default();
                anyhow::bail!(
                    "{what} did not happen within {}s{detail}",
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// `okonomi up` on 127.0.0.1 with these ports, output to `log`.
fn spawn_up(
    okonomi: &Okonomi,
    api_port: u16,
    http_port: u16,
    log: std::fs::File,
) -> anyhow::Result<Guard> {
    let mut command = okonomi.command(&okonomi.binary);
    command
        .args([
            "up",
            "--api-port",
            &api_port.to_string(),
            "--http-port",
            &http_port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    Guard::spawn("okonomi up", &mut command)
}
