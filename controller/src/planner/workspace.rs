//! The planner's memory, allocated once (OpEn's cache pattern) and reused
//! by every tick.

use super::config::{ConfigError, PlannerConfig};
use super::model::ModelDims;

/// All buffers of one planner. Sizes, with B = [`PlannerConfig::batch`],
/// H = horizon, L = latent, A = action, Q = Q heads, E = elites, K =
/// iterations of the kind, G = B for gradient planners, else 0, and P = B
/// with blended reuse, else 0:
///
/// | buffer | floats |
/// |---|---|
/// | actions, latents, rewards, Q values | H·B·A + (H+1)·B·L + H·B + (H+1)·B·Q |
/// | policy outputs, terminal actions, J | 3·B·A + B |
/// | gradients and Adam moments | 3·H·G·A + 3·G·L + 2·G·A + G + G·Q |
/// | best, previous, mean, std, action | 4·H·A + A |
/// | blended reuse: previous candidates, log-std cotangent, terminal eps, du/dq | H·P·A + G·A + A + Q |
/// | all steps' reward and Q cotangents and their VJPs | H·G·(1 + Q + 2·L + 2·A) |
/// | MPPI weights, trace | E + K + 1 |
///
/// plus B flags and S indices (S = B for the sampling planners, else 0);
/// [`Workspace::floats`] returns the float total. Nothing else is
/// allocated by a planner after start-up.
///
/// Each planner kind owns its part: the rollout every kind evaluates
/// (actions, latents, rewards, Q, policy outputs, J, best, previous,
/// action, trace) sits in the workspace itself; everything with G or P
/// above is in [`GradientBuffers`] (`grad`), the mean, std, elite order
/// and MPPI weights in [`SamplingBuffers`] (`sampling`). The other kinds'
/// part is allocated empty.
#[derive(Clone, Debug)]
pub struct Workspace {
    pub(crate) b: usize,
    pub(crate) h: usize,
    pub(crate) l: usize,
    pub(crate) na: usize,
    pub(crate) nq: usize,
    /// a: `[H, B, A]`, time-major so each step's batch is contiguous.
    pub(crate) a: Vec<f32>,
    /// z: `[H+1, B, L]`; slot 0 holds z0 broadcast.
    pub(crate) z: Vec<f32>,
    /// r: `[H, B]`.
    pub(crate) r: Vec<f32>,
    /// Q heads: `[H+1, B, Q]`; slot H is at the terminal policy action.
    pub(crate) q: Vec<f32>,
    pub(crate) mu: Vec<f32>,
    pub(crate) log_std: Vec<f32>,
    /// tanh(mu(z_H)): the terminal action, `[B, A]`.
    pub(crate) a_term: Vec<f32>,
    /// J per candidate.
    pub(crate) j: Vec<f32>,
    /// Candidate still alive (its J and gradient have stayed finite).
    pub(crate) valid: Vec<bool>,
    /// The shared eps of the sampled terminal action, `[A]`.
    pub(crate) eps_term: Vec<f32>,
    /// The two Q heads of the terminal value in the last evaluation.
    pub(crate) heads: [usize; 2],
    /// Best sequence so far this tick, `[H, A]`, and its J.
    pub(crate) best: Vec<f32>,
    pub(crate) best_j: f32,
    /// Previous tick's best sequence (gradient) or mean (CEM), `[H, A]`.
    pub(crate) prev: Vec<f32>,
    pub(crate) has_prev: bool,
    /// tanh(mu(z0)): the policy action held until an iteration finishes.
    pub(crate) policy_action: Vec<f32>,
    /// The action returned by the last tick.
    pub(crate) action: Vec<f32>,
    /// Best J after the initial evaluation and after each iteration.
    pub(crate) trace: Vec<f32>,
    pub(crate) trace_len: usize,
    /// The gradient planners' part (empty for the others).
    pub(crate) grad: GradientBuffers,
    /// The sampling planners' part (empty for the others).
    pub(crate) sampling: SamplingBuffers,
}

/// What only the gradient planners (Grad-MPC, Policy+Grad-MPC, Dream-MPC)
/// use: cotangents, Adam moments, the all-steps VJPs and blended reuse.
/// Every buffer has length 0 in a sampling or policy planner.
#[derive(Clone, Debug)]
pub struct GradientBuffers {
    pub(crate) da: Vec<f32>,
    pub(crate) adam_m: Vec<f32>,
    pub(crate) adam_v: Vec<f32>,
    pub(crate) dz: Vec<f32>,
    pub(crate) dz_prev: Vec<f32>,
    pub(crate) dz_tmp: Vec<f32>,
    pub(crate) da_tmp: Vec<f32>,
    pub(crate) dmu: Vec<f32>,
    pub(crate) dr: Vec<f32>,
    pub(crate) dq: Vec<f32>,
    /// du/dq of one row, `[Q]`.
    pub(crate) du: Vec<f32>,
    /// dJ/dr of every step, `[H, G]`, and dJ/dq of every step, `[H, G, Q]`.
    pub(crate) dr_steps: Vec<f32>,
    pub(crate) dq_steps: Vec<f32>,
    /// The reward VJPs of every step, `[H, G, L]` and `[H, G, A]`.
    pub(crate) dz_r: Vec<f32>,
    pub(crate) da_r: Vec<f32>,
    /// The uncertainty's Q VJPs of every step, `[H, G, L]` and `[H, G, A]`.
    pub(crate) dz_u: Vec<f32>,
    pub(crate) da_u: Vec<f32>,
    /// Cotangent of the terminal policy's log-std (sampled value action).
    pub(crate) dls: Vec<f32>,
    /// Blended reuse: every candidate's sequence of the previous tick,
    /// `[H, B, A]`, clamped, and whether each row is usable.
    pub(crate) prev_all: Vec<f32>,
    pub(crate) prev_valid: Vec<bool>,
}

/// What only the sampling planners (CEM, MPPI) use: the action
/// distribution, the elite order and the MPPI weights. Every buffer has
/// length 0 in a gradient or policy planner.
#[derive(Clone, Debug)]
pub struct SamplingBuffers {
    pub(crate) mean: Vec<f32>,
    pub(crate) std: Vec<f32>,
    pub(crate) order: Vec<usize>,
    pub(crate) weights: Vec<f32>,
}

impl Workspace {
    /// Validates `config` and allocates every buffer (see the table above).
    pub fn new(dims: &ModelDims, config: &PlannerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let (b, h, l, na, nq) = (
            config.batch(),
            config.horizon,
            dims.latent,
            dims.action,
            dims.q_heads,
        );
        let g = if config.kind.is_gradient() { b } else { 0 };
        let p = if config.reuse_blend() { b } else { 0 };
        let e = if config.kind.is_sampling() {
            config.cem_elites
        } else {
            0
        };
        let sb = if config.kind.is_sampling() { b } else { 0 };
        let v = |n: usize| vec![0.0f32; n];
        Ok(Workspace {
            b,
            h,
            l,
            na,
            nq,
            a: v(h * b * na),
            z: v((h + 1) * b * l),
            r: v(h * b),
            q: v((h + 1) * b * nq),
            mu: v(b * na),
            log_std: v(b * na),
            a_term: v(b * na),
            j: v(b),
            valid: vec![false; b],
            eps_term: v(na),
            heads: [0, 0],
            best: v(h * na),
            best_j: f32::NEG_INFINITY,
            prev: v(h * na),
            has_prev: false,
            policy_action: v(na),
            action: v(na),
            trace: v(config.budget_iterations(na) + 1),
            trace_len: 0,
            grad: GradientBuffers {
                da: v(h * g * na),
                adam_m: v(h * g * na),
                adam_v: v(h * g * na),
                dz: v(g * l),
                dz_prev: v(g * l),
                dz_tmp: v(g * l),
                da_tmp: v(g * na),
                dmu: v(g * na),
                dr: v(g),
                dq: v(g * nq),
                du: v(nq),
                dr_steps: v(h * g),
                dq_steps: v(h * g * nq),
                dz_r: v(h * g * l),
                da_r: v(h * g * na),
                dz_u: v(h * g * l),
                da_u: v(h * g * na),
                dls: v(g * na),
                prev_all: v(h * p * na),
                prev_valid: vec![false; p],
            },
            sampling: SamplingBuffers {
                mean: v(h * na),
                std: v(h * na),
                order: vec![0; sb],
                weights: v(e),
            },
        })
    }

    /// Floats allocated (the f32 buffers above).
    pub fn floats(&self) -> usize {
        [
            &self.a,
            &self.z,
            &self.r,
            &self.q,
            &self.mu,
            &self.log_std,
            &self.a_term,
            &self.j,
            &self.grad.da,
            &self.grad.adam_m,
            &self.grad.adam_v,
            &self.grad.dz,
            &self.grad.dz_prev,
            &self.grad.dz_tmp,
            &self.grad.da_tmp,
            &self.grad.dmu,
            &self.grad.dr,
            &self.grad.dq,
            &self.grad.du,
            &self.grad.dr_steps,
            &self.grad.dq_steps,
            &self.grad.dz_r,
            &self.grad.da_r,
            &self.grad.dz_u,
            &self.grad.da_u,
            &self.grad.dls,
            &self.eps_term,
            &self.grad.prev_all,
            &self.best,
            &self.prev,
            &self.sampling.mean,
            &self.sampling.std,
            &self.sampling.weights,
            &self.policy_action,
            &self.action,
            &self.trace,
        ]
        .iter()
        .map(|v| v.len())
        .sum()
    }
}
