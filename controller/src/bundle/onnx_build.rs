//! Writing ONNX graphs from Rust, with no Python: a thin builder over the
//! prost-generated ONNX types in `tract_onnx::pb`.
//!
//! Used by the trainer to export its modules and by tests that hand-build
//! small models (linear dynamics, quadratic reward, ...). The block and
//! activation emitters ([`GraphBuilder::norm_act`], [`GraphBuilder::act`])
//! are the one spelling of TD-MPC2's blocks in ONNX. Every graph input
//! and output is a `[N, size]` float tensor with a dynamic batch `N`, as the
//! bundle contract ([`super::manifest`]) requires.
//!
//! ```
//! use dream_mpc::bundle::onnx_build::GraphBuilder;
//! let mut g = GraphBuilder::new("reward");
//! let z = g.input("z", 2);
//! let w = [1.0f32, -1.0]; // out x in, like torch.nn.Linear.weight
//! let r = g.linear(&z, &w, Some(&[0.5]), 2, 1);
//! g.output(&r, "r", 1);
//! let bytes = g.finish().to_bytes();
//! assert!(!bytes.is_empty());
//! ```

use prost::Message;
use tract_onnx::pb;

/// Default opset the builder declares (LayerNormalization needs >= 17).
pub const OPSET: i64 = 17;

/// Name of the dynamic batch dimension on every input and output.
pub const BATCH_DIM: &str = "N";

/// Activation after a layer, as written by [`GraphBuilder::act`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// The ONNX `Mish` op (standard from opset 18; tract reads it at 17).
    Mish,
    /// Mish written as `Mul(x, Tanh(Softplus(x)))`, valid at any opset.
    MishOps,
    /// Softmax in groups of this size (TD-MPC2's SimNorm):
    /// `Reshape [-1, d/g, g] -> Softmax(axis=-1) -> Reshape [-1, d]`.
    SimNorm(usize),
    /// None.
    Identity,
}

/// `LayerNormalization(axis = -1)` parameters of one layer.
#[derive(Clone, Copy, Debug)]
pub struct Norm<'a> {
    pub scale: &'a [f32],
    pub bias: &'a [f32],
    pub epsilon: f32,
}

/// Incrementally builds one ONNX graph.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    name: String,
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    inputs: Vec<pb::ValueInfoProto>,
    outputs: Vec<pb::ValueInfoProto>,
    counter: usize,
}

/// A finished ONNX model.
#[derive(Debug, Clone)]
pub struct OnnxModel(pub pb::ModelProto);

impl OnnxModel {
    /// Protobuf bytes of the model.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.encode_to_vec()
    }

    /// Write the model to `path`.
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_bytes())
    }
}

fn value_info(name: &str, size: usize) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value as DimValue, Dimension};
    let dims = vec![
        Dimension {
            denotation: String::new(),
            value: Some(DimValue::DimParam(BATCH_DIM.to_string())),
        },
        Dimension {
            denotation: String::new(),
            value: Some(DimValue::DimValue(size as i64)),
        },
    ];
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim: dims }),
            })),
        }),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_float(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

/// A list-of-integers attribute.
pub fn attr_ints(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

/// A float tensor (row-major) for initializers.
pub fn float_tensor(name: &str, dims: &[usize], data: &[f32]) -> pb::TensorProto {
    assert_eq!(
        dims.iter().product::<usize>(),
        data.len(),
        "tensor {name}: dims {dims:?} do not match {} values",
        data.len()
    );
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: data.to_vec(),
        ..Default::default()
    }
}

/// An int64 tensor (for Reshape shapes, Slice starts/ends, Split sizes).
pub fn int64_tensor(name: &str, data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        int64_data: data.to_vec(),
        ..Default::default()
    }
}

/// A `(z, a) -> y` module graph (dynamics, reward, Q ensemble): inputs
/// `z` `[N, latent]` and `a` `[N, action]` joined by a `Concat`, then
/// `heads` branches (`head(g, za, k)` emits branch `k` and returns its
/// value), concatenated head-major when there is more than one, as output
/// `out_name` of row size `out_size`.
pub fn za_module(
    name: &str,
    (latent, action): (usize, usize),
    heads: usize,
    mut head: impl FnMut(&mut GraphBuilder, &str, usize) -> String,
    (out_name, out_size): (&str, usize),
) -> OnnxModel {
    let mut g = GraphBuilder::new(name);
    let z = g.input("z", latent);
    let a = g.input("a", action);
    let za = g.node("Concat", &[&z, &a], vec![attr_int("axis", 1)]);
    let ys: Vec<String> = (0..heads).map(|k| head(&mut g, &za, k)).collect();
    let y = if ys.len() == 1 {
        ys[0].clone()
    } else {
        let yr: Vec<&str> = ys.iter().map(|s| s.as_str()).collect();
        g.node("Concat", &yr, vec![attr_int("axis", 1)])
    };
    g.output(&y, out_name, out_size);
    g.finish()
}

impl GraphBuilder {
    /// An empty graph called `name` (also used as the prefix of value names).
    pub fn new(name: &str) -> Self {
        GraphBuilder {
            name: name.into(),
            ..Default::default()
        }
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("{}/{}_{}", self.name, hint, self.counter)
    }

    /// Declare a `[N, size]` float graph input; returns its value name.
    pub fn input(&mut self, name: &str, size: usize) -> String {
        self.inputs.push(value_info(name, size));
        name.to_string()
    }

    /// Add a float initializer (a constant weight); returns its value name.
    pub fn constant(&mut self, hint: &str, dims: &[usize], data: &[f32]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(float_tensor(&name, dims, data));
        name
    }

    /// Add an int64 initializer; returns its value name.
    pub fn constant_i64(&mut self, hint: &str, data: &[i64]) -> String {
        let name = self.fresh(hint);
        self.initializers.push(int64_tensor(&name, data));
        name
    }

    /// Add a node with one output; returns the output's value name.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<pb::AttributeProto>) -> String {
        self.node_n(op, inputs, 1, attrs).pop().expect("one output")
    }

    /// Add a node with `n_out` outputs; returns their value names.
    pub fn node_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        n_out: usize,
        attrs: Vec<pb::AttributeProto>,
    ) -> Vec<String> {
        let outs: Vec<String> = (0..n_out)
            .map(|k| self.fresh(&format!("{}{}", op.to_lowercase(), k)))
            .collect();
        let name = self.fresh(op);
        self.nodes.push(pb::NodeProto {
            name,
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outs.clone(),
            attribute: attrs,
            ..Default::default()
        });
        outs
    }

    /// `y = x W^T + b` as one `Gemm` (transB = 1), with `w` laid out
    /// `[out, in]` row-major like `torch.nn.Linear.weight`.
    pub fn linear(
        &mut self,
        x: &str,
        w: &[f32],
        b: Option<&[f32]>,
        d_in: usize,
        d_out: usize,
    ) -> String {
        let wn = self.constant("weight", &[d_out, d_in], w);
        let mut ins = vec![x.to_string(), wn];
        if let Some(b) = b {
            ins.push(self.constant("bias", &[d_out], b));
        }
        let ins: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
        self.node("Gemm", &ins, vec![attr_int("transB", 1)])
    }

    /// The rest of one block after its [`GraphBuilder::linear`] output
    /// `y` (row size `d`): `LayerNormalization(axis=-1)` when `norm` is
    /// given, then the activation `act` (TD-MPC2's NormedLinear; a plain
    /// Linear is `None` and [`Act::Identity`]).
    pub fn norm_act(&mut self, y: &str, d: usize, norm: Option<Norm>, act: Act) -> String {
        let y = match norm {
            None => y.to_string(),
            Some(n) => {
                let s = self.constant("ln_scale", &[d], n.scale);
                let b = self.constant("ln_bias", &[d], n.bias);
                self.node(
                    "LayerNormalization",
                    &[y, &s, &b],
                    vec![attr_int("axis", -1), attr_float("epsilon", n.epsilon)],
                )
            }
        };
        self.act(&y, act, d)
    }

    /// Activation `act` on value `x` of row size `d`; returns the output.
    pub fn act(&mut self, x: &str, act: Act, d: usize) -> String {
        match act {
            Act::Mish => self.node("Mish", &[x], vec![]),
            Act::MishOps => {
                let sp = self.node("Softplus", &[x], vec![]);
                let t = self.node("Tanh", &[&sp], vec![]);
                self.node("Mul", &[x, &t], vec![])
            }
            Act::SimNorm(grp) => {
                let s1 = self.constant_i64("simnorm_shape", &[-1, (d / grp) as i64, grp as i64]);
                let r = self.node("Reshape", &[x, &s1], vec![]);
                let sm = self.node("Softmax", &[&r], vec![attr_int("axis", -1)]);
                let s2 = self.constant_i64("flat_shape", &[-1, d as i64]);
                self.node("Reshape", &[&sm, &s2], vec![])
            }
            Act::Identity => x.to_string(),
        }
    }

    /// Mark `value` as graph output `name` of row size `size` (an
    /// `Identity` node renames it when needed).
    pub fn output(&mut self, value: &str, name: &str, size: usize) {
        if value != name {
            self.nodes.push(pb::NodeProto {
                name: format!("{}/output_{}", self.name, name),
                op_type: "Identity".into(),
                input: vec![value.into()],
                output: vec![name.into()],
                ..Default::default()
            });
        }
        self.outputs.push(value_info(name, size));
    }

    /// Finish with the default opset.
    pub fn finish(self) -> OnnxModel {
        self.finish_with_opset(OPSET)
    }

    /// Finish with an explicit default-domain opset.
    pub fn finish_with_opset(self, opset: i64) -> OnnxModel {
        OnnxModel(pb::ModelProto {
            ir_version: 8,
            producer_name: "dream-mpc".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            graph: Some(pb::GraphProto {
                name: self.name,
                node: self.nodes,
                initializer: self.initializers,
                input: self.inputs,
                output: self.outputs,
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::*;

    /// A written graph parses and runs in tract with the expected numbers:
    /// proves the builder writes valid ONNX, not just bytes.
    #[test]
    fn gemm_tanh_runs_in_tract() {
        let mut g = GraphBuilder::new("m");
        let x = g.input("x", 2);
        let h = g.linear(&x, &[1.0, 2.0, -1.0, 0.5], Some(&[0.1, -0.2]), 2, 2);
        let y = g.node("Tanh", &[&h], vec![]);
        g.output(&y, "y", 2);
        let bytes = g.finish().to_bytes();
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .unwrap()
            .with_input_fact(0, f32::fact([3, 2]).into())
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let xin = tract_ndarray::Array2::<f32>::from_shape_vec(
            (3, 2),
            vec![0.0, 0.0, 1.0, 1.0, -1.0, 2.0],
        )
        .unwrap();
        let out = model.run(tvec!(xin.clone().into_tensor().into())).unwrap();
        let y = out[0].to_plain_array_view::<f32>().unwrap();
        for r in 0..3 {
            let (a, b) = (xin[[r, 0]], xin[[r, 1]]);
            let e0 = (a + 2.0 * b + 0.1).tanh();
            let e1 = (-a + 0.5 * b - 0.2).tanh();
            assert!((y[[r, 0]] - e0).abs() < 1e-6, "row {r}");
            assert!((y[[r, 1]] - e1).abs() < 1e-6, "row {r}");
        }
    }
}
