//! dream-mpc trainer (libtorch through tch): the TD-MPC2-style world model
//! ([`model`]), bundle export with libtorch reference vectors ([`export`])
//! and an independent tract check of exported bundles ([`verify`]).

pub mod export;
pub mod model;
pub mod verify;
