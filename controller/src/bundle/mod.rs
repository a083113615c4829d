//! The model bundle: manifest schema, ONNX writing (used by the trainer and
//! by tests that hand-build models), loading and verification.

mod error;
pub mod load;
pub mod manifest;
pub mod onnx_build;
pub mod testing;

pub use error::BundleError;
pub use load::{Bundle, ReferenceReport};
