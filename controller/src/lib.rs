//! # dream-mpc controller
//!
//! Robot-side half of Dream-MPC: loads a model bundle (ONNX + manifest),
//! compiles its modules into allocation-free forward and backward kernels,
//! and plans with gradient-based MPC at a fixed control rate.
//!
//! This crate must never depend on libtorch (checked by the test suite).

pub mod agent;
pub mod bundle;
pub mod kernels;
pub mod planner;
pub mod rng;
pub mod ros;
