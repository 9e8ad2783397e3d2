//! A revision's load over time, bucketed per second and averaged over the
//! stable and panic windows (Knative's `TimedFloat64Buckets.WindowAverage`):
//! time-weighted concurrency ([`ConcurrencyWindow`]), requests arriving per
//! second ([`RequestRate`]), and both together ([`LoadWindow`]) for the
//! metric a revision scales on.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::{ScalingMetric, ScalingSpec};

/// The longest window kept: no stable window is longer (config validation).
const RETAIN_SECONDS: u64 = 3600;

/// Concurrency of one revision over time.
#[derive(Debug, Clone)]
pub struct ConcurrencyWindow {
    origin: Instant,
    /// (second since origin, concurrency × seconds during that second).
    buckets: VecDeque<(u64, f64)>,
    current: u32,
    last_change: Instant,
    /// First second with traffic since the window was last empty: averages
    /// span only the time there is data for, as in Knative.
    first_active: Option<u64>,
}

impl ConcurrencyWindow {
    /// An empty window starting at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            origin: now,
            buckets: VecDeque::new(),
            current: 0,
            last_change: now,
            first_active: None,
        }
    }

    /// The concurrency right now.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// Records that the concurrency is `value` from `now` on.
    pub fn set(&mut self, now: Instant, value: u32) {
        self.flush(now);
        if value > 0 && self.first_active.is_none() {
            self.first_active = Some(self.second(now));
        }
        self.current = value;
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs()
    }

    /// Adds the area under the curve since the last change.
    fn flush(&mut self, now: Instant) {
        if now <= self.last_change {
            return;
        }
        if self.current > 0 {
            let value = f64::from(self.current);
            let mut from = self.last_change;
            // A long span is only kept for its last RETAIN_SECONDS.
            let oldest = now.checked_sub(Duration::from_secs(RETAIN_SECONDS));
            if let Some(oldest) = oldest
                && from < oldest
            {
                from = oldest;
            }
            while from < now {
                let second = self.second(from);
                let second_end = self.origin + Duration::from_secs(second + 1);
                let until = second_end.min(now);
                let area = value * until.duration_since(from).as_secs_f64();
                match self.buckets.back_mut() {
                    Some((s, a)) if *s == second => *a += area,
                    _ => self.buckets.push_back((second, area)),
                }
                from = until;
            }
        }
        self.last_change = now;
        let now_second = self.second(now);
        while let Some(&(s, _)) = self.buckets.front() {
            if s + RETAIN_SECONDS < now_second {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
    }

    /// Average concurrency over the last `window` (0 when there was no
    /// traffic in it).
    pub fn average(&mut self, now: Instant, window: Duration) -> f64 {
        self.flush(now);
        let now_s = now.saturating_duration_since(self.origin).as_secs_f64();
        let start_s = now_s - window.as_secs_f64();
        let mut area = 0.0;
        for &(second, bucket_area) in self.buckets.iter().rev() {
            let s = second as f64;
            if s + 1.0 <= start_s {
                break;
            }
            // Part of a bucket that straddles the window start counts pro rata.
            let share = if s < start_s {
                (s + 1.0 - start_s).clamp(0.0, 1.0)
            } else {
                1.0
            };
            area += bucket_area * share;
        }
        if area == 0.0 && self.current == 0 {
            // Empty for a whole stable window: the next burst starts afresh.
            if window.as_secs() > 0 && self.first_active.is_some_and(|f| (f as f64) < start_s) {
                self.first_active = None;
            }
            return 0.0;
        }
        let active_span = self
            .first_active
            .map(|f| (now_s - f as f64).max(1.0))
            .unwrap_or(window.as_secs_f64());
        let span = window.as_secs_f64().min(active_span).max(1e-3);
        area / span
    }

    /// The (stable, panic) averages at `now`.
    pub fn averages(&mut self, now: Instant, stable: Duration, panic: Duration) -> (f64, f64) {
        (self.average(now, stable), self.average(now, panic))
    }
}

/// Requests arriving for one revision, counted per second (Knative's `rps`
/// metric).
#[derive(Debug, Clone)]
pub struct RequestRate {
    origin: Instant,
    /// (second since origin, requests that arrived during that second).
    buckets: VecDeque<(u64, u64)>,
    /// First arrival since the window was last empty: a rate spans only the
    /// time there is data for, as the concurrency average does.
    first_active: Option<Instant>,
}

impl RequestRate {
    /// No request yet, counting from `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            origin: now,
            buckets: VecDeque::new(),
            first_active: None,
        }
    }

    fn second(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_secs()
    }

    /// Counts one request arriving at `at`.
    pub fn record(&mut self, at: Instant) {
        let second = self.second(at);
        match self.buckets.back_mut() {
            Some((s, count)) if *s >= second => *count += 1,
            _ => self.buckets.push_back((second, 1)),
        }
        self.first_active.get_or_insert(at);
        while let Some(&(s, _)) = self.buckets.front() {
            if s + RETAIN_SECONDS < second {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
    }

    /// Requests per second over the last `window` (0 when none arrived in it).
    pub fn rate(&mut self, now: Instant, window: Duration) -> f64 {
        let now_s = now.saturating_duration_since(self.origin).as_secs_f64();
        let start_s = now_s - window.as_secs_f64();
        let mut requests = 0.0;
        for &(second, count) in self.buckets.iter().rev() {
            let s = second as f64;
            if s + 1.0 <= start_s {
                break;
            }
            // Arrivals within a second are taken as evenly spread, so a
            // bucket straddling the window start counts pro rata.
            let share = if s < start_s {
                (s + 1.0 - start_s).clamp(0.0, 1.0)
            } else {
                1.0
            };
            requests += count as f64 * share;
        }
        if requests == 0.0 {
            // Nothing for a whole window: the next burst starts afresh.
            if window.as_secs() > 0
                && self
                    .first_active
                    .is_some_and(|f| now.saturating_duration_since(f) > window)
            {
                self.first_active = None;
            }
            return 0.0;
        }
        let active = self
            .first_active
            .map(|f| now.saturating_duration_since(f).as_secs_f64())
            .unwrap_or(window.as_secs_f64())
            .max(1.0);
        requests / window.as_secs_f64().min(active).max(1e-3)
    }
}

/// Everything a revision's pool records about its load: the concurrency and
/// the arrivals, so either metric can be scaled on.
#[derive(Debug, Clone)]
pub struct LoadWindow {
    concurrency: ConcurrencyWindow,
    requests: RequestRate,
}

impl LoadWindow {
    /// No load yet, from `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            concurrency: ConcurrencyWindow::new(now),
            requests: RequestRate::new(now),
        }
    }

    /// A request arrived at `now`, making the concurrency `concurrency`.
    pub fn arrived(&mut self, now: Instant, concurrency: u32) {
        self.requests.record(now);
        self.concurrency.set(now, concurrency);
    }

    /// The concurrency is `value` from `now` on (a request finished).
    pub fn set(&mut self, now: Instant, value: u32) {
        self.concurrency.set(now, value);
    }

    /// Average concurrency over the last `window`.
    pub fn average(&mut self, now: Instant, window: Duration) -> f64 {
        self.concurrency.average(now, window)
    }

    /// The (stable, panic) values at `now` of the metric `spec` scales on.
    pub fn observe(&mut self, now: Instant, spec: &ScalingSpec) -> (f64, f64) {
        match spec.metric {
            ScalingMetric::Concurrency => {
                self.concurrency
                    .averages(now, spec.stable_window, spec.panic_window)
            }
            ScalingMetric::Rps => (
                self.requests.rate(now, spec.stable_window),
                self.requests.rate(now, spec.panic_window),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_load_averages_to_itself() {
        let start = Instant::now();
        let mut w = ConcurrencyWindow::new(start);
        w.set(start, 4);
        let (stable, panic) = w.averages(
            start + Duration::from_secs(120),
            Duration::from_secs(60),
            Duration::from_secs(6),
        );
        assert!((stable - 4.0).abs() < 1e-9, "{stable}");
        assert!((panic - 4.0).abs() < 1e-9, "{panic}");
    }

    #[test]
    fn half_time_load_averages_to_half() {
        let start = Instant::now();
        let mut w = ConcurrencyWindow::new(start);
        w.set(start, 1);
        for t in 0..120u64 {
            let at = start + Duration::from_millis(t * 500);
            w.set(at, if t % 2 == 0 { 2 } else { 0 });
        }
        let avg = w.average(start + Duration::from_secs(60), Duration::from_secs(60));
        assert!((avg - 1.0).abs() < 0.05, "{avg}");
    }

    #[test]
    fn fresh_traffic_is_averaged_over_the_time_it_has_existed() {
        let start = Instant::now();
        let mut w = ConcurrencyWindow::new(start);
        w.set(start + Duration::from_secs(100), 10);
        let avg = w.average(start + Duration::from_secs(110), Duration::from_secs(60));
        assert!((avg - 10.0).abs() < 1e-9, "{avg}");
    }

    #[test]
    fn no_traffic_for_a_window_reads_zero() {
        let start = Instant::now();
        let mut w = ConcurrencyWindow::new(start);
        w.set(start, 3);
        w.set(start + Duration::from_secs(5), 0);
        assert!(w.average(start + Duration::from_secs(30), Duration::from_secs(60)) > 0.0);
        assert_eq!(
            w.average(start + Duration::from_secs(66), Duration::from_secs(60)),
            0.0
        );
    }

    #[test]
    fn a_steady_request_rate_averages_to_itself() {
        let start = Instant::now();
        let mut rate = RequestRate::new(start);
        // 10 requests a second, evenly spread, for two minutes.
        for i in 0..1200u64 {
            rate.record(start + Duration::from_millis(i * 100));
        }
        let now = start + Duration::from_secs(120);
        let stable = rate.rate(now, Duration::from_secs(60));
        let panic = rate.rate(now, Duration::from_secs(6));
        assert!((stable - 10.0).abs() < 0.05, "{stable}");
        assert!((panic - 10.0).abs() < 0.05, "{panic}");
    }

    #[test]
    fn a_fresh_burst_is_a_rate_over_the_time_it_has_lasted() {
        let start = Instant::now();
        let mut rate = RequestRate::new(start);
        let burst = start + Duration::from_secs(300);
        // 50 requests a second for 4 seconds after 5 idle minutes.
        for i in 0..200u64 {
            rate.record(burst + Duration::from_millis(i * 20));
        }
        let now = burst + Duration::from_secs(4);
        let stable = rate.rate(now, Duration::from_secs(60));
        assert!((stable - 50.0).abs() < 0.5, "{stable}");
        // A minute later without requests: 0, and the next burst starts afresh.
        assert_eq!(
            rate.rate(now + Duration::from_secs(61), Duration::from_secs(60)),
            0.0
        );
        let again = now + Duration::from_secs(62);
        for i in 0..10u64 {
            rate.record(again + Duration::from_millis(i * 100));
        }
        let fresh = rate.rate(again + Duration::from_secs(1), Duration::from_secs(60));
        assert!((fresh - 10.0).abs() < 0.5, "{fresh}");
    }

    #[test]
    fn a_load_window_observes_the_metric_the_revision_scales_on() {
        use super::super::config::AutoscalerConfig;
        use std::collections::BTreeMap;
        let start = Instant::now();
        let mut load = LoadWindow::new(start);
        // One long request in flight, and 20 short ones a second besides.
        load.arrived(start, 1);
        for i in 0..1200u64 {
            let at = start + Duration::from_millis(i * 50);
            load.arrived(at, 2);
            load.set(at, 1);
        }
        let now = start + Duration::from_secs(60);
        let config = AutoscalerConfig::default();
        let concurrency = config.spec_for(&BTreeMap::new(), 0);
        let rps = config.spec_for(
            &BTreeMap::from([(
                "autoscaling.knative.dev/metric".to_string(),
                "rps".to_string(),
            )]),
            0,
        );
        let (stable, panic) = load.observe(now, &concurrency);
        assert!(
            (stable - 1.0).abs() < 0.01 && (panic - 1.0).abs() < 0.01,
            "{stable} {panic}"
        );
        let (stable, panic) = load.observe(now, &rps);
        assert!(
            (stable - 20.0).abs() < 0.5 && (panic - 20.0).abs() < 0.5,
            "{stable} {panic}"
        );
    }
}
