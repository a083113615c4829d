//! The ROS 2 transport of the controller: the node's lifecycle and threads
//! (`dream-mpc run`), the DDS helpers, QoS, names, parameters (the table,
//! the file reader, the services) and scheduling. The control tick itself
//! is [`crate::control`], which knows no ROS type; the messages are
//! [`crate::msgs`]. Native DDS through ros2-client; no ROS installation
//! needed.

pub mod cli;
pub mod config;
pub mod dds;
pub mod heap;
pub mod names;
pub mod node;
pub mod params;
pub mod qos;
pub mod realtime;
pub mod share;

pub use config::{Config, ConfigError, Params};
pub use node::{run, RunReport, StopHandle};
