//! The kernel compiler's error: every variant names the module, and where
//! a node is at fault, the node and its op. Converts into the loader's
//! [`crate::load::LoadError`] (the conversion lives there: nothing here
//! points up the stack).

use std::fmt;

/// Why the kernel compiler refused one ONNX module.
#[derive(Debug, Clone, PartialEq)]
pub enum CompileError {
    /// The ONNX bytes do not decode or do not type-check (tract's message).
    Onnx { module: String, message: String },
    /// An op outside the kernel registry.
    UnsupportedOp {
        module: String,
        node: String,
        op: String,
    },
    /// A supported op used in an unsupported way (attribute, shape, ...).
    UnsupportedNode {
        module: String,
        node: String,
        op: String,
        reason: String,
    },
    /// A weight is NaN or infinite.
    NonFinite {
        module: String,
        tensor: String,
        index: usize,
        value: f32,
    },
    /// The module's declared interface and its ONNX graph disagree.
    Interface { module: String, message: String },
}

impl CompileError {
    /// The module at fault.
    pub fn module(&self) -> &str {
        match self {
            CompileError::Onnx { module, .. }
            | CompileError::UnsupportedOp { module, .. }
            | CompileError::UnsupportedNode { module, .. }
            | CompileError::NonFinite { module, .. }
            | CompileError::Interface { module, .. } => module,
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::Onnx { module, message } => {
                write!(f, "module `{module}`: invalid ONNX: {message}")
            }
            CompileError::UnsupportedOp { module, node, op } => {
                write!(
                    f,
                    "module `{module}`: unsupported op `{op}` (node `{node}`)"
                )
            }
            CompileError::UnsupportedNode {
                module,
                node,
                op,
                reason,
            } => {
                write!(
                    f,
                    "module `{module}`: op `{op}` (node `{node}`) not supported as used: {reason}"
                )
            }
            CompileError::NonFinite {
                module,
                tensor,
                index,
                value,
            } => {
                write!(
                    f,
                    "module `{module}`: weight `{tensor}`[{index}] is {value}"
                )
            }
            CompileError::Interface { module, message } => {
                write!(f, "module `{module}`: interface mismatch: {message}")
            }
        }
    }
}

impl std::error::Error for CompileError {}
