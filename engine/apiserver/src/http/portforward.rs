//! `POST /api/v1/namespaces/NS/pods/NAME/portforward`: kubectl's port
//! forwarding. kubectl 1.27–1.29 upgrade the connection to SPDY/3.1 with
//! `X-Stream-Protocol-Version: portforward.k8s.io` ([`spdy`]); kubectl 1.30+
//! first try a WebSocket upgrade, which this server refuses with a 400 so that
//! kubectl falls back to SPDY, as it does against API servers without
//! WebSocket streaming.
//!
//! Per forwarded connection kubectl opens an error stream and a data stream
//! with the same `requestID` and the pod `port`; the data stream is joined to a
//! connection from the installed [`PodPortForward`](crate::portforward::PodPortForward),
//! and a failure to connect is written to the error stream.

mod spdy;

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Method, StatusCode, header};

use super::{Api, Req};
use crate::error::Error;
use crate::resource::ResourceType;

/// The subprotocol kubectl's port forwarding speaks.
const PROTOCOL: &str = "portforward.k8s.io";

fn header_has(req: &Req, name: &str, value: &str) -> bool {
    req.headers.get_all(name).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(value))
        })
    })
}

pub(super) async fn serve(
    api: &Api,
    namespace: &Option<String>,
    name: &Option<String>,
    mut req: Req,
) -> Result<Response, Error> {
    if req.method != Method::POST && req.method != Method::GET {
        return Err(Error::MethodNotAllowed);
    }
    let namespace = namespace.clone().unwrap_or_default();
    let name = name.clone().unwrap_or_default();
    let pod = api.store.get(&ResourceType::pod(), &namespace, &name)?;
    if header_has(&req, "upgrade", "websocket") {
        return Err(Error::BadRequest(
            "port forwarding over WebSocket is not supported by this API server; use SPDY/3.1 (kubectl falls back to it by itself)".into(),
        ));
    }
    if !header_has(&req, "upgrade", "SPDY/3.1") || !header_has(&req, "connection", "upgrade") {
        return Err(Error::BadRequest(
            "unable to upgrade: missing upgrade headers in request: port forwarding needs Connection: Upgrade and Upgrade: SPDY/3.1".into(),
        ));
    }
    if !header_has(&req, "x-stream-protocol-version", PROTOCOL) {
        return Err(Error::Forbidden(format!(
            "unable to upgrade: unable to negotiate protocol: the server accepts [{PROTOCOL}]"
        )));
    }
    let upgrade = req.upgrade.take().ok_or_else(|| {
        Error::BadRequest("this connection cannot be upgraded (HTTP/1.1 is needed for SPDY)".into())
    })?;
    let backend = api.port_forward.clone();
    let pod = Arc::new(pod);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let io = hyper_util::rt::TokioIo::new(upgraded);
                spdy::Session::new(backend, namespace, name, pod)
                    .run(io)
                    .await;
            }
            Err(error) => tracing::debug!(%error, "port-forward upgrade failed"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    headers.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(PROTOCOL),
    );
    Ok(response)
}
