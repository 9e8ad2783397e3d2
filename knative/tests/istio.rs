//! Istio policy: the operator YAML in istio/ and the per-function rendering
//! validate against Istio's CRD schemas, and the YAML files are exactly what
//! the crate renders (so the two cannot drift apart).

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::schema;

use std::path::Path;

use okonomi_knative::FunctionManifest;
use okonomi_knative::istio::{
    MeshSettings, function_policy, function_policy_objects, namespace_authorization_policy,
    namespace_peer_authentication, tls_gateway,
};
use okonomi_knative::manifest::MtlsMode;
use okonomi_knative::render::to_yaml_documents;
use schema::Schemas;
use serde_json::{Value, json};

fn istio_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../istio")
}

fn read_yaml(relative: &str) -> Value {
    let path = istio_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_operator_yaml_file_is_schema_valid() {
    let schemas = Schemas::istio();
    let mut seen = 0;
    for folder in ["knative-serving", "function-namespace"] {
        for entry in std::fs::read_dir(istio_dir().join(folder)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|x| x == "yaml") {
                let object: Value =
                    serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                schemas.assert_valid(&object);
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 4);
}

#[test]
fn operator_yaml_files_are_what_the_crate_renders() {
    let mesh = MeshSettings::default();
    let cases = [
        (
            "knative-serving/peer-authentication.yaml",
            serde_json::to_value(namespace_peer_authentication(
                Some("knative-serving"),
                MtlsMode::Permissive,
            ))
            .unwrap(),
        ),
        (
            "knative-serving/ingress-gateway-tls.yaml",
            serde_json::to_value(tls_gateway("okonomi-tls", &[], &mesh)).unwrap(),
        ),
        (
            "function-namespace/peer-authentication.yaml",
            serde_json::to_value(namespace_peer_authentication(None, MtlsMode::Strict)).unwrap(),
        ),
        (
            "function-namespace/authorization-policy.yaml",
            serde_json::to_value(namespace_authorization_policy(None, &mesh)).unwrap(),
        ),
    ];
    for (file, rendered) in cases {
        assert_eq!(
            read_yaml(file),
            rendered,
            "{file} differs from the crate's rendering"
        );
    }
}

#[test]
fn a_function_with_callers_gets_its_own_policy() {
    let manifest = FunctionManifest::from_toml_str(
        r#"
[function]
name = "orders"
[istio]
callers = ["cluster.local/ns/shop/sa/web", "cluster.local/ns/shop/sa/worker"]
caller_namespaces = ["batch"]
"#,
        "okonomi.toml",
    )
    .unwrap();
    let (peer, policy) = function_policy(&manifest, "fns", &MeshSettings::default());
    let peer = serde_json::to_value(peer).unwrap();
    let policy = serde_json::to_value(policy).unwrap();
    let schemas = Schemas::istio();
    schemas.assert_valid(&peer);
    schemas.assert_valid(&policy);

    assert_eq!(peer["metadata"]["namespace"], "fns");
    assert_eq!(
        peer["spec"]["selector"],
        json!({"matchLabels": {"serving.knative.dev/service": "orders"}})
    );
    assert_eq!(peer["spec"]["mtls"]["mode"], "STRICT");
    assert_eq!(policy["spec"]["action"], "ALLOW");
    let rules = policy["spec"]["rules"].as_array().unwrap();
    assert!(rules.contains(&json!({"from": [{"source": {"namespaces": ["knative-serving"]}}]})));
    assert!(rules.contains(&json!({"from": [{"source": {"principals": ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}}]})));
    assert!(rules.contains(&json!({"from": [
        {"source": {"principals": ["cluster.local/ns/shop/sa/web"]}},
        {"source": {"principals": ["cluster.local/ns/shop/sa/worker"]}},
        {"source": {"namespaces": ["batch"]}}
    ]})));
}

#[test]
fn permissive_functions_and_a_custom_trust_domain() {
    let manifest = FunctionManifest::from_toml_str(
        "[function]\nname = \"legacy\"\n[istio]\nmtls = \"permissive\"\n",
        "okonomi.toml",
    )
    .unwrap();
    let mesh = MeshSettings {
        trust_domain: "my-project.svc.id.goog".into(),
        ..Default::default()
    };
    let (peer, policy) = function_policy(&manifest, "default", &mesh);
    assert_eq!(peer.spec.mtls.mode, "PERMISSIVE");
    assert_eq!(
        policy.spec.rules[1].from[0].source.principals,
        ["my-project.svc.id.goog/ns/istio-system/sa/istio-ingressgateway-service-account"]
    );
    assert_eq!(policy.spec.rules.len(), 3, "no caller rule without callers");

    let objects = function_policy_objects(&manifest, "default");
    assert_eq!(objects.len(), 2);
    let schemas = Schemas::istio();
    // As `okonomi deploy --istio --dry-run -o yaml` prints them, read back.
    let yaml = to_yaml_documents(&objects).unwrap();
    let back: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    assert_eq!(back, objects);
    for object in &back {
        schemas.assert_valid(object);
    }
}

#[test]
fn gateway_hosts_and_credential() {
    let gateway = serde_json::to_value(tls_gateway(
        "wildcard",
        &["*.fn.example.com"],
        &MeshSettings::default(),
    ))
    .unwrap();
    Schemas::istio().assert_valid(&gateway);
    assert_eq!(
        gateway["spec"]["servers"][1]["tls"],
        json!({"mode": "SIMPLE", "credentialName": "wildcard"})
    );
    assert_eq!(
        gateway["spec"]["servers"][1]["hosts"],
        json!(["*.fn.example.com"])
    );
}

/// istio/README.md's "Who can reach a function" table is written for exactly
/// these rules: knative-serving as a whole, the ingress gateway's principal,
/// Knative's two paths for anyone, and the callers. If the rendering changes,
/// the table must too; and callers are flagged advisory wherever they appear.
#[test]
fn the_reachability_table_matches_the_rendered_rules_and_callers_are_advisory() {
    let with_callers = FunctionManifest::from_toml_str(
        "[function]\nname = \"hello\"\n[istio]\ncallers = [\"cluster.local/ns/shop/sa/web\"]\ncaller_namespaces = [\"batch\"]\n",
        "okonomi.toml",
    )
    .unwrap();
    let (_, policy) = function_policy(&with_callers, "fns", &MeshSettings::default());
    let rules = serde_json::to_value(&policy.spec.rules).unwrap();
    assert_eq!(
        rules,
        json!([
            {"from": [{"source": {"namespaces": ["knative-serving"]}}]},
            {"from": [{"source": {"principals": ["cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}}]},
            {"to": [{"operation": {"paths": ["/healthz", "/metrics"]}}]},
            {"from": [
                {"source": {"principals": ["cluster.local/ns/shop/sa/web"]}},
                {"source": {"namespaces": ["batch"]}}
            ]}
        ])
    );
    assert_eq!(policy.spec.action, "ALLOW");

    let readme = std::fs::read_to_string(istio_dir().join("README.md")).unwrap();
    for row in [
        "| client outside the cluster, through the ingress gateway | yes | yes (gateway principal) | yes (gateway principal) |",
        "| any pod, via the activator | yes | yes (namespace `knative-serving`) | yes (namespace `knative-serving`) |",
        "| meshed pod not listed, straight to the pod | yes | no, except `/healthz`, `/metrics` | no, except `/healthz`, `/metrics` |",
    ] {
        assert!(readme.contains(row), "istio/README.md lacks the row {row}");
    }

    let note = okonomi_knative::istio::advisory_callers_note(&with_callers).unwrap();
    assert!(note.contains("advisory"), "{note}");
    assert!(note.contains("hello"), "{note}");
    let without =
        FunctionManifest::from_toml_str("[function]\nname = \"hello\"\n", "okonomi.toml").unwrap();
    assert_eq!(
        okonomi_knative::istio::advisory_callers_note(&without),
        None
    );
}
