//! Export an untrained model and check the bundle: every file listed with
//! its sha256, the manifest's interface matches the ONNX graphs, and tract
//! running the ONNX files reproduces the libtorch outputs in
//! `references.json`.

use dream_mpc::bundle::manifest::{Manifest, References};
use dream_mpc::bundle::sha256_hex;
use dream_mpc_trainer::export::{export_bundle, ExportMeta};
use dream_mpc_trainer::model::{ModelConfig, WorldModel};
use dream_mpc_trainer::verify::tract_forward_check;
use std::path::PathBuf;
use tch::nn;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dmpc-trainer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A freshly initialized model (observation 5, action 2, latent 16) of
/// `hidden` units and `n_q` Q heads, from tch's seed `seed`.
fn fresh_model(seed: i64, hidden: usize, n_q: usize) -> (nn::VarStore, WorldModel) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let cfg = ModelConfig {
        latent: 16,
        hidden,
        n_q,
        ..Default::default()
    };
    let m = WorldModel::new(&vs.root(), &cfg, 5, 2);
    (vs, m)
}

fn small_model(seed: i64) -> (nn::VarStore, WorldModel) {
    let (vs, m) = fresh_model(seed, 32, 3);
    // TD-MPC2's init zeroes the reward and Q output weights, so their
    // VJPs would be zero: perturb every weight like a trained model's.
    tch::no_grad(|| {
        for mut v in vs.trainable_variables() {
            let noise = v.randn_like() * 0.05;
            let _ = v.g_add_(&noise);
        }
    });
    (vs, m)
}

/// A fresh model follows TD-MPC2's initialization and its bundle declares
/// two-hot heads of 101 bins over [-10, 10].
#[test]
fn fresh_model_has_tdmpc2_init_and_two_hot_heads() {
    let (vs, m) = fresh_model(1, 64, 2);
    for (name, t) in vs.variables() {
        let zero_out = (name.starts_with("reward.2")
            || (name.starts_with("q.") && name.contains(".2.")))
            && name.ends_with("weight");
        let absmax = t.abs().max().double_value(&[]);
        if name.ends_with("bias") && name.contains("linear") || zero_out {
            assert_eq!(absmax, 0.0, "{name} must start at zero");
        } else if name.contains("linear") {
            let std = t.std(true).double_value(&[]);
            assert!((0.015..0.025).contains(&std), "{name}: std {std}");
        }
    }
    let dir = tmpdir("init");
    let meta = ExportMeta::plain("unit-test", 5, 2);
    let manifest = export_bundle(&m, &meta, &dir, 1).unwrap();
    let want = dream_mpc::bundle::manifest::Decoding::TwoHotSymlog {
        bins: 101,
        vmin: -10.0,
        vmax: 10.0,
    };
    assert_eq!(manifest.reward_decoding, want);
    assert_eq!(manifest.value_decoding, want);
    assert_eq!(manifest.modules["reward"].outputs[0].size, 101);
    assert_eq!(manifest.modules["q"].outputs[0].size, 2 * 101);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn untrained_bundle_matches_tract_and_checksums() {
    let (_vs, m) = small_model(7);
    let dir = tmpdir("export");
    let meta = ExportMeta::plain("unit-test", 5, 2);
    let manifest = export_bundle(&m, &meta, &dir, 11).unwrap();

    // The manifest on disk is the one returned, and lists every file.
    let on_disk: Manifest =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(on_disk, manifest);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "manifest.json")
        .collect();
    files.sort();
    let listed: Vec<String> = manifest.checksums.keys().cloned().collect();
    assert_eq!(files, listed);
    for (f, sum) in &manifest.checksums {
        assert_eq!(
            &sha256_hex(&std::fs::read(dir.join(f)).unwrap()),
            sum,
            "{f}"
        );
    }
    assert_eq!(manifest.q_ensemble, 3);
    assert_eq!(manifest.modules["q"].outputs[0].size, 3 * 101);
    assert_eq!(manifest.modules["policy"].outputs.len(), 2);

    // References: 3 cases of batch 4 per module, all sizes consistent.
    let refs: References =
        serde_json::from_slice(&std::fs::read(dir.join("references.json")).unwrap()).unwrap();
    assert_eq!(refs.modules.len(), 5);
    for (name, cases) in &refs.modules {
        assert_eq!(cases.len(), 3, "{name}");
        let spec = &manifest.modules[name];
        for c in cases {
            for t in &spec.inputs {
                assert_eq!(c.inputs[&t.name].len(), 4 * t.size, "{name}.{}", t.name);
                assert_eq!(c.vjp[&t.name].len(), 4 * t.size, "{name}.{}", t.name);
                assert!(c.vjp[&t.name].iter().any(|v| *v != 0.0), "{name} vjp zero");
            }
            for t in &spec.outputs {
                assert_eq!(c.outputs[&t.name].len(), 4 * t.size);
                assert_eq!(c.cotangents[&t.name].len(), 4 * t.size);
            }
        }
    }
    // Policy log_std stays in the squash range; latents are SimNorm
    // (every group of 8 sums to 1).
    for c in &refs.modules["policy"] {
        assert!(c.outputs["log_std"]
            .iter()
            .all(|v| (-10.0..=2.0).contains(v)));
    }
    for c in &refs.modules["encoder"] {
        for g in c.outputs["z"].chunks(8) {
            assert!((g.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    // tract runs the ONNX and reproduces libtorch.
    let report = tract_forward_check(&dir).unwrap();
    assert_eq!(report.len(), 5);
    for r in &report {
        assert!(r.max_abs_err < 1e-4, "{r:?}");
    }

    // The controller loads it without libtorch and its compiled kernels
    // reproduce libtorch's outputs and autograd VJPs for every module, and
    // tract's forward on random rows.
    let bundle = dream_mpc::load::Bundle::load(&dir).unwrap();
    let refs = bundle.verify_references().unwrap();
    assert_eq!(refs.modules.len(), 5);
    for m in &refs.modules {
        assert!(m.cases > 0 && !m.vjp.is_empty(), "{m:?}");
        assert!(
            m.worst() <= refs.tolerance,
            "{m:?} (tolerance {})",
            refs.tolerance
        );
    }
    for (module, err) in bundle.tract_agreement(4, 1).unwrap() {
        assert!(err <= 1e-4, "{module}: controller vs tract {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The tract check can fail: a tampered reference output is caught.
#[test]
fn tract_check_detects_wrong_reference() {
    let (_vs, m) = small_model(3);
    let dir = tmpdir("tamper");
    export_bundle(&m, &ExportMeta::plain("unit-test", 5, 2), &dir, 1).unwrap();
    let rp = dir.join("references.json");
    let mut refs: References = serde_json::from_slice(&std::fs::read(&rp).unwrap()).unwrap();
    refs.modules.get_mut("reward").unwrap()[1]
        .outputs
        .get_mut("r")
        .unwrap()[2] += 0.01;
    std::fs::write(&rp, serde_json::to_vec(&refs).unwrap()).unwrap();
    let report = tract_forward_check(&dir).unwrap();
    let reward = report.iter().find(|r| r.module == "reward").unwrap();
    assert!(reward.max_abs_err > 5e-3, "{reward:?}");
    let dynamics = report.iter().find(|r| r.module == "dynamics").unwrap();
    assert!(dynamics.max_abs_err < 1e-4, "{dynamics:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Bad metadata is refused with the offending field named.
#[test]
fn bad_meta_is_refused() {
    let (_vs, m) = small_model(1);
    let dir = tmpdir("badmeta");
    let mut meta = ExportMeta::plain("unit-test", 5, 2);
    meta.obs_std[3] = 0.0;
    let e = export_bundle(&m, &meta, &dir, 1).unwrap_err().to_string();
    assert!(e.contains("obs_std[3]"), "{e}");
    let mut meta = ExportMeta::plain("unit-test", 5, 2);
    meta.action_low.pop();
    let e = export_bundle(&m, &meta, &dir, 1).unwrap_err().to_string();
    assert!(e.contains("action_low has length 1, expected 2"), "{e}");
    assert!(!dir.exists(), "nothing written on refused input");
}
