//! Hardware-in-the-loop recording (issue 14 item 4): `dream-mpc-sim serve
//! --record` and `dream-mpc run -p record:=<dir>` (the plumbing linear law
//! at 100 Hz on the 50 Hz point mass) record the same run; after Ctrl-C
//! the node has closed its bag. Both bags read through the Python `mcap` +
//! `mcap-ros2-support` and `rosbags` tools; the node recorded exactly the
//! ticks it planned (none dropped), with the observation and action sizes
//! of the configuration; every action the sim applied (after its first
//! steps) is one the node recorded publishing, bit for bit, and every
//! observation the node planned on is one the sim published, bit for bit
//! (the node ticks twice per sim step, so ticks are matched by value, not
//! by index).
//!
//! Skips like bags_python.rs when the Python packages are missing.

use dream_mpc::bag::{ACTION_TOPIC, OBSERVATION_TOPIC};
use dream_mpc_tests::bags::{data, dump, python, scratch};
use dream_mpc_tests::{json_field, spawn_controller, spawn_sim, wait_bounded};
use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

fn domain() -> u16 {
    80 + (std::process::id() % 20) as u16
}

fn vectors(d: &serde_json::Value, topic: &str) -> Vec<Vec<f64>> {
    d["mcap"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["topic"] == topic)
        .map(|m| data(&m["value"]))
        .collect()
}

fn key(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn node_and_sim_record_the_same_run() {
    let Some(py) = python() else { return };
    let d = domain();
    let (sim_dir, node_dir) = (scratch("hil-sim"), scratch("hil-node"));
    let node_arg = format!("record:={}", node_dir.display());
    let ctl = spawn_controller(d, "config/plumbing.yaml", &["-p", &node_arg]);
    let sim_arg = sim_dir.to_str().unwrap().to_string();
    let sim = spawn_sim(d, "plumbing/point-mass", 3, 100, &["--record", &sim_arg]);
    let (st, _, err, _) = wait_bounded(sim, Duration::from_secs(60));
    assert!(st.success(), "sim failed: {err}");
    // Ctrl-C: the node queues its last records, the writer closes the bag
    Command::new("kill")
        .args(["-INT", &ctl.id().to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    let (st, out, err, _) = wait_bounded(ctl, Duration::from_secs(10));
    assert!(st.success(), "controller exit {st:?}: {err}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(err.contains("recording into"), "{err}");
    assert!(err.contains("recorded "), "{err}");
    let summary = out.lines().last().unwrap();
    let planned = json_field(summary, "planned") as usize;
    let recorded_kinds = planned
        + json_field(summary, "implausible") as usize
        + json_field(summary, "source_failed") as usize
        + json_field(summary, "planner_faults") as usize;
    assert_eq!(json_field(summary, "records_dropped"), 0.0, "{summary}");

    let node = dump(&py, &node_dir);
    let sim = dump(&py, &sim_dir);
    let (n_obs, n_act) = (
        vectors(&node, OBSERVATION_TOPIC),
        vectors(&node, ACTION_TOPIC),
    );
    assert_eq!(
        n_obs.len(),
        recorded_kinds,
        "one record per tick with a fresh observation"
    );
    assert_eq!(n_act.len(), n_obs.len());
    assert!(n_obs.iter().all(|o| o.len() == 2) && n_act.iter().all(|a| a.len() == 1));
    // sequences are tick indices: increasing, one per record
    let seqs: Vec<u64> = node["mcap"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["topic"] == OBSERVATION_TOPIC)
        .map(|m| m["sequence"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(
        node["mcap"]["metadata"]["dream_mpc"]["records_dropped"],
        "0"
    );
    assert_eq!(
        node["rosbags"]["message_count"].as_u64().unwrap() as usize,
        2 * n_obs.len()
    );

    let (s_obs, s_act) = (
        vectors(&sim, OBSERVATION_TOPIC),
        vectors(&sim, ACTION_TOPIC),
    );
    assert_eq!(s_act.len(), 100);
    assert_eq!(s_obs.len(), 101);
    assert!(s_obs.iter().all(|o| o.len() == 2) && s_act.iter().all(|a| a.len() == 1));
    let node_actions: HashSet<Vec<u64>> = n_act.iter().map(|a| key(a)).collect();
    let sim_obs: HashSet<Vec<u64>> = s_obs.iter().map(|o| key(o)).collect();
    // the first applied actions may be the safe action while the controller's
    // answer is in flight (hold); after that every applied action was published
    let unmatched: Vec<_> = s_act[3..]
        .iter()
        .filter(|a| !node_actions.contains(&key(a)))
        .collect();
    assert!(
        unmatched.is_empty(),
        "sim applied actions the node never recorded: {unmatched:?}"
    );
    let foreign = n_obs.iter().filter(|o| !sim_obs.contains(&key(o))).count();
    assert_eq!(
        foreign, 0,
        "node planned on observations the sim did not publish"
    );
    let _ = std::fs::remove_dir_all(&sim_dir);
    let _ = std::fs::remove_dir_all(&node_dir);
}
