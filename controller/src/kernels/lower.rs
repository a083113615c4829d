//! ONNX graph -> kernel list: decoding, constants, interface checks, the
//! tract type check, and the per-node dispatch through the registry.
//! (Running a module with tract as the reference executor is a load-time
//! check: [`crate::load::tract_forward`].)

use super::CompileError;
use super::{lookup, Kernel, Loc, Program};
use crate::bundle::manifest::{ModuleSpec, TensorSpec};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tract_onnx::pb;
use tract_onnx::prelude::*;

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
/// Finds `s = Softplus(x); t = Tanh(s); y = Mul(x, t)` (either Mul order)
/// where `s` and `t` feed nothing else and are not graph outputs: the
/// opset-17 spelling of Mish. Maps the Softplus and Tanh node indices to
/// `None` and the Mul's index to a synthetic `Mish(x) -> y` node.
fn mish_triples(graph: &pb::GraphProto) -> HashMap<usize, Option<pb::NodeProto>> {
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for n in &graph.node {
        for i in &n.input {
            *uses.entry(i.as_str()).or_insert(0) += 1;
        }
    }
    for o in &graph.output {
        *uses.entry(o.name.as_str()).or_insert(0) += 1;
    }
    let producer: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let plain = |n: &pb::NodeProto| n.domain.is_empty() || n.domain == "ai.onnx";
    let mut out = HashMap::new();
    for (k, mul) in graph.node.iter().enumerate() {
        if mul.op_type != "Mul" || !plain(mul) || mul.input.len() != 2 || mul.output.len() != 1 {
            continue;
        }
        for (xi, ti) in [(0, 1), (1, 0)] {
            let (x, t) = (mul.input[xi].as_str(), mul.input[ti].as_str());
            let Some(&j) = producer.get(t) else { continue };
            let tanh = &graph.node[j];
            if tanh.op_type != "Tanh" || !plain(tanh) || uses.get(t) != Some(&1) {
                continue;
            }
            let Some(s) = tanh.input.first().map(String::as_str) else {
                continue;
            };
            let Some(&i) = producer.get(s) else { continue };
            let sp = &graph.node[i];
            if sp.op_type != "Softplus" || !plain(sp) || uses.get(s) != Some(&1) {
                continue;
            }
            if sp.input.first().map(String::as_str) != Some(x) || i >= j || j >= k {
                continue;
            }
            out.insert(i, None);
            out.insert(j, None);
            out.insert(
                k,
                Some(pb::NodeProto {
                    name: mul.name.clone(),
                    op_type: "Mish".into(),
                    input: vec![x.to_string()],
                    output: mul.output.clone(),
                    ..Default::default()
                }),
            );
            break;
        }
    }
    out
}

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
    values: HashMap<String, Value>,
    kernels: Vec<Box<dyn Kernel>>,
    stride: usize,
    /// Every location allocated, in frame order.
    locs: Vec<Loc>,
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

fn onnx_err(module: &str, message: impl Into<String>) -> CompileError {
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

/// `[N, size]` from a declared graph value, as (rank, Some(size)).
fn declared(v: &pb::ValueInfoProto) -> (usize, Option<i64>) {
    use pb::tensor_shape_proto::dimension::Value as D;
    let dims = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => {
            t.shape.as_ref().map(|s| s.dim.clone()).unwrap_or_default()
        }
        _ => vec![],
    };
    let last = dims.last().and_then(|d| match d.value {
        Some(D::DimValue(v)) => Some(v),
        _ => None,
    });
    (dims.len(), last)
}

fn check_interface(
    module: &str,
    what: &str,
    declared_vals: &[&pb::ValueInfoProto],
    spec: &[TensorSpec],
) -> Result<(), CompileError> {
    let names: Vec<&str> = declared_vals.iter().map(|v| v.name.as_str()).collect();
    let want: Vec<&str> = spec.iter().map(|s| s.name.as_str()).collect();
    if names != want {
        return Err(CompileError::Interface {
            module: module.into(),
            message: format!("manifest {what}s {want:?} but the ONNX graph declares {names:?}"),
        });
    }
    for (v, s) in declared_vals.iter().zip(spec) {
        if s.size == 0 {
            return Err(CompileError::Interface {
                module: module.into(),
                message: format!("{what} `{}` has size 0", s.name),
            });
        }
        let (rank, last) = declared(v);
        if rank != 2 || last.is_some_and(|l| l != s.size as i64) {
            return Err(CompileError::Interface {
                module: module.into(),
                message: format!(
                    "{what} `{}`: manifest says [N, {}] but the ONNX graph declares rank {rank} with last dim {last:?}",
                    s.name, s.size
                ),
            });
        }
    }
    Ok(())
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// Parse `proto` with tract and type-check it with inputs `[N, size]` from
/// `spec`; the output facts must be `[N, size]` too. Returns the typed model.
fn tract_check(
    module: &str,
    proto: &pb::ModelProto,
    spec: &ModuleSpec,
) -> Result<TypedModel, CompileError> {
    let typed = catch_unwind(AssertUnwindSafe(|| -> TractResult<TypedModel> {
        let mut m = tract_onnx::onnx().model_for_proto_model(proto)?;
        let n = m.symbols.sym("N");
        for (i, s) in spec.inputs.iter().enumerate() {
            m.set_input_fact(
                i,
                InferenceFact::dt_shape(f32::datum_type(), tvec![n.to_dim(), s.size.to_dim()]),
            )?;
        }
        m.into_typed()
    }))
    .map_err(|p| onnx_err(module, format!("tract panicked: {}", panic_message(p))))?
    .map_err(|e| onnx_err(module, format!("tract: {e:#}")))?;
    if typed.outputs.len() != spec.outputs.len() {
        return Err(CompileError::Interface {
            module: module.into(),
            message: format!(
                "manifest lists {} outputs, tract finds {}",
                spec.outputs.len(),
                typed.outputs.len()
            ),
        });
    }
    for (i, s) in spec.outputs.iter().enumerate() {
        let fact = typed
            .output_fact(i)
            .map_err(|e| onnx_err(module, format!("{e:#}")))?;
        let dims: Vec<TDim> = fact.shape.iter().cloned().collect();
        if fact.datum_type != f32::datum_type() || dims.len() != 2 || dims[1] != s.size.to_dim() {
            return Err(CompileError::Interface {
                module: module.into(),
                message: format!(
                    "output `{}`: manifest says [N, {}] f32, tract infers {:?} {:?}",
                    s.name, s.size, fact.datum_type, dims
                ),
            });
        }
    }
    Ok(typed)
}

fn decode(module: &str, bytes: &[u8]) -> Result<pb::ModelProto, CompileError> {
    pb::ModelProto::decode(bytes)
        .map_err(|e| onnx_err(module, format!("not a valid ONNX protobuf: {e}")))
}

pub(crate) fn compile(
    module: &str,
    bytes: &[u8],
    spec: &ModuleSpec,
    weights: super::gemm::Weights,
) -> Result<Program, CompileError> {
    let proto = decode(module, bytes)?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| onnx_err(module, "model has no graph"))?;
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version);
    if !(9..=21).contains(&opset) {
        return Err(onnx_err(
            module,
            format!("default-domain opset {opset} (supported: 9..=21)"),
        ));
    }
    let mut consts: HashMap<String, Konst> = HashMap::new();
    let mut params = 0;
    for t in &graph.initializer {
        let k = tensor_to_konst(module, t)?;
        params += k.f.len();
        consts.insert(t.name.clone(), k);
    }
    let real_inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|v| !consts.contains_key(&v.name))
        .collect();
    check_interface(module, "input", &real_inputs, &spec.inputs)?;
    let outs: Vec<&pb::ValueInfoProto> = graph.output.iter().collect();
    check_interface(module, "output", &outs, &spec.outputs)?;

    let mut lw = Lowering {
        values: HashMap::new(),
        kernels: vec![],
        stride: 0,
        locs: vec![],
        weights,
    };
    for (name, k) in consts {
        lw.define(&name, Value::Const(k));
    }
    let mut input_locs = vec![];
    for s in &spec.inputs {
        let loc = lw.alloc(s.size);
        input_locs.push(loc);
        lw.define(
            &s.name,
            Value::Batched(BVal {
                loc,
                shape: vec![s.size],
                fold: 0,
            }),
        );
    }
    let mut onnx_ops = BTreeMap::new();
    let fused = mish_triples(graph);
    for (i, node) in graph.node.iter().enumerate() {
        if let Some(f) = fused.get(&i) {
            // Part of a `x * Tanh(Softplus(x))` chain: the Mul lowers the
            // whole chain as one Mish kernel (one exp forward and backward
            // instead of log1p, expm1 and tanh); the other two lower nothing.
            if let Some(mish) = f {
                let ctx = NodeCtx {
                    node: mish,
                    module,
                    opset,
                };
                lookup("Mish").expect("Mish is registered")(&mut lw, &ctx)?;
            }
            *onnx_ops.entry(node.op_type.clone()).or_insert(0) += 1;
            continue;
        }
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(CompileError::UnsupportedOp {
                module: module.into(),
                node: node.name.clone(),
                op: format!("{}:{}", node.domain, node.op_type),
            });
        }
        let build = lookup(&node.op_type).ok_or_else(|| CompileError::UnsupportedOp {
            module: module.into(),
            node: node.name.clone(),
            op: node.op_type.clone(),
        })?;
        let ctx = NodeCtx {
            node,
            module,
            opset,
        };
        // Every op we lower writes its first output: a node without one
        // is malformed (found by the onnx fuzz target: a LayerNormalization
        // with no outputs indexed past the empty list).
        if node.output.first().is_none_or(|o| o.is_empty()) {
            return Err(ctx.unsupported("the node has no (first) output"));
        }
        build(&mut lw, &ctx)?;
        for o in &node.output {
            if !o.is_empty() && !lw.values.contains_key(o) {
                return Err(ctx.unsupported(format!("output `{o}` was not produced")));
            }
        }
        *onnx_ops.entry(node.op_type.clone()).or_insert(0) += 1;
    }
    // tract's type check comes after our own lowering, which refuses
    // out-of-range axes first: tract 0.23's LayerNormalization inference
    // loops `0..axis` and hangs on a corrupted huge axis (found by the
    // loader fuzz test).
    // Every graph output must name a value the graph defines: tract 0.23's
    // parser indexes its name table with it and panics otherwise (found by
    // the onnx fuzz target).
    if let Some(o) = graph
        .output
        .iter()
        .find(|o| !lw.values.contains_key(&o.name))
    {
        return Err(onnx_err(
            module,
            format!(
                "graph output `{}` is not produced by any node, input or initializer",
                o.name.chars().take(80).collect::<String>()
            ),
        ));
    }
    tract_check(module, &proto, spec)?;
    let mut output_locs = vec![];
    for s in &spec.outputs {
        match lw.values.get(&s.name) {
            Some(Value::Batched(b)) if b.width() == s.size => output_locs.push(b.loc),
            Some(Value::Batched(b)) => {
                return Err(CompileError::Interface {
                    module: module.into(),
                    message: format!(
                        "output `{}` has {} values per row, manifest says {}",
                        s.name,
                        b.width(),
                        s.size
                    ),
                })
            }
            Some(Value::Const(_)) => {
                return Err(CompileError::Interface {
                    module: module.into(),
                    message: format!(
                        "output `{}` is a constant (does not depend on any input)",
                        s.name
                    ),
                })
            }
            None => {
                return Err(CompileError::Interface {
                    module: module.into(),
                    message: format!("output `{}` is never computed", s.name),
                })
            }
        }
    }
    Ok(Program {
        name: module.into(),
        inputs: spec.inputs.clone(),
        outputs: spec.outputs.clone(),
        input_locs,
        output_locs,
        kernels: lw.kernels,
        stride: lw.stride,
        locs: lw.locs,
        params,
        onnx_ops,
    })
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
