//! TD-MPC2's single-task state-dict layout: the model sizes, the key of
//! every weight, and the checks that map a checkpoint onto plain blocks
//! (`Linear [-> LayerNorm -> Mish | SimNorm]`).
//!
//! Key layout (TD-MPC2 `common/world_model.py`, `common/layers.py`):
//! an MLP is an `nn.Sequential` of `NormedLinear`s (`{i}.weight`,
//! `{i}.bias`, `{i}.ln.weight`, `{i}.ln.bias`; LayerNorm eps 1e-5, then
//! Mish, or SimNorm for the encoder's and dynamics' last layer) ending in a
//! plain `Linear` for reward, policy and Q. Modules: `_encoder.state`,
//! `_dynamics`, `_reward`, `_pi`, and the Q ensemble in one of three
//! layouts:
//! - stacked (tensordict, current TD-MPC2): `_Qs.params.{layer}.{name}`
//!   with a leading head dimension;
//! - flat stacked (functorch, older releases): `_Qs.params.{n}` with
//!   `n = 4 layer + [weight, bias, ln.weight, ln.bias]`;
//! - per head (`nn.ModuleList`): `_Qs.{head}.{layer}.{name}`.
//!
//! Known extras, accepted and ignored: the detached and target Q copies
//! (`_detach_Qs*`, `_target_Qs*`), the ensemble's meta-device template
//! (`_Qs.module.*`), tensordict's `__batch_size`/`__device` entries. The
//! log-std buffers `log_std_min`/`log_std_dif` set the policy's squashing
//! when present (TD-MPC2's defaults -10 and 12 otherwise). A task embedding
//! (`_task_emb.*`) or action masks mark a multi-task checkpoint: refused.

use super::error::ImportError;
use super::state_dict::{RawTensor, StateDict};
use std::collections::BTreeSet;

/// Sizes of a TD-MPC2 model.
#[derive(Clone, Debug, PartialEq)]
pub struct Dims {
    /// Name for messages (`5M`, or `custom`).
    pub name: String,
    pub latent: usize,
    pub mlp: usize,
    pub enc: usize,
    /// `num_enc_layers`: the encoder has `max(n - 1, 1)` hidden layers.
    pub enc_layers: usize,
    pub num_q: usize,
    /// Two-hot bins (1: scalar heads).
    pub num_bins: usize,
    pub vmin: f32,
    pub vmax: f32,
    /// SimNorm group size (`simnorm_dim`).
    pub simnorm: usize,
}

/// The named sizes of TD-MPC2 (`common/__init__.py`, `MODEL_SIZE`), with
/// its defaults for the rest (5 Q heads unless the size says otherwise,
/// 101 bins over [-10, 10], SimNorm groups of 8).
pub const NAMED_SIZES: [(&str, usize, usize, usize, usize, usize); 5] = [
    // name, enc, mlp, latent, enc_layers, num_q
    ("1M", 256, 384, 128, 2, 2),
    ("5M", 256, 512, 512, 2, 5),
    ("19M", 1024, 1024, 768, 3, 5),
    ("48M", 1792, 1792, 768, 4, 5),
    ("317M", 4096, 4096, 1376, 5, 8),
];

impl Dims {
    /// A named size: `1M`, `5M`, `19M`, `48M`, `317M` (the `M` optional).
    pub fn named(size: &str) -> Result<Dims, ImportError> {
        let want = size.trim().trim_end_matches(['M', 'm']);
        NAMED_SIZES
            .iter()
            .find(|s| s.0.trim_end_matches('M') == want)
            .map(|&(name, enc, mlp, latent, enc_layers, num_q)| Dims {
                name: name.into(),
                latent,
                mlp,
                enc,
                enc_layers,
                num_q,
                num_bins: 101,
                vmin: -10.0,
                vmax: 10.0,
                simnorm: 8,
            })
            .ok_or_else(|| {
                ImportError::Options(format!(
                    "size `{size}`: expected one of 1M, 5M, 19M, 48M, 317M (or give every dimension)"
                ))
            })
    }

    /// Sizes that cannot describe a model are refused, naming the field.
    pub fn validate(&self) -> Result<(), ImportError> {
        let bad = |m: String| Err(ImportError::Options(m));
        for (name, v) in [
            ("latent", self.latent),
            ("mlp", self.mlp),
            ("enc", self.enc),
            ("num_q", self.num_q),
            ("num_bins", self.num_bins),
            ("simnorm_dim", self.simnorm),
        ] {
            if v == 0 {
                return bad(format!("{name} must be > 0"));
            }
        }
        if !self.latent.is_multiple_of(self.simnorm) {
            return bad(format!(
                "latent {} is not a multiple of the SimNorm group {}",
                self.latent, self.simnorm
            ));
        }
        if self.num_q > dream_mpc::bundle::files::MAX_Q_ENSEMBLE {
            return bad(format!("num_q {} is too large", self.num_q));
        }
        if !(self.vmin.is_finite() && self.vmax.is_finite() && self.vmin < self.vmax) {
            return bad(format!("two-hot range [{}, {}]", self.vmin, self.vmax));
        }
        Ok(())
    }
}

/// What follows a block's `Linear`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// `LayerNorm -> Mish` (TD-MPC2's `NormedLinear`).
    Mish,
    /// `LayerNorm -> SimNorm(group)`.
    SimNorm(usize),
    /// Plain `Linear`.
    None,
}

/// One layer in PyTorch layout: `weight [d_out, d_in]`, `bias [d_out]`,
/// LayerNorm scale and shift `[d_out]` unless the tail is `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub d_in: usize,
    pub d_out: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub ln: Option<(Vec<f32>, Vec<f32>)>,
    pub tail: Tail,
}

/// All weights the planner needs, checked.
#[derive(Clone, Debug)]
pub struct Tdmpc2Weights {
    pub dims: Dims,
    pub obs: usize,
    pub action: usize,
    pub encoder: Vec<Block>,
    pub dynamics: Vec<Block>,
    pub reward: Vec<Block>,
    pub pi: Vec<Block>,
    pub q: Vec<Vec<Block>>,
    pub log_std_min: f32,
    pub log_std_max: f32,
}

/// How the checkpoint stores the Q ensemble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QLayout {
    Stacked,
    FlatStacked,
    PerHead,
}

const PARAM_NAMES: [&str; 4] = ["weight", "bias", "ln.weight", "ln.bias"];

fn is_known_extra(key: &str) -> bool {
    key.starts_with("_detach_Qs")
        || key.starts_with("_target_Qs")
        || key.starts_with("_Qs.module.")
        || key.ends_with(".__batch_size")
        || key.ends_with(".__device")
}

/// The Q layout of `sd`, from its keys.
pub fn q_layout(sd: &StateDict) -> Option<QLayout> {
    let mut found = None;
    for k in sd.tensors.keys() {
        if let Some(rest) = k.strip_prefix("_Qs.params.") {
            let mut parts = rest.splitn(2, '.');
            let first = parts.next().unwrap_or("");
            if first.parse::<usize>().is_ok() {
                return Some(if parts.next().is_some() {
                    QLayout::Stacked
                } else {
                    QLayout::FlatStacked
                });
            }
        } else if let Some(rest) = k.strip_prefix("_Qs.") {
            if rest
                .split('.')
                .next()
                .is_some_and(|h| h.parse::<usize>().is_ok())
            {
                found = Some(QLayout::PerHead);
            }
        }
    }
    found
}

/// Reads keys from the state dict, recording which were used.
struct Reader<'a> {
    sd: &'a StateDict,
    used: BTreeSet<String>,
    size: String,
}

impl Reader<'_> {
    fn get(&mut self, key: &str, shape: &[usize]) -> Result<&RawTensor, ImportError> {
        let t = self
            .sd
            .tensors
            .get(key)
            .ok_or_else(|| ImportError::MissingKey {
                key: key.into(),
                expected: shape.to_vec(),
            })?;
        if t.shape != shape {
            return Err(ImportError::Shape {
                key: key.into(),
                expected: shape.to_vec(),
                found: t.shape.clone(),
                size: self.size.clone(),
            });
        }
        if let Some((i, v)) = t.data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ImportError::NonFinite {
                key: key.into(),
                index: i,
                value: *v,
            });
        }
        self.used.insert(key.into());
        Ok(t)
    }

    /// `[heads, ...shape]` tensor at `key`, row `head` of it.
    fn get_head(
        &mut self,
        key: &str,
        heads: usize,
        head: usize,
        shape: &[usize],
    ) -> Result<Vec<f32>, ImportError> {
        let full: Vec<usize> = std::iter::once(heads)
            .chain(shape.iter().copied())
            .collect();
        let t = self.get(key, &full)?;
        let n: usize = shape.iter().product();
        Ok(t.data[head * n..(head + 1) * n].to_vec())
    }

    /// The blocks of an MLP through `dims`, with `last` the tail of its
    /// last layer (the others: Mish); `fetch(reader, layer, param, shape)`
    /// returns a tensor's data, `param` 0..4 = weight, bias, LayerNorm
    /// weight, LayerNorm bias.
    fn blocks(
        &mut self,
        dims: &[usize],
        last: Tail,
        mut fetch: impl FnMut(&mut Self, usize, usize, &[usize]) -> Result<Vec<f32>, ImportError>,
    ) -> Result<Vec<Block>, ImportError> {
        let n = dims.len() - 1;
        (0..n)
            .map(|i| {
                let (d_in, d_out) = (dims[i], dims[i + 1]);
                let tail = if i + 1 == n { last } else { Tail::Mish };
                let weight = fetch(self, i, 0, &[d_out, d_in])?;
                let bias = fetch(self, i, 1, &[d_out])?;
                let ln = if tail == Tail::None {
                    None
                } else {
                    Some((fetch(self, i, 2, &[d_out])?, fetch(self, i, 3, &[d_out])?))
                };
                Ok(Block {
                    d_in,
                    d_out,
                    weight,
                    bias,
                    ln,
                    tail,
                })
            })
            .collect()
    }

    /// An MLP under `prefix` (`{prefix}{i}.weight`, `{prefix}{i}.bias`,
    /// `{prefix}{i}.ln.weight`, `{prefix}{i}.ln.bias`).
    fn mlp(&mut self, prefix: &str, dims: &[usize], last: Tail) -> Result<Vec<Block>, ImportError> {
        const PARAM: [&str; 4] = ["weight", "bias", "ln.weight", "ln.bias"];
        self.blocks(dims, last, |r, i, p, shape| {
            Ok(r.get(&format!("{prefix}{i}.{}", PARAM[p]), shape)?
                .data
                .clone())
        })
    }

    /// One Q head from a stacked layout; `key(layer, param)` names a tensor.
    fn q_head_stacked(
        &mut self,
        dims: &[usize],
        heads: usize,
        head: usize,
        key: impl Fn(usize, usize) -> String,
    ) -> Result<Vec<Block>, ImportError> {
        self.blocks(dims, Tail::None, |r, i, p, shape| {
            r.get_head(&key(i, p), heads, head, shape)
        })
    }

    /// A scalar buffer, if present (shape `[]` or `[1]`).
    fn scalar(&mut self, key: &str) -> Result<Option<f32>, ImportError> {
        let Some(t) = self.sd.tensors.get(key) else {
            return Ok(None);
        };
        let shape = if t.shape.is_empty() { vec![] } else { vec![1] };
        Ok(Some(self.get(key, &shape)?.data[0]))
    }
}

/// Map a single-task TD-MPC2 state dict of size `dims` for `obs`
/// observations and `action` actions onto checked blocks. Errors name the
/// first offending key: a multi-task key, a missing key, a shape that the
/// size does not give, a non-finite value, a key the importer does not
/// know.
pub fn map_state_dict(
    sd: &StateDict,
    dims: &Dims,
    obs: usize,
    action: usize,
) -> Result<Tdmpc2Weights, ImportError> {
    dims.validate()?;
    if obs == 0 || action == 0 {
        return Err(ImportError::Options(format!(
            "observation size {obs} and action size {action} must be > 0"
        )));
    }
    // The task embedding names the cause best; action masks come second.
    let keys = || sd.tensors.keys().chain(sd.skipped.iter());
    if let Some(key) = keys()
        .find(|k| k.starts_with("_task_emb"))
        .or_else(|| keys().find(|k| *k == "_action_masks"))
    {
        return Err(ImportError::MultiTask { key: key.clone() });
    }
    let mut r = Reader {
        sd,
        used: BTreeSet::new(),
        size: dims.name.clone(),
    };
    let (l, m, a, nb) = (dims.latent, dims.mlp, action, dims.num_bins);
    let hidden = dims.enc_layers.saturating_sub(1).max(1);
    let enc_dims: Vec<usize> = std::iter::once(obs)
        .chain(std::iter::repeat_n(dims.enc, hidden))
        .chain(std::iter::once(l))
        .collect();
    let encoder = r.mlp("_encoder.state.", &enc_dims, Tail::SimNorm(dims.simnorm))?;
    let dynamics = r.mlp("_dynamics.", &[l + a, m, m, l], Tail::SimNorm(dims.simnorm))?;
    let reward = r.mlp("_reward.", &[l + a, m, m, nb], Tail::None)?;
    let pi = r.mlp("_pi.", &[l, m, m, 2 * a], Tail::None)?;
    let q_dims = [l + a, m, m, nb];
    let q = match q_layout(sd) {
        None => {
            return Err(ImportError::MissingKey {
                key: "_Qs.params.0.weight".into(),
                expected: vec![dims.num_q, m, l + a],
            })
        }
        Some(QLayout::Stacked) => (0..dims.num_q)
            .map(|h| {
                r.q_head_stacked(&q_dims, dims.num_q, h, |i, p| {
                    format!("_Qs.params.{i}.{}", PARAM_NAMES[p])
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(QLayout::FlatStacked) => (0..dims.num_q)
            .map(|h| {
                r.q_head_stacked(&q_dims, dims.num_q, h, |i, p| {
                    format!("_Qs.params.{}", 4 * i + p)
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(QLayout::PerHead) => {
            let heads = (0..dims.num_q)
                .map(|h| r.mlp(&format!("_Qs.{h}."), &q_dims, Tail::None))
                .collect::<Result<Vec<_>, _>>()?;
            let extra = format!("_Qs.{}.", dims.num_q);
            if let Some(k) = sd.tensors.keys().find(|k| k.starts_with(&extra)) {
                return Err(ImportError::Shape {
                    key: k.clone(),
                    expected: vec![],
                    found: sd.tensors[k].shape.clone(),
                    size: format!("{} ({} Q heads)", dims.name, dims.num_q),
                });
            }
            heads
        }
    };
    let log_std_min = r.scalar("log_std_min")?.unwrap_or(-10.0);
    let log_std_max = log_std_min + r.scalar("log_std_dif")?.unwrap_or(12.0);
    for key in sd.tensors.keys().chain(sd.skipped.iter()) {
        if !r.used.contains(key) && !is_known_extra(key) {
            return Err(ImportError::UnknownKey { key: key.clone() });
        }
    }
    Ok(Tdmpc2Weights {
        dims: dims.clone(),
        obs,
        action,
        encoder,
        dynamics,
        reward,
        pi,
        q,
        log_std_min,
        log_std_max,
    })
}
