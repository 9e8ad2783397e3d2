//! Rendering okonomi.toml into a Knative Service: every field issue 5 asks
//! for, validated against the reference CRD schema and Knative's admission
//! rules, and YAML that YAML 1.1 readers (kubectl's) read back unchanged.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod support;
use support::schema;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use okonomi_knative::manifest::{Cloud, Profile};
use okonomi_knative::render::{RenderOptions, render_service, to_yaml, to_yaml_documents};
use okonomi_knative::{Error, FunctionManifest, Service, SetDefaults, Validate, ValidationConfig};
use schema::Schemas;
use serde_json::{Value, json};

const IMAGE: &str = "127.0.0.1:5000/okonomi/hello@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn manifest(text: &str) -> FunctionManifest {
    FunctionManifest::from_toml_str(text, "okonomi.toml").unwrap()
}

fn json_of(service: &Service) -> Value {
    serde_json::to_value(service).unwrap()
}

/// Reads YAML with PyYAML (YAML 1.1, as kubectl's go-yaml) and returns it as JSON.
fn read_with_pyyaml(yaml: &str) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test (Debian packages python3 and python3-yaml)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "python3 -c 'import yaml' failed (install Debian package python3-yaml): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

#[test]
fn hello_renders_everything_the_issue_lists() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/hello");
    let m = FunctionManifest::load(&dir).unwrap();
    let rendered = render_service(
        &m,
        IMAGE,
        &RenderOptions {
            version: Some("9.9.9"),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(rendered.required_features.is_empty());
    assert_eq!(rendered.feature_note(), None);
    let svc = json_of(&rendered.service);

    assert_eq!(svc["metadata"]["name"], "hello");
    let labels = &svc["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/name"], "hello");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "okonomi");
    assert_eq!(
        labels["app.kubernetes.io/version"], "9.9.9",
        "the option wins"
    );
    assert!(labels.get("networking.knative.dev/visibility").is_none());

    let template = &svc["spec"]["template"];
    let annotations = &template["metadata"]["annotations"];
    // Every [scale] field of functions/hello/okonomi.toml, as Knative spells it.
    for (key, field) in [
        ("min-scale", m.scale.min.map(|v| v.to_string())),
        ("max-scale", m.scale.max.map(|v| v.to_string())),
        ("target", m.scale.target.map(|v| v.to_string())),
        ("metric", m.scale.metric.map(|v| v.as_str().to_owned())),
        (
            "target-utilization-percentage",
            m.scale.utilization.map(|v| v.to_string()),
        ),
    ] {
        let key = format!("autoscaling.knative.dev/{key}");
        assert_eq!(
            annotations[&key].as_str().map(str::to_owned),
            field,
            "{key}"
        );
    }
    assert_eq!(
        template["metadata"]["labels"]["app.kubernetes.io/name"],
        "hello"
    );

    let spec = &template["spec"];
    assert_eq!(
        spec["containerConcurrency"],
        json!(m.service.concurrency.unwrap())
    );
    assert_eq!(spec["timeoutSeconds"], json!(m.service.timeout.unwrap()));
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["image"], IMAGE);
    assert_eq!(c["ports"], json!([{"name": "h2c", "containerPort": 8080}]));
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/health/readiness", "port": 8080})
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/health/liveness", "port": 8080})
    );
    for (name, value) in &m.env {
        assert!(
            c["env"]
                .as_array()
                .unwrap()
                .contains(&json!({"name": name, "value": value}))
        );
    }
    assert_eq!(
        c["resources"]["requests"]["cpu"],
        json!(m.resources.requests["cpu"])
    );
    assert_eq!(
        c["resources"]["limits"]["memory"],
        json!(m.resources.limits["memory"])
    );
    assert_eq!(
        c["securityContext"],
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
            "runAsGroup": 65532,
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"}
        })
    );

    Schemas::knative().assert_valid(&svc);

    // What Knative's webhook does next: default, then validate.
    let mut defaulted = rendered.service.clone();
    defaulted.set_defaults(&ValidationConfig::default());
    let causes = defaulted.validate(&ValidationConfig::default());
    assert!(causes.is_empty(), "{causes}");
    Schemas::knative().assert_valid(&json_of(&defaulted));
}

#[test]
fn yaml_reads_back_identically_with_yaml_1_1_and_1_2_readers() {
    let m = manifest(
        r#"
[function]
name = "tricky"
description = "no: yes, on 0x10 1e3 ~ null"
[env]
NO = "no"
ON = "on"
Y = "y"
OCTAL = "0755"
NUMBER = "8080"
EMPTY = ""
MULTILINE = "line one\nline two"
[scale]
min = 1
"#,
    );
    let service = render_service(&m, IMAGE, &RenderOptions::default())
        .unwrap()
        .service;
    let yaml = to_yaml(&service).unwrap();
    let expected = json_of(&service);

    let back: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(
        back, expected,
        "serde-saphyr read back something else from:\n{yaml}"
    );
    let py = read_with_pyyaml(&yaml);
    assert_eq!(
        py,
        vec![expected.clone()],
        "PyYAML (YAML 1.1) read back something else from:\n{yaml}"
    );

    // Several documents, as `kubectl apply -f -` takes them.
    let stream = to_yaml_documents(&[expected.clone(), expected.clone()]).unwrap();
    assert_eq!(read_with_pyyaml(&stream), vec![expected.clone(), expected]);
}

#[test]
fn cluster_local_visibility_is_a_label() {
    let m = manifest(
        "[function]\nname = \"inner\"\nnamespace = \"team-a\"\n[service]\nvisibility = \"cluster-local\"\n",
    );
    let svc = json_of(
        &render_service(&m, IMAGE, &RenderOptions::default())
            .unwrap()
            .service,
    );
    assert_eq!(
        svc["metadata"]["labels"]["networking.knative.dev/visibility"],
        "cluster-local"
    );
    assert_eq!(svc["metadata"]["namespace"], "team-a");
    Schemas::knative().assert_valid(&svc);

    let other_ns = render_service(
        &m,
        IMAGE,
        &RenderOptions {
            namespace: Some("team-b"),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(other_ns.service.namespace(), "team-b");
}

#[test]
fn a_gpu_pool_on_gke_becomes_node_selector_the_listed_tolerations_and_a_gpu_limit() {
    let m = manifest(
        r#"
[function]
name = "infer"
[placement]
node_pool = "gpu-pool"
accelerator = "nvidia-tesla-t4"
[[placement.tolerations]]
key = "dedicated"
operator = "Equal"
value = "ml"
effect = "NoSchedule"
"#,
    );
    let gke = Profile {
        project: Some("p".into()),
        region: Some("r".into()),
        ..Profile::new(Cloud::Gke)
    };
    let rendered = render_service(
        &m,
        IMAGE,
        &RenderOptions {
            profile: Some(&gke),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        rendered.required_features,
        [
            "kubernetes.podspec-nodeselector",
            "kubernetes.podspec-tolerations"
        ]
    );
    let note = rendered.feature_note().unwrap();
    assert!(
        note.contains("kubectl patch configmap/config-features -n knative-serving"),
        "{note}"
    );
    assert!(
        note.contains("\"kubernetes.podspec-tolerations\":\"enabled\""),
        "{note}"
    );

    let svc = json_of(&rendered.service);
    let spec = &svc["spec"]["template"]["spec"];
    assert_eq!(
        spec["nodeSelector"],
        json!({"cloud.google.com/gke-nodepool": "gpu-pool", "cloud.google.com/gke-accelerator": "nvidia-tesla-t4"})
    );
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
        ])
    );
    assert_eq!(
        spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        "1"
    );
    Schemas::knative().assert_valid(&svc);

    // A plain pool on EKS uses EKS's label.
    let pool = manifest("[function]\nname = \"web\"\n[placement]\nnode_pool = \"general\"\n");
    let eks = Profile {
        account: Some("123456789012".into()),
        region: Some("r".into()),
        ..Profile::new(Cloud::Eks)
    };
    let rendered = render_service(
        &pool,
        IMAGE,
        &RenderOptions {
            profile: Some(&eks),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        rendered.required_features,
        ["kubernetes.podspec-nodeselector"]
    );
    assert_eq!(
        json_of(&rendered.service)["spec"]["template"]["spec"]["nodeSelector"],
        json!({"eks.amazonaws.com/nodegroup": "general"})
    );
}

#[test]
fn sidecars_join_the_pod_without_a_port() {
    let m = manifest(
        r#"
[function]
name = "app"
[[sidecars]]
name = "log-shipper"
image = "docker.io/fluent/fluent-bit:3.2"
args = ["-i", "dummy", "-o", "stdout"]
env = { LEVEL = "info" }
resources = { limits = { memory = "32Mi" } }
"#,
    );
    let rendered = render_service(&m, IMAGE, &RenderOptions::default()).unwrap();
    assert!(
        rendered.required_features.is_empty(),
        "multi-container is on by default"
    );
    let svc = json_of(&rendered.service);
    let containers = svc["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["ports"][0]["containerPort"], 8080);
    assert_eq!(containers[1]["name"], "log-shipper");
    assert!(containers[1].get("ports").is_none());
    assert!(containers[1].get("readinessProbe").is_none());
    // A third-party image keeps its own user: no runAsUser or runAsGroup.
    assert_eq!(
        containers[1]["securityContext"],
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "seccompProfile": {"type": "RuntimeDefault"}
        })
    );
    assert_eq!(
        containers[1]["args"],
        json!(["-i", "dummy", "-o", "stdout"])
    );
    Schemas::knative().assert_valid(&svc);

    let mut defaulted = rendered.service;
    defaulted.set_defaults(&ValidationConfig::default());
    assert!(defaulted.validate(&ValidationConfig::default()).is_empty());
}

#[test]
fn an_invalid_result_is_refused_with_the_field() {
    let m = manifest("[function]\nname = \"x\"\n");
    let err = render_service(&m, " ", &RenderOptions::default()).unwrap_err();
    let Error::Invalid { causes, .. } = &err else {
        panic!("{err}")
    };
    assert!(
        causes.has_field("spec.template.spec.containers[0].image"),
        "{causes}"
    );
}

#[test]
fn the_repository_functions_all_render_to_schema_valid_services() {
    let schemas = Schemas::knative();
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let mut seen = 0;
    for entry in std::fs::read_dir(functions).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("okonomi.toml").exists() {
            let m = FunctionManifest::load(&dir).unwrap();
            let rendered = render_service(&m, IMAGE, &RenderOptions::default()).unwrap();
            schemas.assert_valid(&json_of(&rendered.service));
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected hello, counter and echo");
}

#[test]
fn gpu_functions_get_no_toleration_the_cloud_does_not_need() {
    // GKE adds the nvidia.com/gpu toleration itself (ExtendedResourceToleration);
    // EKS and AKS do not taint GPU nodes unless the operator does.
    let m = manifest("[function]\nname = \"infer\"\n[placement]\ngpus = 2\n");
    for cloud in [
        Cloud::Gke,
        Cloud::Eks,
        Cloud::Aks,
        Cloud::Kind,
        Cloud::Local,
    ] {
        let profile = Profile {
            registry: Some("registry.example/okonomi".into()),
            ..Profile::new(cloud)
        };
        let rendered = render_service(
            &m,
            IMAGE,
            &RenderOptions {
                profile: Some(&profile),
                ..Default::default()
            },
        )
        .unwrap();
        let svc = json_of(&rendered.service);
        let spec = &svc["spec"]["template"]["spec"];
        assert!(spec.get("tolerations").is_none(), "{cloud:?}: {spec}");
        assert!(
            rendered.required_features.is_empty(),
            "{cloud:?}: {:?}",
            rendered.required_features
        );
        assert_eq!(
            spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"], "2",
            "{cloud:?}"
        );
        Schemas::knative().assert_valid(&svc);
    }
}

#[test]
fn a_sidecar_runs_as_the_user_okonomi_toml_names() {
    let m = manifest(
        r#"
[function]
name = "app"
[[sidecars]]
name = "agent"
image = "registry.example/agent:1"
user = 1000
group = 2000
read_only_root = false
[[sidecars]]
name = "root-agent"
image = "registry.example/root-agent:1"
user = 0
"#,
    );
    let rendered = render_service(&m, IMAGE, &RenderOptions::default()).unwrap();
    let svc = json_of(&rendered.service);
    let containers = &svc["spec"]["template"]["spec"]["containers"];
    let agent = &containers[1]["securityContext"];
    assert_eq!(agent["runAsUser"], 1000);
    assert_eq!(agent["runAsGroup"], 2000);
    assert_eq!(agent["runAsNonRoot"], true);
    assert_eq!(agent["readOnlyRootFilesystem"], false);
    let root = &containers[2]["securityContext"];
    assert_eq!(root["runAsUser"], 0);
    assert_eq!(root["runAsNonRoot"], false);
    assert!(root.get("runAsGroup").is_none(), "{root}");
    // The function itself keeps okonomi's uid.
    assert_eq!(containers[0]["securityContext"]["runAsUser"], 65532);
    Schemas::knative().assert_valid(&svc);

    let mut defaulted = rendered.service;
    defaulted.set_defaults(&ValidationConfig::default());
    assert!(defaulted.validate(&ValidationConfig::default()).is_empty());

    let bad = FunctionManifest::from_toml_str(
        "[function]\nname = \"app\"\n[[sidecars]]\nname = \"a\"\nimage = \"i\"\nuser = -1\n",
        "okonomi.toml",
    )
    .unwrap_err();
    assert!(bad.to_string().contains("sidecars[0].user"), "{bad}");
}
