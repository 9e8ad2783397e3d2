//! The edit loop on the engine: `okonomi deploy` of a scaffolded function,
//! a deploy with no change (no new revision), a one-line edit (a new revision
//! that runs the new code), and a change that does not compile (nothing
//! applied, the last good revision still answering).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use okonomi_tests::Okonomi;
use okonomi_tests::http::Http;
use okonomi_tests::process::Guard;
use okonomi_tests::tools::{free_port, workspace_root};

/// Revision names of `service` in `default`, oldest first.
fn revisions(okonomi: &Okonomi, service: &str) -> Vec<String> {
    let run = okonomi
        .kubectl(&[
            "get",
            "revisions",
            "-n",
            "default",
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
fn deploy(okonomi: &Okonomi, dir: &Path) -> String {
    let run = okonomi
        .run(&["deploy", &dir.display().to_string(), "--timeout", "600s"])
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
    let dir = tempfile::tempdir().unwrap();
    let mut env = BTreeMap::new();
    env.insert(
        "KUBECONFIG".to_owned(),
        dir.path().join("kubeconfig").display().to_string(),
    );
    env.insert(
        "OKONOMI_HOME".to_owned(),
        dir.path().join("home").display().to_string(),
    );
    // The scaffold shares the workspace's compiled dependencies, for the
    // CLI's build and the engine's alike.
    env.insert(
        "CARGO_TARGET_DIR".to_owned(),
        workspace_root().join("target").display().to_string(),
    );
    let okonomi = Okonomi::new(env).unwrap();

    let greeter = dir.path().join("greeter");
    okonomi
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

    let http_port = free_port().unwrap();
    let api_port = free_port().unwrap();
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
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("up.err")).unwrap());
    let mut up = Guard::spawn("okonomi up", &mut command).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !okonomi.run(&["list"]).is_ok_and(|r| r.code == 0) {
        up.check_running().unwrap();
        assert!(
            Instant::now() < deadline,
            "the engine's API never answered: {}",
            std::fs::read_to_string(dir.path().join("up.err")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let http = Http::new(Some(http_port)).unwrap();

    let url = deploy(&okonomi, &greeter);
    assert!(url.starts_with("http://greeter.default."), "{url}");
    assert_eq!(http.get(&url).unwrap().body, "Hello from greeter!\n");
    assert_eq!(revisions(&okonomi, "greeter"), ["greeter-00001"]);

    // No change: the template is the same, so Knative's rule makes no revision.
    deploy(&okonomi, &greeter);
    assert_eq!(revisions(&okonomi, "greeter"), ["greeter-00001"]);

    // A one-line edit: a new revision, answering with the new code.
    let main = greeter.join("src/main.rs");
    let source = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, source.replace("Hello from", "Hi from")).unwrap();
    let url = deploy(&okonomi, &greeter);
    assert_eq!(
        revisions(&okonomi, "greeter"),
        ["greeter-00001", "greeter-00002"]
    );
    assert_eq!(http.get(&url).unwrap().body, "Hi from greeter!\n");

    // A change that does not compile: the deploy fails, says why, and applies nothing.
    std::fs::write(&main, "this is not Rust\n").unwrap();
    let failed = okonomi
        .run(&["deploy", &greeter.display().to_string()])
        .unwrap()
        .failure()
        .unwrap();
    assert!(
        failed.stderr.contains("greeter") && failed.stderr.contains("build"),
        "{failed}"
    );
    assert_eq!(
        revisions(&okonomi, "greeter"),
        ["greeter-00001", "greeter-00002"]
    );
    assert_eq!(http.get(&url).unwrap().body, "Hi from greeter!\n");
    up.stop(Duration::from_secs(30));
}
