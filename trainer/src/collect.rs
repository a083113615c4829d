//! Collection: one episode of the task acted by seed noise, the policy
//! prior (sample or mean, in libtorch), or the controller's own agent
//! (`dream_mpc::agent`, the code that runs on the robot) on a bundle
//! exported from the current weights, with each agent action held for
//! `action_repeat` control steps, recorded as replay rows.

use crate::config::{TrainConfig, TrainError};
use crate::learner::{seeded, Agent, STREAM_EPISODE};
use dream_mpc::planner::PlannerKind;
use dream_mpc_sim::task::Task;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

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

pub fn run_episode(
    task: &mut dyn Task,
    agent: &Agent,
    cfg: &TrainConfig,
    seed: u64,
    mode: EpisodeMode,
    k0: u64,
) -> Result<Episode, TrainError> {
    let mut mode = mode;
    if let EpisodeMode::Planner(p) = &mut mode {
        p.reset();
    }
    // The planner's budget is its iteration count, not the clock.
    let far = Instant::now() + Duration::from_secs(3600);
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
        let a: Vec<f32> = match &mut mode {
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
            EpisodeMode::Planner(p) => {
                p.act(cur, far)
                    .map_err(|e| TrainError::Agent(e.to_string()))?;
                p.normalized_action().to_vec()
            }
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
pub type Episode = (Vec<f32>, Vec<f32>, Vec<f32>, f64);

/// How actions are chosen in one episode.
pub enum EpisodeMode<'m, 'b> {
    /// Seed noise (see `seed_hold`).
    Random,
    /// A policy sample (libtorch).
    Policy,
    /// The policy mean (libtorch).
    Eval,
    /// The controller's agent on an exported bundle; reset at the start.
    Planner(&'m mut dream_mpc::agent::Agent<'b>),
}
