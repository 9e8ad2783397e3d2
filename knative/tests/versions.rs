//! The Knative releases the docs were checked against live in
//! `okonomi_knative::versions` and in docs/clouds/README.md's "Checked
//! against" table; every cloud page installs from the same tag. This keeps
//! them equal, and the version arithmetic `okonomi doctor` relies on honest.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;

use okonomi_knative::cluster_config::{self, Flag};
use okonomi_knative::versions::{self, Version};

fn doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/clouds")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_docs_pin_the_same_releases_as_the_code() {
    let readme = doc("README.md");
    let serving_row = format!(
        "| Knative Serving | **{}** | `{}` |",
        versions::KNATIVE_SERVING,
        versions::RELEASE_TAG
    );
    let net_istio_row = format!(
        "| net-istio | **{}** | `{}` |",
        versions::NET_ISTIO,
        versions::RELEASE_TAG
    );
    assert!(
        readme.contains(&serving_row),
        "README.md lacks {serving_row}"
    );
    assert!(
        readme.contains(&net_istio_row),
        "README.md lacks {net_istio_row}"
    );
    assert_eq!(
        versions::RELEASE_TAG,
        format!("knative-v{}", versions::KNATIVE_SERVING)
    );
    for page in ["gke.md", "eks.md", "aks.md", "kind.md"] {
        let text = doc(page);
        let pins: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("KNATIVE="))
            .collect();
        assert_eq!(pins, [versions::RELEASE_TAG], "{page}: KNATIVE= lines");
        assert!(
            !text.contains("releases/download/knative-v"),
            "{page} names a release tag outside KNATIVE="
        );
    }
    // The minimum Kubernetes of the pinned release is in the README's table.
    let minimum = versions::KNATIVE_SERVING.kubernetes_minimum().unwrap();
    let row = format!(
        "**{}** | **{}** |",
        versions::KNATIVE_SERVING.minor_string(),
        minimum.minor_string()
    );
    assert!(
        readme.contains(&row),
        "README.md lacks the row ending {row}"
    );
}

#[test]
fn versions_read_as_kubernetes_and_knative_write_them() {
    assert_eq!(Version::parse("v1.34.2"), Some(Version::new(1, 34, 2)));
    assert_eq!(
        Version::parse("v1.31.4-gke.1256000"),
        Some(Version::new(1, 31, 4))
    );
    assert_eq!(
        Version::parse("v1.33.0-okonomi"),
        Some(Version::new(1, 33, 0))
    );
    assert_eq!(Version::parse("1.23.0"), Some(Version::new(1, 23, 0)));
    assert_eq!(Version::parse("1.23"), Some(Version::new(1, 23, 0)));
    assert_eq!(Version::parse("devel"), None);
    assert_eq!(Version::parse("1.2.3.4"), None);
    assert_eq!(
        Version::new(1, 23, 4).kubernetes_minimum(),
        Some(Version::new(1, 34, 0))
    );
    assert_eq!(
        Version::new(1, 21, 0).kubernetes_minimum(),
        Some(Version::new(1, 33, 0))
    );
    assert_eq!(Version::new(1, 9, 0).kubernetes_minimum(), None);
    assert!(Version::new(1, 33, 9) < Version::new(1, 34, 0));
    assert_eq!(versions::oldest_known_serving(), Version::new(1, 18, 0));
}

fn data(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn config_domain_is_read_as_knative_reads_it() {
    // Nothing but the example and a selector: svc.cluster.local.
    let choice = cluster_config::default_domain(&data(&[
        ("_example", "example.com: |\n"),
        ("internal.example.org", "selector:\n  app: secret\n"),
    ]));
    assert_eq!(choice.domain, "svc.cluster.local");
    assert!(choice.is_cluster_local());
    assert!(choice.catch_alls.is_empty());

    // Two catch-alls: the lexically smallest key wins.
    let choice = cluster_config::default_domain(&data(&[
        ("fn.example.com", ""),
        ("203.0.113.10.sslip.io", ""),
        ("internal.example.org", "selector:\n  app: secret\n"),
    ]));
    assert_eq!(choice.domain, "203.0.113.10.sslip.io");
    assert_eq!(
        choice.catch_alls,
        ["203.0.113.10.sslip.io", "fn.example.com"]
    );
    assert!(!choice.is_cluster_local());

    // A value Knative's YAML reader refuses is reported.
    let choice = cluster_config::default_domain(&data(&[("bad.example.com", "selector: [")]));
    assert_eq!(choice.unreadable.len(), 1, "{choice:?}");
}

#[test]
fn feature_flags_are_read_as_knative_reads_them() {
    let flags = data(&[
        ("kubernetes.podspec-nodeselector", "Allowed"),
        ("kubernetes.podspec-tolerations", "nonsense"),
        ("multi-container", "allowed"),
    ]);
    let node_selector = cluster_config::feature_flag(&flags, "kubernetes.podspec-nodeselector");
    assert_eq!(node_selector, Flag::Allowed);
    assert!(cluster_config::flag_admits(
        "kubernetes.podspec-nodeselector",
        node_selector
    ));
    // An unreadable value leaves Knative's default (disabled).
    let tolerations = cluster_config::feature_flag(&flags, "kubernetes.podspec-tolerations");
    assert_eq!(tolerations, Flag::Disabled);
    assert!(!cluster_config::flag_admits(
        "kubernetes.podspec-tolerations",
        tolerations
    ));
    // multi-container must be Enabled, not merely Allowed.
    let multi = cluster_config::feature_flag(&flags, "multi-container");
    assert!(!cluster_config::flag_admits("multi-container", multi));
    assert!(cluster_config::flag_admits(
        "multi-container",
        cluster_config::feature_flag(&data(&[]), "multi-container")
    ));
    assert_eq!(
        cluster_config::ingress_class(&data(&[])),
        cluster_config::ISTIO_INGRESS_CLASS
    );
    assert_eq!(
        cluster_config::ingress_class(&data(&[(
            "ingress.class",
            "kourier.ingress.networking.knative.dev"
        )])),
        "kourier.ingress.networking.knative.dev"
    );
}

#[test]
fn config_defaults_is_read_and_checked_as_knative_does() {
    use cluster_config::{ConfigMapError, defaults};
    let d = defaults(&data(&[])).unwrap();
    assert_eq!(d, cluster_config::Defaults::default());
    assert_eq!(
        (d.revision_timeout_seconds, d.max_revision_timeout_seconds),
        (300, 600)
    );
    let d = defaults(&data(&[
        ("revision-timeout-seconds", "120"),
        ("container-concurrency", "10"),
        ("enable-service-links", "default"),
    ]))
    .unwrap();
    assert_eq!(d.revision_timeout_seconds, 120);
    assert_eq!(d.container_concurrency, 10);
    assert_eq!(d.enable_service_links, None);
    for (pairs, message) in [
        (
            &[("revision-timeout-seconds", "x")][..],
            r#"failed to parse "revision-timeout-seconds": strconv.ParseInt: parsing "x": invalid syntax"#,
        ),
        (
            &[("revision-timeout-seconds", "700")][..],
            "revision-timeout-seconds (700) cannot be greater than max-revision-timeout-seconds (600)",
        ),
        (
            &[("revision-idle-timeout-seconds", "400")][..],
            "revision-idle-timeout-seconds (400) cannot be greater than revision-timeout-seconds (300)",
        ),
        (
            &[("container-concurrency", "1001")][..],
            "expected 0 <= 1001 <= 1000: container-concurrency",
        ),
        (
            &[("container-concurrency-max-limit", "0")][..],
            "expected 1 <= 0 <= 2147483647: container-concurrency-max-limit",
        ),
    ] {
        assert_eq!(defaults(&data(pairs)).unwrap_err().to_string(), message);
    }
    assert!(matches!(
        defaults(&data(&[("container-name-template", "{{.Name}}")])),
        Err(ConfigMapError::Unsupported { .. })
    ));
}

#[test]
fn an_edited_example_is_refused_as_knative_s_webhook_refuses_it() {
    // Knative's checksum: CRC-32 of the trimmed text, newline runs as `\n`.
    let example = "\n# a comment\n\n\nkey: value\n";
    let sum = cluster_config::example_checksum(example);
    assert_eq!(
        sum,
        cluster_config::example_checksum("# a comment\nkey: value")
    );
    assert_ne!(
        sum,
        cluster_config::example_checksum("# a comment\nkey: other")
    );
    let annotations = data(&[(cluster_config::EXAMPLE_CHECKSUM_ANNOTATION, sum.as_str())]);
    cluster_config::check_example(&data(&[("_example", example)]), &annotations).unwrap();
    let error =
        cluster_config::check_example(&data(&[("_example", "edited")]), &annotations).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(r#"the update modifies a key in "_example""#)
    );
}
