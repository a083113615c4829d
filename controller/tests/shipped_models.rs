//! Every bundle shipped in `models/` loads (checksums, tract type check,
//! compile), reproduces its libtorch reference outputs and VJPs within the
//! float32 tolerance, agrees with tract, and carries the fields a robot
//! needs (its task, action repeat, bounds) — what `dream-mpc check` checks.

use dream_mpc::load::Bundle;
use dream_mpc::load::REFERENCE_TOLERANCE;
use std::path::Path;

#[test]
fn shipped_bundles_pass_the_checks() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&models).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("manifest.json").is_file() {
            continue;
        }
        let b = Bundle::load(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let m = &b.manifest;
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        assert_eq!(m.task, name, "folder and task differ");
        assert!(m.action_repeat >= 1);
        assert!(m.provenance.training_steps > 0, "{name} is untrained");
        let refs = b.verify_references().unwrap();
        assert!(refs.passed(), "{name}: {:?}", refs.modules);
        for (module, err) in b.tract_agreement(4, 0).unwrap() {
            assert!(
                err <= REFERENCE_TOLERANCE,
                "{name}/{module}: vs tract {err}"
            );
        }
        seen.push(name);
    }
    seen.sort();
    assert_eq!(seen, ["cartpole-swingup", "pendulum-swingup"]);
}
