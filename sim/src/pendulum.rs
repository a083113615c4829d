//! `pendulum-swingup`: the Control Suite's pendulum (`suite/pendulum.xml`,
//! `suite/pendulum.py`), re-implemented natively.
//!
//! Model: one hinge about the world y axis, 0.6 m above the floor; a 1 kg
//! sphere (radius 0.05) at 0.5 m along the pole (the pole and base geoms
//! are massless), so the hinge inertia is `m l^2 + 2/5 m r^2 = 0.251`;
//! joint damping 0.1; a motor with gear 1 and ctrlrange [-1, 1] (so at
//! most 1 N m, well below the 4.9 N m of gravity: the pendulum must swing).
//! `q = 0` is upright. Timestep 0.02 s, one physics step per control step,
//! 1000 steps (20 s).
//!
//! Integration: MuJoCo's `Euler` with implicit damping, exactly:
//! `a = (tau + m g l sin q - b v) / (I + h b); v += h a; q += h v`.
//! No deviation from MuJoCo for this model (no contacts, no limits).
//!
//! Observation (3): `orientation` = `[cos q, sin q]` (the pole's `xmat`
//! entries zz, xz), `velocity` = `[qdot]`. Reward: `tolerance(cos q,
//! bounds = (cos 8 deg, 1))` with zero margin, i.e. 1 within 8 degrees of
//! upright, else 0.
//!
//! Initial state: `q ~ U(-pi, pi)`, `qdot = 0`, drawn from
//! [`dream_mpc::rng::Rng`] seeded by the reset seed (the same distribution
//! as the suite, not the same numbers as numpy's generator).
//!
//! Cost of `step`: one Euler step of a 1-DOF system, ~130 ns (release),
//! no allocation.

use dream_mpc::rng::Rng;

use crate::physics::{actuator_force, euler_damp, sphere_inertia, Clock, GRAVITY};
use crate::task::{native_accessors, Backend, Native, TaskSpec};
use crate::tolerance::Tolerance;

/// Bob mass (kg).
pub const MASS: f64 = 1.0;
/// Hinge to bob centre (m).
pub const LENGTH: f64 = 0.5;
/// Bob radius (m).
pub const BOB_RADIUS: f64 = 0.05;
/// Hinge damping (N m s / rad).
pub const DAMPING: f64 = 0.1;
/// Motor gear.
pub const GEAR: f64 = 1.0;
/// Physics timestep (s).
pub const TIMESTEP: f64 = 0.02;
/// Upright band of the reward (degrees).
pub const ANGLE_BOUND_DEG: f64 = 8.0;

/// Hinge inertia (kg m^2).
pub fn inertia() -> f64 {
    MASS * LENGTH * LENGTH + sphere_inertia(MASS, BOB_RADIUS)
}

/// The pendulum swing-up task.
pub struct Pendulum {
    spec: TaskSpec,
    q: f64,
    v: f64,
    clock: Clock,
    upright: Tolerance,
    /// Damping used by the physics (the suite's 0.1; tests set 0 to check
    /// energy conservation).
    damping: f64,
}

impl Pendulum {
    pub fn swingup() -> Self {
        Pendulum {
            spec: TaskSpec {
                name: "pendulum-swingup".into(),
                backend: Backend::Native,
                obs_size: 3,
                action_size: 1,
                control_timestep: TIMESTEP,
                physics_substeps: 1,
                episode_len: 1000,
            },
            q: 0.0,
            v: 0.0,
            clock: Clock::default(),
            upright: Tolerance::gaussian((ANGLE_BOUND_DEG.to_radians().cos(), 1.0), 0.0)
                .expect("constant bounds are valid"),
            damping: DAMPING,
        }
    }

    /// Same task with another joint damping (for physics checks).
    pub fn with_damping(mut self, damping: f64) -> Self {
        self.damping = damping;
        self
    }

    /// Total mechanical energy (J), zero potential at the hinge height.
    pub fn energy(&self) -> f64 {
        0.5 * inertia() * self.v * self.v + MASS * GRAVITY * LENGTH * self.q.cos()
    }

    /// One physics step with motor torque `tau`.
    fn physics_step(&mut self, tau: f64) {
        let f = tau + MASS * GRAVITY * LENGTH * self.q.sin() - self.damping * self.v;
        let (mut q, mut v) = ([self.q], [self.v]);
        euler_damp(
            &mut q,
            &mut v,
            TIMESTEP,
            [[inertia()]],
            &[self.damping],
            &[f],
        );
        self.q = q[0];
        self.v = v[0];
    }
}

impl Native for Pendulum {
    native_accessors!(scalar q, v);

    fn init(&mut self, rng: &mut Rng) {
        self.q = rng.uniform_in(-std::f64::consts::PI, std::f64::consts::PI);
        self.v = 0.0;
    }

    fn advance(&mut self, action: &[f64]) -> f64 {
        let tau = actuator_force(action[0], GEAR);
        for _ in 0..self.spec.physics_substeps {
            self.physics_step(tau);
        }
        self.upright.eval(self.q.cos())
    }

    fn observed_reward(&self, _action: &[f64], next_obs: &[f64]) -> Option<f64> {
        Some(self.upright.eval(next_obs[0]))
    }

    fn observe(&self, obs: &mut [f64]) {
        obs[0] = self.q.cos();
        obs[1] = self.q.sin();
        obs[2] = self.v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Task;

    #[test]
    fn energy_is_conserved_without_damping_or_actuation() {
        // Semi-implicit Euler is symplectic: at h = 0.02 (h w = 0.09) the
        // energy wobbles by a few percent of the swing energy within each
        // period but does not drift. Swing of 1 rad amplitude, 5000 steps.
        let mut p = Pendulum::swingup().with_damping(0.0);
        let mut obs = [0.0; 3];
        p.reset(0, &mut obs).unwrap();
        p.set_state(&[std::f64::consts::PI - 1.0], &[0.0], &mut obs)
            .unwrap();
        let e0 = p.energy();
        let swing = MASS * GRAVITY * LENGTH * (1.0 - 1f64.cos());
        let mut energies = Vec::new();
        p.spec.episode_len = 5000;
        for _ in 0..5000 {
            p.step(&[0.0], &mut obs).unwrap();
            energies.push(p.energy());
        }
        let worst = energies.iter().map(|e| (e - e0).abs()).fold(0.0, f64::max);
        assert!(
            worst < 0.06 * swing,
            "energy wobble {worst} J of swing {swing} J"
        );
        // No secular drift: mean over the first and last 500 steps (about
        // 14 periods each) agree to 0.5% of the swing energy.
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        let drift = (mean(&energies[..500]) - mean(&energies[4500..])).abs();
        assert!(
            drift < 5e-3 * swing,
            "energy drift {drift} J of swing {swing} J"
        );
    }

    #[test]
    fn small_angle_period_matches_theory() {
        // Hanging down (q = pi), small swing, no damping: period
        // 2 pi sqrt(I / (m g l)) (= 2 pi sqrt(l/g) for a point mass,
        // corrected for the bob's own inertia).
        let mut p = Pendulum::swingup().with_damping(0.0);
        let mut obs = [0.0; 3];
        p.reset(0, &mut obs).unwrap();
        p.set_state(&[std::f64::consts::PI + 0.01], &[0.0], &mut obs)
            .unwrap();
        // Time the upward zero crossings of the velocity.
        let mut crossings = Vec::new();
        let mut prev = 0.0;
        for k in 0..1000 {
            p.step(&[0.0], &mut obs).unwrap();
            let v = obs[2];
            if prev < 0.0 && v >= 0.0 {
                // Linear interpolation of the crossing time.
                let frac = -prev / (v - prev);
                crossings.push((k as f64 + frac) * TIMESTEP);
            }
            prev = v;
        }
        assert!(crossings.len() >= 5, "{crossings:?}");
        let measured =
            (crossings[crossings.len() - 1] - crossings[0]) / (crossings.len() - 1) as f64;
        let theory = 2.0 * std::f64::consts::PI * (inertia() / (MASS * GRAVITY * LENGTH)).sqrt();
        let point_mass = 2.0 * std::f64::consts::PI * (LENGTH / GRAVITY).sqrt();
        assert!(
            (measured - theory).abs() < 0.01 * theory,
            "period {measured} vs theory {theory} (point mass {point_mass})"
        );
    }

    #[test]
    fn reward_is_indicator_of_upright_band() {
        let mut p = Pendulum::swingup();
        let mut obs = [0.0; 3];
        p.reset(3, &mut obs).unwrap();
        p.set_state(&[0.05], &[0.0], &mut obs).unwrap();
        let r = p.step(&[0.0], &mut obs).unwrap().reward;
        assert_eq!(r, 1.0);
        p.set_state(&[1.0], &[0.0], &mut obs).unwrap();
        let r = p.step(&[0.0], &mut obs).unwrap().reward;
        assert_eq!(r, 0.0);
    }
}
