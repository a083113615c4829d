//! # dream-mpc-testkit
//!
//! What the tests and benchmarks of the workspace need and the robot must
//! not ship (a dev-dependency only; the controller library holds no test
//! fixtures):
//! - [`bundles`]: random TD-MPC2-shaped world models written as complete
//!   bundles through the controller's one bundle writer;
//! - [`lq`]: a linear-quadratic latent model written directly in Rust with
//!   a known optimum, for planner tests and benchmarks without a bundle;
//! - [`alloc`]: the one counting global allocator every "allocates
//!   nothing" test installs;
//! - [`peak`]: the measured per-core arithmetic peak the benchmarks state
//!   their efficiency against;
//! - [`vjp`]: the buffers of the kernel benchmarks' forward + VJP passes;
//! - [`imports`]: a crate's import graph, file by file, and its circles;
//! - [`fuzz`]: the entry points and seeds of the services and bag fuzz
//!   targets, shared with the replay of their corpora.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod alloc;
pub mod bags;
pub mod bundles;
pub mod fuzz;
pub mod imports;
pub mod lq;
pub mod peak;
pub mod vjp;
