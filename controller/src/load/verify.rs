//! Verification of a loaded bundle: its compiled kernels against the
//! libtorch reference vectors (forward and VJP) and against tract, the
//! reference ONNX executor. Allocates freely: start-up and tests only.

use super::bundle::Bundle;
use super::error::LoadError;
use crate::bundle::files::read_references;
use crate::bundle::manifest::{ModuleSpec, References, TensorSpec};
use crate::bundle::BundleError;
use crate::kernels::Program;
use crate::rng::Rng;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use tract_onnx::prelude::*;

/// Largest batch of one reference case (the exporter writes a few rows;
/// `dream-mpc check --rows` has the same bound).
pub const MAX_REFERENCE_BATCH: usize = 4096;

/// Scaled error of one tensor (see [`REFERENCE_TOLERANCE`](super::bundle::REFERENCE_TOLERANCE)).
/// A reference that is not finite (e.g. 1e39 read as f32 = inf) cannot
/// vouch for anything: the error is infinite, never NaN (which a max would
/// drop) or 0.
pub fn scaled_error(ours: &[f32], reference: &[f32]) -> f32 {
    if reference.iter().any(|v| !v.is_finite()) {
        return f32::INFINITY;
    }
    let scale = reference.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    let diff = ours.iter().zip(reference).fold(0.0f32, |m, (a, b)| {
        if (a - b).is_nan() {
            f32::INFINITY
        } else {
            m.max((a - b).abs())
        }
    });
    diff / scale
}

/// Agreement of one module with its references.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleAgreement {
    pub module: String,
    pub cases: usize,
    /// Output name -> worst scaled error over the cases (forward).
    pub forward: BTreeMap<String, f32>,
    /// Input name -> worst scaled error over the cases (VJP).
    pub vjp: BTreeMap<String, f32>,
}

impl ModuleAgreement {
    /// Worst error of this module.
    /// A NaN error counts as infinite (`f32::max` would drop it).
    pub fn worst(&self) -> f32 {
        self.forward
            .values()
            .chain(self.vjp.values())
            .fold(
                0.0,
                |m, v| if v.is_nan() { f32::INFINITY } else { m.max(*v) },
            )
    }
}

/// Result of [`Bundle::verify_references`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceReport {
    pub tolerance: f32,
    pub modules: Vec<ModuleAgreement>,
}

impl ReferenceReport {
    /// Every module's worst error is within the tolerance.
    pub fn passed(&self) -> bool {
        self.modules.iter().all(|m| m.worst() <= self.tolerance)
    }

    /// The first module over the tolerance, with its worst error.
    pub fn first_failure(&self) -> Option<(&str, f32)> {
        self.modules
            .iter()
            .find(|m| m.worst() > self.tolerance)
            .map(|m| (m.module.as_str(), m.worst()))
    }
}

impl Bundle {
    /// The start-up verification shared by `dream-mpc check` and `dream-mpc
    /// run`: the bundle must carry libtorch references for every module of
    /// its manifest (at least one case each, forward and VJP), and the
    /// compiled kernels must reproduce them within [`Bundle::tolerance`]
    /// ([`REFERENCE_TOLERANCE`](super::bundle::REFERENCE_TOLERANCE) for float32 weights)
    /// (non-finite references or errors fail). Returns the report; any
    /// failure is an error naming the module. Cost: one forward and one
    /// VJP per reference case, at start-up only (allocates).
    pub fn verify(&self) -> Result<ReferenceReport, LoadError> {
        if self.manifest.references.is_none() {
            return Err(BundleError::References {
                message: "the bundle has no reference vectors (manifest `references`); \
                          the kernels cannot be checked against the trained model"
                    .into(),
            }
            .into());
        }
        let r = self.verify_references()?;
        for name in self.manifest.modules.keys() {
            match r.modules.iter().find(|m| &m.module == name) {
                Some(m) if m.cases > 0 => {}
                _ => {
                    return Err(BundleError::References {
                        message: format!("module `{name}` has no reference cases"),
                    }
                    .into())
                }
            }
        }
        if let Some((name, err)) = r.first_failure() {
            return Err(BundleError::References {
                message: format!(
                    "module `{name}` disagrees with its libtorch references: scaled error {err:.2e} \
                     > tolerance {:.0e} (weights altered, or a kernel bug)",
                    r.tolerance
                ),
            }
            .into());
        }
        Ok(r)
    }

    /// Run every reference case of `references.json` through the compiled
    /// modules, forward and VJP, and report the worst scaled error per
    /// module and output/input (see [`REFERENCE_TOLERANCE`](super::bundle::REFERENCE_TOLERANCE)). Errors if the
    /// bundle has no references or they do not match the manifest; a
    /// disagreement is reported in the result ([`ReferenceReport::passed`]).
    pub fn verify_references(&self) -> Result<ReferenceReport, BundleError> {
        let refs = read_references(&self.dir, &self.manifest, &self.limits)?;
        self.check_references(&refs)
    }

    /// [`Bundle::verify_references`] on references already parsed (the
    /// references fuzz target's entry point): every case's sizes are
    /// checked (with checked arithmetic) before any kernel runs.
    pub fn check_references(&self, refs: &References) -> Result<ReferenceReport, BundleError> {
        let mut out = vec![];
        for (name, cases) in &refs.modules {
            let p = self
                .modules
                .get(name)
                .ok_or_else(|| BundleError::References {
                    message: format!(
                        "module `{}` is not in the manifest",
                        crate::bundle::confine::quote(name)
                    ),
                })?;
            let mut ag = ModuleAgreement {
                module: name.clone(),
                cases: cases.len(),
                forward: BTreeMap::new(),
                vjp: BTreeMap::new(),
            };
            for (ci, c) in cases.iter().enumerate() {
                if c.batch == 0 || c.batch > MAX_REFERENCE_BATCH {
                    return Err(BundleError::References {
                        message: format!(
                            "{name} case {ci}: batch {} (must be in 1..={MAX_REFERENCE_BATCH})",
                            c.batch
                        ),
                    });
                }
                // The case's tensors `what` for each of `specs`, sized
                // `batch x size`.
                let get = |map: &BTreeMap<String, Vec<f32>>,
                           what: &str,
                           specs: &[TensorSpec]|
                 -> Result<Vec<Vec<f32>>, BundleError> {
                    specs
                        .iter()
                        .map(|s| {
                            let n = &s.name;
                            let v = map.get(n).ok_or_else(|| BundleError::References {
                                message: format!("{name} case {ci}: no {what} `{n}`"),
                            })?;
                            if c.batch.checked_mul(s.size) != Some(v.len()) {
                                return Err(BundleError::References {
                                    message: format!(
                                        "{name} case {ci}: {what} `{n}` has {} values, expected {} x {}",
                                        v.len(),
                                        c.batch,
                                        s.size
                                    ),
                                });
                            }
                            Ok(v.clone())
                        })
                        .collect()
                };
                let xs = get(&c.inputs, "input", p.inputs())?;
                let ys = get(&c.outputs, "output", p.outputs())?;
                let cts = get(&c.cotangents, "cotangent", p.outputs())?;
                let vjps = get(&c.vjp, "vjp", p.inputs())?;
                let (fwd, bwd) = run_module(p, c.batch, &xs, &cts);
                for ((s, a), b) in p.outputs().iter().zip(&fwd).zip(&ys) {
                    let e = ag.forward.entry(s.name.clone()).or_insert(0.0);
                    *e = e.max(scaled_error(a, b));
                }
                for ((s, a), b) in p.inputs().iter().zip(&bwd).zip(&vjps) {
                    let e = ag.vjp.entry(s.name.clone()).or_insert(0.0);
                    *e = e.max(scaled_error(a, b));
                }
            }
            out.push(ag);
        }
        Ok(ReferenceReport {
            tolerance: self.tolerance(),
            modules: out,
        })
    }

    /// Run every module on `rows` random rows (standard normal, seeded)
    /// with both the compiled kernels and tract; the worst scaled error per
    /// module (see [`REFERENCE_TOLERANCE`](super::bundle::REFERENCE_TOLERANCE)).
    pub fn tract_agreement(
        &self,
        rows: usize,
        seed: u64,
    ) -> Result<BTreeMap<String, f32>, LoadError> {
        let mut rng = Rng::new(seed);
        let mut out = BTreeMap::new();
        for (name, p) in &self.modules {
            let spec = &self.manifest.modules[name];
            let xs: Vec<Vec<f32>> = p
                .inputs()
                .iter()
                .map(|s| (0..rows * s.size).map(|_| rng.normal() as f32).collect())
                .collect();
            let worst = tract_error(p, &self.onnx[name], spec, rows, &xs)?;
            out.insert(name.clone(), worst);
        }
        Ok(out)
    }
}

/// Worst scaled error between the compiled forward pass of `p` and tract's
/// run of the same ONNX bytes on the inputs `xs` (`rows` rows each).
pub fn tract_error(
    p: &Program,
    onnx_bytes: &[u8],
    spec: &ModuleSpec,
    rows: usize,
    xs: &[Vec<f32>],
) -> Result<f32, LoadError> {
    let refs: Vec<&[f32]> = xs.iter().map(|v| v.as_slice()).collect();
    let theirs = tract_forward(p.name(), onnx_bytes, spec, rows, &refs)?;
    let cts: Vec<Vec<f32>> = p
        .outputs()
        .iter()
        .map(|s| vec![0.0; rows * s.size])
        .collect();
    let (ours, _) = run_module(p, rows, xs, &cts);
    Ok(ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| scaled_error(a, b))
        .fold(0.0f32, f32::max))
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Run the module with tract (the reference executor) on `rows` rows.
/// Inputs and outputs are row-major `[rows, size]` in manifest order.
pub fn tract_forward(
    module: &str,
    onnx_bytes: &[u8],
    spec: &ModuleSpec,
    rows: usize,
    inputs: &[&[f32]],
) -> Result<Vec<Vec<f32>>, LoadError> {
    let tract_err = |message: String| LoadError::Tract {
        module: module.into(),
        message,
    };
    catch_unwind(AssertUnwindSafe(|| -> TractResult<Vec<Vec<f32>>> {
        let mut m = tract_onnx::onnx().model_for_read(&mut &onnx_bytes[..])?;
        for (i, s) in spec.inputs.iter().enumerate() {
            m.set_input_fact(i, f32::fact([rows, s.size]).into())?;
        }
        let run = m.into_optimized()?.into_runnable()?;
        let ins: TVec<TValue> = spec
            .inputs
            .iter()
            .zip(inputs)
            .map(|(s, x)| Ok(Tensor::from_shape(&[rows, s.size], x)?.into()))
            .collect::<TractResult<_>>()?;
        let outs = run.run(ins)?;
        outs.iter()
            .map(|o| Ok(o.to_plain_array_view::<f32>()?.iter().copied().collect()))
            .collect()
    }))
    .map_err(|p| tract_err(format!("tract panicked: {}", panic_message(p))))?
    .map_err(|e| tract_err(format!("tract: {e:#}")))
}

/// Forward then backward of `p` on a fresh tape (allocates: for checks, not
/// for the control path). Returns (outputs, input VJPs).
pub fn run_module(
    p: &Program,
    rows: usize,
    xs: &[Vec<f32>],
    cts: &[Vec<f32>],
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut tape = p.tape(rows, 1);
    let mut ys: Vec<Vec<f32>> = p
        .outputs()
        .iter()
        .map(|s| vec![0.0; rows * s.size])
        .collect();
    let mut dxs: Vec<Vec<f32>> = p
        .inputs()
        .iter()
        .map(|s| vec![0.0; rows * s.size])
        .collect();
    let xr: Vec<&[f32]> = xs.iter().map(|v| v.as_slice()).collect();
    let mut yr: Vec<&mut [f32]> = ys.iter_mut().map(|v| v.as_mut_slice()).collect();
    p.forward(&mut tape, 0, &xr, &mut yr);
    let cr: Vec<&[f32]> = cts.iter().map(|v| v.as_slice()).collect();
    let mut dr: Vec<&mut [f32]> = dxs.iter_mut().map(|v| v.as_mut_slice()).collect();
    p.backward(&mut tape, 0, &cr, &mut dr);
    (ys, dxs)
}
