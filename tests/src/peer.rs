//! A ROS 2 peer for the end-to-end tests: its own DDS participant on the
//! test's domain, subscribing to the controller's action and diagnostics
//! and publishing observations, with the node's QoS.

use dream_mpc::msgs::{self, DiagnosticArray, Float64MultiArray};
use dream_mpc::ros::config::Reliability;
use dream_mpc::ros::dds::{create_topic, qos};
use ros2_client::dds::rustdds::Topic;
use ros2_client::{
    Context, ContextOptions, MessageTypeName, Node, NodeName, NodeOptions, Publisher, QosProfile,
    Subscription,
};

/// One test peer (node `name` on `domain`).
pub struct Peer {
    _ctx: Context,
    /// The peer's node, for topics beyond the three above.
    pub node: Node,
}

/// A DDS participant on `domain` with one ROS 2 node named `name`.
pub fn participant(domain: u16, name: &str) -> (Context, Node) {
    let ctx = Context::with_options(ContextOptions::new().domain_id(domain)).unwrap();
    let node = ctx
        .new_node(
            NodeName::new("/", name).unwrap(),
            NodeOptions::new().enable_rosout(false),
        )
        .unwrap();
    (ctx, node)
}

/// Topic `name` of message type `ty` with the QoS `qos` (the node's
/// [`qos`] or a [`profile`](dream_mpc::ros::qos::profile)).
pub fn topic(node: &mut Node, name: &str, ty: MessageTypeName, qos: &QosProfile) -> Topic {
    create_topic(node, name, ty, qos, "test topic").unwrap()
}

/// A Float64MultiArray topic `name` with the node's QoS.
pub fn float_topic(node: &mut Node, name: &str, reliability: Reliability, depth: usize) -> Topic {
    let ty = msgs::float64_multi_array_type();
    topic(node, name, ty, &qos(reliability, depth))
}

/// A subscription to the controller's `/diagnostics` (reliable, depth 10).
pub fn diagnostics(node: &mut Node) -> Subscription<DiagnosticArray> {
    let ty = msgs::diagnostic_array_type();
    let t = topic(node, "/diagnostics", ty, &qos(Reliability::Reliable, 10));
    node.create_subscription(&t, None).unwrap()
}

impl Peer {
    pub fn new(domain: u16, name: &str) -> Peer {
        let (ctx, node) = participant(domain, name);
        Peer { _ctx: ctx, node }
    }
    /// The controller's actions on `/action` (reliable, depth 1).
    pub fn actions(&mut self) -> Subscription<Float64MultiArray> {
        let t = float_topic(&mut self.node, "/action", Reliability::Reliable, 1);
        self.node.create_subscription(&t, None).unwrap()
    }
    /// `/diagnostics` (reliable, depth 10).
    pub fn diagnostics(&mut self) -> Subscription<DiagnosticArray> {
        diagnostics(&mut self.node)
    }
    /// A publisher of observations on `/observation` (reliable, depth 1).
    pub fn observations(&mut self) -> Publisher<Float64MultiArray> {
        let t = float_topic(&mut self.node, "/observation", Reliability::Reliable, 1);
        self.node.create_publisher(&t, None).unwrap()
    }
}
