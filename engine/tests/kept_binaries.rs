//! An `okonomi://` revision keeps the binary it was built with: after the
//! source changes (and the engine restarts) it still runs the old code,
//! while a new revision of the same crate runs the new code. Real cargo
//! builds of a tiny crate in a temp dir.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use okonomi_engine::error::Error;
use okonomi_engine::instance::Launch;
use okonomi_engine::instance::build::{self, BinaryStore, Built, Lookup, RevisionId};

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
    let first = store
        .resolve(
            &r1,
            path,
            root,
            build::build_and_keep(path, root, "dev", &store),
        )
        .await
        .unwrap();
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
    let second = store
        .resolve(
            &r2,
            path,
            root,
            build::build_and_keep(path, root, "dev", &store),
        )
        .await
        .unwrap();
    assert_ne!(second.binary, first.binary);
    assert_eq!(run(&program(&second)), "version two");
    // ... and r1 still runs what it ran.
    assert_eq!(run(&kept), "version one");

    // r1's binary deleted: r1 is built again, from today's source.
    std::fs::remove_file(&kept).unwrap();
    let rebuilt = store
        .resolve(
            &r1,
            path,
            root,
            build::build_and_keep(path, root, "dev", &store),
        )
        .await
        .unwrap();
    assert_eq!(rebuilt.binary, second.binary);
    assert_eq!(run(&program(&rebuilt)), "version two");
}
