//! The buffers of a planner-shaped forward + VJP through the dynamics,
//! reward and Q programs over a horizon, shared by the kernel benchmarks
//! (controller/benches/kernels.rs, trainer/benches/kernels_vs_tch.rs).

/// Per-step outputs, cotangents and per-module input gradients for `batch`
/// rows; index 0, 1, 2 of `dz` and `da` is dynamics, reward, Q. Allocated
/// once (`new`); the passes reuse them.
pub struct VjpBuffers {
    /// Reward output, `batch * n_r`.
    pub r: Vec<f32>,
    /// Q ensemble output, `batch * n_q`.
    pub q: Vec<f32>,
    /// Cotangent of the reward output, `batch * n_r`.
    pub ct_r: Vec<f32>,
    /// Cotangent of the Q output, `batch * n_q`.
    pub ct_q: Vec<f32>,
    /// Gradient with respect to the latent from each module, `batch * latent`.
    pub dz: [Vec<f32>; 3],
    /// Gradient with respect to the action from each module, `batch * act`.
    pub da: [Vec<f32>; 3],
}

impl VjpBuffers {
    /// All zeros, for `batch` rows of a model with latent size `latent`,
    /// action size `act`, reward outputs `n_r` and Q outputs `n_q`.
    pub fn new(batch: usize, latent: usize, act: usize, n_r: usize, n_q: usize) -> Self {
        VjpBuffers {
            r: vec![0.0; batch * n_r],
            q: vec![0.0; batch * n_q],
            ct_r: vec![0.0; batch * n_r],
            ct_q: vec![0.0; batch * n_q],
            dz: std::array::from_fn(|_| vec![0.0; batch * latent]),
            da: std::array::from_fn(|_| vec![0.0; batch * act]),
        }
    }
}
