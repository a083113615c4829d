//! DDS helpers below the node and its parameter services: the QoS profile
//! of a configured reliability, and bounded reception for a reader
//! (docs/rustdds-patch.md). Start-up only.

use super::config::Reliability;
use ros2_client::qos::{Durability, History, WhenFull};
use ros2_client::{Context, QosProfile};
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
