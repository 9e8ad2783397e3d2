//! Well-known label, annotation, environment and port names of Knative Serving.
//!
//! The engine's controllers and okonomi's renderer must agree with real
//! Knative on these strings byte for byte, so they live in one place.

/// API group of Knative Serving resources.
pub const GROUP: &str = "serving.knative.dev";
/// API version of the resources in this crate.
pub const VERSION: &str = "v1";
/// `apiVersion` of the resources in this crate.
pub const API_VERSION: &str = "serving.knative.dev/v1";

// ----- serving.knative.dev labels set by the controllers -----

/// Label on Configurations, Routes and Revisions naming the owning Service.
pub const SERVICE_LABEL: &str = "serving.knative.dev/service";
/// Label on Revisions naming the owning Configuration.
pub const CONFIGURATION_LABEL: &str = "serving.knative.dev/configuration";
/// Label on Revisions: the Configuration generation that created them.
pub const CONFIGURATION_GENERATION_LABEL: &str = "serving.knative.dev/configurationGeneration";
/// Label on Revisions: the UID of the owning Configuration.
pub const CONFIGURATION_UID_LABEL: &str = "serving.knative.dev/configurationUID";
/// Label on Configurations and Routes: the UID of the owning Service.
pub const SERVICE_UID_LABEL: &str = "serving.knative.dev/serviceUID";
/// Label on pods and child objects naming the Revision.
pub const REVISION_LABEL: &str = "serving.knative.dev/revision";
/// Label on pods: the UID of the Revision.
pub const REVISION_UID_LABEL: &str = "serving.knative.dev/revisionUID";
/// Label on Configurations and Revisions naming the Route that serves them.
pub const ROUTE_LABEL: &str = "serving.knative.dev/route";
/// Label on Revisions: `active`, `reserve` or `pending` (garbage collection state).
pub const ROUTING_STATE_LABEL: &str = "serving.knative.dev/routingState";

// ----- serving.knative.dev annotations -----

/// Annotation recording the user that created an object.
pub const CREATOR_ANNOTATION: &str = "serving.knative.dev/creator";
/// Annotation recording the user that last changed an object's spec.
pub const LAST_MODIFIER_ANNOTATION: &str = "serving.knative.dev/lastModifier";
/// Annotation on Configurations/Revisions: comma-separated Routes serving them.
pub const ROUTES_ANNOTATION: &str = "serving.knative.dev/routes";
/// Annotation on Revisions: when the routing state last changed.
pub const ROUTING_STATE_MODIFIED_ANNOTATION: &str = "serving.knative.dev/routingStateModified";
/// Annotation on a Route or Service: gradual rollout duration (e.g. `"380s"`).
pub const ROLLOUT_DURATION_ANNOTATION: &str = "serving.knative.dev/rollout-duration";
/// Annotation on Revisions: keep out of garbage collection when `"true"`.
pub const NO_GC_ANNOTATION: &str = "serving.knative.dev/no-gc";
/// Annotation on a Revision template: the progress deadline (e.g. `"600s"`).
pub const PROGRESS_DEADLINE_ANNOTATION: &str = "serving.knative.dev/progress-deadline";

// ----- networking -----

/// Label (on Services, Routes, Kubernetes Services) restricting visibility.
pub const VISIBILITY_LABEL: &str = "networking.knative.dev/visibility";
/// Value of [`VISIBILITY_LABEL`] that keeps a Service inside the cluster.
pub const VISIBILITY_CLUSTER_LOCAL: &str = "cluster-local";

// ----- autoscaling.knative.dev annotations (on the Revision template) -----

/// Autoscaler class: [`KPA_CLASS`] (default) or [`HPA_CLASS`].
pub const AUTOSCALING_CLASS_ANNOTATION: &str = "autoscaling.knative.dev/class";
/// The Knative Pod Autoscaler class.
pub const KPA_CLASS: &str = "kpa.autoscaling.knative.dev";
/// The Horizontal Pod Autoscaler class.
pub const HPA_CLASS: &str = "hpa.autoscaling.knative.dev";
/// Scaling metric: `concurrency` (default), `rps`, `cpu` or `memory`.
pub const METRIC_ANNOTATION: &str = "autoscaling.knative.dev/metric";
/// Metric value: in-flight requests per instance.
pub const METRIC_CONCURRENCY: &str = "concurrency";
/// Metric value: requests per second per instance.
pub const METRIC_RPS: &str = "rps";
/// Metric value: CPU (HPA class only).
pub const METRIC_CPU: &str = "cpu";
/// Metric value: memory (HPA class only).
pub const METRIC_MEMORY: &str = "memory";
/// Soft target of the metric per instance (a positive number).
pub const TARGET_ANNOTATION: &str = "autoscaling.knative.dev/target";
/// Percentage of the target the autoscaler aims for (1–100).
pub const TARGET_UTILIZATION_ANNOTATION: &str =
    "autoscaling.knative.dev/target-utilization-percentage";
/// Lower bound of instances.
pub const MIN_SCALE_ANNOTATION: &str = "autoscaling.knative.dev/min-scale";
/// Upper bound of instances (0 = unlimited).
pub const MAX_SCALE_ANNOTATION: &str = "autoscaling.knative.dev/max-scale";
/// Instances a new Revision must reach before it becomes Ready.
pub const INITIAL_SCALE_ANNOTATION: &str = "autoscaling.knative.dev/initial-scale";
/// Delay before scaling down (a duration, 0s–1h).
pub const SCALE_DOWN_DELAY_ANNOTATION: &str = "autoscaling.knative.dev/scale-down-delay";
/// Stable window (a duration, 6s–1h).
pub const WINDOW_ANNOTATION: &str = "autoscaling.knative.dev/window";
/// Panic window as a percentage of the stable window (1–100).
pub const PANIC_WINDOW_PERCENTAGE_ANNOTATION: &str =
    "autoscaling.knative.dev/panic-window-percentage";
/// Panic threshold as a percentage of the target (110–1000).
pub const PANIC_THRESHOLD_PERCENTAGE_ANNOTATION: &str =
    "autoscaling.knative.dev/panic-threshold-percentage";
/// How long the last instance stays after traffic stops (a duration, ≥ 0).
pub const SCALE_TO_ZERO_POD_RETENTION_PERIOD_ANNOTATION: &str =
    "autoscaling.knative.dev/scale-to-zero-pod-retention-period";
/// Minimum instances when scaling up from zero (≥ 1).
pub const ACTIVATION_SCALE_ANNOTATION: &str = "autoscaling.knative.dev/activation-scale";
/// Spare capacity before the activator stays in the path (-1 or ≥ 0).
pub const TARGET_BURST_CAPACITY_ANNOTATION: &str = "autoscaling.knative.dev/target-burst-capacity";

// ----- app.kubernetes.io recommended labels -----

/// `app.kubernetes.io/name`.
pub const APP_NAME_LABEL: &str = "app.kubernetes.io/name";
/// `app.kubernetes.io/instance`.
pub const APP_INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// `app.kubernetes.io/version`.
pub const APP_VERSION_LABEL: &str = "app.kubernetes.io/version";
/// `app.kubernetes.io/component`.
pub const APP_COMPONENT_LABEL: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/part-of`.
pub const APP_PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
/// `app.kubernetes.io/managed-by`.
pub const APP_MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value okonomi writes into [`APP_MANAGED_BY_LABEL`].
pub const MANAGED_BY_OKONOMI: &str = "okonomi";

// ----- the runtime contract -----

/// Environment variable carrying the port the user container must listen on.
pub const ENV_PORT: &str = "PORT";
/// Environment variable carrying the Service name.
pub const ENV_K_SERVICE: &str = "K_SERVICE";
/// Environment variable carrying the Configuration name.
pub const ENV_K_CONFIGURATION: &str = "K_CONFIGURATION";
/// Environment variable carrying the Revision name.
pub const ENV_K_REVISION: &str = "K_REVISION";
/// Environment variables Knative sets itself; users may not set them.
pub const RESERVED_ENV_VARS: [&str; 4] =
    [ENV_PORT, ENV_K_SERVICE, ENV_K_CONFIGURATION, ENV_K_REVISION];
/// Ports user containers may not take, as Knative 1.23 reserves them
/// (`reservedPorts` in knative/serving `pkg/apis/serving/k8s_validation.go`):
/// queue-proxy's HTTP/1 and HTTP/2 ports (8012, 8013), its admin port (8022),
/// the autoscaler and user metrics ports (9090, 9091) and the profiling port
/// (8008).
pub const RESERVED_PORTS: [i32; 6] = [8008, 8012, 8013, 8022, 9090, 9091];
/// Mount paths user volumes may not shadow, after cleaning the path as Go's
/// `path.Clean` does. Knative reserved `/tmp`, `/var` and `/var/log` too until
/// 1.13; since 1.14 (and in 1.23) only these three are left.
pub const RESERVED_MOUNT_PATHS: [&str; 3] = ["/", "/dev", "/dev/log"];
/// Port the user container listens on when it names none.
pub const DEFAULT_USER_PORT: i32 = 8080;
/// Container name Knative gives the single user container when it has none.
pub const DEFAULT_CONTAINER_NAME: &str = "user-container";
/// Port name that asks for HTTP/2 cleartext to the container.
pub const PORT_NAME_H2C: &str = "h2c";
/// Port name that asks for HTTP/1.1 to the container.
pub const PORT_NAME_HTTP1: &str = "http1";
/// Default `timeoutSeconds` of a Revision.
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 300;
/// Largest `timeoutSeconds` Knative's default config-defaults accepts.
pub const MAX_TIMEOUT_SECONDS: i64 = 600;
/// Largest `containerConcurrency` Knative's default config-defaults accepts.
pub const MAX_CONTAINER_CONCURRENCY: i64 = 1000;

/// Template annotation `okonomi deploy` sets for the engine: the sha256 digest
/// of the binary it built from an `okonomi://` crate. A change to the source
/// changes the digest, so the template, so Knative's rule makes a new Revision;
/// an unchanged source leaves the template as it was and makes none.
pub const BUILD_DIGEST_ANNOTATION: &str = "okonomi.dev/build-digest";
/// Template annotation naming the cargo profile the engine builds an
/// `okonomi://` crate with: `dev` (the default) or `release`.
pub const BUILD_PROFILE_ANNOTATION: &str = "okonomi.dev/build-profile";
