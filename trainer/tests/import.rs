//! `dream-mpc-train import` on TD-MPC2-layout checkpoints built here in
//! PyTorch (trainer/python/tdmpc2_fixture.py: random weights, official key
//! names; nothing is downloaded): the bundle passes the controller's
//! checks, its compiled kernels reproduce PyTorch's own forward and VJPs
//! on PyTorch's inputs, Dream-MPC (the authors' planner) chooses the same
//! actions as the tch reference planner on the imported weights, and
//! broken checkpoints are refused naming the key, with nothing written.

use dream_mpc::bundle::manifest::{Decoding, LatentSpec, References};
use dream_mpc::load::{run_module, scaled_error, Bundle};
use dream_mpc::planner::bundle_model::BundleModel;
use dream_mpc::planner::{PlanStatus, Planner, PlannerConfig, PlannerKind};
use dream_mpc_trainer::import::layout::Dims;
use dream_mpc_trainer::import::state_dict::python;
use dream_mpc_trainer::import::{
    import_checkpoint, import_weights, read_weights, ImportError, ImportOptions,
};
use dream_mpc_trainer::model::WorldModel;
use dream_mpc_trainer::reference_planner::{AuthorsBudget, AuthorsPlanner};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dmpc-import-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Run the fixture script into `dir` with `args`.
fn fixture(dir: &Path, args: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/tdmpc2_fixture.py");
    let py = python(None);
    let out = Command::new(&py)
        .arg(script)
        .arg(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; `source scripts/env.sh`", py.display()));
    assert!(
        out.status.success(),
        "fixture failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Worst scaled error of the bundle's compiled modules against PyTorch's
/// outputs and VJPs in `expected.json` (forward, VJP).
fn against_pytorch(bundle: &Bundle, expected: &Path) -> (f32, f32) {
    let refs: References =
        serde_json::from_slice(&std::fs::read(expected).expect("expected.json")).expect("parse");
    let (mut fwd, mut bwd) = (0.0f32, 0.0f32);
    for (name, cases) in &refs.modules {
        let p = bundle.module(name).expect("module");
        for c in cases {
            let xs: Vec<Vec<f32>> = p
                .inputs()
                .iter()
                .map(|s| c.inputs[&s.name].clone())
                .collect();
            let cts: Vec<Vec<f32>> = p
                .outputs()
                .iter()
                .map(|s| c.cotangents[&s.name].clone())
                .collect();
            let (ys, dxs) = run_module(p, c.batch, &xs, &cts);
            for (s, y) in p.outputs().iter().zip(&ys) {
                let e = scaled_error(y, &c.outputs[&s.name]);
                assert!(e.is_finite(), "{name}.{}: non-finite", s.name);
                fwd = fwd.max(e);
            }
            for (s, dx) in p.inputs().iter().zip(&dxs) {
                bwd = bwd.max(scaled_error(dx, &c.vjp[&s.name]));
            }
        }
    }
    (fwd, bwd)
}

/// Largest action gap between the controller's default Dream-MPC on the
/// bundle and the tch reference of the authors' planner on the imported
/// weights, same seed, over `episodes` x `ticks`.
/// The imported bundle in `dir` matches PyTorch's `expected.json` (forward
/// and VJP) and plans like the tch reference on the imported weights `tm`
/// (2 episodes of 3 ticks), all within 1e-4; `label` names the size.
fn assert_matches_references(label: &str, dir: &Path, expected: &Path, tm: &WorldModel) {
    let bundle = Bundle::load(dir).expect("load");
    let (fwd, bwd) = against_pytorch(&bundle, expected);
    eprintln!("{label}: controller vs PyTorch, forward {fwd:.2e}, VJP {bwd:.2e}");
    assert!(fwd < 1e-4 && bwd < 1e-4, "forward {fwd}, VJP {bwd}");
    let gap = planner_gap(dir, tm, 2, 3);
    eprintln!("{label}: Dream-MPC vs tch reference, largest action gap {gap:.2e}");
    assert!(gap < 1e-4, "action gap {gap}");
}

fn planner_gap(dir: &Path, tm: &WorldModel, episodes: usize, ticks: usize) -> f32 {
    let bundle = Bundle::load(dir).expect("load");
    let model = BundleModel::new(&bundle).expect("model");
    let m = &bundle.manifest;
    let seed = 11;
    let mut pc = PlannerConfig::for_kind(PlannerKind::DreamMpc, &m.planner, m.discount);
    pc.seed = seed;
    let mut ours = Planner::new(&model, pc.clone()).expect("planner");
    let budget = AuthorsBudget {
        candidates: pc.candidates,
        horizon: pc.horizon,
        iterations: pc.iterations,
        gamma: m.discount as f64,
        ..Default::default()
    };
    assert_eq!(
        budget,
        AuthorsBudget {
            gamma: budget.gamma,
            ..Default::default()
        }
    );
    let mut reference = AuthorsPlanner::new(budget, seed);
    tch::manual_seed(5);
    let mut worst = 0.0f32;
    for _ in 0..episodes {
        ours.reset();
        reference.reset();
        for _ in 0..ticks {
            let o = Tensor::randn([1, tm.obs_size as i64], (Kind::Float, Device::Cpu)) * 2.0;
            let z0 = tch::no_grad(|| tm.encode(&o));
            let want: Vec<f32> = Vec::try_from(&reference.act(tm, &z0)).expect("action");
            let z0v: Vec<f32> = Vec::try_from(&z0.view([-1])).expect("z0");
            let r = ours
                .plan(&model, &z0v, Instant::now() + Duration::from_secs(60))
                .expect("plan");
            assert_eq!(r.status, PlanStatus::Finished);
            for (g, w) in r.action.as_slice().iter().zip(&want) {
                worst = worst.max((g - w).abs());
            }
        }
    }
    worst
}

fn cli_import(ckpt: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dream-mpc-train"))
        .arg("import")
        .arg("--checkpoint")
        .arg(ckpt)
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .expect("run dream-mpc-train")
}

/// Import `dir/checkpoint.pt` into `dir/bundle` for `task` with
/// (observation, action) sizes `sizes`, the TD-MPC2 size `named` and
/// (episode length, action repeat) `episode`.
fn opts_in(
    dir: &Path,
    task: &str,
    sizes: (usize, usize),
    named: &str,
    episode: (usize, usize),
) -> ImportOptions {
    let dims = Dims::named(named).unwrap();
    let (ckpt, out) = (dir.join("checkpoint.pt"), dir.join("bundle"));
    ImportOptions::new(
        &ckpt, &out, task, sizes.0, sizes.1, dims, episode.0, episode.1,
    )
}

/// The 5M size (TD-MPC2's released single-task size) in the current
/// stacked layout with every known extra.
#[test]
fn five_m_checkpoint_imports_matches_pytorch_and_plans_like_the_reference() {
    let dir = tmpdir("5m");
    fixture(&dir, &["--obs", "24", "--act", "6", "--layout", "stacked"]);
    let out = dir.join("bundle");
    let opts = opts_in(&dir, "walker-run", (24, 6), "5M", (500, 2));
    let weights = read_weights(&opts).expect("weights");
    let (_, tm) = import_weights(&opts, weights).expect("import");

    let bundle = Bundle::load(&out).expect("load");
    bundle.verify().expect("check accepts the bundle");
    let m = &bundle.manifest;
    assert_eq!(m.task, "walker-run");
    assert_eq!(
        (m.observation.size, m.action.size, m.q_ensemble),
        (24, 6, 5)
    );
    assert_eq!(
        m.latent,
        LatentSpec::Vector {
            size: 512,
            simnorm_group: 8
        }
    );
    assert_eq!(
        m.value_decoding,
        Decoding::TwoHotSymlog {
            bins: 101,
            vmin: -10.0,
            vmax: 10.0
        }
    );
    assert!((m.discount - 0.99).abs() < 1e-6, "discount {}", m.discount);
    assert_eq!(m.action_repeat, 2);

    assert_matches_references("5M", &out, &dir.join("expected.json"), &tm);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The 1M size (2 Q heads, latent 128) in the per-head layout, and a
/// small custom size in the older flat functorch layout.
#[test]
fn one_m_per_head_and_flat_layouts_import_and_plan() {
    let dir = tmpdir("1m");
    fixture(
        &dir,
        &[
            "--obs", "5", "--act", "1", "--latent", "128", "--mlp", "384", "--enc", "256",
            "--num-q", "2", "--layout", "perhead",
        ],
    );
    let out = dir.join("bundle");
    let opts = opts_in(&dir, "cartpole-swingup", (5, 1), "1M", (1000, 1));
    let (m, tm) = import_weights(&opts, read_weights(&opts).expect("weights")).expect("import");
    assert_eq!(m.q_ensemble, 2);
    assert!((m.discount - 0.995).abs() < 1e-6);
    assert_matches_references("1M", &out, &dir.join("expected.json"), &tm);

    let flat = dir.join("flat");
    fixture(&flat, &tiny_args("flat", false));
    let fopts = tiny_opts(&flat.join("checkpoint.pt"), &flat.join("bundle"));
    import_checkpoint(&fopts).expect("flat import");
    let bundle = Bundle::load(&flat.join("bundle")).expect("load");
    let (fwd, bwd) = against_pytorch(&bundle, &flat.join("expected.json"));
    assert!(fwd < 1e-4 && bwd < 1e-4, "flat: forward {fwd}, VJP {bwd}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sizes of [`tiny_dims`] as flags; the fixture script and the
/// import command name them alike.
const TINY_SIZE_FLAGS: [&str; 10] = [
    "--latent",
    "32",
    "--mlp",
    "48",
    "--enc",
    "40",
    "--enc-layers",
    "3",
    "--num-q",
    "3",
];

fn tiny_args(layout: &str, bad: bool) -> Vec<&str> {
    let mut v = vec!["--obs", "7", "--act", "2"];
    v.extend(TINY_SIZE_FLAGS);
    v.extend(["--bins", "21", "--layout", layout]);
    if bad {
        v.push("--bad");
    }
    v
}

fn tiny_dims() -> Dims {
    Dims {
        name: "tiny".into(),
        latent: 32,
        mlp: 48,
        enc: 40,
        enc_layers: 3,
        num_q: 3,
        num_bins: 21,
        vmin: -10.0,
        vmax: 10.0,
        simnorm: 8,
    }
}

fn tiny_opts(ckpt: &Path, out: &Path) -> ImportOptions {
    ImportOptions::new(ckpt, out, "tiny", 7, 2, tiny_dims(), 200, 1)
}

/// Broken checkpoints are refused naming the key, nothing written. The
/// variants are converted to safetensors in one Python run (the
/// importer's other input; the pickle path is the same code up to the
/// state dict), and the command line is checked on the pickles.
#[test]
fn bad_checkpoints_are_refused_naming_the_key_and_nothing_is_written() {
    let dir = tmpdir("bad");
    fixture(&dir, &tiny_args("stacked", true));
    let out = dir.join("bundle");
    let names = [
        "checkpoint",
        "missing",
        "unknown",
        "shape",
        "nonfinite",
        "multitask",
    ];
    let conv = Command::new(python(None))
        .arg("-c")
        .arg(
            "import sys; sys.path.insert(0, sys.argv[1]); \
             from tdmpc2_to_safetensors import main; \
             [main(p + '.pt', p + '.safetensors') for p in sys.argv[2:]]",
        )
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/python"))
        .args(names.iter().map(|n| dir.join(n)))
        .status()
        .expect("converter");
    assert!(conv.success());
    let refuse = |file: &str, opts: &ImportOptions| -> ImportError {
        let mut o = opts.clone();
        o.checkpoint = dir.join(file);
        let e = import_checkpoint(&o).expect_err(file);
        assert!(!out.exists(), "{file}: the output folder was written");
        e
    };
    let opts = tiny_opts(&dir.join("checkpoint.safetensors"), &out);
    let cases: [(&str, &str); 5] = [
        ("missing", "_reward.2.bias"),
        ("unknown", "_value_head.weight"),
        ("shape", "_dynamics.1.weight"),
        ("nonfinite", "_pi.0.weight"),
        ("multitask", "_task_emb.weight"),
    ];
    for (name, key) in cases {
        let e = refuse(&format!("{name}.safetensors"), &opts);
        let msg = e.to_string();
        eprintln!("{name}: {msg}");
        assert!(msg.contains(&format!("`{key}`")), "{name}: {msg}");
        let kind_ok = matches!(
            (&e, name),
            (ImportError::MissingKey { .. }, "missing")
                | (ImportError::UnknownKey { .. }, "unknown")
                | (ImportError::Shape { .. }, "shape")
                | (ImportError::NonFinite { .. }, "nonfinite")
                | (ImportError::MultiTask { .. }, "multitask")
        );
        assert!(kind_ok, "{name}: {e:?}");
    }
    // The right checkpoint with the wrong size: the first layer whose
    // shape the size does not give is named.
    let mut wrong = opts.clone();
    wrong.dims.latent = 64;
    let e = refuse("checkpoint.safetensors", &wrong);
    assert!(e.to_string().contains("`_encoder.state.2.weight`"), "{e}");
    let mut wrong = opts.clone();
    wrong.dims.num_q = 2;
    let e = refuse("checkpoint.safetensors", &wrong);
    assert!(e.to_string().contains("`_Qs.params.0.weight`"), "{e}");
    // Not a pickle at all.
    std::fs::write(dir.join("garbage.pt"), b"not a checkpoint").unwrap();
    assert!(matches!(
        refuse("garbage.pt", &opts),
        ImportError::Checkpoint(_)
    ));

    // The documented command: a refusal names the key and fails; the good
    // pickle, with every known extra (detached and
    // target copies, tensordict entries, meta template, log-std buffers),
    // imports and passes the controller's check; a second import into
    // the full folder is refused.
    let mut args = vec![
        "--task",
        "tiny",
        "--obs-size",
        "7",
        "--action-size",
        "2",
        "--size",
        "5M",
    ];
    args.extend(TINY_SIZE_FLAGS);
    args.extend([
        "--num-bins",
        "21",
        "--episode-length",
        "200",
        "--action-repeat",
        "1",
    ]);
    let r = cli_import(&dir.join("nonfinite.safetensors"), &out, &args);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("`_pi.0.weight`"));
    assert!(!out.exists());
    let r = cli_import(&dir.join("checkpoint.pt"), &out, &args);
    assert!(
        r.status.success(),
        "import: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    Bundle::load(&out).expect("load").verify().expect("check");
    let again = cli_import(&dir.join("checkpoint.pt"), &out, &args);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    let _ = std::fs::remove_dir_all(&dir);
}
