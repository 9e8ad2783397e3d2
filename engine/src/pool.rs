//! A revision's pool of instances: the ready endpoints the balancer picks
//! from, the concurrency the autoscaler reads, and the loop that starts and
//! stops instances to follow the KPA's decisions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::autoscaler::kpa::{self, KpaState, Observation};
use crate::autoscaler::{LoadWindow, ScalingSpec};
use crate::dataplane::metrics::{Metrics, RevisionLabels, RevisionMetrics};
use crate::dataplane::upstream::Protocol;
use crate::instance::logs::LogRing;
use crate::instance::supervisor::{self, InstanceObserver, SupervisorTiming};
use crate::instance::{InstanceSpec, Launch};

/// One ready instance.
#[derive(Debug)]
pub struct Endpoint {
    /// Instance id.
    pub id: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process (podman's, for the container runtime).
    pub pid: Option<u32>,
    in_flight: AtomicU32,
}

impl Endpoint {
    /// Requests being served by this instance now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Why the pool could not give a request an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Too many requests already wait for this revision.
    QueueFull,
    /// No instance could take the request in time.
    Timeout,
}

/// The revision's health as the revision controller reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Instances ready now.
    pub ready: u32,
    /// Instances the autoscaler wants.
    pub desired: u32,
    /// Whether some instance was ever ready.
    pub ever_ready: bool,
    /// Whether the revision starts at zero instances (initial-scale 0), so
    /// it counts as ready before any instance ran.
    pub starts_at_zero: bool,
    /// The last failure (reason, message with log tail), cleared when an
    /// instance becomes ready.
    pub failure: Option<(String, String)>,
}

/// A request's hold on one instance; dropping it frees the slot.
#[derive(Debug)]
pub struct Lease {
    endpoint: Arc<Endpoint>,
    pool: Arc<Pool>,
}

impl Lease {
    /// The instance's address.
    pub fn addr(&self) -> SocketAddr {
        self.endpoint.addr
    }

    /// How to speak to the instance.
    pub fn protocol(&self) -> Protocol {
        self.pool.protocol
    }

    /// The revision's pool the instance belongs to.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.pool.waiting.load(Ordering::Acquire) > 0 {
            self.pool.changed.notify_one();
        }
        if self.endpoint.in_flight() == 0 {
            self.pool.drained.notify_waiters();
        }
    }
}

/// Identity of a revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RevisionKey {
    /// Namespace.
    pub namespace: String,
    /// Revision name.
    pub name: String,
}

impl std::fmt::Display for RevisionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The instances of one revision.
#[derive(Debug)]
pub struct Pool {
    /// Which revision.
    pub key: RevisionKey,
    spec: ScalingSpec,
    protocol: Protocol,
    ready: RwLock<Arc<Vec<Arc<Endpoint>>>>,
    changed: Notify,
    drained: Notify,
    waiting: AtomicUsize,
    queue: Semaphore,
    in_flight: AtomicU32,
    window: Mutex<LoadWindow>,
    /// The autoscaler's last word on the activator (Knative's SKS mode).
    activator_in_path: AtomicBool,
    /// The autoscaler's last excess burst capacity.
    excess_burst_capacity: AtomicI32,
    poke: Notify,
    next: AtomicUsize,
    status: Mutex<PoolStatus>,
    ever_ready: AtomicBool,
    /// Instance starts that a waiting request triggered, not yet ready.
    cold_pending: AtomicU32,
    ring: LogRing,
    metrics: Arc<Metrics>,
    labels: RevisionLabels,
    request_metrics: RevisionMetrics,
    status_changed: Arc<Notify>,
    initial_state: Mutex<Option<KpaState>>,
}

impl Pool {
    /// A pool with no instance yet. `status_changed` is notified whenever the
    /// pool's [`PoolStatus`] changes; `restored_scale` is the scale the
    /// revision had before an engine restart (then initial-scale no longer
    /// applies); `protocol` is how the data plane speaks to its instances.
    pub fn new(
        key: RevisionKey,
        spec: ScalingSpec,
        protocol: Protocol,
        queue_depth: usize,
        metrics: Arc<Metrics>,
        status_changed: Arc<Notify>,
        restored_scale: Option<u32>,
    ) -> Arc<Self> {
        let labels = RevisionLabels {
            namespace: key.namespace.clone(),
            revision: key.name.clone(),
        };
        // A revision restored after a restart, or starting at zero
        // (initial-scale 0), needs no initial scale and no grace period
        // before it may sit at zero.
        let state = match restored_scale {
            Some(scale) => Some(KpaState::restored(scale)),
            None if spec.initial_scale == 0 => Some(KpaState::restored(0)),
            None => None,
        };
        let starts_at_zero = spec.initial_scale == 0;
        let request_metrics = metrics.revision(&labels);
        Arc::new(Self {
            key,
            spec,
            protocol,
            ready: RwLock::new(Arc::new(Vec::new())),
            changed: Notify::new(),
            drained: Notify::new(),
            waiting: AtomicUsize::new(0),
            queue: Semaphore::new(queue_depth),
            in_flight: AtomicU32::new(0),
            window: Mutex::new(LoadWindow::new(Instant::now())),
            // Like Knative, a revision starts with the activator in the path.
            activator_in_path: AtomicBool::new(true),
            excess_burst_capacity: AtomicI32::new(-1),
            poke: Notify::new(),
            next: AtomicUsize::new(0),
            status: Mutex::new(PoolStatus {
                desired: restored_scale.unwrap_or(0),
                starts_at_zero,
                ..PoolStatus::default()
            }),
            ever_ready: AtomicBool::new(false),
            cold_pending: AtomicU32::new(0),
            ring: LogRing::default(),
            metrics,
            request_metrics,
            labels,
            status_changed,
            initial_state: Mutex::new(state),
        })
    }

    /// The revision's request metrics.
    pub fn request_metrics(&self) -> &RevisionMetrics {
        &self.request_metrics
    }

    /// The revision's scaling spec.
    pub fn spec(&self) -> &ScalingSpec {
        &self.spec
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

    /// The revision's recent log lines.
    pub fn log_tail(&self, lines: usize) -> Vec<String> {
        self.ring.tail(lines)
    }

    /// The current status.
    pub fn status(&self) -> PoolStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update_status(&self, change: impl FnOnce(&mut PoolStatus)) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let before = status.clone();
        change(&mut status);
        if *status != before {
            self.metrics
                .set_instances(&self.labels, status.desired, status.ready);
            self.status_changed.notify_one();
        }
    }

    /// Ready endpoints now.
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.ready.read().unwrap_or_else(|e| e.into_inner()).clone()
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
        Tracked { pool: self.clone() }
    }

    /// A lease on an instance with room right now, without waiting.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Lease> {
        self.try_pick()
    }

    fn try_pick(self: &Arc<Self>) -> Option<Lease> {
        let endpoints = self.endpoints();
        if endpoints.is_empty() {
            return None;
        }
        let limit = self.spec.container_concurrency;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // Least in-flight first, starting at a rotating offset so that equal
        // loads spread round-robin.
        for _ in 0..4 {
            let mut best: Option<&Arc<Endpoint>> = None;
            for i in 0..endpoints.len() {
                let candidate = &endpoints[(start + i) % endpoints.len()];
                let load = candidate.in_flight();
                if limit > 0 && load >= limit {
                    continue;
                }
                if best.is_none_or(|b| load < b.in_flight()) {
                    best = Some(candidate);
                    if load == 0 {
                        break;
                    }
                }
            }
            let best = best?;
            let claimed = best
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (limit == 0 || n < limit).then_some(n + 1)
                })
                .is_ok();
            if claimed {
                return Some(Lease {
                    endpoint: best.clone(),
                    pool: self.clone(),
                });
            }
        }
        None
    }

    /// Waits for an instance with spare capacity (the activator: scales from
    /// zero when there is none), at most `timeout`.
    pub async fn acquire(self: &Arc<Self>, timeout: Duration) -> Result<Lease, Unavailable> {
        if let Some(lease) = self.try_pick() {
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
            if let Some(lease) = self.try_pick() {
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

    fn set_ready(&self, endpoints: Vec<Arc<Endpoint>>) {
        let count = endpoints.len() as u32;
        *self.ready.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(endpoints);
        self.changed.notify_waiters();
        self.update_status(|s| s.ready = count);
    }
}

struct WaitingGuard<'a>(&'a Pool);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request counted in its revision's concurrency.
#[derive(Debug)]
pub struct Tracked {
    pool: Arc<Pool>,
}

impl Tracked {
    /// The revision's pool.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let value = self.pool.in_flight.fetch_sub(1, Ordering::AcqRel) - 1;
        self.pool
            .window
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set(Instant::now(), value);
        self.pool.request_metrics.in_flight.dec();
    }
}

impl InstanceObserver for Pool {
    fn ready(&self, id: &str, addr: SocketAddr, pid: Option<u32>) {
        let mut endpoints: Vec<Arc<Endpoint>> = self.endpoints().iter().cloned().collect();
        endpoints.retain(|e| e.id != id);
        endpoints.push(Arc::new(Endpoint {
            id: id.to_string(),
            addr,
            pid,
            in_flight: AtomicU32::new(0),
        }));
        self.ever_ready.store(true, Ordering::Release);
        if self
            .cold_pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
        {
            self.metrics.cold_starts(&self.labels).inc();
        }
        self.update_status(|s| {
            s.failure = None;
            s.ever_ready = true;
        });
        self.set_ready(endpoints);
    }

    async fn unready(&self, id: &str) {
        let endpoints: Vec<Arc<Endpoint>> = self.endpoints().iter().cloned().collect();
        let removed = endpoints.iter().find(|e| e.id == id).cloned();
        self.set_ready(endpoints.into_iter().filter(|e| e.id != id).collect());
        let Some(endpoint) = removed else { return };
        // Drain: requests already on the instance finish before SIGTERM.
        let drain = async {
            loop {
                let drained = self.drained.notified();
                tokio::pin!(drained);
                drained.as_mut().enable();
                if endpoint.in_flight() == 0 {
                    return;
                }
                drained.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(30), drain).await;
    }

    fn failed(&self, _id: &str, reason: &str, message: String) {
        let reason = reason.to_string();
        self.update_status(|s| s.failure = Some((reason, message)));
    }

    fn started(&self, _id: &str) {
        if self.waiting.load(Ordering::Acquire) > 0 && self.endpoints().is_empty() {
            self.cold_pending.fetch_add(1, Ordering::AcqRel);
        }
    }
}

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Runs the pool until `shutdown`: every [`kpa::TICK`] (or at once when a
/// request waits with no instance) decides the scale and starts or stops
/// instances to match; on shutdown stops every instance and waits for them.
pub async fn run(
    pool: Arc<Pool>,
    launch: Arc<Launch>,
    spec: Arc<InstanceSpec>,
    timing: SupervisorTiming,
    shutdown: CancellationToken,
) {
    let mut state = pool
        .initial_state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default();
    let restored = pool.status().desired;
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut counter = 0u64;
    let mut first = true;
    let mut ticker = tokio::time::interval(kpa::TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
            _ = pool.poke.notified() => {}
        }
        let now = Instant::now();
        let (stable, panic) = pool
            .window
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(now, &pool.spec);
        let ready = pool.endpoints().len() as u32;
        let observation = Observation {
            stable_value: stable,
            panic_value: panic,
            ready_instances: ready,
        };
        let decision = kpa::decide(&pool.spec, &mut state, observation, now);
        pool.activator_in_path
            .store(decision.activator_in_path, Ordering::Relaxed);
        pool.excess_burst_capacity
            .store(decision.excess_burst_capacity, Ordering::Relaxed);
        let mut desired = decision.desired;
        if first && restored > 0 {
            desired = desired.max(restored);
        }
        first = false;
        // Requests held by the activator always get an instance.
        if pool.waiting.load(Ordering::Acquire) > 0 || pool.in_flight.load(Ordering::Acquire) > 0 {
            desired = desired.max(1);
        }
        pool.update_status(|s| s.desired = desired);

        // Reap instances whose task ended on its own.
        running.retain(|_, r| !r.task.is_finished());
        order.retain(|id| running.contains_key(id));
        while (running.len() as u32) < desired {
            counter += 1;
            let id = format!(
                "{}-{}",
                counter,
                &uuid::Uuid::new_v4().simple().to_string()[..6]
            );
            let stop = shutdown.child_token();
            let task = tokio::spawn(supervisor::supervise(
                id.clone(),
                launch.clone(),
                spec.clone(),
                pool.ring.clone(),
                pool.clone(),
                timing.clone(),
                stop.clone(),
            ));
            running.insert(id.clone(), Running { stop, task });
            order.push(id);
        }
        while (running.len() as u32) > desired {
            // Stop the newest first: it is the least likely to be warm.
            let Some(id) = order.pop() else { break };
            if let Some(r) = running.remove(&id) {
                r.stop.cancel();
                tokio::spawn(async move {
                    let _ = r.task.await;
                });
            }
        }
    }
    for (_, r) in running.drain() {
        r.stop.cancel();
        let _ = r.task.await;
    }
    pool.set_ready(Vec::new());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::autoscaler::AutoscalerConfig;
    use std::collections::BTreeMap;

    /// A lease on a one-instance pool whose instance is at `addr`.
    pub(crate) async fn lease_on(addr: SocketAddr) -> Lease {
        lease_on_with(addr, Protocol::Http1).await
    }

    /// A lease on a one-instance pool whose instance at `addr` speaks
    /// `protocol`.
    pub(crate) async fn lease_on_with(addr: SocketAddr, protocol: Protocol) -> Lease {
        let pool = pool_speaking(0, 10, protocol);
        pool.ready("a", addr, None);
        pool.acquire(Duration::from_secs(1)).await.unwrap()
    }

    /// A lease on a one-instance pool at `addr` whose revision sets
    /// `timeouts`.
    pub(crate) async fn lease_with_timeouts(
        addr: SocketAddr,
        timeouts: crate::autoscaler::RequestTimeouts,
    ) -> Lease {
        let mut spec = AutoscalerConfig::default().spec_for(&BTreeMap::new(), 0);
        spec.request_timeouts = timeouts;
        let pool = pool_of("slow-00001", spec, Protocol::Http1, 10);
        pool.ready("a", addr, None);
        pool.acquire(Duration::from_secs(1)).await.unwrap()
    }

    pub(crate) fn pool(container_concurrency: u32, queue_depth: usize) -> Arc<Pool> {
        pool_speaking(container_concurrency, queue_depth, Protocol::Http1)
    }

    fn pool_speaking(
        container_concurrency: u32,
        queue_depth: usize,
        protocol: Protocol,
    ) -> Arc<Pool> {
        let spec = AutoscalerConfig::default().spec_for(&BTreeMap::new(), container_concurrency);
        pool_of("hello-00001", spec, protocol, queue_depth)
    }

    /// A pool of revision `name` in `default`, with nothing to start
    /// instances.
    fn pool_of(name: &str, spec: ScalingSpec, protocol: Protocol, queue_depth: usize) -> Arc<Pool> {
        Pool::new(
            RevisionKey {
                namespace: "default".into(),
                name: name.into(),
            },
            spec,
            protocol,
            queue_depth,
            Arc::new(Metrics::default()),
            Arc::new(Notify::new()),
            None,
        )
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test]
    async fn requests_wait_for_a_free_slot_within_container_concurrency() {
        let pool = pool(1, 10);
        pool.ready("a", addr(1), None);
        let first = pool.acquire(Duration::from_secs(1)).await.unwrap();
        // The only slot is taken: the next request waits, then times out.
        let second = pool.acquire(Duration::from_millis(50)).await;
        assert_eq!(second.unwrap_err(), Unavailable::Timeout);
        // Freeing the slot releases a waiting request.
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(
                async move { pool.acquire(Duration::from_secs(5)).await.map(|l| l.addr()) },
            )
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert_eq!(waiter.await.unwrap().unwrap(), addr(1));
    }

    #[tokio::test]
    async fn the_least_loaded_instance_is_picked() {
        let pool = pool(0, 10);
        pool.ready("a", addr(1), None);
        pool.ready("b", addr(2), None);
        let one = pool.acquire(Duration::from_secs(1)).await.unwrap();
        let two = pool.acquire(Duration::from_secs(1)).await.unwrap();
        assert_ne!(one.addr(), two.addr());
        drop(one);
        let three = pool.acquire(Duration::from_secs(1)).await.unwrap();
        assert_ne!(three.addr(), two.addr());
    }

    #[tokio::test]
    async fn a_full_activator_queue_refuses_at_once() {
        let pool = pool(1, 1);
        // No instance: one request may wait, the next is refused.
        let waiting = {
            let pool = pool.clone();
            tokio::spawn(
                async move { pool.acquire(Duration::from_secs(5)).await.map(|l| l.addr()) },
            )
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            pool.acquire(Duration::from_secs(5)).await.unwrap_err(),
            Unavailable::QueueFull
        );
        // An instance becoming ready releases the held request.
        pool.ready("a", addr(7), None);
        assert_eq!(waiting.await.unwrap().unwrap(), addr(7));
    }

    #[tokio::test]
    async fn a_revision_with_initial_scale_zero_starts_no_instance() {
        let mut config = AutoscalerConfig::from_yaml(
            "allow-zero-initial-scale: \"true\"\ninitial-scale: \"0\"\n",
        )
        .unwrap();
        config.scale_to_zero_grace_period = Duration::from_secs(30);
        let spec = config.spec_for(&BTreeMap::new(), 0);
        let pool = pool_of("idle-00001", spec, Protocol::Http1, 10);
        let mut state = pool.initial_state.lock().unwrap().take().unwrap();
        let observation = Observation {
            stable_value: 0.0,
            panic_value: 0.0,
            ready_instances: 0,
        };
        let decision = kpa::decide(pool.spec(), &mut state, observation, Instant::now());
        assert_eq!(decision.desired, 0);
        assert!(pool.status().starts_at_zero);
    }

    #[tokio::test]
    async fn tracked_requests_are_the_concurrency_the_autoscaler_sees() {
        let pool = pool(0, 10);
        let a = pool.track();
        let b = pool.track();
        assert_eq!(pool.in_flight.load(Ordering::Acquire), 2);
        drop((a, b));
        assert_eq!(pool.in_flight.load(Ordering::Acquire), 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let average = pool
            .window
            .lock()
            .unwrap()
            .average(Instant::now(), Duration::from_secs(60));
        assert!(average > 0.0);
    }
}
