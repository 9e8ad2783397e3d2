//! Knative Serving on one machine: controllers, router, activator, autoscaler and instance runtimes.

// Tests may unwrap: a panic is their failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod autoscaler;
pub mod dataplane;
pub mod error;
pub mod instance;
pub mod pool;

pub use error::{Error, Result};
