//! The model bundle: manifest schema, ONNX writing (used by the trainer and
//! by tests that hand-build models), and loading.

pub mod manifest;
pub mod onnx_build;
