//! Time-weighted concurrency, bucketed per second, averaged over the stable
//! and panic windows (Knative's `TimedFloat64Buckets.WindowAverage`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

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
}
