//! Checkpoints: one folder written at episode ends (model, target Q, Adam
//! moments, replay buffer, counters and metrics) by [`save`], read back by
//! [`restore`], which refuses a checkpoint of another task, model shape,
//! episode layout or seed with an error naming the difference.

use crate::config::{io, TrainConfig, TrainError};
use crate::learner::Agent;
use crate::metrics::Metrics;
use crate::replay::Replay;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::Tensor;

/// Counters and metrics saved in `checkpoint/state.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub config: TrainConfig,
    pub env_step: u64,
    pub episode: u64,
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
        }
    }
}

/// Write the agent and `state` (its learner counters refreshed from the
/// agent first) into `dir`.
pub fn save(agent: &Agent, dir: &Path, state: &mut State) -> Result<(), TrainError> {
    state.updates = agent.updates;
    state.adam_wm_t = agent.opt_wm.t;
    state.adam_pi_t = agent.opt_pi.t;
    state.q_scale = agent.q_scale.double_value(&[]);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    agent.vs.save(dir.join("model.ot"))?;
    agent.target_vs.save(dir.join("target.ot"))?;
    let mut adam = agent.opt_wm.named_state("wm");
    adam.extend(agent.opt_pi.named_state("pi"));
    Tensor::save_multi(&adam, dir.join("adam.ot"))?;
    agent.replay.save(&dir.join("replay.bin"))?;
    let p = dir.join("state.json");
    std::fs::write(&p, serde_json::to_vec_pretty(state).expect("state json")).map_err(io(&p))
}

/// Read the checkpoint in `dir` into `agent` (built for `cfg`) and return
/// its state with `cfg` as the configuration. A checkpoint made with
/// another task, model shape, episode layout or seed is refused before
/// anything is loaded.
pub fn restore(agent: &mut Agent, dir: &Path, cfg: &TrainConfig) -> Result<State, TrainError> {
    let p = dir.join("state.json");
    let old: State = serde_json::from_slice(&std::fs::read(&p).map_err(io(&p))?)
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
