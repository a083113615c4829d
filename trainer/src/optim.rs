//! Parameters in one flat buffer, and Adam over it, with global
//! gradient-norm clipping.
//!
//! [`Flat`] copies a list of parameter [`Group`]s into one contiguous
//! tensor and points every variable at its slice (`set_data`), so the
//! `VarStore`'s named variables (checkpoints, export), the stacked Q
//! ensemble's `[E, ...]` leaves and the optimizer all read and write the
//! same storage. [`Adam::step_flat`] then updates the whole buffer with a
//! handful of element-wise ops (about 15 kernels, whatever the number of
//! parameters) from gradients returned by `run_backward` and concatenated
//! once; [`Adam::step_params`] is the earlier per-parameter loop (about 15
//! kernels per parameter), the per-head update's step (the oracle of the
//! fused update's tests, see `learner/per_head.rs`). Both keep the moments in
//! the same flat buffers, saved under the same per-parameter names as
//! before, so checkpoints load across the two. Nothing waits for the
//! device: the clip factor is a tensor and the bias corrections are host
//! numbers.

use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// Variables that share one slot of a flat buffer: one named variable, or
/// the `E` heads of a Q-ensemble parameter with their stacked `[E, ...]`
/// leaf (heads contiguous, in order).
pub struct Group {
    /// `(name, variable)`; all of one shape when stacked.
    pub members: Vec<(String, Tensor)>,
    /// The stacked leaf aliasing all members, if any.
    pub stacked: Option<Tensor>,
    /// Learning rate (ignored for a target buffer).
    pub lr: f64,
}

/// One named variable's place in a flat buffer.
struct Param {
    name: String,
    var: Tensor,
    lr: f64,
    off: i64,
    shape: Vec<i64>,
}

impl Param {
    fn numel(&self) -> i64 {
        self.shape.iter().product()
    }

    /// The same slice of another flat buffer (`m`, `v`), shaped as the
    /// variable (a view: no copy, no kernel).
    fn view_of(&self, flat: &Tensor) -> Tensor {
        flat.narrow(0, self.off, self.numel())
            .view(self.shape.as_slice())
    }
}

/// Variables laid out in one contiguous buffer (see the module docs).
pub struct Flat {
    /// The buffer every variable of the groups now views.
    pub data: Tensor,
    params: Vec<Param>,
    /// What the fused update differentiates, in buffer order: the stacked
    /// leaf of a stacked group, else its one variable.
    pub leaves: Vec<Tensor>,
}

impl Flat {
    /// Copy the groups' values into one buffer on their device and point
    /// every member (and stacked leaf) at its slice. Costs one copy per
    /// variable, once.
    pub fn new(groups: Vec<Group>) -> Flat {
        let first = &groups[0].members[0].1;
        let (kind, device) = (first.kind(), first.device());
        let total: i64 = groups
            .iter()
            .flat_map(|g| g.members.iter())
            .map(|(_, t)| t.numel() as i64)
            .sum();
        let data = Tensor::zeros([total], (kind, device));
        let mut params = Vec::new();
        let mut leaves = Vec::new();
        let mut off = 0i64;
        for g in groups {
            let start = off;
            let heads = g.members.len() as i64;
            let mut shape = Vec::new();
            for (name, mut var) in g.members {
                shape = var.size();
                let n = var.numel() as i64;
                let slot = data.narrow(0, off, n);
                tch::no_grad(|| slot.shallow_clone().copy_(&var.reshape([-1])));
                var.set_data(&slot.view(shape.as_slice()));
                params.push(Param {
                    name,
                    var: var.shallow_clone(),
                    lr: g.lr,
                    off,
                    shape: shape.clone(),
                });
                if g.stacked.is_none() {
                    leaves.push(var);
                }
                off += n;
            }
            if let Some(mut s) = g.stacked {
                let mut st = vec![heads];
                st.extend_from_slice(&shape);
                s.set_data(&data.narrow(0, start, off - start).view(st.as_slice()));
                leaves.push(s);
            }
        }
        Flat {
            data,
            params,
            leaves,
        }
    }

    /// `(offset, length)` of the members whose names start with `prefix`
    /// (which must be contiguous).
    pub fn range(&self, prefix: &str) -> (i64, i64) {
        let sel: Vec<&Param> = self
            .params
            .iter()
            .filter(|p| p.name.starts_with(prefix))
            .collect();
        let lo = sel.iter().map(|p| p.off).min().unwrap_or(0);
        let hi = sel.iter().map(|p| p.off + p.numel()).max().unwrap_or(0);
        let len: i64 = sel.iter().map(|p| p.numel()).sum();
        assert_eq!(len, hi - lo, "{prefix}* is not contiguous in the buffer");
        (lo, len)
    }

    /// Panic with the variable's name if a variable no
    /// longer views its slice of the buffer, e.g. after someone replaced
    /// its data (`set_data`, `VarStore::set_device`) instead of copying
    /// into it: the fused update would then train the buffer while the
    /// model reads stale weights. Costs one pointer read per variable, no
    /// device work.
    pub fn assert_aliased(&self) {
        let base = self.data.data_ptr() as usize;
        let elt = self.data.kind().elt_size_in_bytes();
        for p in &self.params {
            let want = base + elt * p.off as usize;
            assert!(
                p.var.data_ptr() as usize == want,
                "variable {} no longer views the optimizer's flat buffer: \
                 load weights into it with copy_, not set_data",
                p.name
            );
        }
    }

    /// Named variables in buffer order.
    pub fn named(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params.iter().map(|p| (p.name.as_str(), &p.var))
    }
}

/// Adam over a [`Flat`] buffer, moments `m` and `v` flat alongside.
pub struct Adam {
    pub flat: Flat,
    m: Tensor,
    v: Tensor,
    /// Contiguous runs of equal learning rate: `(offset, length, lr)`.
    runs: Vec<(i64, i64, f64)>,
    /// Steps taken (bias correction).
    pub t: i64,
    eps: f64,
}

const B1: f64 = 0.9;
const B2: f64 = 0.999;

impl Adam {
    /// Zero moments; `eps` is Adam's epsilon (TD-MPC2: 1e-8 for the world
    /// model, 1e-5 for the policy).
    pub fn new(groups: Vec<Group>, eps: f64) -> Self {
        let flat = Flat::new(groups);
        let mut runs: Vec<(i64, i64, f64)> = Vec::new();
        for p in &flat.params {
            match runs.last_mut() {
                Some((o, n, lr)) if *lr == p.lr && *o + *n == p.off => *n += p.numel(),
                _ => runs.push((p.off, p.numel(), p.lr)),
            }
        }
        Adam {
            m: flat.data.zeros_like(),
            v: flat.data.zeros_like(),
            flat,
            runs,
            t: 0,
            eps,
        }
    }

    /// Clip factor `min(1, clip / (norm + 1e-6))` as a 0-d tensor.
    fn clip_factor(sq_norm: Tensor, clip: f64) -> Tensor {
        (sq_norm.sqrt() + 1e-6)
            .reciprocal()
            .g_mul_scalar(clip)
            .clamp_max(1.0)
    }

    /// The fused step: `grads` as returned by `run_backward` for
    /// [`Flat::leaves`] (same order), concatenated into one flat gradient,
    /// clipped to global norm `clip` (if > 0), then Adam on the whole
    /// buffer: about 15 kernels whatever the parameter count, no device
    /// sync.
    pub fn step_flat(&mut self, grads: &[Tensor], clip: f64) {
        tch::no_grad(|| {
            let flat: Vec<Tensor> = grads.iter().map(|g| g.reshape([-1])).collect();
            let mut g = Tensor::cat(&flat, 0);
            if clip > 0.0 {
                let s = Self::clip_factor(g.square().sum(Kind::Float), clip);
                let _ = g.g_mul_(&s);
            }
            self.t += 1;
            let bc1 = 1.0 - B1.powi(self.t as i32);
            let bc2 = 1.0 - B2.powi(self.t as i32);
            let _ = self.m.g_mul_scalar_(B1).g_add_(&(&g * (1.0 - B1)));
            let _ = self.v.g_mul_scalar_(B2).g_add_(&(g.square() * (1.0 - B2)));
            let upd = (&self.m / bc1) / ((&self.v / bc2).sqrt() + self.eps);
            for &(off, n, lr) in &self.runs {
                let _ = self
                    .flat
                    .data
                    .narrow(0, off, n)
                    .g_sub_(&(upd.narrow(0, off, n) * lr));
            }
        });
    }

    /// The per-parameter step (the earlier path): clip the global norm of
    /// the variables' `.grad()` to `clip` (if > 0), then Adam parameter
    /// by parameter. Parameters without a gradient are skipped.
    pub fn step_params(&mut self, clip: f64) {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self.flat.params.iter().map(|p| p.var.grad()).collect();
            let defined: Vec<&Tensor> = grads.iter().filter(|g| g.defined()).collect();
            if defined.is_empty() {
                return;
            }
            let scale = (clip > 0.0).then(|| {
                let sq = Tensor::stack(
                    &defined
                        .iter()
                        .map(|g| g.square().sum(Kind::Float))
                        .collect::<Vec<_>>(),
                    0,
                )
                .sum(Kind::Float);
                Self::clip_factor(sq, clip)
            });
            self.t += 1;
            let bc1 = 1.0 - B1.powi(self.t as i32);
            let bc2 = 1.0 - B2.powi(self.t as i32);
            for (p, g) in self.flat.params.iter().zip(grads) {
                if !g.defined() {
                    continue;
                }
                let g = match &scale {
                    Some(s) => g * s,
                    None => g,
                };
                let (mut m, mut v) = (p.view_of(&self.m), p.view_of(&self.v));
                let _ = m.g_mul_scalar_(B1).g_add_(&(&g * (1.0 - B1)));
                let _ = v.g_mul_scalar_(B2).g_add_(&(g.square() * (1.0 - B2)));
                let upd = (&m / bc1) / ((&v / bc2).sqrt() + self.eps);
                let _ = p.var.shallow_clone().g_sub_(&(upd * p.lr));
            }
        });
    }

    /// Clear the `.grad()` of every parameter (per-parameter path only).
    pub fn zero_grads(&self) {
        for p in &self.flat.params {
            p.var.shallow_clone().zero_grad();
        }
    }

    /// Moments as `(prefix.m.name, tensor)` and `(prefix.v.name, tensor)`
    /// (copies, so a saved file holds each once).
    pub fn named_state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for p in &self.flat.params {
            out.push((format!("{prefix}.m.{}", p.name), p.view_of(&self.m).copy()));
            out.push((format!("{prefix}.v.{}", p.name), p.view_of(&self.v).copy()));
        }
        out
    }

    /// Copy moments from `map` (any device) and set the step count.
    pub fn load_state(
        &mut self,
        prefix: &str,
        map: &BTreeMap<String, Tensor>,
        t: i64,
    ) -> Result<(), String> {
        for p in &self.flat.params {
            for (which, flat) in [("m", &self.m), ("v", &self.v)] {
                let key = format!("{prefix}.{which}.{}", p.name);
                let src = map
                    .get(&key)
                    .ok_or_else(|| format!("checkpoint lacks {key}"))?;
                if src.size() != p.shape {
                    return Err(format!("{key}: shape {:?} vs {:?}", src.size(), p.shape));
                }
                tch::no_grad(|| p.view_of(flat).copy_(src));
            }
        }
        self.t = t;
        Ok(())
    }
}
