//! Task registry: every task this crate can build, by name.
//!
//! Native tasks are always present. MuJoCo-backed tasks (`mujoco/<task>`)
//! are to be added behind a `mujoco` cargo feature through the two hook
//! functions at the bottom of this file.

use crate::acrobot::Acrobot;
use crate::cartpole::{Cartpole, Variant};
use crate::pendulum::Pendulum;
use crate::task::{Task, TaskError};

/// Names of the native tasks, in listing order.
pub const NATIVE: [&str; 4] = [
    "pendulum-swingup",
    "cartpole-swingup",
    "cartpole-balance",
    "acrobot-swingup",
];

/// All task names this build knows.
pub fn names() -> Vec<String> {
    let mut v: Vec<String> = NATIVE.iter().map(|s| s.to_string()).collect();
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
        other => match make_mujoco(other) {
            Some(task) => task,
            None => Err(TaskError::UnknownTask {
                name: other.to_string(),
                known: names(),
            }),
        },
    }
}

// ---- MuJoCo backend hook -------------------------------------------------
// The MuJoCo helper adds a `mujoco` cargo feature and puts
// `#[cfg(not(feature = "mujoco"))]` on these two empty functions, with
// `#[cfg(feature = "mujoco")]` twins that list and build `mujoco/<task>`.
// (No `cfg` here yet: an undeclared feature name fails clippy's
// `unexpected_cfgs`.)

/// Names of the MuJoCo tasks of this build (none without the backend).
fn mujoco_names() -> Vec<String> {
    Vec::new()
}

/// `None` when `name` is not a MuJoCo task of this build.
fn make_mujoco(_name: &str) -> Option<Result<Box<dyn Task>, TaskError>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_builds_with_matching_spec() {
        for name in names() {
            let t = make(&name).unwrap();
            assert_eq!(t.spec().name, name);
            assert_eq!(t.spec().episode_len, 1000);
        }
    }

    #[test]
    fn unknown_name_lists_known_tasks() {
        let err = make("pendulum-balance").err().unwrap();
        let msg = err.to_string();
        assert!(msg.contains("pendulum-balance"), "{msg}");
        assert!(msg.contains("cartpole-swingup"), "{msg}");
        assert!(matches!(err, TaskError::UnknownTask { .. }));
    }
}
