//! The `Task` trait: one simulated robot with a DeepMind-Control-Suite-style
//! episode (reset with a seed, step with a normalized action, reward in
//! [0, 1], fixed episode length). Native tasks (this crate's own physics)
//! and MuJoCo-backed tasks implement the same trait.
//!
//! Buffers are the caller's: `reset` and `step` write the observation into
//! a slice of length `spec().obs_size` and never allocate, so a task can sit
//! inside a real-time loop (the ROS 2 robot node) or a training loop.

use crate::physics::Clock;
use dream_mpc::rng::Rng;

/// Which physics engine runs a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// This crate's own Rust physics (see each task's module docs for how
    /// it integrates and where it differs from MuJoCo).
    Native,
    /// MuJoCo through `mujoco-rs` on the suite's own model files.
    Mujoco,
}

/// Static description of a task.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    /// Registry name, e.g. `pendulum-swingup` (native) or
    /// `mujoco/cheetah-run`.
    pub name: String,
    pub backend: Backend,
    /// Length of the observation vector (the suite's keys concatenated in
    /// the suite's order).
    pub obs_size: usize,
    /// Number of actuators. Actions are normalized to [-1, 1]; the task
    /// scales them to actuator units (gear / control range).
    pub action_size: usize,
    /// Seconds between two `step` calls.
    pub control_timestep: f64,
    /// Physics steps per control step.
    pub physics_substeps: usize,
    /// Steps per episode (1000 for every suite task).
    pub episode_len: usize,
}

/// Result of one control step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// Reward of this step, in [0, 1].
    pub reward: f64,
    /// True on the last step of the episode (time limit reached).
    pub done: bool,
}

pub use crate::error::TaskError;

/// Check an action: right length, all finite. Returns it unchanged; the
/// task clamps finite out-of-range values to [-1, 1] as the suite does.
pub fn check_action(action: &[f64], action_size: usize) -> Result<(), TaskError> {
    if action.len() != action_size {
        return Err(TaskError::ActionSize {
            expected: action_size,
            got: action.len(),
        });
    }
    if let Some((index, &value)) = action.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(TaskError::NonFiniteAction { index, value });
    }
    Ok(())
}

/// Check a caller's buffer length.
pub fn check_buffer(what: &'static str, buf: &[f64], expected: usize) -> Result<(), TaskError> {
    if buf.len() != expected {
        return Err(TaskError::BufferSize {
            what,
            expected,
            got: buf.len(),
        });
    }
    Ok(())
}

/// A simulated robot.
pub trait Task: Send {
    /// Static description (sizes, timestep, episode length).
    fn spec(&self) -> &TaskSpec;

    /// Start a new episode; the initial state is drawn from the suite's
    /// distribution with a generator seeded by `seed` (same seed, same
    /// state). Writes the first observation.
    fn reset(&mut self, seed: u64, obs: &mut [f64]) -> Result<(), TaskError>;

    /// Apply `action` (normalized, length `action_size`; finite values
    /// outside [-1, 1] are clamped, NaN/inf and wrong length are errors) for
    /// one control timestep; writes the next observation, returns the reward.
    fn step(&mut self, action: &[f64], obs: &mut [f64]) -> Result<Step, TaskError>;

    /// Generalized positions and velocities (MuJoCo's qpos / qvel layout).
    fn state(&self, qpos: &mut [f64], qvel: &mut [f64]);

    /// Number of generalized positions and velocities.
    fn state_size(&self) -> (usize, usize);

    /// Overwrite the physics state (for replaying recorded trajectories)
    /// and write the matching observation. Does not change the step count.
    fn set_state(&mut self, qpos: &[f64], qvel: &[f64], obs: &mut [f64]) -> Result<(), TaskError>;

    /// The reward of a step computed from what a log holds: the action
    /// applied and the observation after the step (for bags without a
    /// reward topic, the trainer's `reward_from`; docs/BAGS.md). Equal to
    /// the reward [`Task::step`] returns for that step when the
    /// observation is the task's own (noise-free). `None` where the reward
    /// needs state the observation does not hold, or the sizes are wrong.
    fn reward_from_observation(&self, _action: &[f64], _next_obs: &[f64]) -> Option<f64> {
        None
    }
}

/// What a task with its own Rust physics supplies; [`Task`] follows from it
/// by the blanket impl below, so the checks every native task makes (action
/// length and finiteness, buffer lengths, the episode clock) and the
/// qpos/qvel handling are written once.
pub trait Native: Send {
    fn native_spec(&self) -> &TaskSpec;
    fn clock(&mut self) -> &mut Clock;
    /// Draw the episode's initial state from the suite's distribution.
    fn init(&mut self, rng: &mut Rng);
    /// One control step of physics for `action` (length and finiteness
    /// already checked; the task clamps to [-1, 1]); returns the reward.
    fn advance(&mut self, action: &[f64]) -> f64;
    /// Write the observation (length checked by the caller).
    fn observe(&self, obs: &mut [f64]);
    /// Generalized positions and velocities, MuJoCo's qpos / qvel layout.
    fn joints(&self) -> (&[f64], &[f64]);
    fn joints_mut(&mut self) -> (&mut [f64], &mut [f64]);
    /// See [`Task::reward_from_observation`] (sizes already checked).
    fn observed_reward(&self, _action: &[f64], _next_obs: &[f64]) -> Option<f64> {
        None
    }
}

/// The accessors of a [`Native`] task whose struct has the fields `spec`
/// and `clock` and the joint fields named: `native_accessors!(q, v)` for
/// `[f64; N]` arrays, `native_accessors!(scalar x, v)` for one joint.
macro_rules! native_accessors {
    (scalar $q:ident, $v:ident) => {
        native_accessors!(@common);
        fn joints(&self) -> (&[f64], &[f64]) {
            (std::slice::from_ref(&self.$q), std::slice::from_ref(&self.$v))
        }
        fn joints_mut(&mut self) -> (&mut [f64], &mut [f64]) {
            (std::slice::from_mut(&mut self.$q), std::slice::from_mut(&mut self.$v))
        }
    };
    ($q:ident, $v:ident) => {
        native_accessors!(@common);
        fn joints(&self) -> (&[f64], &[f64]) {
            (&self.$q, &self.$v)
        }
        fn joints_mut(&mut self) -> (&mut [f64], &mut [f64]) {
            (&mut self.$q, &mut self.$v)
        }
    };
    (@common) => {
        fn native_spec(&self) -> &$crate::task::TaskSpec {
            &self.spec
        }
        fn clock(&mut self) -> &mut $crate::physics::Clock {
            &mut self.clock
        }
    };
}
pub(crate) use native_accessors;

impl<T: Native> Task for T {
    fn spec(&self) -> &TaskSpec {
        self.native_spec()
    }

    fn reset(&mut self, seed: u64, obs: &mut [f64]) -> Result<(), TaskError> {
        check_buffer("observation", obs, self.native_spec().obs_size)?;
        self.init(&mut Rng::new(seed));
        self.clock().reset();
        self.observe(obs);
        Ok(())
    }

    fn step(&mut self, action: &[f64], obs: &mut [f64]) -> Result<Step, TaskError> {
        let (action_size, obs_size, len) = {
            let s = self.native_spec();
            (s.action_size, s.obs_size, s.episode_len)
        };
        check_action(action, action_size)?;
        check_buffer("observation", obs, obs_size)?;
        self.clock().check(len)?;
        let reward = self.advance(action);
        self.observe(obs);
        let done = self.clock().tick(len);
        Ok(Step { reward, done })
    }

    fn state(&self, qpos: &mut [f64], qvel: &mut [f64]) {
        let (q, v) = self.joints();
        qpos[..q.len()].copy_from_slice(q);
        qvel[..v.len()].copy_from_slice(v);
    }

    fn state_size(&self) -> (usize, usize) {
        let (q, v) = self.joints();
        (q.len(), v.len())
    }

    fn set_state(&mut self, qpos: &[f64], qvel: &[f64], obs: &mut [f64]) -> Result<(), TaskError> {
        let (nq, nv) = self.state_size();
        check_buffer("qpos", qpos, nq)?;
        check_buffer("qvel", qvel, nv)?;
        check_buffer("observation", obs, self.native_spec().obs_size)?;
        let (q, v) = self.joints_mut();
        q.copy_from_slice(qpos);
        v.copy_from_slice(qvel);
        self.observe(obs);
        Ok(())
    }

    fn reward_from_observation(&self, action: &[f64], next_obs: &[f64]) -> Option<f64> {
        let s = self.native_spec();
        if action.len() != s.action_size || next_obs.len() != s.obs_size {
            return None;
        }
        self.observed_reward(action, next_obs)
    }
}

/// Test support for the tasks with their own physics: from the state
/// `(q, v)` (after a reset with seed 0), `steps` steps with zero action,
/// `each` seeing every observation. Returns the starting energy and the
/// largest departure of `energy` from it.
#[cfg(test)]
pub(crate) fn energy_drift<T: Task>(
    task: &mut T,
    energy: fn(&T) -> f64,
    (q, v): (&[f64], &[f64]),
    steps: usize,
    mut each: impl FnMut(&[f64]),
) -> (f64, f64) {
    let mut obs = vec![0.0; task.spec().obs_size];
    let zero = vec![0.0; task.spec().action_size];
    task.reset(0, &mut obs).unwrap();
    task.set_state(q, v, &mut obs).unwrap();
    let e0 = energy(task);
    let mut worst: f64 = 0.0;
    for _ in 0..steps {
        task.step(&zero, &mut obs).unwrap();
        worst = worst.max((energy(task) - e0).abs());
        each(&obs);
    }
    (e0, worst)
}
