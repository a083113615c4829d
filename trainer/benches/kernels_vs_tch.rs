//! Planner-shaped forward + backward through dynamics, reward and the Q
//! ensemble with libtorch autograd on one CPU thread: the baseline the
//! controller's compiled kernels are compared against (issue 3).
//!
//! For batch B = 8 candidates and horizon H: z_{t+1} = d(z_t, a_t),
//! J = sum_t g^t R(z_t, a_t) + g^H mean_k Q_k(z_H, a_H), then dJ/da for all
//! H+1 actions. Weights are frozen (no weight gradients), as in the planner.
//!
//! ```text
//! source scripts/env.sh && cargo bench -p dream-mpc-trainer --bench kernels_vs_tch
//! ```
//!
//! Prints median and p90 per call and GFLOP/s against the 256 GFLOP/s
//! single-core fp32 peak (FACTS.md), counting 2 flops per multiply-add and
//! the backward as the forward's multiply-adds again (input gradients only).
//! The controller's kernels on the same exported bundle are timed in the
//! same run once `dream_mpc::bundle::Bundle` is in main (see the report).

use dream_mpc_trainer::model::{Mlp, ModelConfig, WorldModel};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

const PEAK_GFLOPS: f64 = 256.0;

fn mlp_macs(m: &Mlp) -> u64 {
    m.layers.iter().map(|l| (l.d_in * l.d_out) as u64).sum()
}

fn objective(m: &WorldModel, z0: &Tensor, acts: &[Tensor], gamma: f64) -> Tensor {
    let h = acts.len() - 1;
    let mut z = z0.shallow_clone();
    let mut j = Tensor::zeros([], (Kind::Float, Device::Cpu));
    let mut disc = 1.0;
    for a in &acts[..h] {
        j += m.reward(&z, a).sum(Kind::Float) * disc;
        z = m.next(&z, a);
        disc *= gamma;
    }
    j + m.q_all(&z, &acts[h], false).mean(Kind::Float) * disc
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[(v.len() * 9) / 10])
}

fn main() {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let batch = 8usize;
    let (obs, act) = (8usize, 2usize);
    println!(
        "{:<28} {:>4} {:>12} {:>12} {:>10} {:>8}",
        "model", "H", "median_us", "p90_us", "GFLOP/s", "of_peak"
    );
    for (label, latent, hidden) in [("small L64 h256", 64, 256), ("medium L512 h512", 512, 512)] {
        let cfg = ModelConfig {
            latent,
            hidden,
            ..Default::default()
        };
        let mut vs = nn::VarStore::new(Device::Cpu);
        let m = WorldModel::new(&vs.root(), &cfg, obs, act);
        vs.freeze();
        let z0 = tch::no_grad(|| {
            m.encode(&Tensor::randn(
                [batch as i64, obs as i64],
                (Kind::Float, Device::Cpu),
            ))
        });
        let per_row = mlp_macs(&m.dynamics) + mlp_macs(&m.reward);
        let q_row: u64 = m.q.iter().map(mlp_macs).sum();
        for h in [3usize, 16] {
            let acts: Vec<Tensor> = (0..=h)
                .map(|_| {
                    Tensor::rand([batch as i64, act as i64], (Kind::Float, Device::Cpu))
                        .set_requires_grad(true)
                })
                .collect();
            let macs = batch as u64 * (h as u64 * per_row + q_row);
            let flops = 4.0 * macs as f64;
            let reps = if latent > 64 { 30 } else { 200 };
            let mut times = Vec::with_capacity(reps);
            for k in 0..reps + 5 {
                let t0 = Instant::now();
                let j = objective(&m, &z0, &acts, 0.99);
                let g = Tensor::run_backward(&[&j], &acts, false, false);
                std::hint::black_box(g[0].double_value(&[0, 0]));
                if k >= 5 {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
            let (med, p90) = stats(times);
            let gf = flops / med / 1e9;
            println!(
                "{:<28} {:>4} {:>12.1} {:>12.1} {:>10.2} {:>7.1}%",
                format!("tch {label}"),
                h,
                med * 1e6,
                p90 * 1e6,
                gf,
                100.0 * gf / PEAK_GFLOPS
            );
        }
    }
}
