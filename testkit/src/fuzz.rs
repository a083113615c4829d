//! The entry points of the fuzz targets for the node's network and log
//! inputs, shared by the fuzzer (`controller/fuzz`) and the replay of
//! its corpus as regression tests (`controller/tests/fuzz_regressions.rs`),
//! with the seeds that start the corpora. Each entry returns on any input
//! the code under test handles correctly and panics on a finding.
//!
//! - [`services`]: the parameter services. Byte 0 picks the service (and
//!   the byte order), the rest is the CDR body of the request, decoded as
//!   the node decodes it (RustDDS's CDR deserializer) and answered by the
//!   node's [`Store`]: the reply must serialize within a bound, the log
//!   stay bounded and the tunables in force inside their table bounds.
//! - [`bag`]: the robot-log reader. Byte 0 picks the mode: 0, the rest is
//!   a whole `.mcap` file; 1 or 2, a valid bag (1: chunks stored, so
//!   values sit in plain sight; 2: zstd chunks) damaged by the rest, read
//!   as (offset u16 LE, xor u8) triples; 3, the stored bag cut at the
//!   offset in bytes 1-2 and damaged by the triples after; 4, a bag folder
//!   of the stored bag with the rest as its `metadata.yaml`. The reader
//!   must give an error of bounded length or episodes of finite,
//!   f32-range values of consistent sizes.

use crate::bags::{cdr, standard_type, write_mcap_with, Steps};
use dream_mpc::bag::read::{decode_cdr, read, ReadOptions};
use dream_mpc::control::Tunables;
use dream_mpc::ros::config::{check_value, Config, Params};
use dream_mpc::ros::params::{max_per_request, served, value, Answer, Store, LOGGED_PER_REQUEST};
use ros2_client::dds::rustdds::no_key::SerializerAdapter;
use ros2_client::dds::rustdds::CDRSerializerAdapter;
use ros2_client::parameters::raw;
use ros2_client::rcl_interfaces::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The store of a node with a planner (budget keys served) and a few keys
/// fixed at start.
fn store() -> Store {
    static CFG: OnceLock<Config> = OnceLock::new();
    let cfg = CFG.get_or_init(|| {
        Config::from_params(
            Params::from_yaml(
                "dream_mpc:\n  ros__parameters:\n    action_source: linear\n    control_rate_hz: 100.0\n    observation: {size: 3}\n    action: {size: 1}\n    linear: {gain: [-1.0, -0.5, 0.1]}\n",
            )
            .expect("params"),
        )
        .expect("config")
    });
    let values = Tunables {
        iterations: 1,
        step_size: 0.1,
        beta: 0.01,
        plan_fraction: 0.7,
    };
    Store::new(values, true, cfg)
}

/// The reply serializes to under 512 KiB; the log is bounded in lines and
/// line length.
fn bounded<R: Serialize>(a: &Answer<R>) {
    let bytes = CDRSerializerAdapter::<R>::to_bytes(&a.reply).expect("the reply serializes");
    assert!(bytes.len() < 512 << 10, "reply of {} bytes", bytes.len());
    assert!(
        a.log.len() <= max_per_request() + LOGGED_PER_REQUEST + 1,
        "{} log lines",
        a.log.len()
    );
    for line in &a.log {
        assert!(line.len() < 2048, "log line of {} bytes", line.len());
    }
}

/// Every served key's value in force passes its table check.
fn in_bounds(s: &Store) {
    for p in served(true) {
        let v = s.get(p.key);
        let y = match v.ptype {
            raw::ParameterType::INTEGER => serde_yaml::Value::from(v.int_value),
            raw::ParameterType::DOUBLE => serde_yaml::Value::from(v.double_value),
            t => panic!("{}: type {t}", p.key),
        };
        if let Err(e) = check_value(p.key, &y) {
            panic!("{} = {y:?} in force: {e}", p.key);
        }
    }
}

fn reasons_bounded(rs: &[raw::SetParametersResult]) {
    for r in rs {
        assert!(r.reason.len() < 8192, "reason of {} bytes", r.reason.len());
    }
}

/// The parameter services' entry (module docs).
pub fn services(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    // CDR_LE or CDR_BE encapsulation: a peer may send either
    let mut payload = vec![0x00, if kind & 0x80 == 0 { 0x01 } else { 0x00 }, 0, 0];
    payload.extend_from_slice(body);
    let mut s = store();
    match kind % 6 {
        0 => {
            if let Ok(r) = decode_cdr::<ListParametersRequest>(&payload) {
                bounded(&s.answer_list(&r));
            }
        }
        1 => {
            if let Ok(r) = decode_cdr::<GetParametersRequest>(&payload) {
                bounded(&s.answer_get(&r));
            }
        }
        2 => {
            if let Ok(r) = decode_cdr::<GetParameterTypesRequest>(&payload) {
                bounded(&s.answer_types(&r));
            }
        }
        3 => {
            if let Ok(r) = decode_cdr::<DescribeParametersRequest>(&payload) {
                bounded(&s.answer_describe(&r));
            }
        }
        4 => {
            if let Ok(r) = decode_cdr::<SetParametersRequest>(&payload) {
                let a = s.answer_set(r);
                reasons_bounded(&a.reply.results);
                bounded(&a);
                in_bounds(&s);
            }
        }
        _ => {
            if let Ok(r) = decode_cdr::<SetParametersRequest>(&payload) {
                let a = s.answer_set_atomic(r);
                reasons_bounded(std::slice::from_ref(&a.reply.result));
                bounded(&a);
                in_bounds(&s);
            }
        }
    }
}

/// One request of each service, as `ros2 param` sends them (the CDR body
/// after the selector byte of [`services`]).
pub fn services_seeds() -> Vec<(String, Vec<u8>)> {
    let body = |kind: u8, bytes: Vec<u8>| {
        let mut v = vec![kind];
        v.extend_from_slice(&bytes[4..]);
        v
    };
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let beta = value(raw::ParameterType::DOUBLE, 0, 0.5);
    let iters = value(raw::ParameterType::INTEGER, 3, 0.0);
    let set = SetParametersRequest {
        parameter: vec![
            raw::Parameter {
                name: "budget.beta".into(),
                value: beta,
            },
            raw::Parameter {
                name: "budget.iterations".into(),
                value: iters,
            },
        ],
    };
    vec![
        (
            "seed-list".into(),
            body(
                0,
                cdr(&ListParametersRequest {
                    prefixes: names(&["budget"]),
                    depth: 0,
                }),
            ),
        ),
        (
            "seed-get".into(),
            body(
                1,
                cdr(&GetParametersRequest {
                    names: names(&["budget.beta", "control_rate_hz"]),
                }),
            ),
        ),
        (
            "seed-types".into(),
            body(
                2,
                cdr(&GetParameterTypesRequest {
                    names: names(&["plan_fraction", "nope"]),
                }),
            ),
        ),
        (
            "seed-describe".into(),
            body(
                3,
                cdr(&DescribeParametersRequest {
                    names: names(&["budget.step_size", "linear.gain"]),
                }),
            ),
        ),
        ("seed-set".into(), body(4, cdr(&set))),
        ("seed-set-atomic".into(), body(5, cdr(&set))),
    ]
}

/// Scratch space of this process (tmpfs where there is one).
static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

fn scratch() -> &'static PathBuf {
    SCRATCH.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("dream-mpc-fuzz-bag-{}", std::process::id()));
        std::fs::create_dir_all(d.join("folder")).expect("scratch dir");
        d
    })
}

/// Remove this process's scratch folder (the replay's last step; the
/// fuzzer reuses it until it exits).
pub fn remove_scratch() {
    if let Some(d) = SCRATCH.get() {
        std::fs::remove_dir_all(d).ok();
    }
}

/// Two episodes of 6 steps (3 observations, 1 action, rewards) as MCAP
/// bytes: chunks stored when `plain`, zstd otherwise.
pub fn valid_bag(plain: bool) -> &'static [u8] {
    static BAGS: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    let (a, b) = BAGS.get_or_init(|| {
        let steps = Steps {
            episodes: 2,
            len: 5,
            obs_size: 3,
            action_size: 1,
            t0: 1_000_000_000,
            period_ns: 10_000_000,
            rewards: true,
        };
        let recs = steps.records();
        let write = |c| {
            let p = scratch().join("valid.mcap");
            write_mcap_with(&p, &recs, 512, c, |t| standard_type(t).to_string());
            std::fs::read(&p).expect("valid bag")
        };
        (write(None), write(Some(mcap::Compression::Zstd)))
    });
    if plain {
        a
    } else {
        b
    }
}

fn damage(bytes: &mut [u8], patches: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    for p in patches.chunks_exact(3) {
        let at = u16::from_le_bytes([p[0], p[1]]) as usize % bytes.len();
        bytes[at] ^= p[2];
    }
}

/// The bag reader's entry (module docs).
pub fn bag(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = scratch();
    let file = dir.join("input.mcap");
    let folder = dir.join("folder");
    let source = match mode % 5 {
        0 => {
            std::fs::write(&file, rest).expect("write");
            file
        }
        1 | 2 => {
            let mut b = valid_bag(mode % 5 == 1).to_vec();
            damage(&mut b, rest);
            std::fs::write(&file, &b).expect("write");
            file
        }
        3 => {
            if rest.len() < 2 {
                return;
            }
            let mut b = valid_bag(true).to_vec();
            b.truncate(u16::from_le_bytes([rest[0], rest[1]]) as usize % (b.len() + 1));
            damage(&mut b, &rest[2..]);
            std::fs::write(&file, &b).expect("write");
            file
        }
        _ => {
            std::fs::write(folder.join("bag_0.mcap"), valid_bag(true)).expect("write");
            std::fs::write(folder.join("metadata.yaml"), rest).expect("write");
            folder
        }
    };
    let opts = ReadOptions {
        max_file_bytes: 1 << 20,
        max_record_bytes: 1 << 20,
        ..Default::default()
    };
    match read(&[source], &opts) {
        Ok((episodes, report)) => {
            assert!(!episodes.is_empty());
            let total: u64 = episodes.iter().map(|e| e.len() as u64).sum();
            let reported: u64 = report.sources.iter().map(|s| s.transitions).sum();
            assert_eq!(reported, total);
            for e in &episodes {
                assert!(e.obs_size > 0 && e.action_size > 0);
                assert_eq!(e.observations.len(), (e.len() + 1) * e.obs_size);
                assert_eq!(e.actions.len(), e.len() * e.action_size);
                if let Some(r) = &e.rewards {
                    assert_eq!(r.len(), e.len());
                    assert!(r.iter().all(|v| v.is_finite()), "rewards {r:?}");
                }
                for v in e.observations.iter().chain(&e.actions) {
                    assert!(v.is_finite() && v.abs() <= f32::MAX as f64, "value {v}");
                }
            }
        }
        Err(e) => {
            let text = e.to_string();
            assert!(text.len() < 4096, "error of {} bytes", text.len());
        }
    }
}

/// Seeds of [`bag`]: the whole valid bag (mode 0), one damage of each
/// kind, and a rosbag2 `metadata.yaml`.
pub fn bag_seeds() -> Vec<(String, Vec<u8>)> {
    let whole = |mode: u8, b: &[u8]| {
        let mut v = vec![mode];
        v.extend_from_slice(b);
        v
    };
    let metadata = "rosbag2_bagfile_information:\n  version: 5\n  storage_identifier: mcap\n  \
                    relative_file_paths:\n    - bag_0.mcap\n  duration:\n    nanoseconds: 110000000\n  \
                    message_count: 36\n";
    vec![
        ("seed-mcap".into(), whole(0, valid_bag(true))),
        ("seed-mcap-zstd".into(), whole(0, valid_bag(false))),
        ("seed-damaged".into(), vec![1, 0x40, 0x01, 0x80]),
        ("seed-damaged-zstd".into(), vec![2, 0x40, 0x01, 0x80]),
        ("seed-cut".into(), vec![3, 0x00, 0x02, 0x10, 0x00, 0x01]),
        ("seed-metadata".into(), whole(4, metadata.as_bytes())),
    ]
}
