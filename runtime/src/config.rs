//! Runtime settings: read from the environment (the Knative runtime contract and
//! `OKONOMI_*` variables), overridable with builder methods.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{Error, Result};

/// How the runtime serves: port, drain deadline, probes, limits.
///
/// [`Config::from_env`] reads, with these defaults:
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `PORT` | `8080` | port to listen on, IPv4 and IPv6 (Knative runtime contract) |
/// | `OKONOMI_LISTEN` | unset | comma-separated socket addresses that replace `[::]:$PORT`, e.g. `127.0.0.1:0,[::1]:0` |
/// | `OKONOMI_DRAIN_DEADLINE` | `30s` | after SIGTERM/SIGINT, how long in-flight requests may take before exit |
/// | `OKONOMI_READINESS_PATH` | `/health/readiness` | readiness probe; 503 while draining |
/// | `OKONOMI_LIVENESS_PATH` | `/health/liveness` | liveness probe |
/// | `OKONOMI_BODY_LIMIT` | `10485760` | largest request body in bytes; larger gets 413 |
/// | `OKONOMI_REQUEST_TIMEOUT` | `300s` | per-request deadline (Knative's default `timeoutSeconds`); past it 504; `0` = none |
/// | `OKONOMI_CONTAINER_CONCURRENCY` | `0` | in-flight cap (Knative's `containerConcurrency`); `0` = unlimited |
///
/// Durations take `300`, `300s`, `1500ms` or `5m`. `K_SERVICE`, `K_CONFIGURATION`
/// and `K_REVISION` go on every log line and on the trace resource.
///
/// Past the in-flight cap, a request waits in a queue of ten times the cap (as
/// Knative's queue-proxy does) until a slot frees or its timeout passes (504);
/// when that queue is full too it gets 503 at once with `Retry-After: 1`.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) port: u16,
    pub(crate) listen: Option<Vec<SocketAddr>>,
    pub(crate) drain_deadline: Duration,
    pub(crate) readiness_path: String,
    pub(crate) liveness_path: String,
    pub(crate) body_limit: usize,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) container_concurrency: usize,
    pub(crate) function_paths: bool,
    pub(crate) revision: Revision,
}

/// The Knative names of the running revision (`K_SERVICE`, `K_CONFIGURATION`,
/// `K_REVISION`); empty outside Knative.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revision {
    /// `K_SERVICE`: the Knative Service.
    pub service: Option<String>,
    /// `K_CONFIGURATION`: the Configuration.
    pub configuration: Option<String>,
    /// `K_REVISION`: the Revision.
    pub revision: Option<String>,
}

impl Revision {
    /// Reads `K_SERVICE`, `K_CONFIGURATION` and `K_REVISION`.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            service: var("K_SERVICE"),
            configuration: var("K_CONFIGURATION"),
            revision: var("K_REVISION"),
        }
    }

    /// Whether any of the three names is set.
    pub fn is_set(&self) -> bool {
        self.service.is_some() || self.configuration.is_some() || self.revision.is_some()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: 8080,
            listen: None,
            drain_deadline: Duration::from_secs(30),
            readiness_path: "/health/readiness".into(),
            liveness_path: "/health/liveness".into(),
            body_limit: 10 * 1024 * 1024,
            request_timeout: Some(Duration::from_secs(300)),
            container_concurrency: 0,
            function_paths: true,
            revision: Revision::default(),
        }
    }
}

impl Config {
    /// Reads the settings from the environment (see the table above).
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut config = Self::default();
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = get("PORT") {
            config.port = v.trim().parse().map_err(|_| Error::InvalidEnv {
                name: "PORT",
                value: v.clone(),
                reason: "expected a port number 0-65535".into(),
            })?;
        }
        if let Some(v) = get("OKONOMI_LISTEN") {
            let addrs = v
                .split(',')
                .map(|a| a.trim().parse::<SocketAddr>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::InvalidEnv {
                    name: "OKONOMI_LISTEN",
                    value: v.clone(),
                    reason: format!(
                        "expected comma-separated addresses like 127.0.0.1:8080,[::1]:8080 ({e})"
                    ),
                })?;
            config.listen = Some(addrs);
        }
        if let Some(v) = get("OKONOMI_DRAIN_DEADLINE") {
            config.drain_deadline = parse_duration(&v).map_err(|reason| Error::InvalidEnv {
                name: "OKONOMI_DRAIN_DEADLINE",
                value: v.clone(),
                reason,
            })?;
        }
        if let Some(v) = get("OKONOMI_READINESS_PATH") {
            config.readiness_path = check_path("OKONOMI_READINESS_PATH", v)?;
        }
        if let Some(v) = get("OKONOMI_LIVENESS_PATH") {
            config.liveness_path = check_path("OKONOMI_LIVENESS_PATH", v)?;
        }
        if let Some(v) = get("OKONOMI_BODY_LIMIT") {
            config.body_limit = v.trim().parse().map_err(|_| Error::InvalidEnv {
                name: "OKONOMI_BODY_LIMIT",
                value: v.clone(),
                reason: "expected a number of bytes, e.g. 10485760".into(),
            })?;
        }
        if let Some(v) = get("OKONOMI_REQUEST_TIMEOUT") {
            let timeout = parse_duration(&v).map_err(|reason| Error::InvalidEnv {
                name: "OKONOMI_REQUEST_TIMEOUT",
                value: v.clone(),
                reason,
            })?;
            config.request_timeout = (!timeout.is_zero()).then_some(timeout);
        }
        if let Some(v) = get("OKONOMI_CONTAINER_CONCURRENCY") {
            config.container_concurrency = v.trim().parse().map_err(|_| Error::InvalidEnv {
                name: "OKONOMI_CONTAINER_CONCURRENCY",
                value: v.clone(),
                reason: "expected a whole number; 0 means unlimited".into(),
            })?;
        }
        let var = |name: &str| get(name);
        config.revision = Revision {
            service: var("K_SERVICE"),
            configuration: var("K_CONFIGURATION"),
            revision: var("K_REVISION"),
        };
        Ok(config)
    }

    /// Port to listen on (on `[::]`, which also takes IPv4).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Listens on exactly these addresses instead of `[::]:port`.
    pub fn listen(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.listen = Some(addrs.into_iter().collect());
        self
    }

    /// How long in-flight requests may run after SIGTERM/SIGINT.
    pub fn drain_deadline(mut self, deadline: Duration) -> Self {
        self.drain_deadline = deadline;
        self
    }

    /// Path of the readiness probe (503 while draining).
    pub fn readiness_path(mut self, path: impl Into<String>) -> Self {
        self.readiness_path = path.into();
        self
    }

    /// Path of the liveness probe.
    pub fn liveness_path(mut self, path: impl Into<String>) -> Self {
        self.liveness_path = path.into();
        self
    }

    /// Largest request body in bytes (413 past it).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Per-request deadline (504 past it); `None` for none.
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// In-flight cap (`containerConcurrency`); 0 for unlimited.
    pub fn container_concurrency(mut self, cap: usize) -> Self {
        self.container_concurrency = cap;
        self
    }

    /// Whether `/robots.txt` and `/favicon.ico` answer 404 before reaching the
    /// handler, as the Functions Framework does (default: yes).
    pub fn function_paths(mut self, on: bool) -> Self {
        self.function_paths = on;
        self
    }

    /// The Knative revision names put on logs and traces.
    pub fn revision(mut self, revision: Revision) -> Self {
        self.revision = revision;
        self
    }

    /// The addresses the server will listen on.
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        match &self.listen {
            Some(addrs) => addrs.clone(),
            None => vec![SocketAddr::from((
                std::net::Ipv6Addr::UNSPECIFIED,
                self.port,
            ))],
        }
    }

    /// The Knative revision names.
    pub fn revision_names(&self) -> &Revision {
        &self.revision
    }
}

fn check_path(name: &'static str, value: String) -> Result<String> {
    if value.starts_with('/') {
        Ok(value)
    } else {
        Err(Error::InvalidEnv {
            name,
            value,
            reason: "expected a path starting with '/'".into(),
        })
    }
}

/// Parses `300`, `300s`, `1500ms` or `5m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| "expected a duration such as 30, 30s, 1500ms or 5m".to_string())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "h" => Ok(Duration::from_secs(n.saturating_mul(3600))),
        other => Err(format!("unknown unit {other:?}; use ms, s, m or h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_follow_the_knative_contract() {
        let config = Config::from_lookup(lookup(&[])).unwrap();
        assert_eq!(config.listen_addrs(), vec!["[::]:8080".parse().unwrap()]);
        assert_eq!(config.readiness_path, "/health/readiness");
        assert_eq!(config.liveness_path, "/health/liveness");
        assert_eq!(config.request_timeout, Some(Duration::from_secs(300)));
        assert_eq!(config.container_concurrency, 0);
    }

    #[test]
    fn env_values_are_read() {
        let config = Config::from_lookup(lookup(&[
            ("PORT", "9090"),
            ("OKONOMI_DRAIN_DEADLINE", "1500ms"),
            ("OKONOMI_REQUEST_TIMEOUT", "0"),
            ("OKONOMI_CONTAINER_CONCURRENCY", "4"),
            ("OKONOMI_BODY_LIMIT", "1024"),
            ("OKONOMI_READINESS_PATH", "/ready"),
            ("K_SERVICE", "hello"),
            ("K_REVISION", "hello-00001"),
        ]))
        .unwrap();
        assert_eq!(config.listen_addrs(), vec!["[::]:9090".parse().unwrap()]);
        assert_eq!(config.drain_deadline, Duration::from_millis(1500));
        assert_eq!(config.request_timeout, None);
        assert_eq!(config.container_concurrency, 4);
        assert_eq!(config.body_limit, 1024);
        assert_eq!(config.readiness_path, "/ready");
        assert_eq!(config.revision.service.as_deref(), Some("hello"));
        assert_eq!(config.revision.revision.as_deref(), Some("hello-00001"));
        assert_eq!(config.revision.configuration, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("PORT", "eighty"),
            ("PORT", "70000"),
            ("OKONOMI_DRAIN_DEADLINE", "10 parsecs"),
            ("OKONOMI_LISTEN", "localhost"),
            ("OKONOMI_LIVENESS_PATH", "health"),
            ("OKONOMI_CONTAINER_CONCURRENCY", "-1"),
        ] {
            let err = Config::from_lookup(lookup(&[(name, value)])).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(name) && text.contains(value), "{text}");
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
