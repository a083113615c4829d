//! Collection: one episode of the task acted by seed noise, the policy
//! prior or its mean, with each agent action held for `action_repeat`
//! control steps, recorded as replay rows.

use crate::config::{TrainConfig, TrainError};
use crate::learner::{seeded, Agent, STREAM_EPISODE};
use dream_mpc_sim::task::Task;

pub fn run_episode(
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
pub type Episode = (Vec<f32>, Vec<f32>, Vec<f32>, f64);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EpisodeMode {
    Random,
    Policy,
    Eval,
}
