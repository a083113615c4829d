//! [`LatentModel`] over a loaded [`Bundle`]: each method is one compiled
//! module's forward or backward, plus the reward/value decoding of the
//! manifest (two-hot symlog or scalar) and its derivative. The model holds
//! shared handles (`Arc`) to the bundle's compiled modules, not a borrow
//! of the bundle.

use super::decode::{decode, decode_vjp};
use super::model::{
    q_by_step, q_vjp_by_step, reward_by_step, reward_vjp_by_step, LatentModel, ModelDims, Module,
};
use crate::bundle::manifest::{Decoding, TensorSpec};
use crate::bundle::BundleError;
use crate::kernels::{Program, Tape};
use crate::load::Bundle;
use std::sync::Arc;

/// The bundle's dynamics, reward, Q and policy modules as one latent model.
pub struct BundleModel {
    dynamics: Arc<Program>,
    reward: Arc<Program>,
    q: Arc<Program>,
    policy: Arc<Program>,
    dims: ModelDims,
    reward_decoding: Decoding,
    value_decoding: Decoding,
}

/// The four modules' tapes plus the raw (undecoded) reward and Q outputs
/// of every slot, kept for the decoding's VJP.
pub struct BundleTape {
    dynamics: Tape,
    reward: Tape,
    q: Tape,
    policy: Tape,
    batch: usize,
    /// `[slots, batch, reward width]`.
    reward_out: Vec<f32>,
    /// `[slots, batch, heads * value width]`.
    q_out: Vec<f32>,
    /// Cotangent of the raw outputs, `[batch, max width]`.
    d_out: Vec<f32>,
    /// Zero cotangent of the policy's log_std, `[batch, action]`.
    zeros: Vec<f32>,
    /// Reward and Q tapes of one slot for `wide_rows` rows (all time steps
    /// at once, see [`LatentModel::reward_steps`]); `None` when `batch x
    /// (slots - 1)` exceeds [`WIDE_MAX_ROWS`] (the sampling planners, whose
    /// batch is already large) or the tuned kernels are off, which falls
    /// back to one call per step.
    wide: Option<Wide>,
}

/// Rows up to which the per-step reward and Q calls are merged into one.
pub const WIDE_MAX_ROWS: usize = 64;

/// The one-slot, many-row tapes of [`BundleTape::wide`].
struct Wide {
    rows: usize,
    reward: Tape,
    q: Tape,
    /// `[rows, reward width]` and `[rows, heads * value width]`.
    reward_out: Vec<f32>,
    q_out: Vec<f32>,
}

impl BundleTape {
    /// Floats held by the four tapes and the decoding buffers.
    pub fn floats(&self) -> usize {
        self.dynamics.floats()
            + self.reward.floats()
            + self.q.floats()
            + self.policy.floats()
            + self.reward_out.len()
            + self.q_out.len()
            + self.d_out.len()
            + self.zeros.len()
            + self.wide.as_ref().map_or(0, |w| {
                w.reward.floats() + w.q.floats() + w.reward_out.len() + w.q_out.len()
            })
    }
}

/// A `(z, a) -> logits` module (reward or Q) with the decoding of its
/// output rows: the one place the planner's decoded outputs and their VJP
/// are computed, for the per-step and the wide (all steps at once) calls.
struct Head<'a> {
    program: &'a Program,
    decoding: &'a Decoding,
}

impl Head<'_> {
    /// Forward into `out` (the raw rows, kept for [`Head::backward`]; only
    /// its first `y.len() x width` floats are used), then `y[i]` = the
    /// decoding of row `i`. Costs the module's forward plus one decoding
    /// per row; allocates nothing.
    #[inline]
    fn forward(
        &self,
        tape: &mut Tape,
        slot: usize,
        inputs: &[&[f32]],
        out: &mut [f32],
        y: &mut [f32],
    ) {
        let w = self.decoding.width();
        let out = &mut out[..y.len() * w];
        self.program.forward(tape, slot, inputs, &mut [&mut *out]);
        for (y, logits) in y.iter_mut().zip(out.chunks_exact(w)) {
            *y = decode(self.decoding, logits);
        }
    }

    /// VJP of [`Head::forward`]: the decoding's derivative at the kept raw
    /// rows `out` times `dy` into `d_out` (scratch), then the module's
    /// backward into `d_inputs`. Allocates nothing.
    #[inline]
    fn backward(
        &self,
        tape: &mut Tape,
        slot: usize,
        out: &[f32],
        d_out: &mut [f32],
        dy: &[f32],
        d_inputs: &mut [&mut [f32]],
    ) {
        let w = self.decoding.width();
        let (out, d_out) = (&out[..dy.len() * w], &mut d_out[..dy.len() * w]);
        for ((g, logits), d) in dy
            .iter()
            .zip(out.chunks_exact(w))
            .zip(d_out.chunks_exact_mut(w))
        {
            decode_vjp(self.decoding, logits, *g, d);
        }
        self.program.backward(tape, slot, &[&*d_out], d_inputs);
    }
}

fn interface(module: &str, message: String) -> BundleError {
    BundleError::Interface {
        module: module.into(),
        message,
    }
}

/// Checks that `p` has inputs/outputs named and sized as expected.
fn check(
    p: &Program,
    module: &str,
    inputs: &[(&str, usize)],
    outputs: &[(&str, usize)],
) -> Result<(), BundleError> {
    let got = |specs: &[TensorSpec]| {
        specs
            .iter()
            .map(|s| format!("{}[{}]", s.name, s.size))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let want = |specs: &[(&str, usize)]| {
        specs
            .iter()
            .map(|(n, s)| format!("{n}[{s}]"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if got(p.inputs()) != want(inputs) || got(p.outputs()) != want(outputs) {
        return Err(interface(
            module,
            format!(
                "the planner needs ({}) -> ({}), the bundle has ({}) -> ({})",
                want(inputs),
                want(outputs),
                got(p.inputs()),
                got(p.outputs())
            ),
        ));
    }
    Ok(())
}

impl BundleModel {
    /// Looks up and checks the four modules: `dynamics (z, a) -> z_next`,
    /// `reward (z, a) -> r`, `q (z, a) -> q`, `policy z -> (mu, log_std)`,
    /// sized by the manifest's latent, action, decodings and ensemble.
    pub fn new(bundle: &Bundle) -> Result<Self, BundleError> {
        let m = &bundle.manifest;
        let (l, a, nq) = (m.latent.size(), m.action.size, m.q_ensemble);
        let (rw, qw) = (m.reward_decoding.width(), m.value_decoding.width());
        let dynamics = Arc::clone(bundle.module("dynamics")?);
        let reward = Arc::clone(bundle.module("reward")?);
        let q = Arc::clone(bundle.module("q")?);
        let policy = Arc::clone(bundle.module("policy")?);
        check(
            &dynamics,
            "dynamics",
            &[("z", l), ("a", a)],
            &[("z_next", l)],
        )?;
        check(&reward, "reward", &[("z", l), ("a", a)], &[("r", rw)])?;
        check(&q, "q", &[("z", l), ("a", a)], &[("q", nq * qw)])?;
        check(&policy, "policy", &[("z", l)], &[("mu", a), ("log_std", a)])?;
        if nq == 0 {
            return Err(interface("q", "q_ensemble is 0".into()));
        }
        Ok(BundleModel {
            dynamics,
            reward,
            q,
            policy,
            dims: ModelDims {
                latent: l,
                action: a,
                q_heads: nq,
            },
            reward_decoding: m.reward_decoding.clone(),
            value_decoding: m.value_decoding.clone(),
        })
    }

    fn reward_head(&self) -> Head<'_> {
        Head {
            program: &self.reward,
            decoding: &self.reward_decoding,
        }
    }

    fn q_head(&self) -> Head<'_> {
        Head {
            program: &self.q,
            decoding: &self.value_decoding,
        }
    }
}

impl LatentModel for BundleModel {
    type Tape = BundleTape;

    fn dims(&self) -> ModelDims {
        self.dims
    }

    fn tape(&self, batch: usize, slots: usize) -> BundleTape {
        let (rw, qw) = (self.reward_decoding.width(), self.value_decoding.width());
        let nqw = self.dims.q_heads * qw;
        let rows = batch * slots.saturating_sub(1);
        // The all-steps calls run as one pass with the tuned kernels; with
        // `DREAM_MPC_TUNING=off` (the reference path) one call per step.
        // Decided here, when the planner builds its tape at start-up.
        let wide =
            (crate::kernels::simd::tuned() && rows > batch && rows <= WIDE_MAX_ROWS).then(|| {
                Wide {
                    rows,
                    reward: self.reward.tape(rows, 1),
                    q: self.q.tape(rows, 1),
                    reward_out: vec![0.0; rows * rw],
                    q_out: vec![0.0; rows * nqw],
                }
            });
        let d_rows = if wide.is_some() { rows } else { batch };
        BundleTape {
            dynamics: self.dynamics.tape(batch, slots),
            reward: self.reward.tape(batch, slots),
            q: self.q.tape(batch, slots),
            policy: self.policy.tape(batch, slots),
            batch,
            reward_out: vec![0.0; slots * batch * rw],
            q_out: vec![0.0; slots * batch * nqw],
            d_out: vec![0.0; d_rows * rw.max(nqw)],
            zeros: vec![0.0; batch * self.dims.action],
            wide,
        }
    }

    fn next(&self, tape: &mut BundleTape, slot: usize, z: &[f32], a: &[f32], z_next: &mut [f32]) {
        self.dynamics
            .forward(&mut tape.dynamics, slot, &[z, a], &mut [z_next]);
    }

    fn next_vjp(
        &self,
        tape: &mut BundleTape,
        slot: usize,
        dz_next: &[f32],
        dz: &mut [f32],
        da: &mut [f32],
    ) {
        self.dynamics
            .backward(&mut tape.dynamics, slot, &[dz_next], &mut [dz, da]);
    }

    fn reward(&self, tape: &mut BundleTape, slot: usize, z: &[f32], a: &[f32], r: &mut [f32]) {
        let o = slot * tape.batch * self.reward_decoding.width();
        let out = &mut tape.reward_out[o..];
        self.reward_head()
            .forward(&mut tape.reward, slot, &[z, a], out, r);
    }

    fn reward_vjp(
        &self,
        tape: &mut BundleTape,
        slot: usize,
        dr: &[f32],
        dz: &mut [f32],
        da: &mut [f32],
    ) {
        let o = slot * tape.batch * self.reward_decoding.width();
        let out = &tape.reward_out[o..];
        self.reward_head().backward(
            &mut tape.reward,
            slot,
            out,
            &mut tape.d_out,
            dr,
            &mut [dz, da],
        );
    }

    fn q(&self, tape: &mut BundleTape, slot: usize, z: &[f32], a: &[f32], q: &mut [f32]) {
        let o = slot * tape.batch * self.dims.q_heads * self.value_decoding.width();
        let out = &mut tape.q_out[o..];
        self.q_head().forward(&mut tape.q, slot, &[z, a], out, q);
    }

    fn q_vjp(
        &self,
        tape: &mut BundleTape,
        slot: usize,
        dq: &[f32],
        dz: &mut [f32],
        da: &mut [f32],
    ) {
        let o = slot * tape.batch * self.dims.q_heads * self.value_decoding.width();
        let out = &tape.q_out[o..];
        self.q_head()
            .backward(&mut tape.q, slot, out, &mut tape.d_out, dq, &mut [dz, da]);
    }

    fn pi(
        &self,
        tape: &mut BundleTape,
        slot: usize,
        z: &[f32],
        mu: &mut [f32],
        log_std: &mut [f32],
    ) {
        self.policy
            .forward(&mut tape.policy, slot, &[z], &mut [mu, log_std]);
    }

    fn pi_vjp(&self, tape: &mut BundleTape, slot: usize, dmu: &[f32], dz: &mut [f32]) {
        let zeros = &tape.zeros[..dmu.len()];
        self.policy
            .backward(&mut tape.policy, slot, &[dmu, zeros], &mut [dz]);
    }

    fn pi_vjp_full(
        &self,
        tape: &mut BundleTape,
        slot: usize,
        dmu: &[f32],
        dlog_std: &[f32],
        dz: &mut [f32],
    ) {
        self.policy
            .backward(&mut tape.policy, slot, &[dmu, dlog_std], &mut [dz]);
    }

    /// One reward pass over all steps' rows when the tape has a wide slot.
    fn reward_steps(
        &self,
        tape: &mut BundleTape,
        steps: usize,
        z: &[f32],
        a: &[f32],
        r: &mut [f32],
    ) {
        match &mut tape.wide {
            Some(wide) if r.len() <= wide.rows => {
                let out = &mut wide.reward_out;
                self.reward_head()
                    .forward(&mut wide.reward, 0, &[z, a], out, r);
            }
            _ => reward_by_step(self, tape, steps, z, a, r),
        }
    }

    fn reward_steps_vjp(
        &self,
        tape: &mut BundleTape,
        steps: usize,
        dr: &[f32],
        dz: &mut [f32],
        da: &mut [f32],
    ) {
        match &mut tape.wide {
            Some(wide) if dr.len() <= wide.rows => {
                let (out, d_out) = (&wide.reward_out, &mut tape.d_out);
                self.reward_head()
                    .backward(&mut wide.reward, 0, out, d_out, dr, &mut [dz, da]);
            }
            _ => reward_vjp_by_step(self, tape, steps, dr, dz, da),
        }
    }

    /// One Q pass over all steps' rows when the tape has a wide slot.
    fn q_steps(&self, tape: &mut BundleTape, steps: usize, z: &[f32], a: &[f32], q: &mut [f32]) {
        let rows = q.len() / self.dims.q_heads;
        match &mut tape.wide {
            Some(wide) if rows <= wide.rows => {
                let out = &mut wide.q_out;
                self.q_head().forward(&mut wide.q, 0, &[z, a], out, q);
            }
            _ => q_by_step(self, tape, steps, z, a, q),
        }
    }

    fn q_steps_vjp(
        &self,
        tape: &mut BundleTape,
        steps: usize,
        dq: &[f32],
        dz: &mut [f32],
        da: &mut [f32],
    ) {
        let rows = dq.len() / self.dims.q_heads;
        match &mut tape.wide {
            Some(wide) if rows <= wide.rows => {
                let (out, d_out) = (&wide.q_out, &mut tape.d_out);
                self.q_head()
                    .backward(&mut wide.q, 0, out, d_out, dq, &mut [dz, da]);
            }
            _ => q_vjp_by_step(self, tape, steps, dq, dz, da),
        }
    }

    fn flops(&self, module: Module, rows: usize) -> (u64, u64) {
        match module {
            Module::Dynamics => self.dynamics.flops(rows),
            Module::Reward => self.reward.flops(rows),
            Module::Q => self.q.flops(rows),
            Module::Policy => self.policy.flops(rows),
        }
    }
}
