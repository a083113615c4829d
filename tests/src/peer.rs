//! A ROS 2 peer for the end-to-end tests: its own DDS participant on the
//! test's domain, subscribing to the controller's action and diagnostics
//! and publishing observations, with the node's QoS.

use dream_mpc::ros::config::Reliability;
use dream_mpc::ros::msgs::{self, DiagnosticArray, Float64MultiArray};
use dream_mpc::ros::node::qos;
use ros2_client::{
    Context, ContextOptions, Name, Node, NodeName, NodeOptions, Publisher, Subscription,
};

/// One test peer (node `name` on `domain`).
pub struct Peer {
    _ctx: Context,
    /// The peer's node, for topics beyond the three above.
    pub node: Node,
}

impl Peer {
    pub fn new(domain: u16, name: &str) -> Peer {
        let ctx = Context::with_options(ContextOptions::new().domain_id(domain)).unwrap();
        let node = ctx
            .new_node(
                NodeName::new("/", name).unwrap(),
                NodeOptions::new().enable_rosout(false),
            )
            .unwrap();
        Peer { _ctx: ctx, node }
    }
    /// The controller's actions on `/action` (reliable, depth 1).
    pub fn actions(&mut self) -> Subscription<Float64MultiArray> {
        let t = self
            .node
            .create_topic(
                &Name::parse("/action").unwrap(),
                msgs::float64_multi_array_type(),
                &qos(Reliability::Reliable, 1),
            )
            .unwrap();
        self.node.create_subscription(&t, None).unwrap()
    }
    /// `/diagnostics` (reliable, depth 10).
    pub fn diagnostics(&mut self) -> Subscription<DiagnosticArray> {
        let t = self
            .node
            .create_topic(
                &Name::parse("/diagnostics").unwrap(),
                msgs::diagnostic_array_type(),
                &qos(Reliability::Reliable, 10),
            )
            .unwrap();
        self.node.create_subscription(&t, None).unwrap()
    }
    /// A publisher of observations on `/observation` (reliable, depth 1).
    pub fn observations(&mut self) -> Publisher<Float64MultiArray> {
        let t = self
            .node
            .create_topic(
                &Name::parse("/observation").unwrap(),
                msgs::float64_multi_array_type(),
                &qos(Reliability::Reliable, 1),
            )
            .unwrap();
        self.node.create_publisher(&t, None).unwrap()
    }
}
