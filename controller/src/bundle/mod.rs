//! The model bundle *format*, the bottom of the controller's stack: the
//! manifest schema and its checks, ONNX writing, checksums, and the one
//! bundle writer (used by the trainer's export, tests and importers).
//! It imports nothing above it; compiling and verifying a bundle is
//! [`crate::load`]'s job.

pub mod confine;
mod error;
pub mod files;
pub mod manifest;
pub mod onnx_build;
pub mod planner_options;
pub mod plausibility;

pub use confine::Limits;
pub use error::BundleError;
pub use files::{read_manifest, sha256_hex, write_bundle, BuiltModule};
