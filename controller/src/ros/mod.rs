//! ROS 2 side of the controller: messages, parameters, the control tick and
//! the node (`dream-mpc run`). Native DDS through ros2-client; no ROS
//! installation needed.

/// An error that is its message: `pub struct $name(pub String)`, shown as
/// the message, with `std::error::Error`.
macro_rules! message_error {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        pub struct $name(pub String);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::error::Error for $name {}
    };
}

pub mod cli;
pub mod config;
pub mod control;
pub mod dds;
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
