//! `Bundle::load`: manifest, checksums, ONNX parsing and compiling, all or
//! nothing; `verify_references`: the controller's kernels against the
//! libtorch reference vectors; `tract_agreement`: against tract.

use super::manifest::{LatentSpec, Manifest, References, FORMAT, VERSION};
use super::BundleError;
use crate::kernels::{tract_forward, Program};
use crate::rng::Rng;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// Compiled modules by manifest name.
    pub modules: BTreeMap<String, Program>,
    onnx: BTreeMap<String, Vec<u8>>,
}

/// Scaled error of one tensor (see [`REFERENCE_TOLERANCE`]).
pub fn scaled_error(ours: &[f32], reference: &[f32]) -> f32 {
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
    pub fn worst(&self) -> f32 {
        self.forward
            .values()
            .chain(self.vjp.values())
            .fold(0.0, |m, v| m.max(*v))
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
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>, BundleError> {
    std::fs::read(path).map_err(|e| BundleError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Read `file` (relative to `dir`) and check it against the manifest checksum.
fn read_verified(dir: &Path, m: &Manifest, file: &str) -> Result<Vec<u8>, BundleError> {
    let expected = m
        .checksums
        .get(file)
        .ok_or_else(|| BundleError::MissingChecksum { file: file.into() })?;
    let bytes = read(&dir.join(file))?;
    let actual = sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(expected) {
        return Err(BundleError::ChecksumMismatch {
            file: file.into(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(bytes)
}

fn check_manifest(path: &Path, m: &Manifest) -> Result<(), BundleError> {
    let bad = |message: String| BundleError::Manifest {
        path: path.into(),
        message,
    };
    if m.format != FORMAT {
        return Err(bad(format!("format `{}` (expected `{FORMAT}`)", m.format)));
    }
    if m.version != VERSION {
        return Err(bad(format!(
            "version {} (this controller reads {VERSION})",
            m.version
        )));
    }
    if let LatentSpec::Rssm { .. } = m.latent {
        return Err(bad(
            "latent kind `rssm` (recurrent bundles) is not supported by this controller".into(),
        ));
    }
    let o = &m.observation;
    if o.mean.len() != o.size || o.std.len() != o.size {
        return Err(bad(format!(
            "observation size {} but mean/std have {}/{} values",
            o.size,
            o.mean.len(),
            o.std.len()
        )));
    }
    if let Some((i, s)) = o
        .std
        .iter()
        .enumerate()
        .find(|(_, s)| !(s.is_finite() && **s > 0.0))
    {
        return Err(bad(format!(
            "observation.std[{i}] = {s} (must be finite and > 0)"
        )));
    }
    if let Some((i, s)) = o.mean.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(bad(format!("observation.mean[{i}] = {s}")));
    }
    let a = &m.action;
    if a.low.len() != a.size || a.high.len() != a.size {
        return Err(bad(format!(
            "action size {} but low/high have {}/{} values",
            a.size,
            a.low.len(),
            a.high.len()
        )));
    }
    for i in 0..a.size {
        if !(a.low[i].is_finite() && a.high[i].is_finite() && a.low[i] < a.high[i]) {
            return Err(bad(format!(
                "action bound {i}: low {} high {}",
                a.low[i], a.high[i]
            )));
        }
    }
    if m.action_repeat == 0 || m.action_repeat > 1000 {
        return Err(bad(format!(
            "action_repeat {} (must be in 1..=1000)",
            m.action_repeat
        )));
    }
    if !(m.discount.is_finite() && m.discount > 0.0 && m.discount <= 1.0) {
        return Err(bad(format!("discount {} (must be in (0, 1])", m.discount)));
    }
    if m.modules.is_empty() {
        return Err(bad("no modules".into()));
    }
    check_roles(m)
}

/// The standard modules' row sizes must follow the manifest's sizes:
/// encoder obs -> z; dynamics z, a -> z; reward z, a -> reward width;
/// q z, a -> q_ensemble x value width; policy z -> mu, log_std.
fn check_roles(m: &Manifest) -> Result<(), BundleError> {
    let (o, l, a) = (m.observation.size, m.latent.size(), m.action.size);
    let roles: [(&str, Vec<usize>, Vec<usize>); 5] = [
        ("encoder", vec![o], vec![l]),
        ("dynamics", vec![l, a], vec![l]),
        ("reward", vec![l, a], vec![m.reward_decoding.width()]),
        (
            "q",
            vec![l, a],
            vec![m.q_ensemble * m.value_decoding.width()],
        ),
        ("policy", vec![l], vec![a, a]),
    ];
    for (name, ins, outs) in roles {
        let Some(spec) = m.modules.get(name) else {
            continue;
        };
        let got_in: Vec<usize> = spec.inputs.iter().map(|t| t.size).collect();
        let got_out: Vec<usize> = spec.outputs.iter().map(|t| t.size).collect();
        if got_in != ins || got_out != outs {
            return Err(BundleError::Interface {
                module: name.into(),
                message: format!(
                    "the manifest's sizes (observation {o}, latent {l}, action {a}, decodings) require inputs {ins:?} -> outputs {outs:?}, the module declares {got_in:?} -> {got_out:?}"
                ),
            });
        }
    }
    Ok(())
}

impl Bundle {
    /// Load the bundle in `dir`: parse the manifest, verify every checksum,
    /// parse and type-check each ONNX module with tract and compile it.
    /// Any failure returns the first error and no model. Start-up only.
    pub fn load(dir: &Path) -> Result<Bundle, BundleError> {
        let mpath = dir.join("manifest.json");
        let text = read(&mpath)?;
        let manifest: Manifest =
            serde_json::from_slice(&text).map_err(|e| BundleError::Manifest {
                path: mpath.clone(),
                message: e.to_string(),
            })?;
        check_manifest(&mpath, &manifest)?;
        for file in manifest.checksums.keys() {
            read_verified(dir, &manifest, file)?;
        }
        if let Some(r) = &manifest.references {
            read_verified(dir, &manifest, r)?;
        }
        let mut modules = BTreeMap::new();
        let mut onnx = BTreeMap::new();
        for (name, spec) in &manifest.modules {
            let bytes = read_verified(dir, &manifest, &spec.file)?;
            modules.insert(name.clone(), Program::compile(name, &bytes, spec)?);
            onnx.insert(name.clone(), bytes);
        }
        Ok(Bundle {
            manifest,
            dir: dir.to_path_buf(),
            modules,
            onnx,
        })
    }

    /// The compiled module `name`, or an error naming it.
    pub fn module(&self, name: &str) -> Result<&Program, BundleError> {
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

    /// Run every reference case of `references.json` through the compiled
    /// modules, forward and VJP, and report the worst scaled error per
    /// module and output/input (see [`REFERENCE_TOLERANCE`]). Errors if the
    /// bundle has no references or they do not match the manifest; a
    /// disagreement is reported in the result ([`ReferenceReport::passed`]).
    pub fn verify_references(&self) -> Result<ReferenceReport, BundleError> {
        let file = self
            .manifest
            .references
            .as_ref()
            .ok_or_else(|| BundleError::References {
                message: "the manifest lists no references file".into(),
            })?;
        let bytes = read_verified(&self.dir, &self.manifest, file)?;
        let refs: References =
            serde_json::from_slice(&bytes).map_err(|e| BundleError::References {
                message: format!("{file}: {e}"),
            })?;
        let mut out = vec![];
        for (name, cases) in &refs.modules {
            let p = self
                .modules
                .get(name)
                .ok_or_else(|| BundleError::References {
                    message: format!("module `{name}` is not in the manifest"),
                })?;
            let mut ag = ModuleAgreement {
                module: name.clone(),
                cases: cases.len(),
                forward: BTreeMap::new(),
                vjp: BTreeMap::new(),
            };
            for (ci, c) in cases.iter().enumerate() {
                let get = |map: &BTreeMap<String, Vec<f32>>,
                           what: &str,
                           n: &str,
                           size: usize|
                 -> Result<Vec<f32>, BundleError> {
                    let v = map.get(n).ok_or_else(|| BundleError::References {
                        message: format!("{name} case {ci}: no {what} `{n}`"),
                    })?;
                    if v.len() != c.batch * size {
                        return Err(BundleError::References {
                            message: format!("{name} case {ci}: {what} `{n}` has {} values, expected {} x {size}", v.len(), c.batch),
                        });
                    }
                    Ok(v.clone())
                };
                if c.batch == 0 {
                    return Err(BundleError::References {
                        message: format!("{name} case {ci}: batch 0"),
                    });
                }
                let xs: Vec<Vec<f32>> = p
                    .inputs()
                    .iter()
                    .map(|s| get(&c.inputs, "input", &s.name, s.size))
                    .collect::<Result<_, _>>()?;
                let ys: Vec<Vec<f32>> = p
                    .outputs()
                    .iter()
                    .map(|s| get(&c.outputs, "output", &s.name, s.size))
                    .collect::<Result<_, _>>()?;
                let cts: Vec<Vec<f32>> = p
                    .outputs()
                    .iter()
                    .map(|s| get(&c.cotangents, "cotangent", &s.name, s.size))
                    .collect::<Result<_, _>>()?;
                let vjps: Vec<Vec<f32>> = p
                    .inputs()
                    .iter()
                    .map(|s| get(&c.vjp, "vjp", &s.name, s.size))
                    .collect::<Result<_, _>>()?;
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
            tolerance: REFERENCE_TOLERANCE,
            modules: out,
        })
    }

    /// Run every module on `rows` random rows (standard normal, seeded)
    /// with both the compiled kernels and tract; the worst scaled error per
    /// module (see [`REFERENCE_TOLERANCE`]).
    pub fn tract_agreement(
        &self,
        rows: usize,
        seed: u64,
    ) -> Result<BTreeMap<String, f32>, BundleError> {
        let mut rng = Rng::new(seed);
        let mut out = BTreeMap::new();
        for (name, p) in &self.modules {
            let spec = &self.manifest.modules[name];
            let xs: Vec<Vec<f32>> = p
                .inputs()
                .iter()
                .map(|s| (0..rows * s.size).map(|_| rng.normal() as f32).collect())
                .collect();
            let refs: Vec<&[f32]> = xs.iter().map(|v| v.as_slice()).collect();
            let theirs = tract_forward(name, &self.onnx[name], spec, rows, &refs)?;
            let cts: Vec<Vec<f32>> = p
                .outputs()
                .iter()
                .map(|s| vec![0.0; rows * s.size])
                .collect();
            let (ours, _) = run_module(p, rows, &xs, &cts);
            let worst = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| scaled_error(a, b))
                .fold(0.0f32, f32::max);
            out.insert(name.clone(), worst);
        }
        Ok(out)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::testing::write_random_tdmpc_bundle;

    /// A small TD-MPC2-style bundle loads, and every module's forward pass
    /// matches tract's on random rows.
    #[test]
    fn tdmpc_bundle_loads_and_matches_tract() {
        let dir = std::env::temp_dir().join(format!("dmpc-load-{}", std::process::id()));
        write_random_tdmpc_bundle(&dir, 7, 2, 16, 32, 3, 11).unwrap();
        let b = Bundle::load(&dir).unwrap();
        assert_eq!(b.modules.len(), 5);
        let agree = b.tract_agreement(4, 3).unwrap();
        for (m, e) in &agree {
            assert!(*e < REFERENCE_TOLERANCE, "{m}: error {e} vs tract");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
