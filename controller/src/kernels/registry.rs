//! The op registry: ONNX op name to the builder that lowers it, one
//! sub-table per op family (tract's `register_all_ops`, as one table).

use super::lower::Builder;
use super::{array, math, nn};

/// The op registry: ONNX op name to builder, one sub-table per family.
pub(crate) const REGISTRY: &[&[(&str, Builder)]] = &[math::OPS, nn::OPS, array::OPS];

/// Names of every supported ONNX op.
pub fn supported_ops() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().flat_map(|t| t.iter().map(|(n, _)| *n))
}

pub(crate) fn lookup(op: &str) -> Option<Builder> {
    REGISTRY
        .iter()
        .flat_map(|t| t.iter())
        .find(|(n, _)| *n == op)
        .map(|(_, b)| *b)
}
