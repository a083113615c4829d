//! Bad logs (docs/BAGS.md "Reading and bad logs"): each
//! damage done to a bag written by the test-support MCAP writer gets the
//! documented answer from `dream_mpc::bag::read::read` — an error naming
//! file, topic and log time, or, for a truncated tail or a gap, the usable
//! steps with the loss reported.

use dream_mpc::bag::read::{read, BagError, ReadOptions};
use dream_mpc::bag::{ACTION_TOPIC, OBSERVATION_TOPIC, REWARD_TOPIC};
use dream_mpc::msgs::Float64MultiArray;
use dream_mpc_testkit::bags::{cdr, standard_type, write_mcap, write_mcap_with, Rec, Steps};
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

#[test]
fn a_value_beyond_the_f32_range_is_refused_as_non_finite() {
    let s = steps();
    let mut recs = s.records();
    let bad_t = s.t0 + 5 * PERIOD_NS;
    for r in recs.iter_mut() {
        if r.topic == OBSERVATION_TOPIC && r.t == bad_t {
            let mut o = s.obs(5);
            o[1] = 1e39; // finite in f64, infinite in the model's f32
            r.data = cdr(&Float64MultiArray::vector("observation", o));
        }
    }
    let p = write("f32range", &recs, std_type);
    match err(&p, &ReadOptions::default()).0 {
        BagError::NonFinite {
            log_time,
            index,
            value,
            ..
        } => assert_eq!((log_time, index, value), (bad_t, 1, 1e39)),
        other => panic!("{other:?}"),
    }
}

/// An uncompressed bag (chunk bytes as written) and the byte offset of
/// observation `k`'s element `i` (its f64 in the chunk), found by value.
fn uncompressed_with_offset(name: &str, k: usize, i: usize) -> (PathBuf, Vec<u8>, usize) {
    let s = steps();
    let p = file(name);
    write_mcap_with(&p, &s.records(), 1024, None, std_type);
    let bytes = std::fs::read(&p).unwrap();
    let needle = s.obs(k)[i].to_le_bytes();
    let at = bytes
        .windows(8)
        .position(|w| w == needle)
        .expect("the value is stored as written");
    (p, bytes, at)
}

/// A flipped bit inside a chunk (here the lowest exponent bit of an
/// observation, which doubles or halves it: a plausible value) is caught
/// by the chunk's CRC and the file is refused as corrupt; once it was read
/// as data.
#[test]
fn a_flipped_bit_inside_a_chunk_is_corrupt() {
    let (p, mut bytes, at) = uncompressed_with_offset("bitflip", 7, 2);
    bytes[at + 6] ^= 0x10; // bit 52: the exponent's lowest bit
    std::fs::write(&p, &bytes).unwrap();
    let (e, msg) = err(&p, &ReadOptions::default());
    assert!(matches!(e, BagError::Corrupt { .. }), "{e:?}");
    assert!(msg.contains("CRC"), "{msg}");
}

/// Offsets of the top-level records after the magic (op, length, body).
fn records(bytes: &[u8]) -> Vec<(usize, u8, u64)> {
    let mut out = Vec::new();
    let mut off = 8;
    while off + 9 <= bytes.len() - 8 {
        let len = u64::from_le_bytes(bytes[off + 1..off + 9].try_into().unwrap());
        out.push((off, bytes[off], len));
        off += 9 + len as usize;
    }
    out
}

/// A bad length field inside a file that ends with its footer is damage:
/// refused as corrupt, naming the file. It was once reported as a
/// truncated tail, and training went on with the few steps before it.
#[test]
fn a_bad_length_inside_a_complete_file_is_corrupt_not_truncated() {
    let s = steps();
    let p = write("badlen", &s.records(), std_type);
    let mut bytes = std::fs::read(&p).unwrap();
    let recs = records(&bytes);
    // a chunk (op 0x06) in the first third of the file
    let &(off, _, _) = recs
        .iter()
        .find(|(o, op, _)| *op == 0x06 && *o > bytes.len() / 10)
        .expect("a chunk record");
    bytes[off + 1..off + 9].copy_from_slice(&(1u64 << 40).to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let (e, _) = err(&p, &ReadOptions::default());
    assert!(matches!(e, BagError::Corrupt { .. }), "{e:?}");
}

/// A file over the size cap is refused before it is read.
#[test]
fn a_file_over_the_size_cap_is_refused_unread() {
    let p = write("big", &steps().records(), std_type);
    let opts = ReadOptions {
        max_file_bytes: 1000,
        ..ReadOptions::default()
    };
    let (e, msg) = err(&p, &opts);
    assert!(matches!(e, BagError::NotAFile { .. }), "{e:?}");
    assert!(msg.contains("over the cap of 1000 bytes"), "{msg}");
}

/// Environment variable naming the source a child run of
/// [`a_device_or_fifo_is_refused_unread`] reads.
const CHILD: &str = "DMPC_BAGS_BAD_CHILD";

/// Runs [`read`] on `$DMPC_BAGS_BAD_CHILD` when set (as a child of the
/// test below, under a timeout and a memory limit) and prints the error;
/// does nothing otherwise.
#[test]
fn child_reads_the_named_source() {
    let Some(src) = std::env::var_os(CHILD) else {
        return;
    };
    let e = read(&[PathBuf::from(src)], &ReadOptions::default()).expect_err("must be refused");
    println!("REFUSED: {e}");
}

/// Sources that are no regular file: a bag folder whose MCAP file is a
/// link to /dev/zero or a FIFO, a folder whose `metadata.yaml` lists
/// /dev/zero or is itself a link to it, a FIFO given as the source. Each is refused unread. Once /dev/zero
/// grew memory past 4 GB and a FIFO hung the reader, so each runs in a
/// child process under a 20 s timeout and a 1 GiB address-space limit.
#[test]
fn a_device_or_fifo_is_refused_unread() {
    let base = std::env::temp_dir().join(format!("dmpc-bags-dev-{}", std::process::id()));
    std::fs::remove_dir_all(&base).ok();
    let linked = base.join("linked");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink("/dev/zero", linked.join("bag_0.mcap")).unwrap();
    let listed = base.join("listed");
    std::fs::create_dir_all(&listed).unwrap();
    std::fs::write(
        listed.join("metadata.yaml"),
        "rosbag2_bagfile_information:\n  storage_identifier: mcap\n  relative_file_paths: [/dev/zero]\n",
    )
    .unwrap();
    let meta_link = base.join("metalink");
    std::fs::create_dir_all(&meta_link).unwrap();
    std::os::unix::fs::symlink("/dev/zero", meta_link.join("metadata.yaml")).unwrap();
    let fifo = base.join("fifo.mcap");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let fifo_in = base.join("fifo_in");
    std::fs::create_dir_all(&fifo_in).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(fifo_in.join("bag_0.mcap"))
        .status()
        .unwrap()
        .success());
    let exe = std::env::current_exe().unwrap();
    for (src, kind) in [
        (&fifo_in, "a FIFO"),
        (&linked, "a character device"),
        (&listed, "a character device"),
        (&meta_link, "a character device"),
        (&fifo, "a FIFO"),
    ] {
        let out = std::process::Command::new("timeout")
            .args(["-s", "KILL", "20", "prlimit", "--as=1073741824", "--"])
            .arg(&exe)
            .args(["--exact", "child_reads_the_named_source", "--nocapture"])
            .env(CHILD, src)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("REFUSED") && text.contains(kind),
            "{}: {:?}\n{text}\n{}",
            src.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&base).ok();
}
