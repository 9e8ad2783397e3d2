//! Slow and idle clients cannot pin the data plane (slowloris): a
//! connection that sends no whole request head within the header-read
//! limit is closed, whatever protocol it started, while other clients are
//! served; connections over the per-client cap are closed at once, and at
//! the total cap new ones wait until one closes; a kept-alive connection
//! has its own, longer limit between requests.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use okonomi_engine::{ClientLimits, Engine, EngineConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn engine(state: &Path, limits: ClientLimits) -> Engine {
    Engine::start(EngineConfig {
        state_dir: state.to_path_buf(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        client_limits: limits,
        ..EngineConfig::default()
    })
    .await
    .unwrap()
}

/// A whole request on a new connection: the status line of the answer
/// (the router's 404 for a host it does not serve).
async fn request(engine: &Engine) -> String {
    let mut stream = TcpStream::connect(engine.http_addr()).await.unwrap();
    answer(&mut stream).await
}

/// Sends a whole request on `stream` and reads the answer's status line.
async fn answer(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: nobody.default.localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
        .await
        .expect("no answer within 30 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

/// Whether the engine closes `stream` within `within` (a read ends or
/// fails) rather than leaving it open.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // The 408 hyper may write before closing: keep reading.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn connections_that_send_no_request_head_are_closed_after_the_header_limit() {
    let state = tempfile::tempdir().unwrap();
    let limits = ClientLimits {
        header_read: Duration::from_secs(1),
        keep_alive: Duration::from_secs(1),
        ..ClientLimits::default()
    };
    let engine = engine(state.path(), limits).await;
    let addr = engine.http_addr();
    let starts: [&[u8]; 4] = [
        b"",
        b"GET / HTTP/1.1\r\nHost: nobody.default.localhost\r\nX-Slow: ",
        b"PRI * HTTP/2.0\r\n",
        // A whole HTTP/2 preface and SETTINGS, but never a stream.
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    ];
    let mut slow = Vec::new();
    for round in 0..100 {
        for start in starts {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(start).await.unwrap();
            slow.push((round, String::from_utf8_lossy(start).into_owned(), stream));
        }
    }
    // A kept-alive connection idle after its request is held to the
    // keep-alive limit for its next head.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    assert!(answer(&mut kept).await.starts_with("HTTP/1.1 404"));
    // Others are served meanwhile.
    assert!(request(&engine).await.starts_with("HTTP/1.1 404"));
    for (round, start, stream) in &mut slow {
        assert!(
            closed_within(stream, Duration::from_secs(30)).await,
            "connection {round} that sent {start:?} was still open 30 s later (the limit is 1 s)"
        );
    }
    assert!(
        closed_within(&mut kept, Duration::from_secs(30)).await,
        "an idle kept-alive connection was still open 30 s later (the limit is 1 s)"
    );
    assert!(request(&engine).await.starts_with("HTTP/1.1 404"));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_client_over_its_connection_cap_is_closed_at_once() {
    let state = tempfile::tempdir().unwrap();
    let limits = ClientLimits {
        header_read: Duration::from_secs(600),
        keep_alive: Duration::from_secs(600),
        connections_per_client: 10,
        ..ClientLimits::default()
    };
    let engine = engine(state.path(), limits).await;
    let addr = engine.http_addr();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // The header limit is far off: only the cap closes the eleventh.
    let mut over = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut over, Duration::from_secs(30)).await,
        "the eleventh connection of one client stayed open"
    );
    // The held ones still work, and one closed makes room for another.
    assert!(answer(&mut held[0]).await.starts_with("HTTP/1.1 404"));
    drop(held.pop());
    let answered = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: nobody.default.localhost\r\n\r\n")
                .await
                .unwrap();
            let mut buf = vec![0u8; 4096];
            // Closing the dropped connection's count may trail its close.
            if let Ok(n) = stream.read(&mut buf).await
                && n > 0
            {
                return String::from_utf8_lossy(&buf[..n]).into_owned();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("no room was made when a connection closed");
    assert!(answered.starts_with("HTTP/1.1 404"), "{answered}");
    engine.shutdown().await;
}

#[tokio::test]
async fn at_the_total_cap_a_new_connection_waits_for_one_to_close() {
    let state = tempfile::tempdir().unwrap();
    let limits = ClientLimits {
        header_read: Duration::from_secs(600),
        keep_alive: Duration::from_secs(600),
        connections: 5,
        ..ClientLimits::default()
    };
    let engine = engine(state.path(), limits).await;
    let addr = engine.http_addr();
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        assert!(answer(&mut stream).await.starts_with("HTTP/1.1 404"));
        held.push(stream);
    }
    // The sixth is in the listen backlog: its request is not read yet.
    let mut waiting = TcpStream::connect(addr).await.unwrap();
    waiting
        .write_all(b"GET / HTTP/1.1\r\nHost: nobody.default.localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    assert!(
        tokio::time::timeout(Duration::from_secs(2), waiting.read(&mut buf))
            .await
            .is_err(),
        "a sixth connection was served past a cap of five"
    );
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(30), waiting.read(&mut buf))
        .await
        .expect("the waiting connection was not served when one closed")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    engine.shutdown().await;
}

/// A kept-alive connection that waits longer than the first-head limit
/// between requests is still served: pooled clients (reqwest, Go) keep
/// idle connections for 90 s, and one closed under them fails their next
/// request ("connection closed before message completed").
#[tokio::test]
async fn an_idle_kept_alive_connection_outlives_the_first_head_limit() {
    let state = tempfile::tempdir().unwrap();
    let limits = ClientLimits {
        header_read: Duration::from_secs(1),
        keep_alive: Duration::from_secs(600),
        ..ClientLimits::default()
    };
    let engine = engine(state.path(), limits).await;
    let mut kept = TcpStream::connect(engine.http_addr()).await.unwrap();
    assert!(answer(&mut kept).await.starts_with("HTTP/1.1 404"));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(answer(&mut kept).await.starts_with("HTTP/1.1 404"));
    engine.shutdown().await;
}
