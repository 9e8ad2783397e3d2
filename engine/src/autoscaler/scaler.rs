//! The scaler (Knative's KPA reconciler and `scaler.go`): acts on the KPA's
//! decisions for one revision. Every [`TICK`](super::kpa::TICK), or at once
//! when a request waits with no instance, it reads the throttler's
//! concurrency, asks the pure [`decide`](super::kpa::decide), tells the
//! throttler whether the activator stays in the path, and sets the scale
//! its Deployment follows.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::kpa::{self, KpaState, Observation};
use crate::dataplane::Throttler;

/// Decides `throttler`'s revision's scale until `shutdown`, starting from
/// `state`, and publishes each decision on `scale`.
pub async fn run(
    throttler: Arc<Throttler>,
    mut state: KpaState,
    scale: watch::Sender<u32>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(kpa::TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
            _ = throttler.cold_request() => {}
        }
        let now = Instant::now();
        let (stable_value, panic_value) = throttler.observe(now);
        let observation = Observation {
            stable_value,
            panic_value,
            ready_instances: throttler.endpoints().len() as u32,
            requests_now: throttler.requests_now(),
        };
        let decision = kpa::decide(&throttler.spec(), &mut state, observation, now);
        throttler.set_decision(
            decision.desired,
            decision.activator_in_path,
            decision.excess_burst_capacity,
        );
        scale.send_if_modified(|current| {
            let changed = *current != decision.desired;
            *current = decision.desired;
            changed
        });
    }
}
