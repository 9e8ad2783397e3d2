//! Knative Serving on one machine: controllers, router, activator, autoscaler and instance runtimes.

// Tests may unwrap: a panic is their failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod autoscaler;
pub mod controller;
pub mod dataplane;
pub mod engine;
pub mod error;
pub mod instance;
pub mod pool;
pub mod workloads;

pub use engine::{Engine, EngineConfig, run};
pub use error::{Error, Result};
pub use instance::RuntimeKind;
pub use instance::logs::read_service_logs;
