//! Persistence: the standalone server killed with SIGKILL and started again on the
//! same state directory brings back every acknowledged object, keeps its
//! certificates and token, and continues resourceVersions above the old maximum.

#![allow(clippy::unwrap_used)]

#[path = "support/harness.rs"]
mod harness;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use kube::api::{Api, ListParams, PostParams};
use okonomi_knative::serving::Service;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

struct Child {
    process: tokio::process::Child,
    url: String,
}

async fn start(state: &Path, kubeconfig: &Path, listen: &str) -> Child {
    let mut process = tokio::process::Command::new(env!("CARGO_BIN_EXE_okonomi-apiserver"))
        .args(["--state-dir", state.to_str().unwrap(), "--listen", listen])
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = process.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("server prints its URL within 30s")
        .unwrap()
        .expect("a URL line");
    Child { process, url }
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"containers": [{"image": "img"}]}}},
    }))
    .unwrap()
}

fn rv(s: &Service) -> u64 {
    s.metadata
        .resource_version
        .as_deref()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_restart_keeps_objects_and_monotonic_versions() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let kubeconfig = dir.path().join("kubeconfig");

    let mut first = start(&state, &kubeconfig, "127.0.0.1:0").await;
    let services: Api<Service> =
        Api::namespaced(harness::client_from(&kubeconfig).await, "default");
    let mut max_rv = 0;
    let mut names = Vec::new();
    for i in 0..40 {
        let name = format!("svc-{i:02}");
        let created = services
            .create(&PostParams::default(), &service(&name))
            .await
            .unwrap();
        max_rv = max_rv.max(rv(&created));
        names.push(name);
    }
    // Deleting one leaves the highest resourceVersion on no stored object.
    services
        .delete("svc-39", &Default::default())
        .await
        .unwrap();
    names.pop();
    let after_delete = services.list(&ListParams::default()).await.unwrap();
    let list_rv: u64 = after_delete
        .metadata
        .resource_version
        .unwrap()
        .parse()
        .unwrap();
    assert!(list_rv > max_rv);

    // Writers keep creating while the server is killed: every create that was
    // acknowledged must survive, and versions must continue above theirs.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let services = services.clone();
        let acknowledged = acknowledged.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let name = format!("load-{i:04}");
                match services
                    .create(&PostParams::default(), &service(&name))
                    .await
                {
                    Ok(created) => acknowledged.lock().unwrap().push((name, rv(&created))),
                    Err(_) => break,
                }
            }
        })
    };
    while acknowledged.lock().unwrap().len() < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // kill -9 under load: no chance to flush anything.
    let pid = first.process.id().unwrap();
    let killed = unsafe_free_kill(pid);
    assert!(killed, "SIGKILL delivered");
    first.process.wait().await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .expect("the writer notices the server is gone")
        .unwrap();
    let mut highest_acknowledged = list_rv;
    for (name, version) in acknowledged.lock().unwrap().iter() {
        names.push(name.clone());
        highest_acknowledged = highest_acknowledged.max(*version);
    }

    // Same port is not needed: the kubeconfig is rewritten with the new URL, and the
    // CA and token stay the same.
    let second = start(&state, &kubeconfig, "127.0.0.1:0").await;
    assert!(second.url.starts_with("https://127.0.0.1:"));
    let services: Api<Service> =
        Api::namespaced(harness::client_from(&kubeconfig).await, "default");
    let listed = services.list(&ListParams::default()).await.unwrap();
    let back: std::collections::BTreeSet<String> = listed
        .items
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    // Every acknowledged object is back (a create in flight at the kill may or may
    // not have committed; it was never acknowledged).
    for name in &names {
        assert!(back.contains(name), "{name} was acknowledged but is gone");
    }
    assert!(!back.contains("svc-39"), "a deleted object came back");
    let relisted_rv: u64 = listed.metadata.resource_version.unwrap().parse().unwrap();
    assert!(relisted_rv >= highest_acknowledged);
    let created = services
        .create(&PostParams::default(), &service("after-restart"))
        .await
        .unwrap();
    assert!(
        rv(&created) > highest_acknowledged,
        "resourceVersion {} continues above {highest_acknowledged}",
        rv(&created)
    );
}

/// Send SIGKILL with the `kill` command (no unsafe libc call in tests).
fn unsafe_free_kill(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A stored row that is not JSON (a disk error, a hand edit) does not keep
/// the server from starting: that object is left out, named in the log, and
/// kept in the database's `unreadable` table; every other object is served.
#[tokio::test]
async fn a_corrupt_row_is_set_aside_and_the_rest_is_served() {
    use okonomi_apiserver::{ResourceType, Store};
    let state = tempfile::tempdir().unwrap();
    let db = state.path().join("okonomi.db");
    let rt = ResourceType::config_map();
    {
        let store = Store::open(&db).await.unwrap();
        for name in ["good", "bad"] {
            store
                .create(
                    &rt,
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": name, "namespace": "default"},
                           "data": {"k": name}}),
                )
                .await
                .unwrap();
        }
    }
    let sqlite = rusqlite::Connection::open(&db).unwrap();
    let changed = sqlite
        .execute(
            "UPDATE objects SET body = '{\"truncated' WHERE name = 'bad'",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1, "the test corrupts the row it means to");
    drop(sqlite);

    let store = Store::open(&db).await.unwrap();
    assert_eq!(
        store.get(&rt, "default", "good").unwrap()["data"]["k"],
        "good"
    );
    assert!(store.get(&rt, "default", "bad").unwrap_err().is_not_found());
    // Nothing lost: the row is kept aside with why.
    let sqlite = rusqlite::Connection::open(&db).unwrap();
    let (body, reason): (String, String) = sqlite
        .query_row(
            "SELECT body, reason FROM unreadable WHERE name = 'bad'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(body, "{\"truncated");
    assert!(reason.starts_with("not JSON"), "{reason}");
    // The name is free again.
    store
        .create(
            &rt,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "bad", "namespace": "default"}}),
        )
        .await
        .unwrap();
}

/// A full disk is called a full disk, not "disk I/O error". Runs on a small
/// tmpfs of its own (needs root, as the engine's tests do).
#[tokio::test]
async fn a_full_disk_is_named_as_one() {
    use okonomi_apiserver::{ResourceType, Store};
    let mount_point = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(mount_point.path())
        .status()
        .unwrap();
    assert!(status.success(), "mounting a tmpfs needs root");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(mount_point.path());

    let store = Store::open(&mount_point.path().join("okonomi.db"))
        .await
        .unwrap();
    // Fill what is left, then write until the store says why it cannot.
    let filler = vec![b'x'; 4096];
    let mut file = std::fs::File::create(mount_point.path().join("filler")).unwrap();
    while std::io::Write::write_all(&mut file, &filler).is_ok() {}
    let big = "y".repeat(16 * 1024);
    let mut error = None;
    for i in 0..1000 {
        let written = store
            .create(
                &ResourceType::config_map(),
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": format!("cm-{i}"), "namespace": "default"},
                       "data": {"k": big}}),
            )
            .await;
        if let Err(e) = written {
            error = Some(e.to_string());
            break;
        }
    }
    let error = error.expect("a full tmpfs refuses a write");
    assert!(error.contains("is full: free some space there"), "{error}");
}
