//! Planner evaluation on a simulated task over a real exported bundle
//! (random weights, pendulum sizes): every planner runs whole episodes
//! through the controller's Agent, the compute is counted, the action
//! repeat of the bundle is honoured, and a bundle of the wrong sizes is an
//! error that names both.

use dream_mpc::load::Bundle;
use dream_mpc::planner::PlannerKind;
use dream_mpc::ros::config::Budget;
use dream_mpc_sim::evaluate::{evaluate, markdown_table, EvalError, Overrides, PlannerRow};
use dream_mpc_sim::registry;
use dream_mpc_testkit::bundles::{scratch_dir, write_random_tdmpc_bundle};
use std::path::PathBuf;
use std::process::Command;

fn pendulum_bundle(tag: &str, repeat: usize) -> PathBuf {
    let dir = scratch_dir(&format!("eval-{tag}"));
    write_random_tdmpc_bundle(&dir, 3, 1, 16, 32, 3, 4).unwrap();
    if repeat != 1 {
        let path = dir.join("manifest.json");
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        m["task"] = "pendulum-swingup".into();
        m["action_repeat"] = repeat.into();
        std::fs::write(&path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }
    dir
}

/// One episode of the policy planner (seed 0, no overrides) of `b` on
/// the registry's task `task`.
fn policy_episode(b: &Bundle, task: &str) -> Result<PlannerRow, EvalError> {
    let mut task = registry::make(task).unwrap();
    let o = Overrides::default();
    evaluate(b, task.as_mut(), PlannerKind::Policy, 1, 0, &o, |_, _| {})
}

#[test]
fn every_planner_runs_whole_episodes_and_counts_compute() {
    let dir = pendulum_bundle("all", 1);
    let b = Bundle::load(&dir).unwrap();
    let mut task = registry::make("pendulum-swingup").unwrap();
    let o = Overrides {
        budget: Budget {
            candidates: Some(4),
            iterations: Some(2),
            ..Budget::default()
        },
        samples: Some(64),
        ..Overrides::default()
    };
    let mut rows = Vec::new();
    for kind in PlannerKind::ALL {
        let mut seen = Vec::new();
        let row = evaluate(&b, task.as_mut(), kind, 2, 7, &o, |e, r| seen.push((e, r))).unwrap();
        assert_eq!(row.returns.len(), 2);
        assert_eq!(seen.len(), 2);
        assert_eq!(
            row.ticks, 2000,
            "{kind:?}: one tick per step without repeat"
        );
        assert_eq!(row.fallbacks, 0, "{kind:?}");
        for r in &row.returns {
            assert!((0.0..=1000.0).contains(r), "{kind:?} return {r}");
        }
        assert!(row.forward_rows >= 2.0, "{kind:?}");
        if kind.is_gradient() {
            assert!(row.backward_rows > 0.0, "{kind:?} ran no VJP");
        } else {
            assert_eq!(row.backward_rows, 0.0, "{kind:?} ran a VJP");
        }
        rows.push(row);
    }
    // Gradient planners at K = 2 run fewer rows than CEM's 64 x 6.
    let cem = &rows[1];
    let dream = &rows[5];
    assert!(
        cem.forward_rows > 5.0 * dream.forward_rows,
        "{} vs {}",
        cem.forward_rows,
        dream.forward_rows
    );
    let table = markdown_table("pendulum-swingup", 2, &rows);
    assert_eq!(table.lines().count(), 2 + PlannerKind::ALL.len(), "{table}");
    assert!(table.contains("| dream_mpc |"), "{table}");
    // Same seeds, same planner: the same returns.
    let again = evaluate(
        &b,
        task.as_mut(),
        PlannerKind::DreamMpc,
        2,
        7,
        &o,
        |_, _| {},
    )
    .unwrap();
    assert_eq!(again.returns, dream.returns);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn action_repeat_of_the_bundle_is_honoured() {
    let dir = pendulum_bundle("repeat", 4);
    let b = Bundle::load(&dir).unwrap();
    let row = policy_episode(&b, "pendulum-swingup").unwrap();
    assert_eq!(row.ticks, 250, "1000 steps / repeat 4");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bundle_for_other_sizes_is_refused() {
    let dir = pendulum_bundle("sizes", 1);
    let b = Bundle::load(&dir).unwrap();
    let e = policy_episode(&b, "cartpole-swingup")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cartpole-swingup") && e.contains("observation 5"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_cli_prints_the_results_table() {
    let dir = pendulum_bundle("cli", 2);
    let out = Command::new(env!("CARGO_BIN_EXE_dream-mpc-sim"))
        .args(["eval", "--bundle"])
        .arg(&dir)
        .args([
            "--planners",
            "policy,dream-mpc",
            "--episodes",
            "1",
            "--iterations",
            "1",
        ])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("| policy |") && stdout.contains("| dream_mpc |"),
        "{stdout}"
    );
    assert!(
        stderr.contains("dream_mpc episode 0 seed 1000 return"),
        "{stderr}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_dream-mpc-sim"))
        .args(["eval", "--bundle"])
        .arg(&dir)
        .args(["--planners", "ilqr"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown planner `ilqr`"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `budget` evaluates each N x K pair on the tuning seeds, marks the pairs
/// over the compute cap, keeps the cheapest pair within one standard error
/// of the best mean within it, and with --write stores it in a manifest
/// that still loads; a cap nothing fits is an error.
#[test]
fn budget_cli_chooses_within_the_cap_and_writes_the_manifest() {
    let dir = pendulum_bundle("budget", 2);
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_dream-mpc-sim"))
            .args(["budget", "--bundle"])
            .arg(&dir)
            .args([
                "--candidates",
                "2,4",
                "--iterations",
                "1,2",
                "--episodes",
                "1",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    // Measure the pairs' compute first with a cap everything fits.
    let out = run(&["--max-mflop", "1e9"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (N, K, MFLOP, mean return)
    let rows: Vec<(usize, usize, f64, f64)> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| N "))
        .map(|l| {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[4].parse().unwrap(),
                f[3].split(' ').next().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 4, "{stdout}");
    assert!(stdout.contains("seeds 2000-2000"), "{stdout}");
    let cheapest = rows.iter().map(|r| r.2).fold(f64::MAX, f64::min);
    let dearest = rows.iter().map(|r| r.2).fold(0.0, f64::max);
    assert!(cheapest < dearest, "{rows:?}");
    // A cap between the cheapest and the dearest pair: the choice is
    // within it, and --write puts it in the manifest.
    let cap = (cheapest + dearest) / 2.0;
    let out = run(&["--max-mflop", &format!("{cap}"), "--write"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("| no |"), "{stdout}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let (n, k) = (
        m["planner"]["candidates"].as_u64().unwrap() as usize,
        m["planner"]["iterations"].as_u64().unwrap() as usize,
    );
    let chosen = rows.iter().find(|r| (r.0, r.1) == (n, k)).unwrap();
    assert!(chosen.2 <= cap, "{chosen:?} over {cap}");
    // One episode per pair: no spread, so the choice is the best mean
    // within the cap, the cheapest of the pairs that reach it.
    let fitting: Vec<_> = rows.iter().filter(|r| r.2 <= cap).collect();
    let best = fitting.iter().map(|r| r.3).fold(f64::MIN, f64::max);
    assert!(
        (chosen.3 - best).abs() < 0.05,
        "{chosen:?} vs best {best}: {rows:?}"
    );
    for r in &fitting {
        assert!(
            (r.3 - best).abs() >= 0.05 || r.2 >= chosen.2,
            "{r:?} reaches the best mean cheaper than {chosen:?}"
        );
    }
    assert!(
        stdout.contains(&format!("chosen: N {n}, K {k}")),
        "{stdout}"
    );
    Bundle::load(&dir).unwrap();
    // Nothing fits: an error, the manifest untouched.
    let before = std::fs::read(dir.join("manifest.json")).unwrap();
    let out = run(&["--max-mflop", &format!("{}", cheapest / 2.0), "--write"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pair of the grid fits"));
    assert_eq!(std::fs::read(dir.join("manifest.json")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--sampling-iterations` sets CEM/MPPI's iterations per tick: the
/// forward rows per tick scale with them (what an equal-compute sampling
/// row is tuned with).
#[test]
fn sampling_iterations_set_a_sampling_planners_compute() {
    let dir = pendulum_bundle("sampling-iterations", 1);
    let b = Bundle::load(&dir).unwrap();
    let mut task = registry::make("pendulum-swingup").unwrap();
    let mut rows_per_tick = |i| {
        let o = Overrides {
            samples: Some(16),
            sampling_iterations: Some(i),
            ..Overrides::default()
        };
        let r = evaluate(&b, task.as_mut(), PlannerKind::Mppi, 1, 0, &o, |_, _| {}).unwrap();
        r.flops
    };
    let (one, three) = (rows_per_tick(1), rows_per_tick(3));
    assert!(
        (three / one - 3.0).abs() < 0.3,
        "flops per tick: {one} at 1 iteration, {three} at 3"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
