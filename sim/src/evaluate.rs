//! Planners over a model bundle, evaluated on a simulated task: the
//! results table of the paper (return mean ± std over seeded episodes, one
//! row per planner, with the compute each used per tick).
//!
//! The planner runs through the controller's own [`Agent`] (normalize,
//! encode, plan, map to actuator units), the code a robot runs. Each
//! planned action is applied for the bundle's `action_repeat` environment
//! steps, as in training.

use std::fmt;
use std::time::{Duration, Instant};

use dream_mpc::agent::{Agent, AgentError};
use dream_mpc::load::Bundle;
use dream_mpc::planner::{PlanStatus, PlannerConfig, PlannerKind};
use dream_mpc::ros::config::Budget;

use crate::closed_loop::run_agent_episode;
use crate::task::{Task, TaskError};

/// Why an evaluation could not run.
#[derive(Debug)]
pub enum EvalError {
    Agent(AgentError),
    Task(TaskError),
    /// Task and bundle disagree on sizes.
    Mismatch(String),
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Agent(e) => write!(f, "{e}"),
            EvalError::Task(e) => write!(f, "{e}"),
            EvalError::Mismatch(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for EvalError {}

dream_mpc::error_from!(EvalError {
    Agent(AgentError),
    Task(TaskError),
});

/// Budget overrides for an evaluation (None: the bundle's default).
#[derive(Clone, Copy, Debug, Default)]
pub struct Overrides {
    /// Candidates, horizon, iterations, step size, beta: the same
    /// overrides as the node's `budget.*` parameters.
    pub budget: Budget,
    /// CEM/MPPI samples per iteration (elites scale with them, 1 in 8).
    pub samples: Option<usize>,
    /// CEM/MPPI iterations per tick.
    pub sampling_iterations: Option<usize>,
    /// Per-tick deadline (None: no deadline, the full budget always runs).
    pub deadline: Option<Duration>,
}

/// One planner's row of the results table.
#[derive(Clone, Debug)]
pub struct PlannerRow {
    pub planner: PlannerKind,
    /// Episode returns in seed order.
    pub returns: Vec<f64>,
    /// Planner ticks over all episodes.
    pub ticks: u64,
    /// Per-tick wall time (encode + plan), milliseconds, sorted.
    pub tick_ms: Vec<f64>,
    /// Mean model rows forward / backward and mean multiply-adds per tick.
    pub forward_rows: f64,
    pub backward_rows: f64,
    pub flops: f64,
    /// Ticks that stopped at the deadline.
    pub deadline_hits: u64,
    /// Ticks where the planner (or the observation) failed and the zero
    /// action was applied instead (counted fallback).
    pub fallbacks: u64,
}

impl PlannerRow {
    pub fn mean(&self) -> f64 {
        self.returns.iter().sum::<f64>() / self.returns.len().max(1) as f64
    }

    /// Population standard deviation of the returns.
    pub fn std(&self) -> f64 {
        let m = self.mean();
        (self.returns.iter().map(|r| (r - m).powi(2)).sum::<f64>()
            / self.returns.len().max(1) as f64)
            .sqrt()
    }

    /// Per-tick time percentile `q` in [0, 1], milliseconds.
    pub fn tick_percentile(&self, q: f64) -> f64 {
        if self.tick_ms.is_empty() {
            return f64::NAN;
        }
        let i = ((self.tick_ms.len() - 1) as f64 * q).round() as usize;
        self.tick_ms[i]
    }
}

/// The planner configuration an evaluation uses for `kind`.
pub fn planner_config(
    bundle: &Bundle,
    kind: PlannerKind,
    o: &Overrides,
    seed: u64,
) -> PlannerConfig {
    let m = &bundle.manifest;
    let mut c = PlannerConfig::for_kind(kind, &m.planner, m.discount);
    o.budget.apply(&mut c);
    if let Some(s) = o.samples {
        c.cem_samples = s;
        c.cem_elites = (s / 8).max(1);
    }
    if let Some(i) = o.sampling_iterations {
        c.cem_iterations = i;
    }
    c.seed = seed;
    c
}

/// Runs `episodes` episodes (seeds `seed`, `seed + 1`, ...) of `task` with
/// `kind` planning on `bundle`; `progress(episode, return)` after each.
pub fn evaluate(
    bundle: &Bundle,
    task: &mut dyn Task,
    kind: PlannerKind,
    episodes: usize,
    seed: u64,
    overrides: &Overrides,
    mut progress: impl FnMut(usize, f64),
) -> Result<PlannerRow, EvalError> {
    let spec = task.spec().clone();
    let m = &bundle.manifest;
    if spec.obs_size != m.observation.size || spec.action_size != m.action.size {
        return Err(EvalError::Mismatch(format!(
            "task {} has observation {} / action {}, the bundle (trained on `{}`) has {} / {}",
            spec.name, spec.obs_size, spec.action_size, m.task, m.observation.size, m.action.size
        )));
    }
    let repeat = m.action_repeat.max(1);
    let mut agent = Agent::new(bundle, planner_config(bundle, kind, overrides, seed))?;
    let mut obs32 = vec![0.0f32; spec.obs_size];
    let mut row = PlannerRow {
        planner: kind,
        returns: Vec::with_capacity(episodes),
        ticks: 0,
        tick_ms: Vec::with_capacity(episodes * spec.episode_len / repeat + 1),
        forward_rows: 0.0,
        backward_rows: 0.0,
        flops: 0.0,
        deadline_hits: 0,
        fallbacks: 0,
    };
    for e in 0..episodes {
        let s = seed + e as u64;
        agent.reset();
        let ep = run_agent_episode(
            task,
            s,
            repeat,
            None,
            |obs, action| {
                for (d, x) in obs32.iter_mut().zip(obs) {
                    *d = *x as f32;
                }
                let start = Instant::now();
                let deadline = start + overrides.deadline.unwrap_or(Duration::from_secs(3600));
                match agent.act(&obs32, deadline) {
                    Ok(d) if d.status != PlanStatus::AllNonFinite => {
                        row.forward_rows += d.forward_rows as f64;
                        row.backward_rows += d.backward_rows as f64;
                        row.flops += d.flops as f64;
                        if d.status == PlanStatus::Deadline {
                            row.deadline_hits += 1;
                        }
                        for (a, x) in action.iter_mut().zip(agent.normalized_action()) {
                            *a = *x as f64;
                        }
                    }
                    _ => {
                        row.fallbacks += 1;
                        action.fill(0.0);
                    }
                }
                row.tick_ms.push(start.elapsed().as_secs_f64() * 1e3);
                row.ticks += 1;
                Ok::<(), EvalError>(())
            },
            |_| {},
        )?;
        let ret = ep.ret;
        progress(e, ret);
        row.returns.push(ret);
    }
    let t = row.ticks.max(1) as f64;
    row.forward_rows /= t;
    row.backward_rows /= t;
    row.flops /= t;
    row.tick_ms.sort_by(f64::total_cmp);
    Ok(row)
}

/// The results table in Markdown: return mean ± std and per-tick compute.
pub fn markdown_table(task: &str, episodes: usize, rows: &[PlannerRow]) -> String {
    let mut s = format!(
        "| planner ({task}, {episodes} episodes) | return (mean ± std) | tick p50 ms | tick p99 ms | fwd rows/tick | bwd rows/tick | MFLOP/tick | fallbacks |\n|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        s += &format!(
            "| {} | {:.1} ± {:.1} | {:.2} | {:.2} | {:.0} | {:.0} | {:.2} | {} |\n",
            r.planner.name(),
            r.mean(),
            r.std(),
            r.tick_percentile(0.5),
            r.tick_percentile(0.99),
            r.forward_rows,
            r.backward_rows,
            r.flops * 2.0 / 1e6,
            r.fallbacks
        );
    }
    s
}
