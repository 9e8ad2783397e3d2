//! Readiness probes: an HTTP GET on the spec's path, or a TCP connect.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Readiness;

/// One probe attempt: true when the instance is ready.
pub async fn probe(addr: SocketAddr, readiness: &Readiness) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let Readiness::HttpGet { path } = readiness else {
            return Some(true);
        };
        // A bare HTTP/1.0 request keeps the probe free of a client pool.
        let request =
            format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: okonomi-probe\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 16];
        let mut read = 0;
        while read < 12 {
            let n = stream.read(&mut head[read..]).await.ok()?;
            if n == 0 {
                break;
            }
            read += n;
        }
        let status = std::str::from_utf8(head.get(9..12)?).ok()?;
        Some(status.starts_with('2') || status.starts_with('3'))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}
