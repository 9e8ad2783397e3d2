//! `okonomi keygen`, `okonomi build --sign` and `okonomi verify` against the real
//! docker-registry on loopback: SBOMs validated by the public Python validators
//! (scripts/setup-python-validators), the signature checked by Python's
//! `cryptography`, referrers listed through the registry API (tag schema), and
//! the errors users hit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

const PASSWORD: &str = "correct horse battery staple";

fn python() -> PathBuf {
    let out = Command::new(workspace().join("scripts/setup-python-validators"))
        .output()
        .expect("scripts/setup-python-validators runs");
    assert!(
        out.status.success(),
        "setting up the Python validators failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn validate(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(workspace().join("cli/tests/supply/validate.py"))
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "validate.py {args:?}: {text}");
    text
}

fn keygen(dir: &Path) -> (PathBuf, PathBuf) {
    let docker = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run(okonomi(docker.path())
        .env("OKONOMI_KEY_PASSWORD", PASSWORD)
        .arg("keygen")
        .arg("--output-key-prefix")
        .arg(dir.join("fn")));
    assert!(ok, "{stderr}");
    (dir.join("fn.key"), dir.join("fn.pub"))
}

fn get(url: &str, accept: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sf", "-H", &format!("Accept: {accept}"), url])
        .output()
        .unwrap();
    assert!(out.status.success(), "GET {url}");
    out.stdout
}

fn build_signed(registry: &Registry, key: &Path, epoch: &str) -> serde_json::Value {
    let docker = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(okonomi(docker.path())
        .env("OKONOMI_KEY_PASSWORD", PASSWORD)
        .env("SOURCE_DATE_EPOCH", epoch)
        .args([
            "build",
            "functions/hello",
            "--registry",
            &registry.prefix(),
            "-o",
            "json",
            "--sign",
        ])
        .arg(key));
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn signed_build_attaches_valid_sboms_provenance_and_a_cosign_signature() {
    let registry = Registry::start().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = keygen(keys.path());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "private keys are 0600");

    let report = build_signed(&registry, &key, "1700000000");
    let digest = report["digest"].as_str().unwrap();
    let hex = digest.trim_start_matches("sha256:");
    let base = format!("http://{}/v2/okonomi/hello", registry.address);
    // docker-registry 2.8 has no referrers API: the tag schema's index lists them.
    let index: serde_json::Value = serde_json::from_slice(&get(
        &format!("{base}/manifests/sha256-{hex}"),
        "application/vnd.oci.image.index.v1+json",
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (artifact_type, check) in [
        ("application/spdx+json", "spdx"),
        ("application/vnd.cyclonedx+json", "cyclonedx"),
    ] {
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["artifactType"] == artifact_type)
            .unwrap_or_else(|| panic!("no {artifact_type} referrer in {index}"));
        let manifest: serde_json::Value = serde_json::from_slice(&get(
            &format!("{base}/manifests/{}", entry["digest"].as_str().unwrap()),
            "application/vnd.oci.image.manifest.v1+json",
        ))
        .unwrap();
        assert_eq!(manifest["subject"]["digest"], digest);
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        let file = dir.path().join(check);
        std::fs::write(&file, get(&format!("{base}/blobs/{layer}"), "*/*")).unwrap();
        validate(&[check, file.to_str().unwrap()]);
    }

    // cosign's layout: sha256-HEX.sig, a simple-signing layer with the signature annotation.
    let sig: serde_json::Value = serde_json::from_slice(&get(
        &format!("{base}/manifests/sha256-{hex}.sig"),
        "application/vnd.oci.image.manifest.v1+json",
    ))
    .unwrap();
    let layer = &sig["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload = get(
        &format!("{base}/blobs/{}", layer["digest"].as_str().unwrap()),
        "*/*",
    );
    let parsed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        parsed["critical"]["image"]["docker-manifest-digest"],
        digest
    );
    let payload_file = dir.path().join("payload");
    std::fs::write(&payload_file, &payload).unwrap();
    validate(&[
        "cosign",
        public.to_str().unwrap(),
        payload_file.to_str().unwrap(),
        layer["annotations"]["dev.cosignproject.cosign/signature"]
            .as_str()
            .unwrap(),
    ]);
    let att: serde_json::Value = serde_json::from_slice(&get(
        &format!("{base}/manifests/sha256-{hex}.att"),
        "application/vnd.oci.image.manifest.v1+json",
    ))
    .unwrap();
    for layer in att["layers"].as_array().unwrap() {
        let envelope = dir.path().join("envelope");
        std::fs::write(
            &envelope,
            get(
                &format!("{base}/blobs/{}", layer["digest"].as_str().unwrap()),
                "*/*",
            ),
        )
        .unwrap();
        validate(&["dsse", public.to_str().unwrap(), envelope.to_str().unwrap()]);
    }

    let docker = tempfile::tempdir().unwrap();
    let reference = report["reference"].as_str().unwrap();
    let (ok, stdout, stderr) = run(okonomi(docker.path())
        .args(["verify", reference, "--key"])
        .arg(&public));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("attestation  https://slsa.dev/provenance/v1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("attestation  https://spdx.dev/Document"),
        "{stdout}"
    );

    // Same commit, same epoch: the same image, SBOMs and provenance.
    let again = build_signed(&registry, &key, "1700000000");
    for field in [
        "digest",
        "spdx_digest",
        "cyclonedx_digest",
        "provenance_digest",
    ] {
        assert_eq!(
            again[field], report[field],
            "{field} differs between two builds"
        );
    }

    // An SBOM of this build, checked against an image rebuilt differently.
    let rebuilt = build_signed(&registry, &key, "1700000001");
    assert_ne!(rebuilt["digest"], report["digest"]);
    let (ok, _, stderr) = run(okonomi(docker.path())
        .args(["verify", rebuilt["reference"].as_str().unwrap(), "--key"])
        .arg(&public)
        .arg("--sbom")
        .arg(dir.path().join("spdx")));
    assert!(!ok);
    assert!(
        stderr.contains("the image was rebuilt differently"),
        "{stderr}"
    );
}

#[test]
fn errors_users_hit_say_what_to_do() {
    let registry = Registry::start().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = keygen(keys.path());
    let docker = tempfile::tempdir().unwrap();

    // Wrong password: refused before any build.
    let (ok, _, stderr) = run(okonomi(docker.path())
        .env("OKONOMI_KEY_PASSWORD", "wrong")
        .args([
            "build",
            "functions/hello",
            "--registry",
            &registry.prefix(),
            "--sign",
        ])
        .arg(&key));
    assert!(!ok);
    assert!(
        stderr.contains("the password does not open the private key"),
        "{stderr}"
    );
    assert!(!stderr.contains("Building"), "{stderr}");
    assert!(
        !stderr.contains(PASSWORD) && !stderr.contains("wrong\n"),
        "{stderr}"
    );

    // An unsigned image.
    let (ok, stdout, stderr) = run(okonomi(docker.path()).args([
        "build",
        "functions/hello",
        "--registry",
        &registry.prefix(),
    ]));
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(okonomi(docker.path())
        .args(["verify", stdout.trim(), "--key"])
        .arg(&public));
    assert!(!ok);
    assert!(
        stderr.contains("is not signed: no cosign signature"),
        "{stderr}"
    );
}
