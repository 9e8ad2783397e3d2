//! The runtime contract, tested on a real process (`okonomi-testfn`) over real
//! loopback sockets.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::StreamBody;
use okonomi::testing::{FunctionProcess, get, request, send, send_h2c};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

fn testfn() -> Command {
    Command::new(env!("CARGO_BIN_EXE_okonomi-testfn"))
}

async fn start(env: &[(&str, &str)]) -> FunctionProcess {
    let mut command = testfn();
    for (k, v) in env {
        command.env(k, v);
    }
    FunctionProcess::start(command).await.unwrap()
}

#[tokio::test]
async fn listens_on_ipv4_and_ipv6() {
    let function = start(&[("OKONOMI_LISTEN", "127.0.0.1:0,[::1]:0")]).await;
    assert_eq!(function.addrs().len(), 2);
    assert!(function.addrs()[0].is_ipv4() && function.addrs()[1].is_ipv6());
    for addr in function.addrs() {
        let (status, _, body) = send(*addr, get("/")).await.unwrap();
        assert_eq!((status.as_u16(), &body[..]), (200, &b"ok"[..]), "{addr}");
    }
}

#[tokio::test]
async fn http1_and_h2c_on_the_same_port() {
    let function = start(&[]).await;
    let (status, _, body) = send(function.addr(), get("/version")).await.unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"HTTP/1.1"[..]));
    let (status, version, body) = send_h2c(function.addr(), get("/version")).await.unwrap();
    assert_eq!(status.as_u16(), 200);
    assert_eq!(version, http::Version::HTTP_2);
    assert_eq!(&body[..], b"HTTP/2.0");
}

#[tokio::test]
async fn probes_answer_on_default_and_configured_paths() {
    let function = start(&[]).await;
    assert_eq!(function.get("/health/readiness").await.unwrap().0, 200);
    assert_eq!(function.get("/health/liveness").await.unwrap().0, 200);

    let function = start(&[
        ("OKONOMI_READINESS_PATH", "/ready"),
        ("OKONOMI_LIVENESS_PATH", "/alive"),
    ])
    .await;
    assert_eq!(
        function.get("/ready").await.unwrap(),
        (200, "ready\n".into())
    );
    assert_eq!(
        function.get("/alive").await.unwrap(),
        (200, "alive\n".into())
    );
    // The default paths now belong to the function (which has no such route).
    assert_eq!(function.get("/health/readiness").await.unwrap().0, 404);
}

#[tokio::test]
async fn robots_and_favicon_are_404_without_reaching_the_function() {
    let function = start(&[]).await;
    for path in ["/robots.txt", "/favicon.ico"] {
        let (status, body) = function.get(path).await.unwrap();
        assert_eq!((status, body.as_str()), (404, "not found\n"), "{path}");
    }
}

#[tokio::test]
async fn oversized_bodies_get_413_declared_or_streamed() {
    let function = start(&[("OKONOMI_BODY_LIMIT", "1024")]).await;
    let (status, _, body) = send(
        function.addr(),
        request(http::Method::POST, "/body", vec![b'x'; 1024]),
    )
    .await
    .unwrap();
    assert_eq!((status.as_u16(), &body[..]), (200, &b"1024"[..]));

    let (status, _, body) = send(
        function.addr(),
        request(http::Method::POST, "/body", vec![b'x'; 1025]),
    )
    .await
    .unwrap();
    assert_eq!(status.as_u16(), 413);
    assert!(
        String::from_utf8_lossy(&body).contains("limit of 1024 bytes"),
        "{body:?}"
    );

    // Chunked, no Content-Length: cut while streaming.
    let chunks = (0..4)
        .map(|_| Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from(vec![b'y'; 512]))));
    let mut req = http::Request::new(StreamBody::new(futures::stream::iter(chunks)));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = "/body".parse().unwrap();
    let (status, _, _) = send(function.addr(), req).await.unwrap();
    assert_eq!(status.as_u16(), 413);
}

#[tokio::test]
async fn slow_requests_get_504_at_the_timeout() {
    let function = start(&[("OKONOMI_REQUEST_TIMEOUT", "300ms")]).await;
    let (status, body) = function.get("/slow?ms=30000").await.unwrap();
    assert_eq!(status, 504);
    assert!(body.contains("OKONOMI_REQUEST_TIMEOUT"), "{body}");
    // The timed-out handler was dropped: nothing stays in flight.
    assert_eq!(function.get("/inflight").await.unwrap().1, "0");
    assert_eq!(function.get("/slow?ms=1").await.unwrap().0, 200);
}

#[tokio::test]
async fn a_panicking_handler_gets_500_and_the_process_keeps_serving() {
    let function = start(&[]).await;
    for _ in 0..3 {
        let (status, body) = function.get("/panic").await.unwrap();
        assert_eq!(status, 500);
        assert!(body.contains("panicked"), "{body}");
        assert_eq!(function.get("/").await.unwrap(), (200, "ok".into()));
    }
    let logged = function.json_lines();
    assert!(
        logged.iter().any(|l| l["severity"] == "ERROR"
            && l["panic"]
                .as_str()
                .is_some_and(|p| p.contains("on purpose"))),
        "{logged:?}"
    );
}

#[tokio::test]
async fn the_in_flight_cap_holds_and_queued_requests_complete() {
    let function = start(&[("OKONOMI_CONTAINER_CONCURRENCY", "2")]).await;
    let addr = function.addr();
    let requests: Vec<_> = (0..8)
        .map(|_| tokio::spawn(async move { send(addr, get("/slow?ms=150")).await.unwrap().0 }))
        .collect();
    for r in requests {
        assert_eq!(r.await.unwrap().as_u16(), 200);
    }
    let max: usize = function
        .get("/max-inflight")
        .await
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert!(
        (1..=2).contains(&max),
        "max in flight {max} past the cap of 2"
    );
}

#[tokio::test]
async fn past_the_cap_and_its_queue_requests_get_503() {
    // Cap 1 and a queue of 10: the 12th concurrent request is refused at once,
    // while the other 11 hold (one running, ten waiting) for a minute.
    let function = start(&[("OKONOMI_CONTAINER_CONCURRENCY", "1")]).await;
    let addr = function.addr();
    let (tx, mut rx) = tokio::sync::mpsc::channel(12);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let tx = tx.clone();
            tokio::spawn(async move {
                let answer = send(addr, get("/slow?ms=60000")).await.unwrap();
                let _ = tx.send(answer).await;
            })
        })
        .collect();
    let (status, headers, body) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.as_u16(), 503);
    assert_eq!(headers["retry-after"], "1");
    assert!(
        String::from_utf8_lossy(&body).contains("containerConcurrency 1"),
        "{body:?}"
    );
    for task in tasks {
        task.abort();
    }
}

#[tokio::test]
async fn sigterm_drains_50_in_flight_requests_then_exits_0() {
    let mut function = start(&[("OKONOMI_DRAIN_DEADLINE", "60s")]).await;
    let addr = function.addr();
    let requests: Vec<_> = (0..50)
        .map(|_| tokio::spawn(async move { send(addr, get("/slow?ms=8000")).await }))
        .collect();
    // Wait until all 50 are inside the handler (bounded: the loop gives up
    // well before the first of them would finish).
    let mut in_flight = 0;
    for _ in 0..300 {
        in_flight = function.get("/inflight").await.unwrap().1.parse().unwrap();
        if in_flight == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(in_flight, 50);
    function.terminate();
    let mut ok = 0;
    for r in requests {
        let (status, _, body) = r.await.unwrap().unwrap();
        assert_eq!((status.as_u16(), &body[..]), (200, &b"slept"[..]));
        ok += 1;
    }
    assert_eq!(ok, 50);
    let status = tokio::time::timeout(Duration::from_secs(30), function.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    // After the drain nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    let drained = function.wait_for_log(|l| l["message"] == "drained").await;
    assert!(drained.is_some(), "{:?}", function.json_lines());
}

#[tokio::test]
async fn sigint_also_shuts_down_with_exit_0() {
    let mut function = start(&[]).await;
    function.signal(libc::SIGINT);
    let status = tokio::time::timeout(Duration::from_secs(30), function.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn json_logs_carry_severity_trace_and_knative_names() {
    let function = start(&[
        ("K_SERVICE", "testfn"),
        ("K_CONFIGURATION", "testfn-config"),
        ("K_REVISION", "testfn-00001"),
        ("GOOGLE_CLOUD_PROJECT", "demo-project"),
    ])
    .await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = get("/log");
    req.headers_mut().insert(
        "traceparent",
        format!("00-{trace}-00f067aa0ba902b7-01").parse().unwrap(),
    );
    let (status, _, _) = send(function.addr(), req).await.unwrap();
    assert_eq!(status.as_u16(), 200);
    // And once without a trace context.
    assert_eq!(function.get("/log").await.unwrap().0, 200);

    let lines = function.json_lines();
    let logged: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "hello from the handler")
        .collect();
    assert_eq!(logged.len(), 2, "{lines:?}");
    assert_eq!(logged[0]["severity"], "INFO");
    assert_eq!(logged[0]["answer"], 42);
    assert_eq!(
        logged[0]["logging.googleapis.com/trace"],
        format!("projects/demo-project/traces/{trace}")
    );
    assert_eq!(
        logged[0]["logging.googleapis.com/spanId"],
        "00f067aa0ba902b7"
    );
    assert_eq!(logged[0]["logging.googleapis.com/trace_sampled"], true);
    assert!(logged[1].get("logging.googleapis.com/trace").is_none());
    // Every line, the runtime's own included, names the revision.
    for line in &lines {
        let labels = &line["logging.googleapis.com/labels"];
        assert_eq!(labels["k_service"], "testfn", "{line}");
        assert_eq!(labels["k_configuration"], "testfn-config", "{line}");
        assert_eq!(labels["k_revision"], "testfn-00001", "{line}");
    }
}

#[tokio::test]
async fn concurrent_requests_log_their_own_trace_across_awaits_and_none_after() {
    // One worker thread: both requests' futures are polled on it, interleaved.
    let function = start(&[("TOKIO_WORKER_THREADS", "1")]).await;
    let addr = function.addr();
    let calls = [
        ("a", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"),
        ("b", "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"),
    ];
    let requests: Vec<_> = calls
        .iter()
        .map(|(tag, trace, span)| {
            let mut req = get(&format!("/rendezvous?tag={tag}&n=2"));
            req.headers_mut().insert(
                "traceparent",
                format!("00-{trace}-{span}-01").parse().unwrap(),
            );
            tokio::spawn(send(addr, req))
        })
        .collect();
    for (request, (tag, _, _)) in requests.into_iter().zip(calls) {
        let (status, _, body) = request.await.unwrap().unwrap();
        assert_eq!((status.as_u16(), &body[..]), (200, tag.as_bytes()));
    }
    // Lines from tasks the handlers spawned, and from a later request
    // without a trace context on the same thread.
    for (tag, _, _) in calls {
        for message in ["after the request", "spawned in the trace"] {
            let line = function
                .wait_for_log(|l| l["message"] == message && l["tag"] == tag)
                .await;
            assert!(
                line.is_some(),
                "{message} {tag}: {:?}",
                function.json_lines()
            );
        }
    }
    assert_eq!(function.get("/log").await.unwrap().0, 200);
    let plain = function
        .wait_for_log(|l| l["message"] == "hello from the handler")
        .await;
    assert!(plain.is_some(), "{:?}", function.json_lines());

    let lines = function.json_lines();
    let find = |message: &str, tag: &str| {
        let at = lines
            .iter()
            .position(|l| l["message"] == message && l["tag"] == tag)
            .unwrap_or_else(|| panic!("no {message:?} line for {tag}: {lines:?}"));
        (at, &lines[at])
    };
    let mut arrived = Vec::new();
    let mut leaving = Vec::new();
    let mut threads = Vec::new();
    for (tag, trace, span) in calls {
        for (message, at) in [("arrived", &mut arrived), ("leaving", &mut leaving)] {
            let (index, line) = find(message, tag);
            assert_eq!(line["logging.googleapis.com/trace"], trace, "{line}");
            assert_eq!(line["logging.googleapis.com/spanId"], span, "{line}");
            assert_eq!(line["logging.googleapis.com/trace_sampled"], true, "{line}");
            at.push(index);
            threads.push(line["thread"].clone());
        }
        let (_, spawned) = find("spawned in the trace", tag);
        assert_eq!(spawned["logging.googleapis.com/trace"], trace, "{spawned}");
        let (_, after) = find("after the request", tag);
        assert!(
            after.get("logging.googleapis.com/trace").is_none(),
            "{after}"
        );
        threads.push(after["thread"].clone());
    }
    // Both arrived before either left: the requests were interleaved, on one
    // thread.
    assert!(
        arrived.iter().max() < leaving.iter().min(),
        "{arrived:?} {leaving:?}"
    );
    assert!(threads.iter().all(|t| t == &threads[0]), "{threads:?}");
    let plain = plain.unwrap();
    assert!(
        plain.get("logging.googleapis.com/trace").is_none(),
        "{plain}"
    );
}

#[tokio::test]
async fn no_log_line_per_request_by_default() {
    let function = start(&[]).await;
    let before = function.log_lines().len();
    for _ in 0..20 {
        assert_eq!(function.get("/").await.unwrap().0, 200);
    }
    assert_eq!(function.get("/robots.txt").await.unwrap().0, 404);
    assert_eq!(
        function.log_lines().len(),
        before,
        "{:?}",
        function.log_lines()
    );
}

#[tokio::test]
async fn text_logs_on_request_name_the_revision() {
    let mut command = testfn();
    command
        .env("K_SERVICE", "testfn")
        .env("K_REVISION", "testfn-00002");
    command
        .env("OKONOMI_LISTEN", "127.0.0.1:0")
        .env("OKONOMI_LOG_FORMAT", "text");
    command.env("NO_COLOR", "1");
    command
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains("listening") {
        let n = tokio::time::timeout(Duration::from_secs(30), stdout.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "exited early: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let line = text.lines().find(|l| l.contains("listening")).unwrap();
    assert!(line.starts_with("[testfn/testfn-00002] "), "{line}");
    assert!(
        !line
            .trim_start_matches("[testfn/testfn-00002] ")
            .starts_with('{'),
        "{line}"
    );
}

#[tokio::test]
async fn malformed_http_gets_400_and_the_server_lives_on() {
    let function = start(&[]).await;
    let mut stream = tokio::net::TcpStream::connect(function.addr())
        .await
        .unwrap();
    stream.write_all(b"THIS IS NOT HTTP\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    // A header block far past hyper's limit.
    let mut stream = tokio::net::TcpStream::connect(function.addr())
        .await
        .unwrap();
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let _ = stream.write_all(huge.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    assert_eq!(function.get("/").await.unwrap(), (200, "ok".into()));
}

#[tokio::test]
async fn a_bad_setting_stops_start_up_with_a_message_naming_it() {
    let output = testfn()
        .env("OKONOMI_LISTEN", "127.0.0.1:0")
        .env("OKONOMI_REQUEST_TIMEOUT", "soon")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("OKONOMI_REQUEST_TIMEOUT") && stderr.contains("soon"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let output = testfn()
        .env("OKONOMI_LISTEN", addr.to_string())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
}
