//! # dream-mpc controller
//!
//! Robot-side half of Dream-MPC: loads a model bundle (ONNX + manifest),
//! compiles its modules into allocation-free forward and backward kernels,
//! and plans with gradient-based MPC at a fixed control rate.
//!
//! This crate must never depend on libtorch (checked by the test suite).
//!
//! The modules form a one-way stack (each imports only those below it;
//! `tests/layers.rs` checks it): `bundle` (format) <- `kernels` (compiler)
//! <- `load` (loading, verification) <- `planner` <- `agent` <- `ros`, with
//! `rng` at the bottom. See `controller/README.md`.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod agent;
pub mod bag;
pub mod bundle;
pub mod kernels;
pub mod load;
pub mod planner;
pub mod rng;
pub mod ros;
