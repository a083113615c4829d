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
    /// A file name that is absolute, holds `..`, resolves outside the
    /// bundle folder or names something other than a regular file (see
    /// [`super::confine`]); nothing was read from it.
    UnsafePath { file: String, message: String },
    /// A file over its size cap ([`super::confine::Limits`]).
    TooLarge { file: String, bytes: u64, cap: u64 },
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
            BundleError::UnsafePath { file, message } => {
                write!(f, "file `{file}` refused: {message}")
            }
            BundleError::TooLarge { file, bytes, cap } => write!(
                f,
                "file `{file}` is over its size cap: at least {bytes} bytes > {cap} bytes \
                 ({:.1} MiB; raise it with `check --max-file-mib` or the `bundle_max_file_mib` parameter)",
                *cap as f64 / (1u64 << 20) as f64
            ),
        }
    }
}

impl std::error::Error for BundleError {}
