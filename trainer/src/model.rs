//! The TD-MPC2-style world model in libtorch: encoder h, latent dynamics d,
//! reward R, an ensemble of Q heads and a Gaussian policy prior pi.
//!
//! Every module is a stack of [`Layer`]s (`Linear -> LayerNorm -> act`),
//! simple enough that [`crate::export`] mirrors it 1:1 in ONNX. The
//! learner also views the Q heads as one [`QStack`] (weights `[E, out,
//! in]`, same storage as the heads' named variables) to evaluate them with
//! one batched matmul per layer. The latent
//! z is SimNorm-normalized in groups of `simnorm_group` (softmax per group).
//! Reward and every Q head output `num_bins` logits of TD-MPC2's two-hot
//! symlog decoding (101 bins over [-10, 10]; see [`crate::twohot`]), or
//! one scalar with `num_bins = 1`. Initialization as TD-MPC2: every
//! Linear weight normal(0, 0.02) (its `trunc_normal_(std=0.02)` truncates
//! at +-2 absolute, i.e. 100 std: no truncation in practice), biases zero,
//! and the output weights of the reward and Q heads zero, so an untrained
//! model predicts reward and value 0.

use serde::{Deserialize, Serialize};
use tch::{nn, nn::Module, Kind, Tensor};

/// Sizes of the model. Defaults are a small model that trains on CPU.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Latent size L (a multiple of `simnorm_group`). Default 64.
    pub latent: usize,
    /// Hidden width of every MLP. Default 256.
    pub hidden: usize,
    /// Hidden layers per MLP (each `Linear -> LayerNorm -> Mish`). Default 2.
    pub layers: usize,
    /// Hidden width of the encoder (TD-MPC2's `enc_dim`). Default 256.
    pub enc_hidden: usize,
    /// Hidden layers of the encoder (TD-MPC2: `num_enc_layers - 1` = 1).
    /// Default 1.
    pub enc_layers: usize,
    /// Number of Q heads (the ensemble). Default 5.
    pub n_q: usize,
    /// SimNorm group size (the latent is a softmax per group). Default 8.
    pub simnorm_group: usize,
    /// Policy log-std range: `log_std = min + (max-min) * (tanh(x)+1)/2`.
    /// Defaults -10 and 2 (TD-MPC2).
    pub log_std_min: f32,
    pub log_std_max: f32,
    /// Dropout in the first layer of each Q head (`Linear -> Dropout ->
    /// LayerNorm -> Mish`), training only (not exported). Default 0.01.
    pub q_dropout: f64,
    /// Reward and value head width: 1 = a scalar regressed with MSE; >= 2 =
    /// two-hot logits over `num_bins` symlog bins in [vmin, vmax], trained
    /// with soft cross-entropy (TD-MPC2). Default 101.
    pub num_bins: usize,
    /// Two-hot range in symlog space. Defaults -10 and 10.
    pub vmin: f32,
    pub vmax: f32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            latent: 64,
            hidden: 256,
            layers: 2,
            enc_hidden: 256,
            enc_layers: 1,
            n_q: 5,
            simnorm_group: 8,
            log_std_min: -10.0,
            log_std_max: 2.0,
            q_dropout: 0.01,
            num_bins: 101,
            vmin: -10.0,
            vmax: 10.0,
        }
    }
}

impl ModelConfig {
    /// The quick model of the tests and the op-count benchmark: latent 16,
    /// MLP and encoder width 32, `n_q` heads; every other size as default.
    pub fn tiny(n_q: usize) -> Self {
        ModelConfig {
            latent: 16,
            hidden: 32,
            enc_hidden: 32,
            n_q,
            ..Default::default()
        }
    }
}

/// An invalid model configuration, naming the field and value.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigError {
    /// A size that must be positive is zero.
    Zero(&'static str),
    /// `latent` is not a multiple of `simnorm_group`.
    LatentNotGroupMultiple { latent: usize, group: usize },
    /// `log_std_min >= log_std_max` or not finite.
    LogStdRange { min: f32, max: f32 },
    /// Dropout outside [0, 1).
    Dropout(f64),
    /// `vmin >= vmax` (or not finite) with two-hot heads.
    BinRange { min: f32, max: f32 },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Zero(field) => write!(f, "model.{field} must be > 0"),
            ConfigError::LatentNotGroupMultiple { latent, group } => write!(
                f,
                "model.latent = {latent} is not a multiple of model.simnorm_group = {group}"
            ),
            ConfigError::LogStdRange { min, max } => write!(
                f,
                "model.log_std_min = {min} must be finite and below model.log_std_max = {max}"
            ),
            ConfigError::Dropout(p) => write!(f, "model.q_dropout = {p} must be in [0, 1)"),
            ConfigError::BinRange { min, max } => write!(
                f,
                "model.vmin = {min} must be finite and below model.vmax = {max}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ModelConfig {
    /// Check every field; the first problem is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (name, v) in [
            ("latent", self.latent),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("enc_hidden", self.enc_hidden),
            ("enc_layers", self.enc_layers),
            ("n_q", self.n_q),
            ("num_bins", self.num_bins),
            ("simnorm_group", self.simnorm_group),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if !self.latent.is_multiple_of(self.simnorm_group) {
            return Err(ConfigError::LatentNotGroupMultiple {
                latent: self.latent,
                group: self.simnorm_group,
            });
        }
        if !(self.log_std_min.is_finite()
            && self.log_std_max.is_finite()
            && self.log_std_min < self.log_std_max)
        {
            return Err(ConfigError::LogStdRange {
                min: self.log_std_min,
                max: self.log_std_max,
            });
        }
        if !(0.0..1.0).contains(&self.q_dropout) {
            return Err(ConfigError::Dropout(self.q_dropout));
        }
        if self.num_bins > 1
            && !(self.vmin.is_finite() && self.vmax.is_finite() && self.vmin < self.vmax)
        {
            return Err(ConfigError::BinRange {
                min: self.vmin,
                max: self.vmax,
            });
        }
        Ok(())
    }
}

/// Activation after a layer's LayerNorm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// `x * tanh(softplus(x))`.
    Mish,
    /// Softmax over consecutive groups of this size.
    SimNorm(usize),
}

/// `Linear`, then optionally `LayerNorm -> act` (the plain output layer has
/// neither).
#[derive(Debug)]
pub struct Layer {
    pub linear: nn::Linear,
    pub norm: Option<(nn::LayerNorm, Act)>,
    pub d_in: usize,
    pub d_out: usize,
}

/// LayerNorm epsilon (torch default; written into the ONNX node).
pub const LN_EPS: f64 = 1e-5;

impl Layer {
    fn new(p: nn::Path, d_in: usize, d_out: usize, act: Option<Act>) -> Layer {
        let linear = nn::linear(&p / "linear", d_in as i64, d_out as i64, Default::default());
        let norm = act.map(|a| {
            let ln = nn::layer_norm(
                &p / "ln",
                vec![d_out as i64],
                nn::LayerNormConfig {
                    eps: LN_EPS,
                    ..Default::default()
                },
            );
            (ln, a)
        });
        Layer {
            linear,
            norm,
            d_in,
            d_out,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_t(x, 0.0, false)
    }

    /// Overwrite the layer's variables with PyTorch-layout values: weight
    /// `[d_out, d_in]` row-major, bias `[d_out]`, LayerNorm scale and shift
    /// `[d_out]`. A shape the layer does not have, or a bias or LayerNorm
    /// present on one side only, is an error naming `what`. Used by the
    /// checkpoint importer and by training that starts from a bundle.
    pub fn set(&self, w: &LayerWeights, what: &str) -> Result<(), String> {
        put(
            &self.linear.ws,
            w.weight,
            &[w.d_out, w.d_in],
            &format!("{what} weight"),
        )?;
        match (&self.linear.bs, w.bias) {
            (Some(t), Some(v)) => put(t, v, &[w.d_out], &format!("{what} bias"))?,
            (None, None) => {}
            _ => return Err(format!("{what}: bias present on one side only")),
        }
        match (&self.norm, w.ln) {
            (Some((ln, _)), Some((scale, shift))) => {
                let affine = |t: &Option<Tensor>| t.as_ref().expect("affine LN").shallow_clone();
                put(
                    &affine(&ln.ws),
                    scale,
                    &[w.d_out],
                    &format!("{what} LN scale"),
                )?;
                put(
                    &affine(&ln.bs),
                    shift,
                    &[w.d_out],
                    &format!("{what} LN shift"),
                )?;
            }
            (None, None) => {}
            _ => return Err(format!("{what}: LayerNorm present on one side only")),
        }
        Ok(())
    }

    /// Forward with dropout `p` between the Linear and the LayerNorm when
    /// `train` (TD-MPC2's NormedLinear).
    pub fn forward_t(&self, x: &Tensor, p: f64, train: bool) -> Tensor {
        let mut y = self.linear.forward(x);
        if train && p > 0.0 {
            y = y.dropout(p, true);
        }
        match &self.norm {
            None => y,
            Some((ln, act)) => {
                let y = ln.forward(&y);
                match *act {
                    Act::Mish => y.mish(),
                    Act::SimNorm(g) => simnorm(&y, g),
                }
            }
        }
    }
}

/// One layer's values in PyTorch layout, borrowed (see [`Layer::set`]).
#[derive(Clone, Copy, Debug)]
pub struct LayerWeights<'a> {
    pub d_in: usize,
    pub d_out: usize,
    /// `[d_out, d_in]`, row-major.
    pub weight: &'a [f32],
    pub bias: Option<&'a [f32]>,
    /// LayerNorm scale and shift.
    pub ln: Option<(&'a [f32], &'a [f32])>,
}

/// Copy `v` into the variable `t` when `t` has the shape `dims` (and `v`
/// its length).
fn put(t: &Tensor, v: &[f32], dims: &[usize], what: &str) -> Result<(), String> {
    let have: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    if have != dims || v.len() != dims.iter().product::<usize>() {
        return Err(format!(
            "{what}: {} values of shape {dims:?}, the model's variable is {have:?}",
            v.len()
        ));
    }
    let src = Tensor::from_slice(v)
        .view(t.size().as_slice())
        .to_kind(t.kind())
        .to_device(t.device());
    tch::no_grad(|| {
        let mut t = t.shallow_clone();
        t.copy_(&src);
    });
    Ok(())
}

/// SimNorm: softmax over consecutive groups of `g` along the last axis.
pub fn simnorm(x: &Tensor, g: usize) -> Tensor {
    let size = x.size();
    let l = size[size.len() - 1];
    x.reshape([-1, l / g as i64, g as i64])
        .softmax(-1, Kind::Float)
        .reshape(size.as_slice())
}

/// A stack of layers: `layers` hidden `Linear -> LN -> Mish` and an output
/// layer (`Linear -> LN -> SimNorm` for latents, plain `Linear` otherwise).
#[derive(Debug)]
pub struct Mlp {
    pub layers: Vec<Layer>,
}

impl Mlp {
    fn new(
        p: nn::Path,
        d_in: usize,
        hidden: usize,
        n_hidden: usize,
        d_out: usize,
        out: Option<Act>,
    ) -> Mlp {
        let mut layers = Vec::with_capacity(n_hidden + 1);
        let mut d = d_in;
        for k in 0..n_hidden {
            layers.push(Layer::new(&p / k, d, hidden, Some(Act::Mish)));
            d = hidden;
        }
        layers.push(Layer::new(&p / n_hidden, d, d_out, out));
        Mlp { layers }
    }

    /// Forward; `dropout` (training only) inside the first layer.
    pub fn forward_t(&self, x: &Tensor, dropout: f64, train: bool) -> Tensor {
        let mut h = self.layers[0].forward_t(x, dropout, train);
        for l in &self.layers[1..] {
            h = l.forward(&h);
        }
        h
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_t(x, 0.0, false)
    }
}

/// The world model with its variables in one `VarStore`.
#[derive(Debug)]
pub struct WorldModel {
    pub cfg: ModelConfig,
    pub obs_size: usize,
    pub action_size: usize,
    pub encoder: Mlp,
    pub dynamics: Mlp,
    pub reward: Mlp,
    pub q: Vec<Mlp>,
    pub policy: Mlp,
}

impl WorldModel {
    /// Build the modules under `root` (variables land in its `VarStore`).
    pub fn new(root: &nn::Path, cfg: &ModelConfig, obs_size: usize, action_size: usize) -> Self {
        let (l, h, n, a) = (cfg.latent, cfg.hidden, cfg.layers, action_size);
        let sn = Some(Act::SimNorm(cfg.simnorm_group));
        let bins = cfg.num_bins;
        let m = WorldModel {
            cfg: cfg.clone(),
            obs_size,
            action_size,
            encoder: Mlp::new(
                root / "encoder",
                obs_size,
                cfg.enc_hidden,
                cfg.enc_layers,
                l,
                sn,
            ),
            dynamics: Mlp::new(root / "dynamics", l + a, h, n, l, sn),
            reward: Mlp::new(root / "reward", l + a, h, n, bins, None),
            q: (0..cfg.n_q)
                .map(|k| Mlp::new(root / "q" / k, l + a, h, n, bins, None))
                .collect(),
            policy: Mlp::new(root / "policy", l, h, n, 2 * a, None),
        };
        m.init_weights();
        m
    }

    /// TD-MPC2's initialization (see the module docs).
    fn init_weights(&self) {
        tch::no_grad(|| {
            let mlps = [&self.encoder, &self.dynamics, &self.reward, &self.policy]
                .into_iter()
                .chain(self.q.iter());
            for m in mlps {
                for l in &m.layers {
                    let mut w = l.linear.ws.shallow_clone();
                    let _ = w.normal_(0.0, 0.02);
                    if let Some(b) = &l.linear.bs {
                        let _ = b.shallow_clone().zero_();
                    }
                }
            }
            for m in std::iter::once(&self.reward).chain(self.q.iter()) {
                let last = m.layers.last().expect("layers");
                let _ = last.linear.ws.shallow_clone().zero_();
            }
        });
    }

    /// (observation, action, latent) sizes.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (self.obs_size, self.action_size, self.cfg.latent)
    }

    /// Decoding of the reward and Q heads.
    pub fn twohot(&self) -> crate::twohot::TwoHot {
        crate::twohot::TwoHot {
            bins: self.cfg.num_bins,
            vmin: self.cfg.vmin,
            vmax: self.cfg.vmax,
        }
    }

    /// Outputs per reward or Q head (`num_bins`).
    pub fn head_width(&self) -> usize {
        self.cfg.num_bins
    }

    /// obs `[B, obs]` -> z `[B, L]`.
    pub fn encode(&self, obs: &Tensor) -> Tensor {
        self.encoder.forward(obs)
    }

    /// (z, a) -> z_next.
    pub fn next(&self, z: &Tensor, a: &Tensor) -> Tensor {
        self.dynamics.forward(&Tensor::cat(&[z, a], 1))
    }

    /// (z, a) -> reward logits `[B, num_bins]`.
    pub fn reward(&self, z: &Tensor, a: &Tensor) -> Tensor {
        self.reward.forward(&Tensor::cat(&[z, a], 1))
    }

    /// (z, a) -> Q logits `[B, n_q * num_bins]` (head-major columns);
    /// dropout when `train`.
    pub fn q_all(&self, z: &Tensor, a: &Tensor, train: bool) -> Tensor {
        let za = Tensor::cat(&[z, a], 1);
        let heads: Vec<Tensor> = self
            .q
            .iter()
            .map(|m| m.forward_t(&za, self.cfg.q_dropout, train))
            .collect();
        Tensor::cat(&heads, 1)
    }

    /// Logits `[B, num_bins]` of the Q heads listed in `heads`, in order;
    /// dropout when `train`.
    pub fn q_heads(&self, z: &Tensor, a: &Tensor, heads: &[usize], train: bool) -> Vec<Tensor> {
        let za = Tensor::cat(&[z, a], 1);
        heads
            .iter()
            .map(|&k| self.q[k].forward_t(&za, self.cfg.q_dropout, train))
            .collect()
    }

    /// z -> (mu, log_std), each `[B, A]`, log_std squashed into
    /// `[log_std_min, log_std_max]`.
    pub fn pi(&self, z: &Tensor) -> (Tensor, Tensor) {
        let out = self.policy.forward(z);
        let a = self.action_size as i64;
        let mu = out.narrow(1, 0, a);
        let raw = out.narrow(1, a, a);
        (mu, self.squash_log_std(&raw))
    }

    /// `min + (max - min) * (tanh(x) + 1) / 2`.
    pub fn squash_log_std(&self, raw: &Tensor) -> Tensor {
        let (lo, hi) = (self.cfg.log_std_min as f64, self.cfg.log_std_max as f64);
        raw.tanh() * (0.5 * (hi - lo)) + (lo + 0.5 * (hi - lo))
    }
}

/// The Q ensemble as stacked tensors: per layer a weight `[E, out, in]`,
/// bias `[E, out]` and LayerNorm scale and shift `[E, out]`, evaluated for
/// all (or selected) heads with one batched matmul per layer instead of E
/// separate MLPs: `Linear -> Dropout (first layer, training) -> LayerNorm
/// -> Mish` per hidden layer, a plain `Linear` at the output, as
/// [`Mlp::forward_t`] per head. The stacked tensors hold the same values as
/// the heads' variables `q.{k}.{l}.linear.weight` etc. and, once a
/// [`crate::optim::Flat`] buffer holds the [`crate::optim::Group`]s that
/// [`QStack::new`] returns, the same storage.
#[derive(Debug)]
pub struct QStack {
    pub layers: Vec<StackedLayer>,
    /// Heads E.
    pub heads: usize,
    /// Dropout after the first layer's Linear when training.
    pub dropout: f64,
}

/// One layer of a [`QStack`].
#[derive(Debug)]
pub struct StackedLayer {
    /// `[E, out, in]`.
    pub w: Tensor,
    /// `[E, out]`.
    pub b: Tensor,
    /// LayerNorm scale and shift `[E, out]` (hidden layers; Mish follows).
    pub ln: Option<(Tensor, Tensor)>,
    pub d_in: usize,
    pub d_out: usize,
}

impl QStack {
    /// Stacked copies of the Q heads' variables found in `vars` (a
    /// `VarStore`'s `variables()` of a [`WorldModel`] built with `cfg`),
    /// leaves requiring gradients when `grad`, and the groups (heads in
    /// order, lr `lr`) that make a flat buffer alias heads and stack.
    /// Variable names are those [`WorldModel::new`] creates
    /// (`q.{k}.{l}.linear.weight`, `.linear.bias`, `.ln.weight`, `.ln.bias`).
    pub fn new(
        vars: &std::collections::HashMap<String, Tensor>,
        cfg: &ModelConfig,
        grad: bool,
        lr: f64,
    ) -> (QStack, Vec<crate::optim::Group>) {
        let mut groups = Vec::new();
        let mut layers = Vec::new();
        let mut stack = |l: usize, what: &str| -> Tensor {
            let members: Vec<(String, Tensor)> = (0..cfg.n_q)
                .map(|k| {
                    let name = format!("q.{k}.{l}.{what}");
                    let t = vars
                        .get(&name)
                        .unwrap_or_else(|| panic!("Q variable {name} missing"));
                    (name, t.shallow_clone())
                })
                .collect();
            let s = tch::no_grad(|| {
                Tensor::stack(&members.iter().map(|m| &m.1).collect::<Vec<_>>(), 0)
            })
            .set_requires_grad(grad);
            groups.push(crate::optim::Group {
                members,
                stacked: Some(s.shallow_clone()),
                lr,
            });
            s
        };
        for l in 0..=cfg.layers {
            let w = stack(l, "linear.weight");
            let b = stack(l, "linear.bias");
            let ln = (l < cfg.layers).then(|| (stack(l, "ln.weight"), stack(l, "ln.bias")));
            let size = w.size();
            layers.push(StackedLayer {
                d_in: size[2] as usize,
                d_out: size[1] as usize,
                w,
                b,
                ln,
            });
        }
        (
            QStack {
                layers,
                heads: cfg.n_q,
                dropout: cfg.q_dropout,
            },
            groups,
        )
    }

    /// `za` `[N, in]` -> logits `[E', N, out]` of all heads, or of the heads
    /// listed in `heads` (an int64 index tensor on the device, so no
    /// transfer); dropout when `train`. About 6 kernels per layer.
    pub fn forward(&self, za: &Tensor, heads: Option<&Tensor>, train: bool) -> Tensor {
        let pick = |t: &Tensor| match heads {
            Some(i) => t.index_select(0, i),
            None => t.shallow_clone(),
        };
        let e = heads.map_or(self.heads as i64, |i| i.size()[0]);
        let n = za.size()[0];
        let mut h = za.unsqueeze(0).expand([e, n, za.size()[1]], false);
        for (k, l) in self.layers.iter().enumerate() {
            let mut y = pick(&l.b)
                .unsqueeze(1)
                .baddbmm(&h, &pick(&l.w).transpose(1, 2), 1.0, 1.0);
            if k == 0 && train && self.dropout > 0.0 {
                y = y.dropout(self.dropout, true);
            }
            if let Some((g, beta)) = &l.ln {
                let yn = y.layer_norm(
                    [l.d_out as i64],
                    None::<Tensor>,
                    None::<Tensor>,
                    LN_EPS,
                    true,
                );
                y = pick(beta)
                    .unsqueeze(1)
                    .addcmul(&yn, &pick(g).unsqueeze(1))
                    .mish();
            }
            h = y;
        }
        h
    }
}

/// Copy a tensor (any shape) into a flat `Vec<f32>` on the CPU.
pub fn to_vec(t: &Tensor) -> Vec<f32> {
    let t = t
        .detach()
        .to_device(tch::Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .view([-1]);
    Vec::<f32>::try_from(&t).expect("float tensor to Vec<f32>")
}
