//! Simulated robots for dream-mpc: the `Task` trait and its implementations.

pub mod serve;
pub mod task;

pub use task::{Backend, Step, Task, TaskError, TaskSpec};
