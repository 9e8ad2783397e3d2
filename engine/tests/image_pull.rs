//! Images from a real registry: hello's binary in an OCI image pushed with
//! skopeo to Debian's docker-registry on loopback (started through
//! okonomi-tests), deployed by digest, pulled, unpacked once into the
//! content-addressed cache and run as a process or under podman + runc; and
//! the container's `command` and `args` against the image's Entrypoint and
//! Cmd in both runtimes.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use okonomi_apiserver::ResourceType;
use okonomi_engine::kubelet::{Launch, build};
use okonomi_engine::{Engine, EngineConfig};
use okonomi_tests::services::Registry;
use okonomi_tests::tools::require;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod support;
use support::{get_body, wait_ready};

fn tool(name: &str, package: &str) {
    require(name, package).unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes an OCI image layout with one uncompressed layer holding
/// `binary` at /app/NAME, and `config` as the image config's `config`.
fn write_layout(dir: &Path, binary: &Path, name: &str, config: Value) {
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
        .append_data(&mut header, format!("app/{name}"), &data[..])
        .unwrap();
    let layer = layer.into_inner().unwrap();
    let layer_digest = put(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
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

/// The config of hello's image.
fn hello_config() -> Value {
    json!({"Entrypoint": ["/app/hello"], "Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "/app"})
}

/// Pushes `binary` as the image `NAME` (at /app/NAME, with `config`) to a
/// fresh registry; returns the registry (stopped on drop), the image
/// reference by digest and the digest.
fn push(work: &Path, binary: &Path, name: &str, config: Value) -> (Registry, String, String) {
    tool("skopeo", "skopeo");
    let layout = work.join("layout");
    write_layout(&layout, binary, name, config);
    let registry = Registry::start().unwrap();
    let repository = format!("{}/{name}", registry.prefix());
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

/// Calls the service at `host` and checks it answers hello's line.
async fn get_seed(engine: &Engine, host: &str) {
    let (status, body) = get_body(engine, host).await;
    assert_eq!(status, 200);
    assert!(body.starts_with("Hello Container World! ("), "{body:?}");
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
    let (_registry, image, digest) = push(work.path(), &program, "hello", hello_config());

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
    let (_registry, image, _) = push(work.path(), &binary, "hello", hello_config());
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

/// A static (musl) program that answers every HTTP request with its own
/// arguments, space-separated: what the runtime passed it, visible from
/// outside. std only, so it builds in seconds.
const ARGV_SERVER: &str = r#"
use std::io::{BufRead, BufReader, Write};

fn main() {
    let body = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let port = std::env::var("PORT").expect("PORT is set");
    let listener = std::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>().unwrap())).unwrap();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let body = body.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        });
    }
}
"#;

async fn build_argv_server(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"argv\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), ARGV_SERVER).unwrap();
    let output = tokio::process::Command::new("cargo")
        .args(["build", "--target", "x86_64-unknown-linux-musl"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "building the argv server for musl failed (rustup target add x86_64-unknown-linux-musl; apt-get install musl-tools): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    dir.join("target/x86_64-unknown-linux-musl/debug/argv")
}

/// Kubernetes' rules in both runtimes: `command` replaces the image's
/// Entrypoint and drops its Cmd, `args` replace the Cmd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_and_args_override_entrypoint_and_cmd_in_both_runtimes() {
    tool("podman", "podman");
    tool("runc", "runc");
    let work = tempfile::tempdir().unwrap();
    let binary = build_argv_server(&work.path().join("argv")).await;
    let (_registry, image, _) = push(
        work.path(),
        &binary,
        "argv",
        json!({"Entrypoint": ["/app/argv", "image-entrypoint"], "Cmd": ["image-cmd"], "WorkingDir": "/app"}),
    );
    let engine = Engine::start(engine_config(&work.path().join("state")))
        .await
        .unwrap();
    let cases = [
        (
            "neither",
            json!(null),
            json!(null),
            "image-entrypoint image-cmd",
        ),
        (
            "args",
            json!(null),
            json!(["spec args"]),
            "image-entrypoint spec args",
        ),
        (
            "command",
            json!(["/app/argv", "spec-command"]),
            json!(null),
            "spec-command",
        ),
        (
            "both",
            json!(["/app/argv", "spec-command"]),
            json!(["spec-args"]),
            "spec-command spec-args",
        ),
    ];
    let mut services = Vec::new();
    for runtime in ["process", "container"] {
        for (case, command, args, want) in &cases {
            let name = format!("{runtime}-{case}");
            let mut container = json!({"image": image});
            if !command.is_null() {
                container["command"] = command.clone();
            }
            if !args.is_null() {
                container["args"] = args.clone();
            }
            engine
                .store()
                .create(
                    &ResourceType::knative_service(),
                    json!({
                        "apiVersion": "serving.knative.dev/v1",
                        "kind": "Service",
                        "metadata": {"name": name},
                        "spec": {"template": {
                            "metadata": {"annotations": {"okonomi.dev/runtime": runtime}},
                            "spec": {"containers": [container]},
                        }},
                    }),
                )
                .await
                .unwrap();
            services.push((name, *want));
        }
    }
    for (name, want) in &services {
        wait_ready(&engine, name).await;
        let (status, body) = get_body(&engine, &format!("{name}.default.localhost")).await;
        assert_eq!((status, body.as_str()), (200, *want), "{name}");
    }
    engine.shutdown().await;
}

/// A container a killed engine left running (its `podman run` client died
/// with it) is removed by the next start, from the instance's record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_left_by_a_killed_engine_is_removed_on_the_next_start() {
    tool("podman", "podman");
    tool("runc", "runc");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let binary = static_hello(&root).await;
    let work = tempfile::tempdir().unwrap();
    let (_registry, image, _) = push(work.path(), &binary, "hello", hello_config());
    okonomi_engine::kubelet::container::pull(&image)
        .await
        .unwrap();
    let name = format!("okonomi-leftover-{}", std::process::id());
    let port = okonomi_tests::tools::free_port().unwrap();
    let env = okonomi_engine::kubelet::env::Environment(vec![("PORT".into(), port.to_string())]);
    let mut run = okonomi_engine::kubelet::container::command(&name, &image, &[], &[], &env, &[]);
    let mut client = run.kill_on_drop(true).spawn().unwrap();
    okonomi_tests::process::wait_for_port(port, Duration::from_secs(60), "the container").unwrap();
    let record =
        okonomi_engine::kubelet::leftovers::Record::of(client.id().unwrap(), Some(name.clone()))
            .unwrap();
    // The engine dies: its podman client is SIGKILLed, the container stays.
    client.start_kill().unwrap();
    client.wait().await.unwrap();
    let running = || {
        let listing = Command::new("podman")
            .args(["ps", "-a", "--format", "{{.Names}}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .any(|l| l == name)
    };
    assert!(running(), "the container should outlive its podman client");

    let state = work.path().join("state");
    let records = okonomi_engine::kubelet::leftovers::records_dir(&state);
    let path = okonomi_engine::kubelet::leftovers::record_path(
        &records,
        "default",
        "hello-00001",
        "1-abcdef",
    );
    okonomi_engine::kubelet::leftovers::write(&path, &record).await;
    let engine = Engine::start(engine_config(&state)).await.unwrap();
    assert!(
        !running(),
        "the container {name} is still there after the engine started"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} is still held"
    );
    assert!(!path.exists());
    engine.shutdown().await;
}
