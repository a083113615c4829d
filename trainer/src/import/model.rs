//! The imported model twice, from the same PyTorch-layout weights: as tch
//! modules that compute what TD-MPC2's `WorldModel` computes in eval mode
//! (dropout off), for the libtorch reference vectors and the tch reference
//! planner; and as ONNX graphs written with the controller's block emitter
//! ([`GraphBuilder::linear`] + [`GraphBuilder::norm_act`], the same ops the
//! trainer's export writes: Gemm, LayerNormalization, Softplus/Tanh/Mul for
//! Mish, Reshape/Softmax for SimNorm, Concat, Tanh/Mul/Add for the
//! policy's log-std squashing). Import-time cost only.

use super::layout::{Block, Tail, Tdmpc2Weights};
use crate::export::ReferenceModel;
use crate::reference_planner::TchLatentModel;
use crate::twohot::TwoHot;
use dream_mpc::bundle::manifest::{ModuleSpec, References, TensorSpec};
use dream_mpc::bundle::onnx_build::{za_module, Act, GraphBuilder, Norm};
use dream_mpc::bundle::BuiltModule;
use tch::{Kind, Tensor};

/// TD-MPC2's LayerNorm epsilon (torch's default).
pub const LN_EPS: f64 = 1e-5;

/// One block as tch tensors.
struct TBlock {
    w: Tensor,
    b: Tensor,
    ln: Option<(Tensor, Tensor)>,
    tail: Tail,
    d_out: i64,
}

fn t(v: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(v).view(shape)
}

impl TBlock {
    fn new(b: &Block) -> TBlock {
        let (i, o) = (b.d_in as i64, b.d_out as i64);
        TBlock {
            w: t(&b.weight, &[o, i]),
            b: t(&b.bias, &[o]),
            ln: b.ln.as_ref().map(|(s, h)| (t(s, &[o]), t(h, &[o]))),
            tail: b.tail,
            d_out: o,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let y = x.linear(&self.w, Some(&self.b));
        let y = match &self.ln {
            Some((s, h)) => y.layer_norm([self.d_out], Some(s), Some(h), LN_EPS, false),
            None => y,
        };
        match self.tail {
            Tail::Mish => y.mish(),
            Tail::SimNorm(g) => {
                let g = g as i64;
                y.view([-1, self.d_out / g, g])
                    .softmax(-1, Kind::Float)
                    .view([-1, self.d_out])
            }
            Tail::None => y,
        }
    }
}

fn run(blocks: &[TBlock], x: &Tensor) -> Tensor {
    blocks.iter().fold(x.shallow_clone(), |h, b| b.forward(&h))
}

/// The imported model in tch (CPU, f32). Methods follow TD-MPC2's
/// `encode`, `next`, `reward`, `pi`, `Q(return_type='all')`; reward and Q
/// return logits.
pub struct Tdmpc2Model {
    pub weights: Tdmpc2Weights,
    encoder: Vec<TBlock>,
    dynamics: Vec<TBlock>,
    reward: Vec<TBlock>,
    pi: Vec<TBlock>,
    q: Vec<Vec<TBlock>>,
}

fn blocks(bs: &[Block]) -> Vec<TBlock> {
    bs.iter().map(TBlock::new).collect()
}

impl Tdmpc2Model {
    pub fn new(weights: Tdmpc2Weights) -> Self {
        Tdmpc2Model {
            encoder: blocks(&weights.encoder),
            dynamics: blocks(&weights.dynamics),
            reward: blocks(&weights.reward),
            pi: blocks(&weights.pi),
            q: weights.q.iter().map(|h| blocks(h)).collect(),
            weights,
        }
    }

    /// The decoding of reward and Q heads.
    pub fn twohot(&self) -> TwoHot {
        let d = &self.weights.dims;
        TwoHot {
            bins: d.num_bins,
            vmin: d.vmin,
            vmax: d.vmax,
        }
    }

    /// `obs [B, O] -> z [B, L]`.
    pub fn encode(&self, obs: &Tensor) -> Tensor {
        run(&self.encoder, obs)
    }

    /// `(z, a) -> z_next`.
    pub fn next(&self, z: &Tensor, a: &Tensor) -> Tensor {
        run(&self.dynamics, &Tensor::cat(&[z, a], 1))
    }

    /// `(z, a) -> reward logits [B, bins]`.
    pub fn reward_logits(&self, z: &Tensor, a: &Tensor) -> Tensor {
        run(&self.reward, &Tensor::cat(&[z, a], 1))
    }

    /// `(z, a) -> Q logits of every head, head-major [B, heads x bins]`.
    pub fn q_logits(&self, z: &Tensor, a: &Tensor) -> Tensor {
        let za = Tensor::cat(&[z, a], 1);
        let heads: Vec<Tensor> = self.q.iter().map(|h| run(h, &za)).collect();
        Tensor::cat(&heads, 1)
    }

    /// `z -> (mu, log_std)`, log_std squashed into [min, max] as TD-MPC2:
    /// `min + (max - min) (tanh(x) + 1) / 2`.
    pub fn policy(&self, z: &Tensor) -> (Tensor, Tensor) {
        let out = run(&self.pi, z);
        let a = self.weights.action as i64;
        let (lo, hi) = (
            self.weights.log_std_min as f64,
            self.weights.log_std_max as f64,
        );
        let raw = out.narrow(1, a, a);
        let log_std = (raw.tanh() + 1.0) * (0.5 * (hi - lo)) + lo;
        (out.narrow(1, 0, a), log_std)
    }
}

impl TchLatentModel for Tdmpc2Model {
    fn next(&self, z: &Tensor, a: &Tensor) -> Tensor {
        Tdmpc2Model::next(self, z, a)
    }
    fn reward(&self, z: &Tensor, a: &Tensor) -> Tensor {
        self.twohot()
            .decode(&self.reward_logits(z, a))
            .squeeze_dim(1)
    }
    fn q_all(&self, z: &Tensor, a: &Tensor) -> Tensor {
        let logits = self.q_logits(z, a);
        let (b, nq) = (logits.size()[0], self.q.len() as i64);
        let bins = self.weights.dims.num_bins as i64;
        self.twohot()
            .decode(&logits.reshape([b * nq, bins]))
            .reshape([b, nq])
    }
    fn pi(&self, z: &Tensor) -> (Tensor, Tensor) {
        self.policy(z)
    }
    fn q_heads(&self) -> usize {
        self.q.len()
    }
}

fn emit(g: &mut GraphBuilder, x: &str, bs: &[Block]) -> String {
    bs.iter().fold(x.to_string(), |h, b| {
        let y = g.linear(&h, &b.weight, Some(&b.bias), b.d_in, b.d_out);
        let norm = b.ln.as_ref().map(|(s, h)| Norm {
            scale: s,
            bias: h,
            epsilon: LN_EPS as f32,
        });
        let act = match b.tail {
            Tail::Mish => Act::MishOps,
            Tail::SimNorm(grp) => Act::SimNorm(grp),
            Tail::None => Act::Identity,
        };
        g.norm_act(&y, b.d_out, norm, act)
    })
}

fn spec(name: &str, ins: &[(&str, usize)], outs: &[(&str, usize)]) -> ModuleSpec {
    let ts = |v: &[(&str, usize)]| {
        v.iter()
            .map(|&(n, size)| TensorSpec {
                name: n.into(),
                size,
            })
            .collect()
    };
    ModuleSpec {
        file: format!("{name}.onnx"),
        inputs: ts(ins),
        outputs: ts(outs),
    }
}

/// The five ONNX modules of the bundle contract (encoder, dynamics,
/// reward, q, policy) from the PyTorch-layout weights.
pub fn onnx_modules(w: &Tdmpc2Weights) -> Vec<BuiltModule> {
    let (o, a, l, nb) = (w.obs, w.action, w.dims.latent, w.dims.num_bins);
    let mut out = vec![];

    let mut g = GraphBuilder::new("encoder");
    let x = g.input("obs", o);
    let z = emit(&mut g, &x, &w.encoder);
    g.output(&z, "z", l);
    out.push(BuiltModule {
        name: "encoder".into(),
        spec: spec("encoder", &[("obs", o)], &[("z", l)]),
        model: g.finish(),
    });

    let za = [("z", l), ("a", a)];
    let za_heads: [(&str, &str, Vec<&[Block]>, usize); 3] = [
        ("dynamics", "z_next", vec![&w.dynamics], l),
        ("reward", "r", vec![&w.reward], nb),
        (
            "q",
            "q",
            w.q.iter().map(|h| h.as_slice()).collect(),
            w.q.len() * nb,
        ),
    ];
    for (name, out_name, heads, size) in za_heads {
        let model = za_module(
            name,
            (l, a),
            heads.len(),
            |g, x, k| emit(g, x, heads[k]),
            (out_name, size),
        );
        out.push(BuiltModule {
            name: name.into(),
            spec: spec(name, &za, &[(out_name, size)]),
            model,
        });
    }

    // Policy: hidden layers, then the last Linear's rows split into mu and
    // the raw log-std, squashed as `tanh(x) * half + (min + half)`.
    let mut g = GraphBuilder::new("policy");
    let z = g.input("z", l);
    let (hidden, last) = w.pi.split_at(w.pi.len() - 1);
    let h = emit(&mut g, &z, hidden);
    let last = &last[0];
    let d = last.d_in;
    let mu = g.linear(&h, &last.weight[..a * d], Some(&last.bias[..a]), d, a);
    let raw = g.linear(&h, &last.weight[a * d..], Some(&last.bias[a..]), d, a);
    let (lo, hi) = (w.log_std_min, w.log_std_max);
    let th = g.node("Tanh", &[&raw], vec![]);
    let half = g.constant("half_range", &[1], &[0.5 * (hi - lo)]);
    let mid = g.constant("mid", &[1], &[lo + 0.5 * (hi - lo)]);
    let ts = g.node("Mul", &[&th, &half], vec![]);
    let log_std = g.node("Add", &[&ts, &mid], vec![]);
    g.output(&mu, "mu", a);
    g.output(&log_std, "log_std", a);
    out.push(BuiltModule {
        name: "policy".into(),
        spec: spec("policy", &[("z", l)], &[("mu", a), ("log_std", a)]),
        model: g.finish(),
    });
    out
}

impl ReferenceModel for Tdmpc2Model {
    fn sizes(&self) -> (usize, usize, usize) {
        let w = &self.weights;
        (w.obs, w.action, w.dims.latent)
    }
    fn encode(&self, obs: &Tensor) -> Tensor {
        Tdmpc2Model::encode(self, obs)
    }
    fn next(&self, z: &Tensor, a: &Tensor) -> Tensor {
        Tdmpc2Model::next(self, z, a)
    }
    fn reward_out(&self, z: &Tensor, a: &Tensor) -> Tensor {
        self.reward_logits(z, a)
    }
    fn q_out(&self, z: &Tensor, a: &Tensor) -> Tensor {
        self.q_logits(z, a)
    }
    fn pi(&self, z: &Tensor) -> (Tensor, Tensor) {
        self.policy(z)
    }
}

/// libtorch reference vectors of every module (the trainer's export
/// draws them the same way: [`crate::export::references`]).
pub fn references(
    m: &Tdmpc2Model,
    cases: usize,
    batch: usize,
    seed: u64,
) -> Result<References, tch::TchError> {
    crate::export::references(m, cases, batch, seed)
}
