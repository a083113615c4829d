//! `cartpole-swingup` and `cartpole-balance`: the Control Suite's cart-pole
//! (`suite/cartpole.xml`, `suite/cartpole.py`), re-implemented natively.
//!
//! Model: a 1 kg cart on a slider along x (damping 5e-4, limited to
//! [-1.8, 1.8] m with `solreflimit = 0.08 1`), a 0.1 kg capsule pole
//! (radius 0.045, length 1, centre of mass 0.5 m above the hinge) on a
//! hinge about y (damping 2e-6); a motor on the slider with gear 10 and
//! ctrlrange [-1, 1]. `theta = 0` is upright. Timestep 0.01 s, one physics
//! step per control step, 1000 steps (10 s).
//!
//! Equations of motion (Lagrange, `l` = 0.5, `I` = pole inertia about its
//! centre, MuJoCo's capsule formula):
//! `[mc+mp, mp l cos th; mp l cos th, I + mp l^2] [xdd; thdd]
//!   = [F + mp l sin th thd^2 - b_x xd; mp g l sin th - b_th thd]`.
//!
//! Integration: MuJoCo's `RK4` (classical, control held over the step).
//!
//! Slider limit: MuJoCo's soft joint-limit constraint for one active limit,
//! solved in closed form: `aref = -B v_c - K imp dist` with
//! `K = 1/(dmax^2 tc^2 zeta^2)`, `B = 2/(dmax tc)`, default solimp
//! (0.9, 0.95, 0.001, 0.5, 2), regulariser `R = (1-imp)/imp * A0` where `A0`
//! is the slider's inverse inertia at the reference pose (MuJoCo's
//! `dof_invweight0`, here `(M^-1)_xx` at `theta = 0`), and the force
//! `f = max(0, (aref - J a0) / (J M^-1 J^T + R))`, which is what MuJoCo's
//! solver converges to for one active limit. Replays of the suite's
//! recordings agree to 1e-10..1e-4 through the rail contacts (see
//! `tests/reference.rs`); the choice of `A0` matters: rounding it to 0.974
//! already gives 4e-2 errors, 1/(mc+mp) gives metres. Deviation: a
//! residual ~1e-6 per contact episode against MuJoCo's iterative solve.
//!
//! Observation (5): `position` = `[x, cos th, sin th]`, `velocity` =
//! `[xd, thd]`. Reward (smooth, both tasks): `upright * centered *
//! small_control * small_velocity` with `upright = (cos th + 1)/2`,
//! `centered = (1 + tol(x, margin 2))/2`, `small_control = (4 + tol(u,
//! margin 1, quadratic, 0))/5`, `small_velocity = (1 + tol(thd, margin
//! 5))/2`.
//!
//! Initial state: swing-up: `x = 0.01 N`, `th = pi + 0.01 N`, `v = 0.01 N`;
//! balance: `x ~ U(-0.1, 0.1)`, `th ~ U(-0.034, 0.034)`, `v = 0.01 N`;
//! drawn from [`dream_mpc::rng::Rng`] seeded by the reset seed (the suite's
//! distribution, not numpy's numbers).
//!
//! Cost of `step`: four RK4 stages, each a 2x2 solve (two near a rail),
//! ~350 ns (release), no allocation.

use dream_mpc::rng::Rng;

use crate::physics::{actuator_force, capsule_inertia_perp, rk4, solve_spd, Clock, GRAVITY};
use crate::task::{native_accessors, Backend, Native, TaskSpec};
use crate::tolerance::{Sigmoid, Tolerance};

/// Cart mass (kg).
pub const CART_MASS: f64 = 1.0;
/// Pole mass (kg).
pub const POLE_MASS: f64 = 0.1;
/// Hinge to pole centre of mass (m).
pub const POLE_HALF_LENGTH: f64 = 0.5;
/// Pole capsule radius (m).
pub const POLE_RADIUS: f64 = 0.045;
/// Slider damping (N s / m).
pub const SLIDER_DAMPING: f64 = 5e-4;
/// Hinge damping (N m s / rad).
pub const HINGE_DAMPING: f64 = 2e-6;
/// Motor gear (N per unit control).
pub const GEAR: f64 = 10.0;
/// Slider range (m).
pub const SLIDER_RANGE: f64 = 1.8;
/// Physics timestep (s).
pub const TIMESTEP: f64 = 0.01;
/// `solreflimit` of the slider: time constant and damping ratio.
const SOLREF: (f64, f64) = (0.08, 1.0);
/// MuJoCo's default `solimp`: dmin, dmax, width, midpoint, power.
const SOLIMP: (f64, f64, f64, f64, f64) = (0.9, 0.95, 0.001, 0.5, 2.0);

/// Pole inertia about its centre (kg m^2).
pub fn pole_inertia() -> f64 {
    capsule_inertia_perp(POLE_MASS, POLE_RADIUS, 2.0 * POLE_HALF_LENGTH)
}

fn mass_matrix(th: f64) -> [[f64; 2]; 2] {
    let ml = POLE_MASS * POLE_HALF_LENGTH;
    let c = ml * th.cos();
    [
        [CART_MASS + POLE_MASS, c],
        [c, pole_inertia() + ml * POLE_HALF_LENGTH],
    ]
}

/// MuJoCo's impedance `imp(|dist|)` from `solimp`.
fn impedance(dist: f64) -> f64 {
    let (dmin, dmax, width, mid, power) = SOLIMP;
    let x = (dist.abs() / width).min(1.0);
    let y = if x >= 1.0 {
        1.0
    } else if x <= mid {
        x.powf(power) / mid.powf(power - 1.0)
    } else {
        1.0 - (1.0 - x).powf(power) / (1.0 - mid).powf(power - 1.0)
    };
    dmin + y * (dmax - dmin)
}

/// Which variant of the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    SwingUp,
    Balance,
}

/// The cart-pole tasks.
pub struct Cartpole {
    spec: TaskSpec,
    variant: Variant,
    q: [f64; 2],
    v: [f64; 2],
    clock: Clock,
    centered: Tolerance,
    small_control: Tolerance,
    small_velocity: Tolerance,
    damping: [f64; 2],
    /// `(M^-1)_xx` at `theta = 0` (MuJoCo's `dof_invweight0` stand-in).
    invweight0: f64,
    /// Number of physics steps during which the slider limit was active.
    limit_steps: u64,
}

impl Cartpole {
    pub fn new(variant: Variant) -> Self {
        let name = match variant {
            Variant::SwingUp => "cartpole-swingup",
            Variant::Balance => "cartpole-balance",
        };
        let m0 = mass_matrix(0.0);
        let det = m0[0][0] * m0[1][1] - m0[0][1] * m0[1][0];
        Cartpole {
            spec: TaskSpec {
                name: name.into(),
                backend: Backend::Native,
                obs_size: 5,
                action_size: 1,
                control_timestep: TIMESTEP,
                physics_substeps: 1,
                episode_len: 1000,
            },
            variant,
            q: [0.0; 2],
            v: [0.0; 2],
            clock: Clock::default(),
            centered: Tolerance::gaussian((0.0, 0.0), 2.0).expect("valid"),
            small_control: Tolerance::new((0.0, 0.0), 1.0, Sigmoid::Quadratic, 0.0).expect("valid"),
            small_velocity: Tolerance::gaussian((0.0, 0.0), 5.0).expect("valid"),
            damping: [SLIDER_DAMPING, HINGE_DAMPING],
            invweight0: m0[1][1] / det,
            limit_steps: 0,
        }
    }

    /// Same task with other joint damping (for physics checks).
    pub fn with_damping(mut self, slider: f64, hinge: f64) -> Self {
        self.damping = [slider, hinge];
        self
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Physics steps (since construction) in which the slider limit pushed.
    pub fn limit_steps(&self) -> u64 {
        self.limit_steps
    }

    /// Total mechanical energy (J), potential zero at the hinge height.
    pub fn energy(&self) -> f64 {
        let m = mass_matrix(self.q[1]);
        let v = self.v;
        let kin =
            0.5 * (m[0][0] * v[0] * v[0] + 2.0 * m[0][1] * v[0] * v[1] + m[1][1] * v[1] * v[1]);
        kin + POLE_MASS * GRAVITY * POLE_HALF_LENGTH * self.q[1].cos()
    }

    /// Joint accelerations at `(q, v)` with slider force `force`, including
    /// damping and the slider limit. Returns whether the limit was active.
    fn acc(&self, q: &[f64; 2], v: &[f64; 2], force: f64) -> ([f64; 2], bool) {
        let ml = POLE_MASS * POLE_HALF_LENGTH;
        let (s, _) = q[1].sin_cos();
        let m = mass_matrix(q[1]);
        let f = [
            force + ml * s * v[1] * v[1] - self.damping[0] * v[0],
            ml * GRAVITY * s - self.damping[1] * v[1],
        ];
        let a0 = solve_spd(m, f);
        // Slider limit: constraint coordinate dist >= 0 inside the range,
        // Jacobian j = d dist / d x.
        let (dist, j) = if q[0] > SLIDER_RANGE {
            (SLIDER_RANGE - q[0], -1.0)
        } else if q[0] < -SLIDER_RANGE {
            (q[0] + SLIDER_RANGE, 1.0)
        } else {
            return (a0, false);
        };
        let (tc, zeta) = SOLREF;
        let dmax = SOLIMP.1;
        let k = 1.0 / (dmax * dmax * tc * tc * zeta * zeta);
        let b = 2.0 / (dmax * tc);
        let imp = impedance(dist);
        let aref = -b * (j * v[0]) - k * imp * dist;
        let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
        let a_inv = m[1][1] / det; // J M^-1 J^T with J = (+-1, 0)
        let r = ((1.0 - imp) / imp * self.invweight0).max(1e-15);
        let fc = ((aref - j * a0[0]) / (a_inv + r)).max(0.0);
        if fc == 0.0 {
            return (a0, false);
        }
        let da = solve_spd(m, [j * fc, 0.0]);
        ([a0[0] + da[0], a0[1] + da[1]], true)
    }

    fn physics_step(&mut self, force: f64) {
        let (mut q, mut v) = (self.q, self.v);
        let mut active = false;
        rk4(&mut q, &mut v, TIMESTEP, |q, v| {
            let (a, on) = self.acc(q, v, force);
            active |= on;
            a
        });
        self.q = q;
        self.v = v;
        self.limit_steps += u64::from(active);
    }

    fn reward(&self, control: f64) -> f64 {
        self.reward_at(self.q[0], self.q[1].cos(), self.v[1], control)
    }

    /// The suite's reward from the cart position, the pole angle's cosine,
    /// its angular velocity and the control: all in the observation.
    fn reward_at(&self, x: f64, cos_th: f64, th_dot: f64, control: f64) -> f64 {
        let upright = (cos_th + 1.0) / 2.0;
        let centered = (1.0 + self.centered.eval(x)) / 2.0;
        let small_control = (4.0 + self.small_control.eval(control)) / 5.0;
        let small_velocity = (1.0 + self.small_velocity.eval(th_dot)) / 2.0;
        upright * centered * small_control * small_velocity
    }
}

impl Native for Cartpole {
    native_accessors!(q, v);

    fn init(&mut self, rng: &mut Rng) {
        match self.variant {
            Variant::SwingUp => {
                self.q = [
                    0.01 * rng.normal(),
                    std::f64::consts::PI + 0.01 * rng.normal(),
                ];
            }
            Variant::Balance => {
                self.q = [rng.uniform_in(-0.1, 0.1), rng.uniform_in(-0.034, 0.034)];
            }
        }
        self.v = [0.01 * rng.normal(), 0.01 * rng.normal()];
    }

    fn advance(&mut self, action: &[f64]) -> f64 {
        let force = actuator_force(action[0], GEAR);
        for _ in 0..self.spec.physics_substeps {
            self.physics_step(force);
        }
        // The suite rewards the control as set (MuJoCo keeps ctrl
        // unclamped); for |u| >= 1 the quadratic term is 0 either way.
        self.reward(action[0])
    }

    fn observed_reward(&self, action: &[f64], next_obs: &[f64]) -> Option<f64> {
        Some(self.reward_at(next_obs[0], next_obs[1], next_obs[4], action[0]))
    }

    fn observe(&self, obs: &mut [f64]) {
        obs[0] = self.q[0];
        obs[1] = self.q[1].cos();
        obs[2] = self.q[1].sin();
        obs[3] = self.v[0];
        obs[4] = self.v[1];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{energy_drift, Task};

    #[test]
    fn energy_is_conserved_without_damping_or_actuation() {
        let mut c = Cartpole::new(Variant::SwingUp).with_damping(0.0, 0.0);
        // Pole starts 1 rad from upright, cart at rest: it swings and the
        // cart oscillates, staying well inside the rails.
        let start = (&[0.0, 1.0][..], &[0.0, 0.0][..]);
        let (e0, worst) = energy_drift(&mut c, Cartpole::energy, start, 1000, |obs| {
            assert!(obs[0].abs() < SLIDER_RANGE)
        });
        // RK4 at h = 0.01 on this system: drift far below 1e-6 J.
        assert!(worst < 1e-6, "energy drift {worst} J of {e0} J");
    }

    #[test]
    fn rails_stop_the_cart() {
        let mut c = Cartpole::new(Variant::Balance);
        let mut obs = [0.0; 5];
        c.reset(0, &mut obs).unwrap();
        c.set_state(&[0.0, std::f64::consts::PI], &[0.0, 0.0], &mut obs)
            .unwrap();
        let mut max_x: f64 = 0.0;
        for _ in 0..300 {
            c.step(&[1.0], &mut obs).unwrap();
            max_x = max_x.max(obs[0]);
        }
        assert!(c.limit_steps() > 0);
        // Soft limit: small penetration, never far beyond the rail.
        assert!(
            max_x > SLIDER_RANGE && max_x < SLIDER_RANGE + 0.2,
            "{max_x}"
        );
    }
}
