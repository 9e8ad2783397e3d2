//! OTLP export: with OTEL_EXPORTER_OTLP_ENDPOINT set, request spans reach a
//! collector (here a loopback HTTP receiver) with the caller's trace id, the
//! caller's span as parent, and the Knative names on the resource.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use okonomi::axum::Router;
use okonomi::axum::body::Bytes;
use okonomi::axum::extract::State;
use okonomi::axum::routing::post;
use okonomi::testing::{FunctionProcess, get, send};
use tokio::process::Command;
use tokio::sync::mpsc;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn spans_are_exported_with_the_callers_trace_and_the_revision() {
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let collector = Router::new()
        .route(
            "/v1/traces",
            post(
                |State(tx): State<mpsc::Sender<Bytes>>, body: Bytes| async move {
                    let _ = tx.send(body).await;
                    ""
                },
            ),
        )
        .with_state(tx);
    let server =
        okonomi::Server::new(okonomi::Config::default().listen(["127.0.0.1:0".parse().unwrap()]))
            .bind()
            .await
            .unwrap();
    let collector_addr = server.local_addrs()[0];
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let collector_task = tokio::spawn(server.serve_until(collector, async move {
        let _ = stop_rx.await;
    }));

    let mut command = Command::new(env!("CARGO_BIN_EXE_okonomi-testfn"));
    command
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{collector_addr}"),
        )
        .env("K_SERVICE", "otel-fn")
        .env("K_CONFIGURATION", "otel-fn-config")
        .env("K_REVISION", "otel-fn-00003");
    let mut function = FunctionProcess::start(command).await.unwrap();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    let mut req = get("/log");
    req.headers_mut().insert(
        "traceparent",
        format!("00-{trace}-{parent}-01").parse().unwrap(),
    );
    assert_eq!(send(function.addr(), req).await.unwrap().0.as_u16(), 200);
    // Exit flushes the batch.
    function.terminate();
    assert_eq!(function.wait().await.unwrap().code(), Some(0));

    let mut exported = Vec::new();
    while !contains(&exported, &hex(trace)) {
        let batch = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .unwrap()
            .unwrap();
        exported.extend_from_slice(&batch);
    }
    assert!(
        contains(&exported, &hex(parent)),
        "the span's parent is the caller's span"
    );
    for name in ["otel-fn", "otel-fn-config", "otel-fn-00003", "request"] {
        assert!(
            contains(&exported, name.as_bytes()),
            "{name} missing from the export"
        );
    }
    let _ = stop_tx.send(());
    collector_task.await.unwrap().unwrap();
}
