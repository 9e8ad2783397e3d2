//! Knative Serving on one machine: controllers, router, activator, autoscaler and instance runtimes.
//!
//! Start it with [`run`] (foreground until a shutdown future completes, as
//! `okonomi up` does) or [`Engine::start`] / [`Engine::shutdown`]:
//!
//! ```no_run
//! # async fn example() -> okonomi_engine::Result<()> {
//! let config = okonomi_engine::EngineConfig {
//!     http_addr: "127.0.0.1:8080".parse().unwrap(),
//!     ..Default::default()
//! };
//! okonomi_engine::run(config, async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```
//!
//! What runs inside:
//! - an object store (okonomi-apiserver's SQLite-backed [`Store`](okonomi_apiserver::Store))
//!   under `EngineConfig::state_dir`, with Knative's defaulting and validation
//!   ([`api::KnativeAdmission`]), served as a Kubernetes API ([`api`]);
//! - [`controller`]s: Service → Configuration + Route, Configuration →
//!   Revisions, Revision → a Deployment (its Pods) and the autoscaler's
//!   scaler, Deployment → Pods, Route → the routing table;
//! - the [`dataplane`]: one HTTP port routing by Host
//!   (`NAME.NAMESPACE.DOMAIN`, `TAG-NAME.NAMESPACE.DOMAIN`) with percent
//!   splits, the activator with its throttler (requests wait while a
//!   revision scales from zero) and balancer (least loaded within
//!   `containerConcurrency`), and `/metrics`;
//! - the [`autoscaler`] (Knative's KPA) deciding each revision's scale every
//!   2 s from the concurrency the data plane observes;
//! - the [`kubelet`], running Pods: an image's entrypoint run as a process (pulled by
//!   digest, unpacked once), the image under podman, or an `okonomi://PATH`
//!   crate built with cargo on deploy. Each Pod's output is kept under
//!   `STATE/logs/NAMESPACE/SERVICE/REVISION/` and read through `pods/log`
//!   ([`kubelet::pod_logs`]).

// Tests may unwrap: a panic is their failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod autoscaler;
pub mod controller;
pub mod dataplane;
pub mod engine;
pub mod error;
pub mod kubelet;
pub mod serving_config;

pub use dataplane::server::ClientLimits;
pub use engine::{Engine, EngineConfig, run};
pub use error::{Error, Result};
pub use kubelet::RuntimeKind;
