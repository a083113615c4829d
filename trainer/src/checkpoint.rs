//! Checkpoints: one folder written at episode ends (model, target Q, Adam
//! moments, replay buffer, counters and metrics) by [`save`], read back by
//! [`restore`], which refuses a checkpoint of another task, model shape,
//! episode layout or seed with an error naming the difference.
//!
//! A save is atomic: everything is written into `checkpoint.tmp/`, the
//! previous `checkpoint/` is renamed `checkpoint.old/`, the new folder
//! takes its name, and the old one is removed. A process killed at any
//! point leaves either `checkpoint/` whole or (between the two renames)
//! `checkpoint.old/` whole, which [`restore`] then reads.

use crate::config::{io, TrainConfig, TrainError, CONFIG_VERSION};
use crate::learner::Learner;
use crate::metrics::Metrics;
use crate::replay::Replay;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use tch::Tensor;

/// Counters and metrics saved in `checkpoint/state.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct State {
    /// [`CONFIG_VERSION`]: counters in agent steps. Older states (no
    /// `version`) counted control steps and are refused.
    pub version: u32,
    pub config: TrainConfig,
    /// Agent steps taken (TD-MPC2's unit).
    pub agent_step: u64,
    /// Control (environment) steps taken: `agent_step` x `action_repeat`,
    /// less where an episode's last action was cut by the task's end.
    pub env_step: u64,
    pub episode: u64,
    /// Updates owed for steps already taken: an update burst cut by a
    /// stop signal is finished first on resume.
    #[serde(default)]
    pub owed_updates: u64,
    pub updates: u64,
    pub adam_wm_t: i64,
    pub adam_pi_t: i64,
    pub q_scale: f64,
    pub next_eval: u64,
    pub wall_s: f64,
    pub metrics: Vec<Metrics>,
}

impl State {
    /// Counters of a fresh run.
    pub fn fresh(cfg: &TrainConfig) -> State {
        State {
            version: CONFIG_VERSION,
            config: cfg.clone(),
            agent_step: 0,
            env_step: 0,
            episode: 0,
            owed_updates: 0,
            updates: 0,
            adam_wm_t: 0,
            adam_pi_t: 0,
            q_scale: 1.0,
            next_eval: cfg.eval_every,
            wall_s: 0.0,
            metrics: Vec::new(),
        }
    }
}

/// `dir` with `suffix` appended to its last component.
fn sibling(dir: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

/// Write the agent and `state` (its learner counters refreshed from the
/// agent first) into `dir`, atomically (see the module doc).
pub fn save(agent: &Learner, dir: &Path, state: &mut State) -> Result<(), TrainError> {
    state.updates = agent.updates;
    state.adam_wm_t = agent.opt_wm.t;
    state.adam_pi_t = agent.opt_pi.t;
    state.q_scale = agent.q_scale.double_value(&[]);
    let tmp = sibling(dir, ".tmp");
    let old = sibling(dir, ".old");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    agent.vs.save(tmp.join("model.ot"))?;
    agent.target_vs.save(tmp.join("target.ot"))?;
    let mut adam = agent.opt_wm.named_state("wm");
    adam.extend(agent.opt_pi.named_state("pi"));
    Tensor::save_multi(&adam, tmp.join("adam.ot"))?;
    agent.replay.save(&tmp.join("replay.bin"))?;
    let p = tmp.join("state.json");
    let mut f = std::fs::File::create(&p).map_err(io(&p))?;
    f.write_all(&serde_json::to_vec_pretty(state).expect("state json"))
        .and_then(|_| f.sync_all())
        .map_err(io(&p))?;
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(io(&old))?;
        }
        std::fs::rename(dir, &old).map_err(io(dir))?;
    }
    std::fs::rename(&tmp, dir).map_err(io(&tmp))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// The folder a checkpoint is read from: `dir`, or `dir.old` when a save
/// was cut between its two renames. `None`: no checkpoint.
pub fn existing(dir: &Path) -> Option<std::path::PathBuf> {
    let old = sibling(dir, ".old");
    [dir.to_path_buf(), old]
        .into_iter()
        .find(|d| d.join("state.json").is_file())
}

/// Read the checkpoint in `dir` into `agent` (built for `cfg`) and return
/// its state with `cfg` as the configuration. A checkpoint made with
/// another task, model shape, episode layout or seed is refused before
/// anything is loaded.
pub fn restore(agent: &mut Learner, dir: &Path, cfg: &TrainConfig) -> Result<State, TrainError> {
    let dir = &existing(dir)
        .ok_or_else(|| TrainError::Resume(format!("no checkpoint at {}", dir.display())))?;
    let p = dir.join("state.json");
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).map_err(io(&p))?)
        .map_err(|e| TrainError::Resume(format!("{}: {e}", p.display())))?;
    if raw.get("version").and_then(|v| v.as_u64()) != Some(CONFIG_VERSION as u64) {
        return Err(TrainError::Resume(format!(
            "{} was written by a trainer that counted steps in control steps (no \"version\": \
             {CONFIG_VERSION}; its env_step {}). Its counters cannot be read as agent steps: \
             finish it with the trainer it was started with, or start a new run (configuration \
             step keys now count agent steps: divide them by action_repeat and add \
             \"version\": {CONFIG_VERSION})",
            p.display(),
            raw.get("env_step")
                .map(|v| v.to_string())
                .unwrap_or_default()
        )));
    }
    let old: State = serde_json::from_value(raw)
        .map_err(|e| TrainError::Resume(format!("{}: {e}", p.display())))?;
    if let Some(why) = incompatible(&old.config, cfg) {
        return Err(TrainError::Resume(format!(
            "checkpoint was made with {why}"
        )));
    }
    let r = |e: tch::TchError| TrainError::Resume(e.to_string());
    agent.vs.load(dir.join("model.ot")).map_err(r)?;
    agent.target_vs.load(dir.join("target.ot")).map_err(r)?;
    let map: BTreeMap<String, Tensor> = Tensor::load_multi(dir.join("adam.ot"))
        .map_err(r)?
        .into_iter()
        .collect();
    agent
        .opt_wm
        .load_state("wm", &map, old.adam_wm_t)
        .map_err(TrainError::Resume)?;
    agent
        .opt_pi
        .load_state("pi", &map, old.adam_pi_t)
        .map_err(TrainError::Resume)?;
    let replay = Replay::load(&dir.join("replay.bin"))?;
    let have = (replay.obs_size, replay.action_size, replay.len);
    let need = (
        agent.replay.obs_size,
        agent.replay.action_size,
        agent.replay.len,
    );
    if have != need {
        return Err(TrainError::Resume(format!(
            "replay has obs {} action {} episode length {}, this run needs {} {} {}",
            have.0, have.1, have.2, need.0, need.1, need.2
        )));
    }
    agent.replay = replay;
    agent.dev_replay = None;
    agent.q_scale = tch::Tensor::from(old.q_scale as f32).to_device(agent.device);
    agent.updates = old.updates;
    Ok(State {
        config: cfg.clone(),
        ..old
    })
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
