//! `Bundle::verify_references` and `dream-mpc check`: agreement is measured
//! and reported, a corrupted reference is caught and named, a bad bundle
//! fails the command. (The libtorch references themselves are checked in
//! the trainer crate; here the references come from tract for the forward
//! pass and from our own kernels for the VJP, then get corrupted.)

mod common;

use dream_mpc::bundle::manifest::References;
use dream_mpc::bundle::write_bundle;
use dream_mpc::kernels::Program;
use dream_mpc::load::run_module;
use dream_mpc::load::tract_forward;
use dream_mpc::load::Bundle;
use dream_mpc::rng::Rng;
use dream_mpc_testkit::bundles::{TdmpcModel, TdmpcSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn model() -> TdmpcModel {
    let mut s = TdmpcSpec::new(5, 2, 16, 16, 2, 31);
    s.bins = 5;
    TdmpcModel::random(&s)
}

fn references(m: &TdmpcModel, rows: usize) -> References {
    let mut rng = Rng::new(4);
    let mut modules = BTreeMap::new();
    for b in m.modules() {
        let bytes = b.model.to_bytes();
        let p = Program::compile(&b.name, &bytes, &b.spec).unwrap();
        let xs: Vec<Vec<f32>> = p
            .inputs()
            .iter()
            .map(|s| (0..rows * s.size).map(|_| rng.normal() as f32).collect())
            .collect();
        let cts = common::rand_cotangents(&p, rows, &mut rng);
        let xr: Vec<&[f32]> = xs.iter().map(|v| v.as_slice()).collect();
        let ys = tract_forward(&b.name, &bytes, &b.spec, rows, &xr).unwrap();
        let (_, vjp) = run_module(&p, rows, &xs, &cts);
        let case = common::reference_case(&p, rows, &xs, &ys, &cts, &vjp);
        modules.insert(b.name.clone(), vec![case]);
    }
    References { modules }
}

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dmpc-check-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

/// `m` with the reference vectors `refs` written as a bundle into a fresh
/// [`dir`]`(tag)`; returns the folder.
fn written(tag: &str, m: &TdmpcModel, refs: Option<&References>) -> PathBuf {
    let d = dir(tag);
    write_bundle(&d, m.manifest(), &m.modules(), refs).unwrap();
    d
}

/// The `dream-mpc` binary under test: this build's, or `DREAM_MPC_BIN`
/// (to run these cases against another revision's binary).
fn controller_bin() -> PathBuf {
    std::env::var_os("DREAM_MPC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_dream-mpc")))
}

/// Run `dream-mpc <args>`: (success, stdout + stderr).
fn cli<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (bool, String) {
    let out = Command::new(controller_bin()).args(args).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn check_cmd(d: &Path) -> (bool, String) {
    cli(&[Path::new("check"), d])
}

/// A bundle in `dir(tag)` whose dynamics VJP reference is off by 0.5 in
/// one value, as if the weights had been altered and the checksums
/// recomputed.
fn bundle_with_bad_dynamics_vjp(tag: &str) -> PathBuf {
    let m = model();
    let mut refs = references(&m, 2);
    refs.modules.get_mut("dynamics").unwrap()[0]
        .vjp
        .get_mut("a")
        .unwrap()[1] += 0.5;
    written(tag, &m, Some(&refs))
}

#[test]
fn references_agree_and_check_passes() {
    let m = model();
    let d = written("good", &m, Some(&references(&m, 3)));
    let b = Bundle::load(&d).unwrap();
    let r = b.verify_references().unwrap();
    assert_eq!(r.modules.len(), 5);
    assert!(r.passed(), "{r:?}");
    for a in &r.modules {
        assert_eq!(a.cases, 1);
        assert_eq!(a.forward.len(), b.modules[&a.module].outputs().len());
        assert_eq!(a.vjp.len(), b.modules[&a.module].inputs().len());
        assert_eq!(
            a.vjp.values().fold(0.0f32, |m, v| m.max(*v)),
            0.0,
            "our own VJP is the reference"
        );
    }
    let (ok, text) = check_cmd(&d);
    assert!(ok, "{text}");
    for name in [
        "encoder",
        "dynamics",
        "reward",
        "q",
        "policy",
        "references",
        "Mish",
        "OK",
    ] {
        assert!(text.contains(name), "summary lacks `{name}`:\n{text}");
    }
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn corrupted_reference_is_caught() {
    let d = bundle_with_bad_dynamics_vjp("badref");
    let r = Bundle::load(&d).unwrap().verify_references().unwrap();
    assert!(!r.passed());
    let bad: Vec<&str> = r
        .modules
        .iter()
        .filter(|a| a.worst() > r.tolerance)
        .map(|a| a.module.as_str())
        .collect();
    assert_eq!(bad, ["dynamics"]);
    let dyn_ = r.modules.iter().find(|a| a.module == "dynamics").unwrap();
    assert!(dyn_.vjp["a"] > r.tolerance && dyn_.vjp["z"] <= r.tolerance);
    let (ok, text) = check_cmd(&d);
    assert!(!ok && text.contains("FAIL"), "{text}");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn check_fails_on_bad_bundle() {
    let m = model();
    let d = dir("badbundle");
    m.write(&d).unwrap();
    std::fs::write(d.join("reward.onnx"), b"not onnx").unwrap();
    let (ok, text) = check_cmd(&d);
    assert!(
        !ok && text.contains("reward.onnx") && text.contains("checksum"),
        "{text}"
    );
    std::fs::remove_dir_all(&d).ok();
}

/// `dream-mpc run` verifies what `check` verifies: a
/// bundle whose references disagree with its weights (here: one VJP value
/// off, as if the weights had been altered and the checksums recomputed)
/// is refused before the node starts, naming the module.
#[test]
fn run_refuses_a_bundle_that_fails_its_references() {
    let d = bundle_with_bad_dynamics_vjp("runref");
    let err = Bundle::load(&d).unwrap().verify().unwrap_err().to_string();
    assert!(err.contains("dynamics"), "{err}");
    let params = d.join("params.yaml");
    std::fs::write(
        &params,
        format!(
            "dream_mpc:\n  ros__parameters:\n    action_source: dream_mpc\n    bundle: {}\n    \
             observation: {{size: 5}}\n    action: {{size: 2, scale: [1.0, 1.0], offset: [0.0, 0.0], \
             safe: [0.0, 0.0]}}\n",
            d.display()
        ),
    )
    .unwrap();
    let (ok, text) = cli(&[Path::new("run"), Path::new("--params-file"), &params]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("dynamics") && text.contains("references"),
        "{text}"
    );
    std::fs::remove_dir_all(&d).ok();
}

/// A reference value that is not finite (1e39 reads as inf in f32) cannot
/// make a module pass: its error is infinite, not NaN dropped by a max.
/// The file is edited after writing and its checksum recomputed, as an
/// attacker or a broken exporter would leave it.
#[test]
fn an_infinite_reference_fails() {
    let m = model();
    let d = written("infref", &m, Some(&references(&m, 2)));
    let path = d.join("references.json");
    let mut refs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let outs = refs["modules"]["reward"][0]["outputs"]
        .as_object_mut()
        .unwrap();
    let first = outs.values_mut().next().unwrap();
    first[0] = serde_json::json!(1e39);
    let bytes = serde_json::to_vec(&refs).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let mpath = d.join("manifest.json");
    let mut man: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    man["checksums"]["references.json"] = serde_json::json!(dream_mpc::bundle::sha256_hex(&bytes));
    std::fs::write(&mpath, serde_json::to_vec_pretty(&man).unwrap()).unwrap();

    let b = Bundle::load(&d).unwrap();
    // serde_json reads 1e39 as f32 inf, or (with its `float_roundtrip`
    // feature, which the workspace's test build unifies in) refuses it as
    // out of range: either way the bundle must not pass.
    match b.verify_references() {
        Ok(r) => {
            let reward = r.modules.iter().find(|a| a.module == "reward").unwrap();
            assert_eq!(reward.worst(), f32::INFINITY);
            assert!(b.verify().unwrap_err().to_string().contains("reward"));
        }
        Err(e) => {
            assert!(e.to_string().contains("out of range"), "{e}");
            assert!(b.verify().is_err());
        }
    }
    let (ok, text) = check_cmd(&d);
    assert!(
        !ok && (text.contains("FAIL") || text.contains("out of range")),
        "{text}"
    );
    std::fs::remove_dir_all(&d).ok();
}

/// A bundle without references, or with a module that has no reference
/// case, is refused by the shared verification (and so by check and run).
#[test]
fn missing_references_fail() {
    let m = model();
    let d = written("noref", &m, None);
    let e = Bundle::load(&d).unwrap().verify().unwrap_err().to_string();
    assert!(e.contains("no reference vectors"), "{e}");
    let (ok, _) = check_cmd(&d);
    assert!(!ok);
    std::fs::remove_dir_all(&d).ok();

    let mut refs = references(&m, 1);
    refs.modules.get_mut("q").unwrap().clear();
    let d = written("partref", &m, Some(&refs));
    let e = Bundle::load(&d).unwrap().verify().unwrap_err().to_string();
    assert!(e.contains("`q`"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}

/// `check --rows` is bounded (it once aborted on 1e11 rows trying to
/// allocate them): out-of-range values are a usage error naming the flag.
#[test]
fn check_rows_is_bounded() {
    for rows in ["100000000000", "0", "1e11"] {
        let out = Command::new(env!("CARGO_BIN_EXE_dream-mpc"))
            .args(["check", "/nonexistent", "--rows", rows])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{rows}: {text}");
        assert!(text.contains("--rows"), "{rows}: {text}");
    }
}

/// `params.yaml` in `d` that runs the planner on the bundle in `d` (the
/// sizes and action range of [`model`]).
fn run_params(d: &Path) -> PathBuf {
    let params = d.join("params.yaml");
    std::fs::write(
        &params,
        format!(
            "dream_mpc:\n  ros__parameters:\n    action_source: dream_mpc\n    bundle: {}\n    \
             observation: {{size: 5}}\n    action: {{size: 2, scale: [1.0, 1.0], offset: [0.0, 0.0], \
             safe: [0.0, 0.0]}}\n",
            d.display()
        ),
    )
    .unwrap();
    params
}

/// `check` refuses what `run` refuses: a bundle without its `q` module
/// loads and matches its references (so `check` once said OK), but the
/// planner `run` builds needs the module and refuses it.
#[test]
fn check_and_run_refuse_a_bundle_without_q() {
    let m = model();
    let mut refs = references(&m, 2);
    refs.modules.remove("q");
    let modules: Vec<_> = m.modules().into_iter().filter(|b| b.name != "q").collect();
    let d = dir("noq");
    write_bundle(&d, m.manifest(), &modules, Some(&refs)).unwrap();
    Bundle::load(&d).unwrap().verify().unwrap();
    let (ok, text) = check_cmd(&d);
    assert!(!ok, "{text}");
    assert!(text.contains("FAIL") && text.contains("`q`"), "{text}");
    let (ok, text) = cli(&[
        Path::new("run"),
        Path::new("--params-file"),
        &run_params(&d),
    ]);
    assert!(!ok && text.contains("`q`"), "{text}");
    std::fs::remove_dir_all(&d).ok();
}

/// A bundle whose normalization or decoding cannot produce finite numbers
/// in its recorded range is refused at load, so by `check` and `run`
/// alike (both once passed it, and then every tick fell to the safe
/// action): a std of 1e-38 (an observation at the end of the range
/// normalizes to 1e38), and a two-hot decoding at 3e38 (decodes to inf).
#[test]
fn check_and_run_refuse_a_bundle_with_non_finite_outputs() {
    use dream_mpc::bundle::manifest::{Decoding, Manifest, ObservationRange};
    /// (tag, the edit, what the error names)
    type Edit = (&'static str, fn(&mut Manifest), &'static str);
    let edits: [Edit; 3] = [
        (
            "tinystd",
            |man| man.observation.std[1] = 1e-38,
            "observation element 1",
        ),
        (
            "hugebin",
            |man| {
                man.value_decoding = Decoding::TwoHotSymlog {
                    bins: 5,
                    vmin: 3e38,
                    vmax: 3e38,
                }
            },
            "value_decoding",
        ),
        (
            "hugereward",
            |man| {
                man.reward_decoding = Decoding::TwoHotSymlog {
                    bins: 5,
                    vmin: -100.0,
                    vmax: 100.0,
                }
            },
            "reward_decoding",
        ),
    ];
    for (tag, edit, named) in edits {
        let m = model();
        let d = written(tag, &m, Some(&references(&m, 2)));
        let path = d.join("manifest.json");
        let mut man: Manifest = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        man.observation.range = Some(ObservationRange {
            low: vec![-1.0; 5],
            high: vec![1.0; 5],
        });
        // the unedited bundle with a range loads
        std::fs::write(&path, serde_json::to_vec_pretty(&man).unwrap()).unwrap();
        Bundle::load(&d).unwrap();
        edit(&mut man);
        std::fs::write(&path, serde_json::to_vec_pretty(&man).unwrap()).unwrap();
        let e = Bundle::load(&d).unwrap_err().to_string();
        assert!(e.contains(named), "{tag}: {e}");
        let (ok, text) = check_cmd(&d);
        assert!(!ok && text.contains(named), "{tag}: {text}");
        let (ok, text) = cli(&[
            Path::new("run"),
            Path::new("--params-file"),
            &run_params(&d),
        ]);
        assert!(!ok && text.contains(named), "{tag}: {text}");
        std::fs::remove_dir_all(&d).ok();
    }
}
