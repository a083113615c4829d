//! MuJoCo tasks against the real DeepMind Control Suite (feature `mujoco`).
//!
//! `tests/dmc_reference.py` runs the installed dm_control 1.0.50 on mujoco
//! 3.17.0 and prints reference data; these tests replay it through
//! `dream_mpc_sim::mujoco` and compare.
//!
//! * Trajectories: per task, the suite's post-reset MuJoCo integration
//!   state (and the reacher's target) is loaded into the Rust task, then
//!   the same 1,000 pseudo-random actions are replayed. Observations and
//!   rewards must agree to 1e-6 relative (|a - b| / max(|b|, 1)); the
//!   worst case per task is printed (`--nocapture`).
//! * Initial states: our generator is not numpy's, so a seed cannot give
//!   the suite's exact state; the per-coordinate mean and spread of 200
//!   resets must match the suite's 200 resets.
#![cfg(feature = "mujoco")]

use std::path::Path;
use std::process::Command;

use dream_mpc_sim::mujoco::{MujocoTask, SuiteTask};
use dream_mpc_sim::Task;
use dream_mpc_tests::stdout_of;
use serde_json::Value;

fn reference(args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("dmc_reference.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut cmd = Command::new(&python);
    cmd.arg(&script).args(args);
    let what = format!(
        "{python} {} (run `source scripts/env.sh`; install the suite: \
         DREAM_MPC_MUJOCO=1 bash scripts/setup.sh)",
        script.display()
    );
    serde_json::from_slice(&stdout_of(&mut cmd, &what))
        .expect("reference script printed invalid JSON")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn all_names() -> String {
    SuiteTask::ALL.map(|t| t.name()).join(",")
}

/// |a - b| / max(|b|, 1): relative for large values, absolute near zero.
fn err(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1.0)
}

fn worst(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| err(x, y))
        .fold(0.0, f64::max)
}

#[test]
fn trajectories_match_dm_control() {
    let doc = reference(&[
        "trajectories",
        "--tasks",
        &all_names(),
        "--seed",
        "0",
        "--steps",
        "1000",
    ]);
    assert_eq!(doc["mujoco"], "3.17.0");
    let mut failures = Vec::new();
    println!("task                 | worst obs err | worst reward err | qpos/qvel-only replay: steps within 1e-6");
    for t in SuiteTask::ALL {
        let rec = &doc["tasks"][t.name()];
        let mut task = MujocoTask::from_suite_task(t).unwrap();
        let spec = task.spec().clone();
        // Layout and timing as the suite defines them.
        let keys: Vec<(String, usize)> = rec["obs_keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k[0].as_str().unwrap().to_string(),
                    k[1].as_u64().unwrap() as usize,
                )
            })
            .collect();
        let ours: Vec<(String, usize)> = t
            .obs_keys()
            .iter()
            .map(|&(k, n)| (k.to_string(), n))
            .collect();
        assert_eq!(ours, keys, "{}: observation keys", t.name());
        assert_eq!(
            spec.physics_substeps as u64,
            rec["n_sub_steps"].as_u64().unwrap(),
            "{}",
            t.name()
        );
        assert!((spec.control_timestep - rec["control_timestep"].as_f64().unwrap()).abs() < 1e-12);

        let mut obs = vec![0.0; spec.obs_size];
        task.reset(0, &mut obs).unwrap();
        task.set_episode_params(&floats(&rec["episode_params"]))
            .unwrap();
        task.set_integration_state(&floats(&rec["integration_state"]), &mut obs)
            .unwrap();
        let mut worst_obs = worst(&obs, &floats(&rec["obs0"]));
        let mut worst_rew: f64 = 0.0;
        let actions = rec["actions"].as_array().unwrap();
        let observations = rec["observations"].as_array().unwrap();
        let rewards = rec["rewards"].as_array().unwrap();
        assert_eq!(actions.len(), spec.episode_len);
        for k in 0..actions.len() {
            let step = task.step(&floats(&actions[k]), &mut obs).unwrap();
            worst_obs = worst_obs.max(worst(&obs, &floats(&observations[k])));
            worst_rew = worst_rew.max(err(step.reward, rewards[k].as_f64().unwrap()));
            assert_eq!(
                step.done,
                rec["last"][k].as_bool().unwrap(),
                "{} step {k}",
                t.name()
            );
        }

        // The brief's replay through the trait alone: qpos/qvel only (the
        // solver warm start and per-episode parameters stay ours).
        let mut t2 = MujocoTask::from_suite_task(t).unwrap();
        t2.reset(0, &mut obs).unwrap();
        t2.set_episode_params(&floats(&rec["episode_params"]))
            .unwrap();
        t2.set_state(&floats(&rec["qpos0"]), &floats(&rec["qvel0"]), &mut obs)
            .unwrap();
        let mut agree = 0;
        for k in 0..actions.len() {
            t2.step(&floats(&actions[k]), &mut obs).unwrap();
            if worst(&obs, &floats(&observations[k])) > 1e-6 {
                break;
            }
            agree = k + 1;
        }
        println!(
            "{:<20} | {worst_obs:13.3e} | {worst_rew:16.3e} | {agree}",
            t.name()
        );
        if worst_obs > 1e-6 || worst_rew > 1e-6 {
            failures.push(format!(
                "{}: obs {worst_obs:e}, reward {worst_rew:e}",
                t.name()
            ));
        }
    }
    assert!(failures.is_empty(), "differ from dm_control: {failures:?}");
}

#[test]
fn initial_state_distribution_matches_dm_control() {
    const N: usize = 200;
    let doc = reference(&["resets", "--tasks", &all_names(), "--count", &N.to_string()]);
    let mut failures = Vec::new();
    for t in SuiteTask::ALL {
        let rec = &doc["tasks"][t.name()];
        let mut task = MujocoTask::from_suite_task(t).unwrap();
        let (nq, nv) = task.state_size();
        let mut obs = vec![0.0; task.spec().obs_size];
        let (mut q, mut v) = (vec![0.0; nq], vec![0.0; nv]);
        // Rows: one sample each of [qpos, qvel, episode params].
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for s in 0..N {
            task.reset(s as u64, &mut obs).unwrap();
            task.state(&mut q, &mut v);
            ours.push([q.clone(), v.clone(), task.episode_params()].concat());
            theirs.push(
                [
                    floats(&rec["qpos"][s]),
                    floats(&rec["qvel"][s]),
                    floats(&rec["episode_params"][s]),
                ]
                .concat(),
            );
        }
        let dim = ours[0].len();
        for i in 0..dim {
            let stats = |rows: &Vec<Vec<f64>>| {
                let m = rows.iter().map(|r| r[i]).sum::<f64>() / N as f64;
                let var = rows.iter().map(|r| (r[i] - m).powi(2)).sum::<f64>() / (N - 1) as f64;
                (m, var.sqrt())
            };
            let ((m1, s1), (m2, s2)) = (stats(&ours), stats(&theirs));
            // Means within 5 standard errors; spreads within 30 % (the
            // sample std of 200 draws varies by about 5 %).
            let se = ((s1 * s1 + s2 * s2) / N as f64).sqrt();
            let mean_ok = (m1 - m2).abs() <= 5.0 * se + 1e-9;
            let std_ok = (s1 - s2).abs() <= 0.3 * s1.max(s2) + 1e-9;
            if !(mean_ok && std_ok) {
                failures.push(format!(
                    "{} coord {i}: ours mean {m1:.4} std {s1:.4}, suite mean {m2:.4} std {s2:.4}",
                    t.name()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "initial-state distributions differ: {failures:#?}"
    );
}
