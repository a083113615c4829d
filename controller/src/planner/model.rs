//! The latent model a planner queries: one step of the world model at a
//! time, on a batch of candidates, with a tape slot per time step so the
//! vector-Jacobian products (VJPs) can run after the forward pass.
//!
//! The trait mirrors the compiled-kernel API (`Program::forward/backward`
//! with a `Tape` and a slot): each method is one module of the bundle
//! (TD-MPC2's `next`, `reward`, `Q`, `pi`) and each `*_vjp` overwrites its
//! outputs with the input-gradients of the forward recorded at the same
//! slot. Every slice is row-major `[rows, size]`; `rows` is implied by the
//! slice lengths and is at most the batch the tape was made for.
//!
//! Decoding (two-hot symlog and the like) happens inside the model: the
//! planner sees scalar rewards and one scalar per Q head.

/// Sizes a planner needs from a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelDims {
    /// Length of the latent vector z.
    pub latent: usize,
    /// Length of the (normalized, [-1, 1]) action a.
    pub action: usize,
    /// Number of Q heads (the ensemble whose spread is the uncertainty u).
    pub q_heads: usize,
}

/// Which module of the model a call runs (for compute accounting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Module {
    /// Latent dynamics `(z, a) -> z_next`.
    Dynamics,
    /// Reward `(z, a) -> r`.
    Reward,
    /// Q ensemble `(z, a) -> q[heads]`.
    Q,
    /// Policy prior `z -> (mu, log_std)` (pre-tanh Gaussian).
    Policy,
}

/// One step of a latent world model, batched over candidates.
///
/// Control-path contract: after [`LatentModel::tape`], no method allocates.
pub trait LatentModel {
    /// Activations recorded by forward calls, one slot per time step.
    type Tape;

    /// Sizes of z, a and the Q ensemble.
    fn dims(&self) -> ModelDims;

    /// A tape for at most `batch` rows and `slots` time steps.
    /// Allocates; call once at start-up.
    fn tape(&self, batch: usize, slots: usize) -> Self::Tape;

    /// `z_next = d(z, a)`; records at `slot`.
    fn next(&self, tape: &mut Self::Tape, slot: usize, z: &[f32], a: &[f32], z_next: &mut [f32]);
    /// VJP of [`LatentModel::next`] at `slot`: overwrites `dz`, `da`.
    fn next_vjp(
        &self,
        tape: &mut Self::Tape,
        slot: usize,
        dz_next: &[f32],
        dz: &mut [f32],
        da: &mut [f32],
    );

    /// `r = R(z, a)` (one decoded scalar per row); records at `slot`.
    fn reward(&self, tape: &mut Self::Tape, slot: usize, z: &[f32], a: &[f32], r: &mut [f32]);
    /// VJP of [`LatentModel::reward`] at `slot`: overwrites `dz`, `da`.
    fn reward_vjp(
        &self,
        tape: &mut Self::Tape,
        slot: usize,
        dr: &[f32],
        dz: &mut [f32],
        da: &mut [f32],
    );

    /// `q[row, i] = Q_i(z, a)` (decoded, `[rows, q_heads]`); records at `slot`.
    fn q(&self, tape: &mut Self::Tape, slot: usize, z: &[f32], a: &[f32], q: &mut [f32]);
    /// VJP of [`LatentModel::q`] at `slot`: overwrites `dz`, `da`.
    fn q_vjp(&self, tape: &mut Self::Tape, slot: usize, dq: &[f32], dz: &mut [f32], da: &mut [f32]);

    /// `(mu, log_std) = pi(z)`: the pre-tanh Gaussian policy prior; the
    /// action is `tanh(mu + exp(log_std) * eps)`. Records at `slot`.
    fn pi(
        &self,
        tape: &mut Self::Tape,
        slot: usize,
        z: &[f32],
        mu: &mut [f32],
        log_std: &mut [f32],
    );
    /// VJP of `mu` of [`LatentModel::pi`] at `slot` (the log-std output
    /// gets a zero cotangent): overwrites `dz`.
    fn pi_vjp(&self, tape: &mut Self::Tape, slot: usize, dmu: &[f32], dz: &mut [f32]);

    /// VJP of both outputs of [`LatentModel::pi`] at `slot` (a sampled
    /// action depends on log_std too): overwrites `dz`. The default ignores
    /// `dlog_std`, which is exact for models whose log-std does not depend
    /// on z; models with a learned log-std override it.
    fn pi_vjp_full(
        &self,
        tape: &mut Self::Tape,
        slot: usize,
        dmu: &[f32],
        dlog_std: &[f32],
        dz: &mut [f32],
    ) {
        let _ = dlog_std;
        self.pi_vjp(tape, slot, dmu, dz);
    }

    /// [`LatentModel::reward`] at `steps` time steps at once: `z`, `a`, `r`
    /// hold `steps` blocks of equal rows, block `t` being step `t` (slot
    /// `t`). The default calls `reward` once per step; a model may run all
    /// rows as one batch instead (one pass over each weight for `steps`
    /// times the rows: at the planner's 5-9 candidates the GEMMs are
    /// weight-streaming bound, so this is nearly free per extra row).
    fn reward_steps(
        &self,
        tape: &mut Self::Tape,
        steps: usize,
        z: &[f32],
        a: &[f32],
        r: &mut [f32],
    ) {
        reward_by_step(self, tape, steps, z, a, r)
    }
    /// VJP of [`LatentModel::reward_steps`]: overwrites `dz`, `da`.
    fn reward_steps_vjp(
        &self,
        tape: &mut Self::Tape,
        steps: usize,
        dr: &[f32],
        dz: &mut [f32],
        da: &mut [f32],
    ) {
        reward_vjp_by_step(self, tape, steps, dr, dz, da)
    }
    /// [`LatentModel::q`] at `steps` time steps at once (blocks as in
    /// [`LatentModel::reward_steps`]; records at slots `0..steps`).
    fn q_steps(&self, tape: &mut Self::Tape, steps: usize, z: &[f32], a: &[f32], q: &mut [f32]) {
        q_by_step(self, tape, steps, z, a, q)
    }
    /// VJP of [`LatentModel::q_steps`]: overwrites `dz`, `da`.
    fn q_steps_vjp(
        &self,
        tape: &mut Self::Tape,
        steps: usize,
        dq: &[f32],
        dz: &mut [f32],
        da: &mut [f32],
    ) {
        q_vjp_by_step(self, tape, steps, dq, dz, da)
    }

    /// Multiply-adds of one call of `module` on `rows` rows: (forward,
    /// backward). Zero when the model does not know.
    fn flops(&self, module: Module, rows: usize) -> (u64, u64) {
        let _ = (module, rows);
        (0, 0)
    }
}

/// Rows per step of a `steps`-block call whose scalar output has `len`
/// values of `per_row` each.
fn rows_per_step(len: usize, per_row: usize, steps: usize) -> usize {
    assert!(
        steps > 0 && per_row > 0 && len.is_multiple_of(steps * per_row),
        "steps do not split the rows"
    );
    len / (steps * per_row)
}

/// A step-block call `call(tape, t, z_t, a_t, out_t)` made once per step
/// `t` on that step's rows; `out` holds `per_row` values per row.
#[allow(clippy::too_many_arguments)]
fn forward_by_step<M: LatentModel + ?Sized>(
    m: &M,
    tape: &mut M::Tape,
    steps: usize,
    per_row: usize,
    z: &[f32],
    a: &[f32],
    out: &mut [f32],
    call: impl Fn(&M, &mut M::Tape, usize, &[f32], &[f32], &mut [f32]),
) {
    let d = m.dims();
    let rows = rows_per_step(out.len(), per_row, steps);
    let (nz, na, no) = (rows * d.latent, rows * d.action, rows * per_row);
    for t in 0..steps {
        let (zt, at) = (&z[t * nz..(t + 1) * nz], &a[t * na..(t + 1) * na]);
        call(m, tape, t, zt, at, &mut out[t * no..(t + 1) * no]);
    }
}

/// The VJP of a step-block call, `call(tape, t, dout_t, dz_t, da_t)` once
/// per step `t`; `dout` holds `per_row` values per row.
#[allow(clippy::too_many_arguments)]
fn vjp_by_step<M: LatentModel + ?Sized>(
    m: &M,
    tape: &mut M::Tape,
    steps: usize,
    per_row: usize,
    dout: &[f32],
    dz: &mut [f32],
    da: &mut [f32],
    call: impl Fn(&M, &mut M::Tape, usize, &[f32], &mut [f32], &mut [f32]),
) {
    let d = m.dims();
    let rows = rows_per_step(dout.len(), per_row, steps);
    let (nz, na, no) = (rows * d.latent, rows * d.action, rows * per_row);
    for t in 0..steps {
        call(
            m,
            tape,
            t,
            &dout[t * no..(t + 1) * no],
            &mut dz[t * nz..(t + 1) * nz],
            &mut da[t * na..(t + 1) * na],
        );
    }
}

/// [`LatentModel::reward_steps`] as one [`LatentModel::reward`] per step.
pub fn reward_by_step<M: LatentModel + ?Sized>(
    m: &M,
    tape: &mut M::Tape,
    steps: usize,
    z: &[f32],
    a: &[f32],
    r: &mut [f32],
) {
    forward_by_step(m, tape, steps, 1, z, a, r, M::reward)
}

/// [`LatentModel::reward_steps_vjp`] as one [`LatentModel::reward_vjp`] per step.
pub fn reward_vjp_by_step<M: LatentModel + ?Sized>(
    m: &M,
    tape: &mut M::Tape,
    steps: usize,
    dr: &[f32],
    dz: &mut [f32],
    da: &mut [f32],
) {
    vjp_by_step(m, tape, steps, 1, dr, dz, da, M::reward_vjp)
}

/// [`LatentModel::q_steps`] as one [`LatentModel::q`] per step.
pub fn q_by_step<M: LatentModel + ?Sized>(
    m: &M,
    tape: &mut M::Tape,
    steps: usize,
    z: &[f32],
    a: &[f32],
    q: &mut [f32],
) {
    forward_by_step(m, tape, steps, m.dims().q_heads, z, a, q, M::q)
}

/// [`LatentModel::q_steps_vjp`] as one [`LatentModel::q_vjp`] per step.
pub fn q_vjp_by_step<M: LatentModel + ?Sized>(
    m: &M,
    tape: &mut M::Tape,
    steps: usize,
    dq: &[f32],
    dz: &mut [f32],
    da: &mut [f32],
) {
    vjp_by_step(m, tape, steps, m.dims().q_heads, dq, dz, da, M::q_vjp)
}

/// Model rows run forward and backward during one tick, summed over
/// modules, and their multiply-adds when the model reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evals {
    /// Rows through a module's forward pass.
    pub forward: u64,
    /// Rows through a module's VJP.
    pub backward: u64,
    /// Multiply-adds of those passes (0 if the model does not count).
    pub flops: u64,
}

impl Evals {
    pub(crate) fn fwd<M: LatentModel>(&mut self, model: &M, module: Module, rows: usize) {
        self.forward += rows as u64;
        self.flops += model.flops(module, rows).0;
    }
    pub(crate) fn bwd<M: LatentModel>(&mut self, model: &M, module: Module, rows: usize) {
        self.backward += rows as u64;
        self.flops += model.flops(module, rows).1;
    }
}
