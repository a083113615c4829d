//! Errors of the bundle format: files, manifest, checksums, references.
//! Every variant names the file, module or value at fault. (A module the
//! kernel compiler refuses is a [`crate::kernels::CompileError`]; the
//! loader's [`crate::load::LoadError`] holds either.)

use std::fmt;
use std::path::PathBuf;

/// Why a bundle folder does not satisfy the format.
#[derive(Debug, Clone, PartialEq)]
pub enum BundleError {
    /// A file could not be read or written (`message` says which).
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
    /// The manifest's sizes and a module's declared interface disagree, or
    /// a module a consumer needs is missing.
    Interface { module: String, message: String },
    /// `references.json` is malformed or does not match the manifest.
    References { message: String },
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleError::Io { path, message } => {
                write!(f, "{}: {message}", path.display())
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
            BundleError::Interface { module, message } => {
                write!(f, "module `{module}`: interface mismatch: {message}")
            }
            BundleError::References { message } => write!(f, "references: {message}"),
        }
    }
}

impl std::error::Error for BundleError {}
