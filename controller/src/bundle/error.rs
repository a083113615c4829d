//! The one error type of bundle loading and compiling: every variant names
//! the file, module, op or value at fault.

use std::fmt;
use std::path::PathBuf;

/// Why a bundle (or one module of it) was refused. Loading is all or
/// nothing: any of these means no model was produced.
#[derive(Debug, Clone, PartialEq)]
pub enum BundleError {
    /// A file could not be read.
    Io { path: PathBuf, message: String },
    /// `manifest.json` is malformed or inconsistent.
    Manifest { path: PathBuf, message: String },
    /// A bundle file has no entry in `checksums`.
    MissingChecksum { file: String },
    /// A file's sha256 differs from the manifest's.
    ChecksumMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    /// The ONNX bytes do not decode or do not type-check (tract's message).
    Onnx { module: String, message: String },
    /// An op outside the kernel registry.
    UnsupportedOp {
        module: String,
        node: String,
        op: String,
    },
    /// A supported op used in an unsupported way (attribute, shape, ...).
    UnsupportedNode {
        module: String,
        node: String,
        op: String,
        reason: String,
    },
    /// A weight is NaN or infinite.
    NonFinite {
        module: String,
        tensor: String,
        index: usize,
        value: f32,
    },
    /// Manifest and ONNX graph disagree on the module's interface.
    Interface { module: String, message: String },
    /// `references.json` is malformed or does not match the manifest.
    References { message: String },
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleError::Io { path, message } => {
                write!(f, "cannot read {}: {message}", path.display())
            }
            BundleError::Manifest { path, message } => {
                write!(f, "bad manifest {}: {message}", path.display())
            }
            BundleError::MissingChecksum { file } => {
                write!(f, "file `{file}` has no sha256 in the manifest's checksums")
            }
            BundleError::ChecksumMismatch {
                file,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "checksum mismatch for `{file}`: manifest says {expected}, file has {actual}"
                )
            }
            BundleError::Onnx { module, message } => {
                write!(f, "module `{module}`: invalid ONNX: {message}")
            }
            BundleError::UnsupportedOp { module, node, op } => {
                write!(
                    f,
                    "module `{module}`: unsupported op `{op}` (node `{node}`)"
                )
            }
            BundleError::UnsupportedNode {
                module,
                node,
                op,
                reason,
            } => {
                write!(
                    f,
                    "module `{module}`: op `{op}` (node `{node}`) not supported as used: {reason}"
                )
            }
            BundleError::NonFinite {
                module,
                tensor,
                index,
                value,
            } => {
                write!(
                    f,
                    "module `{module}`: weight `{tensor}`[{index}] is {value}"
                )
            }
            BundleError::Interface { module, message } => {
                write!(f, "module `{module}`: interface mismatch: {message}")
            }
            BundleError::References { message } => write!(f, "references: {message}"),
        }
    }
}

impl std::error::Error for BundleError {}
