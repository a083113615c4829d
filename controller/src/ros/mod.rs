//! ROS 2 side of the controller: messages, parameters, the control tick and
//! the node (`dream-mpc run`). Native DDS through ros2-client; no ROS
//! installation needed.

pub mod cli;
pub mod config;
pub mod control;
pub mod heap;
pub mod msgs;
pub mod names;
pub mod node;
pub mod params;
pub mod qos;
pub mod realtime;
pub mod share;
pub mod slot;

pub use config::{Config, ConfigError, Params};
pub use control::{ActionSource, Controller, PlanStatus, Summary, TickKind, TickStatus};
pub use node::{run, RunReport, StopHandle};
