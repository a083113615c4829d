//! The control core: what happens on the control thread each period,
//! with no ROS type in sight (ros2_control's split: the controller's
//! `update` here, threads and transport in [`crate::ros`]).
//!
//! - [`settings`]: what the core is configured with ([`Settings`]);
//! - [`source`]: the action sources (the planner on a bundle, or a fixed
//!   law) and the planner settings in effect;
//! - [`tick`]: the tick ([`Controller::tick`]: observation checks, the
//!   source, the safe action, clamping and scaling to actuator units) and
//!   its statistics;
//! - [`slot`]: the latest-wins observation slot between the receiving
//!   thread and the tick;
//! - [`cycle`]: the loop's clock ([`ControlLoop::update`] at a fixed
//!   period: deadline, latency, jitter, overruns, summaries) over the
//!   [`Ports`] the transport provides.
//!
//! Start-up allocates; a tick allocates nothing (tests/ros_tick_alloc.rs).

pub mod cycle;
pub mod settings;
pub mod slot;
pub mod source;
pub mod tick;

pub use crate::planner::PlanStatus;
pub use cycle::{recorded, ControlLoop, ControlReport, Ports};
pub use settings::{Budget, FaultPolicy, OptionOverrides, Settings, SourceKind};
pub use slot::LatestWins;
pub use source::{
    describe_planner, effective_planner, make_source, ActionSource, LinearFeedback, PlannerSource,
    SourceError, SourceFault, TickStatus, Tunables, ZeroAction,
};
pub use tick::{
    status_name, ActionVec, Controller, Counts, FaultText, Histogram, Summary, TickKind, Window,
    FAULT_TEXT, MAX_ACTION,
};
