//! The plumbing point mass served to the ROS 2 tests; one implementation
//! for the workspace lives in [`crate::point_mass`].

pub use crate::point_mass::PointMass;
