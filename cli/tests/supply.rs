//! Supply chain by default, against the real parts: `okonomi keygen`,
//! `okonomi build --sign` into a CNCF distribution registry (2.8: no
//! referrers API, so the tag schema's index), the public SBOM validators
//! (spdx-tools, cyclonedx-python-lib) and an independent cosign-format
//! verifier written with Python's `cryptography`; then `okonomi verify` and
//! the errors users hit. Builds are quick release builds of hello, shared
//! with the other CLI tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

const PASSWORD: &str = "correct horse battery staple";

/// The venv scripts/setup makes with the SBOM validators.
fn venv() -> PathBuf {
    let dir = std::env::var_os("OKONOMI_PYTHON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/okonomi-sbom-venv"));
    assert!(
        dir.join("bin/pyspdxtools").is_file(),
        "{} has no pyspdxtools: run scripts/setup (it installs spdx-tools and cyclonedx-python-lib there)",
        dir.display()
    );
    dir
}

fn keygen(dir: &Path, docker: &Path) -> (PathBuf, PathBuf) {
    let prefix = dir.join("test");
    let (ok, stdout, stderr) = run(okonomi(docker)
        .env("OKONOMI_SIGNING_PASSWORD", PASSWORD)
        .arg("keygen")
        .arg(&prefix));
    assert!(ok, "keygen: {stderr}");
    assert_eq!(
        stdout.trim(),
        prefix.with_extension("pub").display().to_string()
    );
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// `okonomi build functions/hello` (quick release) with `extra` args, as JSON.
fn build(registry: &Registry, docker: &Path, extra: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let mut cmd = okonomi(docker);
    quick_release(&mut cmd);
    run(cmd
        .env("OKONOMI_SIGNING_PASSWORD", PASSWORD)
        .args([
            "build",
            "functions/hello",
            "--registry",
            &registry.prefix(),
            "-o",
            "json",
        ])
        .args(extra))
}

fn build_ok(registry: &Registry, docker: &Path, extra: &[&std::ffi::OsStr]) -> serde_json::Value {
    let (ok, stdout, stderr) = build(registry, docker, extra);
    assert!(ok, "okonomi build failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn sign(key: &Path) -> Vec<&std::ffi::OsStr> {
    vec!["--sign".as_ref(), key.as_os_str()]
}

fn verify(docker: &Path, reference: &str, key: &Path) -> (bool, String, String) {
    run(okonomi(docker)
        .args(["verify", reference, "--key"])
        .arg(key))
}

fn digest_of(report: &serde_json::Value) -> String {
    report["digest"].as_str().unwrap().to_string()
}

#[test]
fn a_signed_build_is_verified_by_independent_tools() {
    require("python3", "python3");
    let venv = venv();
    let registry = Registry::start().unwrap();
    let docker = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = keygen(keys.path(), docker.path());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the private key is the owner's alone");
    }
    let report = build_ok(&registry, docker.path(), &sign(&key));
    assert_eq!(report["signed"], true, "{report}");
    let kinds: Vec<&str> = report["attached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "signature",
            "signed attestations",
            "SPDX SBOM",
            "CycloneDX SBOM",
            "provenance"
        ],
        "{report}"
    );
    let digest = digest_of(&report);

    // The independent verifier reads the registry API itself.
    let out = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/cosign_check.py");
    let check = Command::new("python3")
        .arg(&script)
        .arg(format!("http://{}", registry.address))
        .arg("okonomi/hello")
        .arg(&digest)
        .arg(&public)
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "cosign_check.py refused it: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(
        summary["predicates"],
        serde_json::json!([
            "https://cyclonedx.org/bom",
            "https://slsa.dev/provenance/v1",
            "https://spdx.dev/Document"
        ]),
        "{summary}"
    );
    assert_eq!(
        summary["referrers_via"], "tag schema",
        "distribution 2.8 has no referrers API"
    );
    assert_eq!(
        summary["referrers"].as_array().unwrap().len(),
        5,
        "{summary}"
    );
    let provenance = &summary["provenance"];
    let commit = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(workspace())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        provenance["buildDefinition"]["externalParameters"]["source"]["commit"],
        commit.trim(),
        "{provenance}"
    );
    assert!(
        provenance["buildDefinition"]["externalParameters"]["source"]["dirty"].is_boolean(),
        "{provenance}"
    );
    assert!(
        provenance["runDetails"]["builder"]["version"]["rustc"]
            .as_str()
            .unwrap()
            .starts_with("rustc "),
        "{provenance}"
    );
    assert_eq!(
        provenance["buildDefinition"]["internalParameters"]["targets"],
        serde_json::json!(["x86_64-unknown-linux-musl"])
    );

    // The public validators accept both SBOMs.
    let spdx = out.path().join("sbom.spdx.json");
    let validated = Command::new(venv.join("bin/pyspdxtools"))
        .arg("-i")
        .arg(&spdx)
        .output()
        .unwrap();
    assert!(
        validated.status.success(),
        "pyspdxtools: {}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
    let cdx = out.path().join("sbom.cdx.json");
    let validated = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import sys\n\
             from cyclonedx.schema import SchemaVersion\n\
             from cyclonedx.validation.json import JsonStrictValidator\n\
             error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())\n\
             if error: sys.exit(f'invalid CycloneDX 1.6: {error}')\n",
        ])
        .arg(&cdx)
        .output()
        .unwrap();
    assert!(
        validated.status.success(),
        "cyclonedx-python-lib: {}",
        String::from_utf8_lossy(&validated.stderr)
    );
    // What the SBOM lists is what is linked: the runtime and hyper, no proc-macro.
    let spdx: serde_json::Value = serde_json::from_slice(&std::fs::read(&spdx).unwrap()).unwrap();
    let purls: Vec<String> = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert!(
        purls.iter().any(|p| p.starts_with("pkg:cargo/hyper@")),
        "{purls:?}"
    );
    assert!(
        purls.iter().any(|p| p.starts_with("pkg:cargo/okonomi@")),
        "{purls:?}"
    );
    assert!(
        !purls.iter().any(|p| p.starts_with("pkg:cargo/syn@")),
        "proc-macro deps: {purls:?}"
    );
    let hyper = spdx["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hyper")
        .unwrap();
    assert_eq!(hyper["checksums"][0]["algorithm"], "SHA256", "{hyper}");
    assert_eq!(hyper["licenseDeclared"], "MIT", "{hyper}");
    assert!(
        spdx["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "/etc/ssl/certs/ca-certificates.crt"),
        "the base layer's CA bundle is listed"
    );

    // okonomi verify agrees and says what it found.
    let (ok, stdout, stderr) = verify(
        docker.path(),
        report["reference"].as_str().unwrap(),
        &public,
    );
    assert!(ok, "verify: {stderr}\n{stdout}");
    assert!(stdout.starts_with("Verified "), "{stdout}");
    assert!(stdout.contains("SBOM        SPDX:"), "{stdout}");
    assert!(stdout.contains("SBOM        CycloneDX:"), "{stdout}");
    assert!(
        stdout.contains(&format!("provenance  commit {}", commit.trim())),
        "{stdout}"
    );

    // Another key does not verify it.
    let other = tempfile::tempdir().unwrap();
    let (_, other_public) = keygen(other.path(), docker.path());
    let (ok, stdout, stderr) = verify(
        docker.path(),
        report["reference"].as_str().unwrap(),
        &other_public,
    );
    assert!(!ok, "verified with another key: {stdout}");
    assert!(stderr.contains("does not verify with"), "{stderr}");
}

#[test]
fn two_builds_of_one_commit_give_the_same_sboms_provenance_and_signature() {
    let registry = Registry::start().unwrap();
    let docker = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (key, _) = keygen(keys.path(), docker.path());
    let first = build_ok(&registry, docker.path(), &sign(&key));
    let second = build_ok(&registry, docker.path(), &sign(&key));
    for field in [
        "digest",
        "spdx_digest",
        "cyclonedx_digest",
        "provenance_digest",
        "attached",
    ] {
        assert_eq!(
            first[field], second[field],
            "{field} differs:\n{first}\n{second}"
        );
    }
}

#[test]
fn a_wrong_key_password_fails_before_building() {
    let registry = Registry::start().unwrap();
    let docker = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (key, _) = keygen(keys.path(), docker.path());
    let (ok, _, stderr) = run(okonomi(docker.path())
        .env("OKONOMI_SIGNING_PASSWORD", "not the password")
        .args([
            "build",
            "functions/hello",
            "--registry",
            &registry.prefix(),
            "--sign",
        ])
        .arg(&key));
    assert!(!ok);
    assert!(stderr.contains("wrong password"), "{stderr}");
    assert!(stderr.contains("OKONOMI_SIGNING_PASSWORD"), "{stderr}");
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    assert!(
        !stderr.contains("Building"),
        "no build for a key that cannot sign: {stderr}"
    );
}

#[test]
fn a_registry_that_refuses_the_signature_is_named() {
    let mut registry = Registry::start().unwrap();
    let docker = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (key, _) = keygen(keys.path(), docker.path());
    let unsigned = build_ok(&registry, docker.path(), &[]);
    registry.restart_read_only().unwrap();
    let (ok, _, stderr) = build(&registry, docker.path(), &sign(&key));
    assert!(!ok, "a read-only registry stored a signature");
    let tag = format!(
        "sha256-{}.sig",
        digest_of(&unsigned).trim_start_matches("sha256:")
    );
    assert!(stderr.contains("refused the signature"), "{stderr}");
    assert!(stderr.contains(&tag), "{stderr}");
    assert!(
        stderr.contains("not signed"),
        "says the image is there unsigned: {stderr}"
    );
}

#[test]
fn verifying_an_unsigned_image_says_it_has_no_signature() {
    let registry = Registry::start().unwrap();
    let docker = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = keygen(keys.path(), docker.path());
    let report = build_ok(&registry, docker.path(), &[]);
    let (ok, stdout, stderr) = verify(
        docker.path(),
        report["reference"].as_str().unwrap(),
        &public,
    );
    assert!(!ok, "an unsigned image verified: {stdout}");
    assert!(stderr.contains("no signature"), "{stderr}");
    assert!(stderr.contains("okonomi build --sign"), "{stderr}");
    // The unsigned SBOMs are still found and reported.
    assert!(
        stdout.contains("SPDX:") && stdout.contains("unsigned referrer"),
        "{stdout}"
    );
}

/// GET (`body` None) or PUT a manifest through the registry API with curl.
fn manifest_api(registry: &Registry, reference: &str, body: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let url = format!(
        "http://{}/v2/okonomi/hello/manifests/{reference}",
        registry.address
    );
    let media = "application/vnd.oci.image.manifest.v1+json";
    let mut cmd = Command::new("curl");
    cmd.args(["-sSf", "-H", &format!("Accept: {media}")]);
    if body.is_some() {
        cmd.args([
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {media}"),
            "--data-binary",
            "@-",
        ]);
    }
    let mut child = cmd
        .arg(&url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.unwrap_or_default())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn an_sbom_whose_image_was_rebuilt_differently_is_refused() {
    require("curl", "curl");
    let registry = Registry::start().unwrap();
    let docker = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = keygen(keys.path(), docker.path());
    let old = build_ok(&registry, docker.path(), &sign(&key));
    let old_digest = digest_of(&old);
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    // The image rebuilt differently (here: the same layers with another
    // annotation, as another builder would make it), pushed under a tag...
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&manifest_api(&registry, &old_digest, None)).unwrap();
    manifest["annotations"]["org.opencontainers.image.description"] = "rebuilt".into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    manifest_api(&registry, "rebuilt", Some(&bytes));
    let new_digest = okonomi_image::digest::sha256_digest(&bytes);
    assert_ne!(new_digest, old_digest);
    // ...with the old image's signed attestations carried over to it.
    let attestations = manifest_api(&registry, &format!("sha256-{}.att", hex(&old_digest)), None);
    manifest_api(
        &registry,
        &format!("sha256-{}.att", hex(&new_digest)),
        Some(&attestations),
    );
    let (ok, stdout, stderr) = verify(
        docker.path(),
        &format!("{}/okonomi/hello@{new_digest}", registry.address),
        &public,
    );
    assert!(!ok, "attestations of another build verified: {stdout}");
    assert!(stderr.contains("rebuilt differently"), "{stderr}");
    assert!(
        stderr.contains(&old_digest),
        "names the image the SBOM describes: {stderr}"
    );
    assert!(stderr.contains("SPDX"), "{stderr}");
}
