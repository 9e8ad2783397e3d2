//! Knative's Pod Autoscaler (KPA) for one machine.
//!
//! The decision itself ([`kpa::decide`]) is a pure function of the scaling
//! spec, the decider's own state, the observed concurrency and the current
//! time, exactly like Knative's `Scale(logger, now)`: tests drive it with
//! synthetic load traces. [`window::ConcurrencyWindow`] turns the data plane's
//! in-flight counts into the stable and panic averages it consumes, and
//! [`config`] reads the global defaults (a file mirroring `config-autoscaler`)
//! and the per-revision `autoscaling.knative.dev/*` annotations.

pub mod config;
pub mod kpa;
pub mod window;

pub use config::{AutoscalerConfig, ScalingSpec};
pub use kpa::{Decision, KpaState, Observation, decide};
pub use window::ConcurrencyWindow;
