//! The planners on a real bundle: a linear-quadratic model hand-built as
//! ONNX (Concat/Mul/Gemm only), written with checksums, loaded and compiled
//! by the controller's kernels. Its optimum is known, and the native model
//! with the same numbers must agree with it step by step.

mod common;

use dream_mpc::bundle::manifest::*;
use dream_mpc::bundle::onnx_build::{attr_int, GraphBuilder, OPSET};
use dream_mpc::bundle::{write_bundle, BuiltModule};
use dream_mpc::load::Bundle;
use dream_mpc::planner::bundle_model::BundleModel;
use dream_mpc::planner::{LatentModel, PlanStatus, Planner, PlannerConfig, PlannerKind};
use dream_mpc_testkit::bundles::scratch_dir;
use dream_mpc_testkit::lq::LinearQuadratic;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const N: usize = 2;
const M: usize = 2;
const HEADS: usize = 4;

/// The native twin: coupled dynamics, diagonal P, zero policy.
fn native() -> LinearQuadratic {
    let mut m = LinearQuadratic::point_mass(N, HEADS, 0.5, 1.0, 0.3, 2.0);
    m.a = vec![1.0, 0.2, -0.1, 0.95];
    m.b = vec![0.5, 0.1, 0.0, 0.4];
    m.p = vec![2.0, 0.0, 0.0, 1.5];
    m.log_std = vec![-1.0; M];
    m
}

fn module(
    name: &str,
    g: GraphBuilder,
    ins: &[(&str, usize)],
    outs: &[(&str, usize)],
) -> BuiltModule {
    common::built(name, g, OPSET, ins, outs)
}

/// `x = Concat(z, a)` and, if asked, `x * x`.
fn za(g: &mut GraphBuilder, square: bool) -> String {
    let z = g.input("z", N);
    let a = g.input("a", M);
    let x = g.node("Concat", &[&z, &a], vec![attr_int("axis", 1)]);
    if square {
        g.node("Mul", &[&x, &x], vec![])
    } else {
        x
    }
}

fn write_lq_bundle(dir: &Path, m: &LinearQuadratic) -> PathBuf {
    let mut mods = Vec::new();
    let mut g = GraphBuilder::new("encoder");
    let o = g.input("obs", N);
    let eye = [1.0, 0.0, 0.0, 1.0];
    let z = g.linear(&o, &eye, None, N, N);
    g.output(&z, "z", N);
    mods.push(module("encoder", g, &[("obs", N)], &[("z", N)]));

    let mut g = GraphBuilder::new("dynamics");
    let x = za(&mut g, false);
    // [A B] row by row.
    let w: Vec<f32> = (0..N)
        .flat_map(|i| {
            let a = m.a[i * N..(i + 1) * N].to_vec();
            a.into_iter().chain(m.b[i * M..(i + 1) * M].to_vec())
        })
        .collect();
    let y = g.linear(&x, &w, None, N + M, N);
    g.output(&y, "z_next", N);
    mods.push(module(
        "dynamics",
        g,
        &[("z", N), ("a", M)],
        &[("z_next", N)],
    ));

    let mut g = GraphBuilder::new("reward");
    let x2 = za(&mut g, true);
    let w: Vec<f32> = m.w_z.iter().chain(&m.w_a).map(|w| -w).collect();
    let r = g.linear(&x2, &w, None, N + M, 1);
    g.output(&r, "r", 1);
    mods.push(module("reward", g, &[("z", N), ("a", M)], &[("r", 1)]));

    let mut g = GraphBuilder::new("q");
    let x2 = za(&mut g, true);
    let w: Vec<f32> = (0..HEADS)
        .flat_map(|_| [-m.p[0], -m.p[3], 0.0, 0.0])
        .collect();
    let q = g.linear(&x2, &w, None, N + M, HEADS);
    g.output(&q, "q", HEADS);
    mods.push(module("q", g, &[("z", N), ("a", M)], &[("q", HEADS)]));

    let mut g = GraphBuilder::new("policy");
    let z = g.input("z", N);
    let mu = g.linear(&z, &[0.0; N * M], None, N, M);
    let ls = g.linear(&z, &[0.0; N * M], Some(&m.log_std), N, M);
    g.output(&mu, "mu", M);
    g.output(&ls, "log_std", M);
    mods.push(module(
        "policy",
        g,
        &[("z", N)],
        &[("mu", M), ("log_std", M)],
    ));

    let manifest = Manifest::new(ManifestParts {
        task: "lq-test".into(),
        observation: ObservationSpec::unnormalized(N, None),
        action: ActionSpec::unit(M),
        latent: N,
        simnorm_group: 0,
        discount: 0.9,
        action_repeat: 1,
        decoding: Decoding::Scalar,
        q_ensemble: HEADS,
        planner: PlannerDefaults {
            candidates: 2,
            horizon: 4,
            iterations: 600,
            step_size: 0.01,
            beta: 0.0,
            options: dream_mpc::planner::DreamOptions::sketch(),
        },
        provenance: Provenance::default(),
    });
    write_bundle(dir, manifest, &mods, None).unwrap();
    dir.to_path_buf()
}

/// `m` written as a bundle into a fresh scratch folder (`tag` in its name)
/// and loaded: the folder, for the caller to remove, and the bundle.
fn lq_bundle(tag: &str, m: &LinearQuadratic) -> (PathBuf, Bundle) {
    let dir = write_lq_bundle(&scratch_dir(&format!("planner-lq-{tag}")), m);
    let bundle = Bundle::load(&dir).unwrap();
    (dir, bundle)
}

#[test]
fn bundle_model_agrees_with_the_native_twin() {
    let m = native();
    let (dir, bundle) = lq_bundle("twin", &m);
    let bm = BundleModel::new(&bundle).unwrap();
    assert_eq!(bm.dims(), m.dims());
    let (mut tb, mut tn) = (bm.tape(3, 2), m.tape(3, 2));
    let z = [0.3, -0.2, 0.7, 0.1, -0.5, 0.4];
    let a = [0.1, 0.9, -0.3, 0.2, 0.0, -1.0];
    let close = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .all(|(p, q)| (p - q).abs() < 1e-5 * q.abs().max(1.0))
    };
    let (mut x1, mut x2) = ([0.0f32; 12], [0.0f32; 12]);
    bm.next(&mut tb, 1, &z, &a, &mut x1[..6]);
    m.next(&mut tn, 1, &z, &a, &mut x2[..6]);
    assert!(close(&x1[..6], &x2[..6]), "{x1:?} {x2:?}");
    bm.reward(&mut tb, 1, &z, &a, &mut x1[..3]);
    m.reward(&mut tn, 1, &z, &a, &mut x2[..3]);
    assert!(close(&x1[..3], &x2[..3]), "{x1:?} {x2:?}");
    bm.q(&mut tb, 1, &z, &a, &mut x1);
    m.q(&mut tn, 1, &z, &a, &mut x2);
    assert!(close(&x1, &x2), "{x1:?} {x2:?}");
    let dq: Vec<f32> = (0..12).map(|i| 0.1 * i as f32 - 0.5).collect();
    let (mut dz1, mut da1, mut dz2, mut da2) = ([0.0f32; 6], [0.0f32; 6], [0.0f32; 6], [0.0f32; 6]);
    bm.q_vjp(&mut tb, 1, &dq, &mut dz1, &mut da1);
    m.q_vjp(&mut tn, 1, &dq, &mut dz2, &mut da2);
    assert!(close(&dz1, &dz2) && close(&da1, &da2), "{dz1:?} {dz2:?}");
    bm.reward_vjp(&mut tb, 1, &[1.0, -2.0, 0.5], &mut dz1, &mut da1);
    m.reward_vjp(&mut tn, 1, &[1.0, -2.0, 0.5], &mut dz2, &mut da2);
    assert!(close(&dz1, &dz2) && close(&da1, &da2), "{dz1:?} {dz2:?}");
    bm.next_vjp(
        &mut tb,
        1,
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        &mut dz1,
        &mut da1,
    );
    m.next_vjp(
        &mut tn,
        1,
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        &mut dz2,
        &mut da2,
    );
    assert!(close(&dz1, &dz2) && close(&da1, &da2), "{da1:?} {da2:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn grad_mpc_on_the_lq_bundle_reaches_the_analytic_optimum() {
    let m = native();
    let (dir, bundle) = lq_bundle("opt", &m);
    let bm = BundleModel::new(&bundle).unwrap();
    let man = &bundle.manifest;
    // Budget and discount from the bundle's defaults.
    let c = PlannerConfig::for_kind(PlannerKind::GradMpc, &man.planner, man.discount);
    let z0 = [0.6f32, -0.4];
    let u = m.analytic_optimum(&z0, 4, 0.9);
    let mut p = Planner::new(&bm, c.clone()).unwrap();
    let r = p
        .plan(&bm, &z0, Instant::now() + Duration::from_secs(60))
        .unwrap();
    assert_eq!(r.status, PlanStatus::Finished);
    let a = r.action.as_slice().to_vec();
    assert!(r.evals.flops > 0, "the kernels count their multiply-adds");
    for i in 0..M {
        assert!((a[i] as f64 - u[i]).abs() < 1e-2, "{a:?} vs analytic {u:?}");
    }
    // CEM on the same bundle gets close with enough samples.
    let mut c = PlannerConfig::for_kind(PlannerKind::Cem, &man.planner, man.discount);
    c.cem_samples = 1000;
    c.cem_elites = 50;
    c.cem_iterations = 10;
    c.cem_init_std = 0.5;
    let mut p = Planner::new(&bm, c).unwrap();
    let r = p
        .plan(&bm, &z0, Instant::now() + Duration::from_secs(60))
        .unwrap();
    let a = r.action.as_slice();
    for i in 0..M {
        assert!(
            (a[i] as f64 - u[i]).abs() < 0.05,
            "CEM {a:?} vs analytic {u:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
