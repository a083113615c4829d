//! QoS of the node's topics as ROS 2 names it (`qos.<topic>.reliability |
//! durability | depth`), and the report of incompatible QoS.
//!
//! DDS matches a writer and a reader only when what the writer offers is at
//! least what the reader requests (reliable covers best effort, transient
//! local covers volatile, ...); an unmatched pair exchanges nothing and, in ROS 2,
//! says nothing either unless someone listens for RustDDS's
//! `RemoteWriterQosIncompatible` / `RemoteReaderQosIncompatible` events.
//! [`QosWatch`] listens: each incompatible peer discovered on one of our
//! topics is logged once per event with the topic, the peer and the policy
//! (both sides' values), and counted for `/diagnostics`
//! (`qos_incompatible`). It runs on the DDS-in thread, never on the control
//! thread.

use super::config::{Durability as Dur, Reliability, TopicQos};
use ros2_client::dds::rustdds::{
    policy, qos::QosPolicyId, DomainParticipant, DomainParticipantStatusEvent,
    DomainParticipantStatusListener, QosPolicies, StatusEvented, GUID,
};
use ros2_client::{
    qos::{Durability, History, WhenFull},
    QosProfile,
};
use std::sync::atomic::{AtomicU64, Ordering};

/// The ros2-client profile of a topic's configured QoS.
pub fn profile(q: &TopicQos) -> QosProfile {
    let p = QosProfile::publisher_default()
        .durability(match q.durability {
            Dur::Volatile => Durability::Volatile,
            Dur::TransientLocal => Durability::TransientLocal,
        })
        .history(History::KeepLast { depth: q.depth });
    match q.reliability {
        Reliability::Reliable => p.reliability_reliable(WhenFull::DEFAULT),
        Reliability::BestEffort => p.reliability_best_effort(),
    }
}

/// Whether our entity reads or writes its topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Subscription,
    Publisher,
}

/// One of our readers or writers, by GUID.
#[derive(Clone, Debug)]
pub struct Ours {
    pub guid: GUID,
    pub topic: String,
    pub role: Role,
}

/// One incompatible peer, as reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Incompatible {
    pub topic: String,
    pub role: Role,
    /// The peer's participant (GUID prefix, hex).
    pub peer: String,
    /// The first policy that failed (DDS checks them in a fixed order).
    pub policy: String,
    pub requested: String,
    pub offered: String,
}

impl std::fmt::Display for Incompatible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ours, peer) = match self.role {
            Role::Subscription => ("our subscription requests", "writer offers"),
            Role::Publisher => ("our publisher offers", "reader requests"),
        };
        let (mine, theirs) = match self.role {
            Role::Subscription => (&self.requested, &self.offered),
            Role::Publisher => (&self.offered, &self.requested),
        };
        write!(
            f,
            "incompatible QoS on {}: {ours} {} {mine}, peer {} {peer} {theirs}; not matched, \
             nothing flows between them (set qos.{}.{} or the peer's QoS)",
            self.topic,
            self.policy,
            self.peer,
            self.topic_key(),
            self.policy
        )
    }
}

impl Incompatible {
    /// `observation`, `action` or `diagnostics` for the hint in the log
    /// line: the parameter group of the topic.
    fn topic_key(&self) -> &'static str {
        match self.role {
            Role::Subscription => "observation",
            Role::Publisher if self.topic.contains("diagnostics") => "diagnostics",
            Role::Publisher => "action",
        }
    }
}

fn policy_name(id: QosPolicyId) -> &'static str {
    match id {
        QosPolicyId::Durability => "durability",
        QosPolicyId::Presentation => "presentation",
        QosPolicyId::Deadline => "deadline",
        QosPolicyId::LatencyBudget => "latency_budget",
        QosPolicyId::Ownership => "ownership",
        QosPolicyId::Liveliness => "liveliness",
        QosPolicyId::TimeBasedFilter => "time_based_filter",
        QosPolicyId::Reliability => "reliability",
        QosPolicyId::DestinationOrder => "destination_order",
        QosPolicyId::History => "history",
        QosPolicyId::ResourceLimits => "resource_limits",
        QosPolicyId::Lifespan => "lifespan",
        QosPolicyId::Representation => "data_representation",
        _ => "other",
    }
}

/// The value of policy `id` in `q`, as ROS 2 users name it (absent = the
/// DDS default).
fn policy_value(id: QosPolicyId, q: &QosPolicies) -> String {
    match id {
        QosPolicyId::Reliability => match q.reliability() {
            Some(policy::Reliability::Reliable { .. }) => "reliable".into(),
            Some(policy::Reliability::BestEffort) | None => "best_effort".into(),
        },
        QosPolicyId::Durability => match q.durability() {
            Some(policy::Durability::Volatile) | None => "volatile".into(),
            Some(policy::Durability::TransientLocal) => "transient_local".into(),
            Some(policy::Durability::Transient) => "transient".into(),
            Some(policy::Durability::Persistent) => "persistent".into(),
        },
        QosPolicyId::Deadline => format!("{:?}", q.deadline()),
        QosPolicyId::Liveliness => format!("{:?}", q.liveliness()),
        QosPolicyId::Ownership => format!("{:?}", q.ownership()),
        QosPolicyId::DestinationOrder => format!("{:?}", q.destination_order()),
        QosPolicyId::Presentation => format!("{:?}", q.presentation()),
        _ => "(see DDS)".into(),
    }
}

/// Listens for incompatible-QoS events of the participant about our
/// entities (allocates when it reports; DDS-in thread only).
pub struct QosWatch {
    listener: DomainParticipantStatusListener,
    ours: Vec<Ours>,
}

impl QosWatch {
    pub fn new(participant: &DomainParticipant, ours: Vec<Ours>) -> Self {
        QosWatch {
            listener: participant.status_listener(),
            ours,
        }
    }

    /// Drain the participant's status events; log each incompatible peer
    /// on one of our topics to stderr and add it to `counter`. Returns the
    /// reports (for tests). Cost: O(events); allocates per report.
    pub fn poll(&mut self, counter: &AtomicU64) -> Vec<Incompatible> {
        let mut out = Vec::new();
        while let Some(ev) = self.listener.try_recv_status() {
            let (local, remote, requested, offered) = match ev {
                DomainParticipantStatusEvent::RemoteWriterQosIncompatible {
                    local_reader,
                    remote_writer,
                    requested_qos,
                    offered_qos,
                } => (local_reader, remote_writer, requested_qos, offered_qos),
                DomainParticipantStatusEvent::RemoteReaderQosIncompatible {
                    local_writer,
                    remote_reader,
                    requested_qos,
                    offered_qos,
                } => (local_writer, remote_reader, requested_qos, offered_qos),
                _ => continue,
            };
            let Some(o) = self.ours.iter().find(|o| o.guid == local) else {
                continue;
            };
            let id = offered
                .compliance_failure_wrt(&requested)
                .unwrap_or(QosPolicyId::Reliability);
            let r = Incompatible {
                topic: o.topic.clone(),
                role: o.role,
                peer: format!("{:?}", remote.prefix),
                policy: policy_name(id).into(),
                requested: policy_value(id, &requested),
                offered: policy_value(id, &offered),
            };
            eprintln!("dream-mpc run: {r}");
            counter.fetch_add(1, Ordering::Relaxed);
            out.push(r);
        }
        out
    }
}
