//! Independent check of an exported bundle with tract: every module's ONNX
//! file is loaded, optimized and run on the reference inputs, and its
//! outputs are compared with the libtorch outputs in `references.json`.
//! (The controller's own kernels check the VJPs too; tract only runs
//! forward.)

use dream_mpc::bundle::manifest::{Manifest, References};
use std::path::Path;
use tract_onnx::prelude::*;

/// Worst absolute error of one module over all its reference cases.
#[derive(Clone, Debug, PartialEq)]
pub struct ModuleCheck {
    pub module: String,
    pub cases: usize,
    pub max_abs_err: f32,
}

fn err<E: std::fmt::Display>(ctx: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{ctx}: {e}")
}

/// Run every module of the bundle in `dir` through tract on its reference
/// cases; returns the worst absolute output error per module.
pub fn tract_forward_check(dir: &Path) -> Result<Vec<ModuleCheck>, String> {
    let mpath = dir.join("manifest.json");
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(&mpath).map_err(err(&mpath.display().to_string()))?)
            .map_err(err("manifest.json"))?;
    let rfile = manifest
        .references
        .clone()
        .ok_or("bundle has no references")?;
    let refs: References =
        serde_json::from_slice(&std::fs::read(dir.join(&rfile)).map_err(err(&rfile))?)
            .map_err(err(&rfile))?;
    let mut report = Vec::new();
    for (name, spec) in &manifest.modules {
        let cases = refs
            .modules
            .get(name)
            .ok_or_else(|| format!("no references for module {name}"))?;
        let bytes = std::fs::read(dir.join(&spec.file)).map_err(err(&spec.file))?;
        let mut worst = 0.0f32;
        for case in cases {
            let b = case.batch;
            let mut model = tract_onnx::onnx()
                .model_for_read(&mut &bytes[..])
                .map_err(err(&spec.file))?;
            for (k, t) in spec.inputs.iter().enumerate() {
                model = model
                    .with_input_fact(k, f32::fact([b, t.size]).into())
                    .map_err(err(&spec.file))?;
            }
            let plan = model
                .into_optimized()
                .and_then(|m| m.into_runnable())
                .map_err(err(&spec.file))?;
            let mut inputs = TVec::new();
            for t in &spec.inputs {
                let v = case
                    .inputs
                    .get(&t.name)
                    .ok_or_else(|| format!("{name}: reference lacks input {}", t.name))?;
                let arr = tract_ndarray::Array2::from_shape_vec((b, t.size), v.clone())
                    .map_err(err(name))?;
                inputs.push(arr.into_tensor().into());
            }
            let outs = plan.run(inputs).map_err(err(&spec.file))?;
            for (t, got) in spec.outputs.iter().zip(outs.iter()) {
                let want = case
                    .outputs
                    .get(&t.name)
                    .ok_or_else(|| format!("{name}: reference lacks output {}", t.name))?;
                let got = got.to_plain_array_view::<f32>().map_err(err(name))?;
                if got.len() != want.len() {
                    return Err(format!(
                        "{name}.{}: tract gives {} values, references {}",
                        t.name,
                        got.len(),
                        want.len()
                    ));
                }
                for (g, w) in got.iter().zip(want) {
                    let e = (g - w).abs();
                    if !e.is_finite() {
                        return Err(format!("{name}.{}: non-finite output {g}", t.name));
                    }
                    worst = worst.max(e);
                }
            }
        }
        report.push(ModuleCheck {
            module: name.clone(),
            cases: cases.len(),
            max_abs_err: worst,
        });
    }
    Ok(report)
}
