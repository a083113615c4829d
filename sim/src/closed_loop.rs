//! In-process closed loop: run a policy on a task for one episode.
//!
//! Buffers are allocated once per call (`Episode` scratch), the loop itself
//! allocates nothing.

use std::time::{Duration, Instant};

use crate::policy::Policy;
use crate::task::{Task, TaskError};

/// What one episode produced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpisodeResult {
    /// Sum of rewards.
    pub ret: f64,
    /// Steps taken.
    pub steps: usize,
    /// Wall-clock time of the loop.
    pub wall: Duration,
}

/// Reset `task` with `seed`, then step `policy`'s actions until the
/// episode ends.
pub fn run_episode(
    task: &mut dyn Task,
    policy: &mut dyn Policy,
    seed: u64,
) -> Result<EpisodeResult, TaskError> {
    let spec = task.spec().clone();
    let mut obs = vec![0.0; spec.obs_size];
    let mut action = vec![0.0; spec.action_size];
    let start = Instant::now();
    task.reset(seed, &mut obs)?;
    policy.reset(seed);
    let mut ret = 0.0;
    let mut steps = 0;
    loop {
        policy.act(&obs, &mut action);
        let step = task.step(&action, &mut obs)?;
        ret += step.reward;
        steps += 1;
        if step.done {
            break;
        }
    }
    Ok(EpisodeResult {
        ret,
        steps,
        wall: start.elapsed(),
    })
}
