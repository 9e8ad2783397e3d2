//! counter against a real redis-server started on a free loopback port
//! (okonomi-tests starts, stops and restarts it).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use okonomi::testing::{FunctionProcess, get, send};
use okonomi_tests::services::Redis;
use tokio::process::Command;

fn free_port() -> u16 {
    okonomi_tests::tools::free_port().unwrap()
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
    let mut redis = Redis::start().unwrap();
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
    redis.stop();
}

#[tokio::test]
async fn redis_down_is_503_with_a_message_and_the_count_resumes_when_it_is_back() {
    let mut redis = Redis::start().unwrap();
    let port = redis.port;
    let counter = start_counter(port).await;
    assert_eq!(count_of(&counter.get("/").await.unwrap().1), 1);
    assert_eq!(count_of(&counter.get("/").await.unwrap().1), 2);

    redis.stop();
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
    redis.restart().unwrap();
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
    redis.stop();
}

#[tokio::test]
async fn starts_and_answers_503_when_redis_was_never_there() {
    let port = free_port();
    let counter = start_counter(port).await;
    let (status, body) = counter.get("/").await.unwrap();
    assert_eq!(status, 503, "{body}");
    let mut redis = Redis::start_on(port).unwrap();
    let (status, body) = counter.get("/").await.unwrap();
    assert_eq!((status, count_of(&body)), (200, 1));
    redis.stop();
}
