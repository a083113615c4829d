//! The control loop's clock: ros2_control's `update` called at a fixed
//! period with absolute release times (`next += period`, no
//! sleep-after-work drift), the planner's deadline inside the period,
//! latency, jitter, deadline-miss and overrun bookkeeping, and one
//! [`Summary`] per diagnostics period.
//!
//! The loop knows no transport: it reads the observation slot and the
//! run-time tunables and writes actions, records and summaries through
//! [`Ports`], which the ROS 2 node implements over its preallocated
//! queues (`ros::node::Handoff`) and a test may implement over its own.

use super::settings::Settings;
use super::slot::LatestWins;
use super::source::Tunables;
use super::tick::{ActionVec, Controller, Counts, Summary, TickKind};
use std::time::{Duration, Instant};

/// What the control loop reads and writes each period. Every method is
/// called on the control thread and must neither block nor allocate.
pub trait Ports {
    /// The newest observation (written by the receiving thread).
    fn observation(&self) -> &LatestWins;
    /// The newest run-time tunables queued since the last call, if any.
    fn newest_tunables(&self) -> Option<Tunables>;
    /// Hand the tick's action (actuator units) to the publisher.
    fn put_action(&self, action: &ActionVec);
    /// Record tick `step` (0-based tick index): its observation and action.
    fn record(&self, step: u64, observation: &[f64], action: &ActionVec);
    /// Hand one diagnostics summary to the publisher.
    fn put_summary(&self, summary: Summary);
    /// The loop has stopped; `last` (the safe action) is its last word.
    fn finish(&self, last: &ActionVec);
}

/// Whether a tick of this kind is recorded: it had a fresh, finite
/// observation of the right size (planned on, or refused by the
/// plausibility check or a source fault, with the safe action published).
/// Ticks without such an observation leave a gap in the bag's step indices.
pub fn recorded(kind: TickKind) -> bool {
    matches!(
        kind,
        TickKind::Planned | TickKind::Implausible | TickKind::SourceFailed | TickKind::PlannerFault
    )
}

/// The control thread's state: the controller plus its fixed-period clock
/// and the diagnostics window.
pub struct ControlLoop {
    pub controller: Controller,
    period: Duration,
    plan_budget: Duration,
    diag_ticks: u64,
    start: Instant,
    next: Instant,
    window_start: Instant,
    window_ticks: u64,
}

/// What the control loop reports when it stops.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ControlReport {
    pub counts: Counts,
    pub elapsed_s: f64,
    pub latency_p50_s: f64,
    pub latency_p99_s: f64,
    pub latency_max_s: f64,
    pub jitter_p99_s: f64,
    /// Largest release jitter of the run.
    pub jitter_max_s: f64,
    /// The loop stopped because of a planner fault (`on_planner_fault: stop`).
    pub stopped_by_fault: bool,
}

impl ControlLoop {
    /// The first release is one period after `start`.
    pub fn new(settings: &Settings, controller: Controller, start: Instant) -> Self {
        let period = settings.period();
        ControlLoop {
            controller,
            period,
            plan_budget: period.mul_f64(settings.plan_fraction),
            diag_ticks: ((settings.diagnostics_period_s * settings.control_rate_hz).round() as u64)
                .max(1),
            start,
            next: start + period,
            window_start: start,
            window_ticks: 0,
        }
    }

    /// The same loop with its clock restarted at `start` (activation).
    pub fn restarted_at(mut self, start: Instant) -> Self {
        self.start = start;
        self.next = start + self.period;
        self.window_start = start;
        self
    }

    /// When the next update is due.
    pub fn next_release(&self) -> Instant {
        self.next
    }

    /// ros2_control's `update`, woken at `woke` for the release time
    /// [`Self::next_release`]: one [`Controller::tick`] with the planner's
    /// deadline at `release + plan_fraction * period`, the action handed
    /// to the publisher (and recorded, see [`recorded`]), latency, jitter,
    /// deadline and overrun bookkeeping, and every `diag_ticks` updates a
    /// [`Summary`].
    /// Cost: the tick plus O(window log window) once per diagnostics
    /// period; never allocates, never blocks (the node's queues overwrite
    /// their oldest entry when full).
    pub fn update(&mut self, woke: Instant, ports: &impl Ports) -> TickKind {
        self.apply_tunables(ports);
        let ctl = &mut self.controller;
        let jit = woke.saturating_duration_since(self.next).as_secs_f64();
        ctl.jitter.push(jit);
        ctl.jitter_total.push(jit);
        let deadline = self.next + self.plan_budget;
        let kind = ctl.tick(woke, deadline, ports.observation());
        ports.put_action(ctl.output());
        if recorded(kind) {
            // step index = tick index (0-based); unrecorded ticks leave gaps
            ports.record(ctl.counts.ticks - 1, ctl.observation(), ctl.output());
        }
        let end = Instant::now();
        let lat = (end - woke).as_secs_f64();
        ctl.latency.push(lat);
        ctl.latency_total.push(lat);
        if end > deadline {
            ctl.counts.deadline_misses += 1;
        }
        self.window_ticks += 1;
        self.next += self.period;
        if end > self.next {
            // overran whole periods: skip them rather than burst
            let behind = (end - self.next).as_nanos() / self.period.as_nanos().max(1) + 1;
            ctl.counts.overruns += behind as u64;
            self.next += self.period * behind as u32;
        }
        if self.window_ticks >= self.diag_ticks {
            let secs = (end - self.window_start).as_secs_f64();
            ports.put_summary(ctl.summarize(self.window_ticks as f64 / secs));
            self.window_start = end;
            self.window_ticks = 0;
        }
        kind
    }

    /// Apply the newest tunables, if any (between ticks: K, step size and
    /// beta to the planner, the plan fraction to this loop's deadline).
    /// Cost: a few atomic operations; no allocation.
    fn apply_tunables(&mut self, ports: &impl Ports) {
        if let Some(t) = ports.newest_tunables() {
            if self.controller.tune(&t) {
                self.plan_budget = self.period.mul_f64(t.plan_fraction);
            }
        }
    }

    /// Deactivate: the safe action as the last word ([`Ports::finish`]),
    /// and the report of the whole run.
    pub fn deactivate(self, ports: &impl Ports) -> ControlReport {
        let ctl = self.controller;
        ports.finish(ctl.safe_action());
        let lt = &ctl.latency_total;
        ControlReport {
            counts: ctl.counts,
            elapsed_s: self.start.elapsed().as_secs_f64(),
            latency_p50_s: lt.quantile(0.5),
            latency_p99_s: lt.quantile(0.99),
            latency_max_s: lt.max(),
            jitter_p99_s: ctl.jitter_total.quantile(0.99),
            jitter_max_s: ctl.jitter_total.max(),
            stopped_by_fault: ctl.must_stop(),
        }
    }
}
