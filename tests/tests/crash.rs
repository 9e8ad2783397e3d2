//! `kill -9` of the engine under load, then a restart on the same state dir
//! and ports: every Service comes back as it was (same uid, generation,
//! revisions, traffic; resourceVersions never go backwards), min-scale
//! instances come back, a revision that was at zero stays there until asked,
//! and every URL — tag URLs too — answers again. The killed engine's
//! instances must not outlive it (orphans would hold ports and memory).
//!
//! Requests that fail while the engine is dead are expected; every request
//! sent before the kill that finished before it, and every request sent once
//! the restarted engine's port accepts connections, must succeed.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, ensure};
use okonomi_tests::Target;
use okonomi_tests::http::Http;
use okonomi_tests::process::{self, ProcessId};
use okonomi_tests::tools::workspace_root;
use okonomi_tests::uname;
use serde_json::{Value, json};

/// Load phases, as seen by each request when it starts and when it ends.
const BEFORE_KILL: u8 = 0;
const KILLED: u8 = 1;
const RESTARTED: u8 = 2;

/// Successful requests per URL wanted in a phase before moving on.
const ANSWERS_PER_PHASE: usize = 20;

/// What a URL must answer.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// hello's seed line with this machine's uname(2).
    Hello,
    /// echo's reply to a CloudEvent, from one of these revisions (their
    /// ECHO_SOURCE).
    Echo(&'static [&'static str]),
}

/// One request's fate.
#[derive(Debug)]
struct Outcome {
    url: String,
    started: u8,
    ended: u8,
    error: Option<String>,
}

/// Threads sending requests, one at a time each, until stopped.
struct Load {
    http_port: u16,
    phase: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn new(http_port: u16) -> Self {
        Self {
            http_port,
            phase: Arc::new(AtomicU8::new(BEFORE_KILL)),
            stop: Arc::new(AtomicBool::new(false)),
            outcomes: Arc::new(Mutex::new(Vec::new())),
            threads: Vec::new(),
        }
    }

    /// Adds `workers` threads requesting `url`.
    fn add(&mut self, url: &str, expect: Expect, workers: usize) {
        let expected_uname = uname::fields().unwrap().to_vec();
        for worker in 0..workers {
            let url = url.to_owned();
            let expected_uname = expected_uname.clone();
            let (phase, stop, outcomes) =
                (self.phase.clone(), self.stop.clone(), self.outcomes.clone());
            let http_port = self.http_port;
            self.threads.push(std::thread::spawn(move || {
                let mut http = Http::new(Some(http_port)).unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    let started = phase.load(Ordering::Acquire);
                    let result = request(&http, &url, expect, &format!("{worker}-{n}"))
                        .and_then(|answer| check(answer, expect, &expected_uname));
                    let ended = phase.load(Ordering::Acquire);
                    let failed = result.is_err();
                    outcomes.lock().unwrap().push(Outcome {
                        url: url.clone(),
                        started,
                        ended,
                        error: result.err().map(|e| format!("{e:#}")),
                    });
                    if failed {
                        // A fresh client: no pooled connection to a dead engine.
                        http = Http::new(Some(http_port)).unwrap();
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }));
        }
    }

    fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::Release);
    }

    /// Successful requests to `url` that started and ended in `phase`.
    fn successes(&self, url: &str, phase: u8) -> usize {
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.url == url && o.started == phase && o.ended == phase && o.error.is_none())
            .count()
    }

    fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads {
            thread.join().unwrap();
        }
        std::mem::take(&mut *self.outcomes.lock().unwrap())
    }
}

/// The request a URL gets.
fn request(
    http: &Http,
    url: &str,
    expect: Expect,
    id: &str,
) -> anyhow::Result<(okonomi_tests::http::Answer, String)> {
    match expect {
        Expect::Hello => Ok((http.get(url)?, String::new())),
        Expect::Echo(_) => {
            let data = json!({ "request": id }).to_string();
            let answer = http.post_cloudevent(
                url,
                &format!("crash-{id}"),
                "dev.okonomi.test",
                "/crash",
                &data,
            )?;
            Ok((answer, data))
        }
    }
}

fn check(
    (answer, sent): (okonomi_tests::http::Answer, String),
    expect: Expect,
    expected_uname: &[String],
) -> anyhow::Result<()> {
    ensure!(
        answer.status == 200,
        "status {}: {}",
        answer.status,
        answer.body
    );
    match expect {
        Expect::Hello => {
            let fields = uname::parse_seed_line(&answer.body)?;
            ensure!(
                fields == expected_uname,
                "hello answered {:?}, want uname {expected_uname:?}",
                answer.body
            );
        }
        Expect::Echo(sources) => {
            let source = answer.header("ce-source");
            ensure!(
                sources.contains(&source),
                "answered from {source:?}, want one of {sources:?}"
            );
            let body: Value = serde_json::from_str(&answer.body)
                .with_context(|| format!("reply body {:?}", answer.body))?;
            ensure!(
                body == serde_json::from_str::<Value>(&sent)?,
                "reply data {body} differs from {sent}"
            );
        }
    }
    Ok(())
}

fn service(name: &str, function: &str, annotations: Value, env: Value, traffic: Value) -> String {
    let image = format!(
        "okonomi://{}",
        workspace_root().join("functions").join(function).display()
    );
    let mut service = json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"template": {
            "metadata": {"annotations": annotations},
            "spec": {"containers": [{
                "image": image,
                "env": env,
                "readinessProbe": {"httpGet": {"path": "/health/readiness"}},
            }]},
        }},
    });
    if !traffic.is_null() {
        service["spec"]["traffic"] = traffic;
    }
    service.to_string()
}

fn apply(target: &Target, manifest: &str) {
    target
        .kubectl_ns_stdin(&["apply", "-f", "-"], manifest)
        .unwrap()
        .success()
        .unwrap();
}

fn condition_true(object: &Value, type_: &str) -> bool {
    object["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == type_ && c["status"] == "True")
    })
}

/// Waits until the Service has reconciled its generation and is Ready.
fn wait_ready(target: &Target, name: &str, timeout: Duration) -> Value {
    target
        .eventually(&format!("ksvc {name} Ready"), timeout, || {
            let service = target.ksvc(name)?;
            let reconciled =
                service["status"]["observedGeneration"] == service["metadata"]["generation"];
            Ok((reconciled && condition_true(&service, "Ready")).then_some(service))
        })
        .unwrap()
}

fn url_of(service: &Value) -> String {
    service["status"]["url"].as_str().unwrap().to_owned()
}

fn tag_url(service: &Value, tag: &str) -> String {
    service["status"]["traffic"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["tag"] == tag))
        .and_then(|t| t["url"].as_str())
        .unwrap_or_else(|| panic!("no URL for tag {tag} in {service}"))
        .to_owned()
}

/// The engine's instances: children of `okonomi up`, by revision.
fn instances(engine_pid: u32) -> BTreeMap<String, Vec<ProcessId>> {
    let mut found: BTreeMap<String, Vec<ProcessId>> = BTreeMap::new();
    for child in process::children(engine_pid) {
        if let Some(revision) = process::env_var(child.pid, "K_REVISION") {
            found.entry(revision).or_default().push(child);
        }
    }
    found
}

fn engine_pid(target: &Target) -> u32 {
    target.engine.as_ref().unwrap().process.id().unwrap()
}

const KINDS: [&str; 4] = [
    "services.serving.knative.dev",
    "configurations.serving.knative.dev",
    "revisions.serving.knative.dev",
    "routes.serving.knative.dev",
];

/// Every Knative object by `KIND/NAME`.
fn objects(target: &Target) -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    for kind in KINDS {
        let list = target
            .kubectl_ns(&["get", kind, "-o", "json"])
            .unwrap()
            .success()
            .unwrap()
            .json()
            .unwrap();
        for item in list["items"].as_array().unwrap() {
            let name = item["metadata"]["name"].as_str().unwrap();
            all.insert(format!("{kind}/{name}"), item.clone());
        }
    }
    all
}

fn resource_version(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric resourceVersion in {object}"))
}

#[test]
fn the_engine_comes_back_after_kill_9_under_load() {
    let mut target = Target::engine().unwrap();
    let http_port = target.engine.as_ref().unwrap().http_port;
    let build_timeout = Duration::from_secs(900);

    // hello keeps two instances (min-scale); idle goes to zero after its 6s
    // window and the grace period; echo has two revisions split 80/20 with
    // a tag each.
    apply(
        &target,
        &service(
            "hello",
            "hello",
            json!({"autoscaling.knative.dev/min-scale": "2"}),
            json!([]),
            Value::Null,
        ),
    );
    apply(
        &target,
        &service(
            "idle",
            "hello",
            json!({"autoscaling.knative.dev/window": "6s"}),
            json!([]),
            Value::Null,
        ),
    );
    let echo_v1 = json!([{"name": "ECHO_SOURCE", "value": "/rev1"}]);
    let echo_v2 = json!([{"name": "ECHO_SOURCE", "value": "/rev2"}]);
    apply(
        &target,
        &service("echo", "echo", json!({}), echo_v1, Value::Null),
    );
    let hello = wait_ready(&target, "hello", build_timeout);
    let idle = wait_ready(&target, "idle", build_timeout);
    wait_ready(&target, "echo", build_timeout);
    apply(
        &target,
        &service("echo", "echo", json!({}), echo_v2.clone(), Value::Null),
    );
    target
        .eventually("echo-00002 ready", build_timeout, || {
            let echo = target.ksvc("echo")?;
            Ok((echo["status"]["latestReadyRevisionName"] == "echo-00002").then_some(()))
        })
        .unwrap();
    apply(
        &target,
        &service(
            "echo",
            "echo",
            json!({}),
            echo_v2,
            json!([
                {"revisionName": "echo-00001", "percent": 80, "tag": "v1"},
                {"revisionName": "echo-00002", "percent": 20, "tag": "v2"},
            ]),
        ),
    );
    let echo = target
        .eventually("echo's 80/20 split with tags", build_timeout, || {
            let echo = target.ksvc("echo")?;
            let tags = echo["status"]["traffic"]
                .as_array()
                .map(|t| t.iter().filter(|t| t["url"].is_string()).count())
                .unwrap_or(0);
            let reconciled = echo["status"]["observedGeneration"] == echo["metadata"]["generation"];
            Ok((reconciled && tags == 2 && condition_true(&echo, "Ready")).then_some(echo))
        })
        .unwrap();

    let urls: Vec<(String, Expect, usize)> = vec![
        (url_of(&hello), Expect::Hello, 2),
        (url_of(&echo), Expect::Echo(&["/rev1", "/rev2"]), 2),
        (tag_url(&echo, "v1"), Expect::Echo(&["/rev1"]), 1),
        (tag_url(&echo, "v2"), Expect::Echo(&["/rev2"]), 1),
    ];
    let mut load = Load::new(http_port);
    for (url, expect, workers) in &urls {
        load.add(url, *expect, *workers);
    }

    // idle is at zero when the engine dies.
    let pid = engine_pid(&target);
    target
        .eventually("idle at zero", Duration::from_secs(300), || {
            let revision = target
                .kubectl_ns(&["get", "revision", "idle-00001", "-o", "json"])?
                .success()?
                .json()?;
            let at_zero = revision["status"]["actualReplicas"] == 0
                && !instances(pid).contains_key("idle-00001");
            Ok(at_zero.then_some(()))
        })
        .unwrap();
    for (url, _, _) in &urls {
        target
            .eventually(
                &format!("{ANSWERS_PER_PHASE} answers from {url} before the kill"),
                Duration::from_secs(300),
                || Ok((load.successes(url, BEFORE_KILL) >= ANSWERS_PER_PHASE).then_some(())),
            )
            .unwrap();
    }

    let before = objects(&target);
    let running = instances(pid);
    assert!(
        running.get("hello-00001").map_or(0, Vec::len) >= 2,
        "hello's min-scale instances before the kill: {running:?}"
    );
    for revision in ["echo-00001", "echo-00002"] {
        assert!(
            running.contains_key(revision),
            "{revision} runs no instance: {running:?}"
        );
    }
    assert!(!running.contains_key("idle-00001"), "{running:?}");

    load.set_phase(KILLED);
    target.kill_engine().unwrap();

    // The dead engine's instances go with it.
    let orphans = target.eventually(
        "the killed engine's instances exiting",
        Duration::from_secs(60),
        || {
            let alive: Vec<&ProcessId> = running
                .values()
                .flatten()
                .filter(|p| p.is_alive())
                .collect();
            Ok(alive.is_empty().then_some(()))
        },
    );
    if let Err(error) = orphans {
        let alive: Vec<(String, ProcessId)> = running
            .iter()
            .flat_map(|(r, ps)| ps.iter().map(move |p| (r.clone(), *p)))
            .filter(|(_, p)| p.is_alive())
            .collect();
        for (_, p) in &alive {
            // SAFETY: kill(2) on a process this test's engine started.
            unsafe {
                libc::kill(p.pid as libc::pid_t, libc::SIGKILL);
            }
        }
        panic!("{error:#}: orphans {alive:?}");
    }

    target.restart_engine(Duration::from_secs(120)).unwrap();
    load.set_phase(RESTARTED);
    target.wait_for_api(Duration::from_secs(120)).unwrap();
    let pid = engine_pid(&target);

    for name in ["hello", "idle", "echo"] {
        wait_ready(&target, name, Duration::from_secs(300));
    }
    // A revision at zero before the kill stays at zero until a request comes.
    assert!(
        !instances(pid).contains_key("idle-00001"),
        "idle was at zero before the kill but runs again: {:?}",
        instances(pid)
    );
    let after = objects(&target);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the objects after the restart"
    );
    for (key, old) in &before {
        let new = &after[key];
        for field in ["uid", "generation", "creationTimestamp"] {
            assert_eq!(
                new["metadata"][field], old["metadata"][field],
                "{key}: {field}"
            );
        }
        assert_eq!(new["spec"], old["spec"], "{key}: spec");
        assert!(
            resource_version(new) >= resource_version(old),
            "{key}: resourceVersion went back from {} to {}",
            resource_version(old),
            resource_version(new)
        );
        if key.starts_with("services.") || key.starts_with("routes.") {
            assert_eq!(
                new["status"]["traffic"], old["status"]["traffic"],
                "{key}: traffic"
            );
            assert_eq!(new["status"]["url"], old["status"]["url"], "{key}: url");
        }
        if key.starts_with("services.") || key.starts_with("configurations.") {
            for field in ["latestReadyRevisionName", "latestCreatedRevisionName"] {
                assert_eq!(new["status"][field], old["status"][field], "{key}: {field}");
            }
        }
    }

    // hello's min-scale instances come back.
    target
        .eventually(
            "hello's two instances back",
            Duration::from_secs(300),
            || {
                let revision = target
                    .kubectl_ns(&["get", "revision", "hello-00001", "-o", "json"])?
                    .success()?
                    .json()?;
                let ready = revision["status"]["actualReplicas"].as_i64().unwrap_or(0);
                let running = instances(pid).get("hello-00001").map_or(0, Vec::len);
                Ok((ready >= 2 && running >= 2).then_some(()))
            },
        )
        .unwrap();

    // Every URL answers, idle's too (from zero).
    let idle_url = url_of(&idle);
    load.add(&idle_url, Expect::Hello, 1);
    for url in urls.iter().map(|(u, _, _)| u).chain([&idle_url]) {
        target
            .eventually(
                &format!("{ANSWERS_PER_PHASE} answers from {url} after the restart"),
                Duration::from_secs(300),
                || Ok((load.successes(url, RESTARTED) >= ANSWERS_PER_PHASE).then_some(())),
            )
            .unwrap();
    }

    // A write after the restart gets a resourceVersion above every earlier one.
    let newest_before = before.values().map(resource_version).max().unwrap();
    target
        .kubectl_ns(&[
            "annotate",
            "ksvc",
            "hello",
            "okonomi.dev/crash-test=restarted",
        ])
        .unwrap()
        .success()
        .unwrap();
    let annotated = target.ksvc("hello").unwrap();
    assert!(
        resource_version(&annotated) > newest_before,
        "resourceVersion {} after the restart is not above {newest_before}",
        resource_version(&annotated)
    );

    let outcomes = load.stop();
    let must_succeed = |o: &&Outcome| {
        (o.started == BEFORE_KILL && o.ended == BEFORE_KILL) || o.started == RESTARTED
    };
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(must_succeed)
        .filter(|o| o.error.is_some())
        .collect();
    let checked = outcomes.iter().filter(must_succeed).count();
    let in_kill_window = outcomes
        .iter()
        .filter(|o| o.error.is_some() && !must_succeed(o))
        .count();
    eprintln!(
        "{} requests: {checked} outside the kill window, {in_kill_window} failed inside it",
        outcomes.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {checked} requests outside the kill window failed, first ones: {:#?}",
        failed.len(),
        &failed[..failed.len().min(10)]
    );
}
