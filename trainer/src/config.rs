//! Training configuration ([`TrainConfig`], read from JSON with unknown keys
//! refused), its validation, the training error type and the compute
//! device choice (`--device cpu|cuda|auto`).
//!
//! Step counts (`steps`, `seed_steps`, `eval_every`, `max_episode_steps`)
//! are **agent steps**, TD-MPC2's unit: one agent step is one action, held
//! for `action_repeat` control (environment) steps. Configuration files
//! carry `"version": 2`; files of version 1 (or without a version), whose
//! step keys counted control steps, are refused with the conversion to do
//! (see [`TrainConfig::from_json`]).

use crate::model::ModelConfig;
use dream_mpc::planner::PlannerKind;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::Device;

/// Who acts in training episodes after the seed phase (config `collect`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collect {
    /// The paper's planner through `dream_mpc::agent` (default).
    #[default]
    DreamMpc,
    /// TD-MPC2's MPPI through `dream_mpc::agent`.
    Mppi,
    /// A sample of the policy prior (libtorch, no planner).
    Policy,
}

impl Collect {
    /// The controller's planner kind, `None` for the policy.
    pub fn planner(self) -> Option<PlannerKind> {
        match self {
            Collect::DreamMpc => Some(PlannerKind::DreamMpc),
            Collect::Mppi => Some(PlannerKind::Mppi),
            Collect::Policy => None,
        }
    }
}

/// Training configuration; every field has a documented default.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Configuration format version, [`CONFIG_VERSION`]; required in files.
    pub version: u32,
    /// Task name (see [`crate::tasks::make`]).
    pub task: String,
    /// Seed of everything (weights, exploration, sampling, episodes). 0.
    pub seed: u64,
    /// Total agent steps (TD-MPC2's unit: `action_repeat` control steps
    /// each). 100000.
    pub steps: u64,
    /// Agent steps with random seed actions before learning; at its end
    /// one update per seed agent step runs in a burst. `null` (the
    /// default) is TD-MPC2's schedule: max(1000, 5 x episode length in
    /// agent steps) (DMC at repeat 2: 2500).
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
    /// Truncate episodes to this many agent steps (0 = the task's own
    /// length). 0.
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
    /// Evaluate (and export) every this many agent steps. 5000.
    pub eval_every: u64,
    /// Episodes per evaluation, for the policy mean and for the planner
    /// each (pendulum returns are near 0 or near 850 per episode: 2
    /// episodes swing the mean by about 400). 5.
    pub eval_episodes: usize,
    /// Write a checkpoint at the first episode end after this many
    /// minutes of wall clock since the last one (also at every
    /// evaluation, at the end, and on SIGINT/SIGTERM). 10.
    pub checkpoint_minutes: f64,
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
            version: CONFIG_VERSION,
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
            eval_every: 5_000,
            eval_episodes: 5,
            checkpoint_minutes: 10.0,
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

/// The configuration format this trainer reads: 2, step keys in agent
/// steps. (1, or no `version` key: step keys in control steps.)
pub const CONFIG_VERSION: u32 = 2;

/// Why a configuration (or a checkpoint's copy of one) written before step
/// keys counted agent steps is refused, with the conversion.
pub fn old_unit_error(what: &str, found: Option<u64>) -> String {
    let v = match found {
        Some(v) => format!("\"version\": {v}"),
        None => "no \"version\" key".to_string(),
    };
    format!(
        "{what} has {v}, so its step keys count control (environment) steps; this trainer \
         reads version {CONFIG_VERSION}, where steps, seed_steps, eval_every and \
         max_episode_steps count agent steps (TD-MPC2's unit: one agent step is action_repeat \
         control steps). Convert: divide each of those four keys by action_repeat (2 on DMC: \
         steps 200000 -> 100000; a key left to its default now means agent steps, the \
         defaults are steps 100000, eval_every 5000, seed_steps max(1000, 5 x episode)) and \
         add \"version\": {CONFIG_VERSION}"
    )
}

impl TrainConfig {
    /// Parse a JSON configuration: missing fields take their defaults, an
    /// unknown field or an unknown `collect` value is an error naming it
    /// and the accepted ones. The file must say `"version": 2`: older files
    /// counted steps in control steps and would silently train half as
    /// long, so they are refused with the conversion to do.
    pub fn from_json(bytes: &[u8]) -> Result<TrainConfig, TrainError> {
        let raw: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| TrainError::Config(e.to_string()))?;
        check_version(&raw, "the configuration")?;
        serde_json::from_value(raw).map_err(|e| TrainError::Config(e.to_string()))
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
        if self.version != CONFIG_VERSION {
            return bad(format!(
                "version = {} must be {CONFIG_VERSION}",
                self.version
            ));
        }
        if !(self.checkpoint_minutes.is_finite() && self.checkpoint_minutes > 0.0) {
            return bad(format!(
                "checkpoint_minutes = {} must be > 0",
                self.checkpoint_minutes
            ));
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

    /// Seed agent steps for a task of `episode_len` control steps (see
    /// `seed_steps`).
    pub fn seed_agent_steps(&self, episode_len: usize) -> u64 {
        self.seed_steps.unwrap_or_else(|| {
            let agent = self.agent_episode_len(episode_len) as u64;
            1000.max(5 * agent)
        })
    }

    /// Agent steps per episode for a task of `episode_len` control steps:
    /// the task's episode in agent steps, cut at `max_episode_steps`.
    pub fn agent_episode_len(&self, episode_len: usize) -> usize {
        let own = episode_len.div_ceil(self.action_repeat);
        if self.max_episode_steps > 0 {
            self.max_episode_steps.min(own)
        } else {
            own
        }
    }

    /// Control (environment) steps per episode: the agent steps of
    /// [`TrainConfig::agent_episode_len`], each `action_repeat` control
    /// steps, never past the task's own end.
    pub fn env_episode_len(&self, episode_len: usize) -> usize {
        (self.agent_episode_len(episode_len) * self.action_repeat).min(episode_len)
    }
}

/// Refuse a JSON object (a configuration, or `config` of a checkpoint's
/// state) without `"version": CONFIG_VERSION`, naming `what`.
pub(crate) fn check_version(raw: &serde_json::Value, what: &str) -> Result<(), TrainError> {
    let v = raw.get("version");
    match v.and_then(|v| v.as_u64()) {
        Some(v) if v == CONFIG_VERSION as u64 => Ok(()),
        Some(v) if v < CONFIG_VERSION as u64 => {
            Err(TrainError::Config(old_unit_error(what, Some(v))))
        }
        None if v.is_none() => Err(TrainError::Config(old_unit_error(what, None))),
        _ => Err(TrainError::Config(format!(
            "{what}: \"version\": {} is not one this trainer reads (it reads {CONFIG_VERSION})",
            v.map(|v| v.to_string()).unwrap_or_default()
        ))),
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
