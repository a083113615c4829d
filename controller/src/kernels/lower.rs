//! What an op's builder works with while a graph is lowered: the values
//! (batched or constant), the node being lowered ([`NodeCtx`]), and the
//! lowering state ([`Lowering`]: the value table, the frame allocator,
//! the kernel list). The driver that walks a graph is `compile.rs`.

use super::error::CompileError;
use super::program::{Kernel, Loc};
use std::collections::HashMap;
use tract_onnx::pb;

/// Builds kernels for one ONNX node (an entry of the op registry).
pub(crate) type Builder = fn(&mut Lowering, &NodeCtx) -> Result<(), CompileError>;

/// A batched value: `[N, ...]` with per-row dims `shape`. When `fold == 1`
/// the ONNX tensor is `[N * shape[0], shape[1..]]` (an exporter reshaped the
/// batch together with the first per-row dim, e.g. SimNorm as
/// `Reshape [-1, g]`); the memory layout is the same.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BVal {
    pub loc: Loc,
    pub shape: Vec<usize>,
    pub fold: usize,
}

impl BVal {
    pub fn width(&self) -> usize {
        self.loc.width
    }
    /// Rank of the ONNX tensor.
    pub fn onnx_rank(&self) -> usize {
        1 + self.shape.len() - self.fold
    }
    /// Non-batch ONNX dims.
    pub fn onnx_tail(&self) -> &[usize] {
        &self.shape[self.fold..]
    }
    /// Map an ONNX axis (negative allowed) to an index into `shape`;
    /// the batch axis is refused.
    pub fn axis(&self, ctx: &NodeCtx, a: i64) -> Result<usize, CompileError> {
        let r = self.onnx_rank() as i64;
        let a2 = if a < 0 { a + r } else { a };
        if a2 <= 0 || a2 >= r {
            return Err(ctx.unsupported(format!(
                "axis {a} of a rank-{r} tensor (the batch axis 0 cannot be split, sliced, concatenated or normalized)"
            )));
        }
        Ok(a2 as usize - 1 + self.fold)
    }
}

/// A constant tensor (initializer or Constant node).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Konst {
    pub dims: Vec<usize>,
    pub f: Vec<f32>,
    pub i: Vec<i64>,
}

impl Konst {
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
    /// Values as f32 (ints converted).
    pub fn floats(&self) -> Vec<f32> {
        if self.i.is_empty() {
            self.f.clone()
        } else {
            self.i.iter().map(|&v| v as f32).collect()
        }
    }
    /// Values as i64 (floats refused by the caller's check).
    pub fn ints(&self) -> Option<&[i64]> {
        if self.f.is_empty() || self.numel() == 0 {
            Some(&self.i)
        } else {
            None
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Value {
    Batched(BVal),
    Const(Konst),
}

/// One node being lowered, with attribute helpers and error constructors.
pub(crate) struct NodeCtx<'a> {
    pub node: &'a pb::NodeProto,
    pub module: &'a str,
    pub opset: i64,
}

impl NodeCtx<'_> {
    fn attr(&self, name: &str) -> Option<&pb::AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }
    pub fn attr_int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }
    pub fn attr_float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).map_or(default, |a| a.f)
    }
    pub fn attr_ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
    pub fn attr_tensor(&self, name: &str) -> Option<&pb::TensorProto> {
        self.attr(name).and_then(|a| a.t.as_ref())
    }
    /// Name of input `k`, if present and not the empty "absent" marker.
    pub fn input(&self, k: usize) -> Option<&str> {
        self.node
            .input
            .get(k)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    }
    pub fn n_inputs(&self) -> usize {
        self.node.input.len()
    }
    pub fn output(&self, k: usize) -> &str {
        &self.node.output[k]
    }
    pub fn unsupported(&self, reason: impl Into<String>) -> CompileError {
        CompileError::UnsupportedNode {
            module: self.module.into(),
            node: self.node.name.clone(),
            op: self.node.op_type.clone(),
            reason: reason.into(),
        }
    }
}

/// Lowering state: the value table, the frame allocator and the kernels.
pub(crate) struct Lowering {
    pub(super) values: HashMap<String, Value>,
    pub(super) kernels: Vec<Box<dyn Kernel>>,
    pub(super) stride: usize,
    /// Every location allocated, in frame order.
    pub(super) locs: Vec<Loc>,
    /// How weight matrices are stored ([`crate::kernels::gemm::Weights`]).
    pub weights: super::gemm::Weights,
}

impl Lowering {
    /// Reserve `width` floats per row in the frame.
    pub fn alloc(&mut self, width: usize) -> Loc {
        let l = Loc {
            off: self.stride,
            width,
        };
        self.stride += width;
        self.locs.push(l);
        l
    }
    pub fn value(&self, ctx: &NodeCtx, k: usize) -> Result<&Value, CompileError> {
        let name = ctx
            .input(k)
            .ok_or_else(|| ctx.unsupported(format!("missing input {k}")))?;
        self.values
            .get(name)
            .ok_or_else(|| ctx.unsupported(format!("input `{name}` is used before it is defined")))
    }
    pub fn batched(&self, ctx: &NodeCtx, k: usize) -> Result<BVal, CompileError> {
        match self.value(ctx, k)? {
            Value::Batched(b) => Ok(b.clone()),
            Value::Const(_) => Err(ctx.unsupported(format!(
                "input {k} must depend on the graph inputs, found a constant"
            ))),
        }
    }
    pub fn konst(&self, ctx: &NodeCtx, k: usize) -> Result<Konst, CompileError> {
        match self.value(ctx, k)? {
            Value::Const(c) => Ok(c.clone()),
            Value::Batched(_) => Err(ctx.unsupported(format!(
                "input {k} must be a constant (initializer), found a batched tensor"
            ))),
        }
    }
    pub fn ints(&self, ctx: &NodeCtx, k: usize) -> Result<Vec<i64>, CompileError> {
        let c = self.konst(ctx, k)?;
        c.ints()
            .map(|s| s.to_vec())
            .ok_or_else(|| ctx.unsupported(format!("input {k} must be an integer tensor")))
    }
    pub fn define(&mut self, name: &str, v: Value) {
        self.values.insert(name.to_string(), v);
    }
    /// Allocate and define batched output `k` of the node.
    pub fn out(&mut self, ctx: &NodeCtx, k: usize, shape: Vec<usize>, fold: usize) -> BVal {
        let width = shape.iter().product();
        let b = BVal {
            loc: self.alloc(width),
            shape,
            fold,
        };
        self.define(ctx.output(k), Value::Batched(b.clone()));
        b
    }
    pub fn push(&mut self, k: Box<dyn Kernel>) {
        self.kernels.push(k);
    }
}

pub(super) fn onnx_err(module: &str, message: impl Into<String>) -> CompileError {
    CompileError::Onnx {
        module: module.into(),
        message: message.into(),
    }
}

/// Decode a `TensorProto` into a constant; refuses NaN/Inf in float data.
pub(crate) fn tensor_to_konst(module: &str, t: &pb::TensorProto) -> Result<Konst, CompileError> {
    use pb::tensor_proto::DataType;
    if !t.external_data.is_empty() || t.data_location == Some(1) {
        return Err(onnx_err(
            module,
            format!(
                "tensor `{}` uses external data, which bundles do not allow",
                t.name
            ),
        ));
    }
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                onnx_err(
                    module,
                    format!("tensor `{}` has a negative dim {d}", t.name),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    // Sizes read from a file are checked: the product of the dims (zeros
    // counted as 1, so no partial product taken later can overflow either)
    // must fit in usize; a wrapped product would otherwise pass the length
    // check below and panic (or worse) in a kernel.
    if dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
        .is_none()
    {
        return Err(onnx_err(
            module,
            format!(
                "tensor `{}`: dims {dims:?} overflow the element count",
                t.name
            ),
        ));
    }
    let n: usize = dims.iter().product();
    let (f, i) = match DataType::try_from(t.data_type) {
        Ok(DataType::Float) => {
            let f: Vec<f32> = if !t.raw_data.is_empty() {
                t.raw_data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                t.float_data.clone()
            };
            if let Some((ix, v)) = f.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(CompileError::NonFinite {
                    module: module.into(),
                    tensor: t.name.clone(),
                    index: ix,
                    value: *v,
                });
            }
            (f, vec![])
        }
        Ok(DataType::Int64) => {
            let i: Vec<i64> = if !t.raw_data.is_empty() {
                t.raw_data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect()
            } else {
                t.int64_data.clone()
            };
            (vec![], i)
        }
        Ok(DataType::Int32) => {
            let i: Vec<i64> = if !t.raw_data.is_empty() {
                t.raw_data
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect()
            } else {
                t.int32_data.iter().map(|&v| v as i64).collect()
            };
            (vec![], i)
        }
        _ => {
            return Err(onnx_err(
                module,
                format!(
                    "tensor `{}` has data type {} (only float32, int64, int32 are supported)",
                    t.name, t.data_type
                ),
            ))
        }
    };
    let got = f.len().max(i.len());
    if got != n {
        return Err(onnx_err(
            module,
            format!(
                "tensor `{}`: dims {dims:?} need {n} values, found {got}",
                t.name
            ),
        ));
    }
    Ok(Konst { dims, f, i })
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// dims [2^62 + 96, 4] wrap to 384 elements in 64-bit arithmetic: with
    /// 384 floats the length check alone would pass. The checked product
    /// refuses it, naming the tensor.
    #[test]
    fn wrapping_dims_are_refused() {
        let t = pb::TensorProto {
            name: "w".into(),
            dims: vec![(1i64 << 62) + 96, 4],
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: vec![0.5; 384],
            ..Default::default()
        };
        let e = tensor_to_konst("dynamics", &t).unwrap_err().to_string();
        assert!(e.contains("`w`") && e.contains("overflow"), "{e}");
        // the same data with honest dims loads
        let ok = pb::TensorProto {
            dims: vec![96, 4],
            ..t
        };
        assert_eq!(tensor_to_konst("dynamics", &ok).unwrap().numel(), 384);
    }
}
