//! The kubectl on this machine (1.33 through the dispatcher, 1.27 and 1.28
//! directly) against the real API server over HTTPS.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;

use std::path::Path;
use std::time::Duration;

use harness::{Run, Server, kubectl_binary};
use okonomi_apiserver::ResourceType;

const HELLO_V1: &str = "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: registry.example/hello@sha256:1111111111111111111111111111111111111111111111111111111111111111
          env:
            - name: TARGET
              value: world
";

/// The whole kubectl story for one kubectl binary.
async fn scenario(binary: &Path) {
    let server = Server::start().await;
    let hello = server.manifest("hello.yaml", HELLO_V1);
    let hello = hello.to_str().unwrap();

    // apply -f (create), with default --validate=strict (needs OpenAPI).
    let out = server.kubectl_ok(binary, &["apply", "-f", hello]).await;
    assert!(
        out.contains("service.serving.knative.dev/hello created"),
        "{out}"
    );
    let stored = server
        .store
        .get(&ResourceType::knative_service(), "default", "hello")
        .unwrap();
    assert!(
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );

    // Unchanged file: no patch.
    let out = server.kubectl_ok(binary, &["apply", "-f", hello]).await;
    assert!(out.contains("unchanged"), "{out}");

    // Changed file: merge patch, generation 2.
    let changed = server.manifest(
        "hello2.yaml",
        &HELLO_V1.replace("value: world", "value: okonomi"),
    );
    let out = server
        .kubectl_ok(binary, &["apply", "-f", changed.to_str().unwrap()])
        .await;
    assert!(
        out.contains("service.serving.knative.dev/hello configured"),
        "{out}"
    );
    let stored = server
        .store
        .get(&ResourceType::knative_service(), "default", "hello")
        .unwrap();
    assert_eq!(stored["metadata"]["generation"], 2);
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "okonomi"
    );

    // get ksvc: Knative's columns through a Table.
    let out = server.kubectl_ok(binary, &["get", "ksvc"]).await;
    let header = out.lines().next().unwrap_or("");
    for column in [
        "NAME",
        "URL",
        "LATESTCREATED",
        "LATESTREADY",
        "READY",
        "REASON",
    ] {
        assert!(header.contains(column), "missing {column}: {out}");
    }
    assert!(out.contains("hello"), "{out}");

    // wait for Ready while a client sets the status through /status.
    let waiter = {
        let mut cmd = server.kubectl_command(binary);
        cmd.args([
            "wait",
            "--for=condition=Ready",
            "ksvc/hello",
            "--timeout=90s",
        ]);
        tokio::spawn(async move { cmd.output().await })
    };
    // Change the status only once wait is watching, so the change reaches it as an event.
    server
        .wait_for_request(&["/services", "watch=true", "fieldSelector=metadata.name"])
        .await;
    let status_patch = r#"{"status":{"observedGeneration":2,"url":"http://hello.default.localhost","latestCreatedRevisionName":"hello-00002","latestReadyRevisionName":"hello-00002","conditions":[{"type":"Ready","status":"True"},{"type":"ConfigurationsReady","status":"True"},{"type":"RoutesReady","status":"True"}]}}"#;
    let supports_subresource = !binary.to_string_lossy().ends_with("1.27");
    if supports_subresource {
        let out = server
            .kubectl_ok(
                binary,
                &[
                    "patch",
                    "ksvc",
                    "hello",
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    status_patch,
                ],
            )
            .await;
        assert!(out.contains("patched"), "{out}");
    } else {
        // kubectl 1.27 has --subresource too, but only as alpha; set it in process.
        server
            .store
            .patch_status(
                &ResourceType::knative_service(),
                "default",
                "hello",
                &okonomi_apiserver::Patch::Merge(serde_json::from_str(status_patch).unwrap()),
            )
            .await
            .unwrap();
    }
    let waited = Run::from(
        tokio::time::timeout(Duration::from_secs(120), waiter)
            .await
            .expect("wait ends")
            .unwrap()
            .unwrap(),
    );
    assert!(waited.ok, "kubectl wait failed: {waited}");
    assert!(waited.stdout.contains("condition met"), "{waited}");

    let out = server.kubectl_ok(binary, &["get", "ksvc"]).await;
    let row = out.lines().find(|l| l.starts_with("hello")).unwrap_or("");
    assert!(row.contains("http://hello.default.localhost"), "{out}");
    assert!(row.contains("hello-00002"), "{out}");
    assert!(row.contains("True"), "{out}");

    // All namespaces: NAMESPACE column filled from the row objects.
    let out = server.kubectl_ok(binary, &["get", "ksvc", "-A"]).await;
    assert!(
        out.lines().next().unwrap_or("").starts_with("NAMESPACE"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("default") && l.contains("hello")),
        "{out}"
    );

    // -o yaml: the full object.
    let out = server
        .kubectl_ok(binary, &["get", "ksvc", "hello", "-o", "yaml"])
        .await;
    assert!(out.contains("kind: Service"), "{out}");
    assert!(out.contains("registry.example/hello@sha256:"), "{out}");
    assert!(out.contains("uid:"), "{out}");

    // Short names and categories.
    let out = server
        .kubectl_ok(binary, &["get", "kservice,kcfg,rev,rt"])
        .await;
    assert!(out.contains("hello"), "{out}");
    let out = server.kubectl_ok(binary, &["get", "knative"]).await;
    assert!(out.contains("service.serving.knative.dev/hello"), "{out}");

    // patch --type merge, then the same again: no change.
    let merge = r#"{"metadata":{"labels":{"team":"a"}}}"#;
    let out = server
        .kubectl_ok(
            binary,
            &["patch", "ksvc", "hello", "--type", "merge", "-p", merge],
        )
        .await;
    assert!(
        out.contains("patched") && !out.contains("no change"),
        "{out}"
    );
    let out = server
        .kubectl_ok(
            binary,
            &["patch", "ksvc", "hello", "--type", "merge", "-p", merge],
        )
        .await;
    assert!(out.contains("(no change)"), "{out}");

    // patch --type json.
    let json_patch = r#"[{"op":"add","path":"/metadata/annotations/owner","value":"me"}]"#;
    let out = server
        .kubectl_ok(
            binary,
            &["patch", "ksvc", "hello", "--type", "json", "-p", json_patch],
        )
        .await;
    assert!(out.contains("patched"), "{out}");
    let stored = server
        .store
        .get(&ResourceType::knative_service(), "default", "hello")
        .unwrap();
    assert_eq!(stored["metadata"]["annotations"]["owner"], "me");
    assert_eq!(stored["metadata"]["labels"]["team"], "a");

    // Strategic merge is not supported for custom resources: 415.
    let run = server
        .kubectl(binary, &["patch", "ksvc", "hello", "-p", merge])
        .await;
    assert!(!run.ok, "strategic merge must fail: {run}");
    assert!(run.stderr.contains("unknown format"), "{run}");

    // Server-side apply: a new object, then the client-side-applied one.
    let server_side = async |file: &Path| {
        let file = file.to_str().unwrap();
        server
            .kubectl_ok(binary, &["apply", "--server-side", "-f", file])
            .await
    };
    let labels_of_other = async || {
        server
            .kubectl_ok(
                binary,
                &["get", "ksvc", "other", "-o", "jsonpath={.metadata.labels}"],
            )
            .await
    };
    let other = server.manifest(
        "other.yaml",
        &HELLO_V1.replace("name: hello", "name: other"),
    );
    let out = server_side(&other).await;
    assert!(
        out.contains("service.serving.knative.dev/other serverside-applied"),
        "{out}"
    );
    let out = server_side(&changed).await;
    assert!(out.contains("serverside-applied"), "{out}");
    let out = server_side(&changed).await;
    assert!(out.contains("serverside-applied"), "{out}");

    // A label the manager stops applying is removed.
    let labeled = server.manifest(
        "other-labeled.yaml",
        &HELLO_V1.replace("name: hello", "name: other\n  labels:\n    tier: web"),
    );
    server_side(&labeled).await;
    let out = labels_of_other().await;
    assert!(out.contains("tier"), "{out}");
    server_side(&other).await;
    let out = labels_of_other().await;
    assert!(!out.contains("tier"), "{out}");

    // A namespace that does not exist: NotFound naming it.
    let run = server
        .kubectl(
            binary,
            &["apply", "-n", "nowhere", "-f", other.to_str().unwrap()],
        )
        .await;
    assert!(!run.ok, "{run}");
    assert!(
        run.stderr.contains("namespaces \"nowhere\" not found"),
        "{run}"
    );
    // After creating it, the same apply works.
    server
        .kubectl_ok(binary, &["create", "namespace", "nowhere"])
        .await;
    let out = server
        .kubectl_ok(
            binary,
            &["apply", "-n", "nowhere", "-f", other.to_str().unwrap()],
        )
        .await;
    assert!(out.contains("created"), "{out}");
    let out = server.kubectl_ok(binary, &["get", "ns"]).await;
    assert!(out.contains("nowhere") && out.contains("Active"), "{out}");

    // Deleting the namespace deletes what is in it.
    let out = server
        .kubectl_ok(binary, &["delete", "namespace", "nowhere"])
        .await;
    assert!(out.contains("namespace \"nowhere\" deleted"), "{out}");
    assert!(
        server
            .store
            .get(&ResourceType::knative_service(), "nowhere", "other")
            .unwrap_err()
            .is_not_found()
    );

    // Invalid names come back as Invalid with the field.
    let bad = server.manifest(
        "bad.yaml",
        &HELLO_V1.replace("name: hello", "name: \"bad/name\""),
    );
    let run = server
        .kubectl(binary, &["create", "-f", bad.to_str().unwrap()])
        .await;
    assert!(!run.ok, "{run}");

    // delete, then it is gone.
    let out = server
        .kubectl_ok(binary, &["delete", "ksvc", "hello"])
        .await;
    assert!(
        out.contains("service.serving.knative.dev \"hello\" deleted"),
        "{out}"
    );
    let run = server.kubectl(binary, &["get", "ksvc", "hello"]).await;
    assert!(!run.ok, "{run}");
    assert!(
        run.stderr
            .contains("services.serving.knative.dev \"hello\" not found"),
        "{run}"
    );

    // Without the right token: 401.
    let run = server
        .kubectl(binary, &["--token", "wrong", "get", "ksvc"])
        .await;
    assert!(!run.ok, "{run}");
    assert!(run.stderr.contains("Unauthorized"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33_through_the_dispatcher() {
    scenario(&kubectl_binary(None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_28() {
    scenario(&kubectl_binary(Some("1.28"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27() {
    scenario(&kubectl_binary(Some("1.27"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_streams_changes() {
    let server = Server::start().await;
    let binary = kubectl_binary(None);
    let hello = server.manifest("hello.yaml", HELLO_V1);
    server
        .kubectl_ok(&binary, &["apply", "-f", hello.to_str().unwrap()])
        .await;
    let mut child = server
        .kubectl_command(&binary)
        .args(["get", "ksvc", "hello", "-w", "-o", "name"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("initial line")
        .unwrap();
    assert_eq!(first.as_deref(), Some("service.serving.knative.dev/hello"));
    server
        .kubectl_ok(&binary, &["label", "ksvc", "hello", "changed=yes"])
        .await;
    let second = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("a line for the change")
        .unwrap();
    assert_eq!(second.as_deref(), Some("service.serving.knative.dev/hello"));
    child.kill().await.unwrap();
}

/// `kubectl apply --server-side` by two field managers: a conflict names the field
/// and the manager, `--force-conflicts` takes the field over, and managedFields
/// say who owns what.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_server_side_apply_conflicts_and_force() {
    let server = Server::start().await;
    let binary = kubectl_binary(None);
    let labeled = HELLO_V1.replace("name: hello", "name: hello\n  labels:\n    tier: web");
    let first = server.manifest("first.yaml", &labeled);
    let second = server.manifest(
        "second.yaml",
        &labeled.replace("value: world", "value: okonomi"),
    );
    let apply = async |file: &Path, extra: &[&str]| {
        let mut args = vec!["apply", "--server-side", "-f", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        server.kubectl(&binary, &args).await
    };

    let run = apply(&first, &[]).await;
    assert!(run.ok && run.stdout.contains("serverside-applied"), "{run}");
    let run = apply(&second, &["--field-manager=deployer"]).await;
    assert!(
        !run.ok,
        "a changed field another manager owns must conflict: {run}"
    );
    assert!(
        run.stderr.contains(
            "Apply failed with 1 conflict: conflict with \"kubectl\": .spec.template.spec.containers"
        ),
        "{run}"
    );
    assert!(run.stderr.contains("--force-conflicts"), "{run}");

    let run = apply(&second, &["--field-manager=deployer", "--force-conflicts"]).await;
    assert!(run.ok && run.stdout.contains("serverside-applied"), "{run}");
    let stored = server
        .store
        .get(&ResourceType::knative_service(), "default", "hello")
        .unwrap();
    assert_eq!(
        stored["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "okonomi"
    );
    let fields_of = |manager: &str| {
        stored["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == "Apply")
            .map(|e| e["fieldsV1"].clone())
            .unwrap_or_default()
    };
    let containers = serde_json::json!({"f:template": {"f:spec": {"f:containers": {}}}});
    assert_eq!(fields_of("deployer")["f:spec"], containers);
    assert!(fields_of("kubectl").get("f:spec").is_none(), "{stored:#}");
    // Both apply the label with the same value: shared, so it survives kubectl
    // dropping it from its configuration.
    assert_eq!(
        fields_of("kubectl")["f:metadata"]["f:labels"]["f:tier"],
        serde_json::json!({})
    );
    let unlabeled = server.manifest("unlabeled.yaml", HELLO_V1);
    let run = apply(&unlabeled, &["--force-conflicts"]).await;
    assert!(run.ok, "{run}");
    let out = server
        .kubectl_ok(
            &binary,
            &[
                "get",
                "ksvc",
                "hello",
                "-o",
                "jsonpath={.metadata.labels.tier}",
            ],
        )
        .await;
    assert_eq!(out, "web");
}

/// `kubectl get --chunk-size=2` pages through with `limit` and `continue`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_pages_in_chunks() {
    let server = Server::start().await;
    let binary = kubectl_binary(None);
    let names = ["a", "b", "c", "d", "e"];
    for name in names {
        let file = server.manifest(
            &format!("{name}.yaml"),
            &HELLO_V1.replace("name: hello", &format!("name: {name}")),
        );
        server
            .kubectl_ok(&binary, &["apply", "-f", file.to_str().unwrap()])
            .await;
    }
    for output in [&[][..], &["-o", "name"][..]] {
        let mut args = vec!["get", "ksvc", "--chunk-size=2", "-v=6"];
        args.extend_from_slice(output);
        let run = server.kubectl(&binary, &args).await;
        assert!(run.ok, "{run}");
        for name in names {
            assert!(
                run.stdout.lines().any(|l| l.contains(name)),
                "{name} missing: {run}"
            );
        }
        // Three pages: the first, then two with a continue token.
        let continued = run
            .stderr
            .lines()
            .filter(|l| l.contains("limit=2") && l.contains("continue="))
            .count();
        assert_eq!(continued, 2, "{run}");
    }
}

/// `kubectl delete` of an object with a finalizer waits while it is marked for
/// deletion, and finishes once a patch removes the finalizer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_waits_for_finalizers() {
    let server = Server::start().await;
    let binary = kubectl_binary(None);
    let held = server.manifest(
        "held.yaml",
        &HELLO_V1.replace(
            "name: hello",
            "name: hello\n  finalizers:\n    - example.com/hold",
        ),
    );
    server
        .kubectl_ok(&binary, &["apply", "-f", held.to_str().unwrap()])
        .await;
    let deleting = {
        let mut cmd = server.kubectl_command(&binary);
        cmd.args(["delete", "ksvc", "hello", "--timeout=90s"]);
        tokio::spawn(async move { cmd.output().await })
    };
    let deletion_timestamp = async || {
        server
            .kubectl_ok(
                &binary,
                &[
                    "get",
                    "ksvc",
                    "hello",
                    "-o",
                    "jsonpath={.metadata.deletionTimestamp}",
                ],
            )
            .await
    };
    let marked = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let stamp = deletion_timestamp().await;
            if !stamp.is_empty() {
                break stamp;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("the delete marks the object");
    assert!(marked.ends_with('Z'), "{marked}");
    assert!(
        !deleting.is_finished(),
        "kubectl delete must wait for the finalizer"
    );

    let out = server
        .kubectl_ok(
            &binary,
            &[
                "patch",
                "ksvc",
                "hello",
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ],
        )
        .await;
    assert!(out.contains("patched"), "{out}");
    let deleted = Run::from(
        tokio::time::timeout(Duration::from_secs(90), deleting)
            .await
            .expect("kubectl delete ends")
            .unwrap()
            .unwrap(),
    );
    assert!(deleted.ok, "{deleted}");
    assert!(deleted.stdout.contains("\"hello\" deleted"), "{deleted}");
    let run = server.kubectl(&binary, &["get", "ksvc", "hello"]).await;
    assert!(!run.ok && run.stderr.contains("not found"), "{run}");
}
