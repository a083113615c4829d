//! Hardware-in-the-loop recording: `dream-mpc-sim serve
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

use dream_mpc::bag::{ACTION_TOPIC, EPISODE_TOPIC, OBSERVATION_TOPIC, REWARD_TOPIC};
use dream_mpc_tests::bags::{data, dump, python, scratch};
use dream_mpc_tests::{json_field, spawn_controller, spawn_sim, wait_bounded};
use std::collections::HashSet;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn domain() -> u16 {
    80 + (std::process::id() % 20) as u16
}

/// The messages on `topic` of a `bag_dump.py` dump (MCAP side), in order.
fn messages<'a>(
    d: &'a serde_json::Value,
    topic: &'a str,
) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
    d["mcap"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(move |m| m["topic"] == topic)
}

fn vectors(d: &serde_json::Value, topic: &str) -> Vec<Vec<f64>> {
    messages(d, topic).map(|m| data(&m["value"])).collect()
}

/// The `sequence` of each message on `topic`.
fn sequences(d: &serde_json::Value, topic: &str) -> Vec<u64> {
    messages(d, topic)
        .map(|m| m["sequence"].as_u64().unwrap())
        .collect()
}

fn key(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Wait for the sim's episodes, then Ctrl-C the node (it queues its last
/// records and the writer closes the bag within 5 s); the node's stdout
/// and stderr.
fn sim_then_stop(sim: Child, ctl: Child) -> (String, String) {
    let (st, _, err, _) = wait_bounded(sim, Duration::from_secs(60));
    assert!(st.success(), "sim failed: {err}");
    Command::new("kill")
        .args(["-INT", &ctl.id().to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    let (st, out, err, _) = wait_bounded(ctl, Duration::from_secs(10));
    assert!(st.success(), "controller exit {st:?}: {err}");
    assert!(t.elapsed() < Duration::from_secs(5), "{err}");
    (out, err)
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
    let (out, err) = sim_then_stop(sim, ctl);
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
    let seqs = sequences(&node, OBSERVATION_TOPIC);
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

/// `record_reward_topic` and `record_episode_topic`: the node records the
/// sim's per-step rewards and episode boundaries with its ticks. Each
/// episode index is recorded once, in order, at a tick of its own; the
/// rewards the node recorded add up to what the sim earned (the node
/// ticks twice per sim step, so a tick's reward is the sum received
/// before the next one; the rewards of the few sim steps around episode
/// starts, when a tick may be missing, can be lost: within 10%); a reward
/// is never recorded for a step the node did not record.
#[test]
fn node_records_the_sims_rewards_and_episodes() {
    let Some(py) = python() else { return };
    let d = domain() + 20;
    let node_dir = scratch("hil-node-rewards");
    let sim_dir = scratch("hil-sim-rewards");
    let node_arg = format!("record:={}", node_dir.display());
    let ctl = spawn_controller(
        d,
        "config/plumbing.yaml",
        &[
            "-p",
            &node_arg,
            "-p",
            "record_reward_topic:=reward",
            "-p",
            "record_episode_topic:=episode",
        ],
    );
    let sim_arg = sim_dir.to_str().unwrap().to_string();
    let sim = spawn_sim(
        d,
        "plumbing/point-mass",
        5,
        60,
        &["--episodes", "3", "--record", &sim_arg],
    );
    sim_then_stop(sim, ctl);

    let node = dump(&py, &node_dir);
    let sim = dump(&py, &sim_dir);
    let msgs = |d: &serde_json::Value, topic: &str| -> Vec<(u64, f64)> {
        messages(d, topic)
            .map(|m| {
                (
                    m["sequence"].as_u64().unwrap(),
                    m["value"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let episodes: Vec<f64> = msgs(&node, EPISODE_TOPIC).iter().map(|m| m.1).collect();
    assert_eq!(episodes, vec![0.0, 1.0, 2.0], "episode starts recorded");
    let obs_seqs: HashSet<u64> = sequences(&node, OBSERVATION_TOPIC).into_iter().collect();
    for (seq, _) in msgs(&node, EPISODE_TOPIC) {
        assert!(
            obs_seqs.contains(&seq),
            "episode start at unrecorded tick {seq}"
        );
    }
    let rewards = msgs(&node, REWARD_TOPIC);
    assert!(rewards.len() > 60, "{} rewards", rewards.len());
    for (seq, _) in &rewards {
        assert!(obs_seqs.contains(seq), "reward for unrecorded tick {seq}");
    }
    let node_total: f64 = rewards.iter().map(|r| r.1).sum();
    let sim_total: f64 = msgs(&sim, REWARD_TOPIC).iter().map(|r| r.1).sum();
    eprintln!(
        "node: {} rewards summing to {node_total:.4}; sim earned {sim_total:.4}",
        rewards.len()
    );
    assert!(sim_total.abs() > 1e-6, "sim earned {sim_total}");
    assert!(
        (node_total - sim_total).abs() <= 0.1 * sim_total.abs(),
        "node recorded {node_total}, the sim earned {sim_total}"
    );
    let _ = std::fs::remove_dir_all(&sim_dir);
    let _ = std::fs::remove_dir_all(&node_dir);
}
