//! Collection: one episode of the task acted by seed noise, the policy
//! prior (sample or mean, in libtorch), or the controller's own agent
//! (`dream_mpc::agent`, the code that runs on the robot) on a bundle
//! exported from the current weights, with each agent action held for
//! `action_repeat` control steps, recorded as replay rows.

use crate::config::{TrainConfig, TrainError};
use crate::learner::{seeded, Learner, STREAM_EPISODE};
use dream_mpc_sim::closed_loop::run_agent_episode;
use dream_mpc_sim::task::Task;
use std::time::{Duration, Instant};

/// Run one episode of `task` (reset with `seed`) through the sim's one
/// episode loop (`dream_mpc_sim::closed_loop::run_agent_episode`), each
/// action held for `action_repeat` control steps and the episode cut at
/// `max_episode_steps`; actions chosen per `mode` (policy draws keyed by
/// agent step `k0 + k`). Returns exactly the task's episode length in agent
/// steps (`cfg.agent_episode_len`) as replay rows.
pub fn run_episode(
    task: &mut dyn Task,
    agent: &Learner,
    cfg: &TrainConfig,
    seed: u64,
    mode: EpisodeMode,
    k0: u64,
) -> Result<Episode, TrainError> {
    let spec = task.spec().clone();
    // the task's episode in agent steps (online, also the replay's length)
    let len = cfg.agent_episode_len(spec.episode_len);
    let mut mode = mode;
    if let EpisodeMode::Planner(p) = &mut mode {
        p.reset();
    }
    // The planner's budget is its iteration count, not the clock.
    let far = Instant::now() + Duration::from_secs(3600);
    let mut obs: Vec<f32> = Vec::with_capacity((len + 1) * spec.obs_size);
    let mut acts = Vec::with_capacity(len * spec.action_size);
    let mut rews = Vec::with_capacity(len);
    let mut rng = seeded(cfg.seed, STREAM_EPISODE, seed);
    let env_cap = if cfg.max_episode_steps > 0 {
        cfg.max_episode_steps.min(spec.episode_len)
    } else {
        spec.episode_len
    };
    let mut held = vec![0f32; spec.action_size];
    let mut a = vec![0f32; spec.action_size];
    let mut cur = vec![0f32; spec.obs_size];
    let mut i = 0usize;
    let ep = run_agent_episode(
        task,
        seed,
        cfg.action_repeat,
        Some(env_cap),
        |o64, a64| {
            for (d, s) in cur.iter_mut().zip(o64) {
                *d = *s as f32;
            }
            match &mut mode {
                EpisodeMode::Random if cfg.seed_hold <= 1 => {
                    for x in a.iter_mut() {
                        *x = rng.uniform_in(-1.0, 1.0) as f32;
                    }
                }
                EpisodeMode::Random => {
                    if i.is_multiple_of(cfg.seed_hold) {
                        for h in held.iter_mut() {
                            *h = if rng.uniform_in(-1.0, 1.0) >= 0.0 {
                                1.0
                            } else {
                                -1.0
                            };
                        }
                    }
                    a.copy_from_slice(&held);
                }
                EpisodeMode::Policy => a = agent.act(&cur, false, k0 + i as u64),
                EpisodeMode::Eval => a = agent.act(&cur, true, k0 + i as u64),
                EpisodeMode::Planner(p) => {
                    p.act(&cur, far)
                        .map_err(|e| TrainError::Agent(e.to_string()))?;
                    a.copy_from_slice(p.normalized_action());
                }
            }
            for (d, s) in a64.iter_mut().zip(&a) {
                *d = *s as f64;
            }
            i += 1;
            Ok::<(), TrainError>(())
        },
        |st| {
            if st.k == 0 {
                obs.extend(st.obs.iter().map(|&v| v as f32));
            }
            acts.extend(st.action.iter().map(|&v| v as f32));
            rews.push(st.reward as f32);
            obs.extend(st.next_obs.iter().map(|&v| v as f32));
        },
    )?;
    if rews.len() != len {
        return Err(TrainError::Config(format!(
            "task {} ended after {} agent steps, the configuration expects {len}",
            spec.name,
            rews.len()
        )));
    }
    Ok((obs, acts, rews, ep.ret))
}

/// Observations (`len + 1` rows), actions, rewards and the return of one
/// episode.
pub type Episode = (Vec<f32>, Vec<f32>, Vec<f32>, f64);

/// How actions are chosen in one episode.
pub enum EpisodeMode<'m> {
    /// Seed noise (see `seed_hold`).
    Random,
    /// A policy sample (libtorch).
    Policy,
    /// The policy mean (libtorch).
    Eval,
    /// The controller's agent on an exported bundle; reset at the start.
    Planner(&'m mut dream_mpc::agent::Agent),
}
