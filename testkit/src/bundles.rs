//! Random TD-MPC2-shaped bundles for tests and benchmarks (planner,
//! sim and controller tests reuse them).
//!
//! [`TdmpcModel::random`] draws the weights of a TD-MPC2-style world model
//! (NormedLinear = Linear -> LayerNorm -> Mish blocks, SimNorm latent, a
//! two-hot reward head, an ensemble of Q heads, a Gaussian policy head);
//! the weights are public fields, so the same model can be rebuilt in
//! libtorch for side-by-side timing or reference checks.
//! [`TdmpcModel::write`] writes a complete bundle folder (manifest, ONNX
//! files, checksums) through the controller's one bundle writer,
//! [`dream_mpc::bundle::write_bundle`] (references are optional there).
//!
//! ```no_run
//! use dream_mpc::load::Bundle;
//! use dream_mpc_testkit::bundles::write_random_tdmpc_bundle;
//! let dir = std::env::temp_dir().join("tiny-bundle");
//! write_random_tdmpc_bundle(&dir, 5, 1, 16, 32, 2, 7).unwrap();
//! let b = Bundle::load(&dir).unwrap();
//! assert!(b.modules.contains_key("dynamics"));
//! ```

use dream_mpc::bundle::manifest::*;
use dream_mpc::bundle::onnx_build::{attr_int, za_module, Act, GraphBuilder, Norm};
use dream_mpc::bundle::{write_bundle, BuiltModule, BundleError};
use dream_mpc::load::Bundle;
use dream_mpc::rng::Rng;
use std::path::{Path, PathBuf};

/// Sizes of a random TD-MPC2-style model.
#[derive(Clone, Debug, PartialEq)]
pub struct TdmpcSpec {
    pub obs: usize,
    pub act: usize,
    pub latent: usize,
    pub hidden: usize,
    /// Q ensemble size.
    pub n_q: usize,
    /// Two-hot bins of reward and Q (1 = scalar outputs).
    pub bins: usize,
    /// SimNorm group (must divide `latent`; 0 = no SimNorm).
    pub simnorm_group: usize,
    pub seed: u64,
}

impl TdmpcSpec {
    /// TD-MPC2 defaults (101 bins, SimNorm groups of 8) at the given sizes.
    pub fn new(
        obs: usize,
        act: usize,
        latent: usize,
        hidden: usize,
        n_q: usize,
        seed: u64,
    ) -> Self {
        TdmpcSpec {
            obs,
            act,
            latent,
            hidden,
            n_q,
            bins: 101,
            simnorm_group: 8,
            seed,
        }
    }
}

impl TdmpcSpec {
    /// The benchmark's small model: latent 64, hidden 256, 6 actions,
    /// 5 Q heads, 101 bins (`controller/benches/kernels.rs`; the trainer's
    /// libtorch comparison builds the same weights from the same spec).
    pub fn bench_small() -> Self {
        TdmpcSpec::new(24, 6, 64, 256, 5, 1)
    }
    /// The benchmark's medium model: latent 512, hidden 512 (TD-MPC2 "5M").
    pub fn bench_medium() -> Self {
        TdmpcSpec::new(24, 6, 512, 512, 5, 2)
    }
    /// The loader and fuzz tests' tiny model: latent 8, hidden 8, 2 Q
    /// heads, 3 two-hot bins (SimNorm groups of 8).
    pub fn tiny(obs: usize, act: usize, seed: u64) -> Self {
        TdmpcSpec {
            bins: 3,
            ..TdmpcSpec::new(obs, act, 8, 8, 2, seed)
        }
    }
}

/// `torch.nn.Linear`: `y = x w^T + b`, `w` row-major `[d_out, d_in]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearP {
    pub d_in: usize,
    pub d_out: usize,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

/// `torch.nn.LayerNorm(d)` parameters (eps 1e-5).
#[derive(Clone, Debug, PartialEq)]
pub struct NormP {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// One layer: Linear, optional LayerNorm, activation.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerP {
    pub linear: LinearP,
    pub norm: Option<NormP>,
    pub act: Act,
}

/// A stack of layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    pub layers: Vec<LayerP>,
}

fn uniform(rng: &mut Rng, n: usize, a: f32) -> Vec<f32> {
    (0..n)
        .map(|_| rng.uniform_in(-a as f64, a as f64) as f32)
        .collect()
}

impl LinearP {
    /// torch's default init: U(-1/sqrt(in), 1/sqrt(in)).
    pub fn random(rng: &mut Rng, d_in: usize, d_out: usize) -> Self {
        let a = 1.0 / (d_in as f32).sqrt();
        LinearP {
            d_in,
            d_out,
            w: uniform(rng, d_in * d_out, a),
            b: uniform(rng, d_out, a),
        }
    }
}

impl Mlp {
    /// TD-MPC2's `mlp(in, [hidden..], out, act)`: NormedLinear(Mish) blocks
    /// through `dims[..n-1]`, then the last layer NormedLinear with `last`
    /// (when `Some`) or a plain Linear (when `None`). LayerNorm scales and
    /// shifts are randomized around (1, 0) so that they matter in tests.
    pub fn random(rng: &mut Rng, dims: &[usize], last: Option<Act>) -> Self {
        let n = dims.len() - 1;
        let layers = (0..n)
            .map(|k| {
                let linear = LinearP::random(rng, dims[k], dims[k + 1]);
                let normed = k + 1 < n || last.is_some();
                let norm = normed.then(|| NormP {
                    gamma: (0..dims[k + 1])
                        .map(|_| 1.0 + 0.2 * rng.normal() as f32)
                        .collect(),
                    beta: (0..dims[k + 1])
                        .map(|_| 0.1 * rng.normal() as f32)
                        .collect(),
                });
                let act = if k + 1 < n {
                    Act::Mish
                } else {
                    last.unwrap_or(Act::Identity)
                };
                LayerP { linear, norm, act }
            })
            .collect();
        Mlp { layers }
    }

    /// Emit the layers into `g` starting from value `x`; returns the output value.
    pub fn emit(&self, g: &mut GraphBuilder, x: &str) -> String {
        let mut h = x.to_string();
        for l in &self.layers {
            let p = &l.linear;
            let norm = l.norm.as_ref().map(|n| Norm {
                scale: &n.gamma,
                bias: &n.beta,
                epsilon: 1e-5,
            });
            let y = g.linear(&h, &p.w, Some(&p.b), p.d_in, p.d_out);
            h = g.norm_act(&y, p.d_out, norm, l.act);
        }
        h
    }

    /// Output size.
    pub fn d_out(&self) -> usize {
        self.layers.last().map_or(0, |l| l.linear.d_out)
    }
}

/// A random TD-MPC2-style world model with policy.
#[derive(Clone, Debug, PartialEq)]
pub struct TdmpcModel {
    pub spec: TdmpcSpec,
    /// obs -> z (SimNorm).
    pub encoder: Mlp,
    /// [z, a] -> z' (SimNorm).
    pub dynamics: Mlp,
    /// [z, a] -> reward logits (`bins`).
    pub reward: Mlp,
    /// `n_q` heads, each [z, a] -> `bins`; the module output is head-major.
    pub q: Vec<Mlp>,
    /// z -> [mu, log_std] (split in the graph).
    pub policy: Mlp,
}

fn ts(name: &str, size: usize) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        size,
    }
}

impl TdmpcModel {
    /// Draw all weights from `spec.seed`.
    pub fn random(spec: &TdmpcSpec) -> Self {
        let mut rng = Rng::new(spec.seed);
        let s = spec;
        let lat = if s.simnorm_group > 0 {
            Act::SimNorm(s.simnorm_group)
        } else {
            Act::Mish
        };
        let za = s.latent + s.act;
        TdmpcModel {
            spec: spec.clone(),
            encoder: Mlp::random(&mut rng, &[s.obs, s.hidden, s.latent], Some(lat)),
            dynamics: Mlp::random(&mut rng, &[za, s.hidden, s.hidden, s.latent], Some(lat)),
            reward: Mlp::random(&mut rng, &[za, s.hidden, s.hidden, s.bins], None),
            q: (0..s.n_q)
                .map(|_| Mlp::random(&mut rng, &[za, s.hidden, s.hidden, s.bins], None))
                .collect(),
            policy: Mlp::random(&mut rng, &[s.latent, s.hidden, s.hidden, 2 * s.act], None),
        }
    }

    /// The five modules as ONNX graphs with their manifest interfaces:
    /// `encoder` (obs -> z), `dynamics` (z, a -> z_next), `reward`
    /// (z, a -> r), `q` (z, a -> q), `policy` (z -> mu, log_std).
    pub fn modules(&self) -> Vec<BuiltModule> {
        let s = &self.spec;
        let mut out = vec![];
        // encoder
        let mut g = GraphBuilder::new("encoder");
        let x = g.input("obs", s.obs);
        let z = self.encoder.emit(&mut g, &x);
        g.output(&z, "z", s.latent);
        out.push((
            "encoder",
            vec![ts("obs", s.obs)],
            vec![ts("z", s.latent)],
            g.finish(),
        ));
        let q: Vec<&Mlp> = self.q.iter().collect();
        for (name, mlps, (o, size)) in [
            ("dynamics", vec![&self.dynamics], ("z_next", s.latent)),
            ("reward", vec![&self.reward], ("r", s.bins)),
            // the Q ensemble, head-major
            ("q", q, ("q", s.n_q * s.bins)),
        ] {
            let emit = |g: &mut GraphBuilder, x: &str, k: usize| mlps[k].emit(g, x);
            let model = za_module(name, (s.latent, s.act), mlps.len(), emit, (o, size));
            let inputs = vec![ts("z", s.latent), ts("a", s.act)];
            out.push((name, inputs, vec![ts(o, size)], model));
        }
        // policy
        let mut g = GraphBuilder::new("policy");
        let z = g.input("z", s.latent);
        let h = self.policy.emit(&mut g, &z);
        let sizes = g.constant_i64("split", &[s.act as i64, s.act as i64]);
        let parts = g.node_n("Split", &[&h, &sizes], 2, vec![attr_int("axis", 1)]);
        g.output(&parts[0], "mu", s.act);
        g.output(&parts[1], "log_std", s.act);
        out.push((
            "policy",
            vec![ts("z", s.latent)],
            vec![ts("mu", s.act), ts("log_std", s.act)],
            g.finish(),
        ));
        out.into_iter()
            .map(|(name, inputs, outputs, model)| BuiltModule {
                name: name.into(),
                spec: ModuleSpec {
                    file: format!("{name}.onnx"),
                    inputs,
                    outputs,
                },
                model,
            })
            .collect()
    }

    /// A manifest for this model (checksums and modules left empty; see
    /// [`dream_mpc::bundle::write_bundle`]).
    pub fn manifest(&self) -> Manifest {
        let s = &self.spec;
        Manifest::new(ManifestParts {
            task: "random-test".into(),
            observation: ObservationSpec::unnormalized(s.obs, None),
            action: ActionSpec::unit(s.act),
            latent: s.latent,
            simnorm_group: s.simnorm_group,
            discount: 0.99,
            action_repeat: 1,
            decoding: Decoding::two_hot_or_scalar(s.bins, -10.0, 10.0),
            q_ensemble: s.n_q,
            planner: PlannerDefaults {
                candidates: 8,
                horizon: 3,
                iterations: 4,
                step_size: 0.1,
                beta: 0.1,
                options: dream_mpc::planner::DreamOptions::sketch(),
            },
            provenance: Provenance {
                producer: "dream_mpc_testkit::bundles".into(),
                training_steps: 0,
                seed: s.seed,
                revision: None,
                notes: Some(format!("{s:?}")),
            },
        })
    }

    /// The one module `name` of [`TdmpcModel::modules`]; panics when there
    /// is none of that name.
    pub fn module(&self, name: &str) -> BuiltModule {
        self.modules()
            .into_iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no module {name}"))
    }

    /// Write the bundle folder `dir` (created if needed); returns its manifest.
    pub fn write(&self, dir: &Path) -> Result<Manifest, BundleError> {
        write_bundle(dir, self.manifest(), &self.modules(), None)
    }
}

/// Write a random TD-MPC2-style bundle (101 two-hot bins, SimNorm groups of
/// 8 when `latent` is a multiple of 8, else no SimNorm) to `dir`.
pub fn write_random_tdmpc_bundle(
    dir: &Path,
    obs: usize,
    act: usize,
    latent: usize,
    hidden: usize,
    n_q: usize,
    seed: u64,
) -> Result<Manifest, BundleError> {
    let mut spec = TdmpcSpec::new(obs, act, latent, hidden, n_q, seed);
    if !latent.is_multiple_of(8) {
        spec.simnorm_group = 0;
    }
    TdmpcModel::random(&spec).write(dir)
}

/// A fresh scratch folder path `dream-mpc-<name>-<pid>` in the temp dir
/// (removed first if a previous run left it; the caller creates and
/// removes it).
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dream-mpc-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A random bundle of `spec` written into [`scratch_dir`]`(name)` and
/// loaded (compiled and checked); returns the folder, for the caller to
/// remove, and the bundle.
pub fn random_bundle(name: &str, spec: &TdmpcSpec) -> (PathBuf, Bundle) {
    let dir = scratch_dir(name);
    TdmpcModel::random(spec).write(&dir).unwrap();
    let bundle = Bundle::load(&dir).unwrap();
    (dir, bundle)
}
