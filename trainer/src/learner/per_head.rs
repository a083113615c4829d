//! The per-head formulation of [`Learner::update`]: E separate Q MLPs, a
//! loop over time steps, per-parameter Adam and a per-variable EMA. It is
//! the oracle the fused update is tested against (`tests/update.rs`,
//! `tests/cuda.rs`: same losses and weights from the same state) and the
//! baseline `benches/updates.rs` times it against. Training never runs it:
//! [`Learner::path`] is [`UpdatePath::Fused`](super::UpdatePath::Fused) unless a test or the
//! benchmark sets it, and no configuration key or environment variable
//! selects it.

use super::Learner;
use dream_mpc::rng::Rng;
use tch::{Kind, Tensor};

impl Learner {
    /// The per-head update (E separate Q MLPs, a loop over time steps,
    /// per-parameter Adam): TD-MPC2's losses written the plain way.
    pub(super) fn update_per_head(
        &mut self,
        (obs, act, rew): (Tensor, Tensor, Tensor),
        rng: &mut Rng,
    ) -> Tensor {
        let c = self.cfg.clone();
        let (h, b) = (c.horizon, c.batch as i64);
        let dev = self.device;
        let o = self.model.obs_size as i64;
        let nq = self.model.q.len();
        let th = self.model.twohot();
        let hi = h as i64;

        // Targets without gradient: next latents and TD targets
        // r + g * min(two random target heads at (z', pi(z'))).
        let target_heads = Self::two_heads(rng, nq);
        let (next_z, td) = tch::no_grad(|| {
            let next_z = self
                .model
                .encode(&obs.narrow(0, 1, hi).reshape([-1, o]))
                .view([hi, b, -1]);
            let flat = next_z.reshape([hi * b, -1]);
            let (a_next, _, _) = self.sample_pi(&flat);
            let q = self.target.q_heads(&flat, &a_next, &target_heads, false);
            let qmin = th.decode(&q[0]).minimum(&th.decode(&q[1]));
            let td = &rew + qmin.view([hi, b, 1]) * c.discount;
            (next_z, td)
        });

        // World model: unroll the latent dynamics from the first encoding.
        self.opt_wm.zero_grads();
        self.opt_pi.zero_grads();
        let mut z = self.model.encode(&obs.get(0));
        let mut zs = vec![z.shallow_clone()];
        let zero = || Tensor::zeros([], (Kind::Float, dev));
        let (mut cons, mut rl, mut vl) = (zero(), zero(), zero());
        let all: Vec<usize> = (0..nq).collect();
        for t in 0..h {
            let w = c.rho.powi(t as i32);
            let a_t = act.get(t as i64);
            let (r_t, td_t) = (rew.get(t as i64), td.get(t as i64));
            rl += th
                .loss(&self.model.reward(&z, &a_t), &r_t)
                .mean(Kind::Float)
                * w;
            for q in self.model.q_heads(&z, &a_t, &all, true) {
                vl += th.loss(&q, &td_t).mean(Kind::Float) * w;
            }
            z = self.model.next(&z, &a_t);
            cons += (&z - next_z.get(t as i64)).square().mean(Kind::Float) * w;
            zs.push(z.shallow_clone());
        }
        let hf = h as f64;
        let cons = cons / hf;
        let rl = rl / hf;
        let vl = vl / (hf * nq as f64);
        let total = &cons * c.consistency_coef + &rl * c.reward_coef + &vl * c.value_coef;
        total.backward();
        self.opt_wm.step_params(c.grad_clip);

        // Policy on the detached latents: maximize the mean of two random
        // online heads (no gradient into Q), scaled by the running 5-95
        // percentile range of the first step's values, plus entropy.
        self.opt_wm.zero_grads();
        self.opt_pi.zero_grads();
        let pi_heads = Self::two_heads(rng, nq);
        let ad = self.model.action_size as f64;
        let mut pl = zero();
        let mut spread = zero();
        for (t, z) in zs.iter().enumerate() {
            let z = z.detach();
            let (a, log_prob, s) = self.sample_pi(&z);
            spread += s / (hf + 1.0);
            let qh = self.model.q_heads(&z, &a, &pi_heads, false);
            let q = (th.decode(&qh[0]) + th.decode(&qh[1])) * 0.5;
            if t == 0 {
                self.update_scale(&q.detach(), c.tau);
            }
            let w = c.rho.powi(t as i32);
            pl += ((log_prob * (c.entropy_coef * ad)) - q / &self.q_scale).mean(Kind::Float) * w;
            if c.bc_coef > 0.0 && t < h {
                let nll = self.logged_nll(&z, &act.get(t as i64)).mean(Kind::Float);
                pl += nll * (c.bc_coef * w);
            }
        }
        let pl = pl / (hf + 1.0);
        pl.backward();
        self.opt_pi.step_params(c.grad_clip);
        self.opt_wm.zero_grads();
        self.opt_pi.zero_grads();

        // Target Q heads follow slowly.
        tch::no_grad(|| {
            let src = self.vs.variables();
            for (name, mut dst) in self.target_vs.variables() {
                if name.starts_with('q') {
                    let _ = dst.lerp_(&src[&name], c.tau);
                }
            }
        });
        let scale = self.q_scale.shallow_clone();
        Tensor::stack(&[cons, rl, vl, pl, spread, scale], 0).detach()
    }

    /// TD-MPC2's running scale: lerp towards max(1, p95 - p5) of `q`
    /// (over the batch) with rate `tau`, on the device.
    fn update_scale(&mut self, q: &Tensor, tau: f64) {
        let p = Tensor::from_slice(&[0.05f32, 0.95]).to_device(self.device);
        let qs = q.view([-1]).quantile(&p, 0, false, "linear");
        let range = (qs.get(1) - qs.get(0)).clamp_min(1.0);
        tch::no_grad(|| {
            let _ = self.q_scale.lerp_(&range, tau);
        });
    }
}
