//! Watch over HTTP: one JSON event per line on a chunked 200 response, resumable by
//! resourceVersion, with bookmarks when asked, `timeoutSeconds` honoured, and a
//! `410 Expired` ERROR event for a version older than the retained history.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use super::{Api, Req, table};
use crate::error::Error;
use crate::resource::ResourceType;
use crate::store::{ListOptions, WatchEvent, WatchOptions};

fn line(event_type: &str, object: Value) -> Bytes {
    let mut text = json!({"type": event_type, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

pub(super) fn serve(
    api: &Api,
    rt: &ResourceType,
    req: &Req,
    filter: ListOptions,
) -> Result<Response, Error> {
    let resource_version = match req.param("resourceVersion") {
        None => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
            Error::BadRequest(format!(
                "invalid resourceVersion {rv:?}: expected a number returned by this server"
            ))
        })?),
    };
    // The store is always current, so a resourceVersion beyond it will not
    // come: Kubernetes' answer after its wait, at once.
    if let Some(requested) = resource_version {
        let current = api.store.resource_version();
        if requested > current {
            return Err(Error::TooLargeResourceVersion { requested, current });
        }
    }
    let timeout = match req.param("timeoutSeconds") {
        None => None,
        Some(t) => Some(Duration::from_secs(t.parse::<u64>().map_err(|_| {
            Error::BadRequest(format!(
                "invalid timeoutSeconds {t:?}: expected whole seconds"
            ))
        })?)),
    };
    let bookmarks = req.param("allowWatchBookmarks") == Some("true");
    let options = WatchOptions {
        filter,
        resource_version,
        send_initial_events: req.param("sendInitialEvents") == Some("true"),
        bookmark_interval: bookmarks.then_some(api.bookmark_interval),
    };
    let table_version = table::requested(req.accept());
    let include_object = req.param("includeObject").unwrap_or("Metadata").to_string();
    let rt_owned = rt.clone();
    let events = match api.store.watch(rt, &options) {
        Ok(stream) => stream,
        // As Kubernetes does: the watch starts, and its only event is the error.
        Err(error @ Error::Expired { .. }) => {
            let event = line("ERROR", error.to_status().to_value());
            return Ok(streaming(futures::stream::iter([event]).boxed()));
        }
        Err(error) => return Err(error),
    };
    let mut first_table = true;
    let lines = events.map(move |event| {
        let event_type = event.type_name();
        let object = match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                match table_version {
                    Some(version) => {
                        let rv = o
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        let t = table::table(
                            &rt_owned,
                            version,
                            std::slice::from_ref(&o),
                            rv,
                            &include_object,
                            first_table,
                        );
                        first_table = false;
                        t
                    }
                    None => o,
                }
            }
            WatchEvent::Bookmark {
                resource_version,
                initial_events_end,
            } => {
                let mut metadata = json!({"resourceVersion": resource_version.to_string()});
                if initial_events_end {
                    metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                }
                json!({"kind": rt_owned.kind, "apiVersion": rt_owned.api_version(), "metadata": metadata})
            }
            WatchEvent::Error(status) => status.to_value(),
        };
        line(event_type, object)
    });
    let lines = match timeout {
        Some(t) => lines.take_until(tokio::time::sleep(t)).boxed(),
        None => lines.boxed(),
    };
    Ok(streaming(lines))
}

fn streaming(lines: futures::stream::BoxStream<'static, Bytes>) -> Response {
    let body = Body::from_stream(lines.map(Ok::<_, std::convert::Infallible>));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    response
}
