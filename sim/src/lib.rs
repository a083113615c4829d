//! Simulated robots for dream-mpc: the `Task` trait and its implementations.

pub mod task;

pub use task::{Backend, Step, Task, TaskError, TaskSpec};

#[cfg(feature = "mujoco")]
pub mod mujoco;
