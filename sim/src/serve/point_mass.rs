//! `plumbing/point-mass`: a 1-D point mass pushed by a bounded force
//! (x'' = 4 u, u in [-1, 1], semi-implicit Euler, 10 ms physics step, two
//! substeps per 20 ms control step), reward `exp(-x^2 / (2 * 0.25^2))` in
//! [0, 1]. Not a Control Suite task: it exists so the ROS 2 robot node and
//! the controller node can be tested end to end before the suite's tasks and
//! a trained model are available, with a closed loop whose return depends on
//! every action (a stale or wrong action changes it).

use crate::task::{check_action, check_buffer, Backend, Step, Task, TaskError, TaskSpec};
use dream_mpc::rng::Rng;

const FORCE: f64 = 4.0;
const PHYSICS_DT: f64 = 0.01;
const SUBSTEPS: usize = 2;

pub struct PointMass {
    spec: TaskSpec,
    x: f64,
    v: f64,
    t: usize,
    reset: bool,
}

impl Default for PointMass {
    fn default() -> Self {
        Self::new()
    }
}

impl PointMass {
    pub const NAME: &'static str = "plumbing/point-mass";

    pub fn new() -> Self {
        PointMass {
            spec: TaskSpec {
                name: Self::NAME.into(),
                backend: Backend::Native,
                obs_size: 2,
                action_size: 1,
                control_timestep: PHYSICS_DT * SUBSTEPS as f64,
                physics_substeps: SUBSTEPS,
                episode_len: 1000,
            },
            x: 0.0,
            v: 0.0,
            t: 0,
            reset: false,
        }
    }

    fn observe(&self, obs: &mut [f64]) {
        obs[0] = self.x;
        obs[1] = self.v;
    }
}

impl Task for PointMass {
    fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    fn reset(&mut self, seed: u64, obs: &mut [f64]) -> Result<(), TaskError> {
        check_buffer("observation", obs, 2)?;
        let mut rng = Rng::new(seed);
        self.x = rng.uniform_in(-1.0, 1.0);
        self.v = rng.uniform_in(-0.5, 0.5);
        self.t = 0;
        self.reset = true;
        self.observe(obs);
        Ok(())
    }

    fn step(&mut self, action: &[f64], obs: &mut [f64]) -> Result<Step, TaskError> {
        check_action(action, 1)?;
        check_buffer("observation", obs, 2)?;
        if !self.reset {
            return Err(TaskError::NotReset);
        }
        if self.t >= self.spec.episode_len {
            return Err(TaskError::EpisodeOver);
        }
        let u = action[0].clamp(-1.0, 1.0);
        for _ in 0..SUBSTEPS {
            self.v += PHYSICS_DT * FORCE * u;
            self.x += PHYSICS_DT * self.v;
        }
        self.t += 1;
        self.observe(obs);
        let reward = (-self.x * self.x / (2.0 * 0.25 * 0.25)).exp();
        Ok(Step {
            reward,
            done: self.t >= self.spec.episode_len,
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
        self.reset = true;
        self.observe(obs);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_bad_actions_refused() {
        let (mut a, mut b) = (PointMass::new(), PointMass::new());
        let (mut oa, mut ob) = ([0.0; 2], [0.0; 2]);
        a.reset(7, &mut oa).unwrap();
        b.reset(7, &mut ob).unwrap();
        assert_eq!(oa, ob);
        let r = a.step(&[0.5], &mut oa).unwrap();
        assert!(r.reward > 0.0 && r.reward <= 1.0);
        assert!(matches!(
            a.step(&[f64::NAN], &mut oa),
            Err(TaskError::NonFiniteAction { .. })
        ));
        assert!(matches!(
            a.step(&[0.0, 0.0], &mut oa),
            Err(TaskError::ActionSize { .. })
        ));
    }

    #[test]
    fn force_moves_the_mass() {
        let mut t = PointMass::new();
        let mut o = [0.0; 2];
        t.set_state(&[0.0], &[0.0], &mut o).unwrap();
        t.step(&[1.0], &mut o).unwrap();
        // two substeps: v = 0.04, 0.08; x = 0.0004 + 0.0012
        assert!(
            (o[1] - 0.08).abs() < 1e-12 && (o[0] - 0.0012).abs() < 1e-12,
            "{o:?}"
        );
    }
}
