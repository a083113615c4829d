//! Every kernel path this CPU supports (plain Rust, AVX2/FMA, AVX-512),
//! and the reference element-wise code (`DREAM_MPC_TUNING=off`), gives the
//! same planner actions on a TD-MPC2-shaped bundle, and
//! `DREAM_MPC_KERNELS` picks the path; with bfloat16 weights, every path
//! (and the `vdpbf16ps` kernel where the CPU has it) plans close to the
//! float32 actions. One test in its own binary: the
//! path is process-wide.

use dream_mpc::bundle::Limits;
use dream_mpc::kernels::gemm::{kernel_path, set_bf16_dot, set_kernel_path, KernelPath};
use dream_mpc::kernels::simd::{set_tuned, tuned as tuned_in_use};
use dream_mpc::kernels::Weights;
use dream_mpc::load::Bundle;
use dream_mpc::planner::bundle_model::BundleModel;
use dream_mpc::planner::{Planner, PlannerConfig, PlannerKind};
use dream_mpc_testkit::bundles::{random_bundle, TdmpcSpec};
use std::time::{Duration, Instant};

#[test]
fn every_kernel_path_plans_the_same_actions() {
    // SAFETY (edition 2021: safe): no other thread reads the environment yet.
    std::env::set_var("DREAM_MPC_KERNELS", "scalar");
    assert_eq!(kernel_path(), KernelPath::Scalar);

    let (dir, bundle) = random_bundle("kernel-paths", &TdmpcSpec::new(24, 6, 64, 128, 5, 4));
    let model = BundleModel::new(&bundle).unwrap();
    let m = &bundle.manifest;
    let plan4 = |model: &BundleModel| {
        let mut c = PlannerConfig::for_kind(PlannerKind::DreamMpc, &m.planner, m.discount);
        c.seed = 11;
        let mut p = Planner::new(model, c).unwrap();
        let mut actions = Vec::new();
        for tick in 0..4 {
            let z: Vec<f32> = (0..64)
                .map(|i| ((tick * 13 + i) as f32 * 0.29).sin())
                .collect();
            let r = p
                .plan(model, &z, Instant::now() + Duration::from_secs(60))
                .unwrap();
            actions.extend_from_slice(r.action.as_slice());
        }
        actions
    };
    let mut runs: Vec<(KernelPath, bool, Vec<f32>)> = Vec::new();
    // Every path with the tuned element-wise kernels, then the best path
    // with the reference (scalar libm) element-wise code.
    let cases = KernelPath::ALL
        .into_iter()
        .map(|p| (p, true))
        .chain([(KernelPath::best(), false)]);
    for (path, tuned) in cases {
        if set_kernel_path(path).is_err() {
            assert!(!path.supported());
            eprintln!("{}: not supported on this CPU, skipped", path.name());
            continue;
        }
        assert_eq!(kernel_path(), path);
        set_tuned(tuned);
        assert_eq!(tuned_in_use(), tuned);
        runs.push((path, tuned, plan4(&model)));
    }
    assert!(runs.iter().any(|(p, _, _)| *p == KernelPath::Scalar));
    assert!(runs.iter().any(|(_, t, _)| !*t));
    let (p0, t0, a0) = &runs[0];
    for (p, t, a) in &runs[1..] {
        let what = format!("{} (tuned {t0}) vs {} (tuned {t})", p0.name(), p.name());
        assert_same_actions(&what, a0, a);
    }

    // Bfloat16 weights: every path widening them to float32 plans the same
    // actions (same rounded weights, float32 arithmetic), the AVX-512
    // `vdpbf16ps` kernel (activations rounded too) within the bf16 error,
    // and all of them close to the float32 plan.
    set_tuned(true);
    let b16 = Bundle::load_as(&dir, Limits::default(), Weights::Bf16).unwrap();
    for (module, err) in b16.tract_agreement(4, 0).unwrap() {
        assert!(err <= b16.tolerance(), "bf16 {module} vs tract: {err:.2e}");
    }
    let model16 = BundleModel::new(&b16).unwrap();
    let mut widened: Vec<(KernelPath, Vec<f32>)> = Vec::new();
    let mut all16: Vec<(String, Vec<f32>)> = Vec::new();
    for path in KernelPath::ALL {
        if set_kernel_path(path).is_err() {
            continue;
        }
        set_bf16_dot(false).unwrap();
        let a = plan4(&model16);
        all16.push((format!("{} widened", path.name()), a.clone()));
        widened.push((path, a));
        if path == KernelPath::Avx512 && set_bf16_dot(true).is_ok() {
            all16.push(("avx512 vdpbf16ps".into(), plan4(&model16)));
        }
    }
    let (w0, aw0) = &widened[0];
    for (p, a) in &widened[1..] {
        assert_same_actions(&format!("bf16 {} vs {}", w0.name(), p.name()), aw0, a);
    }
    for (name, a) in &all16 {
        let gap = a0
            .iter()
            .zip(a)
            .fold(0.0f32, |g, (x, y)| g.max((x - y).abs()));
        eprintln!("bf16 {name}: largest action gap to float32 {gap:.2e}");
        assert!(gap < 2e-2, "bf16 {name}: {a:?} vs float32 {a0:?}");
        assert!(a.iter().all(|v| v.is_finite() && v.abs() <= 1.0));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every action of `b` within 1e-4 of `a`'s.
fn assert_same_actions(what: &str, a: &[f32], b: &[f32]) {
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-4, "{what}: {a:?} vs {b:?}");
    }
}
