//! The loader's error: a bundle-format error or a module the kernel
//! compiler refused, plus failures of the tract reference run.

use crate::bundle::BundleError;
use crate::kernels::CompileError;
use std::fmt;

/// Why [`super::bundle::Bundle::load`] (or a verification) failed. Loading is all
/// or nothing: any of these means no model was produced.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadError {
    /// The folder does not satisfy the bundle format (file, manifest,
    /// checksum, interface sizes, references).
    Bundle(BundleError),
    /// A module the kernel compiler refused (names op and node).
    Compile(CompileError),
    /// tract, the reference executor, could not run a module.
    Tract { module: String, message: String },
}

impl LoadError {
    /// The module at fault, when one is.
    pub fn module(&self) -> Option<&str> {
        match self {
            LoadError::Bundle(BundleError::Interface { module, .. }) => Some(module),
            LoadError::Bundle(_) => None,
            LoadError::Compile(e) => Some(e.module()),
            LoadError::Tract { module, .. } => Some(module),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Bundle(e) => write!(f, "{e}"),
            LoadError::Compile(e) => write!(f, "{e}"),
            LoadError::Tract { module, message } => write!(f, "module `{module}`: {message}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Bundle(e) => Some(e),
            LoadError::Compile(e) => Some(e),
            LoadError::Tract { .. } => None,
        }
    }
}

crate::error_from!(LoadError {
    Bundle(BundleError),
    Compile(CompileError),
});
