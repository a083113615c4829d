//! A tiny MCAP bag writer for tests of the bag reader and of offline
//! training (docs/BAGS.md): synthetic steps, CDR by the node's serializer
//! (RustDDS's `CDRSerializerAdapter`, as `ros2-client` publishes), and
//! hooks to break the log (wrong type, NaN, missing topic, gaps). It is
//! not the recorder (`dream_mpc::bag::write`): it writes whatever a test
//! asks for, including what a recorder must never write.

use dream_mpc::bag::{ACTION_TOPIC, EPISODE_TOPIC, OBSERVATION_TOPIC, REWARD_TOPIC};
use dream_mpc::msgs::Int64;
use dream_mpc::msgs::{Float64, Float64MultiArray};
use ros2_client::dds::rustdds::no_key::SerializerAdapter;
use ros2_client::dds::rustdds::CDRSerializerAdapter;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// `.msg` texts as rosbag2 stores them (dependencies after a line of `=`).
pub fn msg_def(ty: &str) -> String {
    let sep = "=".repeat(80);
    match ty {
        "std_msgs/msg/Float64MultiArray" => format!(
            "MultiArrayLayout layout\nfloat64[] data\n{sep}\nMSG: std_msgs/MultiArrayLayout\n\
             MultiArrayDimension[] dim\nuint32 data_offset\n{sep}\nMSG: std_msgs/MultiArrayDimension\n\
             string label\nuint32 size\nuint32 stride\n"
        ),
        "std_msgs/msg/Float64" => "float64 data\n".into(),
        "std_msgs/msg/Int64" => "int64 data\n".into(),
        "std_msgs/msg/String" => "string data\n".into(),
        other => panic!("no .msg text for {other}"),
    }
}

/// CDR with the 4-byte little-endian encapsulation header.
pub fn cdr<T: Serialize>(v: &T) -> Vec<u8> {
    let body = CDRSerializerAdapter::<T>::to_bytes(v).expect("CDR");
    let mut out = vec![0x00, 0x01, 0x00, 0x00];
    out.extend_from_slice(&body);
    out
}

/// One record: topic, step sequence, log time (ns), payload.
#[derive(Clone, Debug)]
pub struct Rec {
    pub topic: String,
    pub seq: u32,
    pub t: u64,
    pub data: Vec<u8>,
}

/// Synthetic steps of `episodes` episodes of `len + 1` steps each
/// (observations `obs(k)`, actions `act(k)`, rewards `rew(k)` of the global
/// step k; an episode record at each episode's first step), period
/// `period_ns` from `t0`.
pub struct Steps {
    pub episodes: usize,
    pub len: usize,
    pub obs_size: usize,
    pub action_size: usize,
    pub t0: u64,
    pub period_ns: u64,
    pub rewards: bool,
}

impl Steps {
    pub fn obs(&self, k: usize) -> Vec<f64> {
        (0..self.obs_size)
            .map(|i| ((k as f64) * 0.05 + i as f64).sin())
            .collect()
    }
    pub fn act(&self, k: usize) -> Vec<f64> {
        (0..self.action_size)
            .map(|i| ((k as f64) * 0.11 + 2.0 * i as f64).cos() * 0.9)
            .collect()
    }
    pub fn rew(&self, k: usize) -> f64 {
        0.5 + 0.5 * (k as f64 * 0.07).sin()
    }

    /// The records, in step order.
    pub fn records(&self) -> Vec<Rec> {
        let mut out = Vec::new();
        let n = self.episodes * (self.len + 1);
        for k in 0..n {
            let (seq, t) = (k as u32, self.t0 + k as u64 * self.period_ns);
            let rec = |topic: &str, data| Rec {
                topic: topic.into(),
                seq,
                t,
                data,
            };
            if k % (self.len + 1) == 0 {
                out.push(rec(
                    EPISODE_TOPIC,
                    cdr(&Int64 {
                        data: (k / (self.len + 1)) as i64,
                    }),
                ));
            }
            out.push(rec(
                OBSERVATION_TOPIC,
                cdr(&Float64MultiArray::vector("observation", self.obs(k))),
            ));
            out.push(rec(
                ACTION_TOPIC,
                cdr(&Float64MultiArray::vector("action", self.act(k))),
            ));
            if self.rewards {
                out.push(rec(REWARD_TOPIC, cdr(&Float64 { data: self.rew(k) })));
            }
        }
        out
    }
}

/// The standard type of each of our topics.
pub fn standard_type(topic: &str) -> &'static str {
    match topic {
        OBSERVATION_TOPIC | ACTION_TOPIC => "std_msgs/msg/Float64MultiArray",
        REWARD_TOPIC => "std_msgs/msg/Float64",
        EPISODE_TOPIC => "std_msgs/msg/Int64",
        _ => "std_msgs/msg/String",
    }
}

/// Write `recs` to one MCAP file at `path` (profile `ros2`, zstd chunks of
/// about `chunk_size` bytes), each topic's schema from `type_of(topic)`.
pub fn write_mcap(path: &Path, recs: &[Rec], chunk_size: u64, type_of: impl Fn(&str) -> String) {
    write_mcap_with(
        path,
        recs,
        chunk_size,
        Some(mcap::Compression::Zstd),
        type_of,
    )
}

/// [`write_mcap`] with the chunk compression given (`None`: chunks stored
/// as written, so a test can find and damage a value's bytes in place).
pub fn write_mcap_with(
    path: &Path,
    recs: &[Rec],
    chunk_size: u64,
    compression: Option<mcap::Compression>,
    type_of: impl Fn(&str) -> String,
) {
    let f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut w = mcap::WriteOptions::new()
        .profile("ros2")
        .library("dream-mpc-testkit")
        .compression(compression)
        .chunk_size(Some(chunk_size))
        .create(f)
        .expect("mcap writer");
    let mut channels: BTreeMap<String, u16> = BTreeMap::new();
    for r in recs {
        let id = match channels.get(&r.topic) {
            Some(&id) => id,
            None => {
                let ty = type_of(&r.topic);
                let schema = w
                    .add_schema(&ty, "ros2msg", msg_def(&ty).as_bytes())
                    .expect("schema");
                let id = w
                    .add_channel(schema, &r.topic, "cdr", &BTreeMap::new())
                    .expect("channel");
                channels.insert(r.topic.clone(), id);
                id
            }
        };
        w.write_to_known_channel(
            &mcap::records::MessageHeader {
                channel_id: id,
                sequence: r.seq,
                log_time: r.t,
                publish_time: r.t,
            },
            &r.data,
        )
        .expect("message");
    }
    w.finish().expect("finish");
}
