//! The portability suite: ONE scenario list, run against a kube context the
//! way a user works — `okonomi deploy`, `okonomi traffic`, `kubectl`, HTTP to
//! the Service's URL. By default it starts okonomi's engine (`okonomi up`)
//! with a temp $OKONOMI_HOME and $KUBECONFIG on free loopback ports;
//! `OKONOMI_TEST_CONTEXT=NAME` runs the same list against any cluster with
//! Knative Serving (docs/portability.md). `OKONOMI_TEST_SCENARIOS=a,b` runs
//! a subset (later scenarios may need earlier ones).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use okonomi_tests::Target;
use okonomi_tests::scenarios::{self, Scenario};
use okonomi_tests::services::Redis;
use okonomi_tests::tools::workspace_root;
use okonomi_tests::uname;
use serde_json::Value;

/// How long a deploy may take (a cold cargo build of a function included).
const DEPLOY_TIMEOUT: &str = "600s";
/// Requests for the 50/50 split, and the allowed deviation (±5 points).
const SPLIT_REQUESTS: usize = 1000;
const SPLIT_TOLERANCE: f64 = 0.05;

/// What scenarios hand each other.
struct Suite {
    target: Target,
    hello_path: String,
    echo_path: String,
    counter_path: String,
    redis: Option<Redis>,
}

const SCENARIOS: &[(&str, Scenario<Suite>)] = &[
    ("doctor", doctor),
    ("deploy_hello", deploy_hello),
    ("new_revision_on_env_change", new_revision_on_env_change),
    ("echo_cloudevent", echo_cloudevent),
    ("split_50_50", split_50_50),
    ("tag_urls", tag_urls),
    ("scale_to_zero", scale_to_zero),
    ("counter_with_redis", counter_with_redis),
    ("dry_run_yaml_through_kubectl", dry_run_yaml_through_kubectl),
    ("delete", delete),
];

#[test]
fn portability_suite() {
    let target = Target::from_env().unwrap();
    let root = workspace_root();
    let mut suite = Suite {
        target,
        hello_path: root.join("functions/hello").display().to_string(),
        echo_path: root.join("functions/echo").display().to_string(),
        counter_path: root.join("functions/counter").display().to_string(),
        redis: None,
    };
    scenarios::run(&mut suite, SCENARIOS, |suite| &suite.target);
}

/// `okonomi deploy PATH ARGS…` in the suite's namespace; returns the URL it printed.
fn deploy(suite: &Suite, path: &str, extra: &[&str]) -> anyhow::Result<String> {
    suite.target.deploy(path, DEPLOY_TIMEOUT, extra)
}

/// `okonomi describe NAME -o json`.
fn describe(suite: &Suite, name: &str) -> anyhow::Result<Value> {
    suite
        .target
        .okonomi_ns(&["describe", name, "-o", "json"])?
        .success()?
        .json()
}

fn revision_names(description: &Value) -> Vec<String> {
    description["revisions"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

// ----- scenarios -----

/// `okonomi doctor` first, as a user would before the first deploy: nothing
/// fails on the target (Kubernetes and Knative versions, ingress, domain,
/// the functions' feature flags, mesh, registry credentials).
fn doctor(suite: &mut Suite) -> anyhow::Result<()> {
    for path in [&suite.hello_path, &suite.echo_path, &suite.counter_path] {
        let run = suite.target.okonomi(&["doctor", "-o", "json", path])?;
        let report = run.json()?;
        let failed: Vec<String> = report["findings"]
            .as_array()
            .map(|f| {
                f.iter()
                    .filter(|f| f["status"] == "fail")
                    .map(|f| format!("{}: {} (fix: {})", f["check"], f["message"], f["fix"]))
                    .collect()
            })
            .unwrap_or_default();
        ensure!(
            run.code == 0 && failed.is_empty(),
            "okonomi doctor {path} found what would break the suite:\n{}\n{run}",
            failed.join("\n")
        );
    }
    Ok(())
}

/// Deploy hello; its URL answers the seed app's line with this kernel's uname(2).
fn deploy_hello(suite: &mut Suite) -> anyhow::Result<()> {
    let hello = suite.hello_path.clone();
    let url = deploy(suite, &hello, &[])?;
    let answer = suite.target.http.get(&url)?;
    ensure!(
        answer.status == 200,
        "GET {url} → {} {}",
        answer.status,
        answer.body
    );
    let fields = uname::parse_seed_line(&answer.body)?;
    let local = uname::fields()?;
    ensure!(fields[0] == "Linux", "sysname {:?} is not Linux", fields[0]);
    ensure!(!fields[1].is_empty(), "empty nodename in {:?}", answer.body);
    if suite.target.is_engine() {
        // Same kernel: release, version and machine are this machine's.
        ensure!(
            fields[2..] == local[2..],
            "hello answered {:?}, but uname(2) here says {local:?}",
            answer.body
        );
    } else {
        ensure!(
            !fields[2].is_empty() && !fields[4].is_empty(),
            "empty release/machine in {:?}",
            answer.body
        );
    }
    let ksvc = suite.target.ksvc("hello")?;
    // The instance that answered has logged its start (the runtime's
    // "listening" line): pods' logs on a cluster, instance logs on the engine.
    let logs = suite
        .target
        .okonomi_ns(&["logs", "hello", "--tail", "200"])?
        .success()?;
    ensure!(
        logs.stdout.contains("listening"),
        "okonomi logs hello shows no start line:\n{logs}"
    );
    ensure!(
        ksvc["status"]["url"] == url.as_str(),
        "status.url {} is not the printed {url}",
        ksvc["status"]["url"]
    );
    Ok(())
}

/// A changed env makes a second revision, which takes the traffic.
fn new_revision_on_env_change(suite: &mut Suite) -> anyhow::Result<()> {
    let hello = suite.hello_path.clone();
    let before = revision_names(&describe(suite, "hello")?);
    let url = deploy(suite, &hello, &["--env", "GREETING=again"])?;
    let after = describe(suite, "hello")?;
    let names = revision_names(&after);
    ensure!(
        names.len() == before.len() + 1,
        "revisions before {before:?}, after {names:?}"
    );
    let ksvc = suite.target.ksvc("hello")?;
    let latest = ksvc["status"]["latestReadyRevisionName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(
        !before.contains(&latest),
        "latest ready revision {latest} is not new ({before:?})"
    );
    let env = &ksvc["spec"]["template"]["spec"]["containers"][0]["env"];
    ensure!(
        env.as_array().is_some_and(|vars| vars
            .iter()
            .any(|v| v["name"] == "GREETING" && v["value"] == "again")),
        "GREETING=again is not in the template's env: {env}"
    );
    let answer = suite.target.http.get(&url)?;
    ensure!(
        answer.status == 200 && answer.body.starts_with("Hello Container World!"),
        "GET {url} → {} {}",
        answer.status,
        answer.body
    );
    Ok(())
}

/// echo answers a binary-mode CloudEvent with its data under a new type,
/// source and id.
fn echo_cloudevent(suite: &mut Suite) -> anyhow::Result<()> {
    let echo = suite.echo_path.clone();
    let url = deploy(
        suite,
        &echo,
        &["--visibility", "public", "--env", "ECHO_SOURCE=/rev1"],
    )?;
    let data = r#"{"message":"hello from the portability suite"}"#;
    let answer =
        suite
            .target
            .http
            .post_cloudevent(&url, "suite-1", "dev.okonomi.test", "/suite", data)?;
    ensure!(
        answer.status == 200,
        "POST {url} → {} {}",
        answer.status,
        answer.body
    );
    ensure!(
        answer.header("ce-type") == "dev.okonomi.echo.reply",
        "ce-type {:?}",
        answer.header("ce-type")
    );
    ensure!(
        answer.header("ce-source") == "/rev1",
        "ce-source {:?}",
        answer.header("ce-source")
    );
    ensure!(
        !answer.header("ce-id").is_empty() && answer.header("ce-id") != "suite-1",
        "ce-id {:?}",
        answer.header("ce-id")
    );
    let body: Value = serde_json::from_str(&answer.body)
        .with_context(|| format!("reply body {:?}", answer.body))?;
    ensure!(
        body == serde_json::from_str::<Value>(data)?,
        "reply data {body} differs from {data}"
    );
    Ok(())
}

/// Two revisions of echo (ECHO_SOURCE /rev1, /rev2) split 50/50: over 1,000
/// requests each gets 50% ± 5 points.
fn split_50_50(suite: &mut Suite) -> anyhow::Result<()> {
    let echo = suite.echo_path.clone();
    let url = deploy(
        suite,
        &echo,
        &["--visibility", "public", "--env", "ECHO_SOURCE=/rev2"],
    )?;
    let revisions = revision_names(&describe(suite, "echo")?);
    ensure!(revisions.len() >= 2, "echo has revisions {revisions:?}");
    // Newest first.
    let (second, first) = (revisions[0].clone(), revisions[1].clone());
    suite
        .target
        .okonomi_ns(&[
            "traffic",
            "echo",
            "--traffic",
            &format!("{first}=50"),
            "--traffic",
            &format!("{second}=50"),
        ])?
        .success()?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..SPLIT_REQUESTS {
        let answer = suite.target.http.post_cloudevent(
            &url,
            &format!("split-{i}"),
            "dev.okonomi.test",
            "/suite",
            "{}",
        )?;
        ensure!(
            answer.status == 200,
            "request {i}: {} {}",
            answer.status,
            answer.body
        );
        *counts
            .entry(answer.header("ce-source").to_owned())
            .or_default() += 1;
    }
    for source in ["/rev1", "/rev2"] {
        let share = counts.get(source).copied().unwrap_or(0) as f64 / SPLIT_REQUESTS as f64;
        ensure!(
            (share - 0.5).abs() <= SPLIT_TOLERANCE,
            "{source} got {:.1}% of {SPLIT_REQUESTS} requests (want 50 ± 5): {counts:?}",
            share * 100.0
        );
    }
    ensure!(
        counts.len() == 2,
        "answers came from unexpected sources: {counts:?}"
    );
    Ok(())
}

/// Tags give each revision its own URL, which answers only from it.
fn tag_urls(suite: &mut Suite) -> anyhow::Result<()> {
    let revisions = revision_names(&describe(suite, "echo")?);
    ensure!(revisions.len() >= 2, "echo has revisions {revisions:?}");
    let (second, first) = (revisions[0].clone(), revisions[1].clone());
    suite
        .target
        .okonomi_ns(&[
            "traffic",
            "echo",
            "--tag",
            &format!("{first}=v1"),
            "--tag",
            &format!("{second}=v2"),
        ])?
        .success()?;
    let traffic = describe(suite, "echo")?["traffic"].clone();
    for (tag, source) in [("v1", "/rev1"), ("v2", "/rev2")] {
        let url = traffic
            .as_array()
            .and_then(|t| t.iter().find(|t| t["tag"] == tag))
            .and_then(|t| t["url"].as_str())
            .with_context(|| format!("no URL for tag {tag} in {traffic}"))?
            .to_owned();
        ensure!(
            url.contains(&format!("{tag}-echo.")),
            "tag URL {url} is not {tag}-echo.…"
        );
        for i in 0..20 {
            let answer = suite.target.http.post_cloudevent(
                &url,
                &format!("{tag}-{i}"),
                "dev.okonomi.test",
                "/suite",
                "{}",
            )?;
            ensure!(
                answer.status == 200,
                "{url}: {} {}",
                answer.status,
                answer.body
            );
            ensure!(
                answer.header("ce-source") == source,
                "{url} answered from {:?}, want {source}",
                answer.header("ce-source")
            );
        }
    }
    Ok(())
}

/// With a 6s stable window, an idle revision goes to zero instances (the
/// Revision's status.actualReplicas, which Knative and the engine both
/// report), and the next request still gets 200.
fn scale_to_zero(suite: &mut Suite) -> anyhow::Result<()> {
    let hello = suite.hello_path.clone();
    let url = deploy(
        suite,
        &hello,
        &["--env", "GREETING=again", "--scale-window", "6s"],
    )?;
    let answer = suite.target.http.get(&url)?;
    ensure!(answer.status == 200, "GET {url} → {}", answer.status);
    let revision = suite.target.ksvc("hello")?["status"]["latestReadyRevisionName"]
        .as_str()
        .context("no latestReadyRevisionName")?
        .to_owned();
    suite
        .target
        .wait_scaled_to_zero(&revision, Duration::from_secs(300))?;
    let answer = suite.target.http.get(&url)?;
    ensure!(
        answer.status == 200,
        "GET {url} after scale to zero → {} {}",
        answer.status,
        answer.body
    );
    ensure!(
        answer.body.starts_with("Hello Container World!"),
        "cold answer {:?}",
        answer.body
    );
    Ok(())
}

/// counter counts hits in a real Redis: consecutive GETs answer N, N+1, N+2.
fn counter_with_redis(suite: &mut Suite) -> anyhow::Result<()> {
    let redis_url = if suite.target.is_engine() {
        let redis = Redis::start()?;
        let url = redis.url();
        suite.redis = Some(redis);
        url
    } else {
        let manifest = REDIS_MANIFEST;
        suite
            .target
            .kubectl_ns_stdin(&["apply", "-f", "-"], manifest)?
            .success()?;
        suite
            .target
            .kubectl_ns(&["rollout", "status", "deployment/redis", "--timeout=300s"])?
            .success()?;
        format!(
            "redis://redis.{}.svc.cluster.local:6379",
            suite.target.namespace
        )
    };
    let counter = suite.counter_path.clone();
    let url = deploy(
        suite,
        &counter,
        &["--env", &format!("REDIS_URL={redis_url}")],
    )?;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let answer = suite.target.http.get(&url)?;
        ensure!(
            answer.status == 200,
            "GET {url} → {} {}",
            answer.status,
            answer.body
        );
        let n: u64 = answer
            .body
            .trim()
            .strip_prefix("Hello Container World! I have been seen ")
            .and_then(|rest| rest.strip_suffix(" times."))
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("not the counter's line: {:?}", answer.body))?;
        seen.push(n);
    }
    ensure!(
        seen[1] == seen[0] + 1 && seen[2] == seen[1] + 1,
        "counts {seen:?} do not go up by one"
    );
    if let Some(redis) = &suite.redis {
        let stored = redis.get("hits")?;
        ensure!(
            stored == seen[2].to_string(),
            "Redis holds hits={stored}, the function said {}",
            seen[2]
        );
    }
    Ok(())
}

/// `okonomi deploy --dry-run -o yaml | kubectl apply -f -` reaches the state
/// `okonomi deploy` reached: Ready, the same template, a URL that answers.
fn dry_run_yaml_through_kubectl(suite: &mut Suite) -> anyhow::Result<()> {
    let hello = suite.hello_path.clone();
    let yaml = suite
        .target
        .okonomi_ns(&[
            "deploy",
            &hello,
            "--name",
            "hello-yaml",
            "--dry-run",
            "-o",
            "yaml",
        ])?
        .success()?
        .stdout;
    ensure!(
        yaml.contains("kind: Service") && yaml.contains("serving.knative.dev/v1"),
        "not a Knative Service:\n{yaml}"
    );
    suite
        .target
        .kubectl_ns_stdin(&["apply", "-f", "-"], &yaml)?
        .success()?;
    suite
        .target
        .kubectl_ns(&[
            "wait",
            "--for=condition=Ready",
            "ksvc/hello-yaml",
            "--timeout=600s",
        ])?
        .success()?;
    let ksvc = suite.target.ksvc("hello-yaml")?;
    // The same function through `okonomi deploy` (server-side apply), built
    // from the same tree moments later, must reach the same template.
    deploy(suite, &hello, &["--name", "hello-ssa"])?;
    let applied = &ksvc["spec"]["template"]["spec"];
    let deployed = &suite.target.ksvc("hello-ssa")?["spec"]["template"]["spec"];
    ensure!(
        without_container_names(applied) == without_container_names(deployed),
        "the kubectl-applied template differs from okonomi deploy's:\n{applied}\nvs\n{deployed}"
    );
    let url = ksvc["status"]["url"]
        .as_str()
        .context("hello-yaml has no URL")?
        .to_owned();
    let answer = suite.target.http.get(&url)?;
    ensure!(
        answer.status == 200,
        "GET {url} → {} {}",
        answer.status,
        answer.body
    );
    uname::parse_seed_line(&answer.body)?;
    // Applying the same file again changes nothing that matters: same
    // generation, no new revision.
    suite
        .target
        .kubectl_ns_stdin(&["apply", "-f", "-"], &yaml)?
        .success()?;
    let again = suite.target.ksvc("hello-yaml")?;
    ensure!(
        again["metadata"]["generation"] == ksvc["metadata"]["generation"]
            && again["status"]["latestCreatedRevisionName"]
                == ksvc["status"]["latestCreatedRevisionName"],
        "re-applying the same YAML made a new generation or revision: {} {} → {} {}",
        ksvc["metadata"]["generation"],
        ksvc["status"]["latestCreatedRevisionName"],
        again["metadata"]["generation"],
        again["status"]["latestCreatedRevisionName"]
    );
    Ok(())
}

/// A revision template's spec without the container names (derived from
/// the service name).
fn without_container_names(spec: &Value) -> Value {
    let mut spec = spec.clone();
    if let Some(containers) = spec["containers"].as_array_mut() {
        for c in containers {
            if let Some(obj) = c.as_object_mut() {
                obj.remove("name");
            }
        }
    }
    spec
}

/// `okonomi delete` removes the Service, its revisions and its URL.
fn delete(suite: &mut Suite) -> anyhow::Result<()> {
    let url = suite.target.ksvc("hello")?["status"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut names = vec![
        "delete",
        "hello",
        "echo",
        "counter",
        "hello-yaml",
        "hello-ssa",
    ];
    names.retain(|n| *n == "delete" || suite.target.ksvc(n).is_ok());
    suite.target.okonomi_ns(&names)?.success()?;
    let gone = suite.target.kubectl_ns(&["get", "ksvc", "hello"])?;
    ensure!(
        gone.code != 0 && gone.stderr.contains("not found"),
        "hello is still there: {gone}"
    );
    let target = &suite.target;
    target.eventually(
        "hello's revisions being deleted",
        Duration::from_secs(60),
        || {
            let list = target
                .kubectl_ns(&[
                    "get",
                    "revisions",
                    "-l",
                    "serving.knative.dev/service=hello",
                    "-o",
                    "json",
                ])?
                .success()?
                .json()?;
            Ok(list["items"]
                .as_array()
                .is_some_and(|i| i.is_empty())
                .then_some(()))
        },
    )?;
    if !url.is_empty() {
        target.eventually(
            "hello's URL to stop answering 200",
            Duration::from_secs(60),
            || {
                match target.http.get(&url) {
                    Ok(answer) => Ok((answer.status != 200).then_some(())),
                    // No route at all (DNS gone, connection refused) is gone too.
                    Err(_) => Ok(Some(())),
                }
            },
        )?;
    }
    let listed = suite
        .target
        .okonomi_ns(&["list", "-o", "json"])?
        .success()?
        .json()?;
    if listed
        .as_array()
        .is_some_and(|l| l.iter().any(|s| s["name"] == "hello"))
    {
        bail!("okonomi list still shows hello: {listed}");
    }
    Ok(())
}

/// Redis for clusters: the hands-on's Deployment + Service, in the suite's namespace.
const REDIS_MANIFEST: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: redis
  labels: {app: redis}
spec:
  replicas: 1
  selector:
    matchLabels: {app: redis}
  template:
    metadata:
      labels: {app: redis}
    spec:
      containers:
        - name: redis
          image: redis:7-alpine
          ports: [{containerPort: 6379}]
---
apiVersion: v1
kind: Service
metadata:
  name: redis
spec:
  selector: {app: redis}
  ports: [{port: 6379, targetPort: 6379}]
"#;
