//! okonomi.toml parsing: the agreed format, defaults, and errors that name the
//! file, the line and the field.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;

use okonomi_knative::manifest::{Cloud, FunctionKind, MtlsMode, Profile, ScaleMetric, Visibility};
use okonomi_knative::{Error, FunctionManifest};

const AGREED_EXAMPLE: &str = r#"
[function]
name = "hello"
namespace = "default"
kind = "http"
description = "The seed app of the GKE hands-on"

[build]
registry = "127.0.0.1:5000/okonomi"
platforms = ["linux/amd64"]

[scale]
min = 0
max = 10
initial = 1
target = 100
metric = "concurrency"
utilization = 70
window = "60s"
scale_down_delay = "0s"

[service]
concurrency = 0
timeout = 300
visibility = "public"

[env]
GREETING = "Hello"

[resources]
requests = { cpu = "100m", memory = "64Mi" }
limits = { memory = "128Mi" }
"#;

fn parse(text: &str) -> Result<FunctionManifest, Error> {
    FunctionManifest::from_toml_str(text, "functions/x/okonomi.toml")
}

#[test]
fn the_agreed_example_parses_field_by_field() {
    let m = parse(AGREED_EXAMPLE).unwrap();
    assert_eq!(m.function.name, "hello");
    assert_eq!(m.namespace(), "default");
    assert_eq!(m.function.kind, FunctionKind::Http);
    assert_eq!(m.build.registry.as_deref(), Some("127.0.0.1:5000/okonomi"));
    assert_eq!(m.build.platforms, ["linux/amd64"]);
    assert_eq!(
        (m.scale.min, m.scale.max, m.scale.initial),
        (Some(0), Some(10), Some(1))
    );
    assert_eq!(m.scale.target, Some(100.0));
    assert_eq!(m.scale.metric, Some(ScaleMetric::Concurrency));
    assert_eq!(m.scale.utilization, Some(70.0));
    assert_eq!(m.scale.window.as_deref(), Some("60s"));
    assert_eq!(m.scale.scale_down_delay.as_deref(), Some("0s"));
    assert_eq!(m.service.concurrency, Some(0));
    assert_eq!(m.service.timeout, Some(300));
    assert_eq!(m.service.visibility, Some(Visibility::Public));
    assert_eq!(m.env["GREETING"], "Hello");
    assert_eq!(m.resources.requests["cpu"], "100m");
    assert_eq!(m.resources.limits["memory"], "128Mi");
    assert_eq!(m.source, Path::new("functions/x/okonomi.toml"));

    // What okonomi writes back reads the same.
    let again = parse(&m.to_toml_string().unwrap()).unwrap();
    assert_eq!(again, m);
}

#[test]
fn the_extended_sections_parse() {
    let m = parse(
        r#"
[function]
name = "gpu-fn"
kind = "cloudevent"

[placement]
node_pool = "gpu-pool"
accelerator = "nvidia-tesla-t4"
gpus = 2
node_selector = { "disktype" = "ssd" }
[[placement.tolerations]]
key = "dedicated"
value = "ml"
effect = "NoSchedule"

[[sidecars]]
name = "log-shipper"
image = "docker.io/fluent/fluent-bit:3.2"
args = ["-c", "/fluent-bit/etc/fluent-bit.conf"]
env = { FLUENT_LEVEL = "info" }
resources = { limits = { cpu = 1, memory = "32Mi" } }

[istio]
callers = ["cluster.local/ns/frontend/sa/web"]
caller_namespaces = ["batch"]
mtls = "permissive"

[profile]
cloud = "gke"
project = "my-project"
region = "asia-northeast1"
cluster = "okonomi"

[profiles.aws]
cloud = "eks"
account = "123456789012"
region = "ap-northeast-1"
cluster = "fns"
"#,
    )
    .unwrap();
    assert_eq!(m.function.kind, FunctionKind::Cloudevent);
    assert_eq!(m.placement.gpus, Some(2));
    assert!(m.placement.needs_feature_flags());
    assert_eq!(m.placement.tolerations[0].key.as_deref(), Some("dedicated"));
    assert_eq!(
        m.sidecars[0].resources.limits["cpu"], "1",
        "a bare number is a quantity too"
    );
    assert_eq!(m.istio.mtls, Some(MtlsMode::Permissive));

    let gke = m.select_profile(None).unwrap().unwrap();
    assert_eq!(gke.cloud, Cloud::Gke);
    assert_eq!(
        gke.registry().as_deref(),
        Some("asia-northeast1-docker.pkg.dev/my-project/okonomi")
    );
    assert_eq!(
        gke.context().as_deref(),
        Some("gke_my-project_asia-northeast1_okonomi")
    );
    assert_eq!(
        m.registry(Some(gke)).as_deref(),
        Some("asia-northeast1-docker.pkg.dev/my-project/okonomi")
    );

    let eks = m.select_profile(Some("aws")).unwrap().unwrap();
    assert_eq!(
        eks.registry().as_deref(),
        Some("123456789012.dkr.ecr.ap-northeast-1.amazonaws.com/okonomi")
    );
    assert_eq!(
        eks.context().as_deref(),
        Some("arn:aws:eks:ap-northeast-1:123456789012:cluster/fns")
    );

    let err = m.select_profile(Some("azure")).unwrap_err().to_string();
    assert!(err.contains("\"azure\"") && err.contains("aws"), "{err}");
}

#[test]
fn profiles_derive_registry_and_context_per_cloud() {
    let aks = Profile {
        registry_name: Some("myacr".into()),
        cluster: Some("c1".into()),
        ..Profile::new(Cloud::Aks)
    };
    assert_eq!(aks.registry().as_deref(), Some("myacr.azurecr.io/okonomi"));
    assert_eq!(aks.context().as_deref(), Some("c1"));
    let kind = Profile::new(Cloud::Kind);
    assert_eq!(kind.registry().as_deref(), Some("localhost:5001/okonomi"));
    assert_eq!(kind.context().as_deref(), Some("kind-okonomi"));
    let local = Profile::new(Cloud::Local);
    assert_eq!(local.registry(), None);
    assert_eq!(local.context().as_deref(), Some("okonomi"));
    let pinned = Profile {
        context: Some("mine".into()),
        registry: Some("r.example/x".into()),
        ..Profile::new(Cloud::Gke)
    };
    assert_eq!(
        (pinned.context().as_deref(), pinned.registry().as_deref()),
        (Some("mine"), Some("r.example/x"))
    );
}

#[test]
fn a_wrong_type_names_file_line_and_field() {
    let err = parse("[function]\nname = \"a\"\n\n[scale]\nmin = \"three\"\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("functions/x/okonomi.toml:5:7: scale.min: "),
        "{text}"
    );
    assert!(matches!(err, Error::ManifestSyntax { ref field, .. } if field == "scale.min"));
}

#[test]
fn an_unknown_field_names_the_field_and_the_allowed_ones() {
    let err = parse("[function]\nname = \"a\"\n[service]\nconcurency = 4\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("concurency") && text.contains("concurrency"),
        "{text}"
    );
    assert!(text.contains("service"), "{text}");
}

#[test]
fn an_unknown_enum_value_lists_the_choices() {
    let err = parse("[function]\nname = \"a\"\n[service]\nvisibility = \"private\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("service.visibility") && err.contains("cluster-local"),
        "{err}"
    );
}

#[test]
fn every_broken_rule_is_reported_with_its_field() {
    let err = parse(
        r#"
[function]
name = "Hello_World"
namespace = "-bad"
[build]
registry = "https://ghcr.io/me"
platforms = ["windows/amd64"]
[scale]
min = 5
max = 2
target = 0
utilization = 150
window = "2s"
scale_down_delay = "2h"
[service]
concurrency = 1001
timeout = 601
[env]
PORT = "1"
K_SERVICE = "x"
[resources]
requests = { cpu = "lots" }
[[sidecars]]
name = "user-container"
image = ""
[istio]
callers = ["web"]
[profile]
cloud = "eks"
account = "12"
"#,
    )
    .unwrap_err();
    let Error::ManifestInvalid { causes, path } = &err else {
        panic!("{err}")
    };
    assert_eq!(path, Path::new("functions/x/okonomi.toml"));
    for field in [
        "function.name",
        "function.namespace",
        "build.registry",
        "build.platforms[0]",
        "scale.min",
        "scale.target",
        "scale.utilization",
        "scale.window",
        "scale.scale_down_delay",
        "service.concurrency",
        "service.timeout",
        "env.PORT",
        "env.K_SERVICE",
        "resources.requests.cpu",
        "sidecars[0].name",
        "sidecars[0].image",
        "istio.callers[0]",
        "profile.account",
        "profile.region",
    ] {
        assert!(
            causes.has_field(field),
            "no cause for {field} in:\n{causes}"
        );
    }
    assert_eq!(causes.iter().count(), 19, "{causes}");
    assert!(
        err.to_string()
            .contains("scale.min: min (5) is above max (2)"),
        "{err}"
    );
}

#[test]
fn load_takes_the_name_from_cargo_toml_when_left_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"my_func\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("okonomi.toml"),
        "[function]\nkind = \"http\"\n",
    )
    .unwrap();
    let m = FunctionManifest::load(dir.path()).unwrap();
    assert_eq!(m.function.name, "my-func");
    assert_eq!(m.cargo_version.as_deref(), Some("0.1.0"));
    assert_eq!(m.source, dir.path().join("okonomi.toml"));
    // The file itself works as well as its folder.
    assert_eq!(
        FunctionManifest::load(dir.path().join("okonomi.toml"))
            .unwrap()
            .function
            .name,
        "my-func"
    );
}

#[test]
fn load_without_any_name_says_where_to_put_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("okonomi.toml"), "[function]\n").unwrap();
    let err = FunctionManifest::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("function.name") && err.contains("name = "),
        "{err}"
    );
}

#[test]
fn load_of_a_missing_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = FunctionManifest::load(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Read { .. }));
    assert!(
        err.to_string()
            .contains(&dir.path().join("okonomi.toml").display().to_string()),
        "{err}"
    );
}

#[test]
fn the_functions_in_the_repository_have_valid_manifests() {
    let functions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions");
    let mut seen = 0;
    for entry in std::fs::read_dir(&functions).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("okonomi.toml").exists() {
            let m = FunctionManifest::load(&dir).unwrap_or_else(|e| panic!("{e}"));
            // The functions inherit the workspace's version.
            assert_eq!(
                m.cargo_version.as_deref(),
                Some(env!("CARGO_PKG_VERSION")),
                "{}",
                dir.display()
            );
            seen += 1;
        }
    }
    assert!(seen > 0, "no okonomi.toml under {}", functions.display());
}
