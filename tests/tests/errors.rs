//! The failures users hit, through the real `okonomi` binary, each with the
//! message asserted: it must say what is wrong and what to do.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use okonomi_tests::tools::workspace_root;
use okonomi_tests::{Okonomi, Target};

/// A runner with its own (possibly missing) kubeconfig.
fn okonomi_with_kubeconfig(path: &std::path::Path) -> Okonomi {
    let mut env = BTreeMap::new();
    env.insert("KUBECONFIG".to_owned(), path.display().to_string());
    Okonomi::new(env).unwrap()
}

/// An image reference by digest that no registry has.
const MISSING_DIGEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn no_kube_context_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let hello = workspace_root().join("functions/hello");
    let hello = hello.to_str().unwrap();

    // No kubeconfig file at all.
    let okonomi = okonomi_with_kubeconfig(&dir.path().join("missing-config"));
    let run = okonomi
        .run(&[
            "deploy",
            hello,
            "--image",
            "127.0.0.1:1/okonomi/hello:latest",
        ])
        .unwrap()
        .failure()
        .unwrap();
    assert!(
        run.stderr.contains("no Kubernetes context to deploy to"),
        "{run}"
    );
    assert!(run.stderr.contains("there is no kubeconfig at"), "{run}");
    assert!(run.stderr.contains("`okonomi up`"), "{run}");
    assert!(
        run.stderr
            .contains("gcloud container clusters get-credentials"),
        "{run}"
    );

    // A kubeconfig without a current context.
    let empty = dir.path().join("empty-config");
    std::fs::write(
        &empty,
        "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
    )
    .unwrap();
    let run = okonomi_with_kubeconfig(&empty)
        .run(&["list"])
        .unwrap()
        .failure()
        .unwrap();
    assert!(
        run.stderr.contains("the kubeconfig has no current-context"),
        "{run}"
    );
    assert!(run.stderr.contains("`okonomi up`"), "{run}");

    // A context name the kubeconfig does not have.
    let run = okonomi_with_kubeconfig(&empty)
        .run(&["list", "--context", "gke"])
        .unwrap()
        .failure()
        .unwrap();
    assert!(
        run.stderr.contains("no context to deploy to") || run.stderr.contains("no contexts"),
        "{run}"
    );
}

#[test]
fn invalid_name_is_refused_before_anything_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let okonomi = okonomi_with_kubeconfig(&dir.path().join("missing-config"));
    let image = format!("127.0.0.1:1/okonomi/hello@{MISSING_DIGEST}");
    for (name, why) in [
        ("Hello_World", "\"Hello_World\" is not a valid service name"),
        ("9lives", "\"9lives\" is not a valid service name"),
    ] {
        let run = okonomi
            .run(&["deploy", "--image", &image, "--name", name])
            .unwrap()
            .failure()
            .unwrap();
        assert!(run.stderr.contains(why), "{run}");
        assert!(
            run.stderr
                .contains("lowercase letters, digits and '-', starting with a letter"),
            "{run}"
        );
        assert!(
            !run.stderr.contains("no Kubernetes context"),
            "the name must be checked first: {run}"
        );
    }
}

#[test]
fn engine_errors_namespace_missing_and_unpullable_image() {
    let target = Target::engine().unwrap();

    // A namespace that does not exist.
    let image = format!("{}/hello@{MISSING_DIGEST}", target.registry);
    let run = target
        .okonomi(&["deploy", "--image", &image, "--name", "hello", "-n", "nope"])
        .unwrap()
        .failure()
        .unwrap();
    assert!(
        run.stderr.contains("namespace \"nope\" does not exist"),
        "{run}"
    );
    assert!(
        run.stderr.contains("kubectl create namespace nope"),
        "{run}"
    );

    // An image the cluster cannot pull: the revision's condition is shown.
    let run = target
        .okonomi_ns(&[
            "deploy",
            "--image",
            &image,
            "--name",
            "ghost",
            "--timeout",
            "180s",
        ])
        .unwrap()
        .failure()
        .unwrap();
    assert!(
        run.stderr.contains("service \"ghost\" is not ready"),
        "{run}"
    );
    assert!(
        run.stderr.contains("revision ghost-00001"),
        "the revision's conditions are missing: {run}"
    );
    let revision = target
        .kubectl_ns(&["get", "revision", "ghost-00001", "-o", "json"])
        .unwrap()
        .success()
        .unwrap()
        .json()
        .unwrap();
    let failing: Vec<&serde_json::Value> = revision["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "False")
        .collect();
    assert!(
        !failing.is_empty(),
        "revision has no False condition: {revision}"
    );
    for condition in failing {
        let message = condition["message"].as_str().unwrap_or_default();
        assert!(
            run.stderr.contains(message),
            "okonomi did not surface {message:?}: {run}"
        );
    }

    // Traffic to a revision that does not exist: Knative marks the Route's
    // AllTrafficAssigned False (RevisionMissing), so that waits stop with
    // the reason instead of running out.
    let run = target
        .okonomi_ns(&[
            "traffic",
            "ghost",
            "--traffic",
            "nope-00009=100",
            "--timeout",
            "170s",
        ])
        .unwrap()
        .failure()
        .unwrap();
    assert!(
        !run.stderr.contains("was not ready after"),
        "the wait ran out instead of stopping at the reason: {run}"
    );
    let route = target
        .kubectl_ns(&["get", "route", "ghost", "-o", "json"])
        .unwrap()
        .success()
        .unwrap()
        .json()
        .unwrap();
    let assigned = route["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "AllTrafficAssigned")
        .cloned()
        .unwrap_or_default();
    assert_eq!(assigned["status"], "False", "{route}");
    assert_eq!(assigned["reason"], "RevisionMissing", "{route}");
    assert_eq!(
        assigned["message"], "Revision \"nope-00009\" referenced in traffic not found.",
        "{route}"
    );
}

#[test]
fn a_missing_path_is_said_to_be_missing_and_timeouts_take_durations() {
    let dir = tempfile::tempdir().unwrap();
    let okonomi = okonomi_with_kubeconfig(&dir.path().join("missing-config"));
    let missing = dir.path().join("nonexistent");
    let run = okonomi
        .run(&["deploy", missing.to_str().unwrap()])
        .unwrap()
        .failure()
        .unwrap();
    assert!(run.stderr.contains("does not exist"), "{run}");
    assert!(!run.stderr.contains("has no okonomi.toml"), "{run}");

    // One duration syntax everywhere: invoke takes 1s and 500ms as deploy does.
    for timeout in ["1s", "500ms"] {
        let run = okonomi
            .run(&["invoke", "http://127.0.0.1:1/", "--timeout", timeout])
            .unwrap()
            .failure()
            .unwrap();
        assert!(run.stderr.contains("calling http://127.0.0.1:1/"), "{run}");
        assert!(!run.stderr.contains("invalid"), "{run}");
    }
}

/// A Kubernetes API without Knative: okonomi's own API server serving only
/// core namespaces, over HTTPS with a token, merged into a temp kubeconfig.
#[test]
fn knative_missing_points_at_the_install_doc() {
    use okonomi_apiserver::kubeconfig::{KubeconfigEntry, merge};
    use okonomi_apiserver::tls::{Credentials, serve_tls};
    use okonomi_apiserver::{ResourceType, Store};

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (listener, router, config) = {
        let dir = dir.path().to_path_buf();
        let kubeconfig = kubeconfig.clone();
        runtime.block_on(async move {
            let store = Store::open_in_memory().await.unwrap();
            let credentials = Credentials::load_or_create(&dir.join("pki")).unwrap();
            let api = okonomi_apiserver::http::Api::new(store, vec![ResourceType::namespace()])
                .with_token(credentials.token.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            merge(
                &kubeconfig,
                &KubeconfigEntry {
                    name: "bare".into(),
                    server: format!("https://{address}"),
                    ca_pem: credentials.ca_pem.clone(),
                    token: credentials.token.clone(),
                    namespace: None,
                    set_current: true,
                },
            )
            .unwrap();
            (listener, api.router(), credentials.server_config().unwrap())
        })
    };
    let stop = shutdown.clone();
    let server = runtime.spawn(serve_tls(listener, router, config, async move {
        stop.cancelled().await
    }));
    let okonomi = okonomi_with_kubeconfig(&kubeconfig);
    let image = format!("127.0.0.1:1/okonomi/hello@{MISSING_DIGEST}");
    let run = okonomi
        .run(&["deploy", "--image", &image, "--name", "hello"])
        .unwrap()
        .failure()
        .unwrap();
    assert!(
        run.stderr
            .contains("Knative Serving is not installed on the cluster of context \"bare\""),
        "{run}"
    );
    assert!(run.stderr.contains("serving.knative.dev/v1"), "{run}");
    assert!(run.stderr.contains("docs/clouds/"), "{run}");
    let run = okonomi.run(&["list"]).unwrap().failure().unwrap();
    assert!(
        run.stderr.contains("Knative Serving is not installed"),
        "{run}"
    );
    shutdown.cancel();
    runtime.block_on(server).unwrap().unwrap();
}

#[test]
fn dry_run_with_istio_prints_the_service_and_its_mesh_policy() {
    let dir = tempfile::tempdir().unwrap();
    let okonomi = okonomi_with_kubeconfig(&dir.path().join("missing-config"));
    let hello = workspace_root().join("functions/hello");
    let image = format!("127.0.0.1:1/okonomi/hello@{MISSING_DIGEST}");
    let run = okonomi
        .run(&[
            "deploy",
            hello.to_str().unwrap(),
            "--image",
            &image,
            "--dry-run",
            "--istio",
            "-o",
            "json",
        ])
        .unwrap()
        .success()
        .unwrap();
    let list = run.json().unwrap();
    assert_eq!(list["kind"], "List", "{run}");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["Service", "PeerAuthentication", "AuthorizationPolicy"],
        "{run}"
    );
    for item in list["items"].as_array().unwrap() {
        assert_eq!(item["metadata"]["namespace"], "default", "{item}");
    }
    assert_eq!(
        list["items"][0]["spec"]["template"]["spec"]["containers"][0]["image"],
        image.as_str()
    );
}
