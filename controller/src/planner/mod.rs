//! # Planners: Dream-MPC and its baselines
//!
//! One algorithm with switchable ingredients (the paper's table):
//!
//! | kind | init | improvement | uncertainty | reuse |
//! |---|---|---|---|---|
//! | [`PlannerKind::Policy`] | policy mean | – | – | – |
//! | [`PlannerKind::Cem`] | Gaussian | CEM (elite mean/std) | – | mean shift |
//! | [`PlannerKind::Mppi`] | Gaussian + policy rollouts | MPPI weights | – | mean shift |
//! | [`PlannerKind::GradMpc`] | zeros / uniform | K steps | – | – |
//! | [`PlannerKind::PolicyGradMpc`] | policy rollouts | K steps | – | – |
//! | [`PlannerKind::DreamMpc`] | policy rollouts + previous plan | K steps | yes | yes |
//!
//! How each ingredient is done is a named option ([`options`]): by default
//! exactly as the Dream-MPC authors' code does it (N = 5 policy samples
//! blended with the previous tick's candidates, K = 1 SGD step with the
//! gradient norm clipped to 20, u = mean x std of the Q heads at the next
//! state used only to pick the candidate, V from two random heads at a
//! sampled action, the argmax of the last evaluation); the preset `sketch`
//! is this project's earlier variant (N = 8 + the previous best, K = 4 Adam
//! steps, differentiated std of the heads, best of every evaluation).
//! `trainer/tests/reference_planner.rs` checks the default against an
//! independent tch implementation of the authors' planner.
//!
//! Every planner maximizes the same objective J ([`objective`]), owns a
//! [`Workspace`] allocated once, and [`Planner::plan`] allocates nothing.
//! The budget is fixed (N, H, K or CEM samples/elites/iterations) plus a
//! deadline: the planner is anytime — it holds the policy action until its
//! first evaluation of the candidates finishes, then the best sequence
//! evaluated so far — and returns a [`PlanStatus`] saying how it ended.
//! [`Evals`] counts model rows run forward and backward so planners can be
//! compared at equal compute.

// Index loops read like the equations in this numerical code.
#![allow(clippy::needless_range_loop)]

pub mod bundle_model;
pub mod config;
pub mod decode;
pub mod model;
pub mod objective;
/// The planner's named options live with the bundle format (the manifest's
/// `planner.options` section carries them); re-exported here by their role.
pub use crate::bundle::planner_options as options;
mod rollout;
pub mod workspace;

pub use config::{ConfigError, GradInit, PlannerConfig, PlannerKind};
pub use model::{Evals, LatentModel, ModelDims, Module};
pub use objective::Weights;
pub use options::{
    Choice, DreamOptions, Optimizer, Preset, Reuse, Uncertainty, UncertaintyAt, ValueAction,
    ValueHeads,
};
pub use workspace::{GradientBuffers, SamplingBuffers, Workspace};

use crate::rng::Rng;
use rollout::{Fill, Terms};
use std::fmt;
use std::time::{Duration, Instant};

/// Adam's moment decay rates and epsilon (Kingma & Ba defaults).
const ADAM_B1: f32 = 0.9;
const ADAM_B2: f32 = 0.999;
const ADAM_EPS: f32 = 1e-8;

/// Adam's bias corrections over the steps of one tick: `tick` advances
/// the step count and returns `(1 - b1^k, 1 - b2^k)`.
#[derive(Clone, Copy, Debug)]
struct AdamClock {
    b1k: f32,
    b2k: f32,
}

impl Default for AdamClock {
    fn default() -> Self {
        AdamClock { b1k: 1.0, b2k: 1.0 }
    }
}

impl AdamClock {
    fn tick(&mut self) -> (f32, f32) {
        self.b1k *= ADAM_B1;
        self.b2k *= ADAM_B2;
        (1.0 - self.b1k, 1.0 - self.b2k)
    }
}

/// How a tick ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanStatus {
    /// All iterations of the budget ran.
    Finished,
    /// The deadline stopped the iterations early (the action is the best so
    /// far, or the policy action if not even the first evaluation ran).
    Deadline,
    /// Every candidate's J or gradient went non-finite: the action is the
    /// policy action, or zero if that is non-finite too.
    AllNonFinite,
}

/// A normalized action, every element in [-1, 1] (a view into the
/// planner's workspace).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Action<'a>(&'a [f32]);

impl<'a> Action<'a> {
    /// The action's elements, each in [-1, 1].
    pub fn as_slice(&self) -> &'a [f32] {
        self.0
    }
}

/// What a tick returns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanResult<'a> {
    /// First action of the best candidate (or the policy fallback).
    pub action: Action<'a>,
    pub status: PlanStatus,
    /// Iterations completed (Adam steps, or CEM/MPPI iterations).
    pub iterations: usize,
    pub evals: Evals,
    /// Predicted J of the returned sequence (None for the policy planner
    /// and when no candidate was evaluated).
    pub j: Option<f32>,
}

/// Bad input to [`Planner::plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// z0 does not have the model's latent size.
    LatentSize { expected: usize, got: usize },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::LatentSize { expected, got } => {
                write!(
                    f,
                    "z0 has {got} elements, the model's latent has {expected}"
                )
            }
        }
    }
}

impl std::error::Error for PlanError {}

/// A planner of any [`PlannerKind`] over a model `M`.
pub struct Planner<M: LatentModel> {
    config: PlannerConfig,
    dims: ModelDims,
    terms: Terms,
    ws: Workspace,
    tape: M::Tape,
    rng: Rng,
    /// Estimated cost of the initial evaluation and of one iteration: the
    /// planner does not start one that would end after the deadline. A
    /// decaying maximum (see [`observe`]): it rises at once to a slower
    /// observation and forgets it over a few dozen ticks, so one tick
    /// stretched by preemption does not cut every later plan.
    est_init: Duration,
    est_iter: Duration,
}

/// Decaying maximum: `est <- max(took, 7/8 est)`. One outlier decays to a
/// tenth of its size in 18 observations. Cost: a few integer operations.
fn observe(est: &mut Duration, took: Duration) {
    *est = took.max(decay(*est));
}

/// `7/8 est`: applied also when the estimate made the planner skip work,
/// so a stale outlier cannot keep the planner from ever trying again (a
/// real overrun raises it back at once).
fn decay(est: Duration) -> Duration {
    est * 7 / 8
}

impl<M: LatentModel> Planner<M> {
    /// Validates `config`, allocates the workspace and the model tape
    /// (batch [`PlannerConfig::batch`], H + 1 slots). Start-up only.
    pub fn new(model: &M, config: PlannerConfig) -> Result<Self, ConfigError> {
        let dims = model.dims();
        let ws = Workspace::new(&dims, &config)?;
        let tape = model.tape(config.batch(), config.horizon + 1);
        let terms = Terms::new(&config);
        Ok(Planner {
            rng: Rng::new(config.seed),
            config,
            dims,
            terms,
            ws,
            tape,
            est_init: Duration::ZERO,
            est_iter: Duration::ZERO,
        })
    }

    pub fn config(&self) -> &PlannerConfig {
        &self.config
    }

    pub fn workspace(&self) -> &Workspace {
        &self.ws
    }

    /// The best sequence of the last tick, `[H, A]` row-major.
    pub fn plan_sequence(&self) -> &[f32] {
        &self.ws.best
    }

    /// Best J after the initial evaluation and after each iteration of the
    /// last tick (anytime profile).
    pub fn trace(&self) -> &[f32] {
        &self.ws.trace[..self.ws.trace_len]
    }

    /// Forgets the previous plan (new episode).
    pub fn reset(&mut self) {
        self.ws.has_prev = false;
    }

    /// Changes K, the step size and beta between ticks (the node's ROS 2
    /// parameter services). Checked like the start-up configuration; the
    /// workspace is untouched (a K above the start-up value only shortens
    /// the kept [`Self::trace`]; the deadline still bounds the tick). On an
    /// error nothing changes. Cost: O(1), allocates nothing.
    pub fn set_tunables(
        &mut self,
        iterations: usize,
        step_size: f32,
        beta: f32,
    ) -> Result<(), ConfigError> {
        let (k, s, b) = (
            self.config.iterations,
            self.config.step_size,
            self.config.beta,
        );
        self.config.iterations = iterations;
        self.config.step_size = step_size;
        self.config.beta = beta;
        if let Err(e) = self.config.validate() {
            self.config.iterations = k;
            self.config.step_size = s;
            self.config.beta = b;
            return Err(e);
        }
        self.terms = Terms::new(&self.config);
        Ok(())
    }

    /// The planner's random stream (policy samples, Grad-MPC's uniform
    /// initialization, the terminal value's action noise and heads, CEM
    /// samples). Seeded by `config.seed`; a reference that replays the
    /// documented order of draws from a clone reproduces a tick.
    pub fn rng(&self) -> &Rng {
        &self.rng
    }

    /// One tick from latent `z0` with a wall-clock `deadline`.
    ///
    /// Cost: gradient planners run 1 + K batched rollouts of B rows over H
    /// steps (dynamics, reward, Q if uncertainty is on, policy and Q at the
    /// end) and K VJPs of the same; CEM/MPPI run their iterations' rollouts
    /// forward only. Allocates nothing.
    pub fn plan(
        &mut self,
        model: &M,
        z0: &[f32],
        deadline: Instant,
    ) -> Result<PlanResult<'_>, PlanError> {
        let start = Instant::now();
        let (b, l, na) = (self.ws.b, self.dims.latent, self.dims.action);
        if z0.len() != l {
            return Err(PlanError::LatentSize {
                expected: l,
                got: z0.len(),
            });
        }
        let mut evals = Evals::default();
        let ws = &mut self.ws;
        for row in ws.z[..b * l].chunks_exact_mut(l) {
            row.copy_from_slice(z0);
        }
        // The policy action at z0: held until a candidate is evaluated.
        model.pi(
            &mut self.tape,
            0,
            &ws.z[..l],
            &mut ws.mu[..na],
            &mut ws.log_std[..na],
        );
        evals.fwd(model, Module::Policy, 1);
        for (p, m) in ws.policy_action.iter_mut().zip(&ws.mu[..na]) {
            *p = m.tanh();
        }
        ws.best_j = f32::NEG_INFINITY;
        ws.trace_len = 0;

        let mut status = PlanStatus::Finished;
        let mut iterations = 0;
        if self.config.kind != PlannerKind::Policy {
            if Instant::now() + self.est_init >= deadline {
                status = PlanStatus::Deadline;
                self.est_init = decay(self.est_init);
            } else if self.config.kind.is_gradient() {
                (status, iterations) = self.gradient_ascent(model, &mut evals, start, deadline);
            } else {
                (status, iterations) = self.sample(model, &mut evals, start, deadline);
            }
        }

        let ws = &mut self.ws;
        let have_best = ws.best_j > f32::NEG_INFINITY;
        let policy_ok = ws.policy_action.iter().all(|x| x.is_finite());
        if have_best {
            let (best, action) = (&ws.best[..na], &mut ws.action);
            action.copy_from_slice(best);
        } else {
            if self.config.kind != PlannerKind::Policy && status != PlanStatus::Deadline {
                status = PlanStatus::AllNonFinite;
            }
            if policy_ok {
                ws.action.copy_from_slice(&ws.policy_action);
            } else {
                status = PlanStatus::AllNonFinite;
                ws.action.iter_mut().for_each(|x| *x = 0.0);
            }
        }
        debug_assert!(ws.action.iter().all(|x| (-1.0..=1.0).contains(x)));
        Ok(PlanResult {
            action: Action(&ws.action),
            status,
            iterations,
            evals,
            j: have_best.then_some(ws.best_j),
        })
    }

    /// Gradient planners, as the Dream-MPC authors' algorithm reads:
    /// [`Self::initialise`] the candidates and evaluate them, then up to K
    /// times [`Self::step`] every candidate along its gradient and
    /// evaluate again ([`Self::choose`] after each evaluation), then
    /// [`Self::keep`] the plan for the next tick. Random draws, in order:
    /// Grad-MPC's uniform initialization (step, row, element) or the policy
    /// samples (step, row, element; blended reuse rolls the policy out
    /// first), then the terminal value's draws of each evaluation (see
    /// `rollout::forward`).
    fn gradient_ascent(
        &mut self,
        model: &M,
        evals: &mut Evals,
        start: Instant,
        deadline: Instant,
    ) -> (PlanStatus, usize) {
        let last_eval = self.config.options.choice == Choice::LastEval;
        let k_budget = self.config.iterations_for(self.ws.na);
        let fill = self.initialise(model, evals);
        self.evaluate(model, evals, fill);
        let mut chosen = Self::choose(&mut self.ws, last_eval);
        observe(&mut self.est_init, start.elapsed());

        let mut done = 0;
        let mut status = PlanStatus::Finished;
        let mut adam = AdamClock::default();
        for k in 1..=k_budget {
            let t0 = Instant::now();
            if t0 + self.est_iter > deadline {
                status = PlanStatus::Deadline;
                self.est_iter = decay(self.est_iter);
                break;
            }
            if !self.ws.valid.iter().any(|&v| v) {
                status = PlanStatus::AllNonFinite;
                break;
            }
            self.step(model, evals, &mut adam);
            if last_eval {
                // The chosen candidate's sequence after the step.
                if let Some(row) = chosen {
                    Self::copy_best(&mut self.ws, row);
                }
            }
            if !last_eval || k < k_budget {
                self.evaluate(model, evals, Fill::None);
                chosen = Self::choose(&mut self.ws, last_eval).or(chosen);
            }
            done = k;
            observe(&mut self.est_iter, t0.elapsed());
        }
        self.keep();
        (status, done)
    }

    /// The initial candidate sequences `a`: Grad-MPC's zeros or uniform
    /// draws; or policy rollouts (the returned [`Fill`] has the evaluation
    /// draw them), joined by the previous best shifted one step (`reuse:
    /// row`), or blended with the previous tick's candidates
    /// (`a = rho prev + (1 - rho) a`, `reuse: blend`, the policy rolled out
    /// here first). Resets the validity flags and Adam's moments.
    /// Cost: with blending, one policy rollout of B rows over H steps.
    fn initialise(&mut self, model: &M, evals: &mut Evals) -> Fill {
        let cfg = &self.config;
        let o = cfg.options;
        let ws = &mut self.ws;
        let (b, h, na, n) = (ws.b, ws.h, ws.na, cfg.candidates);
        let policy_init = cfg.kind != PlannerKind::GradMpc;
        let reuse_row = (cfg.reuse_row() && ws.has_prev).then_some(n);
        let blend = cfg.reuse_blend() && ws.has_prev;
        if !policy_init {
            for x in ws.a.iter_mut() {
                *x = match cfg.grad_init {
                    GradInit::Zeros => 0.0,
                    GradInit::Uniform => self.rng.uniform_in(-1.0, 1.0) as f32,
                };
            }
        }
        if let Some(row) = reuse_row {
            for t in 0..h {
                let src = (t + 1).min(h - 1) * na;
                let dst = (t * b + row) * na;
                ws.a[dst..dst + na].copy_from_slice(&ws.prev[src..src + na]);
            }
        }
        let mut fill = if policy_init {
            Fill::Policy {
                rows: if reuse_row.is_some() { n } else { b },
                reuse_row,
            }
        } else {
            Fill::None
        };
        if blend {
            if policy_init {
                rollout::policy_rollout(
                    model,
                    &mut self.tape,
                    ws,
                    &mut self.rng,
                    evals,
                    self.terms.policy_mean_row,
                );
                fill = Fill::None;
            }
            // prev shifted one step, its last step repeated
            for t in 0..h {
                let src_t = (t + 1).min(h - 1);
                for row in 0..b {
                    if !ws.grad.prev_valid[row] {
                        continue;
                    }
                    let (dst, src) = ((t * b + row) * na, (src_t * b + row) * na);
                    for i in 0..na {
                        ws.a[dst + i] =
                            o.rho * ws.grad.prev_all[src + i] + (1.0 - o.rho) * ws.a[dst + i];
                    }
                }
            }
        }
        ws.valid.iter_mut().for_each(|v| *v = true);
        ws.grad.adam_m.iter_mut().for_each(|x| *x = 0.0);
        ws.grad.adam_v.iter_mut().for_each(|x| *x = 0.0);
        fill
    }

    /// J of every candidate (and its terms for the gradient), rolling the
    /// policy out first where `fill` says so. Cost: one batched rollout of
    /// B rows over H steps.
    fn evaluate(&mut self, model: &M, evals: &mut Evals, fill: Fill) {
        rollout::forward(
            model,
            &mut self.tape,
            &mut self.ws,
            &mut self.rng,
            evals,
            fill,
            &self.terms,
        );
    }

    /// One ascent step on every live candidate: the gradient of the last
    /// evaluation's J, its global norm (all candidates together) clipped,
    /// then SGD or Adam with the configured step size (each step clamped
    /// to [-1, 1] when `clamp_each_step`). Cost: one batched VJP through
    /// the rollout plus O(B H A).
    fn step(&mut self, model: &M, evals: &mut Evals, adam: &mut AdamClock) {
        let cfg = &self.config;
        let o = cfg.options;
        let ws = &mut self.ws;
        let (b, h, na) = (ws.b, ws.h, ws.na);
        rollout::backward(model, &mut self.tape, ws, evals, &self.terms);
        let scale = if o.grad_clip_norm > 0.0 {
            let mut sq = 0.0f64;
            for t in 0..h {
                for row in 0..b {
                    if ws.valid[row] {
                        let i = (t * b + row) * na;
                        sq += ws.grad.da[i..i + na]
                            .iter()
                            .map(|&g| (g as f64) * (g as f64))
                            .sum::<f64>();
                    }
                }
            }
            (o.grad_clip_norm / (sq.sqrt() as f32 + 1e-6)).min(1.0)
        } else {
            1.0
        };
        let (bc1, bc2) = adam.tick();
        for t in 0..h {
            for row in 0..b {
                if !ws.valid[row] {
                    continue;
                }
                let o_ = (t * b + row) * na;
                for i in o_..o_ + na {
                    let g = scale * ws.grad.da[i];
                    let step = match o.optimizer {
                        Optimizer::Sgd => g,
                        Optimizer::Adam => {
                            ws.grad.adam_m[i] = ADAM_B1 * ws.grad.adam_m[i] + (1.0 - ADAM_B1) * g;
                            ws.grad.adam_v[i] =
                                ADAM_B2 * ws.grad.adam_v[i] + (1.0 - ADAM_B2) * g * g;
                            (ws.grad.adam_m[i] / bc1)
                                / ((ws.grad.adam_v[i] / bc2).sqrt() + ADAM_EPS)
                        }
                    };
                    let x = ws.a[i] + cfg.step_size * step;
                    ws.a[i] = if o.clamp_each_step {
                        x.clamp(-1.0, 1.0)
                    } else {
                        x
                    };
                }
            }
        }
    }

    /// Keep the plan for the next tick (`reuse`): every candidate, clamped,
    /// with its finiteness (`blend`), or the best sequence (`row`).
    /// Cost: O(B H A).
    fn keep(&mut self) {
        let cfg = &self.config;
        let ws = &mut self.ws;
        let (b, h, na) = (ws.b, ws.h, ws.na);
        if !cfg.reuse {
            return;
        }
        if cfg.reuse_blend() {
            for (p, x) in ws.grad.prev_all.iter_mut().zip(&ws.a) {
                *p = x.clamp(-1.0, 1.0);
            }
            for row in 0..b {
                let finite = (0..h).all(|t| {
                    let i = (t * b + row) * na;
                    ws.grad.prev_all[i..i + na].iter().all(|x| x.is_finite())
                });
                ws.grad.prev_valid[row] = finite;
            }
        } else {
            ws.prev.copy_from_slice(&ws.best);
        }
        ws.has_prev = ws.best_j > f32::NEG_INFINITY;
    }

    /// Choose after an evaluation: `best_evaluated` keeps the best sequence
    /// seen so far; `last_eval` takes the argmax of this evaluation (its
    /// current sequence, clamped) and returns its row. Cost: O(B + H A).
    fn choose(ws: &mut Workspace, last_eval: bool) -> Option<usize> {
        if !last_eval {
            rollout::keep_best(ws);
            return None;
        }
        let mut arg = None;
        let mut top = f32::NEG_INFINITY;
        for row in 0..ws.b {
            if ws.valid[row] && ws.j[row] > top {
                top = ws.j[row];
                arg = Some(row);
            }
        }
        if let Some(row) = arg {
            ws.best_j = top;
            Self::copy_best(ws, row);
        }
        if ws.trace_len < ws.trace.len() {
            ws.trace[ws.trace_len] = ws.best_j;
            ws.trace_len += 1;
        }
        arg
    }

    /// `best = clamp(a[:, row])`.
    fn copy_best(ws: &mut Workspace, row: usize) {
        let (b, na) = (ws.b, ws.na);
        for t in 0..ws.h {
            let src = (t * b + row) * na;
            for (d, x) in ws.best[t * na..(t + 1) * na]
                .iter_mut()
                .zip(&ws.a[src..src + na])
            {
                *d = x.clamp(-1.0, 1.0);
            }
        }
    }

    /// CEM / MPPI: sample around a mean, evaluate, refit to the elites.
    fn sample(
        &mut self,
        model: &M,
        evals: &mut Evals,
        start: Instant,
        deadline: Instant,
    ) -> (PlanStatus, usize) {
        let cfg = &self.config;
        let ws = &mut self.ws;
        let (b, h, na) = (ws.b, ws.h, ws.na);
        let mppi = cfg.kind == PlannerKind::Mppi;
        let first_gauss = if mppi { cfg.candidates } else { 0 };
        // Mean shift: start from the previous mean moved one step ahead.
        for t in 0..h {
            for i in 0..na {
                ws.sampling.mean[t * na + i] = if cfg.reuse && ws.has_prev {
                    ws.prev[(t + 1).min(h - 1) * na + i]
                } else {
                    0.0
                };
                ws.sampling.std[t * na + i] = cfg.cem_init_std;
            }
        }
        let mut done = 0;
        let mut status = PlanStatus::Finished;
        for it in 1..=cfg.cem_iterations {
            let t0 = Instant::now();
            if it > 1 && t0 + self.est_iter > deadline {
                status = PlanStatus::Deadline;
                self.est_iter = decay(self.est_iter);
                break;
            }
            for t in 0..h {
                for row in first_gauss..b {
                    for i in 0..na {
                        let eps = self.rng.normal() as f32;
                        let k = t * na + i;
                        ws.a[(t * b + row) * na + i] =
                            (ws.sampling.mean[k] + ws.sampling.std[k] * eps).clamp(-1.0, 1.0);
                    }
                }
            }
            let fill = if mppi && it == 1 {
                Fill::Policy {
                    rows: first_gauss,
                    reuse_row: None,
                }
            } else {
                Fill::None
            };
            ws.valid.iter_mut().for_each(|v| *v = true);
            rollout::forward(
                model,
                &mut self.tape,
                ws,
                &mut self.rng,
                evals,
                fill,
                &self.terms,
            );
            rollout::keep_best(ws);
            rollout::refit(ws, cfg, mppi);
            done = it;
            if it == 1 {
                observe(&mut self.est_init, start.elapsed());
            }
            observe(&mut self.est_iter, t0.elapsed());
        }
        if cfg.reuse {
            ws.prev.copy_from_slice(&ws.sampling.mean);
            ws.has_prev = ws.best_j > f32::NEG_INFINITY;
        }
        (status, done)
    }
}

#[cfg(test)]
mod estimate_tests {
    use super::{decay, observe};
    use std::time::Duration;

    /// One 60 ms preemption among 2 ms iterations: the estimate jumps to
    /// 60 ms, then is back under a 7 ms budget within 17 observations,
    /// and never under the true cost.
    #[test]
    fn an_outlier_is_forgotten_and_the_true_cost_kept() {
        let ms = Duration::from_millis;
        let mut est = Duration::ZERO;
        observe(&mut est, ms(2));
        observe(&mut est, ms(60));
        assert_eq!(est, ms(60));
        let mut n = 0;
        while est > ms(7) {
            observe(&mut est, ms(2));
            n += 1;
            assert!(n <= 17, "still {est:?} after {n} observations");
        }
        for _ in 0..100 {
            observe(&mut est, ms(2));
        }
        assert_eq!(est, ms(2));
    }

    /// Skipped work (no observation) still decays the estimate, so a
    /// planner cut by a stale outlier tries again.
    #[test]
    fn skipping_decays_too() {
        let mut est = Duration::from_millis(60);
        for _ in 0..20 {
            est = decay(est);
        }
        assert!(est < Duration::from_millis(7), "{est:?}");
    }
}
