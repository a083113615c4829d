//! Training configuration ([`TrainConfig`], read from JSON with unknown keys
//! refused), its validation, the training error type and the compute
//! device choice (`--device cpu|cuda|auto`).

use crate::collect::Collect;
use crate::model::ModelConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::Device;

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
    /// Environment steps with uniform random actions before learning; at
    /// its end one update per seed agent step runs in a burst. `null`
    /// (the default) is TD-MPC2's schedule: max(1000, 5 x episode length)
    /// agent steps, times `action_repeat` (DMC at repeat 2: 5000).
    pub seed_steps: Option<u64>,
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
    /// Behaviour-cloning weight of the policy loss: `bc_coef` x the
    /// negative log-likelihood of the logged action `a_t` under the
    /// policy (mean and spread; rho-weighted like the rest), next to
    /// TD-MPC2's `-Q / scale`. For offline training (the TD3+BC remedy: a
    /// policy that only maximizes Q drifts to actions the logs never tried,
    /// where Q is wrong, and its spread, which Dream-MPC samples its
    /// candidates from, is never shaped); 0 (TD-MPC2) online. 0.
    pub bc_coef: f64,
    /// With `bc_coef`: weight each logged action's term by
    /// `min(20, exp(A / (temp x scale)))`, A = Q(z, a_logged) - Q(z, a ~ pi)
    /// on the two heads of the policy loss (advantage-weighted regression),
    /// so logs of mixed quality pull towards their better actions; `null`:
    /// every logged action alike. Fused update path only. `null`.
    pub bc_advantage_temp: Option<f64>,
    /// Gradient updates per agent step after the seed phase. 1.
    pub updates_per_step: usize,
    /// Evaluate (and export, and checkpoint) every this many environment
    /// steps. 10000.
    pub eval_every: u64,
    /// Episodes per evaluation. 2.
    pub eval_episodes: usize,
    /// Who acts in training episodes after the seed phase: `dream_mpc`
    /// (default), `mppi` (both through the controller's `dream_mpc::agent`
    /// on a bundle exported from the current weights before every
    /// episode) or `policy` (a policy sample in libtorch).
    pub collect: Collect,
    /// Offline training (`train --offline`): the registry task whose
    /// reward function computes each logged step's reward from the action
    /// and the next observation (`Task::reward_from_observation`), for
    /// logs without a reward topic, e.g. a real robot's. When set it
    /// replaces recorded rewards too. `null`: the logs' own rewards.
    pub reward_from: Option<String>,
    /// Model sizes.
    pub model: ModelConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            task: String::new(),
            seed: 0,
            steps: 100_000,
            seed_steps: None,
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
            bc_coef: 0.0,
            bc_advantage_temp: None,
            discount: 0.99,
            updates_per_step: 1,
            eval_every: 10_000,
            eval_episodes: 2,
            collect: Collect::default(),
            reward_from: None,
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
    /// The controller's agent refused a bundle or an observation.
    Agent(String),
    /// Robot logs that cannot be trained on (offline training), naming
    /// the file and what is wrong.
    Logs(String),
    /// `--init`: starting weights that cannot be used, naming the folder.
    Init(String),
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
            TrainError::Agent(e) => write!(f, "planner agent: {e}"),
            TrainError::Logs(e) => write!(f, "robot logs: {e}"),
            TrainError::Init(e) => write!(f, "--init: {e}"),
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

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |err| TrainError::Io {
        path: path.to_path_buf(),
        err,
    }
}

impl TrainConfig {
    /// Parse a JSON configuration: missing fields take their defaults, an
    /// unknown field or an unknown `collect` value is an error naming it
    /// and the accepted ones.
    pub fn from_json(bytes: &[u8]) -> Result<TrainConfig, TrainError> {
        serde_json::from_slice(bytes).map_err(|e| TrainError::Config(e.to_string()))
    }

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
            ("bc_coef", self.bc_coef),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} = {v} must be finite and >= 0"));
            }
        }
        if let Some(t) = self.bc_advantage_temp {
            if !(t.is_finite() && t > 0.0) {
                return bad(format!("bc_advantage_temp = {t} must be > 0"));
            }
        }
        self.model
            .validate()
            .map_err(|e| TrainError::Config(e.to_string()))
    }

    /// Seed environment steps for a task of `episode_len` control steps
    /// (see `seed_steps`).
    pub fn seed_env_steps(&self, episode_len: usize) -> u64 {
        self.seed_steps.unwrap_or_else(|| {
            let agent = self.agent_episode_len(episode_len) as u64;
            1000.max(5 * agent) * self.action_repeat as u64
        })
    }

    /// Agent steps per episode for a task of `episode_len` control steps.
    pub fn agent_episode_len(&self, episode_len: usize) -> usize {
        let env = if self.max_episode_steps > 0 {
            self.max_episode_steps.min(episode_len)
        } else {
            episode_len
        };
        env.div_ceil(self.action_repeat)
    }
}

/// `--device`: where the learner (model, optimizer state, replay sampling)
/// lives. Acting and export references stay on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    /// CUDA when a device is found, else the CPU (and says so).
    Auto,
}

impl std::str::FromStr for DeviceChoice {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, TrainError> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            "auto" => Ok(DeviceChoice::Auto),
            other => Err(TrainError::Config(format!(
                "--device '{other}': expected cpu, cuda or auto"
            ))),
        }
    }
}

impl DeviceChoice {
    /// The libtorch device, and a note to print when `auto` fell back to
    /// the CPU. `cuda` without a usable device is an error naming why.
    pub fn resolve(self) -> Result<(Device, Option<String>), TrainError> {
        let found = tch::Cuda::is_available();
        match (self, found) {
            (DeviceChoice::Cpu, _) => Ok((Device::Cpu, None)),
            (DeviceChoice::Cuda | DeviceChoice::Auto, true) => Ok((Device::Cuda(0), None)),
            (DeviceChoice::Cuda, false) => Err(TrainError::Config(format!(
                "--device cuda: no CUDA device was found (libtorch sees {} CUDA devices; \
                 check the driver with nvidia-smi and that the libtorch on the library path \
                 is a CUDA build); use --device cpu or auto",
                tch::Cuda::device_count()
            ))),
            (DeviceChoice::Auto, false) => Ok((
                Device::Cpu,
                Some("--device auto: no CUDA device was found, training on the CPU".into()),
            )),
        }
    }
}
