//! Knative's Pod Autoscaler (KPA) for one machine: the decision and the
//! [`scaler`] that acts on it.
//!
//! The decision itself ([`kpa::decide`]) is a pure function of the scaling
//! spec, the decider's own state, the observed metric (concurrency, or
//! requests per second for `autoscaling.knative.dev/metric: rps`) and the
//! current time, exactly like Knative's `Scale(logger, now)`: tests drive it
//! with synthetic load traces. Every rule that can change the scale is an
//! input: held requests force one instance, a scale restored after a
//! restart holds for the first decision, min/max, scale-down delay and the
//! initial scale. Besides the scale it says whether the
//! activator stays in the request path (the excess burst capacity against
//! `target-burst-capacity`). [`window::LoadWindow`] turns the data plane's
//! in-flight counts and arrivals into the stable and panic values it
//! consumes, and [`config`] reads the global defaults (a file mirroring
//! `config-autoscaler`) and the per-revision `autoscaling.knative.dev/*`
//! annotations.

pub mod config;
pub mod kpa;
pub mod scaler;
pub mod window;

pub use config::{AutoscalerConfig, RequestTimeouts, ScalingMetric, ScalingSpec};
pub use kpa::{Decision, KpaState, Observation, decide, excess_burst_capacity};
pub use window::{ConcurrencyWindow, LoadWindow, RequestRate};
