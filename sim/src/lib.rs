//! Simulated robots for dream-mpc: the `Task` trait and its implementations.
//!
//! Native DeepMind Control Suite tasks (`pendulum-swingup`,
//! `cartpole-swingup`, `cartpole-balance`, `acrobot-swingup`) run on this
//! crate's own f64 physics ([`physics`]), with the suite's reward shaping
//! ([`tolerance`]); [`registry`] builds them by name, [`closed_loop`] runs a
//! [`policy::Policy`] on them.

pub mod acrobot;
pub mod cartpole;
pub mod closed_loop;
pub mod error;
pub mod evaluate;
pub mod pendulum;
pub mod physics;
pub mod point_mass;
pub mod policy;
pub mod registry;
pub mod serve;
pub mod task;
pub mod tolerance;

pub use task::{Backend, Step, Task, TaskError, TaskSpec};

#[cfg(feature = "mujoco")]
pub mod mujoco;
