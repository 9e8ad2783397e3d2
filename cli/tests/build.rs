//! `okonomi build` and `okonomi resolve` against the real parts: a CNCF
//! distribution registry (open and with htpasswd), skopeo, podman with runc.
//! The first test to run pays the release musl build of hello; the others find
//! cargo's no-op and share it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::*;

fn build_json(registry: &Registry, docker: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    build_json_of(okonomi(docker), registry, extra)
}

fn build_json_of(
    mut command: std::process::Command,
    registry: &Registry,
    extra: &[&str],
) -> serde_json::Value {
    let (ok, stdout, stderr) = run(command
        .args([
            "build",
            "functions/hello",
            "--registry",
            &registry.prefix(),
            "-o",
            "json",
        ])
        .args(extra));
    assert!(ok, "okonomi build failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"))
}

#[test]
fn hello_is_pushed_inspected_and_runs_as_nonroot() {
    let registry = Registry::start().unwrap();
    let docker = tempfile::tempdir().unwrap();
    // Text output: stdout is exactly the reference.
    let (ok, stdout, stderr) = run(okonomi(docker.path()).args([
        "build",
        "functions/hello",
        "--registry",
        &registry.prefix(),
    ]));
    assert!(ok, "{stderr}");
    let reference = stdout.trim();
    let prefix = format!("{}/hello@sha256:", registry.prefix());
    assert!(reference.starts_with(&prefix), "stdout is {stdout:?}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the reference on stdout: {stdout:?}"
    );
    assert!(
        stderr.contains("Pushed"),
        "progress goes to stderr: {stderr}"
    );

    let docker_ref = format!("docker://{reference}");
    let inspect = skopeo_inspect(&["--tls-verify=false", &docker_ref]);
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(
        inspect["Layers"].as_array().unwrap().len(),
        2,
        "base + binary: {inspect}"
    );
    assert!(
        inspect["Labels"]["org.opencontainers.image.created"].is_string(),
        "{inspect}"
    );
    let config = skopeo_inspect(&["--tls-verify=false", "--config", &docker_ref]);
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/app/hello"])
    );
    let env = config["config"]["Env"].to_string();
    assert!(
        env.contains("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
        "{env}"
    );

    // Size as the registry stores it: hello's image must stay within 2 MiB
    // compressed (sizes are deterministic, so this is a fair test, unlike time).
    let raw = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &docker_ref])
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let compressed: u64 = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    assert!(
        compressed <= 2 * 1024 * 1024,
        "hello is {compressed} bytes compressed, over the 2 MiB budget: \
         a dependency grew (cargo tree -p hello) or the build is not stripped"
    );

    // Run it under podman + runc; it answers the seed's line as uid 65532.
    let port = free_port();
    let container = Container::run(reference, port);
    let body = get(port, Duration::from_secs(60));
    assert!(
        body.contains("Hello Container World! ('Linux', '"),
        "answer: {body:?}"
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", container.pid())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid.split_whitespace().skip(1).all(|u| u == "65532"),
        "{uid}"
    );

    // invoke prints the reply.
    let (ok, stdout, stderr) =
        run(okonomi(docker.path()).args(["invoke", &format!("http://127.0.0.1:{port}/")]));
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("Hello Container World! ('Linux'"),
        "{stdout:?}"
    );
}

#[test]
fn rebuild_gives_the_same_digest_and_uploads_no_layer() {
    let registry = Registry::start().unwrap();
    let docker = tempfile::tempdir().unwrap();
    let first = build_json(&registry, docker.path(), &[]);
    assert!(first["bytes_uploaded"].as_u64().unwrap() > 0, "{first}");
    let second = build_json(&registry, docker.path(), &[]);
    assert_eq!(
        second["digest"], first["digest"],
        "same sources, same digest"
    );
    assert_eq!(second["reference"], first["reference"]);
    assert_eq!(second["bytes_uploaded"], 0, "{second}");
    assert_eq!(
        second["blobs_skipped"], 3,
        "base, binary and config were already there: {second}"
    );
}

#[test]
fn local_layout_is_read_by_skopeo_and_podman() {
    let docker = tempfile::tempdir().unwrap();
    // podman names the image after the path, which must be lower-case.
    let layout = tempfile::Builder::new()
        .prefix("okonomi-layout-")
        .rand_bytes(0)
        .suffix(&std::process::id().to_string())
        .tempdir()
        .unwrap();
    let dir = layout.path().join("hello");
    let (ok, stdout, stderr) = run(okonomi(docker.path())
        .args(["build", "functions/hello", "--local"])
        .arg(&dir));
    assert!(ok, "{stderr}");
    let reference = format!("oci:{}:latest", dir.display());
    assert_eq!(stdout.trim(), reference);
    let config = skopeo_inspect(&["--config", &reference]);
    assert_eq!(config["config"]["User"], "65532:65532");
    // The layout carries the SBOMs and provenance too: the referrers tag
    // schema's index, named sha256-HEX, lists them with this image as subject.
    let digest = skopeo_inspect(&[&reference])["Digest"]
        .as_str()
        .unwrap()
        .to_string();
    let referrers_tag = format!("sha256-{}", digest.trim_start_matches("sha256:"));
    let referrers = skopeo_inspect(&["--raw", &format!("oci:{}:{referrers_tag}", dir.display())]);
    let types: Vec<&str> = referrers["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["artifactType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "application/spdx+json",
            "application/vnd.cyclonedx+json",
            "application/vnd.in-toto+json"
        ],
        "{referrers}"
    );
    // With several manifests in the layout, podman takes the image by its tag.
    require("podman", "podman");
    let out = std::process::Command::new("podman")
        .args(["pull", "-q", &reference])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "podman pull {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = format!("localhost{}", dir.display());
    let out = std::process::Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Config.User}}", &name])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "65532:65532",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::process::Command::new("podman")
        .args(["rmi", "-f", &name])
        .output();
}

#[test]
fn wrong_password_names_the_credential_tried() {
    let registry = Registry::start_with_users(&[("okonomi", "right-password")]).unwrap();
    let docker = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", registry.port);
    docker_config(docker.path(), &host, "okonomi", "wrong-password");
    let (ok, stdout, stderr) = run(okonomi(docker.path()).args([
        "build",
        "functions/hello",
        "--registry",
        &registry.prefix(),
    ]));
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    let config = docker.path().join("config.json");
    let expected = format!(
        "credentials tried: basic auth for user \"okonomi\" from {} (auths)",
        config.display()
    );
    assert!(
        stderr.contains(&format!("registry {host} answered 401")),
        "{stderr}"
    );
    assert!(stderr.contains(&expected), "{stderr}");

    // No credentials at all: says so.
    std::fs::remove_file(&config).unwrap();
    let (ok, _, stderr) = run(okonomi(docker.path()).args([
        "build",
        "functions/hello",
        "--registry",
        &registry.prefix(),
    ]));
    assert!(!ok);
    assert!(
        stderr.contains("credentials tried: none (anonymous:"),
        "{stderr}"
    );

    docker_config(docker.path(), &host, "okonomi", "right-password");
    let (ok, stdout, stderr) = run(okonomi(docker.path()).args([
        "build",
        "functions/hello",
        "--registry",
        &registry.prefix(),
    ]));
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with(&format!("{}/hello@sha256:", registry.prefix())),
        "{stdout}"
    );

    // A credential helper (credHelpers), speaking the docker-credential protocol:
    // the registry on stdin, {"Username", "Secret"} on stdout.
    let bin = tempfile::tempdir().unwrap();
    let helper = bin.path().join("docker-credential-okonomitest");
    std::fs::write(
        &helper,
        "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r host\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"okonomi\",\"Secret\":\"%s\"}' \"$host\" \"$OKONOMI_TEST_SECRET\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        &config,
        serde_json::json!({"credHelpers": {&host: "okonomitest"}}).to_string(),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let (ok, _, stderr) = run(okonomi(docker.path())
        .env("PATH", &path)
        .env("OKONOMI_TEST_SECRET", "wrong-password")
        .args(["build", "functions/hello", "--registry", &registry.prefix()]));
    assert!(!ok);
    assert!(
        stderr.contains("credentials tried: docker-credential-okonomitest (user \"okonomi\")"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = run(okonomi(docker.path())
        .env("PATH", &path)
        .env("OKONOMI_TEST_SECRET", "right-password")
        .args(["build", "functions/hello", "--registry", &registry.prefix()]));
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with(&format!("{}/hello@sha256:", registry.prefix())),
        "{stdout}"
    );
}

#[test]
fn unreachable_registry_is_a_clear_error() {
    let docker = tempfile::tempdir().unwrap();
    let port = free_port(); // bound then released: nothing listens there
    let output = okonomi(docker.path())
        .args([
            "build",
            "functions/hello",
            "--registry",
            &format!("127.0.0.1:{port}/okonomi"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "registry 127.0.0.1:{port} is unreachable (http://127.0.0.1:{port}/v2/)"
        )),
        "{stderr}"
    );
}

#[test]
fn amd64_and_arm64_make_an_index() {
    let registry = Registry::start().unwrap();
    let docker = tempfile::tempdir().unwrap();
    let mut command = okonomi(docker.path());
    quick_release(&mut command);
    let report = build_json_of(
        command,
        &registry,
        &["--platform", "linux/amd64,linux/arm64"],
    );
    assert_eq!(
        report["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    let reference = format!("docker://{}", report["reference"].as_str().unwrap());
    let raw = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &reference])
        .output()
        .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    for arch in ["amd64", "arm64"] {
        let inspect = skopeo_inspect(&["--tls-verify=false", "--override-arch", arch, &reference]);
        assert_eq!(inspect["Architecture"], arch);
        assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2);
        let config = skopeo_inspect(&[
            "--tls-verify=false",
            "--override-arch",
            arch,
            "--config",
            &reference,
        ]);
        assert_eq!(config["config"]["User"], "65532:65532");
    }
}

#[test]
fn crates_that_are_not_functions_are_rejected() {
    let docker = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(plain.join("src")).unwrap();
    std::fs::write(
        plain.join("Cargo.toml"),
        "[package]\nname = \"plain\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(plain.join("src/main.rs"), "fn main() {}\n").unwrap();
    let (ok, _, stderr) = run(okonomi(docker.path())
        .args(["build", "--local", "/nonexistent-okonomi"])
        .arg(&plain));
    assert!(!ok);
    assert!(
        stderr.contains("is not an okonomi function: it does not depend on the okonomi runtime"),
        "{stderr}"
    );

    let library = dir.path().join("library");
    std::fs::create_dir_all(library.join("src")).unwrap();
    std::fs::write(
        library.join("Cargo.toml"),
        format!(
            "[package]\nname = \"library\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[dependencies]\nokonomi = {{ path = \"{}\" }}\n[workspace]\n",
            workspace().join("runtime").display()
        ),
    )
    .unwrap();
    std::fs::write(library.join("src/lib.rs"), "").unwrap();
    let (ok, _, stderr) = run(okonomi(docker.path())
        .args(["build", "--local", "/nonexistent-okonomi"])
        .arg(&library));
    assert!(!ok);
    assert!(
        stderr.contains("is not an okonomi function: it has no binary target"),
        "{stderr}"
    );

    let (ok, _, stderr) = run(okonomi(docker.path())
        .args(["build", "--local", "/nonexistent-okonomi"])
        .arg(dir.path()));
    assert!(!ok);
    assert!(
        stderr.contains("is not a Cargo crate (no Cargo.toml there)"),
        "{stderr}"
    );
}

#[test]
fn missing_target_or_zig_prints_the_install_command() {
    let docker = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run(okonomi(docker.path()).args([
        "build",
        "functions/hello",
        "--local",
        "/nonexistent-okonomi",
        "--platform",
        "linux/riscv64",
    ]));
    assert!(!ok);
    assert!(
        stderr.contains("the Rust target riscv64gc-unknown-linux-musl (for linux/riscv64) is not installed: run `rustup target add riscv64gc-unknown-linux-musl`"),
        "{stderr}"
    );

    // A PATH with the Rust toolchain but neither zig nor python3 (PyPI's ziglang).
    let bin = tempfile::tempdir().unwrap();
    let cargo_bin = std::path::Path::new(&std::env::var("CARGO").unwrap())
        .parent()
        .unwrap()
        .to_path_buf();
    let rustup_bin = std::env::var_os("HOME")
        .map(|h| std::path::PathBuf::from(h).join(".cargo/bin"))
        .unwrap();
    for tool in ["cargo", "rustc", "rustup", "cargo-zigbuild", "git"] {
        let found = [
            &cargo_bin,
            &rustup_bin,
            &std::path::PathBuf::from("/usr/bin"),
        ]
        .iter()
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        // cargo-zigbuild from its PyPI wheel lives where pip put it.
        .or_else(|| okonomi_tests::tools::find_real(tool));
        if let Some(path) = found {
            std::os::unix::fs::symlink(path, bin.path().join(tool)).unwrap();
        }
    }
    assert!(
        bin.path().join("cargo-zigbuild").exists(),
        "cargo-zigbuild is not installed: scripts/setup test installs it"
    );
    let (ok, _, stderr) = run(okonomi(docker.path()).env("PATH", bin.path()).args([
        "build",
        "functions/hello",
        "--local",
        "/nonexistent-okonomi",
        "--platform",
        "linux/arm64",
    ]));
    assert!(!ok);
    assert!(
        stderr.contains(
            "zig is not installed (needed to link linux/arm64): run `pip install ziglang`"
        ),
        "{stderr}"
    );

    std::fs::remove_file(bin.path().join("cargo-zigbuild")).unwrap();
    let (ok, _, stderr) = run(okonomi(docker.path()).env("PATH", bin.path()).args([
        "build",
        "functions/hello",
        "--local",
        "/nonexistent-okonomi",
        "--platform",
        "linux/arm64",
    ]));
    assert!(!ok);
    assert!(stderr.contains("cargo-zigbuild is not installed (needed to link linux/arm64): run `cargo install cargo-zigbuild`"), "{stderr}");
}

#[test]
fn resolve_puts_digests_in_place_of_references() {
    let registry = Registry::start().unwrap();
    let docker = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("service.yaml");
    std::fs::write(
        &yaml,
        "# hello as a Knative Service\napiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: hello\nspec:\n  template:\n    spec:\n      containers:\n        - image: okonomi://functions/hello\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = run(okonomi(docker.path())
        .args(["resolve", "--registry", &registry.prefix(), "-f"])
        .arg(&yaml));
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("# hello as a Knative Service\n"),
        "{stdout}"
    );
    let line = stdout.lines().find(|l| l.contains("image:")).unwrap();
    assert!(
        line.contains(&format!("- image: {}/hello@sha256:", registry.prefix())),
        "{stdout}"
    );
    assert!(!stdout.contains("okonomi://"));

    std::fs::write(&yaml, "a: [").unwrap();
    let (ok, _, stderr) = run(okonomi(docker.path())
        .args(["resolve", "--registry", &registry.prefix(), "-f"])
        .arg(&yaml));
    assert!(!ok);
    assert!(stderr.contains("invalid YAML"), "{stderr}");
}

#[test]
fn no_registry_fails_before_building() {
    let docker = tempfile::tempdir().unwrap();
    let output = okonomi(docker.path())
        .args(["build", "functions/hello"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no registry configured: pass --registry, set OKONOMI_REGISTRY"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Building"),
        "it must not build first: {stderr}"
    );
}
