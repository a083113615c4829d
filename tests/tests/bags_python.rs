//! Our bags as others read them (docs/BAGS.md): a bag
//! written by `dream_mpc::bag::write::BagWriter` with known values is read
//! by the Python `mcap` + `mcap-ros2-support` packages (every message
//! decoded from the ros2msg schema in the file) and, as a rosbag2 folder
//! with its metadata.yaml, by `rosbags`' AnyReader; every value, sequence
//! and time must come back exactly.
//!
//! Skips, saying why, only when the Python packages are missing and
//! `DREAM_MPC_BAGS=1` is not set (scripts/test.sh installs them and sets
//! it, so CI fails instead of skipping).

use dream_mpc::bag::write::{BagOptions, BagWriter, Step};
use dream_mpc::bag::{ACTION_TOPIC, EPISODE_TOPIC, OBSERVATION_TOPIC, REWARD_TOPIC};
use dream_mpc_tests::bags::{data, dump, python, scratch};
use serde_json::Value;

const OBS: usize = 5;
const ACT: usize = 2;
const T0: u64 = 1_764_201_600_123_456_789;

/// What step `k` of the reference bag holds (None: a dropped record).
struct Expected {
    index: u64,
    time_ns: u64,
    obs: [f64; OBS],
    act: [f64; ACT],
    reward: Option<f64>,
    episode: Option<i64>,
}

fn steps() -> Vec<Expected> {
    let awkward = [
        -0.0,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        std::f64::consts::PI,
        -1.0 / 3.0,
        1e-300,
        -123456.789,
    ];
    let mut out = Vec::new();
    let mut episode = 0;
    for k in 0..40u64 {
        // steps 13 and 14 were dropped by the producer: their indices are missing
        if k == 13 || k == 14 {
            continue;
        }
        let mut obs = [0.0; OBS];
        for (i, o) in obs.iter_mut().enumerate() {
            *o = awkward[(k as usize + i) % awkward.len()] * if k % 2 == 0 { 1.0 } else { -1.0 };
        }
        let act = [k as f64 * 0.1 - 1.0, awkward[k as usize % awkward.len()]];
        let start = k == 0 || k == 25;
        let ep = if start {
            let e = episode;
            episode += 1;
            Some(e)
        } else {
            None
        };
        out.push(Expected {
            index: k,
            // irregular spacing, so a time cannot be guessed from the index
            time_ns: T0 + k * 20_000_000 + (k * k) % 7 * 1_000,
            obs,
            act,
            // no reward on a few steps (a node without a reward topic yet)
            reward: (k % 9 != 4).then_some(k as f64 / 7.0 - 2.0),
            episode: ep,
        });
    }
    out
}

fn bits(x: f64) -> u64 {
    x.to_bits()
}

fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| bits(*x) == bits(*y))
}

/// The decoded record `m` of step `step` is a Float64MultiArray holding
/// `want` bit for bit, in one dimension labelled `label` of `size`.
fn assert_array(m: &Value, label: &str, size: usize, want: &[f64], step: u64) {
    assert_eq!(m["schema"], "std_msgs/msg/Float64MultiArray");
    let v = &m["value"];
    assert!(same(&data(v), want), "step {step}: {v}");
    assert_eq!(v["labels"], serde_json::json!([label]));
    assert_eq!(v["sizes"], serde_json::json!([size]));
    assert_eq!(v["strides"], serde_json::json!([size]));
    assert_eq!(v["data_offset"], 0);
}

#[test]
fn python_mcap_and_rosbags_read_every_value_back() {
    let Some(py) = python() else { return };
    let dir = scratch("python-interop");
    let expected = steps();
    let mut opts = BagOptions::new(OBS, ACT);
    // several chunks, so the readers walk chunk indexes
    opts.chunk_size = 2048;
    opts.source = "bags_python test".into();
    let mut w = BagWriter::create(&dir, opts).unwrap();
    for e in &expected {
        w.write_step(&Step {
            index: e.index,
            time_ns: e.time_ns,
            observation: &e.obs,
            action: Some(&e.act),
            reward: e.reward,
            episode_start: e.episode,
        })
        .unwrap();
    }
    w.set_records_dropped(2);
    let summary = w.close().unwrap();
    let n = expected.len() as u64;
    let rewards = expected.iter().filter(|e| e.reward.is_some()).count() as u64;
    assert_eq!(
        summary.messages,
        vec![
            (OBSERVATION_TOPIC, n),
            (ACTION_TOPIC, n),
            (REWARD_TOPIC, rewards),
            (EPISODE_TOPIC, 2)
        ]
    );
    let total = 2 * n + rewards + 2;

    let d = dump(&py, &dir);
    let m = &d["mcap"];
    let name = dir.file_name().unwrap().to_str().unwrap();
    assert_eq!(m["files"], serde_json::json!([format!("{name}_0.mcap")]));
    assert_eq!(m["profile"], "ros2");
    assert!(m["library"].as_str().unwrap().starts_with("dream-mpc "));
    assert_eq!(m["has_summary"], true);
    assert_eq!(m["statistics"]["message_count"], total);
    assert_eq!(m["statistics"]["channel_count"], 4);
    assert_eq!(m["statistics"]["schema_count"], 3);
    assert!(
        m["statistics"]["chunk_count"].as_u64().unwrap() > 1,
        "{}",
        m["statistics"]
    );
    assert_eq!(m["statistics"]["message_start_time"], expected[0].time_ns);
    assert_eq!(
        m["statistics"]["message_end_time"],
        expected.last().unwrap().time_ns
    );
    assert_eq!(m["compression"], serde_json::json!(["zstd"]));
    for (s, _) in [
        ("std_msgs/msg/Float64MultiArray", 0),
        ("std_msgs/msg/Float64", 0),
        ("std_msgs/msg/Int64", 0),
    ] {
        assert_eq!(m["schemas"][s], "ros2msg", "{}", m["schemas"]);
    }
    for t in [OBSERVATION_TOPIC, ACTION_TOPIC, REWARD_TOPIC, EPISODE_TOPIC] {
        assert_eq!(m["channels"][t]["encoding"], "cdr");
        assert_eq!(m["channels"][t]["metadata"]["offered_qos_profiles"], "");
    }
    let md = &m["metadata"]["dream_mpc"];
    assert_eq!(md["records_dropped"], "2");
    assert_eq!(md["steps"], n.to_string());
    assert_eq!(md["obs_size"], OBS.to_string());
    assert_eq!(md["action_size"], ACT.to_string());
    assert_eq!(md["source"], "bags_python test");

    // every message decoded from its schema by mcap-ros2-support
    let msgs = m["messages"].as_array().unwrap();
    assert_eq!(msgs.len() as u64, total);
    let mut by_step: std::collections::BTreeMap<u64, Vec<&Value>> = Default::default();
    for msg in msgs {
        assert_eq!(msg["cdr_header"], serde_json::json!([0, 1, 0, 0]));
        assert_eq!(msg["log_time"], msg["publish_time"]);
        by_step
            .entry(msg["sequence"].as_u64().unwrap())
            .or_default()
            .push(msg);
    }
    assert_eq!(
        by_step.len(),
        expected.len(),
        "one sequence per step, gaps kept"
    );
    for e in &expected {
        let recs = &by_step[&e.index];
        let find = |t: &str| recs.iter().find(|r| r["topic"] == t).copied();
        for r in recs {
            assert_eq!(r["log_time"], e.time_ns, "step {}", e.index);
        }
        let o = find(OBSERVATION_TOPIC).expect("observation");
        assert_array(o, "observation", OBS, &e.obs, e.index);
        let a = find(ACTION_TOPIC).expect("action");
        assert_array(a, "action", ACT, &e.act, e.index);
        match (e.reward, find(REWARD_TOPIC)) {
            (Some(r), Some(v)) => {
                assert_eq!(v["schema"], "std_msgs/msg/Float64");
                assert_eq!(
                    bits(v["value"].as_f64().unwrap()),
                    bits(r),
                    "step {}",
                    e.index
                );
            }
            (None, None) => {}
            (r, v) => panic!("step {}: reward {r:?} written, read {v:?}", e.index),
        }
        match (e.episode, find(EPISODE_TOPIC)) {
            (Some(ep), Some(v)) => {
                assert_eq!(v["schema"], "std_msgs/msg/Int64");
                assert_eq!(v["value"].as_i64().unwrap(), ep);
            }
            (None, None) => {}
            (ep, v) => panic!("step {}: episode {ep:?} written, read {v:?}", e.index),
        }
    }

    // the folder, metadata.yaml included, through rosbags
    let r = &d["rosbags"];
    assert_eq!(r["message_count"], total);
    assert_eq!(r["start_time"], expected[0].time_ns);
    // rosbags' end_time is one past the last message
    assert_eq!(r["end_time"], expected.last().unwrap().time_ns + 1);
    assert_eq!(
        r["topics"][OBSERVATION_TOPIC],
        "std_msgs/msg/Float64MultiArray"
    );
    assert_eq!(r["topics"][ACTION_TOPIC], "std_msgs/msg/Float64MultiArray");
    assert_eq!(r["topics"][REWARD_TOPIC], "std_msgs/msg/Float64");
    assert_eq!(r["topics"][EPISODE_TOPIC], "std_msgs/msg/Int64");
    let rmsgs = r["messages"].as_array().unwrap();
    assert_eq!(rmsgs.len() as u64, total);
    let at = |t: u64, topic: &str| {
        rmsgs
            .iter()
            .find(|x| x["log_time"] == t && x["topic"] == topic)
            .unwrap_or_else(|| panic!("rosbags: no {topic} at {t}"))
    };
    for e in &expected {
        assert!(same(
            &data(&at(e.time_ns, OBSERVATION_TOPIC)["value"]),
            &e.obs
        ));
        assert!(same(&data(&at(e.time_ns, ACTION_TOPIC)["value"]), &e.act));
        if let Some(rw) = e.reward {
            assert_eq!(
                bits(at(e.time_ns, REWARD_TOPIC)["value"].as_f64().unwrap()),
                bits(rw)
            );
        }
        if let Some(ep) = e.episode {
            assert_eq!(at(e.time_ns, EPISODE_TOPIC)["value"].as_i64().unwrap(), ep);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
