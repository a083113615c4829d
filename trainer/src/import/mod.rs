//! Import a TD-MPC2 single-task checkpoint into a checked model bundle
//! (`dream-mpc-train import`).
//!
//! Steps: read the `.pt` checkpoint's `model` state dict ([`state_dict`],
//! one Python step with the project's torch, `weights_only=True`); map it
//! onto checked blocks for the given size ([`layout`]: every key named,
//! shapes from the size, finite values, single-task only); copy them into
//! the trainer's own [`WorldModel`] ([`model`]); then export as training
//! does: the same ONNX graphs and libtorch references (forward and VJP)
//! ([`crate::export`]) through the controller's one bundle writer
//! ([`dream_mpc::bundle::write_bundle`]); load the bundle with the
//! controller and verify its compiled kernels against the references and
//! tract, as `dream-mpc check` does. Nothing is written before every check
//! on the checkpoint has passed, and a bundle that fails verification is
//! removed. Import-time cost only.

mod error;
pub mod layout;
pub mod model;
pub mod state_dict;

pub use error::ImportError;

use crate::export::{decoding, default_planner, onnx_modules, references, ExportError};
use crate::model::WorldModel;
use dream_mpc::bundle::manifest::{
    ActionSpec, Manifest, ManifestParts, ObservationSpec, PlannerDefaults, Provenance,
};
use dream_mpc::bundle::{sha256_hex, write_bundle};
use layout::{map_state_dict, Dims, Tdmpc2Weights};
use std::path::{Path, PathBuf};

/// TD-MPC2's discount rule for an episode of `episode_length` agent
/// steps: `frac = length / 5`, `g = clamp((frac - 1) / frac, 0.95,
/// 0.995)` (e.g. 500 steps, DMC with action repeat 2: 0.99).
pub fn tdmpc2_discount(episode_length: usize) -> f32 {
    let frac = episode_length as f64 / 5.0;
    ((frac - 1.0) / frac).clamp(0.95, 0.995) as f32
}

/// Everything `dream-mpc-train import` takes.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    pub checkpoint: PathBuf,
    pub out: PathBuf,
    pub task: String,
    pub obs_size: usize,
    pub action_size: usize,
    pub dims: Dims,
    /// Agent steps per episode (TD-MPC2's `episode_length`, after the
    /// action repeat): sets the discount.
    pub episode_length: usize,
    pub action_repeat: usize,
    /// Overrides the discount rule.
    pub discount: Option<f32>,
    /// Actuator bounds of model actions -1 and +1 (length action_size).
    pub action_low: Vec<f32>,
    pub action_high: Vec<f32>,
    pub planner: PlannerDefaults,
    /// Python that reads the pickle (see [`state_dict::python`]).
    pub python: Option<PathBuf>,
    /// Seed of the reference inputs.
    pub seed: u64,
}

impl ImportOptions {
    /// Options with TD-MPC2's usual defaults: bounds [-1, 1], the
    /// authors' planner, references seed 0.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        checkpoint: &Path,
        out: &Path,
        task: &str,
        obs_size: usize,
        action_size: usize,
        dims: Dims,
        episode_length: usize,
        action_repeat: usize,
    ) -> Self {
        ImportOptions {
            checkpoint: checkpoint.into(),
            out: out.into(),
            task: task.into(),
            obs_size,
            action_size,
            dims,
            episode_length,
            action_repeat,
            discount: None,
            action_low: vec![-1.0; action_size],
            action_high: vec![1.0; action_size],
            planner: default_planner(),
            python: None,
            seed: 0,
        }
    }

    fn check(&self) -> Result<f32, ImportError> {
        let bad = |m: String| Err(ImportError::Options(m));
        if self.task.trim().is_empty() {
            return bad("task name is empty".into());
        }
        if self.episode_length == 0 {
            return bad("episode length must be > 0".into());
        }
        if self.action_repeat == 0 || self.action_repeat > 1000 {
            return bad(format!(
                "action repeat {} (must be in 1..=1000)",
                self.action_repeat
            ));
        }
        let a = self.action_size;
        if self.action_low.len() != a || self.action_high.len() != a {
            return bad(format!(
                "action bounds have {}/{} values for {a} actions",
                self.action_low.len(),
                self.action_high.len()
            ));
        }
        for i in 0..a {
            let (lo, hi) = (self.action_low[i], self.action_high[i]);
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return bad(format!("action bound {i}: low {lo} high {hi}"));
            }
        }
        let g = self
            .discount
            .unwrap_or_else(|| tdmpc2_discount(self.episode_length));
        if !(g.is_finite() && g > 0.0 && g <= 1.0) {
            return bad(format!("discount {g} (must be in (0, 1])"));
        }
        if self.out.exists()
            && std::fs::read_dir(&self.out)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return bad(format!(
                "{} exists and is not empty (the importer writes a new bundle)",
                self.out.display()
            ));
        }
        Ok(g)
    }
}

/// What `dream-mpc check` verifies: the bundle loads, its compiled kernels
/// reproduce the references (forward and VJP) and agree with tract, and
/// its planner settings are valid for Dream-MPC.
fn verify_like_check(dir: &Path) -> Result<(), String> {
    use dream_mpc::load::{Bundle, REFERENCE_TOLERANCE};
    use dream_mpc::planner::{PlannerConfig, PlannerKind};
    let b = Bundle::load(dir).map_err(|e| e.to_string())?;
    b.verify().map_err(|e| e.to_string())?;
    for (name, err) in b.tract_agreement(8, 0).map_err(|e| e.to_string())? {
        if err.is_nan() || err > REFERENCE_TOLERANCE {
            return Err(format!(
                "module `{name}`: kernels vs tract scaled error {err:.2e} > {REFERENCE_TOLERANCE:.0e}"
            ));
        }
    }
    let m = &b.manifest;
    PlannerConfig::for_kind(PlannerKind::DreamMpc, &m.planner, m.discount)
        .validate()
        .map_err(|e| format!("planner settings: {e}"))
}

/// Read and check the checkpoint: the state dict mapped onto blocks of
/// `opts.dims` (no file written).
pub fn read_weights(opts: &ImportOptions) -> Result<Tdmpc2Weights, ImportError> {
    let sd = state_dict::read_checkpoint(&opts.checkpoint, opts.python.as_deref())?;
    map_state_dict(&sd, &opts.dims, opts.obs_size, opts.action_size)
}

/// Import `opts.checkpoint` into the bundle folder `opts.out` (which must
/// not exist or be empty): returns the manifest. See the module docs for
/// the steps and checks.
pub fn import_checkpoint(opts: &ImportOptions) -> Result<Manifest, ImportError> {
    opts.check()?;
    let weights = read_weights(opts)?;
    Ok(import_weights(opts, weights)?.0)
}

/// The second half of [`import_checkpoint`]: write and verify the bundle
/// for weights already read and checked by [`read_weights`]; returns the
/// manifest and the trainer's model holding the weights (for references
/// and the tch planner).
pub fn import_weights(
    opts: &ImportOptions,
    weights: Tdmpc2Weights,
) -> Result<(Manifest, WorldModel), ImportError> {
    let discount = opts.check()?;
    let model = model::world_model(&weights)?;
    let refs = references(&model, 3, 4, opts.seed).map_err(ExportError::Torch)?;
    let modules = onnx_modules(&model);
    let ckpt_sha = std::fs::read(&opts.checkpoint)
        .map(|b| sha256_hex(&b))
        .unwrap_or_default();
    let manifest = Manifest::new(ManifestParts {
        task: opts.task.clone(),
        // A TD-MPC2 checkpoint does not record the observations it saw:
        // the node skips the plausibility check and says so at start.
        observation: ObservationSpec::unnormalized(model.obs_size, None),
        action: ActionSpec {
            size: model.action_size,
            low: opts.action_low.clone(),
            high: opts.action_high.clone(),
        },
        latent: model.cfg.latent,
        simnorm_group: model.cfg.simnorm_group,
        discount,
        action_repeat: opts.action_repeat,
        decoding: decoding(&model),
        q_ensemble: model.q.len(),
        planner: opts.planner.clone(),
        provenance: Provenance {
            producer: format!("dream-mpc-train {} import", env!("CARGO_PKG_VERSION")),
            training_steps: 0,
            seed: opts.seed,
            revision: None,
            notes: Some(format!(
                "TD-MPC2 checkpoint {} (sha256 {ckpt_sha}), size {}, episode length {}",
                opts.checkpoint.display(),
                weights.dims.name,
                opts.episode_length
            )),
        },
    });
    let created = !opts.out.exists();
    let manifest = write_bundle(&opts.out, manifest, &modules, Some(&refs))
        .map_err(|e| ImportError::Export(ExportError::Bundle(e)))?;
    let verified = verify_like_check(&opts.out);
    if let Err(e) = verified {
        for m in &modules {
            let _ = std::fs::remove_file(opts.out.join(&m.spec.file));
        }
        let _ = std::fs::remove_file(opts.out.join("references.json"));
        let _ = std::fs::remove_file(opts.out.join("manifest.json"));
        if created {
            let _ = std::fs::remove_dir(&opts.out);
        }
        return Err(ImportError::Verify(e));
    }
    Ok((manifest, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discount_follows_tdmpc2s_episode_length_rule() {
        // DMC: 1000 env steps, action repeat 2 -> 500 agent steps -> 0.99.
        assert!((tdmpc2_discount(500) - 0.99).abs() < 1e-7);
        // (frac - 1) / frac between the clamps: 250 steps -> 49/50.
        assert!((tdmpc2_discount(250) - 0.98).abs() < 1e-7);
        // Short and long episodes hit the clamps.
        assert_eq!(tdmpc2_discount(50), 0.95);
        assert_eq!(tdmpc2_discount(100_000), 0.995);
    }

    #[test]
    fn named_sizes_parse_with_or_without_the_m() {
        let d = Dims::named("5M").unwrap();
        assert_eq!((d.latent, d.mlp, d.enc, d.num_q), (512, 512, 256, 5));
        assert_eq!(Dims::named("5").unwrap(), d);
        let d = Dims::named("1m").unwrap();
        assert_eq!((d.latent, d.mlp, d.num_q), (128, 384, 2));
        let e = Dims::named("7M").unwrap_err().to_string();
        assert!(e.contains("`7M`"), "{e}");
        let mut bad = Dims::named("5M").unwrap();
        bad.latent = 500;
        assert!(bad.validate().unwrap_err().to_string().contains("SimNorm"));
    }
}
