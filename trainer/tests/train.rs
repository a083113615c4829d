//! Short online training runs on the trainer's plumbing task (tiny sizes):
//! losses decrease, the exported bundle reproduces libtorch in tract,
//! resume continues exactly, bad input is refused before training.

mod common;

use dream_mpc_trainer::config::TrainError;
use dream_mpc_trainer::tasks;
use dream_mpc_trainer::train::{train, Collect, RunOptions, RunSummary, TrainConfig};
use dream_mpc_trainer::verify::tract_forward_check;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// libtorch's generator is process-global: runs in parallel test threads
/// would reseed each other, so the runs in this file take turns.
static TORCH_RNG: Mutex<()> = Mutex::new(());

fn tmpdir(name: &str) -> PathBuf {
    common::tmpdir("train", name)
}

fn tiny(steps: u64) -> TrainConfig {
    common::tiny_run(5, steps)
}

/// `train` on the config's own task, writing into `out`.
fn run(
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    stop_after: Option<u64>,
) -> Result<RunSummary, TrainError> {
    let opts = RunOptions {
        resume,
        stop_after,
        ..RunOptions::new(out)
    };
    train(cfg, tasks::make(&cfg.task).unwrap(), &opts)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn short_run_learns_and_exports_a_checked_bundle() {
    let _turn = TORCH_RNG.lock().unwrap_or_else(|p| p.into_inner());
    tch::set_num_threads(1);
    let out = tmpdir("short");
    let cfg = tiny(400);
    let s = run(&cfg, &out, false, None).unwrap();
    assert_eq!(s.agent_steps, 400);
    assert_eq!(s.env_steps, 800, "action repeat 2");
    assert_eq!(s.updates, 400);
    assert_eq!(s.losses.len(), 400);
    // Model losses fall from the first updates to the last.
    let first = &s.losses[..40];
    let last = &s.losses[s.losses.len() - 40..];
    let fr = mean(first.iter().map(|l| l.reward));
    let lr = mean(last.iter().map(|l| l.reward));
    assert!(lr < 0.7 * fr, "reward loss {fr} -> {lr}");
    for l in &s.losses {
        assert!(l.consistency.is_finite() && l.value.is_finite() && l.policy.is_finite());
    }
    // Metrics CSV (header + one row per episode + one per evaluation), PNG.
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4 + 2, "{csv}");
    assert!(s.metrics.iter().filter(|m| m.eval_return.is_some()).count() == 2);
    // Evaluation runs the policy mean and the planner (controller code);
    // training episodes after seeding were acted by the planner on weights
    // refreshed before each of them (default collect = dream_mpc).
    for m in s.metrics.iter().filter(|m| m.eval_return.is_some()) {
        assert!(m.eval_planner_return.unwrap().is_finite(), "{m:?}");
    }
    let refreshed: Vec<f64> = s.metrics.iter().filter_map(|m| m.refresh_ms).collect();
    assert_eq!(refreshed.len(), 3, "{:?}", s.metrics);
    let header = csv.lines().next().unwrap();
    assert!(header.contains("eval_planner_return") && header.contains("refresh_ms"));
    let png = std::fs::read(out.join("learning_curve.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // The exported bundle runs in tract and matches libtorch.
    let report = tract_forward_check(&s.bundle).unwrap();
    assert_eq!(report.len(), 5);
    for r in &report {
        assert!(r.max_abs_err < 1e-4, "{r:?}");
    }
    // The manifest records the range of the observations in the replay
    //, a real spread for at least one element.
    let m = dream_mpc::bundle::read_manifest(&s.bundle).unwrap();
    let r = m
        .observation
        .range
        .expect("the export records observation.range");
    assert_eq!(r.low.len(), m.observation.size);
    assert!(r.low.iter().zip(&r.high).all(|(l, h)| l <= h));
    assert!(r.low.iter().zip(&r.high).any(|(l, h)| l < h), "{r:?}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn resume_gives_identical_next_losses() {
    let _turn = TORCH_RNG.lock().unwrap_or_else(|p| p.into_inner());
    tch::set_num_threads(1);
    let cfg = tiny(300);
    let full_dir = tmpdir("full");
    let full = run(&cfg, &full_dir, false, None).unwrap();

    let split_dir = tmpdir("split");
    let a = run(&cfg, &split_dir, false, Some(200)).unwrap();
    assert_eq!(a.agent_steps, 200);
    let b = run(&cfg, &split_dir, true, None).unwrap();
    assert_eq!(b.agent_steps, 300);
    assert_eq!(a.losses.len() + b.losses.len(), full.losses.len());
    let n = a.losses.len();
    assert!(!b.losses.is_empty());
    for (k, (x, y)) in b.losses.iter().zip(&full.losses[n..]).enumerate() {
        assert_eq!(x, y, "update {} after resume differs", n + k);
    }
    std::fs::remove_dir_all(&full_dir).unwrap();
    std::fs::remove_dir_all(&split_dir).unwrap();
}

#[test]
fn bad_input_is_refused_before_training() {
    let _turn = TORCH_RNG.lock().unwrap_or_else(|p| p.into_inner());
    // Unknown task: the error lists the known names.
    let e = tasks::make("no-such-task").err().unwrap().to_string();
    assert!(
        e.contains("no-such-task") && e.contains(tasks::REACH_1D),
        "{e}"
    );

    // Invalid config values name the field.
    let out = tmpdir("bad");
    type Edit = fn(&mut TrainConfig);
    let invalid: [(Edit, &str); 3] = [
        (|c| c.batch = 0, "batch = 0"),
        (|c| c.model.latent = 12, "latent = 12"),
        (|c| c.max_episode_steps = 3, "horizon = 3"),
    ];
    for (edit, named) in invalid {
        let mut c = tiny(200);
        edit(&mut c);
        let e = run(&c, &out, false, None).unwrap_err().to_string();
        assert!(e.contains(named), "{e}");
    }
    let mut c = tiny(200);
    c.discount = 1.5;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("discount = 1.5"), "{e}");
    assert!(!out.exists(), "nothing written for an invalid config");

    // Unwritable output folder (a path below a regular file).
    let file = tmpdir("file");
    std::fs::write(&file, b"x").unwrap();
    let c = tiny(200);
    let e = run(&c, &file.join("sub"), false, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot create"), "{e}");
    std::fs::remove_file(&file).unwrap();

    // Resume with nothing to resume.
    let e = run(&c, &out, true, None).unwrap_err().to_string();
    assert!(e.contains("no checkpoint"), "{e}");

    // An existing run is not overwritten without --resume, and an
    // incompatible config cannot resume it.
    run(&c, &out, false, Some(100)).unwrap();
    let state = std::fs::read(out.join("checkpoint/state.json")).unwrap();
    let e = run(&c, &out, false, None).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");
    let mut other = c.clone();
    other.model.hidden = 64;
    let e = run(&other, &out, true, None).unwrap_err().to_string();
    assert!(
        e.contains("cannot resume") && e.contains("hidden: 64"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(out.join("checkpoint/state.json")).unwrap(),
        state
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// Configuration files: an unknown key and an unknown `collect` planner
/// are refused with errors naming them and the accepted values.
#[test]
fn unknown_config_keys_and_planners_are_refused() {
    let e = TrainConfig::from_json(br#"{"version": 2, "task": "x", "horizn": 3}"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown field `horizn`") && e.contains("horizon"),
        "{e}"
    );
    let e = TrainConfig::from_json(br#"{"version": 2, "collect": "cem"}"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown variant `cem`") && e.contains("dream_mpc") && e.contains("mppi"),
        "{e}"
    );
    let e = TrainConfig::from_json(br#"{"version": 2, "model": {"latnt": 8}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field `latnt`"), "{e}");
    for (v, want) in [
        ("dream_mpc", Collect::DreamMpc),
        ("mppi", Collect::Mppi),
        ("policy", Collect::Policy),
    ] {
        let c = TrainConfig::from_json(format!(r#"{{"version": 2, "collect": "{v}"}}"#).as_bytes())
            .unwrap();
        assert_eq!(c.collect, want);
    }
    assert_eq!(TrainConfig::default().collect, Collect::DreamMpc);
}

/// Every shipped training config parses (version 2, no unknown fields)
/// and validates.
#[test]
fn shipped_configs_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if !(name.starts_with("train-") && name.ends_with(".json")) {
            continue;
        }
        let cfg = TrainConfig::from_json(&std::fs::read(&p).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        cfg.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        n += 1;
    }
    assert!(n >= 5, "{n} configs");
    let p = dir.join("train-small.json");
    let cfg = TrainConfig::from_json(&std::fs::read(&p).unwrap()).unwrap();
    assert_eq!(cfg.model.latent, 64);
    let mut bad = cfg.clone();
    bad.rho = 0.0;
    assert!(bad.validate().unwrap_err().to_string().contains("rho = 0"));
}

/// A configuration written when the step keys counted control steps (no
/// `"version": 2`, or version 1), even one that relies on the defaults, is
/// refused with the conversion; so is a checkpoint of that time.
#[test]
fn old_unit_configs_and_checkpoints_are_refused() {
    for text in [
        r#"{"task": "pendulum-swingup", "steps": 60000, "seed_steps": 10000}"#,
        r#"{"task": "pendulum-swingup"}"#,
        r#"{"version": 1, "task": "pendulum-swingup", "eval_every": 10000}"#,
    ] {
        let e = TrainConfig::from_json(text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("count agent steps")
                && e.contains("divide each of those four keys by action_repeat")
                && e.contains("\"version\": 2"),
            "{text}: {e}"
        );
    }
    let e = TrainConfig::from_json(br#"{"version": 3}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"version\": 3 is not one"), "{e}");
    // In agent steps, the same file trains as long as it says.
    let c =
        TrainConfig::from_json(br#"{"version": 2, "steps": 1000, "action_repeat": 2}"#).unwrap();
    assert_eq!(c.steps, 1000);
    assert_eq!(c.agent_episode_len(1000), 500);
    assert_eq!(c.env_episode_len(1000), 1000);
    assert_eq!(
        c.seed_agent_steps(1000),
        2500,
        "TD-MPC2: max(1000, 5 x 500)"
    );

    // A checkpoint whose state.json predates agent steps (no version).
    let _turn = TORCH_RNG.lock().unwrap_or_else(|p| p.into_inner());
    let out = tmpdir("oldstate");
    let cfg = tiny(200);
    run(&cfg, &out, false, Some(100)).unwrap();
    let p = out.join("checkpoint/state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let obj = state.as_object_mut().unwrap();
    obj.remove("version");
    obj.remove("agent_step");
    obj["config"].as_object_mut().unwrap().remove("version");
    std::fs::write(&p, serde_json::to_vec(&state).unwrap()).unwrap();
    let e = run(&cfg, &out, true, None).unwrap_err().to_string();
    assert!(
        e.contains("counted steps in control steps") && e.contains("env_step 200"),
        "{e}"
    );
    std::fs::remove_dir_all(&out).unwrap();
}
