//! Knative's defaulting and admission rules, table-driven with small builders.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Probe, TCPSocketAction, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use okonomi_knative::validation::{CauseType, FeatureFlags};
use okonomi_knative::{
    Configuration, ConfigurationSpec, Revision, RevisionSpec, Route, RouteSpec, Service,
    SetDefaults, TrafficTarget, Validate, ValidationConfig,
};

fn container(image: &str) -> Container {
    Container {
        image: Some(image.to_owned()),
        ..Default::default()
    }
}

fn with_port(mut c: Container, port: i32, name: Option<&str>) -> Container {
    c.ports.get_or_insert_with(Vec::new).push(ContainerPort {
        container_port: port,
        name: name.map(str::to_owned),
        ..Default::default()
    });
    c
}

fn with_env(mut c: Container, name: &str) -> Container {
    c.env.get_or_insert_with(Vec::new).push(EnvVar {
        name: name.to_owned(),
        value: Some("x".into()),
        ..Default::default()
    });
    c
}

/// A Service builder in the spirit of Knative's `pkg/testing/v1`.
struct Svc(Service);

impl Svc {
    fn new(name: &str) -> Self {
        let mut s = Service::new(name, Default::default());
        s.spec.template.spec.pod_spec.containers = vec![container(
            "registry.example/hello@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        )];
        Svc(s)
    }
    fn containers(mut self, containers: Vec<Container>) -> Self {
        self.0.spec.template.spec.pod_spec.containers = containers;
        self
    }
    fn annotation(mut self, key: &str, value: &str) -> Self {
        self.0
            .spec
            .template
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
        self
    }
    fn template_name(mut self, name: &str) -> Self {
        self.0.spec.template.metadata.name = Some(name.into());
        self
    }
    fn traffic(mut self, traffic: Vec<TrafficTarget>) -> Self {
        self.0.spec.traffic = traffic;
        self
    }
    fn spec(mut self, f: impl FnOnce(&mut RevisionSpec)) -> Self {
        f(&mut self.0.spec.template.spec);
        self
    }
    fn build(self) -> Service {
        self.0
    }
}

fn fields(errors: &okonomi_knative::FieldErrors) -> BTreeSet<String> {
    errors.iter().map(|e| e.field.clone()).collect()
}

fn set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|f| f.to_string()).collect()
}

#[test]
fn service_rules_table() {
    let long = "a".repeat(64);
    let cases: Vec<(&str, Service, &[&str])> = vec![
        ("a plain service is valid", Svc::new("hello").build(), &[]),
        (
            "uppercase name",
            Svc::new("Hello").build(),
            &["metadata.name"],
        ),
        (
            "name starting with a digit (DNS-1035)",
            Svc::new("1hello").build(),
            &["metadata.name"],
        ),
        (
            "name of 64 characters",
            Svc::new(&long).build(),
            &["metadata.name"],
        ),
        (
            "no container",
            Svc::new("a").containers(vec![]).build(),
            &["spec.template.spec.containers"],
        ),
        (
            "container without image",
            Svc::new("a").containers(vec![Container::default()]).build(),
            &["spec.template.spec.containers[0].image"],
        ),
        (
            "image reference that does not parse (Knative refuses it before storing)",
            Svc::new("a")
                .containers(vec![container("not a valid image!!")])
                .build(),
            &["spec.template.spec.containers[0].image"],
        ),
        (
            "two ports on one container",
            Svc::new("a")
                .containers(vec![with_port(
                    with_port(container("i"), 8080, None),
                    8081,
                    None,
                )])
                .build(),
            &["spec.template.spec.containers"],
        ),
        (
            "two containers, both with a port",
            Svc::new("a")
                .containers(vec![
                    with_port(container("i"), 8080, None),
                    with_port(container("j"), 8081, None),
                ])
                .build(),
            &["spec.template.spec.containers"],
        ),
        (
            "two containers, none with a port",
            Svc::new("a")
                .containers(vec![container("i"), container("j")])
                .build(),
            &["spec.template.spec.containers"],
        ),
        (
            "app and sidecar, only the app takes the port",
            Svc::new("a")
                .containers(vec![
                    with_port(container("i"), 8080, Some("h2c")),
                    container("fluent-bit"),
                ])
                .build(),
            &[],
        ),
        (
            "duplicate container names",
            Svc::new("a")
                .containers(vec![
                    Container {
                        name: "x".into(),
                        ..with_port(container("i"), 8080, None)
                    },
                    Container {
                        name: "x".into(),
                        ..container("j")
                    },
                ])
                .build(),
            &["spec.template.spec.containers[1].name"],
        ),
        (
            "reserved port 8012",
            Svc::new("a")
                .containers(vec![with_port(container("i"), 8012, None)])
                .build(),
            &["spec.template.spec.containers[0].ports[0].containerPort"],
        ),
        (
            "reserved port 8008 (profiling)",
            Svc::new("a")
                .containers(vec![with_port(container("i"), 8008, None)])
                .build(),
            &["spec.template.spec.containers[0].ports[0].containerPort"],
        ),
        (
            "reserved port 9091",
            Svc::new("a")
                .containers(vec![with_port(container("i"), 9091, None)])
                .build(),
            &["spec.template.spec.containers[0].ports[0].containerPort"],
        ),
        (
            "port name grpc",
            Svc::new("a")
                .containers(vec![with_port(container("i"), 8080, Some("grpc"))])
                .build(),
            &["spec.template.spec.containers[0].ports[0].name"],
        ),
        (
            "reserved env K_SERVICE and PORT",
            Svc::new("a")
                .containers(vec![with_env(
                    with_env(container("i"), "K_SERVICE"),
                    "PORT",
                )])
                .build(),
            &[
                "spec.template.spec.containers[0].env[0].name",
                "spec.template.spec.containers[0].env[1].name",
            ],
        ),
        (
            "timeoutSeconds 601",
            Svc::new("a")
                .spec(|s| s.timeout_seconds = Some(601))
                .build(),
            &["spec.template.spec.timeoutSeconds"],
        ),
        (
            "timeoutSeconds 600",
            Svc::new("a")
                .spec(|s| s.timeout_seconds = Some(600))
                .build(),
            &[],
        ),
        (
            "timeoutSeconds -1",
            Svc::new("a").spec(|s| s.timeout_seconds = Some(-1)).build(),
            &["spec.template.spec.timeoutSeconds"],
        ),
        (
            "containerConcurrency 1001",
            Svc::new("a")
                .spec(|s| s.container_concurrency = Some(1001))
                .build(),
            &["spec.template.spec.containerConcurrency"],
        ),
        (
            "containerConcurrency 1000",
            Svc::new("a")
                .spec(|s| s.container_concurrency = Some(1000))
                .build(),
            &[],
        ),
        (
            "responseStartTimeoutSeconds above timeoutSeconds",
            Svc::new("a")
                .spec(|s| {
                    s.timeout_seconds = Some(10);
                    s.response_start_timeout_seconds = Some(11);
                })
                .build(),
            &["spec.template.spec.responseStartTimeoutSeconds"],
        ),
        (
            "nodeSelector without the feature flag",
            Svc::new("a")
                .spec(|s| {
                    s.pod_spec.node_selector = Some(BTreeMap::from([("pool".into(), "gpu".into())]))
                })
                .build(),
            &["spec.template.spec.nodeSelector"],
        ),
        (
            "tolerations without the feature flag",
            Svc::new("a")
                .spec(|s| s.pod_spec.tolerations = Some(vec![Toleration::default()]))
                .build(),
            &["spec.template.spec.tolerations"],
        ),
        (
            "a malformed quantity and env name",
            Svc::new("a")
                .spec(|s| {
                    let c = &mut s.pod_spec.containers[0];
                    c.resources = Some(ResourceRequirements {
                        limits: Some(BTreeMap::from([("memory".into(), Quantity("lots".into()))])),
                        ..Default::default()
                    });
                    c.env = Some(vec![EnvVar {
                        name: "A B".into(),
                        value: Some("x".into()),
                        ..Default::default()
                    }]);
                })
                .build(),
            &[
                "spec.template.spec.containers[0].resources.limits.memory",
                "spec.template.spec.containers[0].env[0].name",
            ],
        ),
        (
            "the downward API in env needs kubernetes.podspec-fieldref",
            Svc::new("a")
                .spec(|s| {
                    s.pod_spec.containers[0].env = Some(
                        serde_json::from_value(serde_json::json!([
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
                        ]))
                        .unwrap(),
                    );
                })
                .build(),
            &[
                "spec.template.spec.containers[0].env[0].valueFrom.fieldRef",
                "spec.template.spec.containers[0].env[1].valueFrom.resourceFieldRef",
            ],
        ),
        (
            "nodeName is not a Knative field",
            Svc::new("a")
                .spec(|s| s.pod_spec.node_name = Some("n1".into()))
                .build(),
            &["spec.template.spec.nodeName"],
        ),
        (
            "mount on /dev/log (written /dev/./log/) and on a missing volume",
            Svc::new("a")
                .spec(|s| {
                    s.pod_spec.volumes = Some(vec![Volume {
                        name: "v".into(),
                        empty_dir: Some(Default::default()),
                        ..Default::default()
                    }]);
                    s.pod_spec.containers[0].volume_mounts = Some(vec![
                        VolumeMount {
                            name: "v".into(),
                            mount_path: "/dev/./log/".into(),
                            ..Default::default()
                        },
                        VolumeMount {
                            name: "w".into(),
                            mount_path: "/data".into(),
                            ..Default::default()
                        },
                    ]);
                })
                .build(),
            &[
                "spec.template.spec.containers[0].volumeMounts[0].mountPath",
                "spec.template.spec.containers[0].volumeMounts[1].name",
            ],
        ),
        (
            "readiness probe on another port",
            Svc::new("a")
                .containers(vec![Container {
                    readiness_probe: Some(Probe {
                        tcp_socket: Some(TCPSocketAction {
                            port: IntOrString::Int(9000),
                            host: None,
                        }),
                        ..Default::default()
                    }),
                    ..with_port(container("i"), 8080, None)
                }])
                .build(),
            &["spec.template.spec.containers[0].readinessProbe.tcpSocket.port"],
        ),
        (
            "template name without the service prefix",
            Svc::new("hello").template_name("other-v1").build(),
            &["spec.template.metadata.name"],
        ),
        (
            "template name with the prefix",
            Svc::new("hello").template_name("hello-v1").build(),
            &[],
        ),
        (
            "template name too long",
            Svc::new("hello")
                .template_name(&format!("hello-{}", "v".repeat(60)))
                .build(),
            &["spec.template.metadata.name"],
        ),
        (
            "traffic summing to 90",
            Svc::new("a")
                .traffic(vec![
                    TrafficTarget::latest(50),
                    TrafficTarget::revision("a-00001", 40),
                ])
                .build(),
            &["spec.traffic.percent"],
        ),
        (
            "a 50/50 split with a tag",
            Svc::new("a")
                .traffic(vec![
                    TrafficTarget::latest(50),
                    TrafficTarget::revision("a-00001", 50).with_tag("v1"),
                ])
                .build(),
            &[],
        ),
        (
            "percent above 100",
            Svc::new("a")
                .traffic(vec![TrafficTarget::latest(101)])
                .build(),
            &["spec.traffic[0].percent", "spec.traffic.percent"],
        ),
        (
            "duplicate and malformed tags",
            Svc::new("a")
                .traffic(vec![
                    TrafficTarget::latest(50).with_tag("v1"),
                    TrafficTarget::revision("a-00001", 50).with_tag("v1"),
                    TrafficTarget::revision("a-00002", 0).with_tag("V_2"),
                ])
                .build(),
            &["spec.traffic[1].tag", "spec.traffic[2].tag"],
        ),
        (
            "revisionName with latestRevision true",
            Svc::new("a")
                .traffic(vec![TrafficTarget {
                    latest_revision: Some(true),
                    ..TrafficTarget::revision("a-00001", 100)
                }])
                .build(),
            &["spec.traffic[0].latestRevision"],
        ),
        (
            "configurationName in a Service",
            Svc::new("a")
                .traffic(vec![TrafficTarget {
                    configuration_name: Some("a".into()),
                    percent: Some(100),
                    ..Default::default()
                }])
                .build(),
            &["spec.traffic[0].configurationName"],
        ),
        (
            "url in spec",
            Svc::new("a")
                .traffic(vec![TrafficTarget {
                    url: Some("http://x".into()),
                    ..TrafficTarget::latest(100)
                }])
                .build(),
            &["spec.traffic[0].url"],
        ),
        (
            "min-scale above max-scale",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/min-scale", "5")
                .annotation("autoscaling.knative.dev/max-scale", "2")
                .build(),
            &["spec.template.metadata.annotations.autoscaling.knative.dev/min-scale"],
        ),
        (
            "max-scale 0 is unlimited",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/min-scale", "5")
                .annotation("autoscaling.knative.dev/max-scale", "0")
                .build(),
            &[],
        ),
        (
            "negative min-scale",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/min-scale", "-1")
                .build(),
            &["spec.template.metadata.annotations.autoscaling.knative.dev/min-scale"],
        ),
        (
            "target 0",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/target", "0")
                .build(),
            &["spec.template.metadata.annotations.autoscaling.knative.dev/target"],
        ),
        (
            "utilization 101",
            Svc::new("a")
                .annotation(
                    "autoscaling.knative.dev/target-utilization-percentage",
                    "101",
                )
                .build(),
            &[
                "spec.template.metadata.annotations.autoscaling.knative.dev/target-utilization-percentage",
            ],
        ),
        (
            "window 5s",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/window", "5s")
                .build(),
            &["spec.template.metadata.annotations.autoscaling.knative.dev/window"],
        ),
        (
            "window 1.5s is not whole seconds",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/window", "6500ms")
                .build(),
            &["spec.template.metadata.annotations.autoscaling.knative.dev/window"],
        ),
        (
            "window 1h",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/window", "1h")
                .build(),
            &[],
        ),
        (
            "window 61m",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/window", "61m")
                .build(),
            &["spec.template.metadata.annotations.autoscaling.knative.dev/window"],
        ),
        (
            "metric cpu with KPA",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/metric", "cpu")
                .build(),
            &["spec.template.metadata.annotations.autoscaling.knative.dev/metric"],
        ),
        (
            "initial-scale 0 by default",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/initial-scale", "0")
                .build(),
            &["spec.template.metadata.annotations.autoscaling.knative.dev/initial-scale"],
        ),
        (
            "panic threshold 100",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/panic-threshold-percentage", "100")
                .build(),
            &[
                "spec.template.metadata.annotations.autoscaling.knative.dev/panic-threshold-percentage",
            ],
        ),
        (
            "scale-down-delay 2h",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/scale-down-delay", "2h")
                .build(),
            &["spec.template.metadata.annotations.autoscaling.knative.dev/scale-down-delay"],
        ),
        (
            "target-burst-capacity -1",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/target-burst-capacity", "-1")
                .build(),
            &[],
        ),
        (
            "minScale and min-scale together",
            Svc::new("a")
                .annotation("autoscaling.knative.dev/minScale", "1")
                .annotation("autoscaling.knative.dev/min-scale", "1")
                .build(),
            &["spec.template.metadata.annotations.autoscaling.knative.dev/min-scale"],
        ),
    ];
    let config = ValidationConfig::default();
    let mut failures = Vec::new();
    for (what, service, expected) in cases {
        let errors = service.validate(&config);
        if fields(&errors) != set(expected) {
            failures.push(format!("{what}: expected {expected:?}, got:\n{errors}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn feature_flags_let_placement_through() {
    let service = Svc::new("a")
        .spec(|s| {
            s.pod_spec.node_selector = Some(BTreeMap::from([("pool".into(), "gpu".into())]));
            s.pod_spec.tolerations = Some(vec![Toleration::default()]);
        })
        .build();
    let config = ValidationConfig {
        features: FeatureFlags {
            node_selector: true,
            tolerations: true,
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(service.validate(&config).is_empty());
    let errors = service.validate(&ValidationConfig::default());
    let message = errors
        .iter()
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        message.contains("kubernetes.podspec-nodeselector")
            && message.contains("kubernetes.podspec-tolerations"),
        "{message}"
    );
    assert!(errors.iter().all(|e| e.cause == CauseType::Forbidden));
}

#[test]
fn multi_container_off_rejects_sidecars() {
    let service = Svc::new("a")
        .containers(vec![with_port(container("i"), 8080, None), container("j")])
        .build();
    let config = ValidationConfig {
        features: FeatureFlags {
            multi_container: false,
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        fields(&service.validate(&config)),
        set(&["spec.template.spec.containers"])
    );
}

#[test]
fn route_rules_table() {
    let route = |traffic: Vec<TrafficTarget>| Route::new("r", RouteSpec { traffic });
    let cfg = |name: &str, percent: i64| TrafficTarget {
        configuration_name: Some(name.into()),
        percent: Some(percent),
        ..Default::default()
    };
    let cases: Vec<(&str, Route, &[&str])> = vec![
        ("configuration target", route(vec![cfg("c", 100)]), &[]),
        (
            "revision and configuration at once",
            route(vec![TrafficTarget {
                configuration_name: Some("c".into()),
                ..TrafficTarget::revision("c-1", 100)
            }]),
            &["spec.traffic[0]"],
        ),
        (
            "neither revision nor configuration",
            route(vec![TrafficTarget {
                percent: Some(100),
                ..Default::default()
            }]),
            &["spec.traffic[0]"],
        ),
        (
            "latestRevision false on a configuration",
            route(vec![TrafficTarget {
                latest_revision: Some(false),
                ..cfg("c", 100)
            }]),
            &["spec.traffic[0].latestRevision"],
        ),
        (
            "split 80/20",
            route(vec![cfg("c", 80), TrafficTarget::revision("c-1", 20)]),
            &[],
        ),
        (
            "split 80/30",
            route(vec![cfg("c", 80), TrafficTarget::revision("c-1", 30)]),
            &["spec.traffic.percent"],
        ),
    ];
    let mut failures = Vec::new();
    for (what, route, expected) in cases {
        let errors = route.validate(&ValidationConfig::default());
        if fields(&errors) != set(expected) {
            failures.push(format!("{what}: expected {expected:?}, got:\n{errors}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn defaults_match_knatives_webhook() {
    let mut service = Svc::new("hello").build();
    service.set_defaults(&ValidationConfig::default());
    let json = serde_json::to_value(&service).unwrap();
    assert_eq!(
        json["spec"],
        serde_json::json!({
            "template": {"spec": {
                "containerConcurrency": 0,
                "timeoutSeconds": 300,
                "enableServiceLinks": false,
                "containers": [{
                    "name": "user-container",
                    "image": "registry.example/hello@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                    "readinessProbe": {"successThreshold": 1, "tcpSocket": {"port": 0}}
                }]
            }},
            "traffic": [{"latestRevision": true, "percent": 100}]
        })
    );
    // Idempotent, and the defaulted object is valid.
    let again = {
        let mut s = service.clone();
        s.set_defaults(&ValidationConfig::default());
        s
    };
    assert_eq!(again, service);
    assert!(service.validate(&ValidationConfig::default()).is_empty());
}

#[test]
fn defaults_name_multi_container_pods_and_probe_only_the_serving_one() {
    let mut service = Svc::new("a")
        .containers(vec![
            container("sidecar"),
            with_port(container("app"), 8080, None),
        ])
        .build();
    service.spec.traffic = vec![TrafficTarget {
        revision_name: Some("a-00001".into()),
        percent: Some(100),
        ..Default::default()
    }];
    service.set_defaults(&ValidationConfig::default());
    let containers = &service.spec.template.spec.pod_spec.containers;
    assert_eq!(containers[0].name, "user-container-0");
    assert_eq!(containers[1].name, "user-container-1");
    assert!(containers[0].readiness_probe.is_none());
    assert!(
        containers[1]
            .readiness_probe
            .as_ref()
            .unwrap()
            .tcp_socket
            .is_some()
    );
    assert_eq!(service.spec.traffic[0].latest_revision, Some(false));
}

#[test]
fn updates_keep_revisions_immutable_and_named_templates_fixed() {
    let config = ValidationConfig::default();
    let old = Svc::new("hello").template_name("hello-v1").build();
    let changed = Svc::new("hello")
        .template_name("hello-v1")
        .spec(|s| s.timeout_seconds = Some(10))
        .build();
    assert_eq!(
        fields(&changed.validate_update(&old, &config)),
        set(&["spec.template.metadata.name"])
    );
    let renamed = Svc::new("hello")
        .template_name("hello-v2")
        .spec(|s| s.timeout_seconds = Some(10))
        .build();
    assert!(renamed.validate_update(&old, &config).is_empty());

    let mut configuration = Configuration::new(
        "c",
        ConfigurationSpec {
            template: old.spec.template.clone(),
        },
    );
    configuration.spec.template.metadata.name = Some("c-v1".into());
    assert!(configuration.validate(&config).is_empty());

    let revision = Revision::new(
        "hello-00001",
        RevisionSpec::with_containers(vec![container("i")]),
    );
    let mut edited = revision.clone();
    edited.spec.timeout_seconds = Some(5);
    assert_eq!(
        fields(&edited.validate_update(&revision, &config)),
        set(&["spec"])
    );
    assert!(revision.validate_update(&revision, &config).is_empty());
}

#[test]
fn tmp_and_var_are_no_longer_reserved_mount_paths() {
    // Knative 1.14 dropped /tmp, /var and /var/log from reservedPaths.
    let mounts = ["/tmp", "/var", "/var/log"];
    let service = Svc::new("a")
        .spec(|s| {
            s.pod_spec.volumes = Some(vec![Volume {
                name: "v".into(),
                empty_dir: Some(Default::default()),
                ..Default::default()
            }]);
            s.pod_spec.containers[0].volume_mounts = Some(
                mounts
                    .iter()
                    .map(|path| VolumeMount {
                        name: "v".into(),
                        mount_path: (*path).into(),
                        ..Default::default()
                    })
                    .collect(),
            );
        })
        .build();
    let errors = service.validate(&ValidationConfig::default());
    assert!(
        !errors.iter().any(|e| e.field.contains("mountPath")),
        "{errors:?}"
    );
}
