//! okonomi-knative's admission (Knative's defaulting and validation) plugged into
//! the store through the [`Admission`] trait, driven by kubectl: defaults appear,
//! no-op writes stay no-ops, and rejections name the field.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;

use std::sync::Arc;

use harness::{Run, Server, kubectl_binary};
use okonomi_apiserver::{Admission, AdmissionRequest, Operation, ResourceType, StatusCause};
use okonomi_knative::ValidationConfig;
use okonomi_knative::admission::{KnativeKind, Write, admit};
use serde_json::Value;

/// The adapter the engine needs: Knative rules for Knative kinds, nothing else.
struct Knative(ValidationConfig);

impl Admission for Knative {
    fn admit(
        &self,
        request: &AdmissionRequest<'_>,
        object: &mut Value,
    ) -> Result<(), okonomi_apiserver::Denial> {
        let Some(kind) = (request.resource.group == "serving.knative.dev")
            .then(|| KnativeKind::parse(&request.resource.kind))
            .flatten()
        else {
            return Ok(());
        };
        let write = match request.operation {
            Operation::Create => Write::Create,
            Operation::Update => Write::Update,
            Operation::UpdateStatus => Write::UpdateStatus,
        };
        admit(kind, write, request.old, object, &self.0).map_err(|errors| {
            errors
                .iter()
                .map(|e| StatusCause {
                    reason: e.cause.as_str().to_string(),
                    message: e.message.clone(),
                    field: e.field.clone(),
                })
                .collect::<Vec<_>>()
                .into()
        })
    }
}

async fn kubectl(server: &Server, args: &[&str]) -> Run {
    server.kubectl(&kubectl_binary(None), args).await
}

const SERVICE: &str = "apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: registry.example/hello@sha256:1111111111111111111111111111111111111111111111111111111111111111
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_with_knative_admission() {
    let server = Server::start_with(
        tempfile::tempdir().unwrap(),
        Some(Arc::new(Knative(ValidationConfig::default()))),
    )
    .await;
    let manifest = server.manifest("hello.yaml", SERVICE);
    let manifest = manifest.to_str().unwrap();
    let run = kubectl(&server, &["apply", "-f", manifest]).await;
    assert!(run.ok, "{run}");
    let stored = server
        .store
        .get(&ResourceType::knative_service(), "default", "hello")
        .unwrap();
    // Knative's defaults were applied on the way in.
    let template = &stored["spec"]["template"]["spec"];
    assert!(template["timeoutSeconds"].is_number(), "{stored:#}");
    assert!(template["containers"][0]["name"].is_string(), "{stored:#}");

    // Re-applying the same file changes nothing, yet kubectl says "configured", as
    // it does against real Knative: a custom resource gets a JSON merge patch, which
    // replaces lists whole; kubectl's three-way diff finds the live containers list
    // (with the webhook's defaults: name, readinessProbe, resources) unlike the
    // file's, and sends the file's list again. Admission defaults it back to the
    // same object, so the write is a no-op (same resourceVersion).
    let writes_before = server.writes.lock().unwrap().len();
    let run = kubectl(&server, &["apply", "-f", manifest]).await;
    assert!(run.ok, "{run}");
    assert!(
        run.stdout
            .contains("service.serving.knative.dev/hello configured"),
        "{run}"
    );
    let sent: Vec<_> = server.writes.lock().unwrap()[writes_before..].to_vec();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].method, "PATCH");
    assert_eq!(sent[0].content_type, "application/merge-patch+json");
    let file: Value = serde_saphyr::from_str(SERVICE).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&sent[0].body).unwrap(),
        serde_json::json!({"spec": {"template": {"spec": {
            "containers": file["spec"]["template"]["spec"]["containers"]}}}})
    );
    let run = kubectl(
        &server,
        &["patch", "ksvc", "hello", "--type=merge", "-p", "{}"],
    )
    .await;
    assert!(run.ok && run.stdout.contains("(no change)"), "{run}");
    let after = server
        .store
        .get(&ResourceType::knative_service(), "default", "hello")
        .unwrap();
    assert_eq!(
        after["metadata"]["resourceVersion"],
        stored["metadata"]["resourceVersion"]
    );

    // A typo is not silently dropped: kubectl's default fieldValidation=Strict
    // makes it an error naming the field, as on a real cluster.
    let typo = server.manifest(
        "typo.yaml",
        &SERVICE.replace("- image:", "- imagee: x\n          image:"),
    );
    let run = kubectl(&server, &["apply", "-f", typo.to_str().unwrap()]).await;
    assert!(!run.ok, "{run}");
    assert!(
        run.stderr
            .contains("unknown field \"spec.template.spec.containers[0].imagee\""),
        "{run}"
    );
    // With --validate=false (fieldValidation=Ignore) it is dropped, as Knative does.
    let run = kubectl(
        &server,
        &["apply", "--validate=false", "-f", typo.to_str().unwrap()],
    )
    .await;
    assert!(run.ok, "{run}");
    // With --validate=warn the write goes through and kubectl prints a warning.
    let warned = server.manifest(
        "warned.yaml",
        &SERVICE
            .replace("name: hello", "name: warned")
            .replace("- image:", "- imagee: x\n          image:"),
    );
    let run = kubectl(
        &server,
        &["apply", "--validate=warn", "-f", warned.to_str().unwrap()],
    )
    .await;
    assert!(run.ok, "{run}");
    assert!(run.stderr.contains("unknown field"), "{run}");

    // Out-of-range values: Invalid, naming the field.
    let bad = server.manifest(
        "bad.yaml",
        &SERVICE.replace(
            "      containers:",
            "      containerConcurrency: 5000\n      containers:",
        ),
    );
    let run = kubectl(&server, &["apply", "-f", bad.to_str().unwrap()]).await;
    assert!(!run.ok, "{run}");
    assert!(run.stderr.contains("is invalid"), "{run}");
    assert!(run.stderr.contains("containerConcurrency"), "{run}");
}
