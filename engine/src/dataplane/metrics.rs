//! Prometheus metrics of the data plane, served as text at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels naming a revision.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevisionLabels {
    /// Namespace.
    pub namespace: String,
    /// Revision name.
    pub revision: String,
}

/// Labels of a finished request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Namespace.
    pub namespace: String,
    /// Revision name.
    pub revision: String,
    /// Response status class: `2xx`, `4xx`, `5xx`, …
    pub code: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric the engine exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RevisionLabels, Histogram, fn() -> Histogram>,
    in_flight: Family<RevisionLabels, Gauge>,
    desired: Family<RevisionLabels, Gauge>,
    actual: Family<RevisionLabels, Gauge>,
    cold_starts: Family<RevisionLabels, Counter>,
    cold_start_wait: Family<RevisionLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("okonomi");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RevisionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let in_flight = Family::<RevisionLabels, Gauge>::default();
        let desired = Family::<RevisionLabels, Gauge>::default();
        let actual = Family::<RevisionLabels, Gauge>::default();
        let cold_starts = Family::<RevisionLabels, Counter>::default();
        let cold_start_wait =
            Family::<RevisionLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "revision_requests",
            "Requests answered per revision and status class",
            requests.clone(),
        );
        registry.register(
            "revision_request_duration_seconds",
            "Latency of requests per revision, from arrival to response headers",
            latency.clone(),
        );
        registry.register(
            "revision_requests_in_flight",
            "Requests being served or held by the activator per revision",
            in_flight.clone(),
        );
        registry.register(
            "revision_desired_instances",
            "Instances the autoscaler wants per revision",
            desired.clone(),
        );
        registry.register(
            "revision_ready_instances",
            "Instances ready per revision",
            actual.clone(),
        );
        registry.register(
            "revision_cold_starts",
            "Instances started for a request that found no ready instance",
            cold_starts.clone(),
        );
        registry.register(
            "revision_cold_start_wait_seconds",
            "How long requests that found no ready instance waited for one",
            cold_start_wait.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            in_flight,
            desired,
            actual,
            cold_starts,
            cold_start_wait,
        }
    }
}

impl Metrics {
    /// Counts a finished request.
    pub fn request(&self, labels: &RevisionLabels, status: u16, seconds: f64) {
        let code = format!("{}xx", status / 100);
        self.requests
            .get_or_create(&RequestLabels {
                namespace: labels.namespace.clone(),
                revision: labels.revision.clone(),
                code,
            })
            .inc();
        self.latency.get_or_create(labels).observe(seconds);
    }

    /// The in-flight gauge of a revision.
    pub fn in_flight(&self, labels: &RevisionLabels) -> Gauge {
        self.in_flight.get_or_create(labels).clone()
    }

    /// The cold-start counter of a revision.
    pub fn cold_starts(&self, labels: &RevisionLabels) -> Counter {
        self.cold_starts.get_or_create(labels).clone()
    }

    /// The cold-start wait histogram of a revision.
    pub fn cold_start_wait(&self, labels: &RevisionLabels) -> Histogram {
        self.cold_start_wait.get_or_create(labels).clone()
    }

    /// Sets the desired and ready instance gauges of a revision.
    pub fn set_instances(&self, labels: &RevisionLabels, desired: u32, ready: u32) {
        self.desired.get_or_create(labels).set(i64::from(desired));
        self.actual.get_or_create(labels).set(i64::from(ready));
    }

    /// Handles to one revision's per-request series, looked up once so the
    /// request path does no label hashing.
    pub fn revision(&self, labels: &RevisionLabels) -> RevisionMetrics {
        let counter = |code: &str| {
            self.requests
                .get_or_create(&RequestLabels {
                    namespace: labels.namespace.clone(),
                    revision: labels.revision.clone(),
                    code: code.to_string(),
                })
                .clone()
        };
        RevisionMetrics {
            by_class: [
                counter("1xx"),
                counter("2xx"),
                counter("3xx"),
                counter("4xx"),
                counter("5xx"),
            ],
            latency: self.latency.get_or_create(labels).clone(),
            in_flight: self.in_flight(labels),
        }
    }

    /// Drops a deleted revision's series.
    pub fn forget(&self, labels: &RevisionLabels) {
        for code in ["1xx", "2xx", "3xx", "4xx", "5xx"] {
            self.requests.remove(&RequestLabels {
                namespace: labels.namespace.clone(),
                revision: labels.revision.clone(),
                code: code.to_string(),
            });
        }
        self.latency.remove(labels);
        self.in_flight.remove(labels);
        self.desired.remove(labels);
        self.actual.remove(labels);
        self.cold_starts.remove(labels);
        self.cold_start_wait.remove(labels);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// One revision's request metrics (see [`Metrics::revision`]).
#[derive(Debug, Clone)]
pub struct RevisionMetrics {
    by_class: [Counter; 5],
    latency: Histogram,
    /// Requests in flight.
    pub in_flight: Gauge,
}

impl RevisionMetrics {
    /// Counts a finished request.
    pub fn request(&self, status: u16, seconds: f64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].inc();
        self.latency.observe(seconds);
    }
}
