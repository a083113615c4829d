//! ONNX graph -> [`Program`]: decoding, the interface checks, the tract
//! type check, constants, and the per-node dispatch through the op
//! registry. (Running a module with tract as the reference executor is a
//! load-time check: [`crate::load::tract_forward`].) Start-up only.

use super::error::CompileError;
use super::gemm::Weights;
use super::lower::{onnx_err, tensor_to_konst, BVal, Konst, Lowering, NodeCtx, Value};
use super::program::Program;
use super::registry::lookup;
use crate::bundle::manifest::{ModuleSpec, TensorSpec};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tract_onnx::pb;
use tract_onnx::prelude::*;

impl Program {
    /// Compile the ONNX module `onnx_bytes` (interface `spec`, named `name`
    /// in errors). Parses and type-checks with tract, checks the manifest
    /// interface against the graph, refuses non-finite weights and any op
    /// outside the op registry. Start-up cost only.
    pub fn compile(
        name: &str,
        onnx_bytes: &[u8],
        spec: &ModuleSpec,
    ) -> Result<Program, CompileError> {
        compile(name, onnx_bytes, spec, Weights::F32)
    }

    /// [`Program::compile`] with the weight matrices stored as `weights`
    /// (bfloat16 halves the bytes each product streams; see [`Weights`]).
    pub fn compile_with(
        name: &str,
        onnx_bytes: &[u8],
        spec: &ModuleSpec,
        weights: Weights,
    ) -> Result<Program, CompileError> {
        compile(name, onnx_bytes, spec, weights)
    }
}

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
    // The kernel path (`DREAM_MPC_KERNELS`) and the element-wise tuning
    // (`DREAM_MPC_TUNING`) are resolved here, once, before any program
    // runs: reading the environment allocates, later reads are one atomic
    // load in the kernels. Nothing on the planner's path reads them.
    super::gemm::kernel_path();
    super::simd::tuned();
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
