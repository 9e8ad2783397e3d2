//! The Knative Serving and net-istio releases okonomi's cloud pages and
//! `okonomi doctor` were checked against, in one place, and what each recent
//! Serving release asks of the Kubernetes it runs on.
//!
//! docs/clouds/README.md names the same numbers; a test keeps them equal.

/// The Knative Serving release the docs were checked against.
pub const KNATIVE_SERVING: Version = Version::new(1, 23, 0);

/// The net-istio release the docs were checked against. net-istio is
/// released with Serving under the same `knative-vX.Y.Z` tag.
pub const NET_ISTIO: Version = Version::new(1, 23, 0);

/// The release tag both are downloaded from
/// (`https://github.com/knative/serving/releases/download/TAG/…`).
pub const RELEASE_TAG: &str = "knative-v1.23.0";

/// The oldest Kubernetes each Serving minor release starts on: Serving's
/// controller and webhook refuse older API servers at start-up
/// (`DefaultKubernetesMinVersion` / `defaultMinimumVersion` in the
/// `knative.dev/pkg` each release vendors, overridable with the
/// `KUBERNETES_MIN_VERSION` environment variable of those pods).
/// Read from knative/serving's tags `knative-v1.18.0` … `knative-v1.23.0`.
pub const KUBERNETES_MINIMUM: [(u32, Version); 6] = [
    (18, Version::new(1, 31, 0)),
    (19, Version::new(1, 32, 0)),
    (20, Version::new(1, 32, 0)),
    (21, Version::new(1, 33, 0)),
    (22, Version::new(1, 34, 0)),
    (23, Version::new(1, 34, 0)),
];

/// A `MAJOR.MINOR.PATCH` version, as Kubernetes' `gitVersion` and Knative's
/// `app.kubernetes.io/version` label carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Version {
    /// `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Reads `v1.34.2`, `1.23.0`, `v1.31.4-gke.1256000` or `v1.33.0-okonomi`:
    /// an optional `v`, then numbers up to the first `-` or `+`. A missing
    /// patch counts as 0. `None` for anything else (`devel`, empty).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self::new(major, minor, patch))
    }

    /// The oldest Kubernetes this Serving release starts on, when it is one
    /// of [`KUBERNETES_MINIMUM`]'s releases (or a later patch of one).
    pub fn kubernetes_minimum(self) -> Option<Version> {
        if self.major != 1 {
            return None;
        }
        KUBERNETES_MINIMUM
            .iter()
            .find(|(minor, _)| *minor == self.minor)
            .map(|(_, v)| *v)
    }

    /// `MAJOR.MINOR`.
    pub fn minor_string(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The oldest Serving release whose Kubernetes minimum okonomi knows;
/// older ones were never checked.
pub fn oldest_known_serving() -> Version {
    let minor = KUBERNETES_MINIMUM
        .iter()
        .map(|(minor, _)| *minor)
        .min()
        .unwrap_or(KNATIVE_SERVING.minor);
    Version::new(1, minor, 0)
}

/// A release download URL of Serving (`serving-core.yaml`, …).
pub fn serving_url(file: &str) -> String {
    format!("https://github.com/knative/serving/releases/download/{RELEASE_TAG}/{file}")
}

/// A release download URL of net-istio (`net-istio.yaml`, `istio.yaml`).
pub fn net_istio_url(file: &str) -> String {
    format!("https://github.com/knative/net-istio/releases/download/{RELEASE_TAG}/{file}")
}
