//! Bad logs (issue 14 item 4, docs/BAGS.md "Reading and bad logs"): each
//! damage done to a bag written by the test-support MCAP writer gets the
//! documented answer from `dream_mpc::bag::read::read` — an error naming
//! file, topic and log time, or, for a truncated tail or a gap, the usable
//! steps with the loss reported.

use dream_mpc::bag::read::{read, BagError, ReadOptions};
use dream_mpc::bag::{ACTION_TOPIC, OBSERVATION_TOPIC, REWARD_TOPIC};
use dream_mpc::ros::msgs::Float64MultiArray;
use dream_mpc_testkit::bags::{cdr, standard_type, write_mcap, Rec, Steps};
use std::path::PathBuf;

const PERIOD_NS: u64 = 20_000_000;

fn steps() -> Steps {
    Steps {
        episodes: 3,
        len: 40,
        obs_size: 5,
        action_size: 1,
        t0: 1_700_000_000_000_000_000,
        period_ns: PERIOD_NS,
        rewards: true,
    }
}

fn file(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dmpc-bags-bad-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(format!("{name}.mcap"))
}

fn write(name: &str, recs: &[Rec], type_of: impl Fn(&str) -> String) -> PathBuf {
    let p = file(name);
    write_mcap(&p, recs, 1024, type_of);
    p
}

fn std_type(t: &str) -> String {
    standard_type(t).to_string()
}

fn err(p: &PathBuf, opts: &ReadOptions) -> (BagError, String) {
    let e = read(std::slice::from_ref(p), opts).expect_err("a bad log must be refused");
    let msg = e.to_string();
    let name = p.file_name().unwrap().to_str().unwrap();
    assert!(msg.contains(name), "the error names the file: {msg}");
    (e, msg)
}

#[test]
fn the_undamaged_bag_reads_whole() {
    let s = steps();
    let p = write("whole", &s.records(), std_type);
    let (eps, report) = read(std::slice::from_ref(&p), &ReadOptions::default()).unwrap();
    assert_eq!(eps.len(), 3, "{report:?}");
    for (i, e) in eps.iter().enumerate() {
        assert_eq!(e.len(), s.len, "{report:?}");
        let k0 = i * (s.len + 1);
        for k in 0..=s.len {
            assert_eq!(e.obs(k), &s.obs(k0 + k)[..]);
        }
    }
    assert_eq!(report.sources[0].gaps, 0);
    assert!(report.sources[0].truncated.is_empty());
}

#[test]
fn a_missing_topic_is_named() {
    let recs: Vec<Rec> = steps()
        .records()
        .into_iter()
        .filter(|r| r.topic != ACTION_TOPIC)
        .collect();
    let p = write("missing", &recs, std_type);
    let (e, msg) = err(&p, &ReadOptions::default());
    assert!(matches!(e, BagError::MissingTopic { .. }), "{e:?}");
    assert!(msg.contains(ACTION_TOPIC), "{msg}");
}

#[test]
fn a_wrong_message_type_is_named_with_topic_and_type() {
    let p = write("wrong-type", &steps().records(), |t| {
        if t == REWARD_TOPIC {
            "std_msgs/msg/String".into()
        } else {
            std_type(t)
        }
    });
    let (e, msg) = err(&p, &ReadOptions::default());
    assert!(matches!(e, BagError::WrongType { .. }), "{e:?}");
    assert!(
        msg.contains(REWARD_TOPIC) && msg.contains("std_msgs/msg/String"),
        "{msg}"
    );
}

#[test]
fn an_observation_size_other_than_the_configs_is_refused() {
    let p = write("size", &steps().records(), std_type);
    let opts = ReadOptions {
        obs_size: Some(6),
        ..Default::default()
    };
    let (e, msg) = err(&p, &opts);
    match e {
        BagError::Size { expected, got, .. } => assert_eq!((expected, got), (6, 5)),
        other => panic!("{other:?}"),
    }
    assert!(
        msg.contains(OBSERVATION_TOPIC) && msg.contains("log_time"),
        "{msg}"
    );
}

#[test]
fn a_non_finite_value_is_refused_with_its_time() {
    let s = steps();
    let mut recs = s.records();
    let bad_t = s.t0 + 17 * PERIOD_NS;
    for r in recs.iter_mut() {
        if r.topic == OBSERVATION_TOPIC && r.t == bad_t {
            let mut o = s.obs(17);
            o[2] = f64::NAN;
            r.data = cdr(&Float64MultiArray::vector("observation", o));
        }
    }
    let p = write("nan", &recs, std_type);
    let (e, msg) = err(&p, &ReadOptions::default());
    match e {
        BagError::NonFinite {
            log_time, index, ..
        } => assert_eq!((log_time, index), (bad_t, 2)),
        other => panic!("{other:?}"),
    }
    assert!(msg.contains(&bad_t.to_string()), "{msg}");
}

#[test]
fn a_gap_in_time_ends_the_stretch_and_is_counted() {
    let s = steps();
    // step 10 of episode 0 is lost entirely (all its records)
    let lost_t = s.t0 + 10 * PERIOD_NS;
    let recs: Vec<Rec> = s.records().into_iter().filter(|r| r.t != lost_t).collect();
    let p = write("gap", &recs, std_type);
    let (eps, report) = read(std::slice::from_ref(&p), &ReadOptions::default()).unwrap();
    assert_eq!(report.sources[0].gaps, 1, "{report:?}");
    // episode 0 splits into steps 0..9 (9 transitions) and 11..40 (29)
    let lens: Vec<usize> = eps.iter().map(|e| e.len()).collect();
    assert_eq!(lens, vec![9, 29, s.len, s.len], "{report:?}");
}

#[test]
fn a_truncated_file_gives_its_complete_chunks_and_reports_the_loss() {
    let s = steps();
    let p = write("truncated", &s.records(), std_type);
    let full = std::fs::read(&p).unwrap();
    let cut = full.len() * 6 / 10;
    std::fs::write(&p, &full[..cut]).unwrap();
    let (eps, report) = read(std::slice::from_ref(&p), &ReadOptions::default()).unwrap();
    let src = &report.sources[0];
    assert_eq!(src.truncated.len(), 1, "{report:?}");
    assert!(src.truncated[0].lost_bytes > 0, "{report:?}");
    let got: usize = eps.iter().map(|e| e.len()).sum();
    let all = s.episodes * s.len;
    assert!(
        got > 0 && got < all,
        "{got} of {all} transitions: {report:?}"
    );
    // what was recovered is exactly what was written
    let e = &eps[0];
    for k in 0..=e.len() {
        assert_eq!(e.obs(k), &s.obs(k)[..]);
    }
}
