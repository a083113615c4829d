//! The learner: world model, target Q heads, optimizers and replay on one
//! device, the TD-MPC2-style losses and one gradient update
//! ([`Learner::update`]).
//!
//! Losses on subsequences of `horizon + 1` observations from the replay
//! buffer, each step t weighted by `rho^t`:
//! - latent consistency: `|| d(z_t, a_t) - h(o_{t+1}) ||^2` against the
//!   encoding of the next observation without gradient (TD-MPC2);
//! - reward regression `(R(z_t, a_t) - r_t)^2`;
//! - value regression of every Q head towards the TD target
//!   `r_t + g * min(two random target heads at (z'_{t+1}, pi(z'_{t+1})))`;
//! - policy (plus `bc_coef` x the negative log-likelihood of the logged
//!   actions, offline only): maximize `Q(z_t, pi(z_t)) / scale` minus `entropy_coef *
//!   log pi`, on detached latents, with `scale` a running Q range.
//!
//! One update runs in training: the fused one (stacked Q ensemble, time
//! steps batched, flat Adam, no host-device sync). The per-head
//! formulation of the same losses ([`per_head`]) is the oracle the tests
//! compare it with and the baseline of `benches/updates.rs`; only they set
//! [`Learner::path`].
//!
//! Reproducibility: every agent step and every update draws from generators
//! seeded by `(seed, counter)` (our xoshiro `Rng` for indices, the libtorch
//! generator for dropout and policy noise), so a resumed run continues
//! exactly as the uninterrupted one on CPU (libtorch's generator is
//! process-global: two runs in one process must not run concurrently).

use crate::config::TrainConfig;
use crate::metrics::Losses;
use crate::model::{to_vec, QStack, WorldModel};
use crate::optim::{Adam, Flat, Group};
use crate::replay::{DeviceReplay, Replay};

mod per_head;
use dream_mpc::rng::Rng;
use tch::{nn, Device, Kind, Tensor};

/// The learner: model, target Q, optimizers and replay.
pub struct Learner {
    pub cfg: TrainConfig,
    pub vs: nn::VarStore,
    pub model: WorldModel,
    pub(crate) target_vs: nn::VarStore,
    target: WorldModel,
    /// The online Q heads stacked (leaves of `opt_wm`'s flat buffer).
    q_stack: QStack,
    /// The target Q heads stacked, in one flat buffer laid out as the
    /// online heads' slice of `opt_wm`'s, so the EMA is one op.
    target_q: QStack,
    target_flat: Flat,
    /// Every ordered pair of heads `[E * E, 2]` (int64, on the device): a
    /// random pair is selected as a view, so nothing crosses per update.
    pairs: Tensor,
    /// `rho^t` for t = 0..=H, on the device.
    rho_w: Tensor,
    /// Which formulation [`Learner::update`] runs: always
    /// [`UpdatePath::Fused`] in training; a test or the update benchmark
    /// sets [`UpdatePath::PerHead`] to compare.
    pub path: UpdatePath,
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

/// Keep freed memory in the process (glibc: tensors up to 32 MiB from the
/// heap, not fresh `mmap`s; trim the heap only past 1 GiB free). An update
/// allocates and frees the same few-MiB activations every time; with
/// glibc's defaults each allocation mapped fresh pages, and page faults
/// plus zeroing took about 10 % of a CPU update (perf, small size). Called
/// once per process by [`Learner::new`]; costs nothing per update; no effect
/// on GPU memory (torch's caching allocator) or off glibc.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        ONCE.call_once(|| {
            if std::env::var_os("DREAM_MPC_MALLOC_DEFAULT").is_none() {
                // SAFETY: mallopt only sets allocator parameters; both
                // values are within glibc's documented limits.
                unsafe {
                    mallopt(M_MMAP_THRESHOLD, 32 << 20);
                    mallopt(M_TRIM_THRESHOLD, 1 << 30);
                }
            }
        });
    }
}

/// The two formulations of [`Learner::update`], same maths (TD-MPC2's),
/// same state: training runs `Fused`; `PerHead` is the test oracle and
/// the benchmark's baseline ([`per_head`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdatePath {
    /// Stacked Q ensemble (one batched matmul per layer), time steps
    /// batched where TD-MPC2 batches them, Adam over one flat buffer per
    /// optimizer, one-op EMA, no host-device transfer.
    Fused,
    /// E separate Q MLPs, a loop over time steps, Adam parameter by
    /// parameter.
    PerHead,
}

impl std::str::FromStr for UpdatePath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fused" => Ok(UpdatePath::Fused),
            "per-head" => Ok(UpdatePath::PerHead),
            other => Err(format!("update path '{other}': expected fused or per-head")),
        }
    }
}

/// The four losses of an update, still on the device (reading them waits
/// for the device; [`PendingLosses::read_all`] reads many at once).
pub struct PendingLosses(Tensor);

impl PendingLosses {
    pub fn read(&self) -> Losses {
        Self::read_all(std::slice::from_ref(self))[0]
    }

    /// Read many with one transfer (one device sync).
    pub fn read_all(pending: &[PendingLosses]) -> Vec<Losses> {
        if pending.is_empty() {
            return Vec::new();
        }
        let all = Tensor::stack(&pending.iter().map(|p| &p.0).collect::<Vec<_>>(), 0);
        to_vec(&all)
            .chunks_exact(6)
            .map(|l| Losses {
                consistency: l[0] as f64,
                reward: l[1] as f64,
                value: l[2] as f64,
                policy: l[3] as f64,
                pi_log_std: l[4] as f64,
                q_scale: l[5] as f64,
            })
            .collect()
    }
}

pub(crate) const STREAM_ACT: u64 = 1;
pub(crate) const STREAM_UPDATE: u64 = 2;
pub(crate) const STREAM_EPISODE: u64 = 3;
pub(crate) const STREAM_EVAL: u64 = 4;

impl Learner {
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
        keep_freed_memory();
        tch::manual_seed(cfg.seed as i64);
        let mut vs = nn::VarStore::new(Device::Cpu);
        let model = WorldModel::new(&vs.root(), &cfg.model, obs_size, action_size);
        vs.set_device(device);
        let mut target_vs = nn::VarStore::new(device);
        let target = WorldModel::new(&target_vs.root(), &cfg.model, obs_size, action_size);
        target_vs.copy(&vs).expect("same structure");
        target_vs.freeze();
        // Flat buffers: world model (encoder first, its own learning
        // rate; the Q heads last, stacked) and policy; the target Q heads
        // in a buffer of the same layout as the online heads' slice.
        let vars = vs.variables();
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        let single = |name: &String, lr: f64| Group {
            members: vec![(name.clone(), vars[name].shallow_clone())],
            stacked: None,
            lr,
        };
        let mut wm = Vec::new();
        for prefix in ["encoder", "dynamics", "reward"] {
            let lr = if prefix == "encoder" {
                cfg.lr * cfg.enc_lr_scale
            } else {
                cfg.lr
            };
            wm.extend(
                names
                    .iter()
                    .filter(|n| n.starts_with(&format!("{prefix}.")))
                    .map(|n| single(n, lr)),
            );
        }
        let (q_stack, q_groups) = QStack::new(&vars, &cfg.model, true, cfg.lr);
        wm.extend(q_groups);
        let pi: Vec<Group> = names
            .iter()
            .filter(|n| n.starts_with("policy."))
            .map(|n| single(n, cfg.lr))
            .collect();
        let (target_q, t_groups) = QStack::new(&target_vs.variables(), &cfg.model, false, 0.0);
        let target_flat = Flat::new(t_groups);
        let e = cfg.model.n_q as i64;
        let pairs: Vec<i64> = (0..e)
            .flat_map(|i| (0..e).flat_map(move |j| [i, j]))
            .collect();
        let rho_w: Vec<f32> = (0..=cfg.horizon)
            .map(|t| cfg.rho.powi(t as i32) as f32)
            .collect();
        let agent = Learner {
            cfg: cfg.clone(),
            vs,
            model,
            target_vs,
            target,
            q_stack,
            target_q,
            target_flat,
            pairs: Tensor::from_slice(&pairs)
                .view([e * e, 2])
                .to_device(device),
            rho_w: Tensor::from_slice(&rho_w).to_device(device),
            path: UpdatePath::Fused,
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
        };
        let n_vars = agent.opt_wm.flat.named().count() + agent.opt_pi.flat.named().count();
        assert_eq!(n_vars, vars.len(), "every variable in one optimizer");
        agent
    }

    /// Sample a squashed action and its log-probability from pi(z), and
    /// the mean log-std (detached scalar) of the draw.
    fn sample_pi(&self, z: &Tensor) -> (Tensor, Tensor, Tensor) {
        let (mu, log_std) = self.model.pi(z);
        let spread = log_std.detach().mean(Kind::Float);
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
        (a, log_prob, spread)
    }

    /// Negative log-likelihood `[N]` of the logged actions `a` `[N, A]`
    /// under the squashed Gaussian pi(z) (offline behaviour cloning, both
    /// mean and spread: Dream-MPC's candidates are samples of this
    /// policy). Actions at the bounds are taken at +-0.999.
    fn logged_nll(&self, z: &Tensor, a: &Tensor) -> Tensor {
        let (mu, log_std) = self.model.pi(z);
        let a = a.clamp(-0.999, 0.999);
        let u = a.atanh();
        let per = ((&u - &mu) / log_std.exp()).square() * 0.5
            + &log_std
            + 0.5 * (2.0 * std::f64::consts::PI).ln()
            + (a.square().neg() + (1.0 + 1e-6)).log();
        per.sum_dim_intlist([-1i64].as_slice(), false, Kind::Float)
    }

    /// The action of [`Learner::sample_pi`] alone (the same draw), where the
    /// log-probability is not used.
    fn sample_action(&self, z: &Tensor) -> Tensor {
        let (mu, log_std) = self.model.pi(z);
        let eps = mu.randn_like();
        (&mu + log_std.exp() * &eps).tanh()
    }

    /// Logits `[2, N, bins]` of the two heads in `pair` of `stack`, no
    /// dropout. On a GPU all heads are evaluated and two kept (fewer
    /// kernels: the launches, not the flops, bound it); on the CPU only
    /// the two heads' weights are gathered (fewer flops). Same values.
    fn q_pair(&self, stack: &QStack, za: &Tensor, pair: &Tensor) -> Tensor {
        match self.device {
            Device::Cpu => stack.forward(za, Some(pair), false),
            _ => stack.forward(za, None, false).index_select(0, pair),
        }
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
    /// (TD-MPC2's `update`, see the module docs), by [`Learner::path`].
    /// Waits for the device once, to read the four losses; training loops
    /// use [`Learner::update_pending`] and read many at once.
    pub fn update(&mut self) -> Losses {
        self.update_pending().read()
    }

    /// [`Learner::update`] without reading the losses: on the fused path
    /// nothing in it waits for the device (on CUDA, the sampled indices
    /// cross in one asynchronous copy).
    pub fn update_pending(&mut self) -> PendingLosses {
        let k = self.updates;
        let c = &self.cfg;
        let mut rng = seeded(c.seed, STREAM_UPDATE, k);
        tch::manual_seed((c.seed.wrapping_add(k.wrapping_mul(7919))) as i64 & i64::MAX);
        let (b, h) = (c.batch, c.horizon);
        let dev = self.device;
        let batch = self
            .dev_replay
            .get_or_insert_with(|| DeviceReplay::new(dev, &self.replay))
            .sample(&self.replay, b, h, &mut rng);
        self.opt_wm.flat.assert_aliased();
        self.opt_pi.flat.assert_aliased();
        self.target_flat.assert_aliased();
        let l = match self.path {
            UpdatePath::Fused => self.update_fused(batch, &mut rng),
            UpdatePath::PerHead => self.update_per_head(batch, &mut rng),
        };
        self.updates += 1;
        PendingLosses(l)
    }

    /// The fused update: the same losses as the per-head one ([`per_head`]),
    /// with the Q ensemble stacked, reward, Q and policy evaluated on all
    /// time steps at once (as TD-MPC2 does), gradients by `run_backward`
    /// into flat Adam steps, and a one-op EMA.
    fn update_fused(&mut self, (obs, act, rew): (Tensor, Tensor, Tensor), rng: &mut Rng) -> Tensor {
        let c = self.cfg.clone();
        let (h, b) = (c.horizon as i64, c.batch as i64);
        let o = self.model.obs_size as i64;
        let a_sz = self.model.action_size as i64;
        let e = self.q_stack.heads;
        let th = self.model.twohot();
        let pair = |rng: &mut Rng, pairs: &Tensor| {
            let [i, j] = Self::two_heads(rng, e);
            pairs.get((i * e + j) as i64)
        };

        // Targets without gradient: next latents and TD targets
        // r + g * min(two random target heads at (z', pi(z'))).
        let target_heads = pair(rng, &self.pairs);
        let (next_z, td) = tch::no_grad(|| {
            let flat = self.model.encode(&obs.narrow(0, 1, h).reshape([-1, o]));
            let a_next = self.sample_action(&flat);
            let za = Tensor::cat(&[&flat, &a_next], 1);
            let q = th.decode(&self.q_pair(&self.target_q, &za, &target_heads));
            let qmin = q.get(0).minimum(&q.get(1));
            let td = rew.reshape([-1, 1]) + qmin * c.discount;
            (flat.view([h, b, -1]), td)
        });

        // World model: unroll the latent dynamics, then reward and Q on
        // every step at once; losses weighted rho^t per step.
        let mut z = self.model.encode(&obs.get(0));
        let mut zs = vec![z.shallow_clone()];
        for t in 0..h {
            z = self.model.next(&z, &act.get(t));
            zs.push(z.shallow_clone());
        }
        let zs = Tensor::stack(&zs, 0);
        let w = self.rho_w.narrow(0, 0, h);
        let cons = ((zs.narrow(0, 1, h) - &next_z).square().mean_dim(
            [1i64, 2].as_slice(),
            false,
            Kind::Float,
        ) * &w)
            .sum(Kind::Float)
            / h as f64;
        let za = Tensor::cat(
            &[
                zs.narrow(0, 0, h).reshape([h * b, -1]),
                act.reshape([h * b, a_sz]),
            ],
            1,
        );
        let per_step = |loss: Tensor| {
            // [..., H*B, 1] -> mean over the batch per step, weighted.
            (loss
                .reshape([-1, h, b])
                .mean_dim([0i64, 2].as_slice(), false, Kind::Float)
                * &w)
                .sum(Kind::Float)
        };
        let rl =
            per_step(th.loss(&self.model.reward.forward(&za), &rew.reshape([-1, 1]))) / h as f64;
        let q = self.q_stack.forward(&za, None, true);
        // Mean over heads here, so divide by H only (the per-head path
        // sums heads and divides by H x E).
        let vl = per_step(th.loss(&q, &td)) / h as f64;
        let total = &cons * c.consistency_coef + &rl * c.reward_coef + &vl * c.value_coef;
        let grads = Tensor::run_backward(&[&total], &self.opt_wm.flat.leaves, false, false);
        self.opt_wm.step_flat(&grads, c.grad_clip);

        // Policy on the detached latents of every step at once.
        let pi_heads = pair(rng, &self.pairs);
        let zd = zs.detach().reshape([(h + 1) * b, -1]);
        let (a, log_prob, spread) = self.sample_pi(&zd);
        let qp = th.decode(&self.q_pair(&self.q_stack, &Tensor::cat(&[&zd, &a], 1), &pi_heads));
        let qp = ((qp.get(0) + qp.get(1)) * 0.5).view([h + 1, b]);
        self.update_scale_sorted(&qp.get(0).detach(), c.tau);
        let ad = self.model.action_size as f64;
        let per = log_prob.view([h + 1, b]) * (c.entropy_coef * ad) - &qp / &self.q_scale;
        let mut pl = (per.mean_dim([1i64].as_slice(), false, Kind::Float) * &self.rho_w)
            .sum(Kind::Float)
            / (h as f64 + 1.0);
        if c.bc_coef > 0.0 {
            // offline: the policy stays on the logged actions
            let z_l = zd.narrow(0, 0, h * b);
            let a_l = act.reshape([h * b, a_sz]);
            let mut nll = self.logged_nll(&z_l, &a_l).view([h, b]);
            if let Some(temp) = c.bc_advantage_temp {
                // advantage-weighted: the logged actions the Q heads rate
                // above the policy's own count more (AWR), weights <= 20
                let wgt = tch::no_grad(|| {
                    let ql = th.decode(&self.q_pair(
                        &self.q_stack,
                        &Tensor::cat(&[&z_l, &a_l], 1),
                        &pi_heads,
                    ));
                    let ql = ((ql.get(0) + ql.get(1)) * 0.5).view([h, b]);
                    let adv = (ql - qp.narrow(0, 0, h).detach()) / &self.q_scale;
                    (adv / temp).exp().clamp_max(20.0)
                });
                nll *= wgt;
            }
            let nll = nll.mean_dim([1i64].as_slice(), false, Kind::Float);
            pl += (nll * &w).sum(Kind::Float) * (c.bc_coef / (h as f64 + 1.0));
        }
        let grads = Tensor::run_backward(&[&pl], &self.opt_pi.flat.leaves, false, false);
        self.opt_pi.step_flat(&grads, c.grad_clip);

        // Target Q heads follow slowly: one lerp over the flat buffers.
        let (off, len) = self.opt_wm.flat.range("q.");
        tch::no_grad(|| {
            let _ = self
                .target_flat
                .data
                .lerp_(&self.opt_wm.flat.data.narrow(0, off, len), c.tau);
        });
        let scale = self.q_scale.shallow_clone();
        Tensor::stack(&[cons, rl, vl, pl, spread, scale], 0).detach()
    }

    /// TD-MPC2's running scale (lerp towards max(1, p95 - p5) of `q` over
    /// the batch, rate `tau`) by one sort and two interpolations at
    /// host-known positions (torch's "linear" quantile), so no value is
    /// checked on the host.
    fn update_scale_sorted(&mut self, q: &Tensor, tau: f64) {
        let (s, _) = q.view([-1]).sort(0, false);
        let n = s.size()[0];
        let at = |p: f64| {
            let x = p * (n - 1) as f64;
            let lo = x.floor() as i64;
            let hi = (lo + 1).min(n - 1);
            s.get(lo).lerp(&s.get(hi), x - lo as f64)
        };
        let range = (at(0.95) - at(0.05)).clamp_min(1.0);
        tch::no_grad(|| {
            let _ = self.q_scale.lerp_(&range, tau);
        });
    }
}

impl Learner {
    /// Set the target Q heads to the online ones (after loading weights).
    pub fn sync_target(&mut self) {
        self.target_vs.copy(&self.vs).expect("same structure");
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;

    /// `episodes` episodes of standard-normal observations (3 per step,
    /// drawn from `Rng::new(seed)`) into the replay buffer, each episode's
    /// actions and rewards from `actions_rewards(rng, len)` (drawn after
    /// its observations).
    fn push_random_episodes(
        a: &mut Learner,
        seed: u64,
        episodes: usize,
        mut actions_rewards: impl FnMut(&mut Rng, usize) -> (Vec<f32>, Vec<f32>),
    ) {
        let len = a.replay.len;
        let mut rng = Rng::new(seed);
        for _ in 0..episodes {
            let o: Vec<f32> = (0..(len + 1) * 3).map(|_| rng.normal() as f32).collect();
            let (act, r) = actions_rewards(&mut rng, len);
            a.replay.push_episode(&o, &act, &r);
        }
    }

    /// The mean of `f(first action of the policy mean)` over 100
    /// standard-normal observations (`Rng::new(9)`).
    fn mean_over_policy(a: &Learner, f: impl Fn(f32) -> f32) -> f32 {
        let mut rng = Rng::new(9);
        (0..100)
            .map(|k| {
                let o: Vec<f32> = (0..3).map(|_| rng.normal() as f32).collect();
                f(a.act(&o, true, k)[0])
            })
            .sum::<f32>()
            / 100.0
    }

    /// Replacing a variable's data (instead of copying into it) would
    /// leave the fused update training a buffer nobody reads: refused.
    #[test]
    #[should_panic(expected = "dynamics.0.linear.weight no longer views")]
    fn replaced_variable_data_is_refused() {
        let cfg = TrainConfig {
            batch: 8,
            model: ModelConfig::tiny(2),
            ..Default::default()
        };
        let mut a = Learner::new(&cfg, 3, 1, 20, Device::Cpu);
        let len = a.replay.len;
        a.replay
            .push_episode(&vec![0.1; (len + 1) * 3], &vec![0.0; len], &vec![0.5; len]);
        let mut w = a.vs.variables()["dynamics.0.linear.weight"].shallow_clone();
        w.set_data(&w.copy());
        a.update();
    }

    /// The stacked Q tensors and the per-head variables are one storage:
    /// after fused updates (which write only the flat buffers) the heads
    /// that export reads compute what the stack computes, online and
    /// target alike.
    #[test]
    fn stacked_q_and_heads_share_storage() {
        let cfg = TrainConfig {
            batch: 16,
            model: ModelConfig::tiny(3),
            ..Default::default()
        };
        let mut a = Learner::new(&cfg, 3, 1, 40, Device::Cpu);
        a.path = UpdatePath::Fused;
        push_random_episodes(&mut a, 2, 2, |rng, len| {
            let act: Vec<f32> = (0..len).map(|_| rng.uniform_in(-1.0, 1.0) as f32).collect();
            let r: Vec<f32> = (0..len).map(|_| rng.uniform() as f32).collect();
            (act, r)
        });
        for _ in 0..4 {
            a.update();
        }
        let z = Tensor::from_slice(&(0..64).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>())
            .view([4, 16]);
        let act = Tensor::from_slice(&[0.3f32, -0.5, 0.9, 0.0]).view([4, 1]);
        let za = Tensor::cat(&[&z, &act], 1);
        for (m, stack) in [(&a.model, &a.q_stack), (&a.target, &a.target_q)] {
            let heads = m.q_all(&z, &act, false).view([4, 3, -1]).transpose(0, 1);
            let stacked = tch::no_grad(|| stack.forward(&za, None, false));
            let d = (heads - stacked).abs().max().double_value(&[]);
            assert!(d < 1e-5, "heads and stack differ by {d}");
        }
        // And the online heads did move away from zero outputs.
        assert!(a.model.q_all(&z, &act, false).abs().max().double_value(&[]) > 0.0);
    }

    /// `bc_coef`: the policy mean moves to the logged action (0.6
    /// everywhere, which the zero rewards give Q no reason to prefer)
    /// with the term, and stays away from it without (fused path, the
    /// default; the per-head path computes the same term).
    #[test]
    fn behaviour_cloning_pulls_the_policy_to_the_logged_actions() {
        // one libtorch thread: spinning worker threads on a busy machine
        // cost more than this tiny model's updates
        tch::set_num_threads(1);
        let mut after = Vec::new();
        for bc_coef in [10.0, 0.0] {
            let cfg = TrainConfig {
                batch: 32,
                bc_coef,
                lr: 3e-3,
                model: ModelConfig::tiny(2),
                ..Default::default()
            };
            let mut a = Learner::new(&cfg, 3, 1, 40, Device::Cpu);
            a.path = UpdatePath::Fused;
            push_random_episodes(&mut a, 5, 8, |_, len| (vec![0.6; len], vec![0.0; len]));
            for _ in 0..300 {
                a.update();
            }
            let err = mean_over_policy(&a, |x| (x - 0.6).abs());
            eprintln!("bc_coef {bc_coef}: mean |policy mean - logged| {err}");
            after.push(err);
        }
        assert!(after[0] < 0.1, "with behaviour cloning: {}", after[0]);
        assert!(after[1] > 0.3, "without: {}", after[1]);
    }

    /// `bc_advantage_temp`: of logged actions +0.6 (reward 1) and -0.6
    /// (reward 0), half each, plain behaviour cloning's policy mean sits
    /// between them; advantage weighting moves it towards the rewarded one.
    #[test]
    fn advantage_weighting_prefers_the_better_logged_actions() {
        tch::set_num_threads(1);
        let mut means = Vec::new();
        for temp in [None, Some(0.1)] {
            let cfg = TrainConfig {
                batch: 32,
                bc_coef: 10.0,
                bc_advantage_temp: temp,
                lr: 3e-3,
                model: ModelConfig::tiny(2),
                ..Default::default()
            };
            let mut a = Learner::new(&cfg, 3, 1, 40, Device::Cpu);
            push_random_episodes(&mut a, 5, 16, |rng, len| {
                let act: Vec<f32> = (0..len)
                    .map(|_| if rng.below(2) == 0 { 0.6 } else { -0.6 })
                    .collect();
                let r: Vec<f32> = act.iter().map(|&x| f32::from(x > 0.0)).collect();
                (act, r)
            });
            for _ in 0..600 {
                a.update();
            }
            let mean = mean_over_policy(&a, |x| x);
            eprintln!("bc_advantage_temp {temp:?}: policy mean {mean}");
            means.push(mean);
        }
        assert!(means[0].abs() < 0.3, "plain BC: {}", means[0]);
        assert!(
            means[1] > means[0] + 0.2,
            "weighted {} vs plain {}",
            means[1],
            means[0]
        );
    }
}
