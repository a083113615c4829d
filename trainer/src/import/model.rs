//! A checked TD-MPC2 checkpoint as the trainer's own [`WorldModel`]: the
//! sizes become a [`ModelConfig`] and every block is copied into the
//! matching layer with [`Layer::set`](crate::model::Layer::set). From
//! there the importer goes the trainer's way: the same ONNX graphs
//! ([`crate::export::onnx_modules`]), the same libtorch references
//! ([`crate::export::references`]) and the same bundle writer. The model
//! computes what TD-MPC2's `WorldModel` computes in eval mode (the Q
//! heads' dropout is off outside training). Import-time cost only.

use super::error::ImportError;
use super::layout::{Block, Tail, Tdmpc2Weights};
use crate::model::{Act, LayerWeights, Mlp, ModelConfig, WorldModel};
use tch::nn;

/// TD-MPC2's sizes as the trainer's model configuration: MLP width
/// `mlp`, two hidden layers per MLP, `max(num_enc_layers - 1, 1)` encoder
/// hidden layers of width `enc`, the checkpoint's log-std range.
pub fn model_config(w: &Tdmpc2Weights) -> ModelConfig {
    let d = &w.dims;
    ModelConfig {
        latent: d.latent,
        hidden: d.mlp,
        layers: 2,
        enc_hidden: d.enc,
        enc_layers: w.encoder.len() - 1,
        n_q: w.q.len(),
        simnorm_group: d.simnorm,
        log_std_min: w.log_std_min,
        log_std_max: w.log_std_max,
        num_bins: d.num_bins,
        vmin: d.vmin,
        vmax: d.vmax,
        ..ModelConfig::default()
    }
}

/// Copy `blocks` into `mlp`, layer by layer; `what` names the module.
fn load(mlp: &Mlp, blocks: &[Block], what: &str) -> Result<(), ImportError> {
    if mlp.layers.len() != blocks.len() {
        return Err(ImportError::Model(format!(
            "{what}: the checkpoint has {} layers, the model {}",
            blocks.len(),
            mlp.layers.len()
        )));
    }
    for (k, (layer, b)) in mlp.layers.iter().zip(blocks).enumerate() {
        let act_matches = match (&layer.norm, b.tail) {
            (None, Tail::None) => true,
            (Some((_, Act::Mish)), Tail::Mish) => true,
            (Some((_, Act::SimNorm(g))), Tail::SimNorm(h)) => *g == h,
            _ => false,
        };
        if !act_matches {
            return Err(ImportError::Model(format!(
                "{what} layer {k}: the checkpoint's activation {:?} is not the model's",
                b.tail
            )));
        }
        let w = LayerWeights {
            d_in: b.d_in,
            d_out: b.d_out,
            weight: &b.weight,
            bias: Some(&b.bias),
            ln: b.ln.as_ref().map(|(s, h)| (s.as_slice(), h.as_slice())),
        };
        layer
            .set(&w, &format!("{what} layer {k}"))
            .map_err(ImportError::Model)?;
    }
    Ok(())
}

/// The trainer's model (CPU, f32) holding the checkpoint's weights. The
/// layers hold their variables, so the model outlives the store it was
/// built in.
pub fn world_model(w: &Tdmpc2Weights) -> Result<WorldModel, ImportError> {
    let cfg = model_config(w);
    cfg.validate()
        .map_err(|e| ImportError::Model(e.to_string()))?;
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let m = WorldModel::new(&vs.root(), &cfg, w.obs, w.action);
    load(&m.encoder, &w.encoder, "encoder")?;
    load(&m.dynamics, &w.dynamics, "dynamics")?;
    load(&m.reward, &w.reward, "reward")?;
    load(&m.policy, &w.pi, "policy")?;
    for (k, (head, blocks)) in m.q.iter().zip(&w.q).enumerate() {
        load(head, blocks, &format!("Q head {k}"))?;
    }
    Ok(m)
}
