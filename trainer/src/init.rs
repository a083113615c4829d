//! Starting weights for fine-tuning (`train --init DIR`): a
//! training checkpoint (`<run>/checkpoint`, or the run folder) or a model
//! bundle (a folder with `manifest.json`, such as `models/cartpole-swingup`).
//!
//! A bundle is read back into the trainer's [`WorldModel`] from its ONNX
//! graphs: every `Gemm` (weight `[out, in]`, bias) and the
//! `LayerNormalization` that follows it (scale, bias) is one
//! [`crate::model::Layer`], in the order the exporter emits them
//! ([`crate::export::onnx_modules`]). The model sizes come from the source
//! (manifest, layer shapes, the policy's log-std constants), not from the
//! config, and the loaded model must reproduce the bundle's own reference
//! outputs ([`check_references`]) before training starts. Start-up only.

use crate::config::{io, TrainError};
use crate::learner::Learner;
use crate::model::{Layer, LayerWeights, ModelConfig, WorldModel};
use dream_mpc::bundle::confine::Limits;
use dream_mpc::bundle::files::{read_manifest, read_references, read_verified};
use dream_mpc::bundle::manifest::{Decoding, LatentSpec, Manifest, PlannerDefaults};
use prost::Message;
use std::path::{Path, PathBuf};
use tch::Tensor;
use tract_onnx::pb;

/// Where the starting weights come from.
#[derive(Clone, Debug, PartialEq)]
pub enum InitSource {
    /// A trainer checkpoint folder (holding `state.json` and `model.ot`).
    Checkpoint(PathBuf),
    /// A model bundle folder (holding `manifest.json`).
    Bundle(PathBuf),
}

/// One `Gemm` of a graph with its initializers, and the LayerNorm after it.
#[derive(Clone, Debug)]
struct Block {
    w: Vec<f32>,
    /// `[out, in]`.
    dims: [usize; 2],
    b: Option<Vec<f32>>,
    ln: Option<(Vec<f32>, Vec<f32>)>,
}

fn bad(dir: &Path, why: impl std::fmt::Display) -> TrainError {
    TrainError::Init(format!("{}: {why}", dir.display()))
}

impl InitSource {
    /// Recognize `dir`: a checkpoint folder, a run folder holding
    /// `checkpoint/`, or a bundle folder; anything else is an error
    /// naming what was looked for.
    pub fn find(dir: &Path) -> Result<InitSource, TrainError> {
        if dir.join("state.json").is_file() && dir.join("model.ot").is_file() {
            return Ok(InitSource::Checkpoint(dir.to_path_buf()));
        }
        let ck = dir.join("checkpoint");
        if ck.join("state.json").is_file() && ck.join("model.ot").is_file() {
            return Ok(InitSource::Checkpoint(ck));
        }
        if dir.join("manifest.json").is_file() {
            return Ok(InitSource::Bundle(dir.to_path_buf()));
        }
        Err(bad(
            dir,
            "neither a checkpoint (state.json + model.ot, or checkpoint/ under a run folder) \
             nor a bundle (manifest.json)",
        ))
    }

    /// The model sizes of the source; `q_dropout` (training only, not in
    /// a bundle) is taken from `like`.
    pub fn model_config(&self, like: &ModelConfig) -> Result<ModelConfig, TrainError> {
        match self {
            InitSource::Checkpoint(dir) => {
                let p = dir.join("state.json");
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).map_err(io(&p))?)
                        .map_err(|e| bad(&p, e))?;
                serde_json::from_value(v["config"]["model"].clone()).map_err(|e| bad(&p, e))
            }
            InitSource::Bundle(dir) => {
                let (m, modules) = read_bundle(dir)?;
                bundle_config(dir, &m, &modules, like)
            }
        }
    }

    /// The planner section of a bundle source (kept by the fine-tuned
    /// bundle); `None` for a checkpoint.
    pub fn planner(&self) -> Result<Option<PlannerDefaults>, TrainError> {
        match self {
            InitSource::Checkpoint(_) => Ok(None),
            InitSource::Bundle(dir) => {
                Ok(Some(read_manifest(dir).map_err(|e| bad(dir, e))?.planner))
            }
        }
    }

    /// Load the source's weights into `agent` (built with
    /// [`InitSource::model_config`]'s sizes) and copy them to its target
    /// Q heads. A bundle must then reproduce its reference outputs.
    /// Returns a one-line description of what was loaded.
    pub fn apply(&self, agent: &mut Learner) -> Result<String, TrainError> {
        let o = agent.model.obs_size;
        let a = agent.model.action_size;
        let what = match self {
            InitSource::Checkpoint(dir) => {
                let p = dir.join("model.ot");
                agent
                    .vs
                    .load(&p)
                    .map_err(|e| bad(&p, format!("does not fit this model: {e}")))?;
                format!("checkpoint {}", dir.display())
            }
            InitSource::Bundle(dir) => {
                let (m, modules) = read_bundle(dir)?;
                if m.observation.size != o || m.action.size != a {
                    return Err(bad(
                        dir,
                        format!(
                            "observation {} / action {} in the manifest, the logs have {o} / {a}",
                            m.observation.size, m.action.size
                        ),
                    ));
                }
                // in place: the optimizer's flat buffers keep viewing the variables
                load_weights(dir, &agent.model, &modules)?;
                let err = agent.with_cpu_model(|model| check_references(dir, model))?;
                format!(
                    "bundle {} (its reference outputs reproduced within {err:.1e})",
                    dir.display()
                )
            }
        };
        agent.sync_target();
        Ok(what)
    }
}

/// Each module of a bundle: its manifest name, its blocks and its graph.
type Modules = Vec<(String, Vec<Block>, pb::GraphProto)>;

/// The manifest and each module's blocks, in graph order.
fn read_bundle(dir: &Path) -> Result<(Manifest, Modules), TrainError> {
    let m = read_manifest(dir).map_err(|e| bad(dir, e))?;
    let identity =
        m.observation.mean.iter().all(|&v| v == 0.0) && m.observation.std.iter().all(|&v| v == 1.0);
    if !identity {
        return Err(bad(
            dir,
            "the bundle normalizes observations (manifest observation.mean/std); the trainer's \
             models take raw observations, so it cannot be fine-tuned here",
        ));
    }
    let mut out = Vec::new();
    for name in ["encoder", "dynamics", "reward", "q", "policy"] {
        let spec = m
            .modules
            .get(name)
            .ok_or_else(|| bad(dir, format!("no module '{name}' in the manifest")))?;
        let bytes =
            read_verified(dir, &m, &spec.file, &Limits::default()).map_err(|e| bad(dir, e))?;
        let model = pb::ModelProto::decode(bytes.as_slice())
            .map_err(|e| bad(dir, format!("{}: not ONNX: {e}", spec.file)))?;
        let graph = model
            .graph
            .ok_or_else(|| bad(dir, format!("{}: no graph", spec.file)))?;
        let blocks = blocks(&graph).map_err(|e| bad(dir, format!("{}: {e}", spec.file)))?;
        out.push((name.to_string(), blocks, graph));
    }
    Ok((m, out))
}

fn floats(t: &pb::TensorProto) -> Result<Vec<f32>, String> {
    if t.data_type != pb::tensor_proto::DataType::Float as i32 {
        return Err(format!("initializer {} is not float", t.name));
    }
    if !t.float_data.is_empty() {
        return Ok(t.float_data.clone());
    }
    if !t.raw_data.len().is_multiple_of(4) {
        return Err(format!(
            "initializer {}: raw data of {} bytes",
            t.name,
            t.raw_data.len()
        ));
    }
    Ok(t.raw_data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The graph's `Gemm` blocks in node order, each with the LayerNorm that
/// takes its output (directly) when there is one.
fn blocks(g: &pb::GraphProto) -> Result<Vec<Block>, String> {
    let init = |name: &str| g.initializer.iter().find(|t| t.name == name);
    let mut out: Vec<Block> = Vec::new();
    let mut last_out = String::new();
    for n in &g.node {
        match n.op_type.as_str() {
            "Gemm" => {
                let trans_b = n.attribute.iter().any(|a| a.name == "transB" && a.i == 1);
                let w = n.input.get(1).and_then(|s| init(s));
                let (Some(w), true) = (w, trans_b) else {
                    return Err(format!(
                        "Gemm {} is not x W^T + b with a constant W (transB = 1)",
                        n.name
                    ));
                };
                if w.dims.len() != 2 {
                    return Err(format!("Gemm {} weight has dims {:?}", n.name, w.dims));
                }
                let b = match n.input.get(2).and_then(|s| init(s)) {
                    Some(t) => Some(floats(t)?),
                    None => None,
                };
                out.push(Block {
                    w: floats(w)?,
                    dims: [w.dims[0] as usize, w.dims[1] as usize],
                    b,
                    ln: None,
                });
                last_out = n.output.first().cloned().unwrap_or_default();
            }
            "LayerNormalization" => {
                let (Some(s), Some(b)) = (
                    n.input.get(1).and_then(|s| init(s)),
                    n.input.get(2).and_then(|s| init(s)),
                ) else {
                    return Err(format!(
                        "LayerNormalization {} without constant scale and bias",
                        n.name
                    ));
                };
                match out.last_mut() {
                    Some(blk) if blk.ln.is_none() && n.input.first() == Some(&last_out) => {
                        blk.ln = Some((floats(s)?, floats(b)?));
                    }
                    _ => {
                        return Err(format!(
                            "LayerNormalization {} does not follow a Gemm",
                            n.name
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Hidden layers and width of an MLP given as blocks (all but the last
/// are hidden; `None` when there are none).
fn hidden_of(b: &[Block]) -> (usize, Option<usize>) {
    let n = b.len().saturating_sub(1);
    (n, (n > 0).then(|| b[0].dims[0]))
}

/// The model sizes of a bundle.
fn bundle_config(
    dir: &Path,
    m: &Manifest,
    modules: &Modules,
    like: &ModelConfig,
) -> Result<ModelConfig, TrainError> {
    let get = |name: &str| &modules.iter().find(|(n, ..)| n == name).expect("read").1;
    let (enc_layers, enc_hidden) = hidden_of(get("encoder"));
    let (layers, hidden) = hidden_of(get("dynamics"));
    let hidden = hidden.ok_or_else(|| bad(dir, "the dynamics MLP has no hidden layer"))?;
    let (num_bins, vmin, vmax) = match m.reward_decoding {
        Decoding::Scalar => (1, like.vmin, like.vmax),
        Decoding::TwoHotSymlog { bins, vmin, vmax } => (bins, vmin, vmax),
    };
    if m.value_decoding != m.reward_decoding {
        return Err(bad(
            dir,
            "reward and value decodings differ; the trainer uses one for both",
        ));
    }
    // log_std = mid + half_range * tanh(raw): the policy graph's constants
    let policy = &modules
        .iter()
        .find(|(n, ..)| n == "policy")
        .expect("read")
        .2;
    let constant = |hint: &str| -> Option<f32> {
        policy
            .initializer
            .iter()
            .find(|t| t.name.starts_with(&format!("policy/{hint}_")))
            .and_then(|t| floats(t).ok())
            .and_then(|v| v.first().copied())
    };
    let (log_std_min, log_std_max) = match (constant("mid"), constant("half_range")) {
        (Some(mid), Some(half)) => (mid - half, mid + half),
        _ => return Err(bad(dir, "the policy graph has no log-std range constants")),
    };
    let LatentSpec::Vector {
        size: latent,
        simnorm_group,
    } = m.latent
    else {
        return Err(bad(
            dir,
            "a recurrent (RSSM) latent is not the trainer's model",
        ));
    };
    let cfg = ModelConfig {
        latent,
        hidden,
        layers,
        enc_hidden: enc_hidden.unwrap_or(like.enc_hidden),
        enc_layers,
        n_q: m.q_ensemble,
        simnorm_group,
        log_std_min,
        log_std_max,
        q_dropout: like.q_dropout,
        num_bins,
        vmin,
        vmax,
    };
    cfg.validate().map_err(|e| bad(dir, e))?;
    Ok(cfg)
}

/// `b` into `l` (the bundle's `[out, in]` Gemm and its LayerNorm).
fn put_layer(l: &Layer, b: &Block, what: &str) -> Result<(), String> {
    l.set(
        &LayerWeights {
            d_in: b.dims[1],
            d_out: b.dims[0],
            weight: &b.w,
            bias: b.b.as_deref(),
            ln: b.ln.as_ref().map(|(s, h)| (s.as_slice(), h.as_slice())),
        },
        &format!("{what} (bundle)"),
    )
}

/// Copy every block of the bundle into `model`'s layers, in the
/// exporter's order; the policy's last layer is the bundle's `mu` and
/// `log_std` Gemms stacked.
fn load_weights(dir: &Path, model: &WorldModel, modules: &Modules) -> Result<(), TrainError> {
    let e = |why: String| bad(dir, why);
    for (name, blocks, _) in modules {
        let layers: Vec<&Layer> = match name.as_str() {
            "encoder" => model.encoder.layers.iter().collect(),
            "dynamics" => model.dynamics.layers.iter().collect(),
            "reward" => model.reward.layers.iter().collect(),
            "q" => model.q.iter().flat_map(|m| &m.layers).collect(),
            _ => model.policy.layers.iter().collect(),
        };
        let split = usize::from(name == "policy");
        if blocks.len() != layers.len() + split {
            return Err(e(format!(
                "module {name} has {} linear layers, a model of these sizes {}",
                blocks.len(),
                layers.len() + split
            )));
        }
        let n = layers.len() - split;
        for (k, (l, b)) in layers[..n].iter().zip(blocks).enumerate() {
            put_layer(l, b, &format!("{name} layer {k}")).map_err(e)?;
        }
        if split == 1 {
            let (mu, raw) = (&blocks[n], &blocks[n + 1]);
            let stacked = Block {
                w: [mu.w.as_slice(), raw.w.as_slice()].concat(),
                dims: [mu.dims[0] + raw.dims[0], mu.dims[1]],
                b: match (&mu.b, &raw.b) {
                    (Some(x), Some(y)) => Some([x.as_slice(), y.as_slice()].concat()),
                    _ => None,
                },
                ln: None,
            };
            put_layer(layers[n], &stacked, "policy output layer").map_err(e)?;
        }
    }
    Ok(())
}

/// Largest error, scaled by max(1, |reference|), of `model`'s outputs on
/// the bundle's reference inputs; above 1e-4 is an error naming the
/// module (the bundle's graphs are not the trainer's model).
pub fn check_references(dir: &Path, model: &WorldModel) -> Result<f64, TrainError> {
    let m = read_manifest(dir).map_err(|e| bad(dir, e))?;
    let refs = read_references(dir, &m, &Limits::default()).map_err(|e| bad(dir, e))?;
    let (o, a, l) = model.sizes();
    let mut worst = 0.0f64;
    for (name, cases) in &refs.modules {
        for (c, case) in cases.iter().enumerate() {
            let b = case.batch as i64;
            let input = |k: &str, size: usize| -> Result<Tensor, TrainError> {
                let v = case
                    .inputs
                    .get(k)
                    .ok_or_else(|| bad(dir, format!("reference {name}[{c}] has no input {k}")))?;
                Ok(Tensor::from_slice(v).view([b, size as i64]))
            };
            let outs: Vec<(&str, Tensor)> = tch::no_grad(|| -> Result<_, TrainError> {
                Ok(match name.as_str() {
                    "encoder" => vec![("z", model.encode(&input("obs", o)?))],
                    "dynamics" => vec![("z_next", model.next(&input("z", l)?, &input("a", a)?))],
                    "reward" => vec![("r", model.reward(&input("z", l)?, &input("a", a)?))],
                    "q" => vec![("q", model.q_all(&input("z", l)?, &input("a", a)?, false))],
                    "policy" => {
                        let (mu, ls) = model.pi(&input("z", l)?);
                        vec![("mu", mu), ("log_std", ls)]
                    }
                    _ => vec![],
                })
            })?;
            for (out, y) in outs {
                let want = case.outputs.get(out).ok_or_else(|| {
                    bad(dir, format!("reference {name}[{c}] has no output {out}"))
                })?;
                let got: Vec<f32> =
                    Vec::<f32>::try_from(y.flatten(0, -1)).map_err(TrainError::Torch)?;
                if got.len() != want.len() {
                    return Err(bad(
                        dir,
                        format!("reference {name}[{c}].{out}: size differs"),
                    ));
                }
                for (g, w) in got.iter().zip(want) {
                    let err = ((g - w).abs() / w.abs().max(1.0)) as f64;
                    if !err.is_finite() || err > 1e-4 {
                        return Err(bad(
                            dir,
                            format!(
                                "the loaded weights do not reproduce reference {name}[{c}].{out} \
                                 (scaled error {err:.2e}): the bundle's graphs are not the \
                                 trainer's model"
                            ),
                        ));
                    }
                    worst = worst.max(err);
                }
            }
        }
    }
    Ok(worst)
}
