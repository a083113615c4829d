//! Loading and verification, above the kernels: [`Bundle::load`] reads
//! the manifest (checked and checksummed by [`crate::bundle`]), compiles
//! every module with [`crate::kernels`] and keeps the result, all or
//! nothing; [`Bundle::verify_references`] runs the libtorch reference
//! vectors through the compiled kernels, forward and VJP;
//! [`Bundle::tract_agreement`] compares them with tract, the reference
//! ONNX executor ([`tract_forward`]). Start-up cost only.
//!
//! A loaded [`Bundle`] holds its compiled modules as `Arc<Program>`:
//! consumers (the planner's model, the agent) keep their own handles, so a
//! bundle can be dropped, shared in an `Arc` or moved to another thread
//! after the agent is built; nothing borrows it for `'static`.

mod error;
mod verify;

pub use error::LoadError;
pub use verify::{
    run_module, scaled_error, tract_error, tract_forward, ModuleAgreement, ReferenceReport,
};

use crate::bundle::files::{read_manifest_with, read_verified};
use crate::bundle::manifest::Manifest;
use crate::bundle::{BundleError, Limits};
use crate::kernels::Program;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tolerance of [`Bundle::verify_references`] and of the tract agreement
/// check: the scaled error `max_i |ours_i - ref_i| / max(max_i |ref_i|, 1e-3)`
/// of every output and every VJP must stay below this (float32 kernels
/// with a different summation order than libtorch's agree to ~1e-6 on the
/// MLPs we ship; 1e-4 leaves room for deeper models without hiding a wrong
/// kernel, whose error is O(1)).
pub const REFERENCE_TOLERANCE: f32 = 1e-4;

/// A loaded, verified and compiled bundle.
#[derive(Debug)]
pub struct Bundle {
    pub manifest: Manifest,
    pub dir: PathBuf,
    /// Compiled modules by manifest name (shared handles: see the module
    /// docs).
    pub modules: BTreeMap<String, Arc<Program>>,
    onnx: BTreeMap<String, Vec<u8>>,
    /// The size caps the bundle was loaded under (its references are read
    /// under the same).
    pub limits: Limits,
}

impl Bundle {
    /// [`Bundle::load_with`] under the default size caps ([`Limits`]).
    pub fn load(dir: &Path) -> Result<Bundle, LoadError> {
        Bundle::load_with(dir, Limits::default())
    }

    /// Load the bundle in `dir`: read and check the manifest and every
    /// checksum, then parse, type-check and compile each ONNX module.
    /// Every file is confined to `dir` and capped by `limits`
    /// ([`crate::bundle::confine`]). Any failure returns the first error
    /// and no model. Start-up only.
    pub fn load_with(dir: &Path, limits: Limits) -> Result<Bundle, LoadError> {
        let manifest = read_manifest_with(dir, &limits)?;
        let mut modules = BTreeMap::new();
        let mut onnx = BTreeMap::new();
        for (name, spec) in &manifest.modules {
            let bytes = read_verified(dir, &manifest, &spec.file, &limits)?;
            let program = Program::compile(name, &bytes, spec)?;
            modules.insert(name.clone(), Arc::new(program));
            onnx.insert(name.clone(), bytes);
        }
        Ok(Bundle {
            manifest,
            dir: dir.to_path_buf(),
            modules,
            onnx,
            limits,
        })
    }

    /// The compiled module `name` (a shared handle), or an error naming it.
    pub fn module(&self, name: &str) -> Result<&Arc<Program>, BundleError> {
        self.modules
            .get(name)
            .ok_or_else(|| BundleError::Interface {
                module: name.into(),
                message: format!(
                    "the bundle has no module `{name}` (has {:?})",
                    self.modules.keys().collect::<Vec<_>>()
                ),
            })
    }

    /// The verified ONNX bytes of module `name`.
    pub fn onnx_bytes(&self, name: &str) -> Option<&[u8]> {
        self.onnx.get(name).map(|v| v.as_slice())
    }
}
