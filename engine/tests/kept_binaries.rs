//! An `okonomi://` revision keeps the binary it was built with: after the
//! source changes (and the engine restarts) it still runs the old code,
//! while a new revision of the same crate runs the new code. Real cargo
//! builds of a tiny crate in a temp dir.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use okonomi_apiserver::ResourceType;
use okonomi_engine::error::Error;
use okonomi_engine::kubelet::Launch;
use okonomi_engine::kubelet::binaries::{BinaryStore, Lookup, RevisionId};
use okonomi_engine::kubelet::build::{self, Built};
use okonomi_engine::{Engine, EngineConfig};
use serde_json::json;

mod support;
use support::{get_body, wait_ready};

/// A binary crate at `dir` whose main prints `version`.
fn write_crate(dir: &Path, version: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"okonomi-kept-binary-probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("src/main.rs"),
        format!("fn main() {{ println!(\"{version}\"); }}\n"),
    )
    .unwrap();
}

fn program(built: &Built) -> PathBuf {
    match &built.launch {
        Launch::Process { program, .. } => program.clone(),
        other => panic!("an okonomi:// build runs as a process, got {other:?}"),
    }
}

/// What the binary prints.
fn run(program: &Path) -> String {
    let output = std::process::Command::new(program).output().unwrap();
    assert!(output.status.success(), "{program:?}: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn revision(name: &str, uid: &str) -> RevisionId {
    RevisionId {
        namespace: "default".into(),
        name: name.into(),
        uid: uid.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_keeps_running_the_binary_it_was_built_with() {
    let state = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    let root = source.path();
    let path = "probe";
    let crate_dir = root.join(path);
    write_crate(&crate_dir, "version one");

    let store = BinaryStore::new(state.path());
    let r1 = revision("probe-00001", "uid-1");
    let first = resolve_or_build(&store, &r1, path, root).await;
    let kept = program(&first);
    assert!(
        kept.starts_with(state.path().join("binaries")),
        "{kept:?} is not in the store"
    );
    assert_eq!(run(&kept), "version one");
    match &first.launch {
        Launch::Process { cwd, .. } => assert_eq!(cwd, &crate_dir),
        other => panic!("{other:?}"),
    }

    // The checkout moves on; the engine restarts (a new store on the same
    // state dir).
    write_crate(&crate_dir, "version two");
    let store = BinaryStore::new(state.path());
    assert!(matches!(
        store.lookup(&r1, "okonomi://probe").await,
        Lookup::Kept { .. }
    ));
    let again = store
        .resolve(&r1, path, root, async {
            Err::<Built, Error>(Error::Build {
                path: path.into(),
                message: "a kept revision was built again".into(),
            })
        })
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(run(&program(&again)), "version one");

    // A new revision builds the new source.
    let r2 = revision("probe-00002", "uid-2");
    let second = resolve_or_build(&store, &r2, path, root).await;
    assert_ne!(second.binary, first.binary);
    assert_eq!(run(&program(&second)), "version two");
    // ... and r1 still runs what it ran.
    assert_eq!(run(&kept), "version one");

    // r1's binary deleted: r1 is built again, from today's source.
    std::fs::remove_file(&kept).unwrap();
    let rebuilt = resolve_or_build(&store, &r1, path, root).await;
    assert_eq!(rebuilt.binary, second.binary);
    assert_eq!(run(&program(&rebuilt)), "version two");
}

/// What `revision` runs: its kept binary, or a dev build of the crate at
/// `root/path`, kept.
async fn resolve_or_build(
    store: &BinaryStore,
    revision: &RevisionId,
    path: &str,
    root: &Path,
) -> Built {
    store
        .resolve(
            revision,
            path,
            root,
            build::build_and_keep(path, root, "dev", store),
        )
        .await
        .unwrap()
}

/// A function crate at `dir`: a std-only HTTP server on `PORT` answering
/// `version` to every request.
fn write_server_crate(dir: &Path, version: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"okonomi-kept-server-probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    let main = r#"use std::io::{Read, Write};

fn main() {
    let port: u16 = std::env::var("PORT").unwrap().parse().unwrap();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buffer[..n]),
            }
        }
        let body = "VERSION";
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
            body.len(),
            body
        );
    }
}
"#;
    std::fs::write(dir.join("src/main.rs"), main.replace("VERSION", version)).unwrap();
}

fn engine_config(state_dir: &Path, source_root: &Path) -> EngineConfig {
    EngineConfig {
        state_dir: state_dir.to_path_buf(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        source_root: source_root.to_path_buf(),
        build_profile: "dev".into(),
        ready_timeout: Duration::from_secs(60),
        activator_timeout: Duration::from_secs(120),
        ..EngineConfig::default()
    }
}

async fn deploy(engine: &Engine, name: &str, image: &str) {
    engine
        .store()
        .create(
            &ResourceType::knative_service(),
            json!({
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
            }),
        )
        .await
        .unwrap();
}

/// The body the engine answers for `host` (a 200).
async fn get(engine: &Engine, host: &str) -> String {
    let (status, body) = get_body(engine, host).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_an_old_revision_serves_its_old_code() {
    let state = tempfile::tempdir().unwrap();
    let source = tempfile::tempdir().unwrap();
    write_server_crate(&source.path().join("served"), "version one");

    let engine = Engine::start(engine_config(state.path(), source.path()))
        .await
        .unwrap();
    deploy(&engine, "kept", "okonomi://served").await;
    wait_ready(&engine, "kept").await;
    assert_eq!(get(&engine, "kept.default.localhost").await, "version one");
    engine.shutdown().await;

    // The checkout moves on while the engine is down.
    write_server_crate(&source.path().join("served"), "version two");
    let engine = Engine::start(engine_config(state.path(), source.path()))
        .await
        .unwrap();
    wait_ready(&engine, "kept").await;
    assert_eq!(
        get(&engine, "kept.default.localhost").await,
        "version one",
        "the revision was built again from newer source"
    );
    // A new revision of the same crate runs the new code.
    deploy(&engine, "fresh", "okonomi://served").await;
    wait_ready(&engine, "fresh").await;
    assert_eq!(get(&engine, "fresh.default.localhost").await, "version two");
    engine.shutdown().await;
}
