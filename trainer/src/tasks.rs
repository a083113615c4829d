//! Task lookup for the trainer: every task of `dream_mpc_sim`'s registry
//! (the native Control Suite tasks, and `mujoco/<task>` when the sim's
//! `mujoco` feature is on), plus `trainer/reach-1d`, a tiny plumbing task
//! used by the trainer's own tests (a unit point mass on a line that must
//! reach and hold x = 0).

use dream_mpc_sim::task::{check_action, check_buffer, Backend, Step, Task, TaskError, TaskSpec};

/// Names this build can train on.
pub fn known() -> Vec<String> {
    let mut v = dream_mpc_sim::registry::names();
    v.push(Reach1d::NAME.to_string());
    v
}

/// A task by name, or `UnknownTask` listing the known names.
pub fn make(name: &str) -> Result<Box<dyn Task>, TaskError> {
    match name {
        Reach1d::NAME => Ok(Box::new(Reach1d::new())),
        _ => dream_mpc_sim::registry::make(name).map_err(|e| match e {
            TaskError::UnknownTask { name, .. } => TaskError::UnknownTask {
                name,
                known: known(),
            },
            other => other,
        }),
    }
}

/// Unit point mass on a line: x'' = 2 u, dt 0.05 s, start x ~ U(-1, 1) at
/// rest; reward `exp(-4 x^2) * (1 - 0.1 u^2)` in [0, 1]; 200 steps.
#[derive(Debug)]
pub struct Reach1d {
    spec: TaskSpec,
    x: f64,
    v: f64,
    t: Option<usize>,
}

impl Reach1d {
    pub const NAME: &'static str = "trainer/reach-1d";

    pub fn new() -> Self {
        Reach1d {
            spec: TaskSpec {
                name: Self::NAME.into(),
                backend: Backend::Native,
                obs_size: 2,
                action_size: 1,
                control_timestep: 0.05,
                physics_substeps: 1,
                episode_len: 200,
            },
            x: 0.0,
            v: 0.0,
            t: None,
        }
    }

    fn observe(&self, obs: &mut [f64]) {
        obs[0] = self.x;
        obs[1] = self.v;
    }
}

impl Default for Reach1d {
    fn default() -> Self {
        Self::new()
    }
}

impl Task for Reach1d {
    fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    fn reset(&mut self, seed: u64, obs: &mut [f64]) -> Result<(), TaskError> {
        check_buffer("observation", obs, 2)?;
        let mut rng = dream_mpc::rng::Rng::new(seed);
        self.x = rng.uniform_in(-1.0, 1.0);
        self.v = 0.0;
        self.t = Some(0);
        self.observe(obs);
        Ok(())
    }

    fn step(&mut self, action: &[f64], obs: &mut [f64]) -> Result<Step, TaskError> {
        check_action(action, 1)?;
        check_buffer("observation", obs, 2)?;
        let t = self.t.ok_or(TaskError::NotReset)?;
        if t >= self.spec.episode_len {
            return Err(TaskError::EpisodeOver);
        }
        let u = action[0].clamp(-1.0, 1.0);
        let dt = self.spec.control_timestep;
        self.v += 2.0 * u * dt;
        self.x += self.v * dt;
        self.t = Some(t + 1);
        self.observe(obs);
        Ok(Step {
            reward: (-4.0 * self.x * self.x).exp() * (1.0 - 0.1 * u * u),
            done: t + 1 == self.spec.episode_len,
        })
    }

    fn state(&self, qpos: &mut [f64], qvel: &mut [f64]) {
        qpos[0] = self.x;
        qvel[0] = self.v;
    }

    fn state_size(&self) -> (usize, usize) {
        (1, 1)
    }

    fn set_state(&mut self, qpos: &[f64], qvel: &[f64], obs: &mut [f64]) -> Result<(), TaskError> {
        check_buffer("qpos", qpos, 1)?;
        check_buffer("qvel", qvel, 1)?;
        check_buffer("observation", obs, 2)?;
        self.x = qpos[0];
        self.v = qvel[0];
        self.observe(obs);
        Ok(())
    }
}
