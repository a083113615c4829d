//! Task lookup for the trainer: every task of `dream_mpc_sim`'s registry
//! (the native Control Suite tasks, the plumbing point masses — among them
//! `trainer/reach-1d`, the short task of the trainer's own tests — and
//! `mujoco/<task>` when the sim's `mujoco` feature is on).

use dream_mpc_sim::task::{Task, TaskError};

/// The trainer's plumbing task (a point mass that must reach x = 0).
pub const REACH_1D: &str = dream_mpc_sim::point_mass::PointMass::REACH;

/// Names this build can train on.
pub fn known() -> Vec<String> {
    dream_mpc_sim::registry::names()
}

/// A task by name, or `UnknownTask` listing the known names.
pub fn make(name: &str) -> Result<Box<dyn Task>, TaskError> {
    dream_mpc_sim::registry::make(name)
}
