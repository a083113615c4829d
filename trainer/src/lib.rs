//! dream-mpc trainer (libtorch through tch): the TD-MPC2-style world model
//! ([`model`]), bundle export with libtorch reference vectors ([`export`]),
//! an independent tract check of exported bundles ([`verify`]), online
//! training ([`train`]) with its learning-curve plot ([`plot`]) and task
//! lookup ([`tasks`]).

pub mod export;
pub mod model;
pub mod plot;
pub mod reference_planner;
pub mod tasks;
pub mod train;
pub mod verify;
