//! `dream-mpc-sim serve --record <dir>` (docs/BAGS.md):
//! the sim, driven over DDS by `dream-mpc run` (the plumbing linear law),
//! records two episodes; the bag, read by the Python `mcap` +
//! `mcap-ros2-support` packages, holds every step exactly: replaying the
//! recorded actions on the same task from the same seeds reproduces every
//! recorded observation and reward bit for bit, sequences count steps
//! from 0 without gaps, and episodes start where the sim started them.
//! The new DDS topics carry the same values: `reward`
//! (std_msgs/msg/Float64) once per step, `episode` (std_msgs/msg/Int64)
//! with every observation (its changes are the episode starts).
//!
//! Skips like bags_python.rs when the Python packages are missing.

use dream_mpc::bag::read::ReadOptions;
use dream_mpc::bag::{ACTION_TOPIC, EPISODE_TOPIC, OBSERVATION_TOPIC, REWARD_TOPIC};
use dream_mpc::msgs::{self, Float64, Int64};
use dream_mpc::ros::config::Reliability;
use dream_mpc::ros::dds::qos;
use dream_mpc_sim::serve::make_task;
use dream_mpc_tests::bags::{data, dump, python, scratch};
use dream_mpc_tests::peer::{participant, topic};
use dream_mpc_tests::{spawn_controller, spawn_sim, wait_bounded};
use std::time::{Duration, Instant};

fn domain() -> u16 {
    60 + (std::process::id() % 20) as u16
}

#[test]
fn sim_records_every_step_exactly_and_publishes_reward_and_episode() {
    let Some(py) = python() else { return };
    let d = domain();
    let dir = scratch("sim-record");
    let (steps, seed, episodes) = (60usize, 11u64, 2usize);

    let (_ctx, mut node) = participant(d, "bags_sim_test");
    let rel = Reliability::Reliable;
    let rt = topic(&mut node, "/reward", msgs::float64_type(), &qos(rel, 1000));
    let et = topic(&mut node, "/episode", msgs::int64_type(), &qos(rel, 100));
    let rewards_sub = node.create_subscription::<Float64>(&rt, None).unwrap();
    let episodes_sub = node.create_subscription::<Int64>(&et, None).unwrap();

    let dir_s = dir.to_str().unwrap().to_string();
    let sim = spawn_sim(
        d,
        "plumbing/point-mass",
        seed,
        steps,
        &[
            "--episodes",
            "2",
            "--record",
            &dir_s,
            "--wait-for-controller-s",
            "60",
        ],
    );
    // The sim repeats episode 0's index until the controller acts: start
    // the controller only once this subscriber hears it, so that on a
    // loaded machine discovery of the test's subscriber cannot lag behind
    // the controller and lose episode 0.
    let (mut dds_rewards, mut dds_episodes) = (Vec::new(), Vec::new());
    let heard = Instant::now();
    while dds_episodes.is_empty() && heard.elapsed() < Duration::from_secs(30) {
        while let Ok(Some((m, _))) = episodes_sub.take() {
            dds_episodes.push(m.data);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!dds_episodes.is_empty(), "no episode index heard in 30 s");
    let mut ctl = spawn_controller(d, "config/plumbing.yaml", &[]);
    let t0 = Instant::now();
    let mut sim = Some(sim);
    let mut sim_out = None;
    while t0.elapsed() < Duration::from_secs(60) {
        while let Ok(Some((m, _))) = rewards_sub.take() {
            dds_rewards.push(m.data);
        }
        while let Ok(Some((m, _))) = episodes_sub.take() {
            dds_episodes.push(m.data);
        }
        if sim.as_mut().unwrap().try_wait().unwrap().is_some() {
            sim_out = Some(wait_bounded(sim.take().unwrap(), Duration::from_secs(1)));
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = ctl.kill();
    let _ = ctl.wait();
    let (st, out, err, _) = sim_out.expect("sim finished within 60 s");
    assert!(st.success(), "sim failed: {err}");
    assert!(err.contains("recording into"), "{err}");
    std::thread::sleep(Duration::from_millis(50));
    while let Ok(Some((m, _))) = rewards_sub.take() {
        dds_rewards.push(m.data);
    }

    let dumped = dump(&py, &dir);
    let msgs = dumped["mcap"]["messages"].as_array().unwrap();
    // group by sequence (= step index)
    let mut by_seq: std::collections::BTreeMap<u64, Vec<&serde_json::Value>> = Default::default();
    for m in msgs {
        by_seq
            .entry(m["sequence"].as_u64().unwrap())
            .or_default()
            .push(m);
    }
    // per episode: `steps` steps with an action, then the last observation alone
    let per_episode = steps + 1;
    assert_eq!(
        by_seq.len(),
        episodes * per_episode,
        "{:?}",
        by_seq.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        *by_seq.keys().last().unwrap() as usize,
        episodes * per_episode - 1,
        "no gaps"
    );
    let stats = &dumped["mcap"]["statistics"];
    assert_eq!(
        stats["message_count"].as_u64().unwrap() as usize,
        msgs.len(),
        "summary statistics count every message"
    );

    let mut task = make_task("plumbing/point-mass").unwrap();
    let spec = task.spec().clone();
    let mut obs = vec![0.0; spec.obs_size];
    let mut recorded_rewards = Vec::new();
    let mut last_time = 0u64;
    for ep in 0..episodes {
        task.reset(seed + ep as u64, &mut obs).unwrap();
        for k in 0..per_episode {
            let seq = (ep * per_episode + k) as u64;
            let recs = &by_seq[&seq];
            let find = |t: &str| recs.iter().find(|r| r["topic"] == t).copied();
            let t = recs[0]["log_time"].as_u64().unwrap();
            assert!(
                recs.iter().all(|r| r["log_time"] == t),
                "one log_time per step"
            );
            assert!(t >= last_time, "log times increase");
            last_time = t;
            let o = data(&find(OBSERVATION_TOPIC).expect("observation")["value"]);
            assert_eq!(o, obs, "episode {ep} step {k}: recorded observation");
            match find(EPISODE_TOPIC) {
                Some(e) => {
                    assert_eq!(k, 0, "episode start at step {k}");
                    assert_eq!(e["value"].as_i64().unwrap(), ep as i64);
                }
                None => assert_ne!(k, 0, "episode {ep} has no start record"),
            }
            if k == steps {
                assert!(find(ACTION_TOPIC).is_none() && find(REWARD_TOPIC).is_none());
                continue;
            }
            let a = data(&find(ACTION_TOPIC).expect("action")["value"]);
            assert_eq!(a.len(), spec.action_size);
            let r = find(REWARD_TOPIC).expect("reward")["value"]
                .as_f64()
                .unwrap();
            let step = task.step(&a, &mut obs).unwrap();
            assert_eq!(
                r.to_bits(),
                step.reward.to_bits(),
                "episode {ep} step {k}: reward"
            );
            recorded_rewards.push(r);
        }
    }
    // the controller drove it: not every applied action is the same
    let actions: Vec<f64> = msgs
        .iter()
        .filter(|m| m["topic"] == ACTION_TOPIC)
        .map(|m| data(&m["value"])[0])
        .collect();
    assert!(
        actions.iter().any(|a| (a - actions[0]).abs() > 1e-6),
        "{actions:?}"
    );

    // the same values went out over DDS
    // repeated while the sim waits for the controller: a change of index is a start
    dds_episodes.dedup();
    assert_eq!(dds_episodes, vec![0, 1]);
    assert_eq!(
        dds_rewards.len(),
        recorded_rewards.len(),
        "one reward message per step"
    );
    for (a, b) in dds_rewards.iter().zip(&recorded_rewards) {
        assert_eq!(a.to_bits(), b.to_bits());
    }
    let ret: f64 = recorded_rewards[..steps].iter().sum();
    let printed: f64 = dream_mpc_tests::json_field(out.lines().next().unwrap(), "return");
    assert!(
        (ret - printed).abs() < 1e-9,
        "return {printed} vs recorded rewards {ret}"
    );

    // rosbags reads the folder too
    assert_eq!(
        dumped["rosbags"]["message_count"].as_u64().unwrap() as usize,
        msgs.len()
    );

    // and our reader (docs/BAGS.md's other side) gives back the episodes played
    let (eps, report) =
        dream_mpc::bag::read::read(std::slice::from_ref(&dir), &ReadOptions::default()).unwrap();
    assert_eq!(eps.len(), episodes, "{report:?}");
    let mut read_rewards = Vec::new();
    for (i, e) in eps.iter().enumerate() {
        assert_eq!(e.index, Some(i as i64), "{report:?}");
        assert_eq!(e.len(), steps, "episode {i}: {report:?}");
        read_rewards.extend(e.rewards.clone().expect("the sim records every reward"));
    }
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&read_rewards), bits(&recorded_rewards));
    std::fs::remove_dir_all(&dir).unwrap();
}
