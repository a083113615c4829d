//! Deterministic fuzzing of the ONNX/manifest loader (the libFuzzer targets
//! in `controller/fuzz` explore the same entry points without a budget;
//! their corpus is replayed by `fuzz_regressions.rs`):
//! random bytes, every truncation and random mutations of a valid module,
//! and mutated manifests must give an error or a working program, never a
//! panic.

use dream_mpc::kernels::Program;
use dream_mpc::load::run_module;
use dream_mpc::load::Bundle;
use dream_mpc::rng::Rng;
use dream_mpc_testkit::bundles::{TdmpcModel, TdmpcSpec};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn module() -> (Vec<u8>, dream_mpc::bundle::manifest::ModuleSpec) {
    let m = TdmpcModel::random(&TdmpcSpec::tiny(4, 2, 1)).module("q");
    (m.model.to_bytes(), m.spec)
}

/// Compile `bytes`; if that succeeds, run forward and backward once.
/// Returns whether it compiled; panics are test failures.
fn try_bytes(bytes: &[u8], spec: &dream_mpc::bundle::manifest::ModuleSpec, what: &str) -> bool {
    let r = catch_unwind(AssertUnwindSafe(|| {
        match Program::compile("fuzz", bytes, spec) {
            Ok(p) => {
                let xs: Vec<Vec<f32>> = p.inputs().iter().map(|s| vec![0.5; 2 * s.size]).collect();
                let cts: Vec<Vec<f32>> =
                    p.outputs().iter().map(|s| vec![1.0; 2 * s.size]).collect();
                run_module(&p, 2, &xs, &cts);
                true
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                false
            }
        }
    }));
    r.unwrap_or_else(|_| panic!("loader panicked on {what}"))
}

#[test]
fn random_bytes_never_panic() {
    let (_, spec) = module();
    let mut rng = Rng::new(99);
    for i in 0..300 {
        let n = rng.below(400);
        let junk: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
        assert!(
            !try_bytes(&junk, &spec, &format!("random case {i}")),
            "random bytes compiled"
        );
    }
}

#[test]
fn truncations_never_panic() {
    let (bytes, spec) = module();
    assert!(try_bytes(&bytes, &spec, "the intact module"));
    let step = (bytes.len() / 200).max(1);
    for n in (0..bytes.len()).step_by(step) {
        try_bytes(&bytes[..n], &spec, &format!("truncation to {n}"));
    }
}

#[test]
fn mutations_never_panic() {
    let (bytes, spec) = module();
    let mut rng = Rng::new(7);
    for i in 0..300 {
        let mut b = bytes.clone();
        for _ in 0..1 + rng.below(4) {
            let k = rng.below(b.len());
            b[k] = rng.below(256) as u8;
        }
        try_bytes(&b, &spec, &format!("mutation {i}"));
    }
}

#[test]
fn mutated_manifests_never_panic() {
    let dir = std::env::temp_dir().join(format!("dmpc-fuzz-manifest-{}", std::process::id()));
    let s = TdmpcSpec::tiny(3, 1, 2);
    TdmpcModel::random(&s).write(&dir).unwrap();
    let text = std::fs::read(dir.join("manifest.json")).unwrap();
    let mut rng = Rng::new(8);
    for i in 0..150 {
        let mut t = text.clone();
        let k = rng.below(t.len());
        match rng.below(3) {
            0 => t[k] = rng.below(256) as u8,
            1 => t.truncate(k),
            _ => t[k] = b"0123456789-.e\"{}[],"[rng.below(19)],
        }
        std::fs::write(dir.join("manifest.json"), &t).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| Bundle::load(&dir).map(|_| ())));
        assert!(r.is_ok(), "Bundle::load panicked on manifest mutation {i}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
