//! The mesh side of a function: Istio `PeerAuthentication`,
//! `AuthorizationPolicy` and `Gateway` objects, rendered from okonomi.toml's
//! `[istio]` section and from the operator's choices.
//!
//! The policy follows Knative's guidance for Istio (net-istio): function pods
//! take mutual TLS only (STRICT), knative-serving stays PERMISSIVE because the
//! API server calls its webhooks from outside the mesh, and an
//! AuthorizationPolicy lets in knative-serving (the activator and the
//! autoscaler), the ingress gateway (which also serves cluster-local traffic
//! through knative-local-gateway), Knative's probe and metrics paths, and the
//! callers the function declares.
//!
//! The callers are advisory: Istio ALLOW rules add up, and the ingress
//! gateway and knative-serving are always allowed, so whatever reaches the
//! function through the gateway or the activator gets in whoever sent it.
//! [`advisory_callers_note`] says so where okonomi renders them;
//! istio/README.md has the table of who can reach a function.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::keys;
use crate::manifest::{FunctionManifest, MtlsMode};

/// `apiVersion` of PeerAuthentication and AuthorizationPolicy.
pub const SECURITY_API_VERSION: &str = "security.istio.io/v1";
/// `apiVersion` of Gateway.
pub const NETWORKING_API_VERSION: &str = "networking.istio.io/v1";

/// Where Knative and Istio live and who their workloads are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshSettings {
    /// Trust domain of the principals okonomi writes. `cluster.local`
    /// (the default) already means the mesh's own trust domain and its
    /// aliases wherever Istio reads a principal, so meshes with another
    /// trust domain (`PROJECT.svc.id.goog` on Cloud Service Mesh) need no
    /// change; set it only to name a foreign trust domain.
    pub trust_domain: String,
    /// Namespace of Knative Serving (activator, autoscaler).
    pub knative_namespace: String,
    /// Namespace of the Istio ingress gateway.
    pub ingress_namespace: String,
    /// Service account of the Istio ingress gateway pods.
    pub ingress_service_account: String,
}

impl Default for MeshSettings {
    fn default() -> Self {
        Self {
            trust_domain: "cluster.local".to_owned(),
            knative_namespace: "knative-serving".to_owned(),
            ingress_namespace: "istio-system".to_owned(),
            ingress_service_account: "istio-ingressgateway-service-account".to_owned(),
        }
    }
}

impl MeshSettings {
    /// The ingress gateway's workload principal
    /// (`cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account`).
    pub fn ingress_principal(&self) -> String {
        format!(
            "{}/ns/{}/sa/{}",
            self.trust_domain, self.ingress_namespace, self.ingress_service_account
        )
    }
}

/// Paths Knative's system pods call on every function pod (queue-proxy's
/// probe and metrics), which Knative's docs tell mesh users to allow.
pub const KNATIVE_SYSTEM_PATHS: [&str; 2] = ["/healthz", "/metrics"];

/// An Istio custom resource: `apiVersion`, `kind`, `metadata`, `spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IstioResource<Spec> {
    /// `security.istio.io/v1` or `networking.istio.io/v1`.
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// The kind's spec.
    pub spec: Spec,
}

/// `security.istio.io/v1` PeerAuthentication.
pub type PeerAuthentication = IstioResource<PeerAuthenticationSpec>;
/// `security.istio.io/v1` AuthorizationPolicy.
pub type AuthorizationPolicy = IstioResource<AuthorizationPolicySpec>;
/// `networking.istio.io/v1` Gateway.
pub type Gateway = IstioResource<GatewaySpec>;

/// Pods chosen by label.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSelector {
    /// Labels the pods must carry.
    pub match_labels: BTreeMap<String, String>,
}

/// PeerAuthentication spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerAuthenticationSpec {
    /// Pods it applies to; none = the whole namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// The mode.
    pub mtls: MutualTls,
}

/// `mtls` of a PeerAuthentication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutualTls {
    /// `STRICT`, `PERMISSIVE`, `DISABLE` or `UNSET`.
    pub mode: String,
}

/// AuthorizationPolicy spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationPolicySpec {
    /// Pods it applies to; none = the whole namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// `ALLOW` or `DENY`.
    pub action: String,
    /// A request matching any rule gets the action.
    pub rules: Vec<AuthorizationRule>,
}

/// One rule: all of its parts must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRule {
    /// Sources (any matches).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<RuleFrom>,
    /// Operations (any matches).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<RuleTo>,
}

/// `from[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFrom {
    /// The source.
    pub source: Source,
}

/// Who sends the request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Workload principals (`TRUST_DOMAIN/ns/NS/sa/SA`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Source namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// `to[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleTo {
    /// The operation.
    pub operation: Operation,
}

/// What the request asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// URL paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

/// Gateway spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewaySpec {
    /// Labels of the gateway pods that take this configuration.
    pub selector: BTreeMap<String, String>,
    /// Listeners.
    pub servers: Vec<GatewayServer>,
}

/// One listener of a Gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayServer {
    /// Port, protocol and name.
    pub port: GatewayPort,
    /// Hosts served (`*` or `*.example.com`).
    pub hosts: Vec<String>,
    /// TLS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTls>,
}

/// A Gateway listener port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayPort {
    /// Port number.
    pub number: u16,
    /// Port name.
    pub name: String,
    /// `HTTP`, `HTTPS`, …
    pub protocol: String,
}

/// TLS of a Gateway listener.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTls {
    /// `SIMPLE` for server TLS; absent for a redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Secret (in the gateway's namespace) with `tls.crt` and `tls.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Answer plain HTTP with a redirect to HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
}

fn meta(name: &str, namespace: Option<&str>, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: (!labels.is_empty()).then_some(labels),
        ..Default::default()
    }
}

fn okonomi_labels(function: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([(
        keys::APP_MANAGED_BY_LABEL.to_owned(),
        keys::MANAGED_BY_OKONOMI.to_owned(),
    )]);
    if let Some(function) = function {
        labels.insert(keys::APP_NAME_LABEL.to_owned(), function.to_owned());
    }
    labels
}

fn function_selector(function: &str) -> WorkloadSelector {
    // Knative labels every pod of a Service's revisions with its name.
    WorkloadSelector {
        match_labels: BTreeMap::from([(keys::SERVICE_LABEL.to_owned(), function.to_owned())]),
    }
}

/// PeerAuthentication for a namespace (no selector): `mode` for every pod in it.
pub fn namespace_peer_authentication(
    namespace: Option<&str>,
    mode: MtlsMode,
) -> PeerAuthentication {
    IstioResource {
        api_version: SECURITY_API_VERSION.to_owned(),
        kind: "PeerAuthentication".to_owned(),
        metadata: meta("default", namespace, okonomi_labels(None)),
        spec: PeerAuthenticationSpec {
            selector: None,
            mtls: MutualTls {
                mode: mode.as_istio().to_owned(),
            },
        },
    }
}

/// The AuthorizationPolicy a function namespace needs so Knative keeps
/// working once any ALLOW policy exists there: knative-serving, the ingress
/// gateway, and Knative's probe/metrics paths.
pub fn namespace_authorization_policy(
    namespace: Option<&str>,
    mesh: &MeshSettings,
) -> AuthorizationPolicy {
    IstioResource {
        api_version: SECURITY_API_VERSION.to_owned(),
        kind: "AuthorizationPolicy".to_owned(),
        metadata: meta("okonomi-allow-knative", namespace, okonomi_labels(None)),
        spec: AuthorizationPolicySpec {
            selector: None,
            action: "ALLOW".to_owned(),
            rules: knative_rules(mesh),
        },
    }
}

fn knative_rules(mesh: &MeshSettings) -> Vec<AuthorizationRule> {
    vec![
        AuthorizationRule {
            from: vec![RuleFrom {
                source: Source {
                    namespaces: vec![mesh.knative_namespace.clone()],
                    ..Default::default()
                },
            }],
            to: Vec::new(),
        },
        AuthorizationRule {
            from: vec![RuleFrom {
                source: Source {
                    principals: vec![mesh.ingress_principal()],
                    ..Default::default()
                },
            }],
            to: Vec::new(),
        },
        AuthorizationRule {
            from: Vec::new(),
            to: vec![RuleTo {
                operation: Operation {
                    paths: KNATIVE_SYSTEM_PATHS
                        .iter()
                        .map(|p| (*p).to_owned())
                        .collect(),
                },
            }],
        },
    ]
}

/// The policy of one function, from okonomi.toml: a PeerAuthentication with
/// `istio.mtls` (default STRICT) for its pods and an AuthorizationPolicy
/// admitting Knative, the ingress gateway and the declared callers.
pub fn function_policy(
    manifest: &FunctionManifest,
    namespace: &str,
    mesh: &MeshSettings,
) -> (PeerAuthentication, AuthorizationPolicy) {
    let name = manifest.function.name.as_str();
    let mode = manifest.istio.mtls.unwrap_or_default();
    let peer = IstioResource {
        api_version: SECURITY_API_VERSION.to_owned(),
        kind: "PeerAuthentication".to_owned(),
        metadata: meta(name, Some(namespace), okonomi_labels(Some(name))),
        spec: PeerAuthenticationSpec {
            selector: Some(function_selector(name)),
            mtls: MutualTls {
                mode: mode.as_istio().to_owned(),
            },
        },
    };
    let mut rules = knative_rules(mesh);
    let callers = &manifest.istio.callers;
    let caller_namespaces = &manifest.istio.caller_namespaces;
    if !callers.is_empty() || !caller_namespaces.is_empty() {
        rules.push(AuthorizationRule {
            from: callers
                .iter()
                .map(|p| RuleFrom {
                    source: Source {
                        principals: vec![p.clone()],
                        ..Default::default()
                    },
                })
                .chain(caller_namespaces.iter().map(|ns| RuleFrom {
                    source: Source {
                        namespaces: vec![ns.clone()],
                        ..Default::default()
                    },
                }))
                .collect(),
            to: Vec::new(),
        });
    }
    let policy = IstioResource {
        api_version: SECURITY_API_VERSION.to_owned(),
        kind: "AuthorizationPolicy".to_owned(),
        metadata: meta(name, Some(namespace), okonomi_labels(Some(name))),
        spec: AuthorizationPolicySpec {
            selector: Some(function_selector(name)),
            action: "ALLOW".to_owned(),
            rules,
        },
    };
    (peer, policy)
}

/// The warning `okonomi deploy --istio` and `okonomi doctor` give when
/// okonomi.toml lists `[istio] callers` or `caller_namespaces`: they are
/// rendered as ALLOW rules, but they restrict nothing (see the module docs).
pub fn advisory_callers_note(manifest: &FunctionManifest) -> Option<String> {
    let istio = &manifest.istio;
    if istio.callers.is_empty() && istio.caller_namespaces.is_empty() {
        return None;
    }
    Some(format!(
        "{}'s [istio] callers and caller_namespaces are advisory: they are rendered as ALLOW rules, but Istio adds ALLOW rules up and the ingress gateway and knative-serving (the activator) are always allowed, so any client that reaches {} through the gateway or the activator gets in (istio/README.md, \"Who can reach a function\")",
        manifest.function.name, manifest.function.name
    ))
}

/// [`function_policy`] with the default mesh settings, as JSON objects ready
/// to apply (`okonomi deploy --istio`).
pub fn function_policy_objects(
    manifest: &FunctionManifest,
    namespace: &str,
) -> Vec<serde_json::Value> {
    let (peer, policy) = function_policy(manifest, namespace, &MeshSettings::default());
    // Both are plain data with string keys: serializing cannot fail.
    [serde_json::to_value(peer), serde_json::to_value(policy)]
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

/// net-istio's `knative-ingress-gateway` with HTTPS on 443 (certificate from
/// the Secret `credential_name` in the ingress gateway's namespace,
/// istio-system) beside plain HTTP on 80.
pub fn tls_gateway(credential_name: &str, hosts: &[&str], mesh: &MeshSettings) -> Gateway {
    let hosts: Vec<String> = if hosts.is_empty() {
        vec!["*".to_owned()]
    } else {
        hosts.iter().map(|h| (*h).to_owned()).collect()
    };
    IstioResource {
        api_version: NETWORKING_API_VERSION.to_owned(),
        kind: "Gateway".to_owned(),
        metadata: meta(
            "knative-ingress-gateway",
            Some(&mesh.knative_namespace),
            okonomi_labels(None),
        ),
        spec: GatewaySpec {
            selector: BTreeMap::from([("istio".to_owned(), "ingressgateway".to_owned())]),
            servers: vec![
                // Plain HTTP stays: Knative reports http:// URLs until
                // config-network's default-external-scheme is "https"
                // (http-protocol: Redirected only redirects, with auto-TLS).
                GatewayServer {
                    port: GatewayPort {
                        number: 80,
                        name: "http".to_owned(),
                        protocol: "HTTP".to_owned(),
                    },
                    hosts: hosts.clone(),
                    tls: None,
                },
                GatewayServer {
                    port: GatewayPort {
                        number: 443,
                        name: "https".to_owned(),
                        protocol: "HTTPS".to_owned(),
                    },
                    hosts,
                    tls: Some(ServerTls {
                        mode: Some("SIMPLE".to_owned()),
                        credential_name: Some(credential_name.to_owned()),
                        https_redirect: None,
                    }),
                },
            ],
        },
    }
}
