//! The edit loop on the engine: `okonomi deploy` of a scaffolded function,
//! a deploy with no change (no new revision), a one-line edit (a new revision
//! that runs the new code), and a change that does not compile (nothing
//! applied, the last good revision still answering).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use okonomi_tests::Target;
use okonomi_tests::tools::workspace_root;

/// Revision names of `service` in `default`, oldest first.
fn revisions(target: &Target, service: &str) -> Vec<String> {
    let run = target
        .kubectl_ns(&[
            "get",
            "revisions",
            "-l",
            &format!("serving.knative.dev/service={service}"),
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .unwrap()
        .success()
        .unwrap();
    let mut names: Vec<String> = run.stdout.split_whitespace().map(str::to_owned).collect();
    names.sort();
    names
}

/// `okonomi deploy DIR`: the URL it prints last.
fn deploy(target: &Target, dir: &Path) -> String {
    let run = target
        .okonomi_ns(&["deploy", &dir.display().to_string(), "--timeout", "600s"])
        .unwrap()
        .success()
        .unwrap();
    run.stdout
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

#[test]
fn an_edit_is_a_new_revision_running_the_new_code_and_no_edit_is_none() {
    // No registry, so deploy hands the engine okonomi:// builds; the
    // scaffold shares the workspace's compiled dependencies, for the CLI's
    // build and the engine's alike.
    let target = Target::engine_with(BTreeMap::from([
        ("OKONOMI_REGISTRY".to_owned(), String::new()),
        (
            "CARGO_TARGET_DIR".to_owned(),
            workspace_root().join("target").display().to_string(),
        ),
    ]))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let greeter = dir.path().join("greeter");
    target
        .okonomi
        .run(&[
            "new",
            "--template",
            "http",
            "--okonomi-path",
            &workspace_root().join("runtime").display().to_string(),
            &greeter.display().to_string(),
        ])
        .unwrap()
        .success()
        .unwrap();

    let url = deploy(&target, &greeter);
    assert!(url.starts_with("http://greeter.default."), "{url}");
    assert_eq!(target.http.get(&url).unwrap().body, "Hello from greeter!\n");
    assert_eq!(revisions(&target, "greeter"), ["greeter-00001"]);

    // No change: the template is the same, so Knative's rule makes no revision.
    deploy(&target, &greeter);
    assert_eq!(revisions(&target, "greeter"), ["greeter-00001"]);

    // A one-line edit: a new revision, answering with the new code.
    let main = greeter.join("src/main.rs");
    let source = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, source.replace("Hello from", "Hi from")).unwrap();
    let url = deploy(&target, &greeter);
    assert_eq!(
        revisions(&target, "greeter"),
        ["greeter-00001", "greeter-00002"]
    );
    assert_eq!(target.http.get(&url).unwrap().body, "Hi from greeter!\n");

    // A change that does not compile: the deploy fails, says why, and applies nothing.
    std::fs::write(&main, "this is not Rust\n").unwrap();
    let failed = target
        .okonomi_ns(&["deploy", &greeter.display().to_string()])
        .unwrap()
        .failure()
        .unwrap();
    assert!(
        failed.stderr.contains("greeter") && failed.stderr.contains("build"),
        "{failed}"
    );
    assert_eq!(
        revisions(&target, "greeter"),
        ["greeter-00001", "greeter-00002"]
    );
    assert_eq!(target.http.get(&url).unwrap().body, "Hi from greeter!\n");
}
