//! The developer loop on freshly scaffolded functions: `okonomi new` → `cargo test`
//! → `okonomi build` → podman; `okonomi run` with hot reload; `okonomi invoke`
//! with CloudEvents. Scaffolds share the workspace's target dir (and, through the
//! copied Cargo.lock, its compiled dependencies).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

fn scaffold(dir: &Path, name: &str, template: &str) -> PathBuf {
    let docker = dir.join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let (ok, _, stderr) = run(okonomi(&docker)
        .args(["new", "--template", template, "--okonomi-path"])
        .arg(workspace().join("runtime"))
        .arg(dir.join(name)));
    assert!(ok, "okonomi new: {stderr}");
    dir.join(name)
}

fn cargo_test(crate_dir: &Path) {
    let out = Command::new(std::env::var("CARGO").unwrap())
        .arg("test")
        .current_dir(crate_dir)
        .env("CARGO_TARGET_DIR", workspace().join("target"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo test of the scaffold: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test result: ok. 1 passed"), "{stdout}");
}

/// `okonomi run`, interrupted (and so its function stopped) on drop.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn start(crate_dir: &Path, port: u16, log: PathBuf) -> Self {
        let docker = log.parent().unwrap().join("docker");
        let child = okonomi(&docker)
            .args(["run", "--port", &port.to_string(), "--debounce-ms", "200"])
            .arg(crate_dir)
            .env("CARGO_TARGET_DIR", workspace().join("target"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Running { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in okonomi run's output: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGINT, like Ctrl-C: okonomi run drops its function child (kill on drop) and exits.
        if let Ok(pid) = i32::try_from(self.child.id())
            && pid > 1
        {
            // SAFETY: kill(2) on our own child's pid (not yet reaped).
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get_until(port: u16, expected: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let body = get(port, timeout);
        if body.contains(expected) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "still {body:?}, expected {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn new_http_function_passes_its_test_builds_and_runs_in_podman() {
    let dir = tempfile::tempdir().unwrap();
    let greeter = scaffold(dir.path(), "greeter", "http");
    assert!(greeter.join("okonomi.toml").is_file());
    cargo_test(&greeter);

    let registry = Registry::start().unwrap();
    let (ok, stdout, stderr) = run(quick_release(&mut okonomi(&dir.path().join("docker")))
        .args(["build", "--registry", &registry.prefix()])
        .arg(&greeter)
        .env("CARGO_TARGET_DIR", workspace().join("target")));
    assert!(ok, "{stderr}");
    let reference = stdout.trim();
    assert!(
        reference.starts_with(&format!("{}/greeter@sha256:", registry.prefix())),
        "{stdout}"
    );
    let port = free_port();
    let _container = Container::run(reference, port);
    assert_eq!(get(port, Duration::from_secs(60)), "Hello from greeter!\n");
}

#[test]
fn run_reloads_on_change_and_keeps_the_last_good_build() {
    let dir = tempfile::tempdir().unwrap();
    let hot = scaffold(dir.path(), "hot", "http");
    let port = free_port();
    let running = Running::start(&hot, port, dir.path().join("run.log"));
    assert_eq!(get(port, Duration::from_secs(600)), "Hello from hot!\n");

    let main = hot.join("src/main.rs");
    let source = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, source.replace("Hello from", "Hi from")).unwrap();
    get_until(port, "Hi from hot!", Duration::from_secs(300));

    std::fs::write(&main, "this is not Rust\n").unwrap();
    running.wait_log(
        "build failed: the last good build keeps serving",
        Duration::from_secs(300),
    );
    assert_eq!(get(port, Duration::from_secs(10)), "Hi from hot!\n");
}

#[test]
fn cloudevent_function_answers_invoke_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let orders = scaffold(dir.path(), "orders", "cloudevent");
    cargo_test(&orders);
    let port = free_port();
    let _running = Running::start(&orders, port, dir.path().join("run.log"));
    wait_for_port(port, Duration::from_secs(600));
    let url = format!("http://127.0.0.1:{port}/");
    let docker = dir.path().join("docker");
    for mode in ["binary", "structured"] {
        let (ok, stdout, stderr) = run(okonomi(&docker).args([
            "invoke",
            &url,
            "--event-type",
            "com.example.order",
            "--mode",
            mode,
            "--data",
            r#"{"id":7}"#,
            "-e",
            "tenant=acme",
            "-o",
            "json",
        ]));
        assert!(ok, "{mode}: {stderr}");
        let reply: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(reply["type"], "com.example.receipt", "{mode}: {reply}");
        assert_eq!(reply["source"], "/orders");
        assert_eq!(
            reply["data"],
            serde_json::json!({"order": 7, "status": "accepted"}),
            "{mode}: {reply}"
        );
    }
    // Data the function does not expect: a 400 and exit code 3.
    let output = okonomi(&docker)
        .args([
            "invoke",
            &url,
            "--event-type",
            "com.example.order",
            "--data",
            r#"{"nope":1}"#,
        ])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("400"));
}
