//! `*.localhost` for okonomi's own HTTP clients. Browsers and curl resolve
//! `localhost` and every name under it to loopback (RFC 6761); glibc does not,
//! so the URL `okonomi deploy` prints for the engine
//! (`http://hello.default.localhost:8080/`) would fail with a DNS error. The
//! resolver answers those names with loopback itself and leaves every other
//! name to the system resolver; the Host header stays the URL's host, which is
//! what the engine routes by.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `host` is `localhost` or a name under it.
pub fn is_localhost(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// Resolves `*.localhost` to 127.0.0.1 and ::1, other names as the system does.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalhostResolver;

impl Resolve for LocalhostResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if is_localhost(&host) {
                // Port 0: reqwest puts the URL's port in.
                let loopback: Vec<SocketAddr> = vec![
                    SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                    SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
                ];
                let addrs: Addrs = Box::new(loopback.into_iter());
                return Ok(addrs);
            }
            // getaddrinfo blocks: off the runtime's threads.
            let found = tokio::task::spawn_blocking(move || {
                (host.as_str(), 0)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>())
            })
            .await??;
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// A client builder whose names under `localhost` resolve to loopback.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().dns_resolver(Arc::new(LocalhostResolver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_under_localhost_are_loopback_and_others_are_not() {
        assert!(is_localhost("localhost"));
        assert!(is_localhost("hello.default.localhost"));
        assert!(is_localhost("Hello.Default.LOCALHOST."));
        assert!(!is_localhost("localhost.example.com"));
        assert!(!is_localhost("notlocalhost"));
    }

    #[tokio::test]
    async fn the_url_deploy_prints_for_the_engine_is_reached_with_its_host_header() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                head.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await
                .unwrap();
            String::from_utf8_lossy(&head).to_ascii_lowercase()
        });
        let client = client_builder().build().unwrap();
        let url = format!("http://hello.default.localhost:{port}/");
        let body = client.get(&url).send().await.unwrap().text().await.unwrap();
        assert_eq!(body, "ok");
        let head = server.await.unwrap();
        assert!(
            head.contains(&format!("host: hello.default.localhost:{port}")),
            "{head}"
        );
    }
}
