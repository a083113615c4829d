//! An independent reference of the Dream-MPC authors' planner
//! (RchenHuang/dreammmpc, `dream_mpc_tdmpc2.py`, `_plan`), written
//! plainly with tch autograd, to prove that the controller's planner
//! (`dream_mpc::planner`, options `authors`) runs the same algorithm.
//!
//! One tick from latent z0, for N candidates, horizon H, K steps:
//!
//! 1. N policy rollouts: `a_t = tanh(mu(z_t) + exp(log_std(z_t)) eps)`,
//!    `z_{t+1} = d(z_t, a_t)` (H policy calls, H - 1 dynamics calls).
//! 2. Reuse (not at an episode's first tick): every candidate blended with
//!    the previous tick's candidate of the same index, shifted one step with
//!    the last step repeated: `a = rho prev + (1 - rho) a`.
//! 3. K times: evaluate
//!    `J = sum_t g^t r(z_t, a_t) + g^H (Q_i + Q_j)(z_H, a_H) / 2
//!         - beta (sum_t u(z_{t+1}, a_t) + u(z_H, a_H))`,
//!    `u = mean x std (unbiased) of the Q heads`, computed without
//!    gradient, `a_H = tanh(mu + exp(log_std) eps_H)` with one eps_H shared
//!    by all candidates, heads i != j random; take dJ/da per candidate
//!    (autograd on the sum: candidates are independent), clip the norm of
//!    the whole `[H, N, A]` gradient to `clip` (torch's `clip_grad_norm_`),
//!    and step `a += lr * grad` (no clamp).
//! 4. The candidate with the largest J of the last evaluation; return its
//!    updated first action clamped to [-1, 1]; keep every candidate,
//!    clamped, for the next tick.
//!
//! The random draws come from [`dream_mpc::rng::Rng`] in the order the
//! controller documents: the policy eps (step, row, element), then per
//! evaluation A normals for eps_H and the heads (`below(Q)`, then
//! `below(Q - 1)` skipping the first). With the same seed both produce the
//! same draws. Cost: eager libtorch, several ms per tick; a test and
//! benchmark reference, never on a control path.

use crate::model::WorldModel;
use dream_mpc::rng::Rng;
use tch::{Device, Kind, Tensor};

/// The four modules a planner queries, in tch, with decoded outputs.
/// Implemented for the trainer's [`WorldModel`]; an imported model (e.g. a
/// TD-MPC2 checkpoint with two-hot outputs) implements it to reuse the
/// reference.
pub trait TchLatentModel {
    /// `(z [B, L], a [B, A]) -> z_next [B, L]`.
    fn next(&self, z: &Tensor, a: &Tensor) -> Tensor;
    /// `(z, a) -> r [B]`, decoded.
    fn reward(&self, z: &Tensor, a: &Tensor) -> Tensor;
    /// `(z, a) -> q [B, heads]`, decoded.
    fn q_all(&self, z: &Tensor, a: &Tensor) -> Tensor;
    /// `z -> (mu, log_std)`, each `[B, A]` (pre-tanh Gaussian).
    fn pi(&self, z: &Tensor) -> (Tensor, Tensor);
    /// Number of Q heads.
    fn q_heads(&self) -> usize;
}

impl TchLatentModel for WorldModel {
    fn next(&self, z: &Tensor, a: &Tensor) -> Tensor {
        WorldModel::next(self, z, a)
    }
    fn reward(&self, z: &Tensor, a: &Tensor) -> Tensor {
        // two-hot logits [B, bins] (or a scalar head) -> [B]
        self.twohot()
            .decode(&WorldModel::reward(self, z, a))
            .squeeze_dim(1)
    }
    fn q_all(&self, z: &Tensor, a: &Tensor) -> Tensor {
        // head-major logits [B, heads * bins] -> decoded [B, heads]
        let logits = WorldModel::q_all(self, z, a, false);
        let b = logits.size()[0];
        let bins = self.head_width() as i64;
        self.twohot()
            .decode(&logits.reshape([b * self.q.len() as i64, bins]))
            .reshape([b, self.q.len() as i64])
    }
    fn pi(&self, z: &Tensor) -> (Tensor, Tensor) {
        WorldModel::pi(self, z)
    }
    fn q_heads(&self) -> usize {
        self.q.len()
    }
}

/// Budget and weights of the authors' planner.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorsBudget {
    /// N policy samples.
    pub candidates: usize,
    /// H.
    pub horizon: usize,
    /// K SGD steps (before the large-action heuristic).
    pub iterations: usize,
    /// SGD step size.
    pub lr: f64,
    /// Largest norm of the whole gradient.
    pub clip: f64,
    /// Reuse blend weight.
    pub rho: f64,
    /// Uncertainty weight.
    pub beta: f64,
    /// Discount g.
    pub gamma: f64,
}

impl Default for AuthorsBudget {
    /// The authors' defaults: N = 5, H = 3, K = 1, lr 0.1, clip 20,
    /// rho 0.1, beta 0.01, g 0.99.
    fn default() -> Self {
        AuthorsBudget {
            candidates: 5,
            horizon: 3,
            iterations: 1,
            lr: 0.1,
            clip: 20.0,
            rho: 0.1,
            beta: 0.01,
            gamma: 0.99,
        }
    }
}

/// The authors' planner with its state across ticks (previous candidates
/// and the random stream).
pub struct AuthorsPlanner {
    pub budget: AuthorsBudget,
    rng: Rng,
    prev: Option<Tensor>,
}

fn normals(rng: &mut Rng, shape: &[i64]) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    Tensor::from_slice(&v).view(shape)
}

/// `mean x std` (unbiased) over the heads, `[B]`.
fn uncertainty(q: &Tensor) -> Tensor {
    q.mean_dim(1, false, Kind::Float) * q.std_dim(1, true, false)
}

impl AuthorsPlanner {
    /// A planner whose random stream is `Rng::new(seed)` (the controller's
    /// planner with `config.seed = seed` draws the same numbers).
    pub fn new(budget: AuthorsBudget, seed: u64) -> Self {
        AuthorsPlanner {
            budget,
            rng: Rng::new(seed),
            prev: None,
        }
    }

    /// New episode: no reuse at the next tick.
    pub fn reset(&mut self) {
        self.prev = None;
    }

    /// J of every candidate, `[N]`, for `actions [H, N, A]` from `z [N, L]`,
    /// with the terminal draws `eps_h [1, A]` and `heads`.
    // Out-of-place `g = g + ..` keeps autograd's graph plain (no in-place ops).
    #[allow(clippy::assign_op_pattern)]
    fn estimate_value<M: TchLatentModel>(
        &self,
        m: &M,
        z: &Tensor,
        actions: &Tensor,
        eps_h: &Tensor,
        heads: [i64; 2],
    ) -> Tensor {
        let b = &self.budget;
        let mut z = z.shallow_clone();
        let mut g = Tensor::zeros([z.size()[0]], (Kind::Float, Device::Cpu));
        let mut discount = 1.0;
        for t in 0..b.horizon as i64 {
            let a = actions.get(t);
            let reward = m.reward(&z, &a);
            z = m.next(&z, &a);
            g = g + reward * discount;
            let u = tch::no_grad(|| uncertainty(&m.q_all(&z, &a)));
            g = g - u * b.beta;
            discount *= b.gamma;
        }
        let (mu, log_std) = m.pi(&z);
        let action = (mu + log_std.exp() * eps_h).tanh();
        let q = m.q_all(&z, &action);
        let v = (q.select(1, heads[0]) + q.select(1, heads[1])) * 0.5;
        let val = g + v * discount;
        let u = tch::no_grad(|| uncertainty(&m.q_all(&z, &action)));
        val - u * b.beta
    }

    /// One tick from `z0 [1, L]`; returns the action `[A]`.
    pub fn act<M: TchLatentModel>(&mut self, m: &M, z0: &Tensor) -> Tensor {
        let b = self.budget.clone();
        let (n, h) = (b.candidates as i64, b.horizon as i64);
        let z = z0.expand([n, z0.size()[1]], false).contiguous();
        // 1. policy rollouts
        let pi_actions = tch::no_grad(|| {
            let mut zt = z.shallow_clone();
            let mut acts = Vec::new();
            for t in 0..h {
                let (mu, log_std) = m.pi(&zt);
                let na = mu.size()[1];
                let eps = normals(&mut self.rng, &[n, na]);
                let a = (mu + log_std.exp() * eps).tanh();
                if t + 1 < h {
                    zt = m.next(&zt, &a);
                }
                acts.push(a);
            }
            Tensor::stack(&acts, 0)
        });
        let na = pi_actions.size()[2];
        let k = b.iterations + if na >= 20 { 2 } else { 0 };
        // 2. blend with the previous candidates, shifted
        let init = match &self.prev {
            Some(prev) if b.rho > 0.0 => {
                let shifted = Tensor::cat(&[prev.narrow(0, 1, h - 1), prev.narrow(0, h - 1, 1)], 0);
                shifted * b.rho + pi_actions * (1.0 - b.rho)
            }
            _ => pi_actions,
        };
        // 3. K clipped SGD steps on per-candidate gradients
        let mut actions = init.detach().set_requires_grad(true);
        let mut returns = Tensor::zeros([n], (Kind::Float, Device::Cpu));
        for _ in 0..k {
            let eps_h = normals(&mut self.rng, &[1, na]);
            let nq = m.q_heads();
            let heads = if nq >= 2 {
                let i = self.rng.below(nq);
                let mut j = self.rng.below(nq - 1);
                if j >= i {
                    j += 1;
                }
                [i as i64, j as i64]
            } else {
                [0, 0]
            };
            let value = self.estimate_value(m, &z, &actions, &eps_h, heads);
            let grad = Tensor::run_backward(&[&value.sum(Kind::Float)], &[&actions], false, false)
                .pop()
                .expect("gradient");
            returns = value.detach();
            let norm = grad.norm().double_value(&[]);
            let coef = (b.clip / (norm + 1e-6)).min(1.0);
            actions = tch::no_grad(|| &actions + grad * (b.lr * coef))
                .detach()
                .set_requires_grad(true);
        }
        // 4. the last evaluation's best candidate, its updated first action
        let actions = actions.detach();
        let idx = returns.argmax(0, false).int64_value(&[]);
        self.prev = Some(actions.clamp(-1.0, 1.0));
        actions.get(0).get(idx).clamp(-1.0, 1.0)
    }
}
