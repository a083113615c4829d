//! Online training in the TD-MPC2 family (issue 5).
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
//! Collection uses the policy prior with its own Gaussian exploration (the
//! planners run on the robot side and land in main separately; evaluation
//! with them can be added by loading the exported bundle). Evaluation runs
//! the policy mean on fresh episodes.
//!
//! Reproducibility: every agent step and every update draws from generators
//! seeded by `(seed, counter)` (our xoshiro `Rng` for indices, the libtorch
//! generator for dropout and policy noise), so a resumed run continues
//! exactly as the uninterrupted one on CPU (libtorch's generator is
//! process-global: two runs in one process must not run concurrently).
//! Checkpoints are taken at
//! episode ends (model, target Q, Adam moments, replay buffer, counters).

use crate::export::{default_planner, export_bundle, ExportMeta};
use crate::model::{to_vec, ModelConfig, WorldModel};
use dream_mpc::bundle::manifest::Provenance;
use dream_mpc::rng::Rng;
use dream_mpc_sim::task::Task;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

/// Training configuration; every field has a documented default.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Task name (see [`crate::tasks::make`]).
    pub task: String,
    /// Seed of everything (weights, exploration, sampling, episodes). 0.
    pub seed: u64,
    /// Total environment steps (control steps of the task). 100000.
    pub steps: u64,
    /// Environment steps with uniform random actions before learning. 2000.
    pub seed_steps: u64,
    /// Agent steps each seed-phase random action is held. With 1 the seed
    /// actions are iid uniform in [-1, 1]; above 1 they are bang-bang (+-1
    /// per component) held for this many agent steps, which pumps energy
    /// into under-actuated swing-ups where iid noise never leaves the
    /// bottom (pendulum-swingup: 0 reward in 10 iid-uniform episodes;
    /// +-1 held for 20-40 control steps: reward in 1-2 of 10). 1.
    pub seed_hold: usize,
    /// Each agent action is held for this many environment steps. 2.
    pub action_repeat: usize,
    /// Truncate episodes to this many environment steps (0 = the task's
    /// own length). 0.
    pub max_episode_steps: usize,
    /// Subsequences per update. 256.
    pub batch: usize,
    /// Training horizon (steps unrolled in the latent). 3.
    pub horizon: usize,
    /// Adam learning rate. 3e-4.
    pub lr: f64,
    /// Encoder learning rate multiplier. 0.3.
    pub enc_lr_scale: f64,
    /// Global gradient-norm clip of the world model update. 20.
    pub grad_clip: f64,
    /// Temporal weight rho of the multi-step losses. 0.5.
    pub rho: f64,
    /// Soft update rate of the target Q heads. 0.01.
    pub tau: f64,
    /// Loss weights (TD-MPC2: 20, 0.1, 0.1) and the entropy weight (1e-4).
    pub consistency_coef: f64,
    pub reward_coef: f64,
    pub value_coef: f64,
    pub entropy_coef: f64,
    /// Discount g. 0.99.
    pub discount: f64,
    /// Gradient updates per agent step after the seed phase. 1.
    pub updates_per_step: usize,
    /// Evaluate (and export, and checkpoint) every this many environment
    /// steps. 10000.
    pub eval_every: u64,
    /// Episodes per evaluation. 2.
    pub eval_episodes: usize,
    /// Model sizes.
    pub model: ModelConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            task: String::new(),
            seed: 0,
            steps: 100_000,
            seed_steps: 2000,
            seed_hold: 1,
            action_repeat: 2,
            max_episode_steps: 0,
            batch: 256,
            horizon: 3,
            lr: 3e-4,
            enc_lr_scale: 0.3,
            grad_clip: 20.0,
            rho: 0.5,
            tau: 0.01,
            consistency_coef: 20.0,
            reward_coef: 0.1,
            value_coef: 0.1,
            entropy_coef: 1e-4,
            discount: 0.99,
            updates_per_step: 1,
            eval_every: 10_000,
            eval_episodes: 2,
            model: ModelConfig::default(),
        }
    }
}

/// Anything that stops training, with the offending value named.
#[derive(Debug)]
pub enum TrainError {
    /// A configuration field has an invalid value.
    Config(String),
    /// Unknown task or a task error while running.
    Task(dream_mpc_sim::task::TaskError),
    /// The output folder cannot be used (unwritable, or holds a run and
    /// `--resume` was not given).
    Output {
        path: PathBuf,
        why: String,
    },
    /// `--resume` from a checkpoint that does not fit this configuration.
    Resume(String),
    Io {
        path: PathBuf,
        err: std::io::Error,
    },
    Torch(tch::TchError),
    Export(crate::export::ExportError),
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::Config(m) => write!(f, "invalid configuration: {m}"),
            TrainError::Task(e) => write!(f, "task: {e}"),
            TrainError::Output { path, why } => {
                write!(f, "output folder {}: {why}", path.display())
            }
            TrainError::Resume(m) => write!(f, "cannot resume: {m}"),
            TrainError::Io { path, err } => write!(f, "{}: {err}", path.display()),
            TrainError::Torch(e) => write!(f, "libtorch: {e}"),
            TrainError::Export(e) => write!(f, "export: {e}"),
        }
    }
}

impl std::error::Error for TrainError {}

impl From<tch::TchError> for TrainError {
    fn from(e: tch::TchError) -> Self {
        TrainError::Torch(e)
    }
}
impl From<dream_mpc_sim::task::TaskError> for TrainError {
    fn from(e: dream_mpc_sim::task::TaskError) -> Self {
        TrainError::Task(e)
    }
}
impl From<crate::export::ExportError> for TrainError {
    fn from(e: crate::export::ExportError) -> Self {
        TrainError::Export(e)
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |err| TrainError::Io {
        path: path.to_path_buf(),
        err,
    }
}

impl TrainConfig {
    /// Check every field (model sizes included); the first problem wins.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        for (name, v) in [
            ("action_repeat", self.action_repeat),
            ("seed_hold", self.seed_hold),
            ("batch", self.batch),
            ("horizon", self.horizon),
            ("eval_episodes", self.eval_episodes),
        ] {
            if v == 0 {
                return bad(format!("{name} = 0 must be > 0"));
            }
        }
        if self.steps == 0 || self.eval_every == 0 {
            return bad(format!(
                "steps = {} and eval_every = {} must be > 0",
                self.steps, self.eval_every
            ));
        }
        for (name, v, lo, hi) in [
            ("lr", self.lr, 0.0, 1.0),
            ("enc_lr_scale", self.enc_lr_scale, 0.0, 10.0),
            ("grad_clip", self.grad_clip, 0.0, f64::MAX),
            ("rho", self.rho, 0.0, 1.0),
            ("tau", self.tau, 0.0, 1.0),
            ("discount", self.discount, 0.0, 1.0),
        ] {
            if !(v > lo && v <= hi) {
                return bad(format!("{name} = {v} must be in ({lo}, {hi}]"));
            }
        }
        for (name, v) in [
            ("consistency_coef", self.consistency_coef),
            ("reward_coef", self.reward_coef),
            ("value_coef", self.value_coef),
            ("entropy_coef", self.entropy_coef),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} = {v} must be finite and >= 0"));
            }
        }
        self.model
            .validate()
            .map_err(|e| TrainError::Config(e.to_string()))
    }

    /// Agent steps per episode for a task of `episode_len` control steps.
    fn agent_episode_len(&self, episode_len: usize) -> usize {
        let env = if self.max_episode_steps > 0 {
            self.max_episode_steps.min(episode_len)
        } else {
            episode_len
        };
        env.div_ceil(self.action_repeat)
    }
}

/// Adam with its moments kept as named tensors (saved in checkpoints).
struct Adam {
    params: Vec<(String, Tensor, f64)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i64,
}

impl Adam {
    fn new(params: Vec<(String, Tensor, f64)>) -> Self {
        let m = params.iter().map(|(_, p, _)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p, _)| p.zeros_like()).collect();
        Adam { params, m, v, t: 0 }
    }

    /// Clip the global gradient norm to `clip` (if > 0), then one step.
    fn step(&mut self, clip: f64) {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self.params.iter().map(|(_, p, _)| p.grad()).collect();
            let mut scale = 1.0;
            if clip > 0.0 {
                let sq: f64 = grads
                    .iter()
                    .filter(|g| g.defined())
                    .map(|g| g.pow_tensor_scalar(2).sum(Kind::Float).double_value(&[]))
                    .sum();
                let norm = sq.sqrt();
                if norm > clip {
                    scale = clip / (norm + 1e-6);
                }
            }
            self.t += 1;
            let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
            let bc1 = 1.0 - b1.powi(self.t as i32);
            let bc2 = 1.0 - b2.powi(self.t as i32);
            for (k, ((_, p, lr), g)) in self.params.iter().zip(grads).enumerate() {
                if !g.defined() {
                    continue;
                }
                let g = g * scale;
                let _ = self.m[k].g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = self.v[k]
                    .g_mul_scalar_(b2)
                    .g_add_(&(g.square() * (1.0 - b2)));
                let upd = (&self.m[k] / bc1) / ((&self.v[k] / bc2).sqrt() + eps);
                let mut p = p.shallow_clone();
                let _ = p.g_sub_(&(upd * *lr));
            }
        });
    }

    fn named_state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (k, (name, _, _)) in self.params.iter().enumerate() {
            out.push((format!("{prefix}.m.{name}"), self.m[k].shallow_clone()));
            out.push((format!("{prefix}.v.{name}"), self.v[k].shallow_clone()));
        }
        out
    }

    fn load_state(
        &mut self,
        prefix: &str,
        map: &BTreeMap<String, Tensor>,
        t: i64,
    ) -> Result<(), String> {
        for (k, (name, _, _)) in self.params.iter().enumerate() {
            for (which, dst) in [("m", &mut self.m[k]), ("v", &mut self.v[k])] {
                let key = format!("{prefix}.{which}.{name}");
                let src = map
                    .get(&key)
                    .ok_or_else(|| format!("checkpoint lacks {key}"))?;
                if src.size() != dst.size() {
                    return Err(format!("{key}: shape {:?} vs {:?}", src.size(), dst.size()));
                }
                tch::no_grad(|| dst.copy_(src));
            }
        }
        self.t = t;
        Ok(())
    }
}

fn zero_grads(vs: &nn::VarStore) {
    for mut t in vs.trainable_variables() {
        t.zero_grad();
    }
}

/// Episodes of equal agent length: `obs` has `len + 1` rows per episode.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Replay {
    pub obs_size: usize,
    pub action_size: usize,
    pub len: usize,
    pub obs: Vec<f32>,
    pub actions: Vec<f32>,
    pub rewards: Vec<f32>,
}

impl Replay {
    fn episodes(&self) -> usize {
        self.rewards.len() / self.len.max(1)
    }

    /// Append one episode (`len + 1` observation rows, `len` actions and
    /// rewards).
    pub fn push_episode(&mut self, obs: &[f32], actions: &[f32], rewards: &[f32]) {
        debug_assert_eq!(rewards.len(), self.len);
        self.obs.extend_from_slice(obs);
        self.actions.extend_from_slice(actions);
        self.rewards.extend_from_slice(rewards);
    }

    /// Sample `b` subsequences of `h + 1` observations: tensors
    /// `[h+1, b, obs]`, `[h, b, act]`, `[h, b, 1]`.
    fn sample(&self, b: usize, h: usize, rng: &mut Rng) -> (Tensor, Tensor, Tensor) {
        let (o, a, len) = (self.obs_size, self.action_size, self.len);
        let mut ob = vec![0f32; (h + 1) * b * o];
        let mut ac = vec![0f32; h * b * a];
        let mut rw = vec![0f32; h * b];
        let n_ep = self.episodes();
        for i in 0..b {
            let ep = rng.below(n_ep);
            let s = rng.below(len + 1 - h);
            for t in 0..=h {
                let src = (ep * (len + 1) + s + t) * o;
                ob[(t * b + i) * o..(t * b + i + 1) * o].copy_from_slice(&self.obs[src..src + o]);
            }
            for t in 0..h {
                let src = ep * len + s + t;
                ac[(t * b + i) * a..(t * b + i + 1) * a]
                    .copy_from_slice(&self.actions[src * a..(src + 1) * a]);
                rw[t * b + i] = self.rewards[src];
            }
        }
        let (bi, hi) = (b as i64, h as i64);
        (
            Tensor::from_slice(&ob).view([hi + 1, bi, o as i64]),
            Tensor::from_slice(&ac).view([hi, bi, a as i64]),
            Tensor::from_slice(&rw).view([hi, bi, 1]),
        )
    }

    fn save(&self, path: &Path) -> Result<(), TrainError> {
        let mut bytes =
            Vec::with_capacity(4 * (self.obs.len() + self.actions.len() + self.rewards.len()) + 40);
        for v in [self.obs_size, self.action_size, self.len, self.episodes()] {
            bytes.extend_from_slice(&(v as u64).to_le_bytes());
        }
        for v in self.obs.iter().chain(&self.actions).chain(&self.rewards) {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        std::fs::write(path, bytes).map_err(io(path))
    }

    fn load(path: &Path) -> Result<Replay, TrainError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let bad = || TrainError::Resume(format!("{} is truncated or corrupt", path.display()));
        if bytes.len() < 32 {
            return Err(bad());
        }
        let u = |k: usize| u64::from_le_bytes(bytes[8 * k..8 * k + 8].try_into().unwrap()) as usize;
        let (o, a, len, n) = (u(0), u(1), u(2), u(3));
        let counts = [n * (len + 1) * o, n * len * a, n * len];
        if bytes.len() != 32 + 4 * counts.iter().sum::<usize>() {
            return Err(bad());
        }
        let mut it = bytes[32..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
        let mut take = |k: usize| (&mut it).take(k).collect::<Vec<f32>>();
        Ok(Replay {
            obs_size: o,
            action_size: a,
            len,
            obs: take(counts[0]),
            actions: take(counts[1]),
            rewards: take(counts[2]),
        })
    }
}

/// One row of `metrics.csv`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub env_step: u64,
    pub episode: u64,
    /// Return of the training episode that just ended (sum over its
    /// environment steps); `None` on evaluation rows.
    pub episode_return: Option<f64>,
    /// Mean return of the evaluation episodes (policy mean).
    pub eval_return: Option<f64>,
    pub consistency_loss: f64,
    pub reward_loss: f64,
    pub value_loss: f64,
    pub policy_loss: f64,
    pub updates: u64,
    pub wall_s: f64,
}

const CSV_HEADER: &str = "env_step,episode,episode_return,eval_return,consistency_loss,reward_loss,value_loss,policy_loss,updates,wall_s";

impl Metrics {
    fn csv(&self) -> String {
        let o = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_default();
        format!(
            "{},{},{},{},{:.6},{:.6},{:.6},{:.6},{},{:.1}",
            self.env_step,
            self.episode,
            o(self.episode_return),
            o(self.eval_return),
            self.consistency_loss,
            self.reward_loss,
            self.value_loss,
            self.policy_loss,
            self.updates,
            self.wall_s
        )
    }
}

/// Losses of one update (world model, then policy).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Losses {
    pub consistency: f64,
    pub reward: f64,
    pub value: f64,
    pub policy: f64,
}

/// Counters and metrics saved in `checkpoint/state.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct State {
    config: TrainConfig,
    env_step: u64,
    episode: u64,
    updates: u64,
    adam_wm_t: i64,
    adam_pi_t: i64,
    q_scale: f64,
    next_eval: u64,
    wall_s: f64,
    metrics: Vec<Metrics>,
}

/// The learner: model, target Q, optimizers and replay.
pub struct Agent {
    pub cfg: TrainConfig,
    pub vs: nn::VarStore,
    pub model: WorldModel,
    target_vs: nn::VarStore,
    target: WorldModel,
    opt_wm: Adam,
    opt_pi: Adam,
    q_scale: f64,
    pub replay: Replay,
    pub updates: u64,
}

fn seeded(seed: u64, stream: u64, k: u64) -> Rng {
    Rng::new(
        seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

const STREAM_ACT: u64 = 1;
const STREAM_UPDATE: u64 = 2;
const STREAM_EPISODE: u64 = 3;
const STREAM_EVAL: u64 = 4;

impl Agent {
    /// Fresh agent for a task with these sizes.
    pub fn new(cfg: &TrainConfig, obs_size: usize, action_size: usize, episode_len: usize) -> Self {
        tch::manual_seed(cfg.seed as i64);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = WorldModel::new(&vs.root(), &cfg.model, obs_size, action_size);
        let mut target_vs = nn::VarStore::new(Device::Cpu);
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
            opt_wm: Adam::new(wm),
            opt_pi: Adam::new(pi),
            q_scale: 1.0,
            replay: Replay {
                obs_size,
                action_size,
                len: cfg.agent_episode_len(episode_len),
                ..Default::default()
            },
            updates: 0,
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
            let o = Tensor::from_slice(obs).view([1, obs.len() as i64]);
            let z = self.model.encode(&o);
            let a = if eval {
                self.model.pi(&z).0.tanh()
            } else {
                self.sample_pi(&z).0
            };
            to_vec(&a)
        })
    }

    /// One gradient update on a batch drawn with update counter `k`.
    pub fn update(&mut self) -> Losses {
        let k = self.updates;
        let c = self.cfg.clone();
        let mut rng = seeded(c.seed, STREAM_UPDATE, k);
        tch::manual_seed((c.seed.wrapping_add(k.wrapping_mul(7919))) as i64 & i64::MAX);
        let (h, b) = (c.horizon, c.batch as i64);
        let (obs, act, rew) = self.replay.sample(c.batch, h, &mut rng);
        let o = self.model.obs_size as i64;
        let nq = self.model.q.len();

        // Targets without gradient: next latents and TD targets.
        let (next_z, td) = tch::no_grad(|| {
            let next_z = self
                .model
                .encode(&obs.narrow(0, 1, h as i64).reshape([-1, o]))
                .view([h as i64, b, -1]);
            let flat = next_z.reshape([h as i64 * b, -1]);
            let (a_next, _) = self.sample_pi(&flat);
            let q = self.target.q_all(&flat, &a_next, false);
            // Two distinct random heads (the same one when n_q = 1).
            let i = rng.below(nq);
            let j = if nq > 1 {
                (i + 1 + rng.below(nq - 1)) % nq
            } else {
                i
            };
            let qmin = q.narrow(1, i as i64, 1).minimum(&q.narrow(1, j as i64, 1));
            let td = &rew + qmin.view([h as i64, b, 1]) * c.discount;
            (next_z, td)
        });

        // World model: unroll the latent dynamics.
        zero_grads(&self.vs);
        let mut z = self.model.encode(&obs.get(0));
        let mut zs = vec![z.shallow_clone()];
        let mut cons = Tensor::zeros([], (Kind::Float, Device::Cpu));
        let mut rl = Tensor::zeros([], (Kind::Float, Device::Cpu));
        let mut vl = Tensor::zeros([], (Kind::Float, Device::Cpu));
        for t in 0..h {
            let w = c.rho.powi(t as i32);
            let a_t = act.get(t as i64);
            let r_hat = self.model.reward(&z, &a_t);
            rl += (r_hat - rew.get(t as i64)).square().mean(Kind::Float) * w;
            let q = self.model.q_all(&z, &a_t, true);
            vl += (q - td.get(t as i64)).square().mean(Kind::Float) * (w * nq as f64);
            z = self.model.next(&z, &a_t);
            cons += (&z - next_z.get(t as i64)).square().mean(Kind::Float) * w;
            zs.push(z.shallow_clone());
        }
        let hf = h as f64;
        let total = (&cons * c.consistency_coef + &rl * c.reward_coef + &vl * c.value_coef) / hf;
        total.backward();
        self.opt_wm.step(c.grad_clip);

        // Policy on detached latents.
        zero_grads(&self.vs);
        let mut pl = Tensor::zeros([], (Kind::Float, Device::Cpu));
        let mut q_range = 0.0;
        for (t, z) in zs.iter().enumerate().take(h + 1) {
            let z = z.detach();
            let (a, log_prob) = self.sample_pi(&z);
            let q = self
                .model
                .q_all(&z, &a, false)
                .mean_dim([1i64].as_slice(), true, Kind::Float);
            if t == 0 {
                q_range = (q.max() - q.min()).double_value(&[]);
            }
            let w = c.rho.powi(t as i32);
            pl += ((log_prob * c.entropy_coef) - q / self.q_scale).mean(Kind::Float) * w;
        }
        let pl = pl / (hf + 1.0);
        pl.backward();
        self.opt_pi.step(c.grad_clip);
        zero_grads(&self.vs);
        self.q_scale = (0.99 * self.q_scale + 0.01 * q_range).max(1.0);

        // Target Q heads follow slowly.
        tch::no_grad(|| {
            let src = self.vs.variables();
            for (name, mut dst) in self.target_vs.variables() {
                if name.starts_with('q') {
                    let _ = dst
                        .g_mul_scalar_(1.0 - c.tau)
                        .g_add_(&(&src[&name] * c.tau));
                }
            }
        });
        self.updates += 1;
        Losses {
            consistency: cons.double_value(&[]) / hf,
            reward: rl.double_value(&[]) / hf,
            value: vl.double_value(&[]) / hf,
            policy: pl.double_value(&[]),
        }
    }

    fn save(&self, dir: &Path, state: &State) -> Result<(), TrainError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        self.vs.save(dir.join("model.ot"))?;
        self.target_vs.save(dir.join("target.ot"))?;
        let mut adam = self.opt_wm.named_state("wm");
        adam.extend(self.opt_pi.named_state("pi"));
        Tensor::save_multi(&adam, dir.join("adam.ot"))?;
        self.replay.save(&dir.join("replay.bin"))?;
        let p = dir.join("state.json");
        std::fs::write(&p, serde_json::to_vec_pretty(state).expect("state json")).map_err(io(&p))
    }

    fn restore(&mut self, dir: &Path, state: &State) -> Result<(), TrainError> {
        let r = |e: tch::TchError| TrainError::Resume(e.to_string());
        self.vs.load(dir.join("model.ot")).map_err(r)?;
        self.target_vs.load(dir.join("target.ot")).map_err(r)?;
        let map: BTreeMap<String, Tensor> = Tensor::load_multi(dir.join("adam.ot"))
            .map_err(r)?
            .into_iter()
            .collect();
        self.opt_wm
            .load_state("wm", &map, state.adam_wm_t)
            .map_err(TrainError::Resume)?;
        self.opt_pi
            .load_state("pi", &map, state.adam_pi_t)
            .map_err(TrainError::Resume)?;
        let replay = Replay::load(&dir.join("replay.bin"))?;
        if (replay.obs_size, replay.action_size, replay.len)
            != (
                self.replay.obs_size,
                self.replay.action_size,
                self.replay.len,
            )
        {
            return Err(TrainError::Resume(format!(
                "replay has obs {} action {} episode length {}, this run needs {} {} {}",
                replay.obs_size,
                replay.action_size,
                replay.len,
                self.replay.obs_size,
                self.replay.action_size,
                self.replay.len
            )));
        }
        self.replay = replay;
        self.q_scale = state.q_scale;
        self.updates = state.updates;
        Ok(())
    }
}

/// Fields that must agree between a checkpoint and the run resuming it.
fn incompatible(old: &TrainConfig, new: &TrainConfig) -> Option<String> {
    if old.task != new.task {
        return Some(format!("task '{}' vs '{}'", old.task, new.task));
    }
    if old.model != new.model {
        return Some(format!("model {:?} vs {:?}", old.model, new.model));
    }
    if old.action_repeat != new.action_repeat || old.max_episode_steps != new.max_episode_steps {
        return Some(format!(
            "episode layout (action_repeat {}, max_episode_steps {}) vs ({}, {})",
            old.action_repeat, old.max_episode_steps, new.action_repeat, new.max_episode_steps
        ));
    }
    if old.seed != new.seed {
        return Some(format!("seed {} vs {}", old.seed, new.seed));
    }
    None
}

/// Options of one run besides the configuration.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub out: PathBuf,
    pub resume: bool,
    pub progress: bool,
    /// Stop after this many environment steps of THIS invocation (for
    /// tests of resume); `None` runs to `steps`.
    pub stop_after: Option<u64>,
}

/// Result of a run.
#[derive(Debug)]
pub struct RunSummary {
    pub env_steps: u64,
    pub updates: u64,
    pub metrics: Vec<Metrics>,
    /// Losses of every update of this invocation, in order.
    pub losses: Vec<Losses>,
    pub bundle: PathBuf,
    pub wall_s: f64,
}

fn run_episode(
    task: &mut dyn Task,
    agent: &Agent,
    cfg: &TrainConfig,
    seed: u64,
    mode: EpisodeMode,
    k0: u64,
) -> Result<Episode, TrainError> {
    let spec = task.spec().clone();
    let len = agent.replay.len;
    let mut obs64 = vec![0f64; spec.obs_size];
    task.reset(seed, &mut obs64)?;
    let mut obs: Vec<f32> = obs64.iter().map(|&v| v as f32).collect();
    let mut acts = Vec::with_capacity(len * spec.action_size);
    let mut rews = Vec::with_capacity(len);
    let mut ret = 0.0;
    let mut rng = seeded(cfg.seed, STREAM_EPISODE, seed);
    let env_cap = if cfg.max_episode_steps > 0 {
        cfg.max_episode_steps.min(spec.episode_len)
    } else {
        spec.episode_len
    };
    let mut env_t = 0;
    let mut a64 = vec![0f64; spec.action_size];
    let mut held = vec![0f32; spec.action_size];
    for i in 0..len {
        let cur = &obs[obs.len() - spec.obs_size..];
        let a: Vec<f32> = match mode {
            EpisodeMode::Random if cfg.seed_hold <= 1 => (0..spec.action_size)
                .map(|_| rng.uniform_in(-1.0, 1.0) as f32)
                .collect(),
            EpisodeMode::Random => {
                if i % cfg.seed_hold == 0 {
                    for h in held.iter_mut() {
                        *h = if rng.uniform_in(-1.0, 1.0) >= 0.0 {
                            1.0
                        } else {
                            -1.0
                        };
                    }
                }
                held.clone()
            }
            EpisodeMode::Policy => agent.act(cur, false, k0 + i as u64),
            EpisodeMode::Eval => agent.act(cur, true, k0 + i as u64),
        };
        for (d, s) in a64.iter_mut().zip(&a) {
            *d = *s as f64;
        }
        let mut r = 0.0;
        for _ in 0..cfg.action_repeat {
            if env_t >= env_cap {
                break;
            }
            let st = task.step(&a64, &mut obs64)?;
            r += st.reward;
            env_t += 1;
        }
        ret += r;
        acts.extend_from_slice(&a);
        rews.push(r as f32);
        obs.extend(obs64.iter().map(|&v| v as f32));
    }
    Ok((obs, acts, rews, ret))
}

/// Observations (`len + 1` rows), actions, rewards and the return of one
/// episode.
type Episode = (Vec<f32>, Vec<f32>, Vec<f32>, f64);

#[derive(Clone, Copy, Debug, PartialEq)]
enum EpisodeMode {
    Random,
    Policy,
    Eval,
}

/// Check the output folder before anything runs: creatable, writable, and
/// not holding a run unless resuming. Nothing is overwritten on error.
fn prepare_output(opts: &RunOptions) -> Result<(), TrainError> {
    let out = &opts.out;
    let ckpt = out.join("checkpoint").join("state.json");
    if ckpt.exists() && !opts.resume {
        return Err(TrainError::Output {
            path: out.clone(),
            why: "holds a training run (checkpoint/state.json); pass --resume or choose another --out"
                .into(),
        });
    }
    if opts.resume && !ckpt.exists() {
        return Err(TrainError::Resume(format!(
            "no checkpoint at {}",
            ckpt.display()
        )));
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::Output {
        path: out.clone(),
        why: format!("cannot create: {e}"),
    })?;
    let probe = out.join(".write-probe");
    std::fs::write(&probe, b"ok").map_err(|e| TrainError::Output {
        path: out.clone(),
        why: format!("not writable: {e}"),
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn export(
    agent: &Agent,
    task: &str,
    out: &Path,
    env_step: u64,
    cfg: &TrainConfig,
) -> Result<PathBuf, TrainError> {
    let (o, a) = (agent.model.obs_size, agent.model.action_size);
    let mut meta = ExportMeta::plain(task, o, a);
    meta.discount = cfg.discount as f32;
    meta.action_repeat = cfg.action_repeat;
    meta.planner = default_planner();
    meta.provenance = Provenance {
        producer: format!("dream-mpc-train {}", env!("CARGO_PKG_VERSION")),
        training_steps: env_step,
        seed: cfg.seed,
        revision: None,
        notes: Some(format!(
            "TD-MPC2-style, latent {} hidden {} n_q {}, action_repeat {}",
            cfg.model.latent, cfg.model.hidden, cfg.model.n_q, cfg.action_repeat
        )),
    };
    let dir = out.join("bundle");
    export_bundle(&agent.model, &meta, &dir, cfg.seed)?;
    Ok(dir)
}

/// Train online on `task` (made by the caller from `cfg.task`).
pub fn train(
    cfg: &TrainConfig,
    mut task: Box<dyn Task>,
    opts: &RunOptions,
) -> Result<RunSummary, TrainError> {
    cfg.validate()?;
    let spec = task.spec().clone();
    if spec.name != cfg.task {
        return Err(TrainError::Config(format!(
            "task '{}' was requested but the task given is '{}'",
            cfg.task, spec.name
        )));
    }
    let agent_len = cfg.agent_episode_len(spec.episode_len);
    if cfg.horizon >= agent_len {
        return Err(TrainError::Config(format!(
            "horizon = {} must be below the episode's {agent_len} agent steps",
            cfg.horizon
        )));
    }
    prepare_output(opts)?;
    let mut agent = Agent::new(cfg, spec.obs_size, spec.action_size, spec.episode_len);
    let ckdir = opts.out.join("checkpoint");
    let mut state = State {
        config: cfg.clone(),
        env_step: 0,
        episode: 0,
        updates: 0,
        adam_wm_t: 0,
        adam_pi_t: 0,
        q_scale: 1.0,
        next_eval: cfg.eval_every,
        wall_s: 0.0,
        metrics: Vec::new(),
    };
    if opts.resume {
        let p = ckdir.join("state.json");
        let old: State = serde_json::from_slice(&std::fs::read(&p).map_err(io(&p))?)
            .map_err(|e| TrainError::Resume(format!("{}: {e}", p.display())))?;
        if let Some(why) = incompatible(&old.config, cfg) {
            return Err(TrainError::Resume(format!(
                "checkpoint was made with {why}"
            )));
        }
        agent.restore(&ckdir, &old)?;
        state = State {
            config: cfg.clone(),
            ..old
        };
    }
    let csv_path = opts.out.join("metrics.csv");
    let t0 = std::time::Instant::now();
    let wall0 = state.wall_s;
    let env_per_episode = (agent.replay.len * cfg.action_repeat).min(if cfg.max_episode_steps > 0 {
        cfg.max_episode_steps.min(spec.episode_len)
    } else {
        spec.episode_len
    }) as u64;
    let bar = if opts.progress {
        let b = indicatif::ProgressBar::new(cfg.steps);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} env steps {per_sec} eta {eta} {msg}",
            )
            .expect("template"),
        );
        b.set_position(state.env_step);
        Some(b)
    } else {
        None
    };
    let start_step = state.env_step;
    let mut losses_all = Vec::new();
    let mut last = Losses::default();
    let mut bundle = opts.out.join("bundle");
    while state.env_step < cfg.steps {
        if let Some(n) = opts.stop_after {
            if state.env_step - start_step >= n {
                break;
            }
        }
        let ep_seed = seeded(cfg.seed, STREAM_EPISODE, state.episode).next_u64();
        let mode = if state.env_step < cfg.seed_steps {
            EpisodeMode::Random
        } else {
            EpisodeMode::Policy
        };
        let k0 = state.episode * agent.replay.len as u64;
        let (obs, acts, rews, ret) = run_episode(task.as_mut(), &agent, cfg, ep_seed, mode, k0)?;
        agent.replay.push_episode(&obs, &acts, &rews);
        let before = state.env_step;
        state.env_step += env_per_episode;
        state.episode += 1;
        // Updates owed for this episode's agent steps once past the seed
        // phase; the first time, one update per seed agent step as well.
        if state.env_step >= cfg.seed_steps {
            let agent_steps = agent.replay.len as u64;
            let mut n = agent_steps * cfg.updates_per_step as u64;
            if before < cfg.seed_steps {
                n = (state.env_step / cfg.action_repeat as u64) * cfg.updates_per_step as u64;
            }
            for _ in 0..n {
                last = agent.update();
                losses_all.push(last);
            }
        }
        let wall = wall0 + t0.elapsed().as_secs_f64();
        state.metrics.push(Metrics {
            env_step: state.env_step,
            episode: state.episode,
            episode_return: Some(ret),
            eval_return: None,
            consistency_loss: last.consistency,
            reward_loss: last.reward,
            value_loss: last.value,
            policy_loss: last.policy,
            updates: agent.updates,
            wall_s: wall,
        });
        if let Some(b) = &bar {
            b.set_position(state.env_step.min(cfg.steps));
            b.set_message(format!(
                "ret {ret:.1} cons {:.4} rew {:.4} val {:.3} pi {:.3}",
                last.consistency, last.reward, last.value, last.policy
            ));
        }
        let done = state.env_step >= cfg.steps;
        if state.env_step >= state.next_eval || done {
            let mut total = 0.0;
            for e in 0..cfg.eval_episodes {
                let s = seeded(cfg.seed, STREAM_EVAL, state.env_step * 1000 + e as u64).next_u64();
                let (_, _, _, r) =
                    run_episode(task.as_mut(), &agent, cfg, s, EpisodeMode::Eval, 0)?;
                total += r;
            }
            let eval = total / cfg.eval_episodes as f64;
            state.metrics.push(Metrics {
                episode_return: None,
                eval_return: Some(eval),
                ..state.metrics.last().cloned().expect("row")
            });
            while state.next_eval <= state.env_step {
                state.next_eval += cfg.eval_every;
            }
            if let Some(b) = &bar {
                b.println(format!(
                    "env step {}: eval return {eval:.1}",
                    state.env_step
                ));
            }
            bundle = export(&agent, &cfg.task, &opts.out, state.env_step, cfg)?;
            state.updates = agent.updates;
            state.adam_wm_t = agent.opt_wm.t;
            state.adam_pi_t = agent.opt_pi.t;
            state.q_scale = agent.q_scale;
            state.wall_s = wall0 + t0.elapsed().as_secs_f64();
            agent.save(&ckdir, &state)?;
            write_csv(&csv_path, &state.metrics)?;
            let _ = crate::plot::learning_curve(
                &opts.out.join("learning_curve.png"),
                &cfg.task,
                &state.metrics,
            );
        }
    }
    if let Some(b) = &bar {
        b.finish();
    }
    // A stop before `steps` (tests) still leaves a resumable checkpoint.
    state.updates = agent.updates;
    state.adam_wm_t = agent.opt_wm.t;
    state.adam_pi_t = agent.opt_pi.t;
    state.q_scale = agent.q_scale;
    state.wall_s = wall0 + t0.elapsed().as_secs_f64();
    agent.save(&ckdir, &state)?;
    write_csv(&csv_path, &state.metrics)?;
    if !bundle.join("manifest.json").exists() {
        bundle = export(&agent, &cfg.task, &opts.out, state.env_step, cfg)?;
    }
    Ok(RunSummary {
        env_steps: state.env_step,
        updates: agent.updates,
        metrics: state.metrics,
        losses: losses_all,
        bundle,
        wall_s: state.wall_s,
    })
}

fn write_csv(path: &Path, rows: &[Metrics]) -> Result<(), TrainError> {
    let mut f = std::fs::File::create(path).map_err(io(path))?;
    writeln!(f, "{CSV_HEADER}").map_err(io(path))?;
    for r in rows {
        writeln!(f, "{}", r.csv()).map_err(io(path))?;
    }
    Ok(())
}
