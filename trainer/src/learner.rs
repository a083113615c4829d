//! The learner: world model, target Q heads, optimizers and replay on one
//! device, the TD-MPC2-style losses and one gradient update
//! ([`Agent::update`]).
//!
//! Losses on subsequences of `horizon + 1` observations from the replay
//! buffer, each step t weighted by `rho^t`:
//! - latent consistency: `|| d(z_t, a_t) - h(o_{t+1}) ||^2` against the
//!   encoding of the next observation without gradient (TD-MPC2);
//! - reward regression `(R(z_t, a_t) - r_t)^2`;
//! - value regression of every Q head towards the TD target
//!   `r_t + g * min(two random target heads at (z'_{t+1}, pi(z'_{t+1})))`;
//! - policy: maximize `Q(z_t, pi(z_t)) / scale` minus `entropy_coef *
//!   log pi`, on detached latents, with `scale` a running Q range.
//!
//! Reproducibility: every agent step and every update draws from generators
//! seeded by `(seed, counter)` (our xoshiro `Rng` for indices, the libtorch
//! generator for dropout and policy noise), so a resumed run continues
//! exactly as the uninterrupted one on CPU (libtorch's generator is
//! process-global: two runs in one process must not run concurrently).

use crate::config::TrainConfig;
use crate::metrics::Losses;
use crate::model::{to_vec, WorldModel};
use crate::optim::{zero_grads, Adam};
use crate::replay::{DeviceReplay, Replay};
use dream_mpc::rng::Rng;
use tch::{nn, Device, Kind, Tensor};

/// The learner: model, target Q, optimizers and replay.
pub struct Agent {
    pub cfg: TrainConfig,
    pub vs: nn::VarStore,
    pub model: WorldModel,
    pub(crate) target_vs: nn::VarStore,
    target: WorldModel,
    pub(crate) opt_wm: Adam,
    pub(crate) opt_pi: Adam,
    /// Running Q scale (0-d tensor on the device).
    pub(crate) q_scale: Tensor,
    pub replay: Replay,
    pub(crate) dev_replay: Option<DeviceReplay>,
    pub updates: u64,
    /// Where the model, optimizer state and replay batches live.
    pub device: Device,
}

pub(crate) fn seeded(seed: u64, stream: u64, k: u64) -> Rng {
    Rng::new(
        seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

pub(crate) const STREAM_ACT: u64 = 1;
pub(crate) const STREAM_UPDATE: u64 = 2;
pub(crate) const STREAM_EPISODE: u64 = 3;
pub(crate) const STREAM_EVAL: u64 = 4;

impl Agent {
    /// Fresh agent for a task with these sizes, learning on `device`.
    /// The weights are drawn on the CPU and then moved, so a seed gives the
    /// same initial model on every device.
    pub fn new(
        cfg: &TrainConfig,
        obs_size: usize,
        action_size: usize,
        episode_len: usize,
        device: Device,
    ) -> Self {
        tch::manual_seed(cfg.seed as i64);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = WorldModel::new(&vs.root(), &cfg.model, obs_size, action_size);
        vs.set_device(device);
        let mut target_vs = nn::VarStore::new(device);
        let target = WorldModel::new(&target_vs.root(), &cfg.model, obs_size, action_size);
        target_vs.copy(&vs).expect("same structure");
        target_vs.freeze();
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let mut wm = Vec::new();
        let mut pi = Vec::new();
        for (name, t) in vars {
            if name.starts_with("policy") {
                pi.push((name, t, cfg.lr));
            } else if name.starts_with("encoder") {
                wm.push((name, t, cfg.lr * cfg.enc_lr_scale));
            } else {
                wm.push((name, t, cfg.lr));
            }
        }
        Agent {
            cfg: cfg.clone(),
            vs,
            model,
            target_vs,
            target,
            opt_wm: Adam::new(wm, 1e-8),
            opt_pi: Adam::new(pi, 1e-5),
            q_scale: Tensor::ones([], (Kind::Float, device)),
            replay: Replay {
                obs_size,
                action_size,
                len: cfg.agent_episode_len(episode_len),
                ..Default::default()
            },
            dev_replay: None,
            updates: 0,
            device,
        }
    }

    /// Sample a squashed action and its log-probability from pi(z).
    fn sample_pi(&self, z: &Tensor) -> (Tensor, Tensor) {
        let (mu, log_std) = self.model.pi(z);
        let eps = mu.randn_like();
        let u = &mu + log_std.exp() * &eps;
        let a = u.tanh();
        let log_prob = (eps.square() * -0.5 - &log_std - 0.5 * (2.0 * std::f64::consts::PI).ln())
            .sum_dim_intlist([-1i64].as_slice(), true, Kind::Float)
            - (a.square().neg() + (1.0 + 1e-6)).log().sum_dim_intlist(
                [-1i64].as_slice(),
                true,
                Kind::Float,
            );
        (a, log_prob)
    }

    /// Action for `obs` (agent step `k`): policy mean when `eval`, else a
    /// sample from the policy. Values in [-1, 1].
    pub fn act(&self, obs: &[f32], eval: bool, k: u64) -> Vec<f32> {
        tch::manual_seed(
            (self.cfg.seed ^ STREAM_ACT.wrapping_mul(0x9E37_79B9) ^ k) as i64 & i64::MAX,
        );
        tch::no_grad(|| {
            let o = Tensor::from_slice(obs)
                .view([1, obs.len() as i64])
                .to_device(self.device);
            let z = self.model.encode(&o);
            let a = if eval {
                self.model.pi(&z).0.tanh()
            } else {
                self.sample_pi(&z).0
            };
            to_vec(&a)
        })
    }

    /// Two distinct random heads of `n` (the same one when `n = 1`).
    fn two_heads(rng: &mut Rng, n: usize) -> [usize; 2] {
        let i = rng.below(n);
        let j = if n > 1 {
            (i + 1 + rng.below(n - 1)) % n
        } else {
            i
        };
        [i, j]
    }

    /// One gradient update on a batch drawn with update counter `k`
    /// (TD-MPC2's `update`, see the module docs). Waits for the device
    /// once, to read the four losses.
    pub fn update(&mut self) -> Losses {
        let k = self.updates;
        let c = self.cfg.clone();
        let mut rng = seeded(c.seed, STREAM_UPDATE, k);
        tch::manual_seed((c.seed.wrapping_add(k.wrapping_mul(7919))) as i64 & i64::MAX);
        let (h, b) = (c.horizon, c.batch as i64);
        let dev = self.device;
        let (obs, act, rew) = self
            .dev_replay
            .get_or_insert_with(|| DeviceReplay::new(dev, &self.replay))
            .sample(&self.replay, c.batch, h, &mut rng);
        let o = self.model.obs_size as i64;
        let nq = self.model.q.len();
        let th = self.model.twohot();
        let hi = h as i64;

        // Targets without gradient: next latents and TD targets
        // r + g * min(two random target heads at (z', pi(z'))).
        let target_heads = Self::two_heads(&mut rng, nq);
        let (next_z, td) = tch::no_grad(|| {
            let next_z = self
                .model
                .encode(&obs.narrow(0, 1, hi).reshape([-1, o]))
                .view([hi, b, -1]);
            let flat = next_z.reshape([hi * b, -1]);
            let (a_next, _) = self.sample_pi(&flat);
            let q = self.target.q_heads(&flat, &a_next, &target_heads, false);
            let qmin = th.decode(&q[0]).minimum(&th.decode(&q[1]));
            let td = &rew + qmin.view([hi, b, 1]) * c.discount;
            (next_z, td)
        });

        // World model: unroll the latent dynamics from the first encoding.
        zero_grads(&self.vs);
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
        self.opt_wm.step(c.grad_clip);

        // Policy on the detached latents: maximize the mean of two random
        // online heads (no gradient into Q), scaled by the running 5-95
        // percentile range of the first step's values, plus entropy.
        zero_grads(&self.vs);
        let pi_heads = Self::two_heads(&mut rng, nq);
        let ad = self.model.action_size as f64;
        let mut pl = zero();
        for (t, z) in zs.iter().enumerate() {
            let z = z.detach();
            let (a, log_prob) = self.sample_pi(&z);
            let qh = self.model.q_heads(&z, &a, &pi_heads, false);
            let q = (th.decode(&qh[0]) + th.decode(&qh[1])) * 0.5;
            if t == 0 {
                self.update_scale(&q.detach(), c.tau);
            }
            let w = c.rho.powi(t as i32);
            pl += ((log_prob * (c.entropy_coef * ad)) - q / &self.q_scale).mean(Kind::Float) * w;
        }
        let pl = pl / (hf + 1.0);
        pl.backward();
        self.opt_pi.step(c.grad_clip);
        zero_grads(&self.vs);

        // Target Q heads follow slowly.
        tch::no_grad(|| {
            let src = self.vs.variables();
            for (name, mut dst) in self.target_vs.variables() {
                if name.starts_with('q') {
                    let _ = dst.lerp_(&src[&name], c.tau);
                }
            }
        });
        self.updates += 1;
        let l = crate::model::to_vec(&Tensor::stack(&[cons, rl, vl, pl], 0));
        Losses {
            consistency: l[0] as f64,
            reward: l[1] as f64,
            value: l[2] as f64,
            policy: l[3] as f64,
        }
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

impl Agent {
    /// Run `f` on the model as a CPU model: the model itself when learning
    /// on the CPU, else a fresh CPU copy of its weights (export references
    /// and acting are computed on the CPU whatever the learner's device).
    pub fn with_cpu_model<R>(&self, f: impl FnOnce(&WorldModel) -> R) -> R {
        if self.device == Device::Cpu {
            return f(&self.model);
        }
        let mut vs = nn::VarStore::new(Device::Cpu);
        let m = WorldModel::new(
            &vs.root(),
            &self.cfg.model,
            self.model.obs_size,
            self.model.action_size,
        );
        vs.copy(&self.vs).expect("same structure");
        f(&m)
    }
}
