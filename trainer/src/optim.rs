//! Adam with its moments kept as named tensors (saved in checkpoints), with
//! global gradient-norm clipping. Everything stays on the parameters'
//! device: the clip factor is a tensor, so a step never waits for the GPU.

use std::collections::BTreeMap;
use tch::{nn, Kind, Tensor};

/// One optimizer over a list of `(name, parameter, learning rate)`.
pub struct Adam {
    params: Vec<(String, Tensor, f64)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Steps taken (bias correction).
    pub t: i64,
    eps: f64,
}

impl Adam {
    /// Zero moments; `eps` is Adam's epsilon (TD-MPC2: 1e-8 for the world
    /// model, 1e-5 for the policy).
    pub fn new(params: Vec<(String, Tensor, f64)>, eps: f64) -> Self {
        let m = params.iter().map(|(_, p, _)| p.zeros_like()).collect();
        let v = params.iter().map(|(_, p, _)| p.zeros_like()).collect();
        Adam {
            params,
            m,
            v,
            t: 0,
            eps,
        }
    }

    /// Clip the global gradient norm to `clip` (if > 0), then one step.
    /// Parameters without a gradient are skipped.
    pub fn step(&mut self, clip: f64) {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self.params.iter().map(|(_, p, _)| p.grad()).collect();
            let defined: Vec<&Tensor> = grads.iter().filter(|g| g.defined()).collect();
            if defined.is_empty() {
                return;
            }
            // Clip factor min(1, clip / (norm + 1e-6)) as a 0-d tensor.
            let scale = if clip > 0.0 {
                let sq = Tensor::stack(
                    &defined
                        .iter()
                        .map(|g| g.square().sum(Kind::Float))
                        .collect::<Vec<_>>(),
                    0,
                )
                .sum(Kind::Float);
                Some(
                    (sq.sqrt() + 1e-6)
                        .reciprocal()
                        .g_mul_scalar(clip)
                        .clamp_max(1.0),
                )
            } else {
                None
            };
            self.t += 1;
            let (b1, b2) = (0.9f64, 0.999f64);
            let bc1 = 1.0 - b1.powi(self.t as i32);
            let bc2 = 1.0 - b2.powi(self.t as i32);
            for (k, ((_, p, lr), g)) in self.params.iter().zip(grads).enumerate() {
                if !g.defined() {
                    continue;
                }
                let g = match &scale {
                    Some(s) => g * s,
                    None => g,
                };
                let _ = self.m[k].g_mul_scalar_(b1).g_add_(&(&g * (1.0 - b1)));
                let _ = self.v[k]
                    .g_mul_scalar_(b2)
                    .g_add_(&(g.square() * (1.0 - b2)));
                let upd = (&self.m[k] / bc1) / ((&self.v[k] / bc2).sqrt() + self.eps);
                let mut p = p.shallow_clone();
                let _ = p.g_sub_(&(upd * *lr));
            }
        });
    }

    /// Moments as `(prefix.m.name, tensor)` and `(prefix.v.name, tensor)`.
    pub fn named_state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (k, (name, _, _)) in self.params.iter().enumerate() {
            out.push((format!("{prefix}.m.{name}"), self.m[k].shallow_clone()));
            out.push((format!("{prefix}.v.{name}"), self.v[k].shallow_clone()));
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
        for (k, (name, _, _)) in self.params.iter().enumerate() {
            for (which, dst) in [("m", &mut self.m[k]), ("v", &mut self.v[k])] {
                let key = format!("{prefix}.{which}.{name}");
                let src = map
                    .get(&key)
                    .ok_or_else(|| format!("checkpoint lacks {key}"))?;
                if src.size() != dst.size() {
                    return Err(format!("{key}: shape {:?} vs {:?}", src.size(), dst.size()));
                }
                tch::no_grad(|| dst.copy_(src));
            }
        }
        self.t = t;
        Ok(())
    }
}

/// Clear the gradients of every trainable variable of `vs`.
pub fn zero_grads(vs: &nn::VarStore) {
    for mut t in vs.trainable_variables() {
        t.zero_grad();
    }
}
