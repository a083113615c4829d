//! Bundle export: one ONNX file per module written straight from the tch
//! weights (no Python), `references.json` computed by libtorch autograd, and
//! `manifest.json` with the sha256 of every file, all written by the
//! controller's one bundle writer ([`dream_mpc::bundle::write_bundle`]).
//!
//! Each tch [`Layer`] becomes the same ONNX nodes through the controller's
//! block emitter ([`GraphBuilder::norm_act`]): `Gemm(transB=1)`, then
//! `LayerNormalization(axis=-1)` and the activation. Mish is written as
//! `Mul(x, Tanh(Softplus(x)))` ([`OnnxAct::MishOps`]): the `Mish` op only
//! entered the ONNX standard at opset 18 (tract reads it anyway, but other
//! runtimes at opset 17 need not). SimNorm is `Reshape [-1, L/g, g] ->
//! Softmax(axis=-1) -> Reshape [-1, L]`. Inputs `z` and `a` are separate graph inputs joined by a
//! `Concat` inside the graph. The policy's last `Linear` is written as two
//! `Gemm`s (rows of mu and of log_std), and log_std is squashed with
//! `Tanh -> Mul -> Add` exactly as [`WorldModel::squash_log_std`].
//!
//! Reward and value decoding follow the model: `TwoHotSymlog` with the
//! model's bins and range (TD-MPC2's default, 101 bins over [-10, 10]), or
//! `Scalar` for models with `num_bins = 1`; the reward module outputs one
//! head's logits and `q` the heads' logits side by side (head-major).
//!
//! The TD-MPC2 importer ([`crate::import`]) copies a checkpoint into a
//! [`WorldModel`] and writes its bundle through these same functions.
//!
//! The layout is `latent.kind = "vector"`; an RSSM exporter would write
//! `kind = "rssm"` plus a `recurrent` module with the same manifest.

use crate::model::{to_vec, Act, Layer, Mlp, WorldModel, LN_EPS};
use dream_mpc::bundle::manifest::{
    ActionSpec, Decoding, Manifest, ManifestParts, ModuleSpec, ObservationRange, ObservationSpec,
    PlannerDefaults, Provenance, ReferenceCase, References, TensorSpec,
};
use dream_mpc::bundle::onnx_build::{za_module, Act as OnnxAct, GraphBuilder, Norm, OnnxModel};
use dream_mpc::bundle::{write_bundle, BuiltModule, BundleError};
use dream_mpc::rng::Rng;
use std::collections::BTreeMap;
use std::path::Path;
use tch::Tensor;

/// Everything the manifest needs that the model itself does not know.
#[derive(Clone, Debug)]
pub struct ExportMeta {
    pub task: String,
    /// Observation normalization (length obs_size; std > 0).
    pub obs_mean: Vec<f32>,
    pub obs_std: Vec<f32>,
    /// Range of the observations seen in training (from the replay
    /// buffer), for the node's plausibility check; `None` = unknown.
    pub obs_range: Option<ObservationRange>,
    /// Actuator bounds for model actions -1 and +1.
    pub action_low: Vec<f32>,
    pub action_high: Vec<f32>,
    pub discount: f32,
    /// Environment steps per agent step (see the manifest's field).
    pub action_repeat: usize,
    pub planner: PlannerDefaults,
    pub provenance: Provenance,
}

impl ExportMeta {
    /// Identity normalization, bounds [-1, 1], discount 0.99 and the
    /// default planner budget: for untrained plumbing bundles.
    pub fn plain(task: &str, obs_size: usize, action_size: usize) -> Self {
        ExportMeta {
            task: task.into(),
            obs_mean: vec![0.0; obs_size],
            obs_std: vec![1.0; obs_size],
            obs_range: None,
            action_low: vec![-1.0; action_size],
            action_high: vec![1.0; action_size],
            discount: 0.99,
            action_repeat: 1,
            planner: default_planner(),
            provenance: Provenance {
                producer: format!("dream-mpc-train {}", env!("CARGO_PKG_VERSION")),
                ..Default::default()
            },
        }
    }
}

/// The manifest's decoding of the model's reward and Q heads.
pub fn decoding(model: &WorldModel) -> Decoding {
    let th = model.twohot();
    Decoding::two_hot_or_scalar(th.bins, th.vmin, th.vmax)
}

/// Default planner budget and options shipped in bundles: the Dream-MPC
/// authors' (N = 5, H = 3, K = 1 SGD step of 0.1, beta = 0.01; see
/// `dream_mpc::planner::options`).
pub fn default_planner() -> PlannerDefaults {
    PlannerDefaults::preset(dream_mpc::planner::Preset::Authors)
}

/// What can go wrong writing a bundle.
#[derive(Debug)]
pub enum ExportError {
    /// A file or folder could not be written (names it).
    Bundle(BundleError),
    /// Metadata does not match the model (e.g. wrong normalization length).
    Meta(String),
    /// libtorch failed computing references.
    Torch(tch::TchError),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Bundle(e) => write!(f, "{e}"),
            ExportError::Meta(m) => write!(f, "export metadata: {m}"),
            ExportError::Torch(e) => write!(f, "libtorch: {e}"),
        }
    }
}

impl std::error::Error for ExportError {}

dream_mpc::error_from!(ExportError {
    Bundle(BundleError),
    Torch(tch::TchError),
});

fn emit_layer(g: &mut GraphBuilder, x: &str, l: &Layer) -> String {
    let w = to_vec(&l.linear.ws);
    let b = l.linear.bs.as_ref().map(to_vec);
    let (scale, bias, act) = match &l.norm {
        None => (vec![], vec![], None),
        Some((ln, act)) => (
            to_vec(ln.ws.as_ref().expect("affine LN")),
            to_vec(ln.bs.as_ref().expect("affine LN")),
            Some(*act),
        ),
    };
    let norm = act.map(|_| Norm {
        scale: &scale,
        bias: &bias,
        epsilon: LN_EPS as f32,
    });
    let act = match act {
        None => OnnxAct::Identity,
        Some(Act::Mish) => OnnxAct::MishOps,
        Some(Act::SimNorm(grp)) => OnnxAct::SimNorm(grp),
    };
    let y = g.linear(x, &w, b.as_deref(), l.d_in, l.d_out);
    g.norm_act(&y, l.d_out, norm, act)
}

fn emit_mlp(g: &mut GraphBuilder, x: &str, m: &Mlp, skip_last: bool) -> String {
    let n = m.layers.len() - usize::from(skip_last);
    let mut h = x.to_string();
    for l in &m.layers[..n] {
        h = emit_layer(g, &h, l);
    }
    h
}

/// The five ONNX graphs of `model` with their manifest interfaces.
pub fn onnx_modules(model: &WorldModel) -> Vec<BuiltModule> {
    let (o, a, l) = (model.obs_size, model.action_size, model.cfg.latent);
    let spec = |name: &str, ins: &[(&str, usize)], outs: &[(&str, usize)]| ModuleSpec {
        file: format!("{name}.onnx"),
        inputs: ins
            .iter()
            .map(|&(n, s)| TensorSpec {
                name: n.into(),
                size: s,
            })
            .collect(),
        outputs: outs
            .iter()
            .map(|&(n, s)| TensorSpec {
                name: n.into(),
                size: s,
            })
            .collect(),
    };
    let mut out = vec![];
    let mut insert = |name: &str, (model, spec): (OnnxModel, ModuleSpec)| {
        out.push(BuiltModule {
            name: name.into(),
            spec,
            model,
        })
    };

    let mut g = GraphBuilder::new("encoder");
    let x = g.input("obs", o);
    let z = emit_mlp(&mut g, &x, &model.encoder, false);
    g.output(&z, "z", l);
    insert(
        "encoder",
        (g.finish(), spec("encoder", &[("obs", o)], &[("z", l)])),
    );

    let za_graph = |name: &str, m: &[&Mlp], out_name: &str, out_size: usize| {
        let emit = |g: &mut GraphBuilder, x: &str, k: usize| emit_mlp(g, x, m[k], false);
        za_module(name, (l, a), m.len(), emit, (out_name, out_size))
    };
    let za_ins = [("z", l), ("a", a)];
    let w = model.head_width();
    insert(
        "dynamics",
        (
            za_graph("dynamics", &[&model.dynamics], "z_next", l),
            spec("dynamics", &za_ins, &[("z_next", l)]),
        ),
    );
    insert(
        "reward",
        (
            za_graph("reward", &[&model.reward], "r", w),
            spec("reward", &za_ins, &[("r", w)]),
        ),
    );
    let nq = model.q.len();
    let qs: Vec<&Mlp> = model.q.iter().collect();
    insert(
        "q",
        (
            za_graph("q", &qs, "q", nq * w),
            spec("q", &za_ins, &[("q", nq * w)]),
        ),
    );

    let mut g = GraphBuilder::new("policy");
    let z = g.input("z", l);
    let h = emit_mlp(&mut g, &z, &model.policy, true);
    let last = model.policy.layers.last().expect("policy has layers");
    let w = last.linear.ws.shallow_clone();
    let bias = last
        .linear
        .bs
        .as_ref()
        .expect("policy bias")
        .shallow_clone();
    let ai = a as i64;
    let mu = g.linear(
        &h,
        &to_vec(&w.narrow(0, 0, ai)),
        Some(&to_vec(&bias.narrow(0, 0, ai))),
        last.d_in,
        a,
    );
    let raw = g.linear(
        &h,
        &to_vec(&w.narrow(0, ai, ai)),
        Some(&to_vec(&bias.narrow(0, ai, ai))),
        last.d_in,
        a,
    );
    let (lo, hi) = (model.cfg.log_std_min, model.cfg.log_std_max);
    let t = g.node("Tanh", &[&raw], vec![]);
    let half = g.constant("half_range", &[1], &[0.5 * (hi - lo)]);
    let mid = g.constant("mid", &[1], &[lo + 0.5 * (hi - lo)]);
    let ts = g.node("Mul", &[&t, &half], vec![]);
    let log_std = g.node("Add", &[&ts, &mid], vec![]);
    g.output(&mu, "mu", a);
    g.output(&log_std, "log_std", a);
    insert(
        "policy",
        (
            g.finish(),
            spec("policy", &[("z", l)], &[("mu", a), ("log_std", a)]),
        ),
    );
    out
}

fn normal_vec(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| (rng.normal() * scale) as f32).collect()
}

/// One reference case: inputs are leaves with `requires_grad`, outputs come
/// from `f`, the VJP is the gradient of `sum_k <cotangent_k, output_k>`.
pub fn reference_case(
    batch: usize,
    inputs: Vec<(&str, Vec<f32>, usize)>,
    f: impl Fn(&[Tensor]) -> Vec<(&'static str, Tensor)>,
    rng: &mut Rng,
) -> Result<ReferenceCase, tch::TchError> {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|(_, v, s)| {
            Tensor::from_slice(v)
                .view([batch as i64, *s as i64])
                .set_requires_grad(true)
        })
        .collect();
    let outs = f(&leaves);
    let mut loss = Tensor::zeros([], (tch::Kind::Float, tch::Device::Cpu));
    let mut case = ReferenceCase {
        batch,
        inputs: inputs
            .iter()
            .map(|(n, v, _)| (n.to_string(), v.clone()))
            .collect(),
        outputs: BTreeMap::new(),
        cotangents: BTreeMap::new(),
        vjp: BTreeMap::new(),
    };
    for (name, y) in &outs {
        let cot = normal_vec(rng, y.numel(), 1.0);
        let ct = Tensor::from_slice(&cot).view(y.size().as_slice());
        loss += (y * &ct).sum(tch::Kind::Float);
        case.outputs.insert(name.to_string(), to_vec(y));
        case.cotangents.insert(name.to_string(), cot);
    }
    let grads = Tensor::f_run_backward(&[&loss], &leaves, false, false)?;
    for ((name, _, _), g) in inputs.iter().zip(grads) {
        case.vjp.insert(name.to_string(), to_vec(&g));
    }
    Ok(case)
}

/// Reference vectors for every module: `cases` random cases of `batch`
/// rows each, seeded by `seed`. Latent inputs are encodings of random
/// observations (valid SimNorm latents); actions are uniform in [-1, 1].
pub fn references(
    model: &WorldModel,
    cases: usize,
    batch: usize,
    seed: u64,
) -> Result<References, tch::TchError> {
    let mut rng = Rng::new(seed);
    let (o, a, l) = model.sizes();
    let mut modules: BTreeMap<String, Vec<ReferenceCase>> = BTreeMap::new();
    let latent = |rng: &mut Rng| {
        let obs =
            Tensor::from_slice(&normal_vec(rng, batch * o, 1.0)).view([batch as i64, o as i64]);
        to_vec(&tch::no_grad(|| model.encode(&obs)))
    };
    let action = |rng: &mut Rng| -> Vec<f32> {
        (0..batch * a)
            .map(|_| rng.uniform_in(-1.0, 1.0) as f32)
            .collect()
    };
    for _ in 0..cases {
        let obs = normal_vec(&mut rng, batch * o, 1.0);
        let c = reference_case(
            batch,
            vec![("obs", obs, o)],
            |x| vec![("z", model.encode(&x[0]))],
            &mut rng,
        )?;
        modules.entry("encoder".into()).or_default().push(c);

        type ZaFn<'m> = Box<dyn Fn(&[Tensor]) -> Vec<(&'static str, Tensor)> + 'm>;
        let za: [(&str, ZaFn); 3] = [
            (
                "dynamics",
                Box::new(|x: &[Tensor]| vec![("z_next", model.next(&x[0], &x[1]))]),
            ),
            (
                "reward",
                Box::new(|x: &[Tensor]| vec![("r", model.reward(&x[0], &x[1]))]),
            ),
            (
                "q",
                Box::new(|x: &[Tensor]| vec![("q", model.q_all(&x[0], &x[1], false))]),
            ),
        ];
        for (name, f) in za {
            let z = latent(&mut rng);
            let act = action(&mut rng);
            let c = reference_case(batch, vec![("z", z, l), ("a", act, a)], f, &mut rng)?;
            modules.entry(name.into()).or_default().push(c);
        }

        let z = latent(&mut rng);
        let c = reference_case(
            batch,
            vec![("z", z, l)],
            |x| {
                let (mu, ls) = model.pi(&x[0]);
                vec![("mu", mu), ("log_std", ls)]
            },
            &mut rng,
        )?;
        modules.entry("policy".into()).or_default().push(c);
    }
    Ok(References { modules })
}

/// Write the bundle for `model` into `dir` (created if missing; files of
/// the same names are replaced). `manifest.json` is written last, so a
/// folder with a manifest is complete. References: 3 cases of batch 4.
pub fn export_bundle(
    model: &WorldModel,
    meta: &ExportMeta,
    dir: &Path,
    ref_seed: u64,
) -> Result<Manifest, ExportError> {
    let (o, a) = (model.obs_size, model.action_size);
    for (what, len, want) in [
        ("obs_mean", meta.obs_mean.len(), o),
        ("obs_std", meta.obs_std.len(), o),
        ("action_low", meta.action_low.len(), a),
        ("action_high", meta.action_high.len(), a),
    ] {
        if len != want {
            return Err(ExportError::Meta(format!(
                "{what} has length {len}, expected {want}"
            )));
        }
    }
    if let Some((i, s)) = meta
        .obs_std
        .iter()
        .enumerate()
        .find(|(_, s)| s.is_nan() || **s <= 0.0)
    {
        return Err(ExportError::Meta(format!("obs_std[{i}] = {s} must be > 0")));
    }
    let refs = references(model, 3, 4, ref_seed)?;
    let manifest = Manifest::new(ManifestParts {
        task: meta.task.clone(),
        observation: ObservationSpec {
            size: o,
            mean: meta.obs_mean.clone(),
            std: meta.obs_std.clone(),
            range: meta.obs_range.clone(),
        },
        action: ActionSpec {
            size: a,
            low: meta.action_low.clone(),
            high: meta.action_high.clone(),
        },
        latent: model.cfg.latent,
        simnorm_group: model.cfg.simnorm_group,
        discount: meta.discount,
        action_repeat: meta.action_repeat,
        decoding: decoding(model),
        q_ensemble: model.q.len(),
        planner: meta.planner.clone(),
        provenance: meta.provenance.clone(),
    });
    Ok(write_bundle(
        dir,
        manifest,
        &onnx_modules(model),
        Some(&refs),
    )?)
}
