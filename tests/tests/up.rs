//! `okonomi up` as a user runs it: the engine in the foreground with a
//! function deployed by `--deploy`, its URL answering, and Ctrl-C (SIGINT)
//! stopping every instance before the process exits.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use okonomi_tests::http::Http;
use okonomi_tests::process::Guard;
use okonomi_tests::services::Registry;
use okonomi_tests::tools::{free_port, workspace_root};
use okonomi_tests::{Okonomi, uname};

/// Processes whose executable lives under `dir` (the engine's instances run
/// from its image cache there).
fn processes_under(dir: &Path) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(exe) = std::fs::read_link(entry.path().join("exe"))
            && exe.starts_with(dir)
        {
            found.push(pid);
        }
    }
    found
}

#[test]
fn up_deploys_hello_and_ctrl_c_stops_every_instance() {
    let registry = Registry::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let kubeconfig = dir.path().join("kubeconfig");
    let log = dir.path().join("up.log");
    let mut env = BTreeMap::new();
    env.insert("KUBECONFIG".to_owned(), kubeconfig.display().to_string());
    env.insert("OKONOMI_HOME".to_owned(), home.display().to_string());
    env.insert(
        "OKONOMI_REGISTRY".to_owned(),
        format!("{}/okonomi", registry.address),
    );
    let okonomi = Okonomi::new(env).unwrap();
    let http_port = free_port().unwrap();
    let api_port = free_port().unwrap();
    let hello = workspace_root().join("functions/hello");
    let mut command = okonomi.command(&okonomi.binary);
    command
        .args([
            "up",
            "--api-port",
            &api_port.to_string(),
            "--http-port",
            &http_port.to_string(),
            "--deploy",
        ])
        .arg(&hello)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.path().join("up.err")).unwrap());
    let mut up = Guard::spawn("okonomi up", &mut command).unwrap();

    // `--deploy` prints the function's URL on stdout once it is Ready.
    let deadline = Instant::now() + Duration::from_secs(600);
    let url = loop {
        up.check_running().unwrap();
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = out.lines().find(|l| l.starts_with("http://")) {
            break line.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no URL from okonomi up --deploy: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let err = std::fs::read_to_string(dir.path().join("up.err")).unwrap();
    assert!(
        err.contains(&format!("https://127.0.0.1:{api_port}")),
        "API address not printed: {err}"
    );
    assert!(
        err.contains("context \"okonomi\""),
        "context not printed: {err}"
    );
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(config.contains("current-context: okonomi"), "{config}");

    let answer = Http::new(Some(http_port)).unwrap().get(&url).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    uname::parse_seed_line(&answer.body).unwrap();
    let run = okonomi
        .run(&["list", "-o", "json"])
        .unwrap()
        .success()
        .unwrap();
    assert!(run.stdout.contains("\"hello\""), "{run}");
    let instances = processes_under(&home);
    assert!(
        !instances.is_empty(),
        "no instance runs from {}",
        home.display()
    );

    // Ctrl-C: the process exits (130) after its instances are gone.
    let pid = libc::pid_t::try_from(up.id().unwrap()).unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let status = up
        .wait_timeout(Duration::from_secs(60))
        .expect("okonomi up did not exit within 60s of Ctrl-C");
    assert_eq!(
        status.code(),
        Some(130),
        "okonomi up after Ctrl-C: {status:?}"
    );
    let left = processes_under(&home);
    assert!(left.is_empty(), "instances {left:?} outlived okonomi up");
}
