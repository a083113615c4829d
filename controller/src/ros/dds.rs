//! DDS helpers below the node, its parameter services and the sim's robot
//! node: the QoS profile of a configured reliability, topics, publishers,
//! and subscriptions with bounded reception (docs/rustdds-patch.md), the
//! domain id, and the error they share. Start-up only.

use super::config::Reliability;
use ros2_client::dds::rustdds::Topic;
use ros2_client::qos::{Durability, History, WhenFull};
use ros2_client::{Context, MessageTypeName, Name, Node, Publisher, QosProfile, Subscription};
use std::sync::Arc;

/// QoS profile of the configured reliability and depth.
pub fn qos(rel: Reliability, depth: usize) -> QosProfile {
    let q = QosProfile::publisher_default()
        .durability(Durability::Volatile)
        .history(History::KeepLast { depth });
    match rel {
        Reliability::Reliable => q.reliability_reliable(WhenFull::DEFAULT),
        Reliability::BestEffort => q.reliability_best_effort(),
    }
}

/// The reception limits of one reader and what DDS dropped under them.
#[derive(Clone)]
pub struct ReaderLimit {
    /// The DDS topic name (`rt/...`, `rq/...Request`).
    pub topic: String,
    pub max_bytes: usize,
    pub stats: Arc<ros2_client::dds::rustdds::ReceptionStats>,
}

impl ReaderLimit {
    /// One stderr line when anything was dropped (tests read it).
    pub fn report(&self) {
        let (over, unmatched) = (
            self.stats.oversized_samples(),
            self.stats.unmatched_fragments(),
        );
        if over + unmatched > 0 {
            eprintln!(
                "dds: {} reader dropped {over} oversized samples (over {} bytes) and \
                 {unmatched} fragments from unmatched writers",
                self.topic, self.max_bytes
            );
        }
    }
}

/// Bounds the readers of DDS topic `dds_topic` created after this call
/// (docs/rustdds-patch.md): samples over `max_bytes` are dropped before
/// anything is allocated, at most 4 partial samples per writer and 8
/// writers with partial samples, so reassembly holds at most 32 x
/// `max_bytes`. Start-up only.
pub fn limit_reception(ctx: &Context, dds_topic: &str, max_bytes: usize) -> ReaderLimit {
    use ros2_client::dds::rustdds::ReceptionLimits;
    let stats = ctx.domain_participant().set_reception_limits(
        dds_topic,
        ReceptionLimits {
            max_sample_size: max_bytes,
            max_partial_samples_per_writer: 4,
            max_fragmenting_writers: 8,
            ..ReceptionLimits::DEFAULT
        },
    );
    ReaderLimit {
        topic: dds_topic.to_string(),
        max_bytes,
        stats,
    }
}

message_error!(
    /// Why the node could not run.
    #[derive(Debug)]
    NodeError
);

pub(crate) fn err<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> NodeError + '_ {
    move |e| NodeError(format!("{what}: {e:?}"))
}

/// ROS domain id from `ROS_DOMAIN_ID` (0 when unset).
pub fn domain_id_from_env() -> Result<u16, NodeError> {
    match std::env::var("ROS_DOMAIN_ID") {
        Err(_) => Ok(0),
        Ok(s) if s.is_empty() => Ok(0),
        Ok(s) => {
            s.parse::<u16>().ok().filter(|d| *d <= 232).ok_or_else(|| {
                NodeError(format!("ROS_DOMAIN_ID='{s}' is not an integer in [0, 232]"))
            })
        }
    }
}

/// The topic `name` of message type `ty` with `qos` on `node`; an error
/// names the bad topic name or `what`. Start-up only.
pub fn create_topic(
    node: &mut Node,
    name: &str,
    ty: MessageTypeName,
    qos: &QosProfile,
    what: &str,
) -> Result<Topic, NodeError> {
    let name = Name::parse(name).map_err(err("topic name"))?;
    node.create_topic(&name, ty, qos).map_err(err(what))
}

/// A publisher of `M` on a new topic `name` of type `ty` with `qos`; an
/// error names the `what` topic or publisher. Start-up only.
pub fn create_publisher<M: serde::Serialize>(
    node: &mut Node,
    name: &str,
    ty: MessageTypeName,
    qos: &QosProfile,
    what: &str,
) -> Result<Publisher<M>, NodeError> {
    let topic = create_topic(node, name, ty, qos, &format!("{what} topic"))?;
    node.create_publisher::<M>(&topic, None)
        .map_err(err(&format!("{what} publisher")))
}

/// Largest serialized sample of a `std_msgs/Float64` or `Int64` topic
/// that DDS accepts: 4 bytes of encapsulation and 8 of value, with room
/// for alignment and a vendor's padding.
pub const SCALAR_SAMPLE_BYTES: usize = 64;

/// Largest serialized `Float64MultiArray` of `n` values DDS accepts: the
/// values as f64, twice over, plus 64 KiB for the layout and labels.
pub const fn max_array_bytes(n: usize) -> usize {
    65_536 + 2 * 8 * n
}

/// A subscription to `M` on a new topic `name` of type `ty` with `qos`,
/// whose reader accepts samples of at most `max_bytes`
/// ([`limit_reception`]); an error names the `what` topic or
/// subscription. Start-up only.
pub fn create_subscription<M: 'static>(
    ctx: &Context,
    node: &mut Node,
    name: &str,
    ty: MessageTypeName,
    qos: &QosProfile,
    what: &str,
    max_bytes: usize,
) -> Result<(Subscription<M>, ReaderLimit), NodeError> {
    use ros2_client::dds::rustdds::TopicDescription;
    let topic = create_topic(node, name, ty, qos, &format!("{what} topic"))?;
    let limit = limit_reception(ctx, &topic.name(), max_bytes);
    let sub = node
        .create_subscription::<M>(&topic, None)
        .map_err(err(&format!("{what} subscription")))?;
    Ok((sub, limit))
}
