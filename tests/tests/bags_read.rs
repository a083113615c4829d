//! Our bag reader (`dream_mpc::bag::read`) reads bags written by other
//! people's tools (docs/BAGS.md): a rosbag2 folder written
//! by the Python `rosbags` Writer (MCAP storage, the standard ROS 2 Humble
//! types of its typestore, `sequence` left at 0) and a single `.mcap` file
//! written by `mcap-ros2-support` (sequence = step, 2 KiB zstd chunks),
//! both by `tests/bags/others_write.py`. Every observation, action and
//! reward must come back bit for bit, cut into the episodes written.
//!
//! The Python used is `.venv/bin/python3` (or `DREAM_MPC_BAGS_PYTHON`);
//! the packages come from `DREAM_MPC_BAGS=1 bash scripts/setup.sh`. Without
//! them the test is skipped with a message naming that step (it fails
//! instead when `DREAM_MPC_BAGS=1` says they were installed, as for the
//! other bag tests).

use dream_mpc::bag::read::{read, ReadOptions};
use dream_mpc_tests::bags::python;
use dream_mpc_tests::{root, stdout_of};
use std::path::PathBuf;
use std::process::Command;

#[test]
fn bags_written_by_rosbags_and_mcap_ros2_support_read_back_exactly() {
    let Some(py) = python() else { return };
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bags_read_others");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new(&py);
    cmd.arg(root().join("tests/bags/others_write.py")).arg(&dir);
    let out = stdout_of(&mut cmd, "others_write.py");
    let want: serde_json::Value = serde_json::from_slice(&out).expect("json line");
    let rows = |k: &str| -> Vec<Vec<f64>> {
        want[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| match r.as_array() {
                Some(r) => r.iter().map(|v| v.as_f64().unwrap()).collect(),
                None => vec![r.as_f64().unwrap()],
            })
            .collect()
    };
    let (obs, act, rew) = (rows("obs"), rows("act"), rows("rew"));
    let steps = want["steps"].as_u64().unwrap() as usize;
    let n_ep = want["episodes"].as_u64().unwrap() as usize;
    let t0 = want["t0"].as_u64().unwrap();
    let period = want["period_ns"].as_u64().unwrap();

    for source in [dir.join("rosbags_bag"), dir.join("mcap_ros2.mcap")] {
        let opts = ReadOptions {
            obs_size: Some(5),
            action_size: Some(1),
            ..Default::default()
        };
        let (eps, report) = read(std::slice::from_ref(&source), &opts)
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        eprint!("{report}");
        assert_eq!(eps.len(), n_ep, "{}: episodes", source.display());
        let r = &report.sources[0];
        assert_eq!(r.gaps, 0);
        assert_eq!(r.incomplete_steps, 0);
        assert!(r.truncated.is_empty());
        assert!((r.period_s - period as f64 * 1e-9).abs() < 1e-12);
        for (e, ep) in eps.iter().enumerate() {
            let k0 = e * steps;
            assert_eq!(ep.source, source);
            assert_eq!(ep.index, Some(e as i64));
            assert_eq!(ep.start_ns, t0 + k0 as u64 * period);
            assert_eq!(ep.len(), steps - 1);
            for k in 0..steps {
                assert_eq!(ep.obs(k), &obs[k0 + k][..], "obs {k} of episode {e}");
            }
            let rewards = ep.rewards.as_ref().expect("rewards in the bag");
            for k in 0..steps - 1 {
                assert_eq!(ep.action(k), &act[k0 + k][..], "action {k} of episode {e}");
                assert_eq!(rewards[k], rew[k0 + k][0], "reward {k} of episode {e}");
            }
        }
    }
}
