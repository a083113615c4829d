//! `manifest.json`: the one contract between the trainer and the controller.
//!
//! A bundle is a folder:
//!
//! ```text
//! models/<name>/
//!   manifest.json      this schema (format "dream-mpc-bundle", version 1)
//!   encoder.onnx       obs (normalized)        -> z
//!   dynamics.onnx      z, a                    -> z_next
//!   reward.onnx        z, a                    -> r     (decoded per `reward_decoding`)
//!   q.onnx             z, a                    -> q     (n_q heads, head-major, per `value_decoding`)
//!   policy.onnx        z                       -> mu, log_std   (pre-tanh Gaussian)
//!   references.json    inputs, outputs and VJPs computed by libtorch at export
//! ```
//!
//! Every tensor crossing a module boundary is `[batch, size]` f32 with a
//! dynamic batch dimension; actions inside the model are normalized to
//! [-1, 1] and mapped to actuator units with `action.low/high`.
//! Observations are normalized as `(obs - mean) / std` before the encoder.
//! A recurrent (Dreamer-style RSSM) bundle declares `latent.kind = "rssm"`
//! and adds a `recurrent` module; version-1 controllers refuse it by name.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `format` string every manifest carries.
pub const FORMAT: &str = "dream-mpc-bundle";
/// The manifest version this code reads and writes.
pub const VERSION: u32 = 1;

/// Top-level manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] for this code.
    pub version: u32,
    /// Task the model was trained on, e.g. `pendulum-swingup`.
    pub task: String,
    pub observation: ObservationSpec,
    pub action: ActionSpec,
    pub latent: LatentSpec,
    /// Discount g of the planner objective.
    pub discount: f32,
    /// Environment steps each model step (and each planned action) spans:
    /// the trainer's action repeat. Absent in older bundles: 1.
    #[serde(default = "one")]
    pub action_repeat: usize,
    pub reward_decoding: Decoding,
    pub value_decoding: Decoding,
    /// Number of Q heads in `q.onnx` (the ensemble; its spread is the
    /// uncertainty u of Dream-MPC).
    pub q_ensemble: usize,
    /// Default planner budget and weights; the controller's config may
    /// override every field.
    pub planner: PlannerDefaults,
    /// Module name (`encoder`, `dynamics`, `reward`, `q`, `policy`, ...) to
    /// its file and interface.
    pub modules: BTreeMap<String, ModuleSpec>,
    /// File with the libtorch reference vectors (relative to the bundle).
    pub references: Option<String>,
    pub provenance: Provenance,
    /// File name (relative) to lowercase hex sha256 of its bytes; every file
    /// of the bundle except `manifest.json` itself must be listed.
    pub checksums: BTreeMap<String, String>,
}

/// What a producer decides about a vector-latent (TD-MPC2-style) model;
/// [`Manifest::new`] makes the manifest from it. The one way the trainer's
/// export, the TD-MPC2 importer and the test bundles build a manifest.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestParts {
    pub task: String,
    pub observation: ObservationSpec,
    pub action: ActionSpec,
    /// Latent size and SimNorm group (0 = none).
    pub latent: usize,
    pub simnorm_group: usize,
    pub discount: f32,
    pub action_repeat: usize,
    /// Reward and value heads share one decoding, as in TD-MPC2.
    pub decoding: Decoding,
    pub q_ensemble: usize,
    pub planner: PlannerDefaults,
    pub provenance: Provenance,
}

impl Manifest {
    /// The manifest of `parts`, at this code's [`FORMAT`] and [`VERSION`],
    /// with empty module, reference and checksum tables, which
    /// [`super::write_bundle`] fills from the files it writes.
    pub fn new(parts: ManifestParts) -> Manifest {
        let ManifestParts {
            task,
            observation,
            action,
            latent,
            simnorm_group,
            discount,
            action_repeat,
            decoding,
            q_ensemble,
            planner,
            provenance,
        } = parts;
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            task,
            observation,
            action,
            latent: LatentSpec::Vector {
                size: latent,
                simnorm_group,
            },
            discount,
            action_repeat,
            reward_decoding: decoding.clone(),
            value_decoding: decoding,
            q_ensemble,
            planner,
            modules: BTreeMap::new(),
            references: None,
            provenance,
            checksums: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObservationSpec {
    pub size: usize,
    /// Per-element mean subtracted before the encoder (length `size`).
    pub mean: Vec<f32>,
    /// Per-element scale divided by before the encoder (length `size`, > 0).
    pub std: Vec<f32>,
    /// Per-element range of the observations seen in training (the
    /// trainer's replay buffer at export). Absent in older or imported
    /// bundles: the node's plausibility check is then off and says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<ObservationRange>,
}

impl ObservationSpec {
    /// `size` observations fed to the encoder as they are (mean 0, std 1),
    /// with the training range when known.
    pub fn unnormalized(size: usize, range: Option<ObservationRange>) -> Self {
        ObservationSpec {
            size,
            mean: vec![0.0; size],
            std: vec![1.0; size],
            range,
        }
    }
}

/// Smallest and largest value of each observation element seen in
/// training (`low[i] <= high[i]`, finite, length `size`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObservationRange {
    pub low: Vec<f32>,
    pub high: Vec<f32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    pub size: usize,
    /// Actuator-unit bounds; model action -1 maps to `low`, +1 to `high`.
    pub low: Vec<f32>,
    pub high: Vec<f32>,
}

impl ActionSpec {
    /// `size` actions whose actuator units are the model's, [-1, 1].
    pub fn unit(size: usize) -> Self {
        ActionSpec {
            size,
            low: vec![-1.0; size],
            high: vec![1.0; size],
        }
    }
}

/// How the latent state is laid out.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LatentSpec {
    /// A plain vector (TD-MPC2 style), optionally SimNorm-normalized in
    /// groups of `simnorm_group` (0 = none).
    Vector { size: usize, simnorm_group: usize },
    /// Dreamer-style recurrent state: deterministic GRU state plus a
    /// stochastic state of `stoch` categorical variables with `classes` each.
    Rssm {
        deter: usize,
        stoch: usize,
        classes: usize,
    },
}

impl LatentSpec {
    /// Length of the latent vector z that crosses module boundaries.
    pub fn size(&self) -> usize {
        match *self {
            LatentSpec::Vector { size, .. } => size,
            LatentSpec::Rssm {
                deter,
                stoch,
                classes,
            } => deter + stoch * classes,
        }
    }
}

/// How a reward or value output is turned into a scalar.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Decoding {
    /// The output is the value itself (1 number per head).
    Scalar,
    /// The output is `bins` logits; value = symexp(sum softmax(logits) *
    /// linspace(vmin, vmax, bins)) (TD-MPC2's two-hot over symlog space).
    TwoHotSymlog { bins: usize, vmin: f32, vmax: f32 },
}

impl Decoding {
    /// TD-MPC2's decoding for `bins` outputs per head: two-hot over symlog
    /// `[vmin, vmax]`, or the value itself when there is one bin.
    pub fn two_hot_or_scalar(bins: usize, vmin: f32, vmax: f32) -> Decoding {
        if bins == 1 {
            Decoding::Scalar
        } else {
            Decoding::TwoHotSymlog { bins, vmin, vmax }
        }
    }

    /// Numbers per head in the module output.
    pub fn width(&self) -> usize {
        match *self {
            Decoding::Scalar => 1,
            Decoding::TwoHotSymlog { bins, .. } => bins,
        }
    }
}

/// Planner defaults shipped with the model (see the planner docs).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlannerDefaults {
    /// Candidates N (policy rollouts; the reused plan comes on top).
    pub candidates: usize,
    /// Horizon H.
    pub horizon: usize,
    /// Gradient iterations K.
    pub iterations: usize,
    /// Adam step size on normalized actions.
    pub step_size: f32,
    /// Uncertainty weight beta.
    pub beta: f32,
    /// The gradient planners' named options (absent: the Dream-MPC
    /// authors' values; see `crate::planner::options`).
    #[serde(default)]
    pub options: super::planner_options::DreamOptions,
}

/// One ONNX module and its interface.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModuleSpec {
    /// ONNX file, relative to the bundle folder.
    pub file: String,
    /// Graph inputs in order: name and row size (the batch is dynamic).
    pub inputs: Vec<TensorSpec>,
    /// Graph outputs in order.
    pub outputs: Vec<TensorSpec>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub size: usize,
}

/// Where a bundle came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// `dream-mpc-train` version or other producer.
    pub producer: String,
    /// Agent steps the model was trained on (TD-MPC2's unit: one action,
    /// held for `action_repeat` control steps). Bundles exported before
    /// the trainer counted agent steps recorded control steps here.
    pub training_steps: u64,
    pub seed: u64,
    /// Source revision (git) of the producer, if known.
    pub revision: Option<String>,
    /// Free-form notes (e.g. the command line).
    pub notes: Option<String>,
}

/// `references.json`: per module, a few cases computed by libtorch.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct References {
    pub modules: BTreeMap<String, Vec<ReferenceCase>>,
}

/// One reference case: a batch of inputs, the outputs, a random cotangent
/// per output and the vector-Jacobian product w.r.t. each input.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReferenceCase {
    pub batch: usize,
    /// Input name -> row-major `[batch, size]` values.
    pub inputs: BTreeMap<String, Vec<f32>>,
    /// Output name -> row-major values.
    pub outputs: BTreeMap<String, Vec<f32>>,
    /// Output name -> cotangent (dL/d output) used for the VJP.
    pub cotangents: BTreeMap<String, Vec<f32>>,
    /// Input name -> dL/d input = sum over outputs of cotangent^T J.
    pub vjp: BTreeMap<String, Vec<f32>>,
}

fn one() -> usize {
    1
}
