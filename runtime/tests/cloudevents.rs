//! CloudEvents handlers through the public API, without sockets.

#![allow(clippy::unwrap_used)]

use http_body_util::BodyExt;
use okonomi::cloudevents::{
    self, AttributesReader, Event, EventBuilder, EventBuilderV10, EventError, Reply, TypedEvent,
};
use okonomi::serde::{Deserialize, Serialize};
use okonomi::{Body, Request};
use tower::ServiceExt;

async fn call(service: cloudevents::EventService, req: Request) -> (u16, http::HeaderMap, Vec<u8>) {
    let response = service.oneshot(req).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status.as_u16(),
        parts.headers,
        body.collect().await.unwrap().to_bytes().to_vec(),
    )
}

fn echo() -> cloudevents::EventService {
    cloudevents::handler(|event: Event| async move {
        let mut reply = EventBuilderV10::new()
            .id("r-1")
            .ty("reply.type")
            .source("/reply")
            .build()
            .unwrap();
        if let (Some(ct), Some(data)) = (event.datacontenttype(), event.data()) {
            reply.set_data(ct.to_string(), data.clone());
        }
        Ok(Some(reply))
    })
}

fn binary(body: &str) -> http::request::Builder {
    http::Request::post("/")
        .header("ce-specversion", "1.0")
        .header("ce-id", "1")
        .header("ce-type", "t")
        .header("ce-source", "/s")
        .header("content-type", "application/json")
        .header("content-length", body.len())
}

#[tokio::test]
async fn binary_in_binary_out() {
    let body = r#"{"a":1}"#;
    let (status, headers, reply) = call(echo(), binary(body).body(Body::from(body)).unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["ce-id"], "r-1");
    assert_eq!(headers["ce-type"], "reply.type");
    assert_eq!(headers["ce-specversion"], "1.0");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(reply, body.as_bytes());
}

#[tokio::test]
async fn structured_in_structured_out() {
    let body = r#"{"specversion":"1.0","id":"1","type":"t","source":"/s","datacontenttype":"application/json","data":{"a":1}}"#;
    let req = http::Request::post("/")
        .header(
            "content-type",
            "application/cloudevents+json; charset=utf-8",
        )
        .body(Body::from(body))
        .unwrap();
    let (status, headers, reply) = call(echo(), req).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/cloudevents+json");
    assert!(headers.get("ce-id").is_none());
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["id"], "r-1");
    assert_eq!(reply["data"], serde_json::json!({"a": 1}));
}

#[tokio::test]
async fn batches_get_415_with_a_message() {
    let req = http::Request::post("/")
        .header("content-type", "application/cloudevents-batch+json")
        .body(Body::from("[]"))
        .unwrap();
    let (status, _, body) = call(echo(), req).await;
    assert_eq!(status, 415);
    assert!(String::from_utf8_lossy(&body).contains("each event in its own request"));
}

#[tokio::test]
async fn malformed_events_get_400_naming_the_problem() {
    let cases: Vec<(Request, &str)> = vec![
        (
            http::Request::post("/").body(Body::from("hi")).unwrap(),
            "not a CloudEvent",
        ),
        (
            http::Request::post("/")
                .header("content-type", "application/cloudevents+json")
                .body(Body::from("{not json"))
                .unwrap(),
            "malformed CloudEvent (structured mode)",
        ),
        (
            http::Request::post("/")
                .header("content-type", "application/cloudevents+json")
                .body(Body::from(
                    r#"{"specversion":"1.0","type":"t","source":"/s"}"#,
                ))
                .unwrap(),
            "id",
        ),
        (
            http::Request::post("/")
                .header("ce-specversion", "9.9")
                .header("ce-id", "1")
                .header("ce-type", "t")
                .header("ce-source", "/s")
                .body(Body::from("x"))
                .unwrap(),
            "9.9",
        ),
        (
            http::Request::post("/")
                .header("ce-specversion", "1.0")
                .header("ce-id", "1")
                .header("ce-source", "/s")
                .body(Body::from("x"))
                .unwrap(),
            "type",
        ),
    ];
    for (req, expected) in cases {
        let (status, _, body) = call(echo(), req).await;
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 400, "{body}");
        assert!(
            body.contains(expected),
            "{body:?} should mention {expected:?}"
        );
    }
}

#[tokio::test]
async fn only_post_is_accepted() {
    let (status, headers, _) =
        call(echo(), http::Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "POST");
}

#[derive(Deserialize)]
#[serde(crate = "okonomi::serde")]
struct Order {
    id: u64,
}

#[derive(Serialize)]
#[serde(crate = "okonomi::serde")]
struct Receipt {
    order: u64,
    from: String,
}

fn shop() -> cloudevents::EventService {
    cloudevents::typed(|event: TypedEvent<Order>| async move {
        if event.data.id == 0 {
            return Err(EventError::new(
                http::StatusCode::UNPROCESSABLE_ENTITY,
                "order 0 does not exist",
            ));
        }
        if event.data.id == 7 {
            return Ok(None);
        }
        let from = event.event.source().to_string();
        Ok(Some(Reply::new(
            "com.example.receipt",
            "/shop",
            Receipt {
                order: event.data.id,
                from,
            },
        )))
    })
}

#[tokio::test]
async fn typed_handlers_take_and_return_serde_types() {
    let body = r#"{"id":42}"#;
    let (status, headers, reply) = call(shop(), binary(body).body(Body::from(body)).unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["ce-type"], "com.example.receipt");
    assert_eq!(headers["ce-source"], "/shop");
    assert!(!headers["ce-id"].is_empty());
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply, serde_json::json!({"order": 42, "from": "/s"}));

    let body = r#"{"id":7}"#;
    let (status, _, reply) = call(shop(), binary(body).body(Body::from(body)).unwrap()).await;
    assert_eq!((status, reply.len()), (202, 0));

    let body = r#"{"id":0}"#;
    let (status, _, reply) = call(shop(), binary(body).body(Body::from(body)).unwrap()).await;
    assert_eq!(status, 422);
    assert_eq!(String::from_utf8_lossy(&reply), "order 0 does not exist\n");

    let body = r#"{"name":"no id"}"#;
    let (status, _, reply) = call(shop(), binary(body).body(Body::from(body)).unwrap()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&reply).contains("missing field `id`"));
}
