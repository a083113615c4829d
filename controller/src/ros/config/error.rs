//! Why a parameter file or value is refused, and the bounds on reading
//! one.

use super::table::PARAMS;
use crate::ros::names::DEFAULT_NODE;
pub use crate::ros::names::{clip, MAX_QUOTE};
use std::fmt;
use std::path::PathBuf;

/// Section name of this node in a parameter file (its default node name).
pub const NODE_NAME: &str = DEFAULT_NODE;
/// Largest parameter file read (bytes); a larger one is refused before
/// parsing. A full parameter file for this node is about 2 KB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Deepest nesting (mappings, sequences, flow brackets) accepted; this
/// node's deepest key is two levels under `ros__parameters`.
pub const MAX_DEPTH: usize = 32;

/// Why the parameters were refused.
#[derive(Debug)]
pub enum ConfigError {
    Io {
        path: PathBuf,
        error: String,
    },
    /// The file is larger than [`MAX_FILE_BYTES`] (refused unread).
    TooLarge {
        path: PathBuf,
        bytes: u64,
    },
    /// Nesting deeper than [`MAX_DEPTH`] (refused before parsing).
    TooDeep {
        line: usize,
    },
    Yaml {
        path: PathBuf,
        error: String,
    },
    /// The file lacks `dream_mpc: ros__parameters:` (or `/**:`).
    Layout(String),
    UnknownKey {
        key: String,
        /// The closest known key, when one is close.
        suggestion: Option<&'static str>,
    },
    BadValue {
        key: String,
        value: String,
        expected: String,
    },
    Missing {
        key: String,
        why: String,
    },
    /// A malformed `--ros-args` argument.
    Argument(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Io { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            ConfigError::TooLarge { path, bytes } => write!(
                f,
                "{} is {bytes} bytes, over the {MAX_FILE_BYTES}-byte limit for parameter files",
                path.display()
            ),
            ConfigError::TooDeep { line } => write!(
                f,
                "parameters nested deeper than {MAX_DEPTH} levels (line {line}); refused before parsing"
            ),
            ConfigError::Yaml { path, error } => {
                write!(f, "{} is not valid YAML: {}", path.display(), clip(error))
            }
            ConfigError::Layout(m) => write!(f, "{m}"),
            ConfigError::UnknownKey {
                key,
                suggestion: Some(s),
            } => write!(f, "unknown parameter '{}' (did you mean '{s}'?)", clip(key)),
            ConfigError::UnknownKey {
                key,
                suggestion: None,
            } => write!(
                f,
                "unknown parameter '{}'; known parameters: {}",
                clip(key),
                PARAMS.iter().map(|p| p.key).collect::<Vec<_>>().join(", ")
            ),
            ConfigError::BadValue {
                key,
                value,
                expected,
            } => write!(
                f,
                "parameter '{key}' = {} is invalid: expected {expected}",
                clip(value)
            ),
            ConfigError::Missing { key, why } => write!(f, "parameter '{key}' is required: {why}"),
            ConfigError::Argument(m) => write!(f, "bad --ros-args argument: {m}"),
        }
    }
}

impl std::error::Error for ConfigError {}
