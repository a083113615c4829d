//! [`Bundle`]: a bundle's manifest and its compiled modules, loaded all or
//! nothing (see the module docs of [`crate::load`]). Start-up only.

use super::error::LoadError;
use crate::bundle::files::{read_manifest_with, read_verified};
use crate::bundle::manifest::Manifest;
use crate::bundle::{BundleError, Limits};
use crate::kernels::{Program, Weights};
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

/// The tolerance of the same checks for a bundle loaded with bfloat16
/// weights ([`Weights::Bf16`]): each weight carries a relative rounding
/// error of up to 2^-9 (about 2e-3), and with the `vdpbf16ps` kernel each
/// activation entering a product as well; these sum over a layer's inputs
/// like noise and pass through every layer of a module. Measured on the
/// shipped models: worst scaled error 1.9e-2 (cart-pole) and 7.5e-2
/// (pendulum: the reward of a reference case whose rewards are all below
/// 0.017, so an absolute error of 1.2e-3 scales up); tract agreement on
/// TD-MPC2-shaped 5M bundles 3e-3 to 5e-3. 1e-1 passes those and still
/// refuses a wrong kernel or a corrupted reference (error O(1)). The
/// float32 tolerance does not apply: a bf16 bundle is a coarser model of
/// the same weights.
pub const BF16_REFERENCE_TOLERANCE: f32 = 1e-1;

/// A loaded, verified and compiled bundle.
#[derive(Debug)]
pub struct Bundle {
    pub manifest: Manifest,
    pub dir: PathBuf,
    /// Compiled modules by manifest name (shared handles: see the module
    /// docs).
    pub modules: BTreeMap<String, Arc<Program>>,
    pub(super) onnx: BTreeMap<String, Vec<u8>>,
    /// The size caps the bundle was loaded under (its references are read
    /// under the same).
    pub limits: Limits,
    /// How the compiled modules store their weight matrices.
    pub weights: Weights,
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
        Bundle::load_as(dir, limits, Weights::F32)
    }

    /// [`Bundle::load_with`], storing every weight matrix as `weights`
    /// (bfloat16: half the bytes per planner tick, checked against the
    /// references with [`BF16_REFERENCE_TOLERANCE`]).
    pub fn load_as(dir: &Path, limits: Limits, weights: Weights) -> Result<Bundle, LoadError> {
        let manifest = read_manifest_with(dir, &limits)?;
        let mut modules = BTreeMap::new();
        let mut onnx = BTreeMap::new();
        for (name, spec) in &manifest.modules {
            let bytes = read_verified(dir, &manifest, &spec.file, &limits)?;
            let program = Program::compile_with(name, &bytes, spec, weights)?;
            modules.insert(name.clone(), Arc::new(program));
            onnx.insert(name.clone(), bytes);
        }
        Ok(Bundle {
            manifest,
            dir: dir.to_path_buf(),
            modules,
            onnx,
            limits,
            weights,
        })
    }

    /// The reference tolerance for this bundle's weight format
    /// ([`REFERENCE_TOLERANCE`] or [`BF16_REFERENCE_TOLERANCE`]).
    pub fn tolerance(&self) -> f32 {
        match self.weights {
            Weights::F32 => REFERENCE_TOLERANCE,
            Weights::Bf16 => BF16_REFERENCE_TOLERANCE,
        }
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
