//! The control tick: read the latest observation, check it (watchdog, size,
//! finite), ask the [`ActionSource`] for an action with the remaining time as
//! deadline, clamp and scale it to actuator units, hand it to the publisher.
//! Untrusted observations are not planned on: the safe action goes out and
//! the event is counted.
//!
//! Everything a tick touches is allocated in [`Controller::new`]; a tick
//! allocates nothing (checked by `tests/ros_tick_alloc.rs`).

use super::config::{Config, SourceKind};
use super::slot::Latest;
use crate::agent::{planner_kind, Agent};
use crate::load::Bundle;
use crate::planner::PlannerConfig;
use std::time::{Duration, Instant};

/// How an action source's call ended (the planner's returned status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanStatus {
    /// Ran its full budget within the deadline.
    Done,
    /// Stopped at the deadline; `action` holds the best action so far.
    OutOfTime,
    /// Could not produce an action (e.g. non-finite objective); `action`
    /// must not be used.
    Failed,
}

/// What an action source reports besides the action.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TickStatus {
    pub status: PlanStatus,
    /// Predicted return of the chosen plan (NaN when the source has none).
    pub predicted_return: f32,
}

/// What computes the action: the Dream-MPC planner on the robot, or a fixed
/// law for plumbing tests. `act` runs on the control thread: it must not
/// allocate or block, and should return by `deadline`.
pub trait ActionSource: Send {
    /// `obs` has the configured observation size; write a normalized action
    /// (nominally in [-1, 1]) of the configured action size into `action`.
    fn act(&mut self, obs: &[f32], deadline: Instant, action: &mut [f32]) -> TickStatus;
    /// Short name for diagnostics.
    fn name(&self) -> &'static str;
}

/// `a = gain * obs + bias` (row-major gain, action_size x obs_size): a fixed
/// linear feedback law. Not a learned controller; it exists so the ROS 2
/// plumbing (rates, watchdog, shutdown, sim loop) can be tested and brought
/// up on hardware without a model. Cost: action_size * obs_size mult-adds.
pub struct LinearFeedback {
    gain: Vec<f32>,
    bias: Vec<f32>,
}

impl LinearFeedback {
    pub fn new(gain: &[f64], bias: &[f64]) -> Self {
        LinearFeedback {
            gain: gain.iter().map(|&g| g as f32).collect(),
            bias: bias.iter().map(|&b| b as f32).collect(),
        }
    }
}

impl ActionSource for LinearFeedback {
    fn act(&mut self, obs: &[f32], _deadline: Instant, action: &mut [f32]) -> TickStatus {
        let n = obs.len();
        for (i, a) in action.iter_mut().enumerate() {
            let row = &self.gain[i * n..(i + 1) * n];
            *a = self.bias[i] + row.iter().zip(obs).map(|(g, o)| g * o).sum::<f32>();
        }
        TickStatus {
            status: PlanStatus::Done,
            predicted_return: f32::NAN,
        }
    }
    fn name(&self) -> &'static str {
        "linear"
    }
}

/// Always the zero normalized action (bring-up only).
pub struct ZeroAction;

impl ActionSource for ZeroAction {
    fn act(&mut self, _obs: &[f32], _deadline: Instant, action: &mut [f32]) -> TickStatus {
        action.fill(0.0);
        TickStatus {
            status: PlanStatus::Done,
            predicted_return: f32::NAN,
        }
    }
    fn name(&self) -> &'static str {
        "zero"
    }
}

/// Why an action source cannot be built.
#[derive(Debug)]
pub struct SourceError(pub String);

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SourceError {}

/// The Dream-MPC planner (or any baseline of the planner table) on a
/// model bundle, through [`crate::agent::Agent`]. The bundle is loaded once
/// at start-up and lives for the rest of the process (the node never
/// reloads it), so the agent can borrow it for `'static`.
pub struct PlannerSource {
    agent: Agent,
    name: &'static str,
}

impl PlannerSource {
    /// Loads and checks the bundle, checks it against the node's sizes and
    /// action mapping, and builds the planner with the configured budget.
    pub fn new(cfg: &Config) -> Result<Self, SourceError> {
        let dir = cfg
            .bundle
            .as_deref()
            .ok_or_else(|| SourceError("action_source 'dream_mpc' needs `bundle`".into()))?;
        let err = |e: &dyn std::fmt::Display| SourceError(format!("bundle {}: {e}", dir.display()));
        let bundle = Bundle::load(dir).map_err(|e| err(&e))?;
        let m = &bundle.manifest;
        if m.observation.size != cfg.observation_size || m.action.size != cfg.action_size {
            return Err(SourceError(format!(
                "bundle {} is for observation {} / action {}, the parameters say observation.size {} / action.size {}",
                dir.display(),
                m.observation.size,
                m.action.size,
                cfg.observation_size,
                cfg.action_size
            )));
        }
        // The node maps normalized actions with offset + scale * a; the
        // bundle was trained on low + (a + 1) / 2 * (high - low). They must
        // be the same map, or the robot gets actions the model never meant.
        for i in 0..m.action.size {
            let (lo, hi) = (m.action.low[i] as f64, m.action.high[i] as f64);
            let (scale, offset) = (cfg.action_scale[i], cfg.action_offset[i]);
            let tol = 1e-6 * (1.0 + lo.abs().max(hi.abs()));
            if ((offset - scale) - lo).abs() > tol || ((offset + scale) - hi).abs() > tol {
                return Err(SourceError(format!(
                    "action.scale[{i}] = {scale} and action.offset[{i}] = {offset} map [-1, 1] to [{}, {}], \
                     but bundle {} was trained on [{lo}, {hi}] (set scale {} offset {})",
                    offset - scale,
                    offset + scale,
                    dir.display(),
                    (hi - lo) / 2.0,
                    (hi + lo) / 2.0
                )));
            }
        }
        let kind = planner_kind(&cfg.planner).map_err(|e| SourceError(format!("planner: {e}")))?;
        let mut pc = PlannerConfig::for_kind(kind, &m.planner, m.discount);
        pc.candidates = cfg.budget.candidates;
        pc.horizon = cfg.budget.horizon;
        pc.iterations = cfg.budget.iterations;
        let bundle: &'static Bundle = Box::leak(Box::new(bundle));
        let agent = Agent::new(bundle, pc).map_err(|e| err(&e))?;
        Ok(PlannerSource {
            agent,
            name: kind.name(),
        })
    }
}

impl ActionSource for PlannerSource {
    fn act(&mut self, obs: &[f32], deadline: Instant, action: &mut [f32]) -> TickStatus {
        match self.agent.act(obs, deadline) {
            Ok(d) => {
                action.copy_from_slice(self.agent.normalized_action());
                TickStatus {
                    status: match d.status {
                        crate::planner::PlanStatus::Finished => PlanStatus::Done,
                        crate::planner::PlanStatus::Deadline => PlanStatus::OutOfTime,
                        crate::planner::PlanStatus::AllNonFinite => PlanStatus::Failed,
                    },
                    predicted_return: d.predicted_return.unwrap_or(f32::NAN),
                }
            }
            Err(_) => TickStatus {
                status: PlanStatus::Failed,
                predicted_return: f32::NAN,
            },
        }
    }
    fn name(&self) -> &'static str {
        self.name
    }
}

/// Build the configured action source (allocates; start-up only).
pub fn make_source(cfg: &Config) -> Result<Box<dyn ActionSource>, SourceError> {
    match cfg.action_source {
        SourceKind::Linear => Ok(Box::new(LinearFeedback::new(
            &cfg.linear_gain,
            &cfg.linear_bias,
        ))),
        SourceKind::Zero => Ok(Box::new(ZeroAction)),
        SourceKind::DreamMpc => Ok(Box::new(PlannerSource::new(cfg)?)),
    }
}

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
    /// The source failed or returned a non-finite action.
    SourceFailed,
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
    pub source_failed: u64,
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

/// Layout of the summary vector the control thread hands to the
/// diagnostics publisher (through a [`Latest`] cell).
pub mod summary {
    pub const TICKS: usize = 0;
    pub const RATE_HZ: usize = 1;
    pub const LAT_P50: usize = 2;
    pub const LAT_P99: usize = 3;
    pub const LAT_MAX: usize = 4;
    pub const JITTER_P99: usize = 5;
    pub const DEADLINE_MISSES: usize = 6;
    pub const OVERRUNS: usize = 7;
    pub const NO_OBSERVATION: usize = 8;
    pub const STALE: usize = 9;
    pub const WRONG_SIZE: usize = 10;
    pub const NON_FINITE: usize = 11;
    pub const SOURCE_FAILED: usize = 12;
    pub const PREDICTED_RETURN: usize = 13;
    pub const LAST_KIND: usize = 14;
    pub const LAST_STATUS: usize = 15;
    pub const PLANNED: usize = 16;
    pub const CLAMPED: usize = 17;
    pub const LEN: usize = 18;
}

/// The controller's tick state (ros2_control's `update` contract: given the
/// time, never allocates or blocks).
pub struct Controller {
    source: Box<dyn ActionSource>,
    obs_size: usize,
    watchdog: Duration,
    scale: Vec<f64>,
    offset: Vec<f64>,
    safe: Vec<f64>,
    obs_raw: Vec<f64>,
    obs: Vec<f32>,
    action: Vec<f32>,
    out: Vec<f64>,
    pub counts: Counts,
    pub latency: Window,
    pub jitter: Window,
    /// Whole-run tick latency and period jitter.
    pub latency_total: Histogram,
    pub jitter_total: Histogram,
    pub last_kind: TickKind,
    pub last_status: PlanStatus,
    pub predicted_return: f32,
}

impl Controller {
    /// Allocates every buffer a tick needs (observation capacity is
    /// `obs_size + 1` so an oversized message is seen as such).
    pub fn new(cfg: &Config, source: Box<dyn ActionSource>) -> Self {
        let window = (cfg.control_rate_hz * cfg.diagnostics_period_s).ceil() as usize + 1;
        Controller {
            source,
            obs_size: cfg.observation_size,
            watchdog: Duration::from_secs_f64(cfg.watchdog_timeout_s),
            scale: cfg.action_scale.clone(),
            offset: cfg.action_offset.clone(),
            safe: cfg.safe_action.clone(),
            obs_raw: vec![0.0; cfg.observation_size + 1],
            obs: vec![0.0; cfg.observation_size],
            action: vec![0.0; cfg.action_size],
            out: cfg.safe_action.clone(),
            counts: Counts::default(),
            latency: Window::new(window),
            jitter: Window::new(window),
            latency_total: Histogram::new(),
            jitter_total: Histogram::new(),
            last_kind: TickKind::NoObservation,
            last_status: PlanStatus::Done,
            predicted_return: f32::NAN,
        }
    }

    /// Capacity the observation cell must have.
    pub fn obs_capacity(&self) -> usize {
        self.obs_size + 1
    }

    /// The action of the last tick, in actuator units.
    pub fn output(&self) -> &[f64] {
        &self.out
    }

    /// The configured safe action, in actuator units.
    pub fn safe_action(&self) -> &[f64] {
        &self.safe
    }

    /// One tick at time `now` with planner deadline `deadline`: reads
    /// `obs_cell`, writes the actuator command into `self.output()`.
    /// Cost: the action source's `act` plus O(obs + action); no allocation.
    pub fn tick(&mut self, now: Instant, deadline: Instant, obs_cell: &Latest) -> TickKind {
        self.counts.ticks += 1;
        let snap = obs_cell.read(&mut self.obs_raw);
        let age = now
            .saturating_duration_since(obs_cell.epoch())
            .saturating_sub(snap.stamp);
        let kind = if snap.seq == 0 {
            TickKind::NoObservation
        } else if age > self.watchdog {
            TickKind::Stale
        } else if snap.len != self.obs_size {
            TickKind::WrongSize
        } else if self.obs_raw[..self.obs_size].iter().any(|x| !x.is_finite()) {
            TickKind::NonFinite
        } else {
            for (o, r) in self.obs.iter_mut().zip(&self.obs_raw) {
                *o = *r as f32;
            }
            let st = self.source.act(&self.obs, deadline, &mut self.action);
            self.last_status = st.status;
            self.predicted_return = st.predicted_return;
            if st.status == PlanStatus::Failed || self.action.iter().any(|a| !a.is_finite()) {
                TickKind::SourceFailed
            } else {
                TickKind::Planned
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
                    _ => self.counts.source_failed += 1,
                }
                self.out.copy_from_slice(&self.safe);
            }
        }
        self.last_kind = kind;
        kind
    }

    /// Fill `out` (length [`summary::LEN`]) for the diagnostics publisher.
    /// Sorts the preallocated windows; no allocation.
    pub fn summarize(&mut self, rate_hz: f64, out: &mut [f64]) {
        use summary::*;
        let (p50, p99, max) = self.latency.summary();
        let (_, jp99, _) = self.jitter.summary();
        let c = self.counts;
        out[TICKS] = c.ticks as f64;
        out[RATE_HZ] = rate_hz;
        out[LAT_P50] = p50;
        out[LAT_P99] = p99;
        out[LAT_MAX] = max;
        out[JITTER_P99] = jp99;
        out[DEADLINE_MISSES] = c.deadline_misses as f64;
        out[OVERRUNS] = c.overruns as f64;
        out[NO_OBSERVATION] = c.no_observation as f64;
        out[STALE] = c.stale as f64;
        out[WRONG_SIZE] = c.wrong_size as f64;
        out[NON_FINITE] = c.non_finite as f64;
        out[SOURCE_FAILED] = c.source_failed as f64;
        out[PREDICTED_RETURN] = self.predicted_return as f64;
        out[LAST_KIND] = self.last_kind as u8 as f64;
        out[LAST_STATUS] = self.last_status as u8 as f64;
        out[PLANNED] = c.planned as f64;
        out[CLAMPED] = c.clamped as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::Params;
    use super::*;

    fn cfg() -> Config {
        Config::from_params(
            Params::from_yaml(
                "dream_mpc:\n  ros__parameters:\n    action_source: linear\n    watchdog_timeout_s: 0.05\n    observation: {size: 2}\n    action: {size: 1, scale: [2.0], offset: [0.5], safe: [0.25]}\n    linear: {gain: [-1.0, -0.5], bias: [0.1]}\n",
            )
            .unwrap(),
        )
        .unwrap()
    }

    fn setup() -> (Controller, Latest, Instant) {
        let c = cfg();
        let ctl = Controller::new(&c, make_source(&c).unwrap());
        let epoch = Instant::now();
        let cell = Latest::new(ctl.obs_capacity(), epoch);
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
            (ctl.output()[0] - (-0.1)).abs() < 1e-6,
            "{:?}",
            ctl.output()
        );
        // large observation -> clamped to -1 -> 0.5 - 2 = -1.5, counted
        cell.write(&[10.0, 0.0], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::Planned);
        assert!((ctl.output()[0] + 1.5).abs() < 1e-9);
        assert_eq!(ctl.counts.clamped, 1);
    }

    #[test]
    fn untrusted_observations_give_the_safe_action_and_are_counted() {
        let (mut ctl, cell, epoch) = setup();
        let t = epoch + Duration::from_millis(10);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::NoObservation);
        assert_eq!(ctl.output(), &[0.25]);
        cell.write(&[0.2, f64::NAN], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::NonFinite);
        assert_eq!(ctl.output(), &[0.25]);
        cell.write(&[0.2, 0.1, 0.3], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::WrongSize);
        cell.write(&[0.2], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::WrongSize);
        cell.write(&[0.2, 0.1], t);
        assert_eq!(ctl.tick(t, t, &cell), TickKind::Planned);
        let later = t + Duration::from_millis(60);
        assert_eq!(ctl.tick(later, later, &cell), TickKind::Stale);
        assert_eq!(ctl.output(), &[0.25]);
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
        fn act(&mut self, _: &[f32], _: Instant, a: &mut [f32]) -> TickStatus {
            a.fill(f32::NAN);
            TickStatus {
                status: PlanStatus::Done,
                predicted_return: 0.0,
            }
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
        let cell = Latest::new(ctl.obs_capacity(), epoch);
        cell.write(&[0.0, 0.0], epoch);
        assert_eq!(ctl.tick(epoch, epoch, &cell), TickKind::SourceFailed);
        assert_eq!(ctl.output(), &[0.25]);
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
}
