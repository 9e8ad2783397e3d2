//! End-to-end and portability tests for okonomi: a harness that drives the
//! `okonomi` binary, `kubectl` and HTTP against a kube context the way a
//! user would, and the real parts those tests start (the engine through
//! `okonomi up`, docker-registry, redis-server) on loopback.
//!
//! The suites live in `tests/`: `portability.rs` runs one scenario list
//! against the engine (default) or any cluster (`OKONOMI_TEST_CONTEXT`);
//! `conformance.rs` runs Knative Serving's own conformance and e2e
//! scenarios the same way; `errors.rs` checks the messages of the failures
//! users hit.
//! docs/portability.md says how to run them on GKE, EKS and AKS.

pub mod cli;
pub mod http;
pub mod process;
pub mod scenarios;
pub mod services;
pub mod target;
pub mod tools;
pub mod uname;

pub use cli::{Okonomi, Run};
pub use target::Target;
