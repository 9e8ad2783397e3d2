//! counter against a real redis-server started on a free loopback port.

#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use okonomi::testing::{FunctionProcess, get, send};
use tokio::process::{Child, Command};

/// A redis-server on 127.0.0.1 (killed on drop), without persistence.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    async fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is needed for this test: apt-get install redis-server");
        let redis = Self { child, port };
        for _ in 0..200 {
            if ping(port).await {
                return redis;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not answer PING on 127.0.0.1:{port}");
    }

    async fn stop(mut self) {
        self.child.kill().await.unwrap();
        self.child.wait().await.unwrap();
    }
}

async fn ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut buf = [0u8; 16];
    stream.write_all(b"PING\r\n").await.is_ok()
        && stream
            .read(&mut buf)
            .await
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_counter(redis_port: u16) -> FunctionProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_counter"));
    command.env("REDIS_URL", format!("redis://127.0.0.1:{redis_port}"));
    FunctionProcess::start(command).await.unwrap()
}

fn count_of(body: &str) -> u64 {
    body.strip_prefix("Hello Container World! I have been seen ")
        .and_then(|rest| rest.strip_suffix(" times."))
        .unwrap_or_else(|| panic!("not the seed's line: {body:?}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn counts_exactly_under_100_concurrent_requests() {
    let redis = Redis::start_on(free_port()).await;
    let counter = start_counter(redis.port).await;
    assert_eq!(
        counter.get("/").await.unwrap(),
        (
            200,
            "Hello Container World! I have been seen 1 times.".into()
        )
    );

    let addr = counter.addr();
    let requests: Vec<_> = (0..100)
        .map(|_| tokio::spawn(async move { send(addr, get("/")).await.unwrap() }))
        .collect();
    let mut counts = Vec::new();
    for r in requests {
        let (status, _, body) = r.await.unwrap();
        assert_eq!(status.as_u16(), 200);
        counts.push(count_of(&String::from_utf8_lossy(&body)));
    }
    counts.sort();
    // Every hit got its own number: 2..=101, none lost, none repeated.
    assert_eq!(counts, (2..=101).collect::<Vec<_>>());
    assert_eq!(count_of(&counter.get("/").await.unwrap().1), 102);
    redis.stop().await;
}

#[tokio::test]
async fn redis_down_is_503_with_a_message_and_the_count_resumes_when_it_is_back() {
    let port = free_port();
    let redis = Redis::start_on(port).await;
    let counter = start_counter(port).await;
    assert_eq!(count_of(&counter.get("/").await.unwrap().1), 1);
    assert_eq!(count_of(&counter.get("/").await.unwrap().1), 2);

    redis.stop().await;
    for _ in 0..3 {
        let (status, body) = counter.get("/").await.unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(
            body.contains(&format!("Redis at 127.0.0.1:{port} is unavailable")),
            "{body}"
        );
        assert!(body.contains("resumes when it is back"), "{body}");
    }

    // Same port, fresh (empty) Redis: the function reconnects by itself.
    let redis = Redis::start_on(port).await;
    let mut answer = (0, String::new());
    for _ in 0..100 {
        answer = counter.get("/").await.unwrap();
        if answer.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer.0, 200, "no recovery: {}", answer.1);
    assert_eq!(count_of(&answer.1), 1);
    assert_eq!(count_of(&counter.get("/").await.unwrap().1), 2);
    redis.stop().await;
}

#[tokio::test]
async fn starts_and_answers_503_when_redis_was_never_there() {
    let port = free_port();
    let counter = start_counter(port).await;
    let (status, body) = counter.get("/").await.unwrap();
    assert_eq!(status, 503, "{body}");
    let redis = Redis::start_on(port).await;
    let (status, body) = counter.get("/").await.unwrap();
    assert_eq!((status, count_of(&body)), (200, 1));
    redis.stop().await;
}
