//! The one episode loop of the workspace: reset a task, then per
//! agent step choose an action and hold it for `repeat` control steps
//! (TD-MPC2's action repeat), until the episode ends or a cap of control
//! steps is reached. Used by [`run_episode`] (a [`Policy`] at repeat 1),
//! the planner evaluation ([`crate::evaluate`]) and the trainer's
//! collection.
//!
//! Buffers are allocated once per call, the loop itself allocates nothing
//! (the callers' closures decide for themselves).

use std::time::{Duration, Instant};

use crate::policy::Policy;
use crate::task::{Task, TaskError};

/// What one episode produced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpisodeResult {
    /// Sum of rewards.
    pub ret: f64,
    /// Control (environment) steps taken.
    pub steps: usize,
    /// Wall-clock time of the loop.
    pub wall: Duration,
}

/// One agent step, as reported to the `record` callback of
/// [`run_agent_episode`].
#[derive(Debug)]
pub struct AgentStep<'a> {
    /// Agent step index from 0.
    pub k: usize,
    /// Observation the action was chosen on.
    pub obs: &'a [f64],
    /// The action held.
    pub action: &'a [f64],
    /// Sum of the rewards of the control steps it was held for.
    pub reward: f64,
    /// Observation after them.
    pub next_obs: &'a [f64],
    /// Control steps it was held for (`repeat`, fewer at the end).
    pub held: usize,
}

/// Reset `task` with `seed`; then per agent step `act(obs, action)` fills
/// the action, which is applied for `repeat` control steps (fewer when the
/// episode ends or `max_steps` control steps are reached; `None` = the
/// task's own end), and `record` sees the step. Errors of the task convert
/// into the caller's error type.
pub fn run_agent_episode<E: From<TaskError>>(
    task: &mut dyn Task,
    seed: u64,
    repeat: usize,
    max_steps: Option<usize>,
    mut act: impl FnMut(&[f64], &mut [f64]) -> Result<(), E>,
    mut record: impl FnMut(&AgentStep<'_>),
) -> Result<EpisodeResult, E> {
    let spec = task.spec().clone();
    let cap = max_steps.unwrap_or(usize::MAX);
    let repeat = repeat.max(1);
    let mut obs = vec![0.0; spec.obs_size];
    let mut next = vec![0.0; spec.obs_size];
    let mut action = vec![0.0; spec.action_size];
    let start = Instant::now();
    task.reset(seed, &mut obs)?;
    let (mut ret, mut steps, mut k) = (0.0, 0, 0);
    let mut done = steps >= cap;
    while !done {
        act(&obs, &mut action)?;
        let (mut r, mut held) = (0.0, 0);
        while held < repeat && !done {
            let st = task.step(&action, &mut next)?;
            r += st.reward;
            held += 1;
            steps += 1;
            done = st.done || steps >= cap;
        }
        ret += r;
        record(&AgentStep {
            k,
            obs: &obs,
            action: &action,
            reward: r,
            next_obs: &next,
            held,
        });
        obs.copy_from_slice(&next);
        k += 1;
    }
    Ok(EpisodeResult {
        ret,
        steps,
        wall: start.elapsed(),
    })
}

/// Reset `task` with `seed`, then step `policy`'s actions (one per control
/// step) until the episode ends.
pub fn run_episode(
    task: &mut dyn Task,
    policy: &mut dyn Policy,
    seed: u64,
) -> Result<EpisodeResult, TaskError> {
    policy.reset(seed);
    run_agent_episode(
        task,
        seed,
        1,
        None,
        |obs, action| {
            policy.act(obs, action);
            Ok::<(), TaskError>(())
        },
        |_| {},
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point_mass::PointMass;

    /// Action repeat holds each action for `repeat` control steps, sums
    /// their rewards, and the cap cuts the last hold short.
    #[test]
    fn repeat_holds_actions_and_cap_cuts_the_episode() {
        let mut t = PointMass::reach();
        let mut acts = 0;
        let mut rows = Vec::new();
        let r = run_agent_episode(
            &mut t,
            1,
            3,
            Some(10),
            |_, a| {
                acts += 1;
                a[0] = 0.5;
                Ok::<(), TaskError>(())
            },
            |s| rows.push((s.k, s.held, s.reward)),
        )
        .unwrap();
        assert_eq!(r.steps, 10);
        assert_eq!(acts, 4);
        assert_eq!(
            rows.iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
        let sum: f64 = rows.iter().map(|x| x.2).sum();
        assert!((sum - r.ret).abs() < 1e-12);
        // The same actions one per control step give the same return.
        let mut t2 = PointMass::reach();
        let r1 = run_agent_episode(
            &mut t2,
            1,
            1,
            Some(10),
            |_, a| {
                a[0] = 0.5;
                Ok::<(), TaskError>(())
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(r1.ret, r.ret);
        // Without a cap the task's own end stops it: 200 steps, 67 holds.
        let mut n = 0;
        let r = run_agent_episode(
            &mut t,
            2,
            3,
            None,
            |_, a| {
                a[0] = 0.0;
                Ok::<(), TaskError>(())
            },
            |_| n += 1,
        )
        .unwrap();
        assert_eq!((r.steps, n), (200, 67));
    }
}
