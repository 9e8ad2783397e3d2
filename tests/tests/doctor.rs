//! `okonomi doctor` against okonomi's engine: it passes there, and for each
//! broken set-up this test makes in the engine's `knative-serving`
//! namespace (a `config-domain` without a domain, a `config-features` with a
//! flag the function needs turned off, a Serving release too old) it fails
//! that check and names a fix — which, run as printed, makes the check pass.

#![allow(clippy::unwrap_used)]

use anyhow::{Context, ensure};
use okonomi_tests::Target;
use okonomi_tests::tools::workspace_root;
use serde_json::Value;

/// `okonomi doctor -o json [PATH]` on the engine; the report and the exit code.
fn doctor(target: &Target, path: Option<&str>) -> anyhow::Result<(Value, i32)> {
    let mut args = vec!["doctor", "-o", "json"];
    args.extend(path);
    let run = target.okonomi(&args)?;
    let report = run.json().with_context(|| format!("{run}"))?;
    ensure!(
        (run.code == 0) == (report["ok"] == true),
        "exit code {} does not match ok = {}:\n{run}",
        run.code,
        report["ok"]
    );
    Ok((report, run.code))
}

fn finding<'a>(report: &'a Value, check: &str) -> anyhow::Result<&'a Value> {
    report["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["check"] == check))
        .with_context(|| format!("no {check:?} finding in {report:#}"))
}

fn status<'a>(report: &'a Value, check: &str) -> anyhow::Result<&'a str> {
    finding(report, check)?["status"]
        .as_str()
        .with_context(|| format!("{check:?} has no status"))
}

/// Runs a finding's fix as printed (with the test's kubeconfig, whose current
/// context is the engine) and fails unless it succeeds.
fn run_fix(target: &Target, report: &Value, check: &str) -> anyhow::Result<String> {
    let fix = finding(report, check)?["fix"]
        .as_str()
        .with_context(|| format!("{check:?} names no fix: {report:#}"))?
        .to_owned();
    // Fixes that offer alternatives put the first one before three spaces.
    let command = fix.split("   ").next().unwrap_or(&fix).to_owned();
    let sh = okonomi_tests::tools::require("sh", "dash")?;
    target
        .okonomi
        .run_program(&sh, &["-c", &command], None)?
        .success()?;
    Ok(fix)
}

fn apply(target: &Target, yaml: &str) -> anyhow::Result<()> {
    target
        .okonomi
        .kubectl_stdin(&["--context", &target.context, "apply", "-f", "-"], yaml)?
        .success()?;
    Ok(())
}

#[test]
fn doctor_passes_on_the_engine_and_names_the_fix_for_each_broken_set_up() {
    let target = Target::engine().unwrap();
    let hello = workspace_root().join("functions/hello");
    let hello = hello.to_str().unwrap();

    // The engine as it starts: nothing fails.
    let (report, code) = doctor(&target, Some(hello)).unwrap();
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["engine"], true, "{report:#}");
    for check in [
        "kubernetes",
        "knative-serving",
        "domain",
        "features",
        "registry",
    ] {
        assert_eq!(status(&report, check).unwrap(), "pass", "{report:#}");
    }
    assert_eq!(
        report["checked_against"]["knative_serving"],
        okonomi_knative::versions::KNATIVE_SERVING.to_string()
    );

    // A config-domain without a catch-all: every Route is svc.cluster.local.
    if target
        .kubectl(&["get", "namespace", "knative-serving"])
        .unwrap()
        .code
        != 0
    {
        target
            .kubectl(&["create", "namespace", "knative-serving"])
            .unwrap()
            .success()
            .unwrap();
    }
    apply(
        &target,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-domain\n  namespace: knative-serving\ndata:\n  _example: |\n    example.com: |\n  internal.example.org: |\n    selector:\n      app: secret\n",
    )
    .unwrap();
    let (report, code) = doctor(&target, None).unwrap();
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(status(&report, "domain").unwrap(), "fail", "{report:#}");
    let message = finding(&report, "domain").unwrap()["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("svc.cluster.local"), "{message}");
    // The fix offers Magic DNS first; here the second, a domain of our own, is
    // what the engine can use, so set one the way the fix's patch does.
    let fix = finding(&report, "domain").unwrap()["fix"].as_str().unwrap();
    assert!(fix.contains("serving-default-domain.yaml"), "{fix}");
    assert!(
        fix.contains("kubectl patch configmap/config-domain"),
        "{fix}"
    );
    target
        .kubectl(&[
            "patch",
            "configmap/config-domain",
            "-n",
            "knative-serving",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"fn.example.com":"","127.0.0.1.sslip.io":""}}"#,
        ])
        .unwrap()
        .success()
        .unwrap();
    // Two catch-alls: the lexically smallest wins, and doctor says which.
    let (report, _) = doctor(&target, None).unwrap();
    assert_eq!(status(&report, "domain").unwrap(), "warn", "{report:#}");
    let message = finding(&report, "domain").unwrap()["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("127.0.0.1.sslip.io, so fn.example.com never appear"),
        "{message}"
    );
    let fix = run_fix(&target, &report, "domain").unwrap();
    assert!(fix.contains(r#""fn.example.com":null"#), "{fix}");
    let (report, _) = doctor(&target, None).unwrap();
    assert_eq!(status(&report, "domain").unwrap(), "pass", "{report:#}");

    // A function that needs kubernetes.podspec-nodeselector, turned off.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("okonomi.toml"),
        "[function]\nname = \"placed\"\n[placement]\nnode_pool = \"gpu\"\n",
    )
    .unwrap();
    let placed = dir.path().to_str().unwrap();
    apply(
        &target,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-features\n  namespace: knative-serving\ndata:\n  kubernetes.podspec-nodeselector: Disabled\n  multi-container: enabled\n",
    )
    .unwrap();
    let (report, code) = doctor(&target, Some(placed)).unwrap();
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(status(&report, "features").unwrap(), "fail", "{report:#}");
    let fix = run_fix(&target, &report, "features").unwrap();
    assert!(
        fix.contains(r#""kubernetes.podspec-nodeselector":"enabled""#),
        "{fix}"
    );
    let (report, _) = doctor(&target, Some(placed)).unwrap();
    assert_eq!(status(&report, "features").unwrap(), "pass", "{report:#}");

    // A Serving release older than any okonomi knows.
    target
        .kubectl(&[
            "label",
            "namespace",
            "knative-serving",
            "app.kubernetes.io/version=1.9.0",
        ])
        .unwrap()
        .success()
        .unwrap();
    let (report, code) = doctor(&target, None).unwrap();
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        status(&report, "knative-serving").unwrap(),
        "fail",
        "{report:#}"
    );
    assert_eq!(report["knative_serving"], "1.9.0", "{report:#}");
    let fix = finding(&report, "knative-serving").unwrap()["fix"]
        .as_str()
        .unwrap();
    assert!(
        fix.contains(&okonomi_knative::versions::serving_url("serving-core.yaml")),
        "{fix}"
    );
    // The pinned release passes.
    let pinned = format!(
        "app.kubernetes.io/version={}",
        okonomi_knative::versions::KNATIVE_SERVING
    );
    target
        .kubectl(&[
            "label",
            "--overwrite",
            "namespace",
            "knative-serving",
            &pinned,
        ])
        .unwrap()
        .success()
        .unwrap();
    let (report, code) = doctor(&target, Some(placed)).unwrap();
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        status(&report, "knative-serving").unwrap(),
        "pass",
        "{report:#}"
    );
}

#[test]
fn doctor_without_a_context_fails_with_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = std::collections::BTreeMap::new();
    env.insert(
        "KUBECONFIG".to_owned(),
        dir.path().join("none").display().to_string(),
    );
    let okonomi = okonomi_tests::Okonomi::new(env).unwrap();
    let run = okonomi.run(&["doctor", "-o", "json"]).unwrap();
    assert_eq!(run.code, 1, "{run}");
    let report = run.json().unwrap();
    assert_eq!(report["ok"], false);
    let context = &report["findings"][0];
    assert_eq!(context["check"], "context", "{report:#}");
    assert!(
        context["message"].as_str().unwrap().contains("okonomi up"),
        "{report:#}"
    );
}
