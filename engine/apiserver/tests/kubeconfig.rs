//! The kubeconfig merge keeps the user's other clusters, users, contexts and
//! unknown fields, and the TLS credentials survive a restart.

#![allow(clippy::unwrap_used)]

use okonomi_apiserver::kubeconfig::{self, KubeconfigEntry};
use okonomi_apiserver::tls::Credentials;
use serde_json::Value;

const EXISTING: &str = "apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
  - name: gke
    cluster:
      server: https://10.0.0.1
      certificate-authority-data: Zm9v
      extensions:
        - name: client.authentication.k8s.io/exec
          extension: {audience: gke}
  - name: okonomi
    cluster:
      server: https://127.0.0.1:1
      proxy-url: http://127.0.0.1:3128
users:
  - name: gke-user
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1beta1
        command: gke-gcloud-auth-plugin
        provideClusterInfo: true
contexts:
  - name: gke
    context: {cluster: gke, user: gke-user, namespace: prod}
current-context: gke
x-custom-field: keep-me
";

fn entry(server: &str, set_current: bool) -> KubeconfigEntry {
    KubeconfigEntry {
        name: "okonomi".into(),
        server: server.into(),
        ca_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        token: "secret-token".into(),
        namespace: None,
        set_current,
    }
}

fn read(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn named<'a>(config: &'a Value, list: &str, name: &str) -> &'a Value {
    config[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{list} has no {name}"))
}

#[test]
fn merge_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, EXISTING).unwrap();

    kubeconfig::merge(&path, &entry("https://127.0.0.1:6443", false)).unwrap();
    let config = read(&path);
    // The user's current context stays unless asked otherwise.
    assert_eq!(config["current-context"], "gke");
    assert_eq!(config["x-custom-field"], "keep-me");
    assert_eq!(config["preferences"]["colors"], true);
    let gke = named(&config, "clusters", "gke");
    assert_eq!(gke["cluster"]["server"], "https://10.0.0.1");
    assert_eq!(
        gke["cluster"]["extensions"][0]["extension"]["audience"],
        "gke"
    );
    assert_eq!(
        named(&config, "users", "gke-user")["user"]["exec"]["command"],
        "gke-gcloud-auth-plugin"
    );
    assert_eq!(
        named(&config, "contexts", "gke")["context"]["namespace"],
        "prod"
    );
    // The okonomi entries: updated in place, unknown fields of ours kept.
    let ours = named(&config, "clusters", "okonomi");
    assert_eq!(ours["cluster"]["server"], "https://127.0.0.1:6443");
    assert_eq!(ours["cluster"]["proxy-url"], "http://127.0.0.1:3128");
    assert!(
        ours["cluster"]["certificate-authority-data"]
            .as_str()
            .unwrap()
            .len()
            > 10
    );
    assert_eq!(
        named(&config, "users", "okonomi")["user"]["token"],
        "secret-token"
    );
    assert_eq!(
        named(&config, "contexts", "okonomi")["context"]["cluster"],
        "okonomi"
    );
    assert_eq!(config["clusters"].as_array().unwrap().len(), 2);

    // Merging again changes nothing but what it owns, and can switch contexts.
    kubeconfig::merge(&path, &entry("https://127.0.0.1:7443", true)).unwrap();
    let config = read(&path);
    assert_eq!(config["current-context"], "okonomi");
    assert_eq!(config["clusters"].as_array().unwrap().len(), 2);
    assert_eq!(config["contexts"].as_array().unwrap().len(), 2);
    assert_eq!(
        named(&config, "clusters", "okonomi")["cluster"]["server"],
        "https://127.0.0.1:7443"
    );

    // kubectl itself still reads the file and sees both contexts.
    let out = std::process::Command::new("kubectl")
        .args(["config", "get-contexts", "-o", "name"])
        .env("KUBECONFIG", &path)
        .env("HOME", dir.path())
        .output()
        .expect("kubectl is installed (Debian package `kubectl`)");
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        names.lines().any(|l| l == "gke") && names.lines().any(|l| l == "okonomi"),
        "{names}"
    );
}

#[test]
fn merge_creates_a_missing_file_privately() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("config");
    kubeconfig::merge(&path, &entry("https://127.0.0.1:6443", false)).unwrap();
    let config = read(&path);
    assert_eq!(config["current-context"], "okonomi");
    assert_eq!(config["kind"], "Config");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

#[test]
fn merge_refuses_a_broken_file_and_leaves_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, "clusters: [unclosed\n").unwrap();
    let err = kubeconfig::merge(&path, &entry("https://127.0.0.1:6443", false)).unwrap_err();
    assert!(err.to_string().contains("not valid YAML"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "clusters: [unclosed\n"
    );
}

#[test]
fn credentials_are_generated_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Credentials::load_or_create(dir.path()).unwrap();
    let second = Credentials::load_or_create(dir.path()).unwrap();
    assert_eq!(first.ca_pem, second.ca_pem);
    assert_eq!(first.cert_pem, second.cert_pem);
    assert_eq!(first.token, second.token);
    assert_eq!(first.token.len(), 64);
    assert!(second.server_config().is_ok());
    // A damaged certificate is replaced, the token is kept.
    std::fs::write(dir.path().join("apiserver.crt"), "garbage").unwrap();
    let third = Credentials::load_or_create(dir.path()).unwrap();
    assert_ne!(third.cert_pem, first.cert_pem);
    assert_eq!(third.token, first.token);
    assert!(third.server_config().is_ok());
}
