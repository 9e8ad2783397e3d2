//! The process runtime with a real registry: hello's binary in an OCI image
//! pushed with skopeo to Debian's docker-registry on loopback, deployed by
//! digest, pulled, unpacked once into the content-addressed cache and run.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use okonomi_apiserver::ResourceType;
use okonomi_engine::instance::{Launch, build};
use okonomi_engine::{Engine, EngineConfig};
use serde_json::json;
use sha2::{Digest, Sha256};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(name: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(found, "{name} is missing: apt-get install {package}");
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes an OCI image layout with one uncompressed layer holding
/// `binary` at /app/hello.
fn write_layout(dir: &Path, binary: &Path) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
        digest
    };
    let mut layer = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_size(0);
    layer
        .append_data(&mut header, "app/", std::io::empty())
        .unwrap();
    let data = std::fs::read(binary).unwrap();
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o755);
    header.set_size(data.len() as u64);
    layer
        .append_data(&mut header, "app/hello", &data[..])
        .unwrap();
    let layer = layer.into_inner().unwrap();
    let layer_digest = put(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/app/hello"], "Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "/app"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let config_digest = put(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest.len(),
                "annotations": {"org.opencontainers.image.ref.name": "latest"},
            }],
        }))
        .unwrap(),
    )
    .unwrap();
}

fn start_registry(dir: &Path) -> (Killed, u16) {
    tool("docker-registry", "docker-registry");
    let port = free_port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let registry = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "docker-registry did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (registry, port)
}

/// Pushes `binary` as an image to a fresh registry; returns the registry
/// (stopped on drop), the image reference by digest and the digest.
fn push(work: &Path, binary: &Path) -> (Killed, String, String) {
    tool("skopeo", "skopeo");
    let layout = work.join("layout");
    write_layout(&layout, binary);
    let (registry, port) = start_registry(work);
    let repository = format!("127.0.0.1:{port}/okonomi/hello");
    let copied = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{repository}:latest"))
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    let inspected = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{repository}:latest"))
        .output()
        .unwrap();
    assert!(
        inspected.status.success(),
        "{}",
        String::from_utf8_lossy(&inspected.stderr)
    );
    let digest = String::from_utf8(inspected.stdout)
        .unwrap()
        .trim()
        .to_string();
    let image = format!("{repository}@{digest}");
    (registry, image, digest)
}

async fn wait_ready(engine: &Engine, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let service = engine
            .store()
            .get(&ResourceType::knative_service(), "default", name)
            .unwrap();
        let ready = service["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned();
        if ready.as_ref().is_some_and(|r| r["status"] == "True") {
            return;
        }
        assert!(Instant::now() < deadline, "not ready: {ready:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_seed(engine: &Engine, host: &str) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = http::Request::get(format!("http://{}/", engine.http_addr()))
        .header("host", host)
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(body.starts_with(b"Hello Container World! ("), "{body:?}");
}

fn engine_config(state: &Path) -> EngineConfig {
    EngineConfig {
        state_dir: state.to_path_buf(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        ..EngineConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_pulled_by_digest_runs_as_a_process() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let Launch::Process { program, .. } =
        build::build("functions/hello", &root, "dev").await.unwrap()
    else {
        panic!("okonomi:// builds run as processes");
    };
    let work = tempfile::tempdir().unwrap();
    let (_registry, image, digest) = push(work.path(), &program);

    let state = work.path().join("state");
    let engine = Engine::start(engine_config(&state)).await.unwrap();
    engine
        .store()
        .create(
            &ResourceType::knative_service(),
            json!({
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "metadata": {"name": "pulled"},
                "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
            }),
        )
        .await
        .unwrap();
    wait_ready(&engine, "pulled").await;
    get_seed(&engine, "pulled.default.localhost").await;

    // Unpacked once, under the manifest digest.
    let unpacked = state.join("images/rootfs").join(digest.replace(':', "-"));
    assert!(unpacked.join("app/hello").is_file());
    let instances = engine.instances("default", "pulled-00001");
    assert_eq!(instances.len(), 1);
    let exe = std::fs::read_link(format!("/proc/{}/exe", instances[0].pid.unwrap())).unwrap();
    assert!(
        exe.starts_with(&unpacked),
        "{} runs from outside the cache",
        exe.display()
    );
    engine.shutdown().await;
}

/// Builds hello statically (musl) so that it runs alone in a container.
async fn static_hello(root: &Path) -> PathBuf {
    let output = tokio::process::Command::new("cargo")
        .args([
            "build",
            "-p",
            "hello",
            "--target",
            "x86_64-unknown-linux-musl",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "building hello for musl failed (rustup target add x86_64-unknown-linux-musl; apt-get install musl-tools): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "hello")
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next()
        .expect("cargo reported hello's executable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_image_runs_under_podman_and_runc() {
    tool("podman", "podman");
    tool("runc", "runc");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let binary = static_hello(&root).await;
    let work = tempfile::tempdir().unwrap();
    let (_registry, image, _) = push(work.path(), &binary);
    let state = work.path().join("state");
    let engine = Engine::start(engine_config(&state)).await.unwrap();
    engine
        .store()
        .create(
            &ResourceType::knative_service(),
            json!({
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "metadata": {"name": "boxed"},
                "spec": {"template": {
                    "metadata": {"annotations": {"okonomi.dev/runtime": "container"}},
                    "spec": {"containers": [{"image": image}]},
                }},
            }),
        )
        .await
        .unwrap();
    wait_ready(&engine, "boxed").await;
    get_seed(&engine, "boxed.default.localhost").await;
    let instances = engine.instances("default", "boxed-00001");
    assert_eq!(instances.len(), 1);
    let listing = Command::new("podman")
        .args(["ps", "--format", "{{.Names}} {{.Image}}"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    let name = format!("okonomi-boxed-00001-{}", instances[0].id);
    assert!(listing.contains(&name), "no container {name} in: {listing}");
    engine.shutdown().await;
    // Stopping the engine removes its containers.
    let listing = Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&listing.stdout).contains(&name));
}
