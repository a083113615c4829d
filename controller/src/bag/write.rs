//! Writing bags (docs/BAGS.md): a rosbag2 folder holding `metadata.yaml`
//! and one MCAP file (`<name>_0.mcap`, `<name>` = the folder's own name)
//! with `ros2msg` schemas, `cdr` channels, zstd chunks and a summary.
//!
//! [`BagWriter::write_step`] records one control step: observation, action,
//! optionally the reward and an episode start, all with the same MCAP
//! `sequence` (the step index) and `log_time`/`publish_time`. Messages are
//! serialized by the CDR serializer the node's DDS traffic goes through
//! (RustDDS's, via `ros2_client`), behind the 4-byte little-endian
//! encapsulation header `00 01 00 00`.
//!
//! Cost: a step serializes into buffers the writer owns (no allocation once
//! they have grown to the message sizes) and copies the bytes into the MCAP
//! chunk; every [`BagOptions::chunk_size`] bytes a chunk is zstd-compressed
//! and written, in the calling thread. Not for the control thread: the node
//! hands its records to a writer thread (see `crate::ros`).

use super::schema;
use super::{ACTION_TOPIC, EPISODE_TOPIC, OBSERVATION_TOPIC, REWARD_TOPIC};
use crate::msgs::{Float64, Float64MultiArray, Int64};
use mcap::records::{MessageHeader, Metadata};
use ros2_client::dds::rustdds::serialization::{to_writer_with_rep_id, RepresentationIdentifier};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The rosbag2 metadata version we write (rosbags reads 1-9, `ros2 bag`
/// from Humble on reads 5).
pub const METADATA_VERSION: u32 = 5;

/// Why a bag could not be written. Every variant names the path or topic.
#[derive(Debug)]
pub enum BagError {
    /// The bag folder exists and holds files: we never write into (or over)
    /// an earlier recording.
    NotEmpty(PathBuf),
    /// The bag path exists and is not a folder.
    NotAFolder(PathBuf),
    /// The bag path has no final component to name the MCAP file after.
    NoName(PathBuf),
    /// A file-system operation failed.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The MCAP library refused a record.
    Mcap { path: PathBuf, error: String },
    /// CDR serialization failed.
    Cdr { topic: &'static str, error: String },
    /// A vector's length differs from the size the bag was created with.
    Size {
        topic: &'static str,
        expected: usize,
        got: usize,
        step: u64,
    },
    /// Step indices must increase (gaps are allowed: they are dropped records).
    StepOrder { step: u64, previous: u64 },
    /// A step index beyond MCAP's 32-bit `sequence`.
    StepRange(u64),
}

impl std::fmt::Display for BagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BagError::NotEmpty(p) => write!(
                f,
                "bag folder {} exists and is not empty; record into a new folder",
                p.display()
            ),
            BagError::NotAFolder(p) => {
                write!(f, "bag path {} exists and is not a folder", p.display())
            }
            BagError::NoName(p) => write!(f, "bag path {} has no folder name", p.display()),
            BagError::Io { path, error } => write!(f, "bag {}: {error}", path.display()),
            BagError::Mcap { path, error } => write!(f, "bag {}: MCAP: {error}", path.display()),
            BagError::Cdr { topic, error } => write!(f, "bag topic {topic}: CDR: {error}"),
            BagError::Size {
                topic,
                expected,
                got,
                step,
            } => write!(
                f,
                "bag topic {topic}, step {step}: {got} values, the bag was created for {expected}"
            ),
            BagError::StepOrder { step, previous } => write!(
                f,
                "bag step {step} after step {previous}: step indices must increase"
            ),
            BagError::StepRange(s) => {
                write!(f, "bag step {s} exceeds the MCAP sequence range (u32)")
            }
        }
    }
}

impl std::error::Error for BagError {}

/// What a bag records besides observations and actions, and how.
#[derive(Clone, Debug)]
pub struct BagOptions {
    /// Observation length (every step's observation must have it).
    pub obs_size: usize,
    /// Action length.
    pub action_size: usize,
    /// Create the `/dream_mpc/reward` channel (steps may still omit a reward).
    pub reward: bool,
    /// Create the `/dream_mpc/episode` channel.
    pub episode: bool,
    /// Target uncompressed chunk size in bytes (MCAP's default 1 MiB).
    pub chunk_size: u64,
    /// zstd level (0 = zstd's default).
    pub compression_level: u32,
    /// `offered_qos_profiles` of every topic (rosbag2 YAML; may be empty).
    pub offered_qos_profiles: String,
    /// Who wrote the bag (goes into the `dream_mpc` metadata record).
    pub source: String,
}

impl BagOptions {
    /// Observation and action sizes, reward and episode channels on, MCAP's
    /// default chunk size and zstd's default level.
    pub fn new(obs_size: usize, action_size: usize) -> Self {
        BagOptions {
            obs_size,
            action_size,
            reward: true,
            episode: true,
            chunk_size: mcap::WriteOptions::DEFAULT_CHUNK_SIZE,
            compression_level: 0,
            offered_qos_profiles: String::new(),
            source: String::from("dream-mpc"),
        }
    }
}

/// One control step as recorded.
#[derive(Clone, Copy, Debug)]
pub struct Step<'a> {
    /// Step index: the MCAP `sequence` of every record of the step;
    /// counted from 0 at the start of the recording, increasing, a gap
    /// marks dropped records.
    pub index: u64,
    /// Wall-clock time of the tick/step, nanoseconds since the UNIX epoch
    /// (`log_time` and `publish_time`).
    pub time_ns: u64,
    /// The observation planned on / published.
    pub observation: &'a [f64],
    /// The action published / applied; `None` for an observation no action
    /// followed (the sim's last observation of an episode).
    pub action: Option<&'a [f64]>,
    /// The reward earned by this step's action.
    pub reward: Option<f64>,
    /// `Some(index)` when this step is the first of episode `index`.
    pub episode_start: Option<i64>,
}

/// Counts of a closed bag.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BagSummary {
    /// The bag folder.
    pub dir: PathBuf,
    /// The MCAP file.
    pub file: PathBuf,
    pub steps: u64,
    /// Messages per topic, in channel order (observation, action, reward?, episode?).
    pub messages: Vec<(&'static str, u64)>,
    /// First and last log time (ns), `None` for an empty bag.
    pub time_range: Option<(u64, u64)>,
    /// Records the producer dropped (see [`BagWriter::set_records_dropped`]).
    pub records_dropped: u64,
}

struct Topic {
    name: &'static str,
    type_name: &'static str,
    channel: u16,
    count: u64,
}

/// An open bag. Create with [`BagWriter::create`], feed with
/// [`BagWriter::write_step`], finish with [`BagWriter::close`] (dropping
/// without `close` still finishes the MCAP file, but leaves the
/// `metadata.yaml` written at creation).
pub struct BagWriter {
    dir: PathBuf,
    file: PathBuf,
    mcap: Option<mcap::Writer<BufWriter<File>>>,
    opts: BagOptions,
    /// observation, action, reward?, episode?
    topics: Vec<Topic>,
    reward_topic: Option<usize>,
    episode_topic: Option<usize>,
    array: Float64MultiArray,
    bytes: Vec<u8>,
    last_step: Option<u64>,
    steps: u64,
    time_range: Option<(u64, u64)>,
    records_dropped: u64,
}

impl BagWriter {
    /// Creates the folder `dir` (and its parents; an existing empty folder
    /// is used), the MCAP file with its schemas and channels, and a first
    /// `metadata.yaml`. Refuses a folder that holds anything.
    pub fn create(dir: impl AsRef<Path>, opts: BagOptions) -> Result<Self, BagError> {
        let dir = dir.as_ref().to_path_buf();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| BagError::Io { path, error }
        };
        if dir.exists() {
            if !dir.is_dir() {
                return Err(BagError::NotAFolder(dir));
            }
            if fs::read_dir(&dir).map_err(io(&dir))?.next().is_some() {
                return Err(BagError::NotEmpty(dir));
            }
        }
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty() && *n != "." && *n != "..")
            .ok_or_else(|| BagError::NoName(dir.clone()))?
            .to_string();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let file = dir.join(format!("{name}_0.mcap"));
        let out = File::create(&file).map_err(io(&file))?;
        let mcap_err = |path: &Path| {
            let path = path.to_path_buf();
            move |e: mcap::McapError| BagError::Mcap {
                path,
                error: e.to_string(),
            }
        };
        let mut mcap = mcap::WriteOptions::new()
            .profile("ros2")
            .library(format!("dream-mpc {}", env!("CARGO_PKG_VERSION")))
            .compression(Some(mcap::Compression::Zstd))
            .compression_level(opts.compression_level)
            .compression_threads(0)
            .chunk_size(Some(opts.chunk_size))
            .create(BufWriter::new(out))
            .map_err(mcap_err(&file))?;

        let mut wanted = vec![
            (OBSERVATION_TOPIC, schema::FLOAT64_MULTI_ARRAY),
            (ACTION_TOPIC, schema::FLOAT64_MULTI_ARRAY),
        ];
        if opts.reward {
            wanted.push((REWARD_TOPIC, schema::FLOAT64));
        }
        if opts.episode {
            wanted.push((EPISODE_TOPIC, schema::INT64));
        }
        let mut meta = BTreeMap::new();
        meta.insert(
            "offered_qos_profiles".to_string(),
            opts.offered_qos_profiles.clone(),
        );
        let mut topics = Vec::with_capacity(wanted.len());
        let mut schema_ids: BTreeMap<&str, u16> = BTreeMap::new();
        for (topic, type_name) in wanted {
            let schema_id = match schema_ids.get(type_name) {
                Some(&id) => id,
                None => {
                    let text = schema::definition(type_name).expect("a type we write");
                    let id = mcap
                        .add_schema(type_name, "ros2msg", text.as_bytes())
                        .map_err(mcap_err(&file))?;
                    schema_ids.insert(type_name, id);
                    id
                }
            };
            let channel = mcap
                .add_channel(schema_id, topic, "cdr", &meta)
                .map_err(mcap_err(&file))?;
            topics.push(Topic {
                name: topic,
                type_name,
                channel,
                count: 0,
            });
        }
        let reward_topic = topics.iter().position(|t| t.name == REWARD_TOPIC);
        let episode_topic = topics.iter().position(|t| t.name == EPISODE_TOPIC);
        let cap = opts.obs_size.max(opts.action_size);
        let mut array = Float64MultiArray::vector("observation", Vec::with_capacity(cap));
        array.layout.dim[0].label.reserve(16);
        let w = BagWriter {
            dir,
            file,
            mcap: Some(mcap),
            opts,
            topics,
            reward_topic,
            episode_topic,
            array,
            bytes: Vec::with_capacity(64 + 8 * cap),
            last_step: None,
            steps: 0,
            time_range: None,
            records_dropped: 0,
        };
        w.write_metadata_yaml()?;
        Ok(w)
    }

    /// The bag folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The MCAP file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Steps written so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Records the producer dropped before they reached the writer (written
    /// into the `dream_mpc` metadata record at close).
    pub fn set_records_dropped(&mut self, n: u64) {
        self.records_dropped = n;
    }

    /// Writes one step's records (see [`Step`]); checks sizes and order
    /// first, so a refused step writes nothing. A reward or episode start
    /// on a bag created without that channel is an error.
    pub fn write_step(&mut self, step: &Step) -> Result<(), BagError> {
        let seq = u32::try_from(step.index).map_err(|_| BagError::StepRange(step.index))?;
        if let Some(prev) = self.last_step {
            if step.index <= prev {
                return Err(BagError::StepOrder {
                    step: step.index,
                    previous: prev,
                });
            }
        }
        for (topic, expected, got) in [
            (
                OBSERVATION_TOPIC,
                self.opts.obs_size,
                step.observation.len(),
            ),
            (
                ACTION_TOPIC,
                self.opts.action_size,
                step.action.map_or(self.opts.action_size, <[f64]>::len),
            ),
        ] {
            if expected != got {
                return Err(BagError::Size {
                    topic,
                    expected,
                    got,
                    step: step.index,
                });
            }
        }
        let reward = match (step.reward, self.reward_topic) {
            (Some(r), Some(t)) => Some((r, t)),
            (None, _) => None,
            (Some(_), None) => return Err(self.missing_channel(REWARD_TOPIC)),
        };
        let episode = match (step.episode_start, self.episode_topic) {
            (Some(e), Some(t)) => Some((e, t)),
            (None, _) => None,
            (Some(_), None) => return Err(self.missing_channel(EPISODE_TOPIC)),
        };
        let header = |channel_id| MessageHeader {
            channel_id,
            sequence: seq,
            log_time: step.time_ns,
            publish_time: step.time_ns,
        };
        // an episode starts before its first observation (the order the sim publishes)
        if let Some((e, t)) = episode {
            self.serialize(EPISODE_TOPIC, &Int64 { data: e })?;
            self.put(t, &header(self.topics[t].channel))?;
        }
        self.set_array("observation", step.observation);
        self.serialize_array(OBSERVATION_TOPIC)?;
        self.put(0, &header(self.topics[0].channel))?;
        if let Some(action) = step.action {
            self.set_array("action", action);
            self.serialize_array(ACTION_TOPIC)?;
            self.put(1, &header(self.topics[1].channel))?;
        }
        if let Some((r, t)) = reward {
            self.serialize(REWARD_TOPIC, &Float64 { data: r })?;
            self.put(t, &header(self.topics[t].channel))?;
        }
        self.last_step = Some(step.index);
        self.steps += 1;
        self.time_range = Some(match self.time_range {
            None => (step.time_ns, step.time_ns),
            Some((a, b)) => (a.min(step.time_ns), b.max(step.time_ns)),
        });
        Ok(())
    }

    /// The reward of step `index`, already written (time `time_ns`, its
    /// own), recorded after it: the node learns a tick's reward only from
    /// the rewards received before the next tick. An index after the last
    /// step written, or a bag without the reward channel, is an error.
    pub fn write_late_reward(
        &mut self,
        index: u64,
        time_ns: u64,
        reward: f64,
    ) -> Result<(), BagError> {
        let seq = u32::try_from(index).map_err(|_| BagError::StepRange(index))?;
        if self.last_step.is_none_or(|last| index > last) {
            return Err(BagError::StepOrder {
                step: index,
                previous: self.last_step.unwrap_or(0),
            });
        }
        let Some(t) = self.reward_topic else {
            return Err(self.missing_channel(REWARD_TOPIC));
        };
        self.serialize(REWARD_TOPIC, &Float64 { data: reward })?;
        let header = MessageHeader {
            channel_id: self.topics[t].channel,
            sequence: seq,
            log_time: time_ns,
            publish_time: time_ns,
        };
        self.put(t, &header)
    }

    /// Ends the current chunk and flushes it to the file, so that a crash
    /// after this loses nothing written before it.
    pub fn flush(&mut self) -> Result<(), BagError> {
        let file = self.file.clone();
        if let Some(m) = self.mcap.as_mut() {
            m.flush().map_err(|e| BagError::Mcap {
                path: file,
                error: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Writes the `dream_mpc` metadata record, the summary section (MCAP
    /// statistics, chunk indexes) and footer, then rewrites `metadata.yaml`
    /// with the final counts.
    pub fn close(mut self) -> Result<BagSummary, BagError> {
        let file = self.file.clone();
        let mcap_err = |e: mcap::McapError| BagError::Mcap {
            path: file.clone(),
            error: e.to_string(),
        };
        let mut m = self.mcap.take().expect("open until close");
        let mut md = BTreeMap::new();
        md.insert(
            "records_dropped".to_string(),
            self.records_dropped.to_string(),
        );
        md.insert("steps".to_string(), self.steps.to_string());
        md.insert("obs_size".to_string(), self.opts.obs_size.to_string());
        md.insert("action_size".to_string(), self.opts.action_size.to_string());
        md.insert("source".to_string(), self.opts.source.clone());
        md.insert(
            "writer".to_string(),
            format!("dream-mpc {}", env!("CARGO_PKG_VERSION")),
        );
        m.write_metadata(&Metadata {
            name: "dream_mpc".to_string(),
            metadata: md,
        })
        .map_err(mcap_err)?;
        m.finish().map_err(mcap_err)?;
        let mut inner = m.into_inner();
        inner.flush().map_err(|error| BagError::Io {
            path: self.file.clone(),
            error,
        })?;
        drop(inner);
        self.write_metadata_yaml()?;
        Ok(BagSummary {
            dir: self.dir.clone(),
            file: self.file.clone(),
            steps: self.steps,
            messages: self.topics.iter().map(|t| (t.name, t.count)).collect(),
            time_range: self.time_range,
            records_dropped: self.records_dropped,
        })
    }

    fn missing_channel(&self, topic: &'static str) -> BagError {
        BagError::Mcap {
            path: self.file.clone(),
            error: format!("a step carries {topic}, but the bag was created without that topic"),
        }
    }

    fn set_array(&mut self, label: &str, data: &[f64]) {
        let dim = &mut self.array.layout.dim[0];
        dim.label.clear();
        dim.label.push_str(label);
        dim.size = data.len() as u32;
        dim.stride = data.len() as u32;
        self.array.data.clear();
        self.array.data.extend_from_slice(data);
    }

    fn serialize_array(&mut self, topic: &'static str) -> Result<(), BagError> {
        let array = std::mem::take(&mut self.array);
        let r = self.serialize(topic, &array);
        self.array = array;
        r
    }

    fn serialize<T: serde::Serialize>(
        &mut self,
        topic: &'static str,
        msg: &T,
    ) -> Result<(), BagError> {
        self.bytes.clear();
        self.bytes
            .extend_from_slice(&RepresentationIdentifier::CDR_LE.to_bytes());
        self.bytes.extend_from_slice(&[0, 0]);
        to_writer_with_rep_id(&mut self.bytes, msg, RepresentationIdentifier::CDR_LE).map_err(|e| {
            BagError::Cdr {
                topic,
                error: e.to_string(),
            }
        })
    }

    fn put(&mut self, topic: usize, header: &MessageHeader) -> Result<(), BagError> {
        let m = self.mcap.as_mut().expect("open until close");
        m.write_to_known_channel(header, &self.bytes)
            .map_err(|e| BagError::Mcap {
                path: self.file.clone(),
                error: e.to_string(),
            })?;
        self.topics[topic].count += 1;
        Ok(())
    }

    fn write_metadata_yaml(&self) -> Result<(), BagError> {
        let (start, duration) = match self.time_range {
            Some((a, b)) => (a, b - a),
            None => (0, 0),
        };
        let total: u64 = self.topics.iter().map(|t| t.count).sum();
        let file_name = self
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let mut y = String::new();
        y.push_str("rosbag2_bagfile_information:\n");
        y.push_str(&format!("  version: {METADATA_VERSION}\n"));
        y.push_str("  storage_identifier: mcap\n");
        y.push_str(&format!("  duration:\n    nanoseconds: {duration}\n"));
        y.push_str(&format!(
            "  starting_time:\n    nanoseconds_since_epoch: {start}\n"
        ));
        y.push_str(&format!("  message_count: {total}\n"));
        y.push_str("  topics_with_message_count:\n");
        for t in &self.topics {
            y.push_str(&format!(
                "    - topic_metadata:\n        name: {}\n        type: {}\n        serialization_format: cdr\n        offered_qos_profiles: {}\n      message_count: {}\n",
                t.name,
                t.type_name,
                yaml_string(&self.opts.offered_qos_profiles),
                t.count
            ));
        }
        y.push_str("  compression_format: \"\"\n  compression_mode: \"\"\n");
        y.push_str(&format!("  relative_file_paths:\n    - {file_name}\n"));
        y.push_str(&format!(
            "  files:\n    - path: {file_name}\n      starting_time:\n        nanoseconds_since_epoch: {start}\n      duration:\n        nanoseconds: {duration}\n      message_count: {total}\n"
        ));
        let path = self.dir.join("metadata.yaml");
        let tmp = self.dir.join("metadata.yaml.tmp");
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |error| BagError::Io { path: p, error }
        };
        fs::write(&tmp, y).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }
}

/// A YAML double-quoted scalar.
fn yaml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Nanoseconds since the UNIX epoch now (the `log_time` of a step).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgs::Float64MultiArray;
    use mcap::MessageStream;
    use ros2_client::dds::rustdds::serialization::deserialize_from_cdr_with_rep_id;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dream-mpc-bag-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_step_round_trips_through_mcap_and_the_node_cdr() {
        let dir = tmp("roundtrip");
        let mut w = BagWriter::create(&dir, BagOptions::new(3, 1)).unwrap();
        for k in 0..5u64 {
            w.write_step(&Step {
                index: k,
                time_ns: 1_000 + 10 * k,
                observation: &[k as f64, 0.5, -1.0],
                action: Some(&[0.25 * k as f64]),
                reward: Some(k as f64 / 10.0),
                episode_start: (k == 0).then_some(0),
            })
            .unwrap();
        }
        let s = w.close().unwrap();
        assert_eq!(s.steps, 5);
        assert_eq!(
            s.messages,
            vec![
                (OBSERVATION_TOPIC, 5),
                (ACTION_TOPIC, 5),
                (REWARD_TOPIC, 5),
                (EPISODE_TOPIC, 1)
            ]
        );
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert_eq!(s.file, dir.join(format!("{name}_0.mcap")));
        let bytes = fs::read(&s.file).unwrap();
        let mut obs = Vec::new();
        for m in MessageStream::new(&bytes).unwrap() {
            let m = m.unwrap();
            assert_eq!(&m.data[..4], &[0, 1, 0, 0]);
            assert_eq!(m.log_time, 1_000 + 10 * m.sequence as u64);
            if m.channel.topic == OBSERVATION_TOPIC {
                assert_eq!(m.channel.schema.as_ref().unwrap().encoding, "ros2msg");
                let (a, _): (Float64MultiArray, usize) = deserialize_from_cdr_with_rep_id(
                    &m.data[4..],
                    RepresentationIdentifier::CDR_LE,
                )
                .unwrap();
                obs.push((m.sequence, a));
            }
        }
        assert_eq!(obs.len(), 5);
        assert_eq!(obs[3].1.data, vec![3.0, 0.5, -1.0]);
        assert_eq!(obs[3].1.layout.dim[0].label, "observation");
        let yaml = fs::read_to_string(dir.join("metadata.yaml")).unwrap();
        assert!(yaml.contains("message_count: 16"), "{yaml}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_used_folder_and_wrong_sizes_are_refused_by_name() {
        let dir = tmp("used");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("x"), b"x").unwrap();
        let e = BagWriter::create(&dir, BagOptions::new(3, 1))
            .err()
            .unwrap();
        assert!(matches!(e, BagError::NotEmpty(_)), "{e}");
        assert!(e.to_string().contains("not empty"));
        fs::remove_dir_all(&dir).unwrap();

        let dir = tmp("sizes");
        let mut o = BagOptions::new(3, 1);
        o.reward = false;
        let mut w = BagWriter::create(&dir, o).unwrap();
        let step = |index, obs: &'static [f64]| Step {
            index,
            time_ns: 5,
            observation: obs,
            action: Some(&[0.0]),
            reward: None,
            episode_start: None,
        };
        let e = w.write_step(&step(0, &[1.0, 2.0])).unwrap_err();
        assert!(e.to_string().contains(OBSERVATION_TOPIC), "{e}");
        w.write_step(&step(4, &[1.0, 2.0, 3.0])).unwrap();
        let e = w.write_step(&step(4, &[1.0, 2.0, 3.0])).unwrap_err();
        assert!(
            matches!(
                e,
                BagError::StepOrder {
                    step: 4,
                    previous: 4
                }
            ),
            "{e}"
        );
        let e = w
            .write_step(&Step {
                reward: Some(1.0),
                ..step(5, &[1.0, 2.0, 3.0])
            })
            .unwrap_err();
        assert!(e.to_string().contains(REWARD_TOPIC), "{e}");
        assert_eq!(w.close().unwrap().steps, 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
