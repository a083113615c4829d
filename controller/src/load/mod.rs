//! Loading and verification, above the kernels: [`Bundle::load`] reads
//! the manifest (checked and checksummed by [`crate::bundle`]), compiles
//! every module with [`crate::kernels`] and keeps the result, all or
//! nothing; [`Bundle::verify_references`] runs the libtorch reference
//! vectors through the compiled kernels, forward and VJP;
//! [`Bundle::tract_agreement`] compares them with tract, the reference
//! ONNX executor ([`tract_forward`]). Start-up cost only.
//!
//! A loaded [`Bundle`] holds its compiled modules as `Arc<Program>`:
//! consumers (the planner's model, the agent) keep their own handles, so a
//! bundle can be dropped, shared in an `Arc` or moved to another thread
//! after the agent is built; nothing borrows it for `'static`.

mod bundle;
mod error;
mod verify;

pub use bundle::{Bundle, BF16_REFERENCE_TOLERANCE, REFERENCE_TOLERANCE};
pub use error::LoadError;
pub use verify::{
    run_module, scaled_error, tract_error, tract_forward, ModuleAgreement, ReferenceReport,
};
