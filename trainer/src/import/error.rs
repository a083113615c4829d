//! [`ImportError`]: what can go wrong importing a TD-MPC2 checkpoint.

use crate::export::ExportError;

/// What can go wrong importing; every checkpoint error names its key.
#[derive(Debug)]
pub enum ImportError {
    /// The checkpoint could not be read (file, pickle, safetensors).
    Checkpoint(String),
    /// Bad command-line options (sizes, bounds, episode length, output).
    Options(String),
    /// A key the size requires is absent.
    MissingKey { key: String, expected: Vec<usize> },
    /// A key the importer does not know (nor accepts as a known extra).
    UnknownKey { key: String },
    /// A tensor whose shape the given size and observation/action sizes
    /// do not give.
    Shape {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
        size: String,
    },
    /// A NaN or infinite weight.
    NonFinite {
        key: String,
        index: usize,
        value: f32,
    },
    /// A multi-task checkpoint (task embedding or action masks).
    MultiTask { key: String },
    /// The checked weights do not fit the trainer's model of the same
    /// sizes (names the layer).
    Model(String),
    /// Writing the bundle or computing references failed.
    Export(ExportError),
    /// The written bundle did not pass the controller's checks (removed).
    Verify(String),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Checkpoint(m) => write!(f, "checkpoint: {m}"),
            ImportError::Options(m) => write!(f, "options: {m}"),
            ImportError::MissingKey { key, expected } => write!(
                f,
                "checkpoint: missing key `{key}` (expected shape {expected:?})"
            ),
            ImportError::UnknownKey { key } => write!(
                f,
                "checkpoint: unknown key `{key}` (not part of a single-task TD-MPC2 model)"
            ),
            ImportError::Shape {
                key,
                expected,
                found,
                size,
            } => write!(
                f,
                "checkpoint: key `{key}` has shape {found:?}, size {size} with the given observation/action sizes expects {expected:?}"
            ),
            ImportError::NonFinite { key, index, value } => write!(
                f,
                "checkpoint: key `{key}` holds a non-finite value {value} at flat index {index}"
            ),
            ImportError::MultiTask { key } => write!(
                f,
                "checkpoint: key `{key}` belongs to a multi-task model; only single-task TD-MPC2 checkpoints can be imported"
            ),
            ImportError::Model(m) => write!(f, "checkpoint onto the trainer's model: {m}"),
            ImportError::Export(e) => write!(f, "{e}"),
            ImportError::Verify(m) => write!(f, "the imported bundle failed verification: {m}"),
        }
    }
}

impl std::error::Error for ImportError {}

dream_mpc::error_from!(ImportError { Export(ExportError) });
