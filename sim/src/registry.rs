//! Task registry: every task this crate can build, by name.
//!
//! Native tasks are always present. MuJoCo-backed tasks (`mujoco/<task>`)
//! are listed and built when the `mujoco` cargo feature is on.

use crate::acrobot::Acrobot;
use crate::cartpole::{Cartpole, Variant};
use crate::pendulum::Pendulum;
use crate::point_mass::PointMass;
use crate::task::{Task, TaskError};

/// Names of the native tasks, in listing order.
pub const NATIVE: [&str; 4] = [
    "pendulum-swingup",
    "cartpole-swingup",
    "cartpole-balance",
    "acrobot-swingup",
];

/// Plumbing tasks (not Control Suite tasks): the one point mass of
/// [`crate::point_mass`] in its two parameter sets.
pub const PLUMBING: [&str; 2] = [PointMass::NAME, PointMass::REACH];

/// All task names this build knows.
pub fn names() -> Vec<String> {
    let mut v: Vec<String> = NATIVE
        .iter()
        .chain(&PLUMBING)
        .map(|s| s.to_string())
        .collect();
    v.extend(mujoco_names());
    v
}

/// Build a task by name; an unknown name is an error listing the known ones.
pub fn make(name: &str) -> Result<Box<dyn Task>, TaskError> {
    match name {
        "pendulum-swingup" => Ok(Box::new(Pendulum::swingup())),
        "cartpole-swingup" => Ok(Box::new(Cartpole::new(Variant::SwingUp))),
        "cartpole-balance" => Ok(Box::new(Cartpole::new(Variant::Balance))),
        "acrobot-swingup" => Ok(Box::new(Acrobot::swingup())),
        PointMass::NAME => Ok(Box::new(PointMass::plumbing())),
        PointMass::REACH => Ok(Box::new(PointMass::reach())),
        other => match make_mujoco(other) {
            Some(task) => task,
            None => Err(TaskError::UnknownTask {
                name: other.to_string(),
                known: names(),
            }),
        },
    }
}

// ---- MuJoCo backend ------------------------------------------------------

/// Names of the MuJoCo tasks of this build (none without the backend).
#[cfg(not(feature = "mujoco"))]
fn mujoco_names() -> Vec<String> {
    Vec::new()
}

/// `None` when `name` is not a MuJoCo task of this build.
#[cfg(not(feature = "mujoco"))]
fn make_mujoco(_name: &str) -> Option<Result<Box<dyn Task>, TaskError>> {
    None
}

/// Names of the MuJoCo tasks (`mujoco/<task>`).
#[cfg(feature = "mujoco")]
fn mujoco_names() -> Vec<String> {
    crate::mujoco::names()
}

/// `None` when `name` does not carry the `mujoco/` prefix.
#[cfg(feature = "mujoco")]
fn make_mujoco(name: &str) -> Option<Result<Box<dyn Task>, TaskError>> {
    name.starts_with(crate::mujoco::PREFIX)
        .then(|| crate::mujoco::make(name))
}
