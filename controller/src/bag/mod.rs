//! Robot logs: rosbag2 bags in MCAP (the contract is docs/BAGS.md).
//!
//! [`write`] records the node's and the sim's steps; [`read`] turns bags
//! (ours, or written by other rosbag2/MCAP tools) into episodes for
//! offline training. Nothing here is on the control path except the
//! bounded hand-off into the writer thread.

pub mod read;
pub mod recorder;
pub mod schema;
pub mod write;

/// The observation the planner used at a step (`std_msgs/msg/Float64MultiArray`).
pub const OBSERVATION_TOPIC: &str = "/dream_mpc/observation";
/// The action published/applied at a step (`std_msgs/msg/Float64MultiArray`).
pub const ACTION_TOPIC: &str = "/dream_mpc/action";
/// The reward earned by a step's action (`std_msgs/msg/Float64`).
pub const REWARD_TOPIC: &str = "/dream_mpc/reward";
/// Written at the first step of each episode (`std_msgs/msg/Int64`).
pub const EPISODE_TOPIC: &str = "/dream_mpc/episode";
