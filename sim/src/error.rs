//! The sim's error type, below every other module: tasks, their physics
//! clock and the registry all report through it.

use std::fmt;

/// What can go wrong when driving a task.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskError {
    /// No task of that name in the registry; lists the known names.
    UnknownTask { name: String, known: Vec<String> },
    /// The action has the wrong number of elements.
    ActionSize { expected: usize, got: usize },
    /// The action holds NaN or infinity at `index`.
    NonFiniteAction { index: usize, value: f64 },
    /// A buffer passed in has the wrong length.
    BufferSize {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// `step` after the episode ended; call `reset`.
    EpisodeOver,
    /// `step` before the first `reset`.
    NotReset,
    /// A backend is missing (e.g. libmujoco or the suite's model files).
    Backend(String),
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::UnknownTask { name, known } => {
                write!(
                    f,
                    "unknown task '{name}'; known tasks: {}",
                    known.join(", ")
                )
            }
            TaskError::ActionSize { expected, got } => {
                write!(f, "action has {got} elements, the task expects {expected}")
            }
            TaskError::NonFiniteAction { index, value } => {
                write!(
                    f,
                    "action element {index} is {value}; actions must be finite"
                )
            }
            TaskError::BufferSize {
                what,
                expected,
                got,
            } => write!(f, "{what} buffer has length {got}, expected {expected}"),
            TaskError::EpisodeOver => write!(f, "the episode is over; call reset first"),
            TaskError::NotReset => write!(f, "the task was never reset; call reset first"),
            TaskError::Backend(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for TaskError {}
