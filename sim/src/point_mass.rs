//! The one 1-D point mass of the workspace: x'' = force * u,
//! u in [-1, 1], semi-implicit Euler, reward
//! `exp(-x^2 / (2 sigma^2)) * (1 - effort * u^2)` in [0, 1]. Not a Control
//! Suite task; two parameter sets are registered ([`crate::registry`]):
//!
//! - `plumbing/point-mass` ([`PointMass::plumbing`]): force 4, two 10 ms
//!   substeps per 20 ms control step, sigma 0.25, no effort cost, start
//!   x ~ U(-1, 1), v ~ U(-0.5, 0.5), 1000 steps. It exists so the ROS 2
//!   robot node and the controller node can be tested end to end, with a
//!   closed loop whose return depends on every action.
//! - `trainer/reach-1d` ([`PointMass::reach`]): force 2, one 50 ms step,
//!   reward `exp(-4 x^2) (1 - 0.1 u^2)`, start at rest, 200 steps: the
//!   trainer's short plumbing task for its own tests.

use crate::physics::Clock;
use crate::task::{native_accessors, Backend, Native, TaskSpec};
use dream_mpc::rng::Rng;

/// The parameters of one point-mass task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub force: f64,
    pub physics_dt: f64,
    pub substeps: usize,
    pub sigma: f64,
    pub effort: f64,
    /// Start velocity drawn from U(-v0, v0) (after x ~ U(-1, 1)).
    pub v0: f64,
    pub episode_len: usize,
}

pub struct PointMass {
    spec: TaskSpec,
    p: Params,
    x: f64,
    v: f64,
    clock: Clock,
}

impl Default for PointMass {
    fn default() -> Self {
        Self::new()
    }
}

impl PointMass {
    pub const NAME: &'static str = "plumbing/point-mass";
    pub const REACH: &'static str = "trainer/reach-1d";

    /// `plumbing/point-mass`.
    pub fn new() -> Self {
        Self::plumbing()
    }

    /// `plumbing/point-mass` (see the module docs).
    pub fn plumbing() -> Self {
        Self::with(
            Self::NAME,
            Params {
                force: 4.0,
                physics_dt: 0.01,
                substeps: 2,
                sigma: 0.25,
                effort: 0.0,
                v0: 0.5,
                episode_len: 1000,
            },
        )
    }

    /// `trainer/reach-1d` (see the module docs).
    pub fn reach() -> Self {
        Self::with(
            Self::REACH,
            Params {
                force: 2.0,
                physics_dt: 0.05,
                substeps: 1,
                sigma: (1.0f64 / 8.0).sqrt(),
                effort: 0.1,
                v0: 0.0,
                episode_len: 200,
            },
        )
    }

    /// A point mass named `name` with parameters `p`.
    pub fn with(name: &str, p: Params) -> Self {
        PointMass {
            spec: TaskSpec {
                name: name.into(),
                backend: Backend::Native,
                obs_size: 2,
                action_size: 1,
                control_timestep: p.physics_dt * p.substeps as f64,
                physics_substeps: p.substeps,
                episode_len: p.episode_len,
            },
            p,
            x: 0.0,
            v: 0.0,
            clock: Clock::default(),
        }
    }
}

impl Native for PointMass {
    native_accessors!(scalar x, v);

    fn init(&mut self, rng: &mut Rng) {
        self.x = rng.uniform_in(-1.0, 1.0);
        self.v = if self.p.v0 > 0.0 {
            rng.uniform_in(-self.p.v0, self.p.v0)
        } else {
            0.0
        };
    }

    fn advance(&mut self, action: &[f64]) -> f64 {
        let u = action[0].clamp(-1.0, 1.0);
        for _ in 0..self.p.substeps {
            self.v += self.p.physics_dt * self.p.force * u;
            self.x += self.p.physics_dt * self.v;
        }
        let s2 = self.p.sigma * self.p.sigma;
        (-self.x * self.x / (2.0 * s2)).exp() * (1.0 - self.p.effort * u * u)
    }

    fn observe(&self, obs: &mut [f64]) {
        obs[0] = self.x;
        obs[1] = self.v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Task, TaskError};

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
    fn reach_variant_keeps_the_trainer_task() {
        let mut t = PointMass::reach();
        assert_eq!(t.spec().episode_len, 200);
        let mut o = [0.0; 2];
        t.reset(3, &mut o).unwrap();
        assert_eq!(o[1], 0.0, "starts at rest");
        t.set_state(&[0.5], &[0.0], &mut o).unwrap();
        let r = t.step(&[1.0], &mut o).unwrap().reward;
        // v = 2 * 0.05 = 0.1, x = 0.5 + 0.005; reward exp(-4x^2) * 0.9
        let want = (-4.0f64 * 0.505 * 0.505).exp() * 0.9;
        assert!(
            (r - want).abs() < 1e-12 && (o[0] - 0.505).abs() < 1e-12,
            "{r} {o:?}"
        );
    }

    #[test]
    fn force_moves_the_mass() {
        let mut t = PointMass::new();
        let mut o = [0.0; 2];
        // set_state keeps the episode clock, as on every task: reset first.
        assert_eq!(
            t.set_state(&[0.0], &[0.0], &mut o)
                .and_then(|()| t.step(&[1.0], &mut o).map(|_| ())),
            Err(TaskError::NotReset)
        );
        t.reset(0, &mut o).unwrap();
        t.set_state(&[0.0], &[0.0], &mut o).unwrap();
        t.step(&[1.0], &mut o).unwrap();
        // two substeps: v = 0.04, 0.08; x = 0.0004 + 0.0012
        assert!(
            (o[1] - 0.08).abs() < 1e-12 && (o[0] - 0.0012).abs() < 1e-12,
            "{o:?}"
        );
    }
}
