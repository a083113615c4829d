//! The fuzz corpus as regression tests, without the fuzzer. Every file
//! under `controller/tests/fuzz_regressions/<target>/` (the
//! crashes the fuzz targets of `controller/fuzz` found, once fixed, and a
//! few minimized seeds) goes through the same entry point as its target:
//!
//! - `manifest`: `parse_manifest`, and a parsed manifest must survive a
//!   write/read round trip;
//! - `onnx`: `Program::compile` on the `q` interface, then forward and
//!   backward;
//! - `references`: `parse_references`, then `Bundle::check_references` on
//!   the targets' tiny bundle;
//! - `params`: `Params::from_yaml`, then `Config::from_params`;
//! - `services` and `bag`: `dream_mpc_testkit::fuzz`'s entries, the
//!   fuzzer's own (the parameter services' answers; the bag reader).
//!
//! Each must return (an error or a value), never panic. `write_seeds`
//! (ignored) rewrites the generated seeds.

mod common;

use dream_mpc::bundle::files::{parse_manifest, parse_references};
use dream_mpc::bundle::manifest::{ModuleSpec, References, TensorSpec};
use dream_mpc::kernels::Program;
use dream_mpc::load::{run_module, Bundle};
use dream_mpc::rng::Rng;
use dream_mpc::ros::config::{Config, Params};
use dream_mpc_testkit::bundles::{write_random_tdmpc_bundle, TdmpcModel, TdmpcSpec};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no inputs in {}", dir.display());
    v
}

/// Run `f` on every input of `target`; a panic names the input.
fn replay(target: &str, mut f: impl FnMut(&[u8])) -> usize {
    let inputs = corpus(target);
    for p in &inputs {
        let bytes = std::fs::read(p).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| f(&bytes)));
        assert!(r.is_ok(), "{target}: {} panicked", p.display());
    }
    inputs.len()
}

fn manifest_entry(data: &[u8]) {
    let path = Path::new("fuzz/manifest.json");
    if let Ok(m) = parse_manifest(path, data) {
        let text = serde_json::to_vec(&m).unwrap();
        let again = parse_manifest(path, &text).expect("a written manifest parses");
        assert_eq!(again, m, "manifest round trip");
    }
}

fn q_spec() -> ModuleSpec {
    let t = |name: &str, size| TensorSpec {
        name: name.into(),
        size,
    };
    ModuleSpec {
        file: "q.onnx".into(),
        inputs: vec![t("z", 8), t("a", 2)],
        outputs: vec![t("q", 6)],
    }
}

/// As the fuzz target sees it: a panic inside tract, which the compiler
/// catches and turns into an error, is still a finding (the input must be
/// refused before tract runs).
fn onnx_entry(data: &[u8]) {
    match Program::compile("fuzz", data, &q_spec()) {
        Ok(p) => {
            let xs = vec![vec![0.5f32; 16], vec![0.5f32; 4]];
            let cts = vec![vec![1.0f32; 12]];
            run_module(&p, 2, &xs, &cts);
        }
        Err(e) => assert!(!e.to_string().contains("panicked"), "{e}"),
    }
}

/// The references target's tiny bundle (same sizes and seed).
fn tiny_bundle(tag: &str) -> Bundle {
    let dir = std::env::temp_dir().join(format!("dmpc-fuzzreg-{tag}-{}", std::process::id()));
    write_random_tdmpc_bundle(&dir, 3, 1, 8, 8, 2, 3).unwrap();
    let b = Bundle::load(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    b
}

fn params_entry(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = Params::from_yaml(text) {
            let _ = Config::from_params(p);
        }
    }
}

#[test]
fn manifest_corpus_replays() {
    assert!(replay("manifest", manifest_entry) >= 2);
}

#[test]
fn onnx_corpus_replays() {
    assert!(replay("onnx", onnx_entry) >= 1);
}

#[test]
fn references_corpus_replays() {
    let b = tiny_bundle("refs");
    let mut passed = 0;
    replay("references", |data| {
        if let Ok(r) = parse_references("references.json", data) {
            if let Ok(rep) = b.check_references(&r) {
                passed += rep.passed() as usize;
            }
        }
    });
    // The generated seed is the bundle's own references: it must pass,
    // so the replay reaches the kernels.
    assert!(passed >= 1, "no references input passed the check");
}

#[test]
fn params_corpus_replays() {
    assert!(replay("params", params_entry) >= 2);
}

#[test]
fn services_corpus_replays() {
    assert!(replay("services", dream_mpc_testkit::fuzz::services) >= 6);
}

#[test]
fn bag_corpus_replays() {
    let n = replay("bag", dream_mpc_testkit::fuzz::bag);
    dream_mpc_testkit::fuzz::remove_scratch();
    assert!(n >= 6);
}

/// The services seeds decode to requests that change the tunables (the
/// replay reaches the checks, not only the decoder), and the bag seed is
/// a readable bag.
#[test]
fn services_and_bag_seeds_reach_past_decoding() {
    use dream_mpc::bag::read::{decode_cdr, read, ReadOptions};
    use ros2_client::rcl_interfaces::SetParametersRequest;
    let set = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions/services/seed-set"),
    )
    .unwrap();
    let mut payload = vec![0, 1, 0, 0];
    payload.extend_from_slice(&set[1..]);
    let r: SetParametersRequest = decode_cdr(&payload).expect("seed-set decodes");
    assert_eq!(r.parameter.len(), 2);
    let dir = std::env::temp_dir().join(format!("dmpc-fuzzreg-bag-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("seed.mcap");
    let seed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions/bag/seed-mcap"),
    )
    .unwrap();
    std::fs::write(&f, &seed[1..]).unwrap();
    let (eps, _) = read(&[f], &ReadOptions::default()).expect("the seed bag reads");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(eps.len(), 2);
    assert_eq!(eps[0].len(), 5);
}

/// References of `b` computed by its own kernels (forward and VJP), one
/// case of `rows` rows per module.
fn own_references(b: &Bundle, rows: usize) -> References {
    let mut rng = Rng::new(8);
    let mut modules = BTreeMap::new();
    for (name, p) in &b.modules {
        let xs: Vec<Vec<f32>> = p
            .inputs()
            .iter()
            .map(|s| (0..rows * s.size).map(|_| rng.normal() as f32).collect())
            .collect();
        let cts = common::rand_cotangents(p, rows, &mut rng);
        let (ys, vjp) = run_module(p, rows, &xs, &cts);
        let case = common::reference_case(p, rows, &xs, &ys, &cts, &vjp);
        modules.insert(name.clone(), vec![case]);
    }
    References { modules }
}

/// Rewrites the generated seeds (run by hand: `cargo test -p dream-mpc
/// --test fuzz_regressions -- --ignored write_seeds`).
#[test]
#[ignore]
fn write_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for t in [
        "manifest",
        "onnx",
        "references",
        "params",
        "services",
        "bag",
    ] {
        std::fs::create_dir_all(root.join(t)).unwrap();
    }
    // services and bag: the testkit's seeds
    for (t, seeds) in [
        ("services", dream_mpc_testkit::fuzz::services_seeds()),
        ("bag", dream_mpc_testkit::fuzz::bag_seeds()),
    ] {
        for (name, bytes) in seeds {
            std::fs::write(root.join(t).join(name), bytes).unwrap();
        }
    }
    // manifest: a shipped one, and the same with an observation range
    let shipped = std::fs::read(repo.join("models/pendulum-swingup/manifest.json")).unwrap();
    std::fs::write(root.join("manifest/seed-pendulum.json"), &shipped).unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&shipped).unwrap();
    let n = v["observation"]["size"].as_u64().unwrap() as usize;
    v["observation"]["range"] = serde_json::json!({ "low": vec![-1.0; n], "high": vec![1.0; n] });
    std::fs::write(
        root.join("manifest/seed-pendulum-range.json"),
        serde_json::to_vec(&v).unwrap(),
    )
    .unwrap();
    // onnx: a q module of the target's interface
    let q = TdmpcModel::random(&TdmpcSpec::tiny(4, 2, 1)).module("q");
    assert_eq!(q.spec, q_spec());
    std::fs::write(root.join("onnx/seed-q.onnx"), q.model.to_bytes()).unwrap();
    // references: the tiny bundle's own
    let b = tiny_bundle("seeds");
    let r = own_references(&b, 2);
    std::fs::write(
        root.join("references/seed-tiny.json"),
        serde_json::to_vec(&r).unwrap(),
    )
    .unwrap();
    // params: the shipped parameter files
    for f in ["controller.yaml", "plumbing.yaml"] {
        std::fs::copy(
            repo.join("config").join(f),
            root.join("params").join(format!("seed-{f}")),
        )
        .unwrap();
    }
}
