//! The activator's throttler (Knative's `revisionThrottler`): per revision,
//! the requests it holds while no instance has room (a bounded wait queue
//! with a timeout), the concurrency the autoscaler scales on, and the
//! autoscaler's last word on whether the activator stays in the path.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, Semaphore};

use super::RevisionKey;
use super::balancer::{Balancer, Endpoint, Lease};
use super::metrics::{Metrics, RevisionLabels, RevisionMetrics};
use super::upstream::Protocol;
use crate::autoscaler::{LoadWindow, ScalingSpec};

/// Why the throttler could not give a request an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Too many requests already wait for this revision.
    QueueFull,
    /// No instance could take the request in time.
    Timeout,
}

/// One revision as the data plane sees it.
#[derive(Debug)]
pub struct Throttler {
    /// Which revision.
    pub key: RevisionKey,
    /// Swapped whole when `config-autoscaler` changes.
    spec: ArcSwap<ScalingSpec>,
    protocol: Protocol,
    balancer: Balancer,
    /// Notified when an endpoint or a slot frees up.
    changed: Notify,
    waiting: AtomicUsize,
    queue: Semaphore,
    in_flight: AtomicU32,
    window: Mutex<LoadWindow>,
    /// The autoscaler's last word on the activator (Knative's SKS mode).
    activator_in_path: AtomicBool,
    /// The autoscaler's last excess burst capacity.
    excess_burst_capacity: AtomicI32,
    /// Wakes the scaler when a request waits with no instance.
    poke: Notify,
    /// Instance starts that a waiting request triggered, not yet ready.
    cold_pending: AtomicU32,
    /// What the activator says when a request times out: instances wanted,
    /// and the last failure (reason, message).
    wanted: AtomicU32,
    last_failure: Mutex<Option<(String, String)>>,
    metrics: Arc<Metrics>,
    labels: RevisionLabels,
    request_metrics: RevisionMetrics,
}

impl Throttler {
    /// A revision with no instance yet, holding at most `queue_depth`
    /// requests; `protocol` is how the data plane speaks to its instances.
    pub fn new(
        key: RevisionKey,
        spec: ScalingSpec,
        protocol: Protocol,
        queue_depth: usize,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let labels = RevisionLabels {
            namespace: key.namespace.clone(),
            revision: key.name.clone(),
        };
        let request_metrics = metrics.revision(&labels);
        Arc::new(Self {
            key,
            balancer: Balancer::new(spec.container_concurrency),
            spec: ArcSwap::from_pointee(spec),
            protocol,
            changed: Notify::new(),
            waiting: AtomicUsize::new(0),
            queue: Semaphore::new(queue_depth),
            in_flight: AtomicU32::new(0),
            window: Mutex::new(LoadWindow::new(Instant::now())),
            // Like Knative, a revision starts with the activator in the path.
            activator_in_path: AtomicBool::new(true),
            excess_burst_capacity: AtomicI32::new(-1),
            poke: Notify::new(),
            cold_pending: AtomicU32::new(0),
            wanted: AtomicU32::new(0),
            last_failure: Mutex::new(None),
            metrics,
            request_metrics,
            labels,
        })
    }

    /// The revision's request metrics.
    pub fn request_metrics(&self) -> &RevisionMetrics {
        &self.request_metrics
    }

    /// The metric labels of the revision.
    pub fn labels(&self) -> &RevisionLabels {
        &self.labels
    }

    /// The revision's scaling spec now.
    pub fn spec(&self) -> Arc<ScalingSpec> {
        self.spec.load_full()
    }

    /// The revision's request timeouts (read per request: no clone of the
    /// spec).
    pub fn request_timeouts(&self) -> crate::autoscaler::RequestTimeouts {
        self.spec.load().request_timeouts
    }

    /// Takes a new scaling spec (the autoscaler's settings changed). The
    /// revision's own settings, such as its container concurrency, do not
    /// change: a revision is immutable.
    pub fn set_spec(&self, spec: ScalingSpec) {
        self.spec.store(Arc::new(spec));
    }

    /// How the data plane speaks to the revision's instances.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The revision's ready endpoints.
    pub fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    /// Ready endpoints now.
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.balancer.endpoints()
    }

    /// Whether the autoscaler wants requests to go through the activator
    /// (held and balanced within `containerConcurrency`) rather than straight
    /// to an instance: at zero, or while the spare capacity is below the
    /// revision's `target-burst-capacity` (always for -1). True until the
    /// first decision. With no ready instance requests wait regardless.
    pub fn activator_in_path(&self) -> bool {
        self.activator_in_path.load(Ordering::Relaxed)
    }

    /// The autoscaler's last excess burst capacity (see
    /// [`Decision::excess_burst_capacity`](crate::autoscaler::Decision)).
    pub fn excess_burst_capacity(&self) -> i32 {
        self.excess_burst_capacity.load(Ordering::Relaxed)
    }

    /// Records the autoscaler's decision: the scale it wants and whether the
    /// activator stays in the path.
    pub fn set_decision(&self, wanted: u32, activator_in_path: bool, excess_burst_capacity: i32) {
        self.wanted.store(wanted, Ordering::Relaxed);
        self.activator_in_path
            .store(activator_in_path, Ordering::Relaxed);
        self.excess_burst_capacity
            .store(excess_burst_capacity, Ordering::Relaxed);
    }

    /// Counts a request for this revision (held or proxied) until the
    /// returned guard drops: this is the concurrency the KPA scales on.
    pub fn track(self: &Arc<Self>) -> Tracked {
        let value = self.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        self.window
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .arrived(Instant::now(), value);
        self.request_metrics.in_flight.inc();
        Tracked {
            throttler: self.clone(),
        }
    }

    /// The stable and panic values of the revision's metric at `now`.
    pub fn observe(&self, now: Instant) -> (f64, f64) {
        self.window
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(now, &self.spec.load())
    }

    /// Requests held or in flight right now (a held request is tracked
    /// too; a retry waiting in the proxy may not be).
    pub fn requests_now(&self) -> u32 {
        let waiting = u32::try_from(self.waiting.load(Ordering::Acquire)).unwrap_or(u32::MAX);
        waiting.max(self.in_flight.load(Ordering::Acquire))
    }

    /// Resolves once a request waits with no instance (the scaler then
    /// decides at once instead of on its next tick).
    pub async fn cold_request(&self) {
        self.poke.notified().await
    }

    /// A lease on an instance with room right now, without waiting.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Lease> {
        self.balancer
            .pick()
            .map(|endpoint| Lease::new(endpoint, self.clone()))
    }

    /// Waits for an instance with spare capacity (the activator: scales from
    /// zero when there is none), at most `timeout`.
    pub async fn acquire(self: &Arc<Self>, timeout: Duration) -> Result<Lease, Unavailable> {
        if let Some(lease) = self.try_acquire() {
            return Ok(lease);
        }
        let _permit = self
            .queue
            .try_acquire()
            .map_err(|_| Unavailable::QueueFull)?;
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = WaitingGuard(self);
        let arrived = Instant::now();
        let cold = self.endpoints().is_empty();
        if cold {
            self.poke.notify_one();
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(lease) = self.try_acquire() {
                if cold {
                    self.metrics
                        .cold_start_wait(&self.labels)
                        .observe(arrived.elapsed().as_secs_f64());
                }
                return Ok(lease);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return Err(Unavailable::Timeout),
            }
        }
    }

    /// A lease ended: one waiting request may take its slot.
    pub(crate) fn slot_freed(&self) {
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.changed.notify_one();
        }
    }

    /// An instance's process started; counted as a cold start if a request
    /// waits for it.
    pub fn instance_started(&self) {
        if self.waiting.load(Ordering::Acquire) > 0 && self.endpoints().is_empty() {
            self.cold_pending.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// `endpoint` is ready: held requests may go to it. Returns how many
    /// endpoints are ready.
    pub fn endpoint_ready(&self, endpoint: Endpoint) -> u32 {
        if self
            .cold_pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
        {
            self.metrics.cold_starts(&self.labels).inc();
        }
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let ready = self.balancer.add(endpoint);
        self.changed.notify_waiters();
        ready
    }

    /// Takes the endpoint `id` out of the ready set, then waits (at most
    /// `drain`) for the requests already on it. Returns how many endpoints
    /// are left.
    pub async fn endpoint_gone(&self, id: &str, drain: Duration) -> u32 {
        let (removed, left) = self.balancer.remove(id);
        self.changed.notify_waiters();
        if let Some(endpoint) = removed {
            self.balancer.drain(&endpoint, drain).await;
        }
        left
    }

    /// No endpoint any more (the revision stopped).
    pub fn clear(&self) {
        self.balancer.set(Vec::new());
        self.changed.notify_waiters();
    }

    /// Remembers a failure to tell held requests that time out.
    pub fn failed(&self, reason: &str, message: &str) {
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((reason.to_string(), message.to_string()));
    }

    /// Why held requests may time out: instances wanted and the last
    /// failure (reason, message).
    pub fn health(&self) -> (u32, Option<(String, String)>) {
        (
            self.wanted.load(Ordering::Relaxed),
            self.last_failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

struct WaitingGuard<'a>(&'a Throttler);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request counted in its revision's concurrency.
#[derive(Debug)]
pub struct Tracked {
    throttler: Arc<Throttler>,
}

impl Tracked {
    /// The revision's throttler.
    pub fn throttler(&self) -> &Arc<Throttler> {
        &self.throttler
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let value = self.throttler.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        self.throttler
            .window
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set(Instant::now(), value);
        self.throttler.request_metrics.in_flight.dec();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::autoscaler::AutoscalerConfig;
    use std::collections::BTreeMap;
    use std::net::SocketAddr;

    /// A lease on a one-instance revision whose instance is at `addr`.
    pub(crate) async fn lease_on(addr: SocketAddr) -> Lease {
        lease_on_with(addr, Protocol::Http1).await
    }

    /// A lease on a one-instance revision whose instance at `addr` speaks
    /// `protocol`.
    pub(crate) async fn lease_on_with(addr: SocketAddr, protocol: Protocol) -> Lease {
        let throttler = throttler_speaking(0, 10, protocol);
        throttler.endpoint_ready(Endpoint::new("a".into(), addr, None));
        throttler.acquire(Duration::from_secs(1)).await.unwrap()
    }

    /// A lease on a one-instance revision at `addr` that sets `timeouts`.
    pub(crate) async fn lease_with_timeouts(
        addr: SocketAddr,
        timeouts: crate::autoscaler::RequestTimeouts,
    ) -> Lease {
        let mut spec = AutoscalerConfig::default().spec_for(&BTreeMap::new(), 0);
        spec.request_timeouts = timeouts;
        let throttler = throttler_of("slow-00001", spec, Protocol::Http1, 10);
        throttler.endpoint_ready(Endpoint::new("a".into(), addr, None));
        throttler.acquire(Duration::from_secs(1)).await.unwrap()
    }

    pub(crate) fn throttler(container_concurrency: u32, queue_depth: usize) -> Arc<Throttler> {
        throttler_speaking(container_concurrency, queue_depth, Protocol::Http1)
    }

    fn throttler_speaking(
        container_concurrency: u32,
        queue_depth: usize,
        protocol: Protocol,
    ) -> Arc<Throttler> {
        let spec = AutoscalerConfig::default().spec_for(&BTreeMap::new(), container_concurrency);
        throttler_of("hello-00001", spec, protocol, queue_depth)
    }

    fn throttler_of(
        name: &str,
        spec: ScalingSpec,
        protocol: Protocol,
        queue_depth: usize,
    ) -> Arc<Throttler> {
        Throttler::new(
            RevisionKey {
                namespace: "default".into(),
                name: name.into(),
            },
            spec,
            protocol,
            queue_depth,
            Arc::new(Metrics::default()),
        )
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn ready(throttler: &Throttler, id: &str, port: u16) {
        throttler.endpoint_ready(Endpoint::new(id.into(), addr(port), None));
    }

    #[tokio::test]
    async fn requests_wait_for_a_free_slot_within_container_concurrency() {
        let throttler = throttler(1, 10);
        ready(&throttler, "a", 1);
        let first = throttler.acquire(Duration::from_secs(1)).await.unwrap();
        // The only slot is taken: the next request waits, then times out.
        let second = throttler.acquire(Duration::from_millis(50)).await;
        assert_eq!(second.unwrap_err(), Unavailable::Timeout);
        // Freeing the slot releases a waiting request.
        let waiter = {
            let throttler = throttler.clone();
            tokio::spawn(async move {
                throttler
                    .acquire(Duration::from_secs(5))
                    .await
                    .map(|l| l.addr())
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert_eq!(waiter.await.unwrap().unwrap(), addr(1));
    }

    #[tokio::test]
    async fn the_least_loaded_instance_is_picked() {
        let throttler = throttler(0, 10);
        ready(&throttler, "a", 1);
        ready(&throttler, "b", 2);
        let one = throttler.acquire(Duration::from_secs(1)).await.unwrap();
        let two = throttler.acquire(Duration::from_secs(1)).await.unwrap();
        assert_ne!(one.addr(), two.addr());
        drop(one);
        let three = throttler.acquire(Duration::from_secs(1)).await.unwrap();
        assert_ne!(three.addr(), two.addr());
    }

    #[tokio::test]
    async fn a_full_activator_queue_refuses_at_once() {
        let throttler = throttler(1, 1);
        // No instance: one request may wait, the next is refused.
        let waiting = {
            let throttler = throttler.clone();
            tokio::spawn(async move {
                throttler
                    .acquire(Duration::from_secs(5))
                    .await
                    .map(|l| l.addr())
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            throttler.acquire(Duration::from_secs(5)).await.unwrap_err(),
            Unavailable::QueueFull
        );
        // An instance becoming ready releases the held request.
        ready(&throttler, "a", 7);
        assert_eq!(waiting.await.unwrap().unwrap(), addr(7));
    }

    #[tokio::test]
    async fn a_drained_endpoint_waits_for_its_requests() {
        let throttler = throttler(0, 10);
        ready(&throttler, "a", 1);
        let lease = throttler.acquire(Duration::from_secs(1)).await.unwrap();
        let gone = {
            let throttler = throttler.clone();
            tokio::spawn(async move { throttler.endpoint_gone("a", Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Out of the ready set at once, but still draining.
        assert!(throttler.endpoints().is_empty());
        assert!(!gone.is_finished());
        drop(lease);
        assert_eq!(gone.await.unwrap(), 0);
    }

    #[tokio::test]
    async fn tracked_requests_are_the_concurrency_the_autoscaler_sees() {
        let throttler = throttler(0, 10);
        let a = throttler.track();
        let b = throttler.track();
        assert_eq!(throttler.requests_now(), 2);
        drop((a, b));
        assert_eq!(throttler.requests_now(), 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let average = throttler
            .window
            .lock()
            .unwrap()
            .average(Instant::now(), Duration::from_secs(60));
        assert!(average > 0.0);
    }
}
