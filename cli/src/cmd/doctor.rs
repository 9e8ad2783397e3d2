//! `okonomi doctor [PATH]`: a preflight to run before the first deploy (and
//! the first step of the portability suite). It reads what the kube context's
//! cluster says about itself and reports each finding as pass, warn or fail,
//! with the fix as a command to run. It changes nothing.
//!
//! What is checked, and how:
//! - `kubernetes`: the API server's `/version` against the oldest Kubernetes
//!   the installed (else the pinned) Knative Serving release starts on;
//! - `knative-serving`: `serving.knative.dev/v1` served, and the release from
//!   the `app.kubernetes.io/version` label of the `knative-serving` namespace;
//! - `ingress`: `config-network`'s ingress class, and for Istio's class
//!   net-istio's controller and Istio's networking API;
//! - `domain`: the domain `config-domain` gives a Route with no labels, read
//!   as Knative reads it (no catch-all = `svc.cluster.local` = no external
//!   URL; several catch-alls = the lexically smallest wins);
//! - `features`: the `config-features` flags the function's okonomi.toml needs;
//! - `mesh`: PeerAuthentication modes against sidecar injection, by
//!   Knative's rules (STRICT anywhere needs sidecars in `knative-serving`;
//!   `knative-serving` itself must not be STRICT);
//! - `registry`: push credentials for the registry, found the way `okonomi
//!   build` finds them (`~/.docker/config.json`, its credential helpers) —
//!   no Docker involved;
//! - `pull`: whether the cluster may pull from it. Checked on GKE with
//!   gcloud (the node service account's Artifact Registry role); on EKS, AKS
//!   and other registries only advised, with the command that checks it.
//!
//! okonomi's engine is recognised by the `-okonomi` suffix of its
//! `gitVersion` (`v1.33.0-okonomi`): it is Knative Serving itself, so
//! Knative's Kubernetes minimum does not apply, and a missing `config-*`
//! ConfigMap means the engine's own defaults (domain `localhost`, its own
//! router) rather than a broken install. ConfigMaps present in the engine's
//! `knative-serving` namespace are read like a cluster's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams};
use oci_client::secrets::RegistryAuth;
use okonomi_knative::cluster_config::{self, KNATIVE_NAMESPACE};
use okonomi_knative::manifest::{Cloud, FunctionManifest, MANIFEST_FILE};
use okonomi_knative::render::RenderOptions;
use okonomi_knative::versions::{self, Version};
use serde::Serialize;

use crate::cluster::{Cluster, ClusterError};
use crate::global::Global;

mod gke;
mod mesh;

const EXAMPLES: &str = "\
Examples:
  okonomi doctor                                   the current context; okonomi.toml in . if there is one
  okonomi doctor functions/hello --context gke_p_europe-west1_okonomi
  okonomi doctor -o json functions/hello           for CI: {\"findings\":[{\"check\",\"status\",\"message\",\"fix\"}],…}

Exit codes: 0 nothing failed (warnings allowed), 1 at least one check failed.";

/// How long one check may wait on the cluster or a tool.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `okonomi doctor`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// A function crate (or its okonomi.toml): adds the checks of what it
    /// needs (feature flags, its registry). Default: `.` when it has an okonomi.toml.
    pub path: Option<PathBuf>,
    /// Kubeconfig context to check (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Registry prefix to check push and pull rights for (default:
    /// OKONOMI_REGISTRY, else the function's okonomi.toml).
    #[arg(long, env = "OKONOMI_REGISTRY", value_name = "REGISTRY")]
    pub registry: Option<String>,
}

/// How a finding came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Pass,
    /// Works, but worth a look (or could not be checked: the message says which).
    Warn,
    /// Deploys or URLs will not work until fixed.
    Fail,
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Which check (`kubernetes`, `knative-serving`, `ingress`, `domain`,
    /// `features`, `mesh`, `registry`, `pull`, `context`).
    pub check: &'static str,
    /// pass, warn or fail.
    pub status: Status,
    /// What was found.
    pub message: String,
    /// The command that fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn new(check: &'static str, status: Status, message: impl Into<String>) -> Self {
        Self {
            check,
            status,
            message: message.into(),
            fix: None,
        }
    }

    fn pass(check: &'static str, message: impl Into<String>) -> Self {
        Self::new(check, Status::Pass, message)
    }

    fn warn(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(check, Status::Warn, message).with_fix(fix)
    }

    fn fail(check: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(check, Status::Fail, message).with_fix(fix)
    }

    fn with_fix(mut self, fix: impl Into<String>) -> Self {
        let fix = fix.into();
        self.fix = (!fix.is_empty()).then_some(fix);
        self
    }
}

/// Why a check could not read what it needed.
#[derive(Debug, thiserror::Error)]
enum CheckError {
    /// The API server answered with an error.
    #[error(transparent)]
    Api(ClusterError),
    /// The API server did not answer in time.
    #[error("{action} took longer than {seconds}s")]
    Timeout {
        /// What was being read.
        action: String,
        /// The limit.
        seconds: u64,
    },
}

/// The releases the checks were written against.
#[derive(Debug, Serialize)]
struct CheckedAgainst {
    knative_serving: String,
    net_istio: String,
}

/// What `-o json` prints.
#[derive(Debug, Serialize)]
struct Report {
    context: String,
    server: String,
    /// The API server's gitVersion.
    #[serde(skip_serializing_if = "Option::is_none")]
    kubernetes: Option<String>,
    /// True for okonomi's engine.
    engine: bool,
    /// The installed Knative Serving release, when the cluster says.
    #[serde(skip_serializing_if = "Option::is_none")]
    knative_serving: Option<String>,
    checked_against: CheckedAgainst,
    findings: Vec<Finding>,
    /// False when any finding failed.
    ok: bool,
}

/// Runs `okonomi doctor`.
pub async fn run(args: Args, global: &Global) -> anyhow::Result<ExitCode> {
    let manifest = load_manifest(args.path.as_deref()).await?;
    let registry = args.registry.clone().filter(|r| !r.is_empty()).or_else(|| {
        manifest
            .as_ref()
            .and_then(|m| m.registry(m.profile.as_ref()))
    });
    let report = match Cluster::connect(args.context.as_deref()).await {
        Ok(cluster) => examine(&cluster, manifest.as_ref(), registry.as_deref()).await,
        Err(error) => Report {
            context: args.context.clone().unwrap_or_default(),
            server: String::new(),
            kubernetes: None,
            engine: false,
            knative_serving: None,
            checked_against: checked_against(),
            findings: vec![Finding::fail(
                "context",
                error.to_string(),
                match error {
                    ClusterError::NoContext { .. } => {
                        "okonomi up   (the local engine), or the get-credentials command of your cloud above"
                    }
                    _ => "kubectl config get-contexts",
                },
            )],
            ok: false,
        },
    };
    crate::output::print(global, &report, text)?;
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_FAILURE)
    })
}

fn checked_against() -> CheckedAgainst {
    CheckedAgainst {
        knative_serving: versions::KNATIVE_SERVING.to_string(),
        net_istio: versions::NET_ISTIO.to_string(),
    }
}

/// okonomi.toml at `path` (a directory or the file), or in `.` when no path
/// is given and there is one there.
async fn load_manifest(path: Option<&Path>) -> anyhow::Result<Option<FunctionManifest>> {
    let (path, required) = match path {
        Some(path) => (path.to_path_buf(), true),
        None => (PathBuf::from("."), false),
    };
    let exists = path.is_file() || path.join(MANIFEST_FILE).is_file();
    if !exists {
        if required {
            anyhow::bail!(
                "{} has no {MANIFEST_FILE}: name a function crate (e.g. functions/hello), or leave PATH out to check the cluster alone",
                path.display()
            );
        }
        return Ok(None);
    }
    let shown = path.display().to_string();
    let manifest = tokio::task::spawn_blocking(move || FunctionManifest::load(&path))
        .await?
        .with_context(|| format!("reading the okonomi.toml of {shown}"))?;
    Ok(Some(manifest))
}

fn text(report: &Report) -> String {
    let mut out = format!(
        "context {} ({}{})\n",
        report.context,
        report.kubernetes.as_deref().unwrap_or("version unknown"),
        if report.engine {
            ", okonomi's engine"
        } else {
            ""
        }
    );
    for finding in &report.findings {
        let status = match finding.status {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        out.push_str(&format!(
            "{status}  {:<16} {}\n",
            finding.check, finding.message
        ));
        if let Some(fix) = &finding.fix {
            out.push_str(&format!("      {:<16} fix: {fix}\n", ""));
        }
    }
    let count = |s| report.findings.iter().filter(|f| f.status == s).count();
    out.push_str(&format!(
        "{} passed, {} warnings, {} failed (checked against Knative Serving {} and net-istio {})",
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
        report.checked_against.knative_serving,
        report.checked_against.net_istio,
    ));
    out
}

/// What the checks share.
struct Doctor<'a> {
    cluster: &'a Cluster,
    engine: bool,
    /// The API server's gitVersion.
    git_version: Option<String>,
    /// The installed Serving release (namespace label), if any.
    serving: Option<Version>,
    /// The cloud the fixes are phrased for.
    cloud: Option<Cloud>,
    manifest: Option<&'a FunctionManifest>,
}

async fn examine(
    cluster: &Cluster,
    manifest: Option<&FunctionManifest>,
    registry: Option<&str>,
) -> Report {
    let mut findings = Vec::new();
    let info = timed(cluster.client.apiserver_version()).await;
    let git_version = match info {
        Ok(Ok(info)) => Some(info.git_version),
        Ok(Err(e)) => {
            let error = cluster.error(e, "reading the server's /version", None);
            findings.push(Finding::fail(
                "context",
                error.to_string(),
                format!("kubectl --context {} version", cluster.context),
            ));
            None
        }
        Err(_) => {
            findings.push(Finding::fail(
                "context",
                format!(
                    "the API server at {} did not answer /version within {}s",
                    cluster.server,
                    CHECK_TIMEOUT.as_secs()
                ),
                format!("kubectl --context {} version", cluster.context),
            ));
            None
        }
    };
    let engine = git_version
        .as_deref()
        .is_some_and(crate::cluster::is_engine_version);
    let cloud = git_version
        .as_deref()
        .and_then(cloud_of_version)
        .or_else(|| manifest.and_then(|m| m.profile.as_ref()).map(|p| p.cloud));

    let mut doctor = Doctor {
        cluster,
        engine,
        git_version: git_version.clone(),
        serving: None,
        cloud,
        manifest,
    };
    if git_version.is_some() {
        let serving = doctor.knative_serving().await;
        doctor.serving = serving.1;
        findings.insert(0, doctor.kubernetes());
        findings.push(serving.0);
        findings.push(doctor.ingress().await);
        findings.push(doctor.domain().await);
        findings.push(doctor.features().await);
        findings.extend(doctor.mesh().await);
        let (push, pull) = doctor.registry(registry).await;
        findings.push(push);
        findings.push(pull);
    }
    let ok = !findings.iter().any(|f| f.status == Status::Fail);
    Report {
        context: cluster.context.clone(),
        server: cluster.server.clone(),
        kubernetes: git_version,
        engine,
        knative_serving: doctor.serving.map(|v| v.to_string()),
        checked_against: checked_against(),
        findings,
        ok,
    }
}

async fn timed<F: std::future::Future>(
    future: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(CHECK_TIMEOUT, future).await
}

/// The managed Kubernetes a gitVersion names: GKE's `-gke.N`, EKS's `-eks-HASH`.
fn cloud_of_version(git_version: &str) -> Option<Cloud> {
    if git_version.contains("-gke.") {
        Some(Cloud::Gke)
    } else if git_version.contains("-eks-") {
        Some(Cloud::Eks)
    } else {
        None
    }
}

/// The command that upgrades a cluster's control plane to `minor` on `cloud`.
fn upgrade_command(cloud: Option<Cloud>, minor: &str) -> String {
    match cloud {
        Some(Cloud::Gke) => {
            format!(
                "gcloud container clusters upgrade CLUSTER --location LOCATION --master --cluster-version {minor}"
            )
        }
        Some(Cloud::Eks) => {
            format!("aws eks update-cluster-version --name CLUSTER --kubernetes-version {minor}")
        }
        Some(Cloud::Aks) => format!(
            "az aks upgrade --resource-group GROUP --name CLUSTER --kubernetes-version {minor}"
        ),
        Some(Cloud::Kind) => format!(
            "kind delete cluster --name okonomi && kind create cluster --name okonomi --image kindest/node:v{minor}.0 (kind's release notes list the node images)"
        ),
        Some(Cloud::Local) | None => format!(
            "upgrade the cluster's control plane to Kubernetes {minor} or later (docs/clouds/README.md)"
        ),
    }
}

/// The server's version against the oldest Kubernetes the installed (else
/// the pinned) Serving release starts on; the engine is exempt.
fn kubernetes_finding(
    engine: bool,
    git_version: &str,
    serving: Option<Version>,
    cloud: Option<Cloud>,
    context: &str,
) -> Finding {
    const CHECK: &str = "kubernetes";
    if engine {
        return Finding::pass(
            CHECK,
            format!(
                "{git_version}: okonomi's engine, which is Knative Serving itself; Knative's minimum Kubernetes does not apply"
            ),
        );
    }
    let Some(server) = Version::parse(git_version) else {
        return Finding::warn(
            CHECK,
            format!("cannot read the server's version {git_version:?}"),
            format!("kubectl --context {} version", context),
        );
    };
    let release = serving.unwrap_or(versions::KNATIVE_SERVING);
    let whose = if serving.is_some() {
        "the installed"
    } else {
        "the pinned"
    };
    let Some(minimum) = release.kubernetes_minimum() else {
        return Finding::warn(
            CHECK,
            format!(
                "Kubernetes {server}; okonomi does not know the minimum of Knative Serving {release}"
            ),
            format!(
                "install Knative Serving {}: {}",
                versions::KNATIVE_SERVING,
                install_commands()
            ),
        );
    };
    if server < minimum {
        Finding::fail(
            CHECK,
            format!(
                "Kubernetes {server} is older than {minimum}, the oldest Kubernetes {whose} Knative Serving {release} starts on (its controller and webhook exit at start-up)"
            ),
            upgrade_command(cloud, &minimum.minor_string()),
        )
    } else {
        Finding::pass(
            CHECK,
            format!(
                "Kubernetes {server} (Knative Serving {release} needs {} or later)",
                minimum.minor_string()
            ),
        )
    }
}

/// The ingress finding once net-istio and Istio are there: with HTTPS on the
/// gateway, Knative still reports `http://` URLs until `config-network`'s
/// `default-external-scheme` is `https`.
fn scheme_finding(class: &str, gateway_https: bool, scheme: Option<&str>) -> Finding {
    const CHECK: &str = "ingress";
    let scheme = scheme
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("http");
    if gateway_https && !scheme.eq_ignore_ascii_case("https") {
        return Finding::warn(
            CHECK,
            format!(
                "ingress class {class}: knative-ingress-gateway serves HTTPS, but config-network's default-external-scheme is {scheme}, so Knative reports http:// URLs"
            ),
            "kubectl patch configmap/config-network -n knative-serving --type merge -p '{\"data\":{\"default-external-scheme\":\"https\"}}'",
        );
    }
    Finding::pass(
        CHECK,
        format!(
            "ingress class {class}: net-istio's controller and Istio's networking.istio.io/v1 are there; URLs are {scheme}://"
        ),
    )
}

/// The commands that install the pinned Knative Serving and net-istio.
fn install_commands() -> String {
    [
        versions::serving_url("serving-crds.yaml"),
        versions::serving_url("serving-core.yaml"),
        versions::net_istio_url("net-istio.yaml"),
    ]
    .iter()
    .map(|url| format!("kubectl apply -f {url}"))
    .collect::<Vec<_>>()
    .join(" && ")
}

impl Doctor<'_> {
    fn configmaps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.cluster.client.clone(), KNATIVE_NAMESPACE)
    }

    /// A `config-*` ConfigMap's data: `Ok(None)` when it does not exist.
    async fn config_data(
        &self,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, CheckError> {
        let action = format!("reading configmap {KNATIVE_NAMESPACE}/{name}");
        match timed(self.configmaps().get_opt(name)).await {
            Ok(Ok(found)) => Ok(found.map(|cm| cm.data.unwrap_or_default())),
            Ok(Err(e)) => Err(CheckError::Api(self.cluster.error(e, &action, None))),
            Err(_) => Err(CheckError::Timeout {
                action,
                seconds: CHECK_TIMEOUT.as_secs(),
            }),
        }
    }

    fn kubernetes(&self) -> Finding {
        kubernetes_finding(
            self.engine,
            self.git_version.as_deref().unwrap_or_default(),
            self.serving,
            self.cloud,
            &self.cluster.context,
        )
    }

    /// The Serving finding and the installed release.
    async fn knative_serving(&self) -> (Finding, Option<Version>) {
        const CHECK: &str = "knative-serving";
        if let Err(error) = self.cluster.ensure_knative().await {
            let fix = match error {
                ClusterError::KnativeMissing { .. } => install_commands(),
                _ => format!("kubectl --context {} api-versions", self.cluster.context),
            };
            return (Finding::fail(CHECK, error.to_string(), fix), None);
        }
        let namespaces: Api<Namespace> = Api::all(self.cluster.client.clone());
        let label = match timed(namespaces.get_opt(KNATIVE_NAMESPACE)).await {
            Ok(Ok(Some(ns))) => ns
                .metadata
                .labels
                .and_then(|l| l.get(okonomi_knative::keys::APP_VERSION_LABEL).cloned()),
            Ok(Ok(None)) => None,
            Ok(Err(kube::Error::Api(status))) if status.is_forbidden() => {
                return (
                    Finding::warn(
                        CHECK,
                        format!(
                            "serving.knative.dev/v1 is served; reading namespace {KNATIVE_NAMESPACE} is forbidden, so its release is unknown"
                        ),
                        "ask the cluster admin for read access to namespaces",
                    ),
                    None,
                );
            }
            Ok(Err(e)) => {
                let error = self
                    .cluster
                    .error(e, "reading namespace knative-serving", None);
                return (
                    Finding::warn(
                        CHECK,
                        error.to_string(),
                        "kubectl get namespace knative-serving --show-labels",
                    ),
                    None,
                );
            }
            Err(_) => None,
        };
        let pinned = versions::KNATIVE_SERVING;
        let upgrade = format!(
            "kubectl apply -f {} && kubectl apply -f {}",
            versions::serving_url("serving-crds.yaml"),
            versions::serving_url("serving-core.yaml")
        );
        let Some(label) = label else {
            return if self.engine {
                (
                    Finding::pass(CHECK, "serving.knative.dev/v1 served by okonomi's engine"),
                    None,
                )
            } else {
                (
                    Finding::warn(
                        CHECK,
                        format!(
                            "serving.knative.dev/v1 is served, but namespace {KNATIVE_NAMESPACE} has no app.kubernetes.io/version label, so the release is unknown (the docs were checked against {pinned})"
                        ),
                        "kubectl get namespace knative-serving --show-labels",
                    ),
                    None,
                )
            };
        };
        let Some(installed) = Version::parse(&label) else {
            return (
                Finding::warn(
                    CHECK,
                    format!(
                        "Knative Serving {label:?} (not a release number; a development build?)"
                    ),
                    upgrade,
                ),
                None,
            );
        };
        let oldest = versions::oldest_known_serving();
        let finding = if installed < oldest {
            Finding::fail(
                CHECK,
                format!(
                    "Knative Serving {installed} is older than {oldest}, the oldest release okonomi knows (its docs and doctor were checked against {pinned})"
                ),
                upgrade,
            )
        } else if (installed.major, installed.minor) < (pinned.major, pinned.minor) {
            Finding::warn(
                CHECK,
                format!("Knative Serving {installed}; the docs were checked against {pinned}"),
                upgrade,
            )
        } else if (installed.major, installed.minor) > (pinned.major, pinned.minor) {
            Finding::warn(
                CHECK,
                format!(
                    "Knative Serving {installed} is newer than {pinned}, the release the docs were checked against"
                ),
                "",
            )
        } else {
            Finding::pass(CHECK, format!("Knative Serving {installed}"))
        };
        (finding, Some(installed))
    }

    async fn ingress(&self) -> Finding {
        const CHECK: &str = "ingress";
        let data = match self.config_data(cluster_config::CONFIG_NETWORK).await {
            Ok(Some(data)) => data,
            Ok(None) if self.engine => {
                return Finding::pass(
                    CHECK,
                    "okonomi's engine routes by Host itself (no ingress layer, no config-network)",
                );
            }
            Ok(None) => BTreeMap::new(),
            Err(error) => {
                return Finding::warn(
                    CHECK,
                    error.to_string(),
                    "kubectl get configmap config-network -n knative-serving -o yaml",
                );
            }
        };
        let class = cluster_config::ingress_class(&data);
        if self.engine {
            return Finding::pass(
                CHECK,
                format!(
                    "okonomi's engine routes by Host itself; config-network's ingress class {class} is not used"
                ),
            );
        }
        if class != cluster_config::ISTIO_INGRESS_CLASS {
            return Finding::pass(
                CHECK,
                format!(
                    "ingress class {class} (not Istio: okonomi's mesh policy, `okonomi deploy --istio`, does not apply)"
                ),
            );
        }
        let deployments: Api<Deployment> =
            Api::namespaced(self.cluster.client.clone(), KNATIVE_NAMESPACE);
        let controller = timed(deployments.get_opt("net-istio-controller")).await;
        let istio_api = timed(
            self.cluster
                .client
                .list_api_group_resources("networking.istio.io/v1"),
        )
        .await;
        let net_istio = matches!(controller, Ok(Ok(Some(_))));
        let istio = matches!(istio_api, Ok(Ok(_)));
        match (istio, net_istio) {
            (true, true) => {
                let https = self.gateway_serves_https().await;
                scheme_finding(
                    &class,
                    https,
                    data.get("default-external-scheme").map(String::as_str),
                )
            }
            (false, _) => Finding::fail(
                CHECK,
                format!(
                    "ingress class {class}, but the cluster does not serve networking.istio.io/v1: Istio is not installed, so no Route gets an ingress"
                ),
                format!(
                    "kubectl apply -l knative.dev/crd-install=true -f {istio} && kubectl apply -f {istio} && kubectl apply -f {net} (or a smaller Istio: docs/clouds/README.md)",
                    istio = versions::net_istio_url("istio.yaml"),
                    net = versions::net_istio_url("net-istio.yaml")
                ),
            ),
            (true, false) => Finding::fail(
                CHECK,
                format!(
                    "ingress class {class}, but there is no deployment net-istio-controller in {KNATIVE_NAMESPACE}: Routes will not become Ready"
                ),
                format!(
                    "kubectl apply -f {}",
                    versions::net_istio_url("net-istio.yaml")
                ),
            ),
        }
    }

    /// True when net-istio's `knative-ingress-gateway` has an HTTPS server
    /// (istio/knative-serving/ingress-gateway-tls.yaml); false when it has
    /// none or cannot be read.
    async fn gateway_serves_https(&self) -> bool {
        let resource = ApiResource {
            group: "networking.istio.io".into(),
            version: "v1".into(),
            api_version: "networking.istio.io/v1".into(),
            kind: "Gateway".into(),
            plural: "gateways".into(),
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.cluster.client.clone(), KNATIVE_NAMESPACE, &resource);
        match timed(api.get_opt("knative-ingress-gateway")).await {
            Ok(Ok(Some(gateway))) => {
                gateway.data["spec"]["servers"]
                    .as_array()
                    .is_some_and(|servers| {
                        servers
                            .iter()
                            .any(|s| s["port"]["protocol"].as_str() == Some("HTTPS"))
                    })
            }
            _ => false,
        }
    }

    async fn domain(&self) -> Finding {
        const CHECK: &str = "domain";
        let magic = format!(
            "kubectl apply -f {}",
            versions::serving_url("serving-default-domain.yaml")
        );
        let own = "kubectl patch configmap/config-domain -n knative-serving --type merge -p '{\"data\":{\"fn.example.com\":\"\"}}' (with a wildcard DNS record *.fn.example.com for the ingress)";
        let data = match self.config_data(cluster_config::CONFIG_DOMAIN).await {
            Ok(Some(data)) => data,
            Ok(None) if self.engine => {
                return Finding::pass(
                    CHECK,
                    "okonomi's engine serves NAME.NAMESPACE.localhost (no config-domain)",
                );
            }
            Ok(None) => {
                return Finding::fail(
                    CHECK,
                    format!(
                        "there is no configmap {KNATIVE_NAMESPACE}/config-domain, so every Route gets svc.cluster.local: cluster-local, no external URL"
                    ),
                    format!("{magic}   (Magic DNS on sslip.io), or: {own}"),
                );
            }
            Err(error) => {
                return Finding::warn(
                    CHECK,
                    error.to_string(),
                    "kubectl get configmap config-domain -n knative-serving -o yaml",
                );
            }
        };
        let choice = cluster_config::default_domain(&data);
        if let Some((key, why)) = choice.unreadable.first() {
            return Finding::fail(
                CHECK,
                format!(
                    "config-domain key {key:?} is not the YAML Knative reads ({why}); Knative's controller rejects the whole ConfigMap"
                ),
                format!(
                    "kubectl edit configmap/config-domain -n knative-serving   (fix or remove {key:?})"
                ),
            );
        }
        if choice.is_cluster_local() {
            return Finding::fail(
                CHECK,
                format!(
                    "config-domain gives Routes {}: cluster-local, so no function gets an external URL",
                    choice.domain
                ),
                format!("{magic}   (Magic DNS on sslip.io), or: {own}"),
            );
        }
        if choice.catch_alls.len() > 1 {
            let others: Vec<&String> = choice.catch_alls.iter().skip(1).collect();
            let remove = others
                .iter()
                .map(|k| format!("\"{k}\":null"))
                .collect::<Vec<_>>()
                .join(",");
            return Finding::warn(
                CHECK,
                format!(
                    "config-domain has {} catch-all domains ({}); Knative uses the lexically smallest, {}, so {} never appear in URLs",
                    choice.catch_alls.len(),
                    choice.catch_alls.join(", "),
                    choice.domain,
                    others
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                format!(
                    "kubectl patch configmap/config-domain -n knative-serving --type merge -p '{{\"data\":{{{remove}}}}}'   (keep only the domain you want)"
                ),
            );
        }
        if choice.domain == "example.com" {
            return Finding::warn(
                CHECK,
                "config-domain gives Routes example.com, Knative's placeholder: URLs will not resolve",
                format!("{magic}   (Magic DNS on sslip.io), or: {own}"),
            );
        }
        Finding::pass(
            CHECK,
            format!("Routes get NAME.NAMESPACE.{}", choice.domain),
        )
    }

    async fn features(&self) -> Finding {
        const CHECK: &str = "features";
        let Some(manifest) = self.manifest else {
            return Finding::pass(
                CHECK,
                "no okonomi.toml given: the flags a function needs were not checked (pass PATH)",
            );
        };
        let name = manifest.function.name.as_str();
        let rendered = okonomi_knative::render::render_service(
            manifest,
            "registry.invalid/doctor@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            &RenderOptions {
                profile: manifest.profile.as_ref(),
                ..Default::default()
            },
        );
        let mut needed: Vec<&str> = match rendered {
            Ok(rendered) => rendered.required_features,
            Err(e) => {
                return Finding::fail(
                    CHECK,
                    format!("{name} does not render: {e}"),
                    format!(
                        "okonomi deploy --dry-run -o yaml   (in {})",
                        manifest.source.display()
                    ),
                );
            }
        };
        if !manifest.sidecars.is_empty() {
            needed.insert(0, "multi-container");
        }
        if needed.is_empty() {
            return Finding::pass(CHECK, format!("{name} needs no feature flag"));
        }
        let data = match self.config_data(cluster_config::CONFIG_FEATURES).await {
            Ok(data) => data.unwrap_or_default(),
            Err(error) => {
                return Finding::warn(
                    CHECK,
                    error.to_string(),
                    "kubectl get configmap config-features -n knative-serving -o yaml",
                );
            }
        };
        let off: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|key| {
                !cluster_config::flag_admits(key, cluster_config::feature_flag(&data, key))
            })
            .collect();
        if off.is_empty() {
            return Finding::pass(CHECK, format!("{name} needs {}: on", needed.join(", ")));
        }
        let patch = off
            .iter()
            .map(|key| format!("\"{key}\":\"enabled\""))
            .collect::<Vec<_>>()
            .join(",");
        Finding::fail(
            CHECK,
            format!(
                "{name} needs Knative feature flag(s) {} in config-features, which are off: Knative's webhook rejects the Service",
                off.join(", ")
            ),
            format!(
                "kubectl patch configmap/config-features -n knative-serving --type merge -p '{{\"data\":{{{patch}}}}}'"
            ),
        )
    }

    async fn mesh(&self) -> Vec<Finding> {
        const CHECK: &str = "mesh";
        let mut findings = Vec::new();
        if let Some(note) = self
            .manifest
            .and_then(okonomi_knative::istio::advisory_callers_note)
        {
            findings.push(Finding::warn(
                CHECK,
                note,
                "make the function cluster-local and keep the activator out of its path: istio/README.md, \"Making callers real\"",
            ));
        }
        let served = timed(
            self.cluster
                .client
                .list_api_group_resources("security.istio.io/v1"),
        )
        .await;
        if !matches!(served, Ok(Ok(_))) {
            findings.push(Finding::pass(
                CHECK,
                "no Istio security API (security.istio.io/v1): no PeerAuthentication to check",
            ));
            return findings;
        }
        let resource = ApiResource {
            group: "security.istio.io".into(),
            version: "v1".into(),
            api_version: "security.istio.io/v1".into(),
            kind: "PeerAuthentication".into(),
            plural: "peerauthentications".into(),
        };
        let peer_api: Api<DynamicObject> = Api::all_with(self.cluster.client.clone(), &resource);
        let namespace_api: Api<Namespace> = Api::all(self.cluster.client.clone());
        let peers = timed(peer_api.list(&ListParams::default())).await;
        let namespaces = timed(namespace_api.list(&ListParams::default())).await;
        let (Ok(Ok(peers)), Ok(Ok(namespaces))) = (peers, namespaces) else {
            findings.push(Finding::warn(
                CHECK,
                "cannot list PeerAuthentications and namespaces, so sidecar injection and mTLS were not checked",
                "kubectl get peerauthentications -A && kubectl get namespaces -L istio-injection,istio.io/rev",
            ));
            return findings;
        };
        let modes: Vec<mesh::PeerMode> = peers
            .items
            .iter()
            .map(|p| mesh::PeerMode {
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone().unwrap_or_default(),
                workload: !p.data["spec"]["selector"].is_null(),
                mode: p.data["spec"]["mtls"]["mode"]
                    .as_str()
                    .unwrap_or("UNSET")
                    .to_owned(),
            })
            .collect();
        let injected: Vec<String> = namespaces
            .items
            .iter()
            .filter(|ns| {
                ns.metadata.labels.as_ref().is_some_and(|l| {
                    l.get("istio-injection").map(String::as_str) == Some("enabled")
                        || l.contains_key("istio.io/rev")
                })
            })
            .filter_map(|ns| ns.metadata.name.clone())
            .collect();
        findings.extend(mesh::mesh_findings(&modes, &injected, "istio-system"));
        findings
    }

    /// Push credentials, then pull rights.
    async fn registry(&self, registry: Option<&str>) -> (Finding, Finding) {
        let Some(registry) = registry else {
            return if self.engine {
                (
                    Finding::pass(
                        "registry",
                        "no registry: okonomi deploy hands the engine okonomi://PATH and it builds the function itself",
                    ),
                    Finding::pass("pull", "nothing to pull: the engine builds okonomi://PATH"),
                )
            } else {
                (
                    Finding::fail(
                        "registry",
                        "no registry: the cluster must pull the function's image from one",
                        "export OKONOMI_REGISTRY=REGISTRY/REPO   (or [build] registry / [profile] in okonomi.toml; docs/clouds/)",
                    ),
                    Finding::warn("pull", "no registry, so pull rights were not checked", ""),
                )
            };
        };
        let host = registry.split('/').next().unwrap_or(registry);
        let push = match timed(okonomi_image::credentials::lookup(host)).await {
            Ok(Ok(credential)) if !matches!(credential.auth, RegistryAuth::Anonymous) => {
                Finding::pass(
                    "registry",
                    format!("push credentials for {host}: {}", credential.source),
                )
            }
            Ok(Ok(credential)) if is_loopback(host) => Finding::pass(
                "registry",
                format!(
                    "{host} is on loopback; pushing anonymously ({})",
                    credential.source
                ),
            ),
            Ok(Ok(credential)) => Finding::fail(
                "registry",
                format!("no push credentials for {host}: {}", credential.source),
                login_command(host),
            ),
            Ok(Err(e)) => Finding::fail(
                "registry",
                format!("cannot get credentials for {host}: {e}"),
                login_command(host),
            ),
            Err(_) => Finding::fail(
                "registry",
                format!(
                    "the credential helper for {host} did not answer within {}s",
                    CHECK_TIMEOUT.as_secs()
                ),
                login_command(host),
            ),
        };
        (push, self.pull(registry, host).await)
    }

    async fn pull(&self, registry: &str, host: &str) -> Finding {
        const CHECK: &str = "pull";
        if self.engine {
            return Finding::pass(
                CHECK,
                format!("okonomi's engine pulls from {host} with this machine's credentials"),
            );
        }
        if host == okonomi_knative::manifest::KIND_LOCAL_REGISTRY {
            return Finding::pass(
                CHECK,
                "kind's local registry: the nodes pull from it through containerd's hosts.toml (docs/clouds/kind.md)",
            );
        }
        if is_loopback(host) {
            return Finding::warn(
                CHECK,
                format!(
                    "{host} is this machine's loopback: the cluster's nodes resolve it to themselves, so they cannot pull from it unless something there serves it (as kind's recipe does on localhost:5001)"
                ),
                "export OKONOMI_REGISTRY=REGISTRY/REPO   (a registry the cluster's nodes reach; docs/clouds/)",
            );
        }
        if host.ends_with("-docker.pkg.dev") {
            return gke::gke_pull(self.cluster, self.manifest, registry, host).await;
        }
        if host.contains(".dkr.ecr.") && host.ends_with(".amazonaws.com") {
            return Finding::warn(
                CHECK,
                format!(
                    "not checked: EKS nodes pull from {host} when their node role has AmazonEC2ContainerRegistryReadOnly (eksctl's node groups do)"
                ),
                "aws iam list-attached-role-policies --role-name NODE_ROLE   (grant: aws iam attach-role-policy --role-name NODE_ROLE --policy-arn arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly)",
            );
        }
        if let Some(name) = host.strip_suffix(".azurecr.io") {
            return Finding::warn(
                CHECK,
                format!(
                    "not checked: AKS nodes pull from {host} when the cluster is attached to the registry (az aks create/update --attach-acr {name})"
                ),
                format!("az aks check-acr --resource-group GROUP --name CLUSTER --acr {host}"),
            );
        }
        Finding::warn(
            CHECK,
            format!(
                "not checked: the cluster's nodes need pull access to {host} (a public repository, node credentials or an imagePullSecret on the namespace's default service account)"
            ),
            format!(
                "kubectl run okonomi-pull-check --image {registry}/IMAGE --restart=Never --command -- true && kubectl get pod okonomi-pull-check"
            ),
        )
    }
}

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    matches!(name, "localhost" | "127.0.0.1" | "[::1]" | "::1") || name.starts_with("127.")
}

/// How to store push credentials for `host` without the Docker CLI.
fn login_command(host: &str) -> String {
    if host.ends_with("-docker.pkg.dev") || host.ends_with("gcr.io") {
        format!(
            "gcloud auth configure-docker {host}   (adds a credHelpers entry for gcloud; no Docker needed)"
        )
    } else if host.contains(".dkr.ecr.") {
        // Merge one key into the file; `cat >` would drop gcloud's and others' entries.
        format!(
            "mkdir -p ~/.docker && f=~/.docker/config.json && {{ [ -s $f ] || echo '{{}}' > $f; }} && jq '.credHelpers[\"{host}\"] = \"ecr-login\"' $f > $f.new && mv $f.new $f   (needs amazon-ecr-credential-helper)"
        )
    } else if let Some(name) = host.strip_suffix(".azurecr.io") {
        format!(
            "skopeo login --authfile ~/.docker/config.json {host} --username 00000000-0000-0000-0000-000000000000 --password \"$(az acr login --name {name} --expose-token --query accessToken -o tsv)\""
        )
    } else {
        format!("skopeo login --authfile ~/.docker/config.json {host}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_must_meet_the_serving_releases_minimum() {
        // Knative 1.23 needs Kubernetes 1.34: GKE's 1.33 fails, with GKE's upgrade command.
        let old = kubernetes_finding(false, "v1.33.5-gke.1000", None, Some(Cloud::Gke), "gke");
        assert_eq!(old.status, Status::Fail, "{old:?}");
        assert!(old.message.contains("1.34.0"), "{old:?}");
        assert!(
            old.fix.as_deref().is_some_and(
                |f| f.contains("gcloud container clusters upgrade") && f.contains("1.34")
            ),
            "{old:?}"
        );
        let new = kubernetes_finding(false, "v1.34.1-eks-abc", None, Some(Cloud::Eks), "eks");
        assert_eq!(new.status, Status::Pass, "{new:?}");
        // An installed 1.21 only needs 1.33.
        let installed =
            kubernetes_finding(false, "v1.33.0", Some(Version::new(1, 21, 2)), None, "c");
        assert_eq!(installed.status, Status::Pass, "{installed:?}");
        // The engine is Knative itself.
        let engine = kubernetes_finding(true, "v1.33.0-okonomi", None, None, "okonomi");
        assert_eq!(engine.status, Status::Pass, "{engine:?}");
        assert_eq!(cloud_of_version("v1.31.4-gke.1256000"), Some(Cloud::Gke));
        assert_eq!(cloud_of_version("v1.31.2-eks-7f9249a"), Some(Cloud::Eks));
    }

    #[test]
    fn https_at_the_gateway_needs_the_https_scheme() {
        let class = okonomi_knative::cluster_config::ISTIO_INGRESS_CLASS;
        let plain = scheme_finding(class, true, None);
        assert_eq!(plain.status, Status::Warn, "{plain:?}");
        assert!(
            plain
                .fix
                .as_deref()
                .is_some_and(|f| f.contains("default-external-scheme")),
            "{plain:?}"
        );
        assert_eq!(
            scheme_finding(class, true, Some("https")).status,
            Status::Pass
        );
        assert_eq!(scheme_finding(class, false, None).status, Status::Pass);
    }

    #[test]
    fn login_commands_need_no_docker() {
        for host in [
            "europe-west1-docker.pkg.dev",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "okonomiacr.azurecr.io",
            "ghcr.io",
        ] {
            let command = login_command(host);
            assert!(!command.contains("docker login"), "{command}");
            assert!(command.contains(host), "{command}");
        }
        assert!(!login_command("1.dkr.ecr.r.amazonaws.com").contains("cat >"));
    }
}
