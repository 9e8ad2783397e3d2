//! hello answers the seed app's line, byte for byte as Python builds it from
//! os.uname() on this machine.

#![allow(clippy::unwrap_used)]

use okonomi::testing::FunctionProcess;
use tokio::process::Command;

#[tokio::test]
async fn hello_matches_python_os_uname_byte_for_byte() {
    let python = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, sys; u = os.uname(); \
             sys.stdout.write('Hello Container World! ' + str((u.sysname, u.nodename, u.release, u.version, u.machine)))",
        ])
        .output()
        .expect("python3 is needed for this test: apt-get install python3");
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
    let expected = python.stdout;
    assert!(expected.starts_with(b"Hello Container World! ('Linux', '"));

    let function = FunctionProcess::start(Command::new(env!("CARGO_BIN_EXE_hello")))
        .await
        .unwrap();
    let (status, headers, body) =
        okonomi::testing::send(function.addr(), okonomi::testing::get("/"))
            .await
            .unwrap();
    assert_eq!(status.as_u16(), 200);
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(&expected),
        "hello's line differs from Python's"
    );
    assert_eq!(&body[..], &expected[..]);
}

#[tokio::test]
async fn hello_drains_and_exits_0_on_sigterm() {
    let mut function = FunctionProcess::start(Command::new(env!("CARGO_BIN_EXE_hello")))
        .await
        .unwrap();
    assert_eq!(function.get("/").await.unwrap().0, 200);
    function.terminate();
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), function.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
