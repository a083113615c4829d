//! Shared helpers of the controller's integration tests: small graphs as
//! cases, random inputs, tract agreement and finite-difference checks.
#![allow(dead_code)]

use dream_mpc::bundle::manifest::{ModuleSpec, ReferenceCase, TensorSpec};
use dream_mpc::bundle::onnx_build::GraphBuilder;
use dream_mpc::bundle::BuiltModule;
use dream_mpc::kernels::Program;
use dream_mpc::load::{run_module, tract_error as module_tract_error};
use dream_mpc::rng::Rng;
use std::collections::BTreeMap;

/// One module under test.
pub struct Case {
    pub name: String,
    pub spec: ModuleSpec,
    pub bytes: Vec<u8>,
}

pub fn tspecs(v: &[(&str, usize)]) -> Vec<TensorSpec> {
    v.iter()
        .map(|(n, s)| TensorSpec {
            name: n.to_string(),
            size: *s,
        })
        .collect()
}

/// Finish `g` (opset `opset`) into a bundle module with the given
/// interface.
pub fn built(
    name: &str,
    g: GraphBuilder,
    opset: i64,
    inputs: &[(&str, usize)],
    outputs: &[(&str, usize)],
) -> BuiltModule {
    BuiltModule {
        name: name.into(),
        spec: ModuleSpec {
            file: format!("{name}.onnx"),
            inputs: tspecs(inputs),
            outputs: tspecs(outputs),
        },
        model: g.finish_with_opset(opset),
    }
}

/// Finish `g` (opset `opset`) into a case with the given interface.
pub fn case(
    name: &str,
    g: GraphBuilder,
    opset: i64,
    inputs: &[(&str, usize)],
    outputs: &[(&str, usize)],
) -> Case {
    let b = built(name, g, opset, inputs, outputs);
    Case {
        name: b.name,
        spec: b.spec,
        bytes: b.model.to_bytes(),
    }
}

/// Standard normal inputs pushed at least 0.05 away from 0 (so that a
/// finite difference never straddles Relu's kink).
pub fn rand_inputs(p: &Program, rows: usize, rng: &mut Rng) -> Vec<Vec<f32>> {
    p.inputs()
        .iter()
        .map(|s| {
            (0..rows * s.size)
                .map(|_| {
                    let x = rng.normal() as f32;
                    x.signum() * (x.abs() + 0.05)
                })
                .collect()
        })
        .collect()
}

pub fn rand_cotangents(p: &Program, rows: usize, rng: &mut Rng) -> Vec<Vec<f32>> {
    p.outputs()
        .iter()
        .map(|s| (0..rows * s.size).map(|_| rng.normal() as f32).collect())
        .collect()
}

/// A reference case of `p` on `rows` rows: its inputs, outputs, output
/// cotangents and input VJPs, each named after the module's interface.
pub fn reference_case(
    p: &Program,
    rows: usize,
    xs: &[Vec<f32>],
    ys: &[Vec<f32>],
    cts: &[Vec<f32>],
    vjp: &[Vec<f32>],
) -> ReferenceCase {
    let named = |specs: &[TensorSpec], v: &[Vec<f32>]| -> BTreeMap<String, Vec<f32>> {
        specs
            .iter()
            .zip(v)
            .map(|(s, v)| (s.name.clone(), v.clone()))
            .collect()
    };
    ReferenceCase {
        batch: rows,
        inputs: named(p.inputs(), xs),
        outputs: named(p.outputs(), ys),
        cotangents: named(p.outputs(), cts),
        vjp: named(p.inputs(), vjp),
    }
}

/// Worst scaled error between our forward and tract's on random rows.
pub fn tract_error(c: &Case, p: &Program, rows: usize, seed: u64) -> f32 {
    let mut rng = Rng::new(seed);
    let xs = rand_inputs(p, rows, &mut rng);
    module_tract_error(p, &c.bytes, &c.spec, rows, &xs).expect("tract runs")
}

fn loss(p: &Program, rows: usize, xs: &[Vec<f32>], cts: &[Vec<f32>]) -> f64 {
    let (ys, _) = run_module(p, rows, xs, cts);
    ys.iter()
        .zip(cts)
        .map(|(y, c)| {
            y.iter()
                .zip(c)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum::<f64>()
        })
        .sum()
}

/// Worst error of the VJP against central finite differences of
/// `L = sum(cotangent * output)` at a random point (step `h`), scaled by the
/// largest gradient entry (at least 0.01).
pub fn fd_error(p: &Program, rows: usize, seed: u64, h: f32) -> f32 {
    let mut rng = Rng::new(seed);
    let xs = rand_inputs(p, rows, &mut rng);
    let cts = rand_cotangents(p, rows, &mut rng);
    let (_, g) = run_module(p, rows, &xs, &cts);
    let scale = g.iter().flatten().fold(0.01f32, |m, v| m.max(v.abs()));
    let mut worst = 0.0f32;
    for k in 0..xs.len() {
        for i in 0..xs[k].len() {
            let mut xp = xs.clone();
            xp[k][i] += h;
            let lp = loss(p, rows, &xp, &cts);
            xp[k][i] -= 2.0 * h;
            let lm = loss(p, rows, &xp, &cts);
            let fd = ((lp - lm) / (2.0 * h as f64)) as f32;
            worst = worst.max((fd - g[k][i]).abs() / scale);
        }
    }
    worst
}
