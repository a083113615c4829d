//! The controller's own differentiable executor: an ONNX module compiled into
//! a fixed sequence of kernels over `f32` buffers, each with a forward pass
//! and a backward (vector-Jacobian product) pass.
//!
//! Shape of the code (after tract's `register_all_ops`): one registry
//! (`registry.rs`) maps an ONNX op name to a builder; one file per op family
//! holds the builders with their kernels' forward and backward side by side:
//! - [`math`]: Gemm, MatMul, Add, Sub, Mul, Div (by a constant);
//! - [`nn`]: Relu, Tanh, Sigmoid, Elu, Mish, Softplus, LayerNormalization,
//!   Softmax (which with the surrounding Reshapes is TD-MPC2's SimNorm);
//! - [`array`]: Concat, Slice, Split, Reshape, Flatten, Identity, Constant.
//!
//! SiLU has no ONNX op: exporters write it as `x * Sigmoid(x)`, which the
//! Mul and Sigmoid kernels differentiate exactly; likewise Mish may arrive as
//! `x * Tanh(Softplus(x))`.
//!
//! Memory model: every value of the graph is a row-major `[rows, width]`
//! block (`width` = product of its per-row dims; the batch is dynamic). A
//! [`Tape`] holds all values of one forward pass for `batch` rows in each
//! of `slots` time slots (so a planner can run H steps forward and then
//! back-propagate through all of them), plus one gradient frame. It is
//! allocated once by [`Program::tape`]; [`Program::forward`] and
//! [`Program::backward`] never allocate. Reshape, Flatten and Identity are
//! aliases (no copy, no kernel).

pub mod array;
mod compile;
mod error;
pub mod gemm;
mod lower;
pub mod math;
pub mod nn;
mod program;
mod registry;
pub mod simd;

pub use error::CompileError;
pub use gemm::Weights;
pub use program::{Bwd, Fwd, Kernel, Loc, Program, Tape};
pub use registry::supported_ops;
