//! The control tick: read the latest observation, check it (watchdog, size,
//! finite), ask the [`ActionSource`] for an action with the remaining time as
//! deadline, clamp and scale it to actuator units. Untrusted observations
//! are not planned on: the safe action goes out and the event is counted.
//! A panic or error inside the source is caught: the safe action goes out,
//! the fault is counted, and the node stops or continues per
//! `on_planner_fault`.
//!
//! Everything a tick touches is allocated in [`Controller::new`]; a tick
//! allocates nothing (checked by `tests/ros_tick_alloc.rs`). The action
//! buffers are `heapless` vectors of capacity [`MAX_ACTION`], so an action
//! is a fixed-size value that can be queued to the publisher by copy.

use super::settings::{FaultPolicy, Settings};
use super::slot::LatestWins;
use super::source::{ActionSource, SourceFault, TickStatus, Tunables};
use crate::agent::Observation;
use crate::bundle::plausibility::ObsBounds;
use crate::planner::PlanStatus;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Most actuators the node drives (`action.size` is bounded by it).
pub const MAX_ACTION: usize = 64;
/// One action in actuator units: fixed capacity, copied without allocating.
pub type ActionVec = heapless::Vec<f64, MAX_ACTION>;
/// Bytes of a fault's message kept for diagnostics.
pub const FAULT_TEXT: usize = 96;
/// The last fault's message, fixed capacity (cut at a char boundary).
pub type FaultText = heapless::String<FAULT_TEXT>;

/// What one tick did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickKind {
    /// Planned on a fresh, valid observation.
    Planned,
    /// No observation received yet.
    NoObservation,
    /// Newest observation older than the watchdog timeout.
    Stale,
    /// Observation of the wrong length.
    WrongSize,
    /// Observation with NaN or infinity.
    NonFinite,
    /// The planner found no finite plan, or the action was non-finite.
    SourceFailed,
    /// A panic or error inside planning.
    PlannerFault,
    /// Finite observation outside the bundle's training range by more than
    /// `plausibility.margin` (with `plausibility.action: reject`).
    Implausible,
}

impl TickKind {
    /// Name in diagnostics.
    pub fn name(self) -> &'static str {
        match self {
            TickKind::Planned => "planned",
            TickKind::NoObservation => "no_observation",
            TickKind::Stale => "stale",
            TickKind::WrongSize => "wrong_size",
            TickKind::NonFinite => "non_finite",
            TickKind::SourceFailed => "source_failed",
            TickKind::PlannerFault => "planner_fault",
            TickKind::Implausible => "implausible",
        }
    }
}

/// Name of a planner status in diagnostics.
pub fn status_name(s: PlanStatus) -> &'static str {
    match s {
        PlanStatus::Finished => "finished",
        PlanStatus::Deadline => "deadline",
        PlanStatus::AllNonFinite => "all_non_finite",
    }
}

/// Counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub ticks: u64,
    pub planned: u64,
    pub no_observation: u64,
    pub stale: u64,
    pub wrong_size: u64,
    pub non_finite: u64,
    /// Observations outside the training range plus margin (rejected, or
    /// only warned about under `plausibility.action: warn`).
    pub implausible: u64,
    pub source_failed: u64,
    /// Panics or errors inside planning (each got the safe action).
    pub planner_faults: u64,
    /// Ticks whose planner stopped early at its deadline (anytime: the
    /// best action so far, at worst the policy's, went out).
    pub cut_by_deadline: u64,
    /// Ticks that finished after their deadline (the best action went out).
    pub deadline_misses: u64,
    /// Whole periods skipped because a tick overran its period.
    pub overruns: u64,
    /// Actuator elements clamped into the action bounds.
    pub clamped: u64,
}

/// Fixed-size ring of recent samples (seconds), preallocated.
pub struct Window {
    buf: Vec<f64>,
    scratch: Vec<f64>,
    next: usize,
    filled: usize,
}

impl Window {
    pub fn new(capacity: usize) -> Self {
        Window {
            buf: vec![0.0; capacity.max(1)],
            scratch: vec![0.0; capacity.max(1)],
            next: 0,
            filled: 0,
        }
    }
    pub fn push(&mut self, x: f64) {
        self.buf[self.next] = x;
        self.next = (self.next + 1) % self.buf.len();
        self.filled = (self.filled + 1).min(self.buf.len());
    }
    /// (p50, p99, max) of the samples held; zeros when empty. Sorts a
    /// preallocated copy: O(n log n), no allocation.
    pub fn summary(&mut self) -> (f64, f64, f64) {
        let n = self.filled;
        if n == 0 {
            return (0.0, 0.0, 0.0);
        }
        let s = &mut self.scratch[..n];
        s.copy_from_slice(&self.buf[..n]);
        s.sort_unstable_by(f64::total_cmp);
        let q = |p: f64| s[((p * (n - 1) as f64).round() as usize).min(n - 1)];
        (q(0.5), q(0.99), s[n - 1])
    }
    pub fn len(&self) -> usize {
        self.filled
    }
    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }
}

/// Whole-run log-scale histogram of durations (seconds) from 100 ns to
/// 100 s, 200 bins per decade (quantiles within 1.2 %); preallocated, push
/// is O(1) and allocation-free.
pub struct Histogram {
    bins: Vec<u64>,
    count: u64,
    max: f64,
}

impl Histogram {
    const LO: f64 = 1e-7;
    const PER_DECADE: f64 = 200.0;
    const DECADES: usize = 9;

    pub fn new() -> Self {
        Histogram {
            bins: vec![0; Self::DECADES * Self::PER_DECADE as usize + 1],
            count: 0,
            max: 0.0,
        }
    }
    pub fn push(&mut self, x: f64) {
        let i = if x <= Self::LO {
            0
        } else {
            (((x / Self::LO).log10() * Self::PER_DECADE) as usize).min(self.bins.len() - 1)
        };
        self.bins[i] += 1;
        self.count += 1;
        self.max = self.max.max(x);
    }
    pub fn count(&self) -> u64 {
        self.count
    }
    pub fn max(&self) -> f64 {
        self.max
    }
    /// Quantile `p` in [0, 1] (upper edge of its bin, capped at the max).
    pub fn quantile(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let target = ((p * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.bins.iter().enumerate() {
            seen += b;
            if seen >= target {
                let edge = Self::LO * 10f64.powf((i + 1) as f64 / Self::PER_DECADE);
                return edge.min(self.max);
            }
        }
        self.max
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// What the control thread hands to the diagnostics publisher once per
/// diagnostics period (through a bounded `crossbeam` queue, by value).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub counts: Counts,
    /// Ticks per second over the last window.
    pub rate_hz: f64,
    /// Tick latency over the last window (seconds).
    pub latency_p50_s: f64,
    pub latency_p99_s: f64,
    pub latency_max_s: f64,
    /// Wake-up lateness p99 over the last window (seconds).
    pub jitter_p99_s: f64,
    pub predicted_return: f32,
    pub last_kind: TickKind,
    pub last_status: PlanStatus,
    /// Message of the last planner fault (empty when none).
    pub last_fault: FaultText,
    /// The tunables in force on the control thread.
    pub tunables: Tunables,
    /// Planner iterations of the last planned tick.
    pub last_iterations: usize,
}

/// The controller's tick state (ros2_control's `update` contract: given the
/// time, never allocates or blocks).
pub struct Controller {
    source: Box<dyn ActionSource>,
    obs_size: usize,
    watchdog: Duration,
    scale: ActionVec,
    offset: ActionVec,
    safe: ActionVec,
    obs_raw: Vec<f64>,
    obs: Vec<f32>,
    /// Plausibility bounds (`None`: the bundle records no range, or a
    /// model-free source).
    plausible: Option<ObsBounds>,
    plausible_warn_only: bool,
    action: heapless::Vec<f32, MAX_ACTION>,
    out: ActionVec,
    fault_policy: FaultPolicy,
    inject_fault_at: Option<u64>,
    /// Ticks that reached the source (1-based index of the injected fault).
    attempts: u64,
    fault_stop: bool,
    pub counts: Counts,
    pub latency: Window,
    pub jitter: Window,
    /// Whole-run tick latency and period jitter.
    pub latency_total: Histogram,
    pub jitter_total: Histogram,
    pub last_kind: TickKind,
    pub last_status: PlanStatus,
    pub predicted_return: f32,
    pub last_fault: FaultText,
    /// The tunables in force (start-up values until the parameter services
    /// change them).
    pub tunables: Tunables,
    pub last_iterations: usize,
}

fn action_vec(v: &[f64]) -> ActionVec {
    ActionVec::from_slice(v).expect("action.size <= MAX_ACTION (checked by the parameter table)")
}

/// The panic payload's text, cut to [`FAULT_TEXT`] bytes.
fn fault_text(payload: &(dyn std::any::Any + Send)) -> FaultText {
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic with a non-text payload");
    let mut t = FaultText::new();
    for c in msg.chars() {
        if t.push(c).is_err() {
            break;
        }
    }
    t
}

impl Controller {
    /// Allocates every buffer a tick needs (observation capacity is
    /// `obs_size + 1` so an oversized message is seen as such).
    pub fn new(cfg: &Settings, source: Box<dyn ActionSource>) -> Self {
        let window = (cfg.control_rate_hz * cfg.diagnostics_period_s).ceil() as usize + 1;
        let mut action = heapless::Vec::new();
        action
            .resize(cfg.action_size, 0.0)
            .expect("action.size <= MAX_ACTION");
        let plausible = source
            .observation_spec()
            .and_then(|s| ObsBounds::new(s, cfg.plausibility_margin));
        Controller {
            source,
            obs_size: cfg.observation_size,
            watchdog: Duration::from_secs_f64(cfg.watchdog_timeout_s),
            scale: action_vec(&cfg.action_scale),
            offset: action_vec(&cfg.action_offset),
            safe: action_vec(&cfg.safe_action),
            obs_raw: vec![0.0; cfg.observation_size + 1],
            obs: vec![0.0; cfg.observation_size],
            plausible,
            plausible_warn_only: cfg.plausibility_warn_only,
            action,
            out: action_vec(&cfg.safe_action),
            fault_policy: cfg.on_planner_fault,
            inject_fault_at: cfg.inject_planner_fault_at_tick,
            attempts: 0,
            fault_stop: false,
            counts: Counts::default(),
            latency: Window::new(window),
            jitter: Window::new(window),
            latency_total: Histogram::new(),
            jitter_total: Histogram::new(),
            last_kind: TickKind::NoObservation,
            last_status: PlanStatus::Finished,
            predicted_return: f32::NAN,
            last_fault: FaultText::new(),
            tunables: Tunables {
                iterations: 0,
                step_size: 0.0,
                beta: 0.0,
                plan_fraction: cfg.plan_fraction,
            },
            last_iterations: 0,
        }
        .with_source_tunables()
    }

    fn with_source_tunables(mut self) -> Self {
        if let Some(t) = self.source.tunables() {
            self.tunables = Tunables {
                plan_fraction: self.tunables.plan_fraction,
                ..t
            };
        }
        self
    }

    /// Whether the source has planner tunables (K, step size, beta).
    pub fn has_planner_tunables(&self) -> bool {
        self.source.tunables().is_some()
    }

    /// Apply `t` between ticks: the planner's K, step size and beta (when
    /// the source has them and accepts them) and the recorded values
    /// (`plan_fraction` is the control loop's, see
    /// `control::ControlLoop::update`). Cost: O(1), no allocation.
    pub fn tune(&mut self, t: &Tunables) -> bool {
        let planner_ok = self.source.tunables().is_none() || self.source.tune(t);
        if planner_ok {
            self.tunables = *t;
        }
        planner_ok
    }

    /// Capacity the observation slot must have.
    pub fn obs_capacity(&self) -> usize {
        self.obs_size + 1
    }

    /// The action of the last tick, in actuator units.
    pub fn output(&self) -> &ActionVec {
        &self.out
    }

    /// The configured safe action, in actuator units.
    pub fn safe_action(&self) -> &ActionVec {
        &self.safe
    }

    /// The observation of the last tick (the one planned on, when the tick
    /// planned), as received, before conversion to f32. No allocation.
    pub fn observation(&self) -> &[f64] {
        &self.obs_raw[..self.obs_size]
    }

    /// True once a planner fault happened under `on_planner_fault: stop`:
    /// the node must publish the safe action and stop.
    pub fn must_stop(&self) -> bool {
        self.fault_stop
    }

    /// Ask the source inside `catch_unwind`: a panic (or an injected one)
    /// becomes `Err` with its message. Cost when nothing panics: the
    /// source's `act`; no allocation.
    fn ask_source(&mut self, deadline: Instant) -> Result<TickStatus, FaultText> {
        self.attempts += 1;
        let inject = self.inject_fault_at == Some(self.attempts);
        let (source, action) = (&mut self.source, &mut self.action);
        // `tick` has checked the size and converted with `obs_to_f32`,
        // which refused any element not finite in f32: the one check.
        let obs = Observation::checked_by_tick(&self.obs);
        let r = catch_unwind(AssertUnwindSafe(|| {
            if inject {
                panic!("injected planner fault (debug.inject_planner_fault_at_tick)");
            }
            source.act(obs, deadline, action)
        }));
        match r {
            Ok(Ok(st)) => Ok(st),
            Ok(Err(SourceFault(why))) => {
                let mut t = FaultText::new();
                let _ = t.push_str(&why[..why.len().min(FAULT_TEXT)]);
                Err(t)
            }
            Err(payload) => Err(fault_text(payload.as_ref())),
        }
    }

    /// Converts the observation to the planner's f32 into `obs` and says
    /// whether every element is finite there. A value finite in f64 but
    /// beyond f32's range (|x| > 3.4e38) becomes infinite in f32, so it is
    /// refused here like NaN and infinity, not handed to the planner.
    /// O(observation size), no allocation.
    fn obs_to_f32(&mut self) -> bool {
        let mut finite = true;
        for (o, r) in self.obs.iter_mut().zip(&self.obs_raw[..self.obs_size]) {
            *o = *r as f32;
            finite &= o.is_finite();
        }
        finite
    }

    /// True when the observation in `obs_raw` is outside the plausibility
    /// bounds and the node rejects it; under `plausibility.action: warn` it
    /// is only counted. O(observation size), no allocation.
    fn implausible(&mut self) -> bool {
        let Some(b) = &self.plausible else {
            return false;
        };
        if b.first_outside(&self.obs_raw[..self.obs_size]).is_none() {
            return false;
        }
        if self.plausible_warn_only {
            self.counts.implausible += 1;
            return false;
        }
        true
    }

    /// Whether the plausibility check is on (the source's bundle records
    /// its training range).
    pub fn plausibility_checked(&self) -> bool {
        self.plausible.is_some()
    }

    /// One tick at time `now` with planner deadline `deadline`: reads
    /// `obs_slot`, writes the actuator command into `self.output()`.
    /// Cost: the action source's `act` plus O(obs + action); no allocation
    /// (a faulting tick may allocate inside the panic machinery).
    pub fn tick(&mut self, now: Instant, deadline: Instant, obs_slot: &LatestWins) -> TickKind {
        self.counts.ticks += 1;
        let snap = obs_slot.read(&mut self.obs_raw);
        let age = now
            .saturating_duration_since(obs_slot.epoch())
            .saturating_sub(snap.stamp);
        let kind = if self.fault_stop {
            TickKind::PlannerFault
        } else if snap.seq == 0 {
            TickKind::NoObservation
        } else if age > self.watchdog {
            TickKind::Stale
        } else if snap.len != self.obs_size {
            TickKind::WrongSize
        } else if !self.obs_to_f32() {
            TickKind::NonFinite
        } else if self.implausible() {
            TickKind::Implausible
        } else {
            match self.ask_source(deadline) {
                Ok(st) => {
                    self.last_status = st.status;
                    if st.status == PlanStatus::Deadline {
                        self.counts.cut_by_deadline += 1;
                    }
                    self.predicted_return = st.predicted_return;
                    self.last_iterations = st.iterations;
                    if st.status == PlanStatus::AllNonFinite
                        || self.action.iter().any(|a| !a.is_finite())
                    {
                        TickKind::SourceFailed
                    } else {
                        TickKind::Planned
                    }
                }
                Err(msg) => {
                    self.counts.planner_faults += 1;
                    self.last_fault = msg;
                    match self.fault_policy {
                        FaultPolicy::Stop => self.fault_stop = true,
                        FaultPolicy::Continue => self.source.reset(),
                    }
                    TickKind::PlannerFault
                }
            }
        };
        match kind {
            TickKind::Planned => {
                self.counts.planned += 1;
                for i in 0..self.out.len() {
                    let a = self.action[i] as f64;
                    let c = a.clamp(-1.0, 1.0);
                    if c != a {
                        self.counts.clamped += 1;
                    }
                    self.out[i] = self.offset[i] + self.scale[i] * c;
                }
            }
            other => {
                match other {
                    TickKind::NoObservation => self.counts.no_observation += 1,
                    TickKind::Stale => self.counts.stale += 1,
                    TickKind::WrongSize => self.counts.wrong_size += 1,
                    TickKind::NonFinite => self.counts.non_finite += 1,
                    TickKind::Implausible => self.counts.implausible += 1,
                    TickKind::SourceFailed => self.counts.source_failed += 1,
                    _ => {}
                }
                self.out.clone_from(&self.safe);
            }
        }
        self.last_kind = kind;
        kind
    }

    /// The diagnostics summary of the last window. Sorts the preallocated
    /// windows; no allocation.
    pub fn summarize(&mut self, rate_hz: f64) -> Summary {
        let (p50, p99, max) = self.latency.summary();
        let (_, jp99, _) = self.jitter.summary();
        Summary {
            counts: self.counts,
            rate_hz,
            latency_p50_s: p50,
            latency_p99_s: p99,
            latency_max_s: max,
            jitter_p99_s: jp99,
            predicted_return: self.predicted_return,
            last_kind: self.last_kind,
            last_status: self.last_status,
            last_fault: self.last_fault.clone(),
            tunables: self.tunables,
            last_iterations: self.last_iterations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::settings::SourceKind;
    use super::super::source::make_source;
    use super::*;

    /// A linear law on 2 observations, 1 action: the parameter table's
    /// defaults where a test does not care.
    fn cfg() -> Settings {
        Settings {
            action_source: SourceKind::Linear,
            bundle: None,
            bundle_max_file_mib: 512,
            bundle_weights: crate::kernels::Weights::F32,
            planner: "dream-mpc".into(),
            budget: Default::default(),
            options: Default::default(),
            control_rate_hz: 100.0,
            plan_fraction: 0.7,
            observation_size: 2,
            action_size: 1,
            action_scale: vec![2.0],
            action_offset: vec![0.5],
            safe_action: vec![0.25],
            linear_gain: vec![-1.0, -0.5],
            linear_bias: vec![0.1],
            watchdog_timeout_s: 0.05,
            diagnostics_period_s: 1.0,
            plausibility_margin: 0.5,
            plausibility_warn_only: false,
            on_planner_fault: FaultPolicy::Stop,
            inject_planner_fault_at_tick: None,
        }
    }

    fn setup() -> (Controller, LatestWins, Instant) {
        let c = cfg();
        let ctl = Controller::new(&c, make_source(&c).unwrap());
        let epoch = Instant::now();
        let cell = LatestWins::new(ctl.obs_capacity(), epoch);
        (ctl, cell, epoch)
    }

    #[test]
    fn plans_on_fresh_valid_observation_and_scales() {
        let (mut ctl, cell, epoch) = setup();
        let t = epoch + Duration::from_millis(10);
        cell.write(&[0.2, 0.4], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::Planned);
        // a = 0.1 - 0.2 - 0.2 = -0.3 -> 0.5 + 2 * -0.3 = -0.1
        assert!(
            (ctl.output().as_slice()[0] - (-0.1)).abs() < 1e-6,
            "{:?}",
            ctl.output().as_slice()
        );
        // large observation -> clamped to -1 -> 0.5 - 2 = -1.5, counted
        cell.write(&[10.0, 0.0], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::Planned);
        assert!((ctl.output().as_slice()[0] + 1.5).abs() < 1e-9);
        assert_eq!(ctl.counts.clamped, 1);
    }

    #[test]
    fn untrusted_observations_give_the_safe_action_and_are_counted() {
        let (mut ctl, cell, epoch) = setup();
        let t = epoch + Duration::from_millis(10);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::NoObservation);
        assert_eq!(ctl.output().as_slice(), &[0.25]);
        cell.write(&[0.2, f64::NAN], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::NonFinite);
        assert_eq!(ctl.output().as_slice(), &[0.25]);
        cell.write(&[0.2, 0.1, 0.3], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::WrongSize);
        cell.write(&[0.2], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::WrongSize);
        cell.write(&[0.2, 0.1], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::Planned);
        let later = t + Duration::from_millis(60);
        assert_eq!(ctl.tick(later, later, &cell), TickKind::Stale);
        assert_eq!(ctl.output().as_slice(), &[0.25]);
        let c = ctl.counts;
        assert_eq!(
            (
                c.no_observation,
                c.non_finite,
                c.wrong_size,
                c.planned,
                c.stale
            ),
            (1, 1, 2, 1, 1)
        );
    }

    struct Broken;
    impl ActionSource for Broken {
        fn act(
            &mut self,
            _: Observation<'_>,
            _: Instant,
            a: &mut [f32],
        ) -> Result<TickStatus, SourceFault> {
            a.fill(f32::NAN);
            Ok(TickStatus::FIXED)
        }
        fn name(&self) -> &'static str {
            "broken"
        }
    }

    #[test]
    fn non_finite_action_is_not_published() {
        let c = cfg();
        let mut ctl = Controller::new(&c, Box::new(Broken));
        let epoch = Instant::now();
        let cell = LatestWins::new(ctl.obs_capacity(), epoch);
        cell.write(&[0.0, 0.0], epoch);
        assert_eq!(ctl.tick(epoch, epoch, &cell), TickKind::SourceFailed);
        assert_eq!(ctl.output().as_slice(), &[0.25]);
    }

    /// A source that refuses a non-finite observation the way the agent
    /// does (an error, which the node treats as a planner fault).
    struct Strict;
    impl ActionSource for Strict {
        fn act(
            &mut self,
            o: Observation<'_>,
            _: Instant,
            a: &mut [f32],
        ) -> Result<TickStatus, SourceFault> {
            if o.as_slice().iter().any(|x| !x.is_finite()) {
                return Err(SourceFault("observation is NaN or infinite"));
            }
            a.fill(0.5);
            Ok(TickStatus::FIXED)
        }
        fn name(&self) -> &'static str {
            "strict"
        }
    }

    #[test]
    fn observation_beyond_f32_range_is_a_non_finite_observation() {
        let c = cfg();
        assert_eq!(c.on_planner_fault, FaultPolicy::Stop);
        let mut ctl = Controller::new(&c, Box::new(Strict));
        let epoch = Instant::now();
        let cell = LatestWins::new(ctl.obs_capacity(), epoch);
        for bad in [[1e39, 0.0], [0.0, -3.5e38], [f64::MAX, 0.0]] {
            let t = Instant::now();
            cell.write(&bad, t);
            assert_eq!(ctl.tick(t, t, &cell), TickKind::NonFinite, "{bad:?}");
            assert_eq!(ctl.output().as_slice(), &[0.25]);
        }
        assert_eq!(ctl.counts.non_finite, 3);
        assert_eq!(ctl.counts.planner_faults, 0);
        assert!(!ctl.must_stop());
        // the largest f32 itself is finite and planned on
        let t = Instant::now();
        cell.write(&[f32::MAX as f64, 0.0], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::Planned);
        assert_eq!(ctl.output().as_slice(), &[0.5 + 2.0 * 0.5]);
    }

    #[test]
    fn window_percentiles() {
        let mut w = Window::new(100);
        for i in 1..=100 {
            w.push(i as f64);
        }
        let (p50, p99, max) = w.summary();
        assert_eq!((p50.round(), p99, max), (51.0, 99.0, 100.0));
    }

    #[test]
    fn histogram_quantiles_within_bin_width() {
        let mut h = Histogram::new();
        for i in 1..=1000 {
            h.push(i as f64 * 1e-6); // 1 us .. 1 ms
        }
        let rel = |a: f64, b: f64| (a - b).abs() / b;
        assert!(rel(h.quantile(0.5), 500e-6) < 0.015, "{}", h.quantile(0.5));
        assert!(
            rel(h.quantile(0.99), 990e-6) < 0.015,
            "{}",
            h.quantile(0.99)
        );
        assert_eq!(h.quantile(1.0), 1e-3);
        assert_eq!(h.count(), 1000);
    }

    /// [`cfg`] with the parameter table's default actuator mapping
    /// (scale 1, offset 0), no bias and the default watchdog.
    fn cfg_unscaled() -> Settings {
        Settings {
            action_scale: vec![1.0],
            action_offset: vec![0.0],
            linear_bias: vec![0.0],
            watchdog_timeout_s: 0.1,
            ..cfg()
        }
    }

    /// A source that panics on its 3rd call and returns an error on its 5th.
    struct Faulty(u32);
    impl ActionSource for Faulty {
        fn act(
            &mut self,
            _: Observation<'_>,
            _: Instant,
            a: &mut [f32],
        ) -> Result<TickStatus, SourceFault> {
            self.0 += 1;
            match self.0 {
                3 => panic!("boom in the planner"),
                5 => Err(SourceFault("planner error")),
                _ => {
                    a.fill(0.5);
                    Ok(TickStatus::FIXED)
                }
            }
        }
        fn name(&self) -> &'static str {
            "faulty"
        }
    }

    #[test]
    fn planner_panic_and_error_become_the_safe_action_and_continue() {
        let c = Settings {
            on_planner_fault: FaultPolicy::Continue,
            ..cfg_unscaled()
        };
        let mut ctl = Controller::new(&c, Box::new(Faulty(0)));
        let epoch = Instant::now();
        let cell = LatestWins::new(ctl.obs_capacity(), epoch);
        let mut kinds = Vec::new();
        for _ in 0..6 {
            let t = Instant::now();
            cell.write(&[0.0, 0.0], t);
            kinds.push(ctl.tick(t, t, &cell));
            if kinds.last() == Some(&TickKind::PlannerFault) {
                assert_eq!(ctl.output().as_slice(), &[0.25]);
            } else {
                assert_eq!(ctl.output().as_slice(), &[0.5]);
            }
        }
        use TickKind::{Planned as P, PlannerFault as F};
        assert_eq!(kinds, [P, P, F, P, F, P]);
        assert_eq!(ctl.counts.planner_faults, 2);
        assert!(!ctl.must_stop());
        assert_eq!(ctl.summarize(1.0).last_fault.as_str(), "planner error");
    }

    #[test]
    fn planner_fault_under_stop_holds_the_safe_action() {
        let c = Settings {
            inject_planner_fault_at_tick: Some(2),
            ..cfg_unscaled()
        };
        assert_eq!(c.on_planner_fault, FaultPolicy::Stop);
        let mut ctl = Controller::new(&c, make_source(&c).unwrap());
        let epoch = Instant::now();
        let cell = LatestWins::new(ctl.obs_capacity(), epoch);
        let t = Instant::now();
        cell.write(&[0.1, 0.1], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::Planned);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::PlannerFault);
        assert!(ctl.must_stop());
        assert_eq!(ctl.output().as_slice(), &[0.25]);
        // nothing is planned after the fault
        assert_eq!(ctl.tick(t, t, &cell), TickKind::PlannerFault);
        assert_eq!(ctl.output().as_slice(), &[0.25]);
        let s = ctl.summarize(1.0);
        assert_eq!(s.counts.planner_faults, 1);
        assert!(
            s.last_fault.starts_with("injected planner fault"),
            "{}",
            s.last_fault
        );
    }
}
