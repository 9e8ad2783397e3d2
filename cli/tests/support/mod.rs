//! The CLI tests' harness: the okonomi binary, skopeo and podman (with runc).
//! The real services (docker-registry, open or with htpasswd users) and the
//! tool/port helpers come from `okonomi-tests`, shared with the other suites.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (functions/hello lives there).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub use okonomi_tests::services::Registry;

/// Fails (never skips) when a tool is missing, naming the Debian package.
pub fn require(tool: &str, package: &str) {
    okonomi_tests::tools::require(tool, package).unwrap();
}

/// A free loopback port.
pub fn free_port() -> u16 {
    okonomi_tests::tools::free_port().unwrap()
}

/// Waits until something accepts connections on the port.
pub fn wait_for_port(port: u16, timeout: Duration) {
    okonomi_tests::process::wait_for_port(port, timeout, "the test's server").unwrap();
}

/// The okonomi binary with an isolated docker config dir and no colour.
pub fn okonomi(docker_config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_okonomi"));
    cmd.env("DOCKER_CONFIG", docker_config)
        .env("NO_COLOR", "1")
        .env_remove("OKONOMI_REGISTRY")
        .current_dir(workspace())
        .stdin(Stdio::null());
    cmd
}

/// Release builds without fat LTO, one codegen unit and full optimisation:
/// for tests about what `okonomi build` makes (an index, a pushed
/// reference), not about the size or speed of the binary inside, which the
/// hello size test checks with the real profile. On two cores this saves
/// minutes per target; the tests that use it share these artifacts.
pub fn quick_release(cmd: &mut Command) -> &mut Command {
    cmd.env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1")
}

/// Runs and returns (success, stdout, stderr), echoing stderr for failing tests.
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the command starts");
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    eprintln!("{stderr}");
    (
        status.success(),
        String::from_utf8_lossy(&stdout).into_owned(),
        stderr,
    )
}

/// `skopeo inspect` (plain HTTP allowed) of `args`, as JSON.
pub fn skopeo_inspect(args: &[&str]) -> serde_json::Value {
    require("skopeo", "skopeo");
    let out = Command::new("skopeo")
        .arg("inspect")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A container run by `podman --runtime runc`, removed on drop.
pub struct Container {
    pub name: String,
}

impl Container {
    /// Runs `image` detached on the host network with PORT set.
    pub fn run(image: &str, port: u16) -> Self {
        require("podman", "podman");
        require("runc", "runc");
        let name = format!("okonomi-test-{}-{}", std::process::id(), port);
        let out = Command::new("podman")
            .args([
                "--runtime",
                "runc",
                "run",
                "-d",
                "--rm",
                "--network",
                "host",
                "--tls-verify=false",
            ])
            // podman's default rlimits (nofile/nproc 1048576) may not be raised in
            // this sandbox: ask for ordinary ones.
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .args(["--name", &name, "-e", &format!("PORT={port}"), image])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "podman run {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Container { name }
    }

    /// The host pid of the container's process.
    pub fn pid(&self) -> u32 {
        let out = Command::new("podman")
            .args(["inspect", "--format", "{{.State.Pid}}", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "2", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// GET `http://127.0.0.1:PORT/`, retrying until it answers (the process is starting).
pub fn get(port: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(body) = try_get(port) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "no answer on 127.0.0.1:{port} after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn try_get(port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP answer"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(head.to_string()));
    }
    Ok(body.to_string())
}

/// Writes a docker config.json with basic auth for `host`.
pub fn docker_config(dir: &Path, host: &str, user: &str, password: &str) {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({"auths": {host: {"auth": auth}}}).to_string(),
    )
    .unwrap();
}
