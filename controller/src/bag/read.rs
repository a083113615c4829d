//! Reading bags into episodes (docs/BAGS.md, "Reading and bad logs").
//!
//! [`read`] takes rosbag2 bag folders (`metadata.yaml` + MCAP files) and/or
//! single `.mcap` files, ours or written by other tools (rosbag2, the
//! Python `rosbags` and `mcap-ros2-support` packages), and returns
//! [`Episode`]s of (observations, actions, optional rewards) with their
//! source named, plus a [`ReadReport`] of what was skipped (gaps, steps
//! without an observation or action, truncated tails).
//!
//! Messages are decoded with the node's own CDR deserializer (RustDDS's
//! `CDRDeserializerAdapter`, which `ros2-client` uses for subscriptions)
//! into the [`crate::msgs`] types: one codec for DDS and bags.
//!
//! Pairing: the records of one step share `sequence` and `log_time`, so
//! steps are keyed by `(log_time, sequence)`. Bags written by tools that
//! leave `sequence` at 0 (e.g. `rosbags`) are paired by `log_time` alone
//! and their gaps are found from time only. Not on the control path: it
//! allocates freely (one `Vec` per step while reading).

pub use super::schema::{FLOAT64, FLOAT64_MULTI_ARRAY, INT64};
use super::{ACTION_TOPIC, EPISODE_TOPIC, OBSERVATION_TOPIC, REWARD_TOPIC};
use crate::msgs::{Float64, Float64MultiArray, Int64};
use ros2_client::dds::rustdds::no_key::DeserializerAdapter;
use ros2_client::dds::rustdds::{CDRDeserializerAdapter, RepresentationIdentifier};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// What the caller expects of the logs.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    /// Observation size the model expects; `None` takes the first
    /// message's size (later messages must agree either way).
    pub obs_size: Option<usize>,
    /// Action size the model expects; `None` as for `obs_size`.
    pub action_size: Option<usize>,
    /// Control period in seconds; `None` estimates it per source as the
    /// median time between consecutive observations.
    pub period_s: Option<f64>,
    /// A step more than `max_gap` periods after the previous one ends the
    /// stretch (counted in the report, never joined across). 3.
    pub max_gap: f64,
    /// Largest MCAP file read, in bytes, checked before reading (the file
    /// is read whole). [`MAX_FILE_BYTES`].
    pub max_file_bytes: u64,
    /// Longest record accepted, in bytes, before it is buffered: a record
    /// inside a compressed chunk is not bounded by the file's size, so a
    /// corrupt length field would otherwise be allocated as claimed.
    /// [`MAX_RECORD_BYTES`].
    pub max_record_bytes: u64,
}

/// Default cap on one MCAP file: 4 GiB (a day of a 100 Hz, 64-element
/// observation log is about 1 GiB).
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// Default cap on one record: 64 MiB (an observation of the largest size
/// the node takes, 65,536 float64, is 512 KiB; other topics of a robot's
/// bag, camera images, point clouds, are read past and fit).
pub const MAX_RECORD_BYTES: u64 = 64 << 20;

/// Cap on a bag folder's `metadata.yaml` (rosbag2 writes a few KiB).
pub const MAX_METADATA_BYTES: u64 = 1 << 20;

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            obs_size: None,
            action_size: None,
            period_s: None,
            max_gap: 3.0,
            max_file_bytes: MAX_FILE_BYTES,
            max_record_bytes: MAX_RECORD_BYTES,
        }
    }
}

/// One stretch of consecutive steps: `len + 1` observations, `len`
/// actions (row-major) and, when the bag holds them for every step, `len`
/// rewards (`rewards[k]` earned by `actions[k]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// The bag folder or `.mcap` file it came from.
    pub source: PathBuf,
    /// Value of the episode-boundary message that started it, if any.
    pub index: Option<i64>,
    /// `log_time` (ns since the epoch) and `sequence` of its first step.
    pub start_ns: u64,
    pub start_sequence: u32,
    pub obs_size: usize,
    pub action_size: usize,
    pub observations: Vec<f64>,
    pub actions: Vec<f64>,
    pub rewards: Option<Vec<f64>>,
}

impl Episode {
    /// Transitions held (`observations` has one row more).
    pub fn len(&self) -> usize {
        self.actions.len() / self.action_size.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Observation row `k` (0..=len).
    pub fn obs(&self, k: usize) -> &[f64] {
        &self.observations[k * self.obs_size..(k + 1) * self.obs_size]
    }

    /// Action row `k` (0..len).
    pub fn action(&self, k: usize) -> &[f64] {
        &self.actions[k * self.action_size..(k + 1) * self.action_size]
    }
}

/// A truncated MCAP file: the complete records were used.
#[derive(Clone, Debug, PartialEq)]
pub struct Truncation {
    pub file: PathBuf,
    /// File size and the end of the last complete record.
    pub file_bytes: u64,
    /// Bytes after the last complete record (a partial chunk, or nothing
    /// when only the summary and footer are missing).
    pub lost_bytes: u64,
    /// `log_time` of the last message recovered.
    pub last_log_time: Option<u64>,
    /// What the MCAP reader said at the cut.
    pub why: String,
}

/// What one source (bag folder or file) gave and what was skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceReport {
    pub source: PathBuf,
    pub files: Vec<PathBuf>,
    /// Messages decoded on the four known topics; others are ignored.
    pub messages: u64,
    /// Distinct steps (observation, action, reward or boundary records).
    pub steps: u64,
    pub episodes: usize,
    pub transitions: u64,
    /// Stretches ended by a gap in time or sequence.
    pub gaps: u64,
    /// The first gap: (log_time before, log_time after).
    pub first_gap: Option<(u64, u64)>,
    /// Steps without an observation, or whose predecessor had no action.
    pub incomplete_steps: u64,
    /// Transitions without a reward in a source that has a reward topic.
    pub missing_rewards: u64,
    /// Control period used for the gap rule (seconds).
    pub period_s: f64,
    pub truncated: Vec<Truncation>,
}

/// Everything [`read`] skipped or recovered, per source.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadReport {
    pub sources: Vec<SourceReport>,
}

impl fmt::Display for ReadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.sources {
            write!(
                f,
                "{}: {} episodes, {} transitions from {} steps ({} messages, period {:.4} s)",
                s.source.display(),
                s.episodes,
                s.transitions,
                s.steps,
                s.messages,
                s.period_s
            )?;
            if s.gaps > 0 {
                let (a, b) = s.first_gap.unwrap_or_default();
                write!(
                    f,
                    "; {} gaps (first: log_time {a} -> {b} ns, {:.3} s)",
                    s.gaps,
                    b.saturating_sub(a) as f64 * 1e-9
                )?;
            }
            if s.incomplete_steps > 0 {
                write!(
                    f,
                    "; {} steps without observation/action",
                    s.incomplete_steps
                )?;
            }
            if s.missing_rewards > 0 {
                write!(f, "; {} transitions without reward", s.missing_rewards)?;
            }
            for t in &s.truncated {
                write!(
                    f,
                    "; TRUNCATED {}: {} of {} bytes lost after the last complete record (last message at log_time {}): {}",
                    t.file.display(),
                    t.lost_bytes,
                    t.file_bytes,
                    t.last_log_time.map(|v| v.to_string()).unwrap_or("-".into()),
                    t.why
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// A log that cannot be used, naming the file, the topic and the time.
#[derive(Debug)]
pub enum BagError {
    Io {
        path: PathBuf,
        err: std::io::Error,
    },
    /// Not a bag folder, not an MCAP file, or `metadata.yaml` unusable.
    NotABag {
        path: PathBuf,
        why: String,
    },
    /// A file that is not a regular file (a device, a FIFO, a folder
    /// where a file is listed), or one over its size cap: not read.
    NotAFile {
        path: PathBuf,
        why: String,
    },
    /// An MCAP file damaged before its end (not a truncated tail): a chunk
    /// whose CRC does not match, a record length that runs past a file
    /// that ends with its footer.
    Corrupt {
        file: PathBuf,
        why: String,
    },
    /// No channel for a required topic.
    MissingTopic {
        file: PathBuf,
        topic: &'static str,
        have: Vec<String>,
    },
    /// A known topic carries another message type or encoding.
    WrongType {
        file: PathBuf,
        topic: String,
        log_time: u64,
        expected: String,
        got: String,
    },
    /// A message whose CDR does not decode as the topic's type.
    Decode {
        file: PathBuf,
        topic: String,
        log_time: u64,
        why: String,
    },
    /// An observation or action of another size than expected.
    Size {
        file: PathBuf,
        topic: String,
        log_time: u64,
        expected: usize,
        got: usize,
    },
    /// NaN or infinity in a message.
    NonFinite {
        file: PathBuf,
        topic: String,
        log_time: u64,
        index: usize,
        value: f64,
    },
    /// Nothing usable in any source.
    Empty {
        why: String,
    },
}

/// `log_time` as nanoseconds and UTC seconds (what `ros2 bag info` shows).
fn at(t: u64) -> String {
    format!("log_time {t} ns ({:.3} s)", t as f64 * 1e-9)
}

impl fmt::Display for BagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BagError::Io { path, err } => write!(f, "{}: {err}", path.display()),
            BagError::NotABag { path, why } => write!(f, "{}: not a bag: {why}", path.display()),
            BagError::NotAFile { path, why } => write!(f, "{}: not read: {why}", path.display()),
            BagError::Corrupt { file, why } => {
                write!(f, "{}: corrupt MCAP: {why}", file.display())
            }
            BagError::MissingTopic { file, topic, have } => write!(
                f,
                "{}: missing topic {topic} (channels: {})",
                file.display(),
                if have.is_empty() {
                    "none".to_string()
                } else {
                    have.join(", ")
                }
            ),
            BagError::WrongType {
                file,
                topic,
                log_time,
                expected,
                got,
            } => write!(
                f,
                "{}: topic {topic} at {}: message type {got}, expected {expected}",
                file.display(),
                at(*log_time)
            ),
            BagError::Decode {
                file,
                topic,
                log_time,
                why,
            } => write!(
                f,
                "{}: topic {topic} at {}: CDR does not decode: {why}",
                file.display(),
                at(*log_time)
            ),
            BagError::Size {
                file,
                topic,
                log_time,
                expected,
                got,
            } => write!(
                f,
                "{}: topic {topic} at {}: {got} values, the model expects {expected}",
                file.display(),
                at(*log_time)
            ),
            BagError::NonFinite {
                file,
                topic,
                log_time,
                index,
                value,
            } => write!(
                f,
                "{}: topic {topic} at {}: element {index} is {value} (not finite in f32, which the model computes in; a log with non-finite values is not training data)",
                file.display(),
                at(*log_time)
            ),
            BagError::Empty { why } => write!(f, "no usable data: {why}"),
        }
    }
}

impl std::error::Error for BagError {}

/// Decode one CDR payload (4-byte encapsulation header, then the body)
/// with the deserializer the node's subscriptions use.
pub fn decode_cdr<T: DeserializeOwned>(data: &[u8]) -> Result<T, String> {
    if data.len() < 4 {
        return Err(format!(
            "{} bytes, shorter than the 4-byte CDR encapsulation header",
            data.len()
        ));
    }
    let rep = RepresentationIdentifier::from_bytes(&data[0..2]).map_err(|e| e.to_string())?;
    if rep != RepresentationIdentifier::CDR_LE && rep != RepresentationIdentifier::CDR_BE {
        return Err(format!(
            "encapsulation {:02x} {:02x} is not plain CDR",
            data[0], data[1]
        ));
    }
    CDRDeserializerAdapter::<T>::from_bytes(&data[4..], rep).map_err(|e| e.to_string())
}

/// What the records of one step hold.
#[derive(Default)]
struct Step {
    obs: Option<Vec<f64>>,
    action: Option<Vec<f64>>,
    reward: Option<f64>,
    episode: Option<i64>,
}

/// The files of one source: a bag folder's MCAP files (from
/// `metadata.yaml`'s `relative_file_paths`, else every `*.mcap` in name
/// order) or one file.
fn files_of(path: &Path) -> Result<Vec<PathBuf>, BagError> {
    let io = |err| BagError::Io {
        path: path.to_path_buf(),
        err,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !meta.is_dir() {
        return Err(not_regular(path, &meta));
    }
    let yaml = path.join("metadata.yaml");
    if yaml.exists() {
        let bytes = read_capped(&yaml, MAX_METADATA_BYTES)?;
        let text = String::from_utf8(bytes).map_err(|e| BagError::NotABag {
            path: yaml.clone(),
            why: e.to_string(),
        })?;
        let v: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| BagError::NotABag {
            path: yaml.clone(),
            why: e.to_string(),
        })?;
        let info = &v["rosbag2_bagfile_information"];
        let storage = info["storage_identifier"].as_str().unwrap_or("");
        if storage != "mcap" {
            return Err(BagError::NotABag {
                path: yaml,
                why: format!("storage_identifier '{storage}', only 'mcap' is read"),
            });
        }
        if let Some(list) = info["relative_file_paths"].as_sequence() {
            let files: Vec<PathBuf> = list
                .iter()
                .filter_map(|f| f.as_str())
                .map(|f| path.join(f))
                .filter(|f| f.exists())
                .collect();
            if !files.is_empty() {
                return Ok(files);
            }
        }
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mcap"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(BagError::NotABag {
            path: path.to_path_buf(),
            why: "no metadata.yaml file list and no .mcap file".into(),
        });
    }
    Ok(files)
}

/// The refusal of a path that is neither a regular file nor a folder.
fn not_regular(path: &Path, meta: &std::fs::Metadata) -> BagError {
    let kind = crate::bundle::confine::kind_name(meta);
    BagError::NotAFile {
        path: path.to_path_buf(),
        why: format!("{kind}; only regular files are read"),
    }
}

/// The whole of the regular file `path`, refused unread when it is
/// anything else (a device such as /dev/zero, a FIFO that would block) or
/// larger than `cap` bytes. The file is opened non-blocking (a FIFO swapped
/// in after the check does not hang the open), checked again on the open
/// handle, and read through a `cap + 1` limit (a file that grows is cut
/// and refused, not read without end).
fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, BagError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |err| BagError::Io {
        path: path.to_path_buf(),
        err,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    let too_big = |n: u64| BagError::NotAFile {
        path: path.to_path_buf(),
        why: format!("{n} bytes, over the cap of {cap} bytes"),
    };
    if meta.len() > cap {
        return Err(too_big(meta.len()));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > cap {
        return Err(too_big(buf.len() as u64));
    }
    Ok(buf)
}

/// Whether `buf` ends with an MCAP footer record (op 0x02, length 20)
/// followed by the closing magic: the writer finished the file, so a
/// record that cannot be read inside it is damage, not a cut.
fn ends_with_footer(buf: &[u8]) -> bool {
    const FOOTER: usize = 1 + 8 + 20;
    let n = buf.len();
    n >= 8 + FOOTER + 8
        && buf[n - 8..] == mcap::MAGIC[..]
        && buf[n - 8 - FOOTER] == 0x02
        && buf[n - 8 - FOOTER + 1..n - 8 - FOOTER + 9] == 20u64.to_le_bytes()
}

/// End of the last complete MCAP record (op u8, length u64 LE, body)
/// after the 8-byte magic, and whether the file ends with a footer and
/// the closing magic.
fn complete_prefix(buf: &[u8]) -> (usize, bool) {
    let mut off = 8usize.min(buf.len());
    loop {
        if buf.len() - off == 8 && buf[off..] == mcap::MAGIC[..] {
            return (buf.len(), true);
        }
        if buf.len() - off < 9 {
            return (off, false);
        }
        let len = u64::from_le_bytes(buf[off + 1..off + 9].try_into().expect("8 bytes"));
        let end = (off as u64 + 9).saturating_add(len);
        if end > buf.len() as u64 {
            return (off, false);
        }
        off = end as usize;
    }
}

/// Per-topic expectations checked on every message.
struct Sizes {
    obs: Option<usize>,
    action: Option<usize>,
}

fn check_values(
    file: &Path,
    topic: &str,
    log_time: u64,
    v: &[f64],
    expected: &mut Option<usize>,
) -> Result<(), BagError> {
    match expected {
        Some(n) if *n != v.len() => {
            return Err(BagError::Size {
                file: file.to_path_buf(),
                topic: topic.to_string(),
                log_time,
                expected: *n,
                got: v.len(),
            })
        }
        None => *expected = Some(v.len()),
        _ => {}
    }
    // Finite in f64 is not enough: the model computes in f32, where
    // |x| > 3.4e38 is infinite.
    if let Some((index, &value)) = v
        .iter()
        .enumerate()
        .find(|(_, x)| !(**x as f32).is_finite())
    {
        return Err(BagError::NonFinite {
            file: file.to_path_buf(),
            topic: topic.to_string(),
            log_time,
            index,
            value,
        });
    }
    Ok(())
}

/// Read one MCAP file's known topics into `steps`; a truncated tail is
/// returned as a [`Truncation`], any other damage is an error.
fn read_file(
    file: &Path,
    steps: &mut BTreeMap<(u64, u32), Step>,
    sizes: &mut Sizes,
    report: &mut SourceReport,
    opts: &ReadOptions,
) -> Result<Option<Truncation>, BagError> {
    let buf = read_capped(file, opts.max_file_bytes)?;
    if buf.len() < 8 || buf[..8] != mcap::MAGIC[..] {
        return Err(BagError::NotABag {
            path: file.to_path_buf(),
            why: "does not start with the MCAP magic".into(),
        });
    }
    // Chunk CRCs are checked: a flipped bit inside a chunk (an exponent
    // that turns 1.0 into 1e30) is damage, not data.
    let stream = mcap::MessageStream::new_with_limit(
        &buf,
        mcap::read::Options::ValidateChunkCrcs.into(),
        Some(usize::try_from(opts.max_record_bytes).unwrap_or(usize::MAX)),
    )
    .map_err(|e| BagError::Corrupt {
        file: file.to_path_buf(),
        why: e.to_string(),
    })?;
    let mut channels: BTreeMap<String, ()> = BTreeMap::new();
    let mut last_time = None;
    let mut cut = None;
    for m in stream {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                let crc = matches!(
                    e,
                    mcap::McapError::BadChunkCrc { .. } | mcap::McapError::BadDataCrc { .. }
                );
                cut = Some((e.to_string(), crc));
                break;
            }
        };
        let topic = m.channel.topic.as_str();
        channels.insert(topic.to_string(), ());
        let expected = match topic {
            OBSERVATION_TOPIC | ACTION_TOPIC => FLOAT64_MULTI_ARRAY,
            REWARD_TOPIC => FLOAT64,
            EPISODE_TOPIC => INT64,
            _ => continue,
        };
        let got = m
            .channel
            .schema
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_else(|| "(no schema)".into());
        let encoding = &m.channel.message_encoding;
        if got != expected || encoding != "cdr" {
            return Err(BagError::WrongType {
                file: file.to_path_buf(),
                topic: topic.to_string(),
                log_time: m.log_time,
                expected: format!("{expected} (cdr)"),
                got: format!("{got} ({encoding})"),
            });
        }
        let dec = |why| BagError::Decode {
            file: file.to_path_buf(),
            topic: topic.to_string(),
            log_time: m.log_time,
            why,
        };
        let step = steps.entry((m.log_time, m.sequence)).or_default();
        match topic {
            OBSERVATION_TOPIC | ACTION_TOPIC => {
                let v = decode_cdr::<Float64MultiArray>(&m.data).map_err(dec)?.data;
                let (slot, size) = if topic == OBSERVATION_TOPIC {
                    (&mut step.obs, &mut sizes.obs)
                } else {
                    (&mut step.action, &mut sizes.action)
                };
                check_values(file, topic, m.log_time, &v, size)?;
                *slot = Some(v);
            }
            REWARD_TOPIC => {
                let r = decode_cdr::<Float64>(&m.data).map_err(dec)?.data;
                check_values(file, topic, m.log_time, &[r], &mut Some(1))?;
                step.reward = Some(r);
            }
            _ => step.episode = Some(decode_cdr::<Int64>(&m.data).map_err(dec)?.data),
        }
        report.messages += 1;
        last_time = Some(m.log_time);
    }
    for topic in [OBSERVATION_TOPIC, ACTION_TOPIC] {
        if !channels.contains_key(topic) {
            return Err(BagError::MissingTopic {
                file: file.to_path_buf(),
                topic,
                have: channels.into_keys().collect(),
            });
        }
    }
    let Some((why, crc)) = cut else {
        return Ok(None);
    };
    let (end, closed) = complete_prefix(&buf);
    // A CRC mismatch, or a file the writer finished (footer and magic at
    // its end) that still cannot be read through, is damage: refused, not
    // reported as a truncated tail.
    if closed || crc || ends_with_footer(&buf) {
        // Every record is whole: the error is damage, not a cut.
        return Err(BagError::Corrupt {
            file: file.to_path_buf(),
            why,
        });
    }
    Ok(Some(Truncation {
        file: file.to_path_buf(),
        file_bytes: buf.len() as u64,
        lost_bytes: (buf.len() - end) as u64,
        last_log_time: last_time,
        why,
    }))
}

/// `(log_time, sequence, action, reward)` of the last step appended.
type Prev = (u64, u32, Option<Vec<f64>>, Option<f64>);

/// Median of the positive time steps between consecutive observations.
fn median_period(steps: &BTreeMap<(u64, u32), Step>) -> Option<f64> {
    let times: Vec<u64> = steps
        .iter()
        .filter(|(_, s)| s.obs.is_some())
        .map(|(k, _)| k.0)
        .collect();
    let mut d: Vec<u64> = times
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .filter(|&d| d > 0)
        .collect();
    if d.is_empty() {
        return None;
    }
    d.sort_unstable();
    Some(d[d.len() / 2] as f64 * 1e-9)
}

/// Cut the steps of one source into episodes (docs/BAGS.md, "Topics and
/// timing").
fn assemble(
    source: &Path,
    steps: BTreeMap<(u64, u32), Step>,
    opts: &ReadOptions,
    sizes: &Sizes,
    report: &mut SourceReport,
) -> Vec<Episode> {
    let (o, a) = (sizes.obs.unwrap_or(0), sizes.action.unwrap_or(0));
    let period = opts
        .period_s
        .or_else(|| median_period(&steps))
        .unwrap_or(0.0);
    report.period_s = period;
    report.steps = steps.len() as u64;
    let max_gap_ns = (opts.max_gap * period * 1e9) as u64;
    // Sequences identify steps only when the writer set them.
    let has_seq = steps.keys().any(|k| k.1 != 0);
    let any_reward = steps.values().any(|s| s.reward.is_some());
    let mut out = Vec::new();
    let mut cur: Option<Episode> = None;
    // (log_time, sequence, action, reward) of the last step appended.
    let mut prev: Option<Prev> = None;
    let mut rewards_ok = true;
    let close = |cur: &mut Option<Episode>, out: &mut Vec<Episode>, rewards_ok: bool| {
        if let Some(mut e) = cur.take() {
            if !e.is_empty() {
                if !rewards_ok || !any_reward {
                    e.rewards = None;
                }
                out.push(e);
            }
        }
    };
    for ((t, seq), s) in steps {
        let mut joined = prev.is_some() && s.episode.is_none();
        if let Some((pt, pseq, _, _)) = &prev {
            let seq_gap = has_seq && seq != pseq.wrapping_add(1);
            let time_gap = max_gap_ns > 0 && t.saturating_sub(*pt) > max_gap_ns;
            if joined && (seq_gap || time_gap) {
                report.gaps += 1;
                report.first_gap.get_or_insert((*pt, t));
                joined = false;
            }
        }
        let Some(obs) = s.obs else {
            report.incomplete_steps += 1;
            close(&mut cur, &mut out, rewards_ok);
            prev = None;
            continue;
        };
        if joined {
            let (_, _, pa, pr) = prev.take().expect("joined has a previous step");
            match (pa, cur.as_mut()) {
                (Some(pa), Some(e)) => {
                    e.actions.extend_from_slice(&pa);
                    e.observations.extend_from_slice(&obs);
                    match (pr, e.rewards.as_mut()) {
                        (Some(r), Some(rs)) => rs.push(r),
                        _ => {
                            if any_reward {
                                report.missing_rewards += 1;
                            }
                            rewards_ok = false;
                        }
                    }
                }
                _ => {
                    report.incomplete_steps += 1;
                    joined = false;
                }
            }
        }
        if !joined {
            close(&mut cur, &mut out, rewards_ok);
            rewards_ok = true;
            cur = Some(Episode {
                source: source.to_path_buf(),
                index: s.episode,
                start_ns: t,
                start_sequence: seq,
                obs_size: o,
                action_size: a,
                observations: obs,
                actions: Vec::new(),
                rewards: Some(Vec::new()),
            });
        }
        prev = Some((t, seq, s.action, s.reward));
    }
    close(&mut cur, &mut out, rewards_ok);
    report.episodes = out.len();
    report.transitions = out.iter().map(|e| e.len() as u64).sum();
    out
}

/// Read `paths` (bag folders and/or `.mcap` files) into episodes, in the
/// order given, each source's episodes in time order. Errors name the
/// file, the topic and the log time (docs/BAGS.md); a truncated tail is
/// recovered and reported in the [`ReadReport`].
pub fn read(paths: &[PathBuf], opts: &ReadOptions) -> Result<(Vec<Episode>, ReadReport), BagError> {
    let mut episodes = Vec::new();
    let mut report = ReadReport::default();
    let mut sizes = Sizes {
        obs: opts.obs_size,
        action: opts.action_size,
    };
    for path in paths {
        let files = files_of(path)?;
        let mut r = SourceReport {
            source: path.clone(),
            files: files.clone(),
            ..Default::default()
        };
        let mut steps = BTreeMap::new();
        for f in &files {
            if let Some(t) = read_file(f, &mut steps, &mut sizes, &mut r, opts)? {
                r.truncated.push(t);
            }
        }
        episodes.extend(assemble(path, steps, opts, &sizes, &mut r));
        report.sources.push(r);
    }
    if episodes.is_empty() {
        return Err(BagError::Empty {
            why: format!(
                "no transition (two consecutive steps with observation and action) in {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok((episodes, report))
}
