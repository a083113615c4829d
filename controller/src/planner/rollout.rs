//! Batched rollouts of the candidates through the latent model, the VJP of
//! J back to the actions, and the bookkeeping between iterations.
//! Nothing here allocates.

use super::config::PlannerConfig;
use super::model::Evals;
use super::model::{LatentModel, Module};
use super::objective::{self, Weights};
use super::workspace::Workspace;
use crate::bundle::planner_options::{Uncertainty, UncertaintyAt, ValueAction, ValueHeads};
use crate::rng::Rng;

/// Where the actions of a rollout come from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fill {
    /// Actions already in the workspace.
    None,
    /// Rows `0..rows` are policy rollouts, `a_t = tanh(mu + std * eps)`
    /// (row 0 the mean, eps = 0, when [`Terms::policy_mean_row`]);
    /// `reuse_row` (the shifted previous plan) gets its last action from
    /// the policy mean.
    Policy {
        rows: usize,
        reuse_row: Option<usize>,
    },
}

/// The form of J, fixed at start-up from the config and its options.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Terms {
    /// Discount and beta (0 when uncertainty is off).
    pub w: Weights,
    /// Measure u at all (it may rank candidates with beta = 0 too).
    pub uncertainty: bool,
    pub measure: Uncertainty,
    pub at: UncertaintyAt,
    /// Differentiate beta * u.
    pub u_gradient: bool,
    pub value_heads: ValueHeads,
    pub value_action: ValueAction,
    pub policy_mean_row: bool,
}

impl Terms {
    pub fn new(cfg: &PlannerConfig) -> Self {
        let o = &cfg.options;
        Terms {
            w: Weights {
                discount: cfg.discount,
                beta: if cfg.uncertainty { cfg.beta } else { 0.0 },
            },
            uncertainty: cfg.uncertainty,
            measure: o.uncertainty,
            at: o.uncertainty_at,
            u_gradient: o.uncertainty_gradient,
            value_heads: o.value_heads,
            value_action: o.value_action,
            policy_mean_row: o.policy_mean_row,
        }
    }

    fn u(&self, q: &[f32]) -> f32 {
        match self.measure {
            Uncertainty::MeanStd => objective::mean_std(q),
            Uncertainty::Std => objective::spread(q),
        }
    }

    /// `out = scale * du/dq`.
    fn u_vjp(&self, q: &[f32], scale: f32, out: &mut [f32]) {
        match self.measure {
            Uncertainty::MeanStd => objective::mean_std_vjp(q, scale, out),
            Uncertainty::Std => objective::spread_vjp(q, scale, out),
        }
    }

    fn differentiates_u(&self) -> bool {
        self.uncertainty && self.u_gradient && self.w.beta > 0.0
    }
}

/// Policy samples for rows `0..rows` at one step: `a = tanh(mu + exp(log_std) eps)`,
/// eps drawn row by row, element by element (row 0 eps = 0 when
/// `mean_row`).
fn sample_policy(
    rng: &mut Rng,
    mu: &[f32],
    log_std: &[f32],
    a: &mut [f32],
    na: usize,
    rows: usize,
    mean_row: bool,
) {
    for row in 0..rows {
        for i in row * na..(row + 1) * na {
            let eps = if row == 0 && mean_row {
                0.0
            } else {
                rng.normal() as f32
            };
            a[i] = (mu[i] + log_std[i].exp() * eps).tanh();
        }
    }
}

/// The authors' initial candidates before blending: every row a policy
/// rollout (H policy calls, H - 1 dynamics calls), actions into `ws.a`.
pub(crate) fn policy_rollout<M: LatentModel>(
    model: &M,
    tape: &mut M::Tape,
    ws: &mut Workspace,
    rng: &mut Rng,
    evals: &mut Evals,
    mean_row: bool,
) {
    let (b, h, l, na) = (ws.b, ws.h, ws.l, ws.na);
    let (bl, ba) = (b * l, b * na);
    for t in 0..h {
        let (z_now, z_later) = ws.z.split_at_mut((t + 1) * bl);
        let z_t = &z_now[t * bl..];
        model.pi(tape, t, z_t, &mut ws.mu, &mut ws.log_std);
        evals.fwd(model, Module::Policy, b);
        let a_t = &mut ws.a[t * ba..(t + 1) * ba];
        sample_policy(rng, &ws.mu, &ws.log_std, a_t, na, b, mean_row);
        if t + 1 < h {
            model.next(tape, t, z_t, a_t, &mut z_later[..bl]);
            evals.fwd(model, Module::Dynamics, b);
        }
    }
}

/// Rolls every row forward over H steps, evaluates V(z_H) and J per row;
/// rows whose J is not finite are marked invalid. Random draws, in order:
/// the policy fill's eps (step by step, row by row), then, for the
/// terminal value, A normals for a sampled action (shared by all rows) and
/// two distinct heads (`below(Q)`, then `below(Q - 1)` skipping the first).
/// Cost: H x (dynamics + reward [+ Q]) + policy + Q on B rows, plus H policy
/// calls when filling from the policy.
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward<M: LatentModel>(
    model: &M,
    tape: &mut M::Tape,
    ws: &mut Workspace,
    rng: &mut Rng,
    evals: &mut Evals,
    fill: Fill,
    terms: &Terms,
) {
    let (b, h, l, na, nq) = (ws.b, ws.h, ws.l, ws.na, ws.nq);
    let (bl, ba) = (b * l, b * na);
    for t in 0..h {
        let (z_now, z_later) = ws.z.split_at_mut((t + 1) * bl);
        let z_t = &z_now[t * bl..];
        let z_next = &mut z_later[..bl];
        let a_t = &mut ws.a[t * ba..(t + 1) * ba];
        if let Fill::Policy { rows, reuse_row } = fill {
            model.pi(tape, t, z_t, &mut ws.mu, &mut ws.log_std);
            evals.fwd(model, Module::Policy, b);
            sample_policy(
                rng,
                &ws.mu,
                &ws.log_std,
                a_t,
                na,
                rows,
                terms.policy_mean_row,
            );
            if let (Some(row), true) = (reuse_row, t == h - 1) {
                for i in row * na..(row + 1) * na {
                    a_t[i] = ws.mu[i].tanh();
                }
            }
        }
        let a_t = &ws.a[t * ba..(t + 1) * ba];
        model.next(tape, t, z_t, a_t, z_next);
        evals.fwd(model, Module::Dynamics, b);
    }
    // Rewards, and Q for u, of all steps at once (one pass over each
    // weight for H x B rows where the model batches them).
    let (zs, a) = (&ws.z, &ws.a[..h * ba]);
    model.reward_steps(tape, h, &zs[..h * bl], a, &mut ws.r[..h * b]);
    evals.fwd(model, Module::Reward, h * b);
    if terms.uncertainty {
        let z_u = match terms.at {
            UncertaintyAt::CurrentState => &zs[..h * bl],
            UncertaintyAt::NextState => &zs[bl..(h + 1) * bl],
        };
        model.q_steps(tape, h, z_u, a, &mut ws.q[..h * b * nq]);
        evals.fwd(model, Module::Q, h * b);
    }
    // Terminal value at the policy's mean or sampled action.
    let z_h = &ws.z[h * bl..];
    model.pi(tape, h, z_h, &mut ws.mu, &mut ws.log_std);
    if terms.value_action == ValueAction::Sample {
        for e in ws.eps_term.iter_mut() {
            *e = rng.normal() as f32;
        }
    }
    ws.heads = if terms.value_heads == ValueHeads::TwoRandom && nq >= 2 {
        let i = rng.below(nq);
        let mut j = rng.below(nq - 1);
        if j >= i {
            j += 1;
        }
        [i, j]
    } else {
        [0, 0]
    };
    for (k, a) in ws.a_term.iter_mut().enumerate() {
        *a = match terms.value_action {
            ValueAction::Mean => ws.mu[k].tanh(),
            ValueAction::Sample => (ws.mu[k] + ws.log_std[k].exp() * ws.eps_term[k % na]).tanh(),
        };
    }
    model.q(tape, h, z_h, &ws.a_term, &mut ws.q[h * b * nq..]);
    evals.fwd(model, Module::Policy, b);
    evals.fwd(model, Module::Q, b);

    let (r, q) = (&ws.r, &ws.q);
    let heads = |t: usize, row: usize| &q[(t * b + row) * nq..(t * b + row + 1) * nq];
    let value = |row: usize| match terms.value_heads {
        ValueHeads::All => objective::mean(heads(h, row)),
        ValueHeads::TwoRandom => objective::two_heads(heads(h, row), ws.heads),
    };
    for row in 0..b {
        let u = |t: usize| {
            if terms.uncertainty {
                terms.u(heads(t, row))
            } else {
                0.0
            }
        };
        let j = objective::objective(terms.w, terms.at, h, |t| r[t * b + row], u, value(row));
        ws.j[row] = j;
        if !j.is_finite() {
            ws.valid[row] = false;
        }
    }
}

/// dJ/da for every row (into `ws.grad.da`) from the tape of the last
/// [`forward`]; rows whose gradient is not finite are marked invalid.
/// Cost: the VJPs of the forward's modules on B rows (the H policy calls of
/// a fill excluded: the initial actions are free variables; the Q calls of
/// u excluded when u is not differentiated).
pub(crate) fn backward<M: LatentModel>(
    model: &M,
    tape: &mut M::Tape,
    ws: &mut Workspace,
    evals: &mut Evals,
    terms: &Terms,
) {
    let (b, h, na, nq) = (ws.b, ws.h, ws.na, ws.nq);
    let ba = b * na;
    let w = terms.w;
    let grad_u = terms.differentiates_u();
    // dJ/dV(z_H) = g^H, through V = heads' mean at a_H = tanh(mu + std eps);
    // plus -beta du/dq at (z_H, a_H) in the authors' form.
    let g_h = objective::discount_pow(w, h);
    for row in 0..b {
        let live = ws.valid[row];
        let dq = &mut ws.grad.dq[row * nq..(row + 1) * nq];
        let q = &ws.q[(h * b + row) * nq..(h * b + row + 1) * nq];
        let scale = if live { g_h } else { 0.0 };
        match terms.value_heads {
            ValueHeads::All => objective::mean_vjp(q, scale, dq),
            ValueHeads::TwoRandom => objective::two_heads_vjp(ws.heads, scale, dq),
        }
    }
    if grad_u && terms.at == UncertaintyAt::NextState {
        for row in 0..b {
            if !ws.valid[row] {
                continue;
            }
            let q = &ws.q[(h * b + row) * nq..(h * b + row + 1) * nq];
            terms.u_vjp(q, -w.beta, &mut ws.grad.du);
            add(&mut ws.grad.dq[row * nq..(row + 1) * nq], &ws.grad.du);
        }
    }
    model.q_vjp(
        tape,
        h,
        &ws.grad.dq,
        &mut ws.grad.dz_tmp,
        &mut ws.grad.da_tmp,
    );
    for (k, (dmu, da)) in ws.grad.dmu.iter_mut().zip(&ws.grad.da_tmp).enumerate() {
        let a = ws.a_term[k];
        *dmu = da * (1.0 - a * a);
    }
    match terms.value_action {
        ValueAction::Mean => model.pi_vjp(tape, h, &ws.grad.dmu, &mut ws.grad.dz),
        ValueAction::Sample => {
            for (k, dls) in ws.grad.dls.iter_mut().enumerate() {
                *dls = ws.grad.dmu[k] * ws.log_std[k].exp() * ws.eps_term[k % na];
            }
            model.pi_vjp_full(tape, h, &ws.grad.dmu, &ws.grad.dls, &mut ws.grad.dz);
        }
    }
    add(&mut ws.grad.dz, &ws.grad.dz_tmp);
    evals.bwd(model, Module::Q, b);
    evals.bwd(model, Module::Policy, b);

    // The reward VJPs of all steps at once (dJ/dr_t = g^t per valid row),
    // and those of u when it is differentiated.
    for t in 0..h {
        let g_t = objective::discount_pow(w, t);
        for (dr, &v) in ws.grad.dr_steps[t * b..(t + 1) * b]
            .iter_mut()
            .zip(&ws.valid)
        {
            *dr = if v { g_t } else { 0.0 };
        }
    }
    model.reward_steps_vjp(
        tape,
        h,
        &ws.grad.dr_steps,
        &mut ws.grad.dz_r,
        &mut ws.grad.da_r,
    );
    evals.bwd(model, Module::Reward, h * b);
    if grad_u {
        for t in 0..h {
            let scale = match terms.at {
                UncertaintyAt::NextState => -w.beta,
                UncertaintyAt::CurrentState => -w.beta * objective::discount_pow(w, t),
            };
            for row in 0..b {
                let o = (t * b + row) * nq;
                let s = if ws.valid[row] { scale } else { 0.0 };
                terms.u_vjp(&ws.q[o..o + nq], s, &mut ws.grad.dq_steps[o..o + nq]);
            }
        }
        model.q_steps_vjp(
            tape,
            h,
            &ws.grad.dq_steps,
            &mut ws.grad.dz_u,
            &mut ws.grad.da_u,
        );
        evals.bwd(model, Module::Q, h * b);
    }
    let bl = b * ws.l;
    for t in (0..h).rev() {
        // ws.grad.dz holds dJ/dz_{t+1}.
        let da_t = &mut ws.grad.da[t * ba..(t + 1) * ba];
        let (dz_u, da_u) = (
            &ws.grad.dz_u[t * bl..(t + 1) * bl],
            &ws.grad.da_u[t * ba..(t + 1) * ba],
        );
        if grad_u && terms.at == UncertaintyAt::NextState {
            // -beta u(z_{t+1}, a_t): into dz_{t+1} before the dynamics VJP.
            add(&mut ws.grad.dz, dz_u);
            model.next_vjp(tape, t, &ws.grad.dz, &mut ws.grad.dz_prev, da_t);
            add(da_t, da_u);
        } else {
            model.next_vjp(tape, t, &ws.grad.dz, &mut ws.grad.dz_prev, da_t);
        }
        add(&mut ws.grad.dz_prev, &ws.grad.dz_r[t * bl..(t + 1) * bl]);
        add(da_t, &ws.grad.da_r[t * ba..(t + 1) * ba]);
        evals.bwd(model, Module::Dynamics, b);
        if grad_u && terms.at == UncertaintyAt::CurrentState {
            add(&mut ws.grad.dz_prev, dz_u);
            add(da_t, da_u);
        }
        std::mem::swap(&mut ws.grad.dz, &mut ws.grad.dz_prev);
    }
    for row in 0..b {
        let finite = (0..h).all(|t| {
            let o = (t * b + row) * na;
            ws.grad.da[o..o + na].iter().all(|x| x.is_finite())
        });
        if !finite {
            ws.valid[row] = false;
        }
    }
}

fn add(acc: &mut [f32], x: &[f32]) {
    acc.iter_mut().zip(x).for_each(|(a, x)| *a += x);
}

/// Copies the best valid row of the last evaluation into `ws.best` if it
/// beats the best so far, and appends the best J to the trace.
pub(crate) fn keep_best(ws: &mut Workspace) {
    let (b, h, na) = (ws.b, ws.h, ws.na);
    let mut arg = None;
    let mut top = ws.best_j;
    for row in 0..b {
        if ws.valid[row] && ws.j[row] > top {
            top = ws.j[row];
            arg = Some(row);
        }
    }
    if let Some(row) = arg {
        ws.best_j = top;
        for t in 0..h {
            let src = (t * b + row) * na;
            for (d, x) in ws.best[t * na..(t + 1) * na]
                .iter_mut()
                .zip(&ws.a[src..src + na])
            {
                *d = x.clamp(-1.0, 1.0);
            }
        }
    }
    if ws.trace_len < ws.trace.len() {
        ws.trace[ws.trace_len] = ws.best_j;
        ws.trace_len += 1;
    }
}

/// Refits the sampling mean and std to the elites of the last evaluation:
/// CEM averages the top E rows; MPPI weights them by
/// exp(temperature * (J - max J)). The std is kept in [min_std, init_std].
pub(crate) fn refit(ws: &mut Workspace, cfg: &PlannerConfig, mppi: bool) {
    let (b, h, na) = (ws.b, ws.h, ws.na);
    let mut live = 0;
    for row in 0..b {
        if ws.valid[row] {
            ws.sampling.order[live] = row;
            live += 1;
        }
    }
    if live == 0 {
        return;
    }
    let e = cfg.cem_elites.min(live);
    let j = &ws.j;
    let order = &mut ws.sampling.order[..live];
    if e < live {
        order.select_nth_unstable_by(e - 1, |&x, &y| j[y].total_cmp(&j[x]));
    }
    let elites = &ws.sampling.order[..e];
    let top = elites
        .iter()
        .map(|&r| j[r])
        .fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for (k, &row) in elites.iter().enumerate() {
        let wk = if mppi {
            (cfg.cem_temperature * (j[row] - top)).exp()
        } else {
            1.0
        };
        ws.sampling.weights[k] = wk;
        total += wk;
    }
    for t in 0..h {
        for i in 0..na {
            let at = |row: usize| ws.a[(t * b + row) * na + i];
            let mean: f32 = elites
                .iter()
                .zip(&ws.sampling.weights)
                .map(|(&r, wk)| wk * at(r))
                .sum::<f32>()
                / total;
            let var: f32 = elites
                .iter()
                .zip(&ws.sampling.weights)
                .map(|(&r, wk)| wk * (at(r) - mean) * (at(r) - mean))
                .sum::<f32>()
                / total;
            ws.sampling.mean[t * na + i] = mean;
            ws.sampling.std[t * na + i] = var.sqrt().clamp(cfg.cem_min_std, cfg.cem_init_std);
        }
    }
}
