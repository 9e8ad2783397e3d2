//! The KPA decision, ported from Knative's `autoscaler.Scale(logger, now)`
//! and the scale-to-zero and bounds logic of its KPA reconciler.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::ScalingSpec;

/// What the data plane observed for one revision at decision time, in the
/// metric the revision scales on (Knative's observed stable and panic
/// values).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The revision's metric over the stable window, all instances together:
    /// the average concurrency (including requests the activator holds) or
    /// the requests per second.
    pub stable_value: f64,
    /// The same over the panic window.
    pub panic_value: f64,
    /// Instances ready to take requests now.
    pub ready_instances: u32,
    /// Requests held by the activator or in flight right now: while there
    /// is one, the revision keeps at least one instance, whatever the
    /// windows say.
    pub requests_now: u32,
}

/// What the decider remembers between decisions (Knative keeps the same in
/// its `autoscaler` struct and the PodAutoscaler status).
#[derive(Debug, Clone, Default)]
pub struct KpaState {
    /// When panic mode was last (re)entered.
    panic_since: Option<Instant>,
    /// The highest panic-mode decision: panic mode never scales down.
    max_panic_instances: u32,
    /// Recent decisions, for scale-down-delay (a max over a time window).
    recent: VecDeque<(Instant, u32)>,
    /// When the decision first became zero, for the grace period.
    zero_wanted_since: Option<Instant>,
    /// Whether the revision has reached its initial scale once.
    initialized: bool,
    /// Whether the last decision was zero (after the grace period): staying
    /// at zero needs no new grace period.
    at_zero: bool,
    /// The scale the revision had before an engine restart: the first
    /// decision after it does not go below.
    restored_scale: Option<u32>,
}

impl KpaState {
    /// State for a revision that already ran before (say, restored after an
    /// engine restart at `scale` instances): the initial scale no longer
    /// applies, and a revision that was at zero stays there without a new
    /// grace period.
    pub fn restored(scale: u32) -> Self {
        Self {
            initialized: true,
            at_zero: scale == 0,
            restored_scale: Some(scale),
            ..Self::default()
        }
    }

    /// The state a revision starts with: `restored_scale` is the scale it
    /// had before an engine restart, if it had one. A revision restored, or
    /// starting at zero (`initial-scale` 0), needs no initial scale and no
    /// grace period before it may sit at zero.
    pub fn starting(spec: &ScalingSpec, restored_scale: Option<u32>) -> Self {
        match restored_scale {
            Some(scale) => Self::restored(scale),
            None if spec.initial_scale == 0 => Self::restored(0),
            None => Self::default(),
        }
    }

    /// Whether the decider is in panic mode.
    pub fn panicking(&self) -> bool {
        self.panic_since.is_some()
    }
}

/// One scaling decision (Knative's `ScaleResult`, with the KPA
/// reconciler's choice of whether the activator stays in the request path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Instances wanted now.
    pub desired: u32,
    /// Whether the decision was made in panic mode.
    pub panicking: bool,
    /// Spare capacity beyond the current load and the target burst capacity:
    /// ready instances × total value − target burst capacity − panic-window
    /// value, rounded down. 0 when the target burst capacity is 0, -1 when it
    /// is -1 (unlimited). Negative means a burst of the target size would
    /// queue.
    pub excess_burst_capacity: i32,
    /// Whether requests should go through the activator (which holds and
    /// balances them) rather than straight to the instances: at zero, or
    /// when the excess burst capacity is negative (Knative's SKS proxy mode).
    pub activator_in_path: bool,
}

/// Knative's excess burst capacity: what `ready` instances can take beyond
/// the `panic_value` now and the spec's target burst capacity.
pub fn excess_burst_capacity(spec: &ScalingSpec, ready: u32, panic_value: f64) -> i32 {
    if spec.target_burst_capacity == 0.0 {
        0
    } else if spec.target_burst_capacity > 0.0 {
        let total_capacity = f64::from(ready) * spec.total_value;
        // `as` saturates at i32's bounds, as Knative's int32 conversion is
        // meant to.
        (total_capacity - spec.target_burst_capacity - panic_value).floor() as i32
    } else {
        -1
    }
}

/// Computes the desired number of instances at `now`.
pub fn decide(
    spec: &ScalingSpec,
    state: &mut KpaState,
    obs: Observation,
    now: Instant,
) -> Decision {
    let ready = f64::from(obs.ready_instances.max(1));
    let max_scale_up = (spec.max_scale_up_rate * ready).ceil();
    let max_scale_down = (ready / spec.max_scale_down_rate).floor();

    let dspc = (obs.stable_value / spec.target_per_instance).ceil();
    let dppc = (obs.panic_value / spec.target_per_instance).ceil();
    let desired_stable = dspc.max(max_scale_down).min(max_scale_up) as u32;
    let desired_panic = dppc.max(max_scale_down).min(max_scale_up) as u32;

    let over_panic_threshold = dppc / ready >= spec.panic_threshold;
    if over_panic_threshold {
        // Entering panic or extending it.
        state.panic_since = Some(now);
    } else if let Some(since) = state.panic_since
        && since + spec.stable_window <= now
    {
        state.panic_since = None;
        state.max_panic_instances = 0;
    }

    let mut desired = desired_stable;
    if state.panic_since.is_some() {
        // In panic mode the scale only goes up.
        state.max_panic_instances = state.max_panic_instances.max(desired_panic);
        desired = state.max_panic_instances;
    }

    if !spec.scale_down_delay.is_zero() {
        state.recent.push_back((now, desired));
        while let Some(&(at, _)) = state.recent.front() {
            if at + spec.scale_down_delay <= now {
                state.recent.pop_front();
            } else {
                break;
            }
        }
        desired = state
            .recent
            .iter()
            .map(|&(_, d)| d)
            .max()
            .unwrap_or(desired);
    }

    // Scale to zero only after the grace period (which starts once no
    // traffic was seen for a whole stable window, i.e. when the decision
    // first drops to zero).
    if desired == 0 {
        if !state.at_zero {
            let since = *state.zero_wanted_since.get_or_insert(now);
            if !spec.enable_scale_to_zero || now.duration_since(since) < spec.scale_to_zero_grace {
                desired = 1;
            }
        }
    } else {
        state.zero_wanted_since = None;
    }
    state.at_zero = desired == 0;

    if !state.initialized {
        if obs.ready_instances >= spec.initial_scale {
            state.initialized = true;
        } else {
            desired = desired.max(spec.initial_scale);
        }
    }

    desired = desired.max(spec.min_scale);
    if spec.max_scale > 0 {
        desired = desired.min(spec.max_scale);
    }
    // Whether the activator stays in the path follows the windows, not the
    // two floors below.
    let windows_want_zero = desired == 0;
    // The first decision after a restart keeps the scale the revision had.
    if let Some(restored) = state.restored_scale.take() {
        desired = desired.max(restored);
    }
    // Requests held by the activator always get an instance.
    if obs.requests_now > 0 {
        desired = desired.max(1);
    }
    // On the panic value: the activator should not flap in and out of the
    // path with every short change of the load.
    let excess_burst_capacity = excess_burst_capacity(spec, obs.ready_instances, obs.panic_value);
    Decision {
        desired,
        panicking: state.panic_since.is_some(),
        excess_burst_capacity,
        activator_in_path: windows_want_zero || excess_burst_capacity < 0,
    }
}

/// How often the engine makes a decision per revision (Knative's tick).
pub const TICK: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::super::config::AutoscalerConfig;
    use super::super::window::{ConcurrencyWindow, LoadWindow};
    use super::*;
    use std::collections::BTreeMap;

    fn spec(pairs: &[(&str, &str)], container_concurrency: u32) -> ScalingSpec {
        let annotations: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (format!("autoscaling.knative.dev/{k}"), v.to_string()))
            .collect();
        AutoscalerConfig::default().spec_for(&annotations, container_concurrency)
    }

    fn obs(stable: f64, panic: f64, ready: u32) -> Observation {
        Observation {
            stable_value: stable,
            panic_value: panic,
            ready_instances: ready,
            requests_now: 0,
        }
    }

    /// Replays a load trace: `load(t)` is the revision's concurrency during
    /// second `t`; the number of ready instances follows the decisions
    /// instantly. Returns the decision after every tick.
    fn replay(spec: &ScalingSpec, seconds: u64, load: impl Fn(u64) -> u32) -> Vec<(u64, Decision)> {
        let start = Instant::now();
        let mut window = ConcurrencyWindow::new(start);
        let mut state = KpaState::default();
        let mut ready = spec.initial_scale;
        let mut decisions = Vec::new();
        for t in 0..seconds {
            let at = start + Duration::from_secs(t);
            window.set(at, load(t));
            if t % TICK.as_secs() == 0 && t > 0 {
                let (stable, panic) = window.averages(at, spec.stable_window, spec.panic_window);
                let d = decide(spec, &mut state, obs(stable, panic, ready), at);
                ready = d.desired;
                decisions.push((t, d));
            }
        }
        decisions
    }

    #[test]
    fn stable_load_settles_on_demand_over_target() {
        // containerConcurrency 10 → 7 per instance; 35 concurrent → 5.
        let spec = spec(&[], 10);
        let decisions = replay(&spec, 200, |_| 35);
        let (_, last) = decisions.last().unwrap();
        assert_eq!(last.desired, 5);
        assert!(!last.panicking);
    }

    #[test]
    fn burst_panics_and_never_scales_down_while_panicking() {
        let spec = spec(&[], 10);
        // Idle-ish (7 concurrent → 1 instance) for 2 minutes, then 10× burst.
        let decisions = replay(&spec, 240, |t| if t < 120 { 7 } else { 70 });
        let before: Vec<_> = decisions.iter().filter(|(t, _)| *t < 120).collect();
        assert!(before.iter().all(|(_, d)| d.desired == 1 && !d.panicking));
        // Within the panic window (6s) of the burst, panic scales straight to
        // 70 / 7 = 10, long before the stable window would have.
        let (t, d) = decisions
            .iter()
            .find(|(t, d)| *t >= 120 && d.desired == 10)
            .unwrap();
        assert!(*t <= 126, "reached 10 at {t}");
        assert!(d.panicking);
        let mut last = 0;
        for (t, d) in decisions.iter().filter(|(t, _)| *t >= 120) {
            if d.panicking {
                assert!(d.desired >= last, "panic scaled down at {t}");
            }
            last = d.desired;
        }
    }

    #[test]
    fn panic_ends_a_stable_window_after_the_last_overload() {
        let spec = spec(&[], 10);
        let decisions = replay(&spec, 400, |t| if (120..130).contains(&t) { 70 } else { 7 });
        let panicking: Vec<u64> = decisions
            .iter()
            .filter(|(_, d)| d.panicking)
            .map(|(t, _)| *t)
            .collect();
        let last_panic = *panicking.last().unwrap();
        // The panic window still sees overload up to ~136; the mode then
        // lasts one stable window (60s) more.
        assert!((180..=200).contains(&last_panic), "{last_panic}");
        let (_, last) = decisions.last().unwrap();
        assert_eq!(last.desired, 1);
    }

    #[test]
    fn scale_down_is_limited_by_max_scale_down_rate() {
        let spec = spec(&[], 10);
        let mut state = KpaState::restored(1);
        let now = Instant::now();
        // 20 ready, no demand: at most halve per decision (rate 2.0).
        let d = decide(&spec, &mut state, obs(0.1, 0.1, 20), now);
        assert_eq!(d.desired, 10);
        let d = decide(&spec, &mut state, obs(0.1, 0.1, 10), now + TICK);
        assert_eq!(d.desired, 5);
    }

    #[test]
    fn scale_up_is_limited_by_max_scale_up_rate() {
        let config = AutoscalerConfig {
            max_scale_up_rate: 2.0,
            ..AutoscalerConfig::default()
        };
        let spec = config.spec_for(&BTreeMap::new(), 1);
        let mut state = KpaState::restored(1);
        // 2 ready, demand for 100: at most 2 × 2 = 4.
        let d = decide(&spec, &mut state, obs(70.0, 0.0, 2), Instant::now());
        assert_eq!(d.desired, 4);
    }

    #[test]
    fn idle_revision_reaches_zero_after_window_plus_grace() {
        let spec = spec(&[("window", "10s")], 0);
        // One request-second of traffic at t=0, then nothing.
        let decisions = replay(&spec, 80, |t| u32::from(t < 2));
        let zero_at = decisions
            .iter()
            .find(|(_, d)| d.desired == 0)
            .map(|(t, _)| *t)
            .unwrap();
        // Stable window (10s) without traffic plus 30s grace.
        assert!((40..=46).contains(&zero_at), "zero at {zero_at}");
        assert!(
            decisions
                .iter()
                .filter(|(t, _)| *t < 40)
                .all(|(_, d)| d.desired == 1)
        );
    }

    #[test]
    fn min_scale_keeps_instances_and_max_scale_caps_them() {
        let spec_min = spec(&[("min-scale", "2")], 0);
        let decisions = replay(&spec_min, 200, |_| 0);
        assert!(decisions.iter().all(|(_, d)| d.desired == 2));
        let spec_max = spec(&[("max-scale", "3")], 1);
        let decisions = replay(&spec_max, 100, |_| 50);
        assert!(decisions.iter().all(|(_, d)| d.desired <= 3));
        assert_eq!(decisions.last().unwrap().1.desired, 3);
    }

    #[test]
    fn a_revision_restored_at_zero_stays_there() {
        let spec = spec(&[], 0);
        let mut state = KpaState::restored(0);
        let d = decide(&spec, &mut state, obs(0.0, 0.0, 0), Instant::now());
        assert_eq!(d.desired, 0);
        // Traffic still wakes it.
        let d = decide(&spec, &mut state, obs(0.5, 0.5, 0), Instant::now() + TICK);
        assert_eq!(d.desired, 1);
    }

    #[test]
    fn a_revision_with_initial_scale_zero_starts_at_zero() {
        let mut config = AutoscalerConfig::from_yaml(
            "allow-zero-initial-scale: \"true\"\ninitial-scale: \"0\"\n",
        )
        .unwrap();
        config.scale_to_zero_grace_period = Duration::from_secs(30);
        let spec = config.spec_for(&BTreeMap::new(), 0);
        let mut state = KpaState::starting(&spec, None);
        let decision = decide(&spec, &mut state, obs(0.0, 0.0, 0), Instant::now());
        assert_eq!(decision.desired, 0);
        // With the default initial scale the first decision is one.
        let spec = AutoscalerConfig::default().spec_for(&BTreeMap::new(), 0);
        let mut state = KpaState::starting(&spec, None);
        let decision = decide(&spec, &mut state, obs(0.0, 0.0, 0), Instant::now());
        assert_eq!(decision.desired, 1);
    }

    #[test]
    fn a_restored_scale_holds_for_the_first_decision_only() {
        let spec = spec(&[], 0);
        let mut state = KpaState::starting(&spec, Some(3));
        let now = Instant::now();
        assert_eq!(decide(&spec, &mut state, obs(0.0, 0.0, 3), now).desired, 3);
        let later = now + TICK;
        assert!(decide(&spec, &mut state, obs(0.0, 0.0, 3), later).desired < 3);
    }

    #[test]
    fn a_held_request_forces_one_instance_even_at_zero() {
        let spec = spec(&[], 0);
        let mut state = KpaState::restored(0);
        let now = Instant::now();
        assert_eq!(decide(&spec, &mut state, obs(0.0, 0.0, 0), now).desired, 0);
        let held = Observation {
            requests_now: 1,
            ..obs(0.0, 0.0, 0)
        };
        let decision = decide(&spec, &mut state, held, now + TICK);
        assert_eq!(decision.desired, 1);
        assert!(decision.activator_in_path);
    }

    #[test]
    fn initial_scale_holds_until_reached() {
        let spec = spec(&[("initial-scale", "3")], 0);
        let mut state = KpaState::default();
        let now = Instant::now();
        assert_eq!(decide(&spec, &mut state, obs(0.0, 0.0, 0), now).desired, 3);
        assert_eq!(
            decide(&spec, &mut state, obs(0.0, 0.0, 3), now + TICK).desired,
            1
        );
    }

    #[test]
    fn scale_down_delay_keeps_the_recent_maximum() {
        let spec = spec(&[("scale-down-delay", "20s")], 10);
        let decisions = replay(&spec, 200, |t| if t < 100 { 70 } else { 7 });
        // Without the delay the scale drops towards 1 as the stable window
        // drains; with it, every decision is the max of the last 20s.
        let at = |t: u64| decisions.iter().find(|(s, _)| *s == t).unwrap().1.desired;
        assert_eq!(at(98), 10);
        assert!(at(110) >= 10);
        assert_eq!(decisions.last().unwrap().1.desired, 1);
    }

    /// Replays a request-rate trace: `rate(t)` requests of 1ms arrive evenly
    /// during second `t`; ready instances follow the decisions instantly.
    fn replay_rate(
        spec: &ScalingSpec,
        seconds: u64,
        rate: impl Fn(u64) -> u32,
    ) -> Vec<(u64, Decision)> {
        let start = Instant::now();
        let mut load = LoadWindow::new(start);
        let mut state = KpaState::default();
        let mut ready = spec.initial_scale;
        let mut decisions = Vec::new();
        for t in 0..seconds {
            let at = start + Duration::from_secs(t);
            if t % TICK.as_secs() == 0 && t > 0 {
                let (stable, panic) = load.observe(at, spec);
                let d = decide(spec, &mut state, obs(stable, panic, ready), at);
                ready = d.desired;
                decisions.push((t, d));
            }
            let n = rate(t);
            for i in 0..n {
                let arrival = at + Duration::from_secs(1) * i / n;
                load.arrived(arrival, 1);
                load.set(arrival + Duration::from_millis(1), 0);
            }
        }
        decisions
    }

    #[test]
    fn rps_scales_on_requests_per_second_against_200_at_70_percent() {
        // requests-per-second-target-default 200 at 70%: 140 per instance.
        let rps = spec(&[("metric", "rps")], 0);
        let decisions = replay_rate(&rps, 200, |_| 700);
        assert_eq!(decisions.last().unwrap().1.desired, 5);
        // The same trace scaled on concurrency (0.7 requests in flight on
        // average) needs one instance: the metric decides.
        let concurrency = spec(&[], 0);
        let decisions = replay_rate(&concurrency, 200, |_| 700);
        assert_eq!(decisions.last().unwrap().1.desired, 1);
        // The target annotation sets requests per second per instance.
        let rps = spec(&[("metric", "rps"), ("target", "100")], 0);
        let decisions = replay_rate(&rps, 200, |_| 700);
        assert_eq!(decisions.last().unwrap().1.desired, 10);
    }

    #[test]
    fn an_rps_burst_panics_like_a_concurrency_burst() {
        let rps = spec(&[("metric", "rps")], 0);
        // 100 rps (1 instance) for two minutes, then 1400 rps: panic goes
        // straight to 1400 / 140 = 10 within the panic window.
        let decisions = replay_rate(&rps, 200, |t| if t < 120 { 100 } else { 1400 });
        assert!(
            decisions
                .iter()
                .filter(|(t, _)| *t < 120)
                .all(|(_, d)| d.desired == 1 && !d.panicking)
        );
        let (t, d) = decisions
            .iter()
            .find(|(t, d)| *t >= 120 && d.desired >= 10)
            .unwrap();
        assert!(*t <= 128, "reached 10 at {t}");
        assert!(d.panicking);
    }

    #[test]
    fn excess_burst_capacity_is_capacity_minus_burst_minus_panic_load() {
        // Defaults from config-autoscaler: target-burst-capacity 211, and a
        // revision with unlimited concurrency has a total value of 100.
        let default = spec(&[], 0);
        assert_eq!(default.target_burst_capacity, 211.0);
        assert_eq!(default.total_value, 100.0);
        // 3 × 100 − 211 − 50 = 39: room for the burst, no activator.
        assert_eq!(excess_burst_capacity(&default, 3, 50.0), 39);
        // 2 × 100 − 211 − 50.5 = −61.5, rounded down.
        assert_eq!(excess_burst_capacity(&default, 2, 50.5), -62);
        let mut state = KpaState::restored(3);
        let d = decide(&default, &mut state, obs(50.0, 50.0, 3), Instant::now());
        assert_eq!((d.excess_burst_capacity, d.activator_in_path), (39, false));
        let d = decide(
            &default,
            &mut state,
            obs(50.0, 50.5, 2),
            Instant::now() + TICK,
        );
        assert_eq!((d.excess_burst_capacity, d.activator_in_path), (-62, true));
        // containerConcurrency is the total value when set.
        let limited = spec(&[("target-burst-capacity", "5")], 10);
        assert_eq!(excess_burst_capacity(&limited, 2, 7.0), 20 - 5 - 7);
    }

    #[test]
    fn burst_capacity_zero_keeps_the_activator_only_at_zero_and_minus_one_always() {
        let zero = spec(&[("target-burst-capacity", "0")], 0);
        let mut state = KpaState::restored(1);
        let now = Instant::now();
        // Busy and short of capacity, yet no activator: only zero brings it.
        let d = decide(&zero, &mut state, obs(500.0, 500.0, 1), now);
        assert_eq!((d.excess_burst_capacity, d.activator_in_path), (0, false));
        let mut state = KpaState::restored(0);
        let d = decide(&zero, &mut state, obs(0.0, 0.0, 0), now);
        assert_eq!(d.desired, 0);
        assert!(d.activator_in_path);

        let unlimited = spec(&[("target-burst-capacity", "-1")], 0);
        let mut state = KpaState::restored(100);
        // A hundred idle instances still keep the activator in the path.
        let d = decide(&unlimited, &mut state, obs(1.0, 1.0, 100), now);
        assert_eq!((d.excess_burst_capacity, d.activator_in_path), (-1, true));
    }

    #[test]
    fn the_activator_enters_the_path_on_a_burst_and_leaves_once_scaled() {
        let spec = spec(&[("target-burst-capacity", "10")], 0);
        // 20 concurrent (one instance: 100 − 10 − 20 = 70 spare), then 150.
        let decisions = replay(&spec, 240, |t| if t < 120 { 20 } else { 150 });
        let at = |t: u64| decisions.iter().find(|(s, _)| *s == t).unwrap().1;
        assert!(!at(118).activator_in_path, "{:?}", at(118));
        assert_eq!(at(118).excess_burst_capacity, 70);
        // The burst outruns one instance (100 − 10 − panic load < 0) before
        // the scale catches up.
        assert!(
            decisions
                .iter()
                .filter(|(t, _)| (121..=130).contains(t))
                .any(|(_, d)| d.activator_in_path && d.excess_burst_capacity < 0),
            "{decisions:?}"
        );
        // Scaled to ⌈150 / 70⌉ = 3: 300 − 10 − 150 = 140 spare, direct again.
        let (_, last) = decisions.last().unwrap();
        assert_eq!(last.desired, 3);
        assert_eq!(last.excess_burst_capacity, 140);
        assert!(!last.activator_in_path);
    }
}
