//! CloudEvents functions on `cloudevents-sdk`: events arrive in binary or
//! structured mode over HTTP, the reply goes back in the mode the request used.
//!
//! - [`handler`]: `async fn(Event) -> Result<Option<Event>, EventError>`.
//! - [`typed`]: `async fn(TypedEvent<T>) -> Result<Option<Reply<U>>, EventError>`
//!   with `T: Deserialize` read from the event's data and `U: Serialize` sent as
//!   the reply's JSON data.
//!
//! Answers: the reply event with 200, or 202 with no body when the handler
//! returns `None`; 400 naming what is wrong for a malformed event; 415 for a batch
//! (`application/cloudevents-batch+json`), which is not supported: send events one
//! by one; 405 for anything but POST; an [`EventError`] as its status and message.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::cloudevents::binding::http::{Builder as HttpBuilder, Serializer as HttpSerializer};
use ::cloudevents::message::BinaryDeserializer;
use http::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use ::cloudevents::{
    AttributesReader, AttributesWriter, Data, Event, EventBuilder, EventBuilderV10,
};

use crate::layers::text_response;
use crate::{Request, Response};

/// How an event travelled over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Attributes in `ce-*` headers, data as the body.
    Binary,
    /// The whole event as `application/cloudevents+json`.
    Structured,
}

/// A handler's refusal: an HTTP status and a message for the sender.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct EventError {
    status: StatusCode,
    message: String,
}

impl EventError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 400: the event was wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 500: the function failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message for the sender.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn into_response(self) -> Response {
        text_response(self.status, self.message)
    }
}

fn content_type(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
}

/// Reads an event from request headers and body, and tells which mode it used.
pub fn parse(headers: &http::HeaderMap, body: Vec<u8>) -> Result<(Event, Mode), EventError> {
    let content_type = content_type(headers);
    let ct = content_type.as_deref().unwrap_or("");
    if ct.starts_with("application/cloudevents-batch+json") {
        return Err(EventError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "batched CloudEvents (application/cloudevents-batch+json) are not supported; send each event in its own request",
        ));
    }
    let mode = if ct.starts_with("application/cloudevents+json") {
        Mode::Structured
    } else if headers.contains_key("ce-specversion") {
        Mode::Binary
    } else if ct.starts_with("application/cloudevents") {
        return Err(EventError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("structured CloudEvents must be application/cloudevents+json, not {ct:?}"),
        ));
    } else {
        return Err(EventError::bad_request(
            "not a CloudEvent: expected binary mode (a ce-specversion header with ce-id, ce-source, ce-type) or structured mode (Content-Type: application/cloudevents+json)",
        ));
    };
    let mut headers = headers.clone();
    if mode == Mode::Structured {
        // The SDK matches the media type case-sensitively.
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/cloudevents+json"),
        );
    }
    let event = ::cloudevents::binding::http::to_event(&headers, body).map_err(|e| {
        EventError::bad_request(format!(
            "malformed CloudEvent ({} mode): {e}",
            if mode == Mode::Binary {
                "binary"
            } else {
                "structured"
            }
        ))
    })?;
    Ok((event, mode))
}

struct ResponseBuilder {
    builder: Option<http::response::Builder>,
}

impl HttpBuilder<Response> for ResponseBuilder {
    fn header(&mut self, key: &str, value: http::HeaderValue) {
        self.builder = self.builder.take().map(|b| b.header(key, value));
    }

    fn body(&mut self, bytes: Vec<u8>) -> ::cloudevents::message::Result<Response> {
        self.builder
            .take()
            .unwrap_or_default()
            .body(crate::Body::from(bytes))
            .map_err(|e| ::cloudevents::message::Error::Other {
                source: Box::new(e),
            })
    }

    fn finish(&mut self) -> ::cloudevents::message::Result<Response> {
        self.body(Vec::new())
    }
}

/// Writes `event` as a 200 response in `mode`.
pub fn to_response(event: Event, mode: Mode) -> Response {
    let result = match mode {
        Mode::Binary => BinaryDeserializer::deserialize_binary(
            event,
            HttpSerializer::new(ResponseBuilder {
                builder: Some(http::Response::builder().status(StatusCode::OK)),
            }),
        )
        .map_err(|e| e.to_string()),
        Mode::Structured => serde_json::to_vec(&event)
            .map_err(|e| e.to_string())
            .and_then(|body| {
                http::Response::builder()
                    .status(StatusCode::OK)
                    .header(http::header::CONTENT_TYPE, "application/cloudevents+json")
                    .body(crate::Body::from(body))
                    .map_err(|e| e.to_string())
            }),
    };
    result.unwrap_or_else(|error| {
        tracing::error!(%error, "cannot write the reply event");
        text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the function's reply event cannot be sent: {error}"),
        )
    })
}

type BoxedHandler = dyn Fn(Event) -> Pin<Box<dyn Future<Output = Result<Option<Event>, EventError>> + Send>>
    + Send
    + Sync;

/// A tower service that runs a CloudEvents handler; see the module docs.
#[derive(Clone)]
pub struct EventService {
    handler: Arc<BoxedHandler>,
}

impl std::fmt::Debug for EventService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventService").finish_non_exhaustive()
    }
}

/// A service for an `async fn(Event) -> Result<Option<Event>, EventError>`.
pub fn handler<F, Fut>(f: F) -> EventService
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Event>, EventError>> + Send + 'static,
{
    EventService {
        handler: Arc::new(move |event| Box::pin(f(event))),
    }
}

/// An incoming event with its data read as `T`.
#[derive(Debug, Clone)]
pub struct TypedEvent<T> {
    /// The whole event (attributes, extensions, and the raw data).
    pub event: Event,
    /// The data, deserialized.
    pub data: T,
}

/// A reply event: type, source and serializable data; it gets a fresh id.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    ty: String,
    source: String,
    subject: Option<String>,
    data: T,
}

impl<T> Reply<T> {
    /// A reply of CloudEvents type `ty` from `source`, carrying `data` as JSON.
    pub fn new(ty: impl Into<String>, source: impl Into<String>, data: T) -> Self {
        Self {
            ty: ty.into(),
            source: source.into(),
            subject: None,
            data,
        }
    }

    /// Sets the reply's `subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
}

impl<T: Serialize> Reply<T> {
    /// Builds the event (CloudEvents 1.0, JSON data, a new UUID id).
    pub fn into_event(self) -> Result<Event, EventError> {
        let data = serde_json::to_value(&self.data).map_err(|e| {
            EventError::internal(format!("the reply data cannot be serialized: {e}"))
        })?;
        let mut builder = EventBuilderV10::new()
            .id(uuid::Uuid::new_v4().to_string())
            .ty(self.ty)
            .source(self.source)
            .data("application/json", data);
        if let Some(subject) = self.subject {
            builder = builder.subject(subject);
        }
        builder
            .build()
            .map_err(|e| EventError::internal(format!("the reply event is invalid: {e}")))
    }
}

/// Reads an event's data as `T` (JSON data, or a plain string for `String`).
pub fn decode_data<T: DeserializeOwned>(event: &Event) -> Result<T, EventError> {
    // JSON data is read as JSON; anything else as a string (for `String` data).
    let from_text = |text: &str| match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => T::deserialize(value),
        Err(_) => T::deserialize(serde_json::Value::from(text)),
    };
    let result = match event.data() {
        Some(Data::Json(value)) => T::deserialize(value),
        Some(Data::Binary(bytes)) => match std::str::from_utf8(bytes) {
            Ok(text) => from_text(text),
            Err(_) => serde_json::from_slice(bytes),
        },
        Some(Data::String(text)) => from_text(text),
        None => T::deserialize(serde_json::Value::Null),
    };
    result.map_err(|e| {
        EventError::bad_request(format!(
            "the event's data is not what this function expects: {e}"
        ))
    })
}

/// A service for an `async fn(TypedEvent<T>) -> Result<Option<Reply<U>>, EventError>`.
pub fn typed<T, U, F, Fut>(f: F) -> EventService
where
    T: DeserializeOwned + Send + 'static,
    U: Serialize + 'static,
    F: Fn(TypedEvent<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Reply<U>>, EventError>> + Send + 'static,
{
    let f = Arc::new(f);
    handler(move |event: Event| {
        let f = f.clone();
        async move {
            let data = decode_data::<T>(&event)?;
            match f(TypedEvent { event, data }).await? {
                Some(reply) => reply.into_event().map(Some),
                None => Ok(None),
            }
        }
    })
}

impl tower::Service<Request> for EventService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let handler = self.handler.clone();
        Box::pin(async move {
            Ok(handle(handler, req)
                .await
                .unwrap_or_else(EventError::into_response))
        })
    }
}

async fn handle(handler: Arc<BoxedHandler>, req: Request) -> Result<Response, EventError> {
    if req.method() != http::Method::POST {
        let mut response = EventError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "this CloudEvents function takes events as POST requests, not {}",
                req.method()
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
        return Ok(response);
    }
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            EventError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the event is larger than the body limit; send less, or raise OKONOMI_BODY_LIMIT",
            )
        } else {
            EventError::bad_request(format!("cannot read the request body: {e}"))
        }
    })?;
    let (event, mode) = parse(&parts.headers, body.to_vec())?;
    Ok(match handler(event).await? {
        Some(reply) => to_response(reply, mode),
        None => http::Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(crate::Body::empty())
            .unwrap_or_default(),
    })
}
