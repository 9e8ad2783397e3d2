//! A real API server for tests: SQLite store, generated CA and token, HTTPS on a
//! loopback port, and a kubeconfig in a temporary directory (never the user's).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use okonomi_apiserver::http::Api;
use okonomi_apiserver::kubeconfig::{self, KubeconfigEntry};
use okonomi_apiserver::tls::{Credentials, serve_tls};
use okonomi_apiserver::{ResourceType, Store};
use tokio::sync::oneshot;

/// Where the Google Cloud SDK keeps the versioned kubectl binaries.
pub const KUBECTL_DIR: &str = "/usr/lib/google-cloud-sdk/bin";

/// A write request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub uri: String,
    pub content_type: String,
    pub body: String,
}

/// Every request, in arrival order (bodies of GETs are not read).
pub type RequestLog = Arc<Mutex<Vec<Recorded>>>;

pub struct Server {
    pub dir: tempfile::TempDir,
    pub store: Store,
    /// What clients wrote (to check what kubectl sends).
    pub writes: RequestLog,
    /// Every request's method and URI, reads included.
    pub requests: RequestLog,
    pub credentials: Credentials,
    pub url: String,
    pub kubeconfig: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_in(tempfile::tempdir().expect("temp dir")).await
    }

    pub async fn start_in(dir: tempfile::TempDir) -> Server {
        Self::start_with(dir, None).await
    }

    /// A server whose API writes go through `admission`.
    pub async fn start_with(
        dir: tempfile::TempDir,
        admission: Option<std::sync::Arc<dyn okonomi_apiserver::Admission>>,
    ) -> Server {
        Self::start_custom(dir, admission, |api| api).await
    }

    /// A server whose `Api` is passed through `customize` (to install backends).
    pub async fn start_custom(
        dir: tempfile::TempDir,
        admission: Option<std::sync::Arc<dyn okonomi_apiserver::Admission>>,
        customize: impl FnOnce(Api) -> Api,
    ) -> Server {
        let mut store = Store::open(&dir.path().join("state.db"))
            .await
            .expect("open store");
        if let Some(admission) = admission {
            store = store.with_admission(admission);
        }
        let credentials =
            Credentials::load_or_create(&dir.path().join("pki")).expect("credentials");
        let api = customize(
            Api::new(store.clone(), ResourceType::all_builtin())
                .with_token(credentials.token.clone())
                .with_bookmark_interval(Duration::from_millis(500)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let url = format!("https://127.0.0.1:{port}");
        let config = credentials.server_config().expect("tls config");
        let (stop, stopped) = oneshot::channel::<()>();
        let writes = RequestLog::default();
        let requests = RequestLog::default();
        let router = api
            .router()
            .layer(axum::middleware::from_fn_with_state(writes.clone(), record))
            .layer(axum::middleware::from_fn_with_state(
                requests.clone(),
                record_all,
            ));
        let task = tokio::spawn(async move {
            serve_tls(listener, router, config, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        let kubeconfig = dir.path().join("kubeconfig");
        kubeconfig::merge(
            &kubeconfig,
            &KubeconfigEntry {
                name: "okonomi".into(),
                server: url.clone(),
                ca_pem: credentials.ca_pem.clone(),
                token: credentials.token.clone(),
                namespace: None,
                set_current: true,
            },
        )
        .expect("kubeconfig");
        Server {
            dir,
            store,
            writes,
            requests,
            credentials,
            url,
            kubeconfig,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stop serving; returns the state directory for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write a manifest into the temp dir and return its path.
    pub fn manifest(&self, name: &str, yaml: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, yaml).expect("write manifest");
        path
    }

    /// A kube client for this server.
    pub async fn client(&self) -> kube::Client {
        client_from(&self.kubeconfig).await
    }

    /// A kube client that trusts this server but sends `token` (or none) instead
    /// of the right one.
    pub async fn client_with_token(&self, token: Option<&str>) -> kube::Client {
        let mut config = config_from(&self.kubeconfig).await;
        config.auth_info.token = token.map(|t| t.to_string().into());
        kube::Client::try_from(config).expect("kube client")
    }

    /// Run kubectl (`binary`) with `args` against this server (at most 120 s).
    pub async fn kubectl(&self, binary: &Path, args: &[&str]) -> Run {
        let output = tokio::time::timeout(
            Duration::from_secs(120),
            self.kubectl_command(binary).args(args).output(),
        )
        .await
        .expect("kubectl finishes within 120s")
        .expect("kubectl runs");
        Run::from(output)
    }

    /// Run kubectl, fail the test if it fails, return its standard output.
    pub async fn kubectl_ok(&self, binary: &Path, args: &[&str]) -> String {
        let run = self.kubectl(binary, args).await;
        assert!(run.ok, "kubectl {args:?} failed: {run}");
        run.stdout
    }

    /// Write `object` as the engine does: create it, then set its status through
    /// the status subresource (create drops status for such types).
    pub async fn engine_put(
        &self,
        rt: &ResourceType,
        object: serde_json::Value,
    ) -> serde_json::Value {
        let status = object.get("status").cloned();
        let created = self.store.create(rt, object).await.expect("engine create");
        match status {
            Some(status) if rt.status_subresource => {
                let ns = created["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let name = created["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                self.store
                    .patch_status(
                        rt,
                        &ns,
                        &name,
                        &okonomi_apiserver::Patch::Merge(serde_json::json!({"status": status})),
                    )
                    .await
                    .expect("engine status")
            }
            _ => created,
        }
    }

    /// Wait until a request whose URI contains every one of `parts` has arrived
    /// (a client reached that step); fails after 60 s.
    pub async fn wait_for_request(&self, parts: &[&str]) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let seen = self
                .requests
                .lock()
                .unwrap()
                .iter()
                .any(|r| parts.iter().all(|p| r.uri.contains(p)));
            if seen {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no request with {parts:?} arrived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A kubectl command (the given binary) with this server's kubeconfig and a
    /// private HOME (so its discovery cache lives in the temp dir too).
    pub fn kubectl_command(&self, binary: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .env_remove("KUBE_FEATURE_WatchListClient")
            .kill_on_drop(true);
        cmd
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn record_all(State(log): State<RequestLog>, request: Request, next: Next) -> Response {
    log.lock().unwrap().push(Recorded {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        content_type: String::new(),
        body: String::new(),
    });
    next.run(request).await
}

async fn record(State(log): State<RequestLog>, request: Request, next: Next) -> Response {
    if request.method() == http::Method::GET {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 4 << 20)
        .await
        .expect("request body");
    log.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    });
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// A kube client configured from a kubeconfig file (CA, server URL, token).
pub async fn client_from(kubeconfig: &Path) -> kube::Client {
    kube::Client::try_from(config_from(kubeconfig).await).expect("kube client")
}

async fn config_from(kubeconfig: &Path) -> kube::Config {
    kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("kube config")
}

/// A kubectl binary, or a failure naming the package to install.
pub fn kubectl_binary(version: Option<&str>) -> PathBuf {
    let path = match version {
        None => PathBuf::from("/usr/bin/kubectl"),
        Some(v) => Path::new(KUBECTL_DIR).join(format!("kubectl.{v}")),
    };
    assert!(
        path.exists(),
        "{} is missing: install the Debian package `kubectl` (Google Cloud SDK repository), \
         which ships the dispatcher and kubectl.1.27 … kubectl.1.33",
        path.display()
    );
    path
}

pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok={} stdout:\n{}\nstderr:\n{}",
            self.ok, self.stdout, self.stderr
        )
    }
}
