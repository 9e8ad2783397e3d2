//! Request-level checks of the API over HTTPS (through kube's client, which
//! handles TLS and the token): discovery negotiation, tables, OpenAPI, watch
//! timeouts, dry runs and the error statuses.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use futures::StreamExt;
use harness::Server;
use http_body_util::BodyExt;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

struct Answer {
    code: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn send(
    client: &Client,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder
        .body(Body::from(body.unwrap_or("").as_bytes().to_vec()))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(30), client.send(request))
        .await
        .expect("answer within 30s")
        .unwrap();
    let code = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = tokio::time::timeout(Duration::from_secs(30), response.into_body().collect())
        .await
        .expect("body within 30s")
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        code,
        content_type,
        body,
    }
}

const V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
const V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_negotiation() {
    let server = Server::start().await;
    let client = server.client().await;

    let version = send(&client, "GET", "/version", &[], None).await.json();
    assert_eq!(version["major"], "1");
    assert_eq!(version["minor"], "33");

    let v2 = send(&client, "GET", "/apis", &[("Accept", V2)], None).await;
    assert_eq!(
        v2.content_type,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let doc = v2.json();
    assert_eq!(doc["apiVersion"], "apidiscovery.k8s.io/v2");
    let serving = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "serving.knative.dev")
        .unwrap();
    let resources = serving["versions"][0]["resources"].as_array().unwrap();
    let ksvc = resources
        .iter()
        .find(|r| r["resource"] == "services")
        .unwrap();
    assert_eq!(ksvc["shortNames"], json!(["kservice", "ksvc"]));
    assert_eq!(ksvc["categories"], json!(["all", "knative", "serving"]));
    assert_eq!(ksvc["verbs"].as_array().unwrap().len(), 8);
    assert_eq!(ksvc["subresources"][0]["subresource"], "status");

    // A client that only knows v2beta1 never gets v2.
    let beta = send(&client, "GET", "/apis", &[("Accept", V2BETA1)], None).await;
    assert!(
        beta.content_type.contains("v=v2beta1"),
        "{}",
        beta.content_type
    );
    assert_eq!(beta.json()["apiVersion"], "apidiscovery.k8s.io/v2beta1");

    let legacy = send(
        &client,
        "GET",
        "/apis",
        &[("Accept", "application/json")],
        None,
    )
    .await;
    assert_eq!(legacy.content_type, "application/json");
    assert_eq!(legacy.json()["kind"], "APIGroupList");
    let list = send(&client, "GET", "/apis/serving.knative.dev/v1", &[], None)
        .await
        .json();
    assert_eq!(list["kind"], "APIResourceList");
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for name in [
        "services",
        "services/status",
        "configurations",
        "revisions",
        "routes/status",
    ] {
        assert!(names.contains(&name), "{names:?}");
    }
    let core = send(&client, "GET", "/api/v1", &[], None).await.json();
    assert_eq!(core["resources"][0]["name"], "namespaces");
    assert_eq!(
        send(&client, "GET", "/apis/nope.example/v1", &[], None)
            .await
            .code,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents() {
    let server = Server::start().await;
    let client = server.client().await;
    let root = send(&client, "GET", "/openapi/v3", &[], None).await.json();
    let url = root["paths"]["apis/serving.knative.dev/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let group = send(&client, "GET", &url, &[], None).await.json();
    let patch = &group["paths"]["/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}"]
        ["patch"];
    assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Service");
    assert!(
        patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
    );
    assert!(
        patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_none()
    );
    let v2 = send(&client, "GET", "/openapi/v2", &[], None).await;
    assert_eq!(v2.code, 200);
    assert!(v2.content_type.contains("protobuf"));
    // The protobuf names the path, the parameter and the GVK extension.
    let text = String::from_utf8_lossy(&v2.body);
    assert!(text.contains("/apis/serving.knative.dev/v1/namespaces/{namespace}/services/{name}"));
    assert!(text.contains("fieldValidation"));
    assert!(text.contains("x-kubernetes-group-version-kind"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_errors_dry_run_and_watch_timeout() {
    let server = Server::start().await;
    let client = server.client().await;
    let base = "/apis/serving.knative.dev/v1/namespaces/default/services";
    let json_ct = ("Content-Type", "application/json");
    let svc = r#"{"apiVersion":"serving.knative.dev/v1","kind":"Service","metadata":{"name":"hello"},"spec":{"template":{"spec":{"containers":[{"image":"i"}]}}}}"#;

    // dryRun=All: 201 with the object, nothing stored.
    let dry = send(
        &client,
        "POST",
        &format!("{base}?dryRun=All&fieldValidation=Strict"),
        &[json_ct],
        Some(svc),
    )
    .await;
    assert_eq!(dry.code, 201);
    assert_eq!(dry.json()["metadata"]["name"], "hello");
    assert_eq!(
        send(&client, "GET", &format!("{base}/hello"), &[], None)
            .await
            .code,
        404
    );

    let created = send(&client, "POST", base, &[json_ct], Some(svc)).await;
    assert_eq!(created.code, 201);
    server
        .store
        .patch_status(
            &okonomi_apiserver::ResourceType::knative_service(),
            "default",
            "hello",
            &okonomi_apiserver::Patch::Merge(json!({"status": {
                "url": "http://hello.default.localhost",
                "latestCreatedRevisionName": "hello-00001",
                "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionFailed"}]}})),
        )
        .await
        .unwrap();

    // Table: NAME then Knative's columns; cells from the object; row objects.
    let table = send(
        &client,
        "GET",
        &format!("{base}?limit=500"),
        &[("Accept", TABLE)],
        None,
    )
    .await
    .json();
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "Name",
            "URL",
            "LatestCreated",
            "LatestReady",
            "Ready",
            "Reason"
        ]
    );
    assert_eq!(
        table["rows"][0]["cells"],
        json!([
            "hello",
            "http://hello.default.localhost",
            "hello-00001",
            null,
            "False",
            "RevisionFailed"
        ])
    );
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(
        table["rows"][0]["object"]["metadata"]["namespace"],
        "default"
    );

    // Errors as Status.
    let strategic = send(
        &client,
        "PATCH",
        &format!("{base}/hello"),
        &[("Content-Type", "application/strategic-merge-patch+json")],
        Some("{}"),
    )
    .await;
    assert_eq!(strategic.code, 415);
    assert_eq!(strategic.json()["reason"], "UnsupportedMediaType");
    let not_allowed = send(
        &client,
        "POST",
        &format!("{base}/hello"),
        &[json_ct],
        Some(svc),
    )
    .await;
    assert_eq!(not_allowed.code, 405);
    assert_eq!(not_allowed.json()["reason"], "MethodNotAllowed");
    let bad_selector = send(
        &client,
        "GET",
        &format!("{base}?labelSelector=a%20in"),
        &[],
        None,
    )
    .await;
    assert_eq!(bad_selector.code, 400);
    assert_eq!(bad_selector.json()["kind"], "Status");
    let bad_field = send(
        &client,
        "GET",
        &format!("{base}?fieldSelector=spec.x%3Dy"),
        &[],
        None,
    )
    .await;
    assert_eq!(bad_field.code, 400);
    let garbage = send(&client, "POST", base, &[json_ct], Some("{not json")).await;
    assert_eq!(garbage.code, 400);
    let wrong_ns = send(
        &client,
        "POST",
        base,
        &[json_ct],
        Some(&svc.replace(r#""name":"hello""#, r#""name":"x","namespace":"other""#)),
    )
    .await;
    assert_eq!(wrong_ns.code, 400);
    let unauthenticated = {
        let request = http::Request::builder()
            .uri(format!("{}{base}", server.url))
            .body(Body::empty())
            .unwrap();
        // A client without the token: same TLS trust, no Authorization header.
        let anonymous = server.client_with_token(None).await;
        anonymous.send(request).await.unwrap()
    };
    assert_eq!(unauthenticated.status().as_u16(), 401);

    // A watch with timeoutSeconds ends by itself.
    let watch = http::Request::builder()
        .uri(format!(
            "{base}?watch=true&timeoutSeconds=1&resourceVersion=0"
        ))
        .body(Vec::new())
        .unwrap();
    let mut events = client.request_events::<Value>(watch).await.unwrap().boxed();
    let first = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first, kube::api::WatchEvent::Added(_)));
    let end = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("the watch ends after timeoutSeconds");
    assert!(end.is_none());

    // A watch under the Table Accept carries one-row Tables.
    let watch = http::Request::builder()
        .uri(format!(
            "{base}?watch=true&timeoutSeconds=1&resourceVersion=0"
        ))
        .header("Accept", TABLE)
        .body(Vec::new())
        .unwrap();
    let mut events = client.request_events::<Value>(watch).await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        kube::api::WatchEvent::Added(table) => {
            assert_eq!(table["kind"], "Table");
            assert_eq!(table["rows"][0]["cells"][0], "hello");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_with_limit_and_continue() {
    let server = Server::start().await;
    let client = server.client().await;
    let base = "/apis/serving.knative.dev/v1/namespaces/default/services";
    for name in ["a", "b", "c"] {
        let svc = json!({"metadata": {"name": name},
                         "spec": {"template": {"spec": {"containers": [{"image": "i"}]}}}});
        let created = send(
            &client,
            "POST",
            base,
            &[("Content-Type", "application/json")],
            Some(&svc.to_string()),
        )
        .await;
        assert_eq!(created.code, 201);
    }
    let first = send(&client, "GET", &format!("{base}?limit=2"), &[], None)
        .await
        .json();
    assert_eq!(first["kind"], "ServiceList");
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["metadata"]["remainingItemCount"], 1);
    let token = first["metadata"]["continue"].as_str().unwrap();
    // The Table form pages the same way.
    let second = send(
        &client,
        "GET",
        &format!("{base}?limit=2&continue={token}"),
        &[("Accept", TABLE)],
        None,
    )
    .await
    .json();
    assert_eq!(second["kind"], "Table");
    assert_eq!(second["rows"][0]["cells"][0], "c");
    assert_eq!(
        second["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    assert!(second["metadata"].get("continue").is_none(), "{second}");

    let garbage = send(
        &client,
        "GET",
        &format!("{base}?limit=2&continue=x"),
        &[],
        None,
    )
    .await;
    assert_eq!(garbage.code, 400);
    let bad_limit = send(&client, "GET", &format!("{base}?limit=many"), &[], None).await;
    assert_eq!(bad_limit.code, 400);

    // A write, then a restart: the token's version is compacted away, 410 Expired.
    server
        .store
        .delete(
            &okonomi_apiserver::ResourceType::knative_service(),
            "default",
            "a",
        )
        .await
        .unwrap();
    let server = Server::start_in(server.stop().await).await;
    let client = server.client().await;
    let expired = send(
        &client,
        "GET",
        &format!("{base}?limit=2&continue={token}"),
        &[],
        None,
    )
    .await;
    assert_eq!(expired.code, 410);
    let status = expired.json();
    assert_eq!(status["reason"], "Expired");
    assert!(
        status["message"].as_str().unwrap().contains("continue"),
        "{status}"
    );
}

/// Plain HTTP to the HTTPS port gets what kube-apiserver (Go's TLS server)
/// answers: a 400 a person can read, not a TLS alert.
#[tokio::test]
async fn plain_http_to_the_api_port_is_told_to_use_https() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start().await;
    let address = server
        .url
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
    tcp.write_all(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_string(&mut answer))
        .await
        .expect("an answer within 30s")
        .unwrap();
    assert_eq!(
        answer,
        "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
    );
}

/// `dryRun` takes only `All`, as Kubernetes: `dryRun=true` is refused
/// rather than written for real.
#[tokio::test]
async fn dry_run_takes_only_all() {
    let server = Server::start().await;
    let client = server.client().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let json_ct = ("content-type", "application/json");
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"trial"}}"#;
    for value in ["true", "Maybe"] {
        let refused = send(
            &client,
            "POST",
            &format!("{base}?dryRun={value}"),
            &[json_ct],
            Some(cm),
        )
        .await;
        assert_eq!(
            refused.code,
            422,
            "{}",
            String::from_utf8_lossy(&refused.body)
        );
        let message = refused.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains(&format!(
                r#"dryRun: Unsupported value: []string{{"{value}"}}: supported values: "All""#
            )),
            "{message}"
        );
    }
    let trial = send(
        &client,
        "POST",
        &format!("{base}?dryRun=All"),
        &[json_ct],
        Some(cm),
    )
    .await;
    assert_eq!(trial.code, 201);
    let missing = send(&client, "GET", &format!("{base}/trial"), &[], None).await;
    assert_eq!(missing.code, 404, "nothing was written");
    let refused = send(
        &client,
        "DELETE",
        &format!("{base}/trial?dryRun=yes"),
        &[],
        None,
    )
    .await;
    assert_eq!(refused.code, 422);
}

/// Enum options outside their values are refused as Kubernetes refuses
/// them, not ignored.
#[tokio::test]
async fn enum_options_are_checked() {
    let server = Server::start().await;
    let client = server.client().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let json_ct = ("content-type", "application/json");
    let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kept"}}"#;
    assert_eq!(
        send(&client, "POST", base, &[json_ct], Some(cm)).await.code,
        201
    );
    let listed = send(
        &client,
        "GET",
        &format!("{base}?resourceVersionMatch=Garbage"),
        &[],
        None,
    )
    .await;
    assert_eq!(listed.code, 422);
    assert!(
        listed.json()["message"]
            .as_str()
            .unwrap()
            .contains(r#"resourceVersionMatch: Unsupported value: "Garbage": supported values: "Exact", "NotOlderThan""#),
        "{}",
        listed.json()
    );
    let sideways = send(
        &client,
        "DELETE",
        &format!("{base}/kept?propagationPolicy=Sideways"),
        &[],
        None,
    )
    .await;
    assert_eq!(sideways.code, 422, "{}", sideways.json());
    let in_body = send(
        &client,
        "DELETE",
        &format!("{base}/kept"),
        &[json_ct],
        Some(r#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Sideways"}"#),
    )
    .await;
    assert_eq!(in_body.code, 422, "{}", in_body.json());
    assert_eq!(
        send(&client, "GET", &format!("{base}/kept"), &[], None)
            .await
            .code,
        200,
        "not deleted"
    );
    let background = send(
        &client,
        "DELETE",
        &format!("{base}/kept?propagationPolicy=Background"),
        &[],
        None,
    )
    .await;
    assert_eq!(background.code, 200);
}

/// A watch from a resourceVersion the server has not reached is answered
/// as Kubernetes answers it (504 Timeout, ResourceVersionTooLarge), not
/// left hanging. Through the real kubectl: kube-rs retries a 504 by itself.
#[tokio::test]
async fn a_watch_from_the_future_is_too_large() {
    let server = Server::start().await;
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        server
            .kubectl_command(&harness::kubectl_binary(Some("1.33")))
            .args([
                "get",
                "--raw",
                "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=999999999999",
            ])
            .output(),
    )
    .await
    .expect("kubectl answers within 60s")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("(Timeout)")
            && stderr.contains("Too large resource version: 999999999999, current: "),
        "{stderr}"
    );
}
