//! Policies for the closed loop: something that maps an observation to a
//! normalized action. The Dream-MPC controller plugs in here later.
//!
//! Built-in: `zero`, `random` (uniform in [-1, 1]) and `swing`, a scripted
//! energy-pumping controller per task family (so the demo shows a nonzero
//! return; far from optimal).

use std::fmt;

use dream_mpc::rng::Rng;

use crate::{acrobot, cartpole, pendulum, physics::GRAVITY};

/// Maps an observation to an action. `act` is called once per control
/// step and should not allocate.
pub trait Policy {
    /// Called at the start of each episode with its seed.
    fn reset(&mut self, _seed: u64) {}
    /// Write the action (normalized to [-1, 1]) for `obs`.
    fn act(&mut self, obs: &[f64], action: &mut [f64]);
}

/// Which built-in policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    Zero,
    Random,
    Swing,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 3] = [PolicyKind::Zero, PolicyKind::Random, PolicyKind::Swing];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::Zero => "zero",
            PolicyKind::Random => "random",
            PolicyKind::Swing => "swing",
        }
    }
}

impl std::str::FromStr for PolicyKind {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| PolicyError::UnknownPolicy(s.to_string()))
    }
}

/// Why a policy could not be built.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyError {
    UnknownPolicy(String),
    /// The scripted swing controller has no recipe for this task.
    NoSwingFor(String),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::UnknownPolicy(p) => {
                write!(f, "unknown policy '{p}'; known: zero, random, swing")
            }
            PolicyError::NoSwingFor(t) => write!(
                f,
                "no scripted swing controller for task '{t}' (have: pendulum-*, cartpole-*, acrobot-*)"
            ),
        }
    }
}

impl std::error::Error for PolicyError {}

/// Build a built-in policy for `task`.
pub fn make(kind: PolicyKind, task: &str) -> Result<Box<dyn Policy>, PolicyError> {
    Ok(match kind {
        PolicyKind::Zero => Box::new(ZeroPolicy),
        PolicyKind::Random => Box::new(RandomPolicy { rng: Rng::new(0) }),
        PolicyKind::Swing => {
            if task.starts_with("pendulum-") {
                Box::new(PendulumSwing)
            } else if task.starts_with("cartpole-") {
                Box::new(CartpoleSwing)
            } else if task.starts_with("acrobot-") {
                Box::new(AcrobotSwing)
            } else {
                return Err(PolicyError::NoSwingFor(task.to_string()));
            }
        }
    })
}

/// Always 0.
pub struct ZeroPolicy;

impl Policy for ZeroPolicy {
    fn act(&mut self, _obs: &[f64], action: &mut [f64]) {
        action.fill(0.0);
    }
}

/// Uniform in [-1, 1], reseeded per episode.
pub struct RandomPolicy {
    rng: Rng,
}

impl Policy for RandomPolicy {
    fn reset(&mut self, seed: u64) {
        // Offset so the policy's stream differs from the task's reset draw.
        self.rng = Rng::new(seed ^ 0x5EED_0FAC_710A_5EED);
    }
    fn act(&mut self, _obs: &[f64], action: &mut [f64]) {
        for a in action.iter_mut() {
            *a = self.rng.uniform_in(-1.0, 1.0);
        }
    }
}

/// Pendulum: pump energy towards the upright energy (torque along the
/// velocity while short of it), PD near the top.
pub struct PendulumSwing;

impl Policy for PendulumSwing {
    fn act(&mut self, obs: &[f64], action: &mut [f64]) {
        let (c, s, w) = (obs[0], obs[1], obs[2]);
        let th = s.atan2(c);
        let inertia = pendulum::inertia();
        let mgl = pendulum::MASS * GRAVITY * pendulum::LENGTH;
        if c > 0.9 {
            // Gravity torque at 25 deg is ~2 N m > 1 N m: only catchable near the top.
            action[0] = (-10.0 * th - 2.0 * w).clamp(-1.0, 1.0);
        } else {
            let energy = 0.5 * inertia * w * w + mgl * (c - 1.0);
            action[0] = if energy < 0.0 {
                w.signum()
            } else {
                -w.signum() * 0.2
            };
        }
    }
}

/// Cart-pole: energy-based swing-up (Astrom-Furuta) then a linear
/// state-feedback balance near upright; keeps the cart near the centre.
pub struct CartpoleSwing;

impl Policy for CartpoleSwing {
    fn act(&mut self, obs: &[f64], action: &mut [f64]) {
        let (x, c, s, xd, w) = (obs[0], obs[1], obs[2], obs[3], obs[4]);
        let th = s.atan2(c);
        let ml = cartpole::POLE_MASS * cartpole::POLE_HALF_LENGTH;
        let j = cartpole::pole_inertia() + ml * cartpole::POLE_HALF_LENGTH;
        let u = if c > 0.8 {
            // LQR balance (force units), see BALANCE_GAIN.
            BALANCE_GAIN[0] * x + BALANCE_GAIN[1] * th + BALANCE_GAIN[2] * xd + BALANCE_GAIN[3] * w
        } else {
            // Energy relative to upright at rest (negative while short).
            let energy = 0.5 * j * w * w + ml * GRAVITY * (c - 1.0);
            // Astrom-Furuta pumping: push the cart so that the pole's
            // energy grows (force along w cos th while short of energy),
            // plus a weak spring pulling the cart to the centre.
            8.0 * energy * (w * c).signum() - 2.0 * x - 1.0 * xd
        };
        action[0] = (u / cartpole::GEAR).clamp(-1.0, 1.0);
    }
}

/// Cart-pole balance feedback `F = K [x, th, xd, thd]` (newtons):
/// discrete-time LQR (dt = 0.01, zero-order hold) on this crate's cart-pole
/// linearised at upright (same masses and pole inertia), cost weights
/// Q = diag(1, 10, 1, 1) dt and R = 0.1 dt, solved offline by Riccati
/// iteration (numpy) and rounded; closed-loop eigenvalue moduli 0.93-0.99.
pub const BALANCE_GAIN: [f64; 4] = [2.966, 47.82, 5.585, 12.59];

/// Acrobot: pump energy with the elbow (torque along the relative velocity
/// while short of the upright energy); no balance phase.
pub struct AcrobotSwing;

impl Policy for AcrobotSwing {
    fn act(&mut self, obs: &[f64], action: &mut [f64]) {
        let (w1, w2) = (obs[4], obs[5]);
        // Height of the tip relative to the shoulder: cos q1 + cos(q1+q2).
        let height = acrobot::LENGTH[0] * obs[2] + acrobot::LENGTH[1] * obs[3];
        action[0] = if height < 1.5 {
            (w1 * 2.0 + w2).signum()
        } else {
            (-2.0 * obs[1] - 0.5 * w2).clamp(-1.0, 1.0)
        };
    }
}
