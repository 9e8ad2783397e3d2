//! The activator's load balancer (Knative's `lb_policy.go` and pod
//! trackers): a revision's ready endpoints, picking the least loaded one
//! within `containerConcurrency`, and the lease a request holds on it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use super::throttler::Throttler;
use super::upstream::Protocol;

/// One ready instance.
#[derive(Debug)]
pub struct Endpoint {
    /// Instance (Pod) id.
    pub id: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process (podman's, for the container runtime).
    pub pid: Option<u32>,
    in_flight: AtomicU32,
}

impl Endpoint {
    /// A ready endpoint serving nothing yet.
    pub fn new(id: String, addr: SocketAddr, pid: Option<u32>) -> Self {
        Self {
            id,
            addr,
            pid,
            in_flight: AtomicU32::new(0),
        }
    }

    /// Requests being served by this instance now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// A revision's ready endpoints and the policy that picks one.
#[derive(Debug)]
pub struct Balancer {
    /// Requests one endpoint may take at once (0: unlimited).
    container_concurrency: u32,
    ready: RwLock<Arc<Vec<Arc<Endpoint>>>>,
    next: AtomicUsize,
    /// Notified when an endpoint's last request ends (for draining).
    drained: Notify,
}

impl Balancer {
    /// No endpoint yet; each will take at most `container_concurrency`
    /// requests at once (0: unlimited).
    pub fn new(container_concurrency: u32) -> Self {
        Self {
            container_concurrency,
            ready: RwLock::new(Arc::new(Vec::new())),
            next: AtomicUsize::new(0),
            drained: Notify::new(),
        }
    }

    /// Ready endpoints now.
    pub fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.ready.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the ready set; returns how many are ready.
    pub fn set(&self, endpoints: Vec<Arc<Endpoint>>) -> u32 {
        let count = endpoints.len() as u32;
        *self.ready.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(endpoints);
        count
    }

    /// Adds (or replaces) the endpoint `id`; returns how many are ready.
    pub fn add(&self, endpoint: Endpoint) -> u32 {
        let mut endpoints: Vec<Arc<Endpoint>> = self.endpoints().iter().cloned().collect();
        endpoints.retain(|e| e.id != endpoint.id);
        endpoints.push(Arc::new(endpoint));
        self.set(endpoints)
    }

    /// Takes the endpoint `id` out of the ready set; returns it (if it was
    /// there) and how many are left.
    pub fn remove(&self, id: &str) -> (Option<Arc<Endpoint>>, u32) {
        let endpoints: Vec<Arc<Endpoint>> = self.endpoints().iter().cloned().collect();
        let removed = endpoints.iter().find(|e| e.id == id).cloned();
        let left = self.set(endpoints.into_iter().filter(|e| e.id != id).collect());
        (removed, left)
    }

    /// Waits until no request is on `endpoint` any more, at most `limit`.
    pub async fn drain(&self, endpoint: &Endpoint, limit: Duration) {
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
        let _ = tokio::time::timeout(limit, drain).await;
    }

    /// Claims a slot on the least loaded endpoint with room, if any.
    pub fn pick(&self) -> Option<Arc<Endpoint>> {
        let endpoints = self.endpoints();
        if endpoints.is_empty() {
            return None;
        }
        let limit = self.container_concurrency;
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
                return Some(best.clone());
            }
        }
        None
    }

    /// Frees a slot [`pick`](Self::pick) claimed on `endpoint`.
    fn release(&self, endpoint: &Endpoint) {
        if endpoint.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drained.notify_waiters();
        }
    }
}

/// A request's hold on one instance; dropping it frees the slot.
#[derive(Debug)]
pub struct Lease {
    endpoint: Arc<Endpoint>,
    throttler: Arc<Throttler>,
}

impl Lease {
    /// A lease on a slot already claimed on `endpoint`.
    pub(crate) fn new(endpoint: Arc<Endpoint>, throttler: Arc<Throttler>) -> Self {
        Self {
            endpoint,
            throttler,
        }
    }

    /// The instance's address.
    pub fn addr(&self) -> SocketAddr {
        self.endpoint.addr
    }

    /// How to speak to the instance.
    pub fn protocol(&self) -> Protocol {
        self.throttler.protocol()
    }

    /// The throttler of the revision the instance belongs to.
    pub fn throttler(&self) -> &Arc<Throttler> {
        &self.throttler
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.throttler.balancer().release(&self.endpoint);
        self.throttler.slot_freed();
    }
}
