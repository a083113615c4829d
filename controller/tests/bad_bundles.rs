//! Bad bundles are refused with an error that names the fault, and loading
//! is all or nothing (`Bundle::load` returns no model on any error).

use dream_mpc::bundle::manifest::{LatentSpec, Manifest};
use dream_mpc::bundle::onnx_build::GraphBuilder;
use dream_mpc::bundle::{sha256_hex, write_bundle, BuiltModule, BundleError};
use dream_mpc::kernels::CompileError;
use dream_mpc::load::{Bundle, LoadError, REFERENCE_TOLERANCE};
use dream_mpc_testkit::bundles::{write_random_tdmpc_bundle, TdmpcModel, TdmpcSpec};
use std::path::{Path, PathBuf};

fn fresh_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dmpc-bad-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&d).ok();
    d
}

fn small() -> TdmpcModel {
    let mut s = TdmpcSpec::new(4, 2, 16, 16, 2, 21);
    s.bins = 5;
    TdmpcModel::random(&s)
}

fn good(tag: &str) -> (PathBuf, Manifest) {
    let d = fresh_dir(tag);
    let m = small().write(&d).unwrap();
    (d, m)
}

fn rewrite_manifest(dir: &Path, m: &Manifest) {
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(m).unwrap(),
    )
    .unwrap();
}

/// Replace `file` with `bytes` and fix its checksum (so the ONNX checks, not
/// the checksum, must catch the fault).
fn replace_file(dir: &Path, m: &mut Manifest, file: &str, bytes: &[u8]) {
    std::fs::write(dir.join(file), bytes).unwrap();
    m.checksums.insert(file.into(), sha256_hex(bytes));
    rewrite_manifest(dir, m);
}

fn load_err(dir: &Path) -> LoadError {
    let e = Bundle::load(dir).expect_err("bundle must be refused");
    std::fs::remove_dir_all(dir).ok();
    e
}

/// A good bundle (`tag`) with `file` replaced by `bytes` (see
/// [`replace_file`]) must be refused: the error.
fn refused_with_file(tag: &str, file: &str, bytes: &[u8]) -> LoadError {
    let (d, mut m) = good(tag);
    replace_file(&d, &mut m, file, bytes);
    load_err(&d)
}

/// A small TD-MPC2-style bundle loads, and every module's forward pass
/// matches tract's on random rows.
#[test]
fn tdmpc_bundle_loads_and_matches_tract() {
    let dir = std::env::temp_dir().join(format!("dmpc-load-{}", std::process::id()));
    write_random_tdmpc_bundle(&dir, 7, 2, 16, 32, 3, 11).unwrap();
    let b = Bundle::load(&dir).unwrap();
    assert_eq!(b.modules.len(), 5);
    let agree = b.tract_agreement(4, 3).unwrap();
    assert_eq!(agree.len(), 5);
    for (m, e) in &agree {
        assert!(*e < REFERENCE_TOLERANCE, "{m}: error {e} vs tract");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `e` is an interface error (of the manifest's sizes or of the compiled
/// graph) naming `module`.
fn is_interface_error(e: &LoadError, module: &str) -> bool {
    matches!(
        e,
        LoadError::Bundle(BundleError::Interface { .. })
            | LoadError::Compile(CompileError::Interface { .. })
    ) && e.module() == Some(module)
}

/// The compile error of `module` that `e` must be.
fn compile_error<'e>(e: &'e LoadError, module: &str) -> &'e CompileError {
    match e {
        LoadError::Compile(c) if c.module() == module => c,
        _ => panic!("expected a compile error in `{module}`, got: {e}"),
    }
}

#[test]
fn good_bundle_loads() {
    let (d, _) = good("good");
    let b = Bundle::load(&d).unwrap();
    assert_eq!(
        b.modules.keys().collect::<Vec<_>>(),
        ["dynamics", "encoder", "policy", "q", "reward"]
    );
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn missing_file() {
    let (d, _) = good("missing");
    std::fs::remove_file(d.join("reward.onnx")).unwrap();
    let e = load_err(&d);
    assert!(
        matches!(&e, LoadError::Bundle(BundleError::Io { path, .. }) if path.ends_with("reward.onnx")),
        "{e}"
    );
    let d = fresh_dir("nomanifest");
    std::fs::create_dir_all(&d).unwrap();
    assert!(
        matches!(load_err(&d), LoadError::Bundle(BundleError::Io { path, .. }) if path.ends_with("manifest.json"))
    );
}

#[test]
fn checksum_mismatch_and_missing_checksum() {
    let (d, mut m) = good("sum");
    let mut bytes = std::fs::read(d.join("q.onnx")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(d.join("q.onnx"), &bytes).unwrap();
    let e = load_err(&d);
    assert!(
        matches!(&e, LoadError::Bundle(BundleError::ChecksumMismatch { file, .. }) if file == "q.onnx"),
        "{e}"
    );
    assert!(e.to_string().contains("q.onnx"));
    let (d, _) = good("nosum");
    m.checksums.remove("policy.onnx");
    rewrite_manifest(&d, &m);
    assert!(
        matches!(load_err(&d), LoadError::Bundle(BundleError::MissingChecksum { file }) if file == "policy.onnx")
    );
}

#[test]
fn manifest_onnx_shape_disagreement() {
    let (d, mut m) = good("iface");
    m.modules.get_mut("dynamics").unwrap().inputs[1].size = 3; // ONNX says 2
    rewrite_manifest(&d, &m);
    let e = load_err(&d);
    assert!(is_interface_error(&e, "dynamics"), "{e}");
    // Consistent with its ONNX file but not with the manifest's sizes.
    let (d, mut m) = good("roles");
    m.q_ensemble = 3;
    rewrite_manifest(&d, &m);
    let e = load_err(&d);
    assert!(is_interface_error(&e, "q"), "{e}");
    let (d, mut m) = good("iface2");
    m.modules.get_mut("reward").unwrap().outputs[0].name = "reward".into();
    rewrite_manifest(&d, &m);
    let e = load_err(&d);
    assert!(is_interface_error(&e, "reward"), "{e}");
    // The graph declares the manifest's size, but its weights disagree:
    // the compiler's shape propagation (or tract's type check) catches it.
    let mut g = GraphBuilder::new("reward");
    let z = g.input("z", 16);
    let _a = g.input("a", 2);
    let r = g.linear(&z, &[0.5; 15 * 5], None, 15, 5);
    g.output(&r, "r", 5);
    let e = refused_with_file("iface3", "reward.onnx", &g.finish().to_bytes());
    assert!(
        matches!(
            compile_error(&e, "reward"),
            CompileError::Onnx { .. } | CompileError::UnsupportedNode { .. }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("15"), "{e}");
}

#[test]
fn nan_or_inf_weights() {
    for (tag, bad) in [("nan", f32::NAN), ("inf", f32::INFINITY)] {
        let mut g = GraphBuilder::new("policy");
        let z = g.input("z", 16);
        let mut w = vec![0.1; 16 * 2];
        w[7] = bad;
        let mu = g.linear(&z, &w, None, 16, 2);
        let ls = g.linear(&z, &[0.2; 32], None, 16, 2);
        g.output(&mu, "mu", 2);
        g.output(&ls, "log_std", 2);
        let e = refused_with_file(tag, "policy.onnx", &g.finish().to_bytes());
        assert!(
            matches!(&e, LoadError::Compile(CompileError::NonFinite { module, index: 7, .. }) if module == "policy"),
            "{e}"
        );
    }
}

#[test]
fn unsupported_op_is_named() {
    let mut g = GraphBuilder::new("encoder");
    let x = g.input("obs", 4);
    let h = g.linear(&x, &[0.1; 64], None, 4, 16);
    let y = g.node("Cos", &[&h], vec![]);
    g.output(&y, "z", 16);
    let e = refused_with_file("op", "encoder.onnx", &g.finish().to_bytes());
    assert!(
        matches!(&e, LoadError::Compile(CompileError::UnsupportedOp { module, op, .. }) if module == "encoder" && op == "Cos"),
        "{e}"
    );
    assert!(e.to_string().contains("Cos") && e.to_string().contains("encoder"));
}

#[test]
fn truncated_and_random_onnx() {
    let (d, _) = good("trunc");
    let bytes = std::fs::read(d.join("dynamics.onnx")).unwrap();
    std::fs::remove_dir_all(&d).ok();
    let mut rng = dream_mpc::rng::Rng::new(5);
    let junk: Vec<u8> = (0..500).map(|_| rng.below(256) as u8).collect();
    for (tag, bad) in [("trunc", &bytes[..bytes.len() / 2]), ("random", &junk[..])] {
        let e = refused_with_file(tag, "dynamics.onnx", bad);
        assert!(
            matches!(
                compile_error(&e, "dynamics"),
                CompileError::Onnx { .. } | CompileError::Interface { .. }
            ),
            "{tag}: {e}"
        );
    }
}

#[test]
fn manifest_faults() {
    let (d, _) = good("json");
    std::fs::write(d.join("manifest.json"), "{ \"format\": ").unwrap();
    assert!(matches!(
        load_err(&d),
        LoadError::Bundle(BundleError::Manifest { .. })
    ));
    let (d, mut m) = good("rssm");
    m.latent = LatentSpec::Rssm {
        deter: 8,
        stoch: 2,
        classes: 4,
    };
    rewrite_manifest(&d, &m);
    let e = load_err(&d);
    assert!(e.to_string().contains("rssm"), "{e}");
    let (d, mut m) = good("std");
    m.observation.std[2] = 0.0;
    rewrite_manifest(&d, &m);
    let e = load_err(&d);
    assert!(e.to_string().contains("observation.std[2]"), "{e}");
    let (d, mut m) = good("bounds");
    m.action.low[1] = 2.0;
    rewrite_manifest(&d, &m);
    assert!(load_err(&d).to_string().contains("action bound 1"));
}

/// Sizes read from the manifest are checked arithmetic:
/// `q_ensemble` = 6148914691236517207 with 3 value bins wraps to 5 in
/// 64-bit arithmetic and once passed as a 5-wide Q module; it is refused,
/// naming the field.
#[test]
fn q_ensemble_that_wraps_is_refused() {
    let (d, mut m) = good("qwrap");
    m.q_ensemble = 6148914691236517207;
    m.value_decoding = dream_mpc::bundle::manifest::Decoding::TwoHotSymlog {
        bins: 3,
        vmin: -10.0,
        vmax: 10.0,
    };
    assert_eq!(m.q_ensemble.wrapping_mul(3), 5);
    rewrite_manifest(&d, &m);
    let e = load_err(&d).to_string();
    assert!(e.contains("q_ensemble 6148914691236517207"), "{e}");
}

/// A module whose output is a constant is refused (no input dependence).
/// The module is an extra one (not a standard role), so that the
/// manifest's role checks pass and the compiler's check is what refuses it.
#[test]
fn constant_output_is_refused() {
    let d = fresh_dir("const");
    let mut g = GraphBuilder::new("extra");
    let _z = g.input("z", 3);
    let c = g.constant("c", &[1, 2], &[1.0, 2.0]);
    g.output(&c, "r", 2);
    let module = BuiltModule {
        name: "extra".into(),
        spec: dream_mpc::bundle::manifest::ModuleSpec {
            file: "extra.onnx".into(),
            inputs: vec![dream_mpc::bundle::manifest::TensorSpec {
                name: "z".into(),
                size: 3,
            }],
            outputs: vec![dream_mpc::bundle::manifest::TensorSpec {
                name: "r".into(),
                size: 2,
            }],
        },
        model: g.finish(),
    };
    write_bundle(&d, small().manifest(), &[module], None).unwrap();
    let e = load_err(&d);
    assert!(
        matches!(compile_error(&e, "extra"), CompileError::Interface { .. })
            && e.to_string().contains("constant"),
        "{e}"
    );
}
