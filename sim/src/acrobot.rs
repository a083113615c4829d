//! `acrobot-swingup`: the Control Suite's acrobot (`suite/acrobot.xml`,
//! `suite/acrobot.py`; Coulom's model), re-implemented natively.
//!
//! Model: two 1 kg capsules of length 1 (radii 0.05 and 0.049), the
//! shoulder 2 m above the floor, hinges about y with damping 0.05 each, a
//! motor on the elbow only with gear 2 and ctrlrange [-1, 1]; constraints
//! disabled. Angles: `q1` of the upper arm from upright, `q2` of the lower
//! arm relative to the upper. Timestep 0.01 s, one physics step per
//! control step, 1000 steps (10 s).
//!
//! Equations of motion (Lagrange, `lc` = 0.5 centre-of-mass distance,
//! `I1`, `I2` = capsule inertias about their centres as MuJoCo computes
//! them): the standard double-pendulum mass matrix
//! `M11 = I1 + m1 lc1^2 + I2 + m2 (l1^2 + lc2^2 + 2 l1 lc2 cos q2)`,
//! `M12 = I2 + m2 (lc2^2 + l1 lc2 cos q2)`, `M22 = I2 + m2 lc2^2`;
//! Coriolis `c = m2 l1 lc2 sin q2 [-(2 qd1 qd2 + qd2^2), qd1^2]`; gravity
//! with `q = 0` upright pushes away from it.
//!
//! Integration: MuJoCo's `RK4`. No deviation from MuJoCo for this model.
//!
//! Observation (6): `orientations` = `[sin q1, sin(q1+q2), cos q1,
//! cos(q1+q2)]` (the bodies' `xmat` xz then zz entries), `velocity` =
//! `[qd1, qd2]`. Reward: `tolerance(|tip - target|, bounds = (0, 0.2),
//! margin = 1)` (gaussian), target at 4 m above the floor, i.e. right above
//! the shoulder at full extension.
//!
//! Initial state: `q1, q2 ~ U(-pi, pi)`, `qdot = 0`, drawn from
//! [`dream_mpc::rng::Rng`] seeded by the reset seed (the suite's
//! distribution, not numpy's numbers).
//!
//! Cost of `step`: four RK4 stages, each a 2x2 solve, ~470 ns (release),
//! no allocation.

use dream_mpc::rng::Rng;

use crate::physics::{actuator_force, capsule_inertia_perp, rk4, solve_spd, Clock, GRAVITY};
use crate::task::{native_accessors, Backend, Native, TaskSpec};
use crate::tolerance::Tolerance;

/// Link masses (kg).
pub const MASS: [f64; 2] = [1.0, 1.0];
/// Link lengths (m).
pub const LENGTH: [f64; 2] = [1.0, 1.0];
/// Capsule radii (m).
pub const RADIUS: [f64; 2] = [0.05, 0.049];
/// Joint damping (N m s / rad).
pub const DAMPING: f64 = 0.05;
/// Elbow motor gear.
pub const GEAR: f64 = 2.0;
/// Physics timestep (s).
pub const TIMESTEP: f64 = 0.01;
/// Target sphere radius (m): the reward's upper bound on the distance.
pub const TARGET_RADIUS: f64 = 0.2;

/// Link inertias about their centres (kg m^2).
pub fn inertias() -> [f64; 2] {
    [
        capsule_inertia_perp(MASS[0], RADIUS[0], LENGTH[0]),
        capsule_inertia_perp(MASS[1], RADIUS[1], LENGTH[1]),
    ]
}

/// Mass matrix at elbow angle `q2`.
fn mass_matrix(q2: f64, inertia: &[f64; 2]) -> [[f64; 2]; 2] {
    let (l1, lc1, lc2) = (LENGTH[0], LENGTH[0] / 2.0, LENGTH[1] / 2.0);
    let (m1, m2) = (MASS[0], MASS[1]);
    let c2 = q2.cos();
    let m22 = inertia[1] + m2 * lc2 * lc2;
    let m12 = m22 + m2 * l1 * lc2 * c2;
    let m11 = inertia[0] + m1 * lc1 * lc1 + m22 + m2 * (l1 * l1 + 2.0 * l1 * lc2 * c2);
    [[m11, m12], [m12, m22]]
}

/// The acrobot swing-up task.
pub struct Acrobot {
    spec: TaskSpec,
    q: [f64; 2],
    v: [f64; 2],
    clock: Clock,
    inertia: [f64; 2],
    damping: f64,
    near_target: Tolerance,
}

impl Acrobot {
    pub fn swingup() -> Self {
        Acrobot {
            spec: TaskSpec {
                name: "acrobot-swingup".into(),
                backend: Backend::Native,
                obs_size: 6,
                action_size: 1,
                control_timestep: TIMESTEP,
                physics_substeps: 1,
                episode_len: 1000,
            },
            q: [0.0; 2],
            v: [0.0; 2],
            clock: Clock::default(),
            inertia: inertias(),
            damping: DAMPING,
            near_target: Tolerance::gaussian((0.0, TARGET_RADIUS), 1.0).expect("valid"),
        }
    }

    /// Same task with another joint damping (for physics checks).
    pub fn with_damping(mut self, damping: f64) -> Self {
        self.damping = damping;
        self
    }

    /// Total mechanical energy (J), potential zero at the shoulder height.
    pub fn energy(&self) -> f64 {
        let m = mass_matrix(self.q[1], &self.inertia);
        let v = self.v;
        let kin =
            0.5 * (m[0][0] * v[0] * v[0] + 2.0 * m[0][1] * v[0] * v[1] + m[1][1] * v[1] * v[1]);
        let (lc1, lc2) = (LENGTH[0] / 2.0, LENGTH[1] / 2.0);
        let z1 = lc1 * self.q[0].cos();
        let z2 = LENGTH[0] * self.q[0].cos() + lc2 * (self.q[0] + self.q[1]).cos();
        kin + GRAVITY * (MASS[0] * z1 + MASS[1] * z2)
    }

    /// Distance from the arm's tip to the target (m).
    pub fn tip_to_target(&self) -> f64 {
        let (q1, q12) = (self.q[0], self.q[0] + self.q[1]);
        let x = LENGTH[0] * q1.sin() + LENGTH[1] * q12.sin();
        let z = LENGTH[0] * q1.cos() + LENGTH[1] * q12.cos();
        // Target 2 m above the shoulder (4 m above the floor).
        (x * x + (z - 2.0) * (z - 2.0)).sqrt()
    }

    fn acc(&self, q: &[f64; 2], v: &[f64; 2], tau: f64) -> [f64; 2] {
        let (l1, lc1, lc2) = (LENGTH[0], LENGTH[0] / 2.0, LENGTH[1] / 2.0);
        let (m1, m2) = (MASS[0], MASS[1]);
        let h = m2 * l1 * lc2 * q[1].sin();
        let s1 = q[0].sin();
        let s12 = (q[0] + q[1]).sin();
        // Generalized forces: gravity (-dV/dq), minus Coriolis/centrifugal,
        // damping, motor on the elbow.
        let f = [
            GRAVITY * (m1 * lc1 * s1 + m2 * (l1 * s1 + lc2 * s12))
                + h * (2.0 * v[0] * v[1] + v[1] * v[1])
                - self.damping * v[0],
            GRAVITY * m2 * lc2 * s12 - h * v[0] * v[0] - self.damping * v[1] + tau,
        ];
        solve_spd(mass_matrix(q[1], &self.inertia), f)
    }
}

impl Native for Acrobot {
    native_accessors!(q, v);

    fn init(&mut self, rng: &mut Rng) {
        let pi = std::f64::consts::PI;
        self.q = [rng.uniform_in(-pi, pi), rng.uniform_in(-pi, pi)];
        self.v = [0.0; 2];
    }

    fn advance(&mut self, action: &[f64]) -> f64 {
        let tau = actuator_force(action[0], GEAR);
        for _ in 0..self.spec.physics_substeps {
            let (mut q, mut v) = (self.q, self.v);
            rk4(&mut q, &mut v, TIMESTEP, |q, v| self.acc(q, v, tau));
            self.q = q;
            self.v = v;
        }
        self.near_target.eval(self.tip_to_target())
    }

    fn observe(&self, obs: &mut [f64]) {
        let q12 = self.q[0] + self.q[1];
        obs[0] = self.q[0].sin();
        obs[1] = q12.sin();
        obs[2] = self.q[0].cos();
        obs[3] = q12.cos();
        obs[4] = self.v[0];
        obs[5] = self.v[1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{energy_drift, Task};

    #[test]
    fn energy_is_conserved_without_damping_or_actuation() {
        let mut a = Acrobot::swingup().with_damping(0.0);
        // A chaotic swing from near horizontal.
        let start = (&[1.5, 0.5][..], &[0.0, 0.0][..]);
        let (e0, worst) = energy_drift(&mut a, Acrobot::energy, start, 1000, |_| {});
        // RK4 at h = 0.01: drift well under 1e-4 J of ~20 J swings.
        assert!(worst < 1e-4, "energy drift {worst} J (E0 = {e0} J)");
    }

    #[test]
    fn reward_is_one_when_fully_upright() {
        let mut a = Acrobot::swingup();
        let mut obs = [0.0; 6];
        a.reset(0, &mut obs).unwrap();
        a.set_state(&[0.0, 0.0], &[0.0, 0.0], &mut obs).unwrap();
        assert!(a.tip_to_target() < 1e-12);
        let r = a.step(&[0.0], &mut obs).unwrap().reward;
        assert_eq!(r, 1.0);
        // Hanging down: 4 m away, gaussian tail ~ 0.1^(3.8^2) ~ 0.
        a.set_state(&[std::f64::consts::PI, 0.0], &[0.0, 0.0], &mut obs)
            .unwrap();
        let r = a.step(&[0.0], &mut obs).unwrap().reward;
        assert!(r < 1e-10, "{r}");
    }
}
