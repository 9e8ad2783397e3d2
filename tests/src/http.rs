//! HTTP to functions the way a user's client reaches them: by the URL the
//! Service reports. glibc here does not resolve `*.localhost`, so requests to
//! such hosts go to 127.0.0.1 on the engine's HTTP port with the Host header
//! set by hand; `OKONOMI_TEST_INGRESS=IP[:PORT]` does the same for a real
//! cluster without DNS for its domain (the ingress gateway's address).

use std::time::Duration;

use anyhow::Context;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// A WebSocket to a function, over plain TCP.
pub type WebSocket = tungstenite::WebSocket<std::net::TcpStream>;

/// An answer: status, headers and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Answer {
    /// A header's value as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// A blocking HTTP client that knows where `*.localhost` (or every function
/// host) really is.
#[derive(Debug)]
pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    /// Where `*.localhost` hosts are served (the engine's HTTP port).
    localhost_port: Option<u16>,
    /// Where every function host is served (OKONOMI_TEST_INGRESS).
    ingress: Option<String>,
}

impl Http {
    /// A client; `localhost_port` is the engine's HTTP port.
    pub fn new(localhost_port: Option<u16>) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            runtime,
            client,
            localhost_port,
            ingress: std::env::var("OKONOMI_TEST_INGRESS")
                .ok()
                .filter(|s| !s.is_empty()),
        })
    }

    /// Where to connect for `url` and the Host header to send.
    pub fn route(&self, url: &str) -> anyhow::Result<(String, String)> {
        let parsed = reqwest::Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
        let host = parsed.host_str().context("URL without a host")?.to_owned();
        let host_header = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let mut connect = parsed.clone();
        if host == "localhost" || host.ends_with(".localhost") {
            let port = parsed.port().or(self.localhost_port).unwrap_or(80);
            connect.set_host(Some("127.0.0.1"))?;
            connect
                .set_port(Some(port))
                .map_err(|()| anyhow::anyhow!("cannot set the port of {url}"))?;
        } else if let Some(ingress) = &self.ingress {
            let (ip, port) = match ingress.rsplit_once(':') {
                Some((ip, port)) => (ip.to_owned(), Some(port.parse::<u16>()?)),
                None => (ingress.clone(), None),
            };
            connect.set_host(Some(&ip))?;
            connect
                .set_port(port)
                .map_err(|()| anyhow::anyhow!("cannot set the port of {url}"))?;
        }
        Ok((connect.to_string(), host_header))
    }

    /// GET `url`.
    pub fn get(&self, url: &str) -> anyhow::Result<Answer> {
        self.send(reqwest::Method::GET, url, &[], None)
    }

    /// Any request.
    pub fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> anyhow::Result<Answer> {
        let (connect, host) = self.route(url)?;
        let mut request = self
            .client
            .request(method, &connect)
            .header(reqwest::header::HOST, host);
        for (name, value) in headers {
            request = request.header(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .with_context(|| format!("requesting {url} (via {connect})"))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.text().await?;
            Ok(Answer {
                status,
                headers,
                body,
            })
        })
    }

    /// Opens a WebSocket to `url` (an `http://` function URL) with `query`
    /// on its path, routed as [`Http::route`] says, as Knative's e2e tests
    /// connect (gorilla's dialer with a Host header). Reads give up after
    /// 60 s, so a silent server fails a test instead of hanging it.
    pub fn websocket(&self, url: &str, query: &str) -> anyhow::Result<WebSocket> {
        use tungstenite::client::IntoClientRequest;
        let (connect, host) = self.route(url)?;
        let parsed = reqwest::Url::parse(&connect)?;
        anyhow::ensure!(
            parsed.scheme() == "http",
            "{url}: only ws:// (plain HTTP) WebSockets are supported by the test client"
        );
        let addr = format!(
            "{}:{}",
            parsed.host_str().context("URL without a host")?,
            parsed.port_or_known_default().unwrap_or(80)
        );
        let mut request = format!("ws://{addr}/?{query}")
            .into_client_request()
            .with_context(|| format!("a WebSocket request for {url}"))?;
        request
            .headers_mut()
            .insert("host", HeaderValue::from_str(&host)?);
        let stream = std::net::TcpStream::connect(&addr)
            .with_context(|| format!("connecting to {addr} for {url}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_write_timeout(Some(Duration::from_secs(60)))?;
        let (socket, _) = tungstenite::client(request, stream).map_err(|error| match error {
            tungstenite::HandshakeError::Failure(error) => {
                anyhow::anyhow!("WebSocket handshake with {url} (via {addr}): {error}")
            }
            tungstenite::HandshakeError::Interrupted(_) => {
                anyhow::anyhow!("WebSocket handshake with {url} (via {addr}) was interrupted")
            }
        })?;
        Ok(socket)
    }

    /// POSTs a binary-mode CloudEvent with JSON data.
    pub fn post_cloudevent(
        &self,
        url: &str,
        id: &str,
        type_: &str,
        source: &str,
        data: &str,
    ) -> anyhow::Result<Answer> {
        self.send(
            reqwest::Method::POST,
            url,
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", id),
                ("ce-type", type_),
                ("ce-source", source),
                ("content-type", "application/json"),
            ],
            Some(data),
        )
    }
}
