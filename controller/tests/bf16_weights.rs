//! Bfloat16 weights end to end on the shipped models: `dream-mpc check
//! --weights bf16` passes under the bf16 tolerance and names it, float32
//! stays the default, a wrong name is refused; a bf16 bundle verifies its
//! references with [`BF16_REFERENCE_TOLERANCE`], and a corrupted
//! reference still fails it (the looser tolerance does not wave through an
//! O(1) error).

use dream_mpc::bundle::Limits;
use dream_mpc::kernels::Weights;
use dream_mpc::load::{Bundle, BF16_REFERENCE_TOLERANCE, REFERENCE_TOLERANCE};
use std::path::{Path, PathBuf};
use std::process::Command;

fn shipped(task: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(task)
}

#[test]
fn check_cli_takes_bf16_weights() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_dream-mpc"))
            .arg("check")
            .arg(shipped("cartpole-swingup"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = run(&["--weights", "bf16"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("weights bf16 (2 bytes each), tolerance 1e-1"),
        "{text}"
    );
    let (ok, text) = run(&[]);
    assert!(
        ok && text.contains("weights f32 (4 bytes each), tolerance 1e-4"),
        "{text}"
    );
    let (ok, text) = run(&["--weights", "fp16"]);
    assert!(!ok && text.contains("not one of f32, bf16"), "{text}");
}

#[test]
fn bf16_bundles_verify_with_their_tolerance_and_still_catch_bad_references() {
    for task in ["pendulum-swingup", "cartpole-swingup"] {
        let b = Bundle::load_as(&shipped(task), Limits::default(), Weights::Bf16).unwrap();
        assert_eq!(b.tolerance(), BF16_REFERENCE_TOLERANCE);
        let r = b.verify().unwrap();
        let worst = r.modules.iter().map(|m| m.worst()).fold(0.0f32, f32::max);
        eprintln!("{task}: bf16 worst scaled error {worst:.2e}");
        // bf16 is a coarser model of the same weights: its error is far
        // above float32's tolerance (the test would catch a mode that
        // silently ran float32) and within its own.
        assert!(
            worst > REFERENCE_TOLERANCE && worst <= BF16_REFERENCE_TOLERANCE,
            "{worst}"
        );

        let mut refs =
            dream_mpc::bundle::files::read_references(&b.dir, &b.manifest, &b.limits).unwrap();
        let case = &mut refs.modules.get_mut("dynamics").unwrap()[0];
        for v in case.outputs.values_mut().flatten() {
            *v += 1.0;
        }
        let r = b.check_references(&refs).unwrap();
        assert_eq!(r.first_failure().map(|(m, _)| m), Some("dynamics"));
    }
}
