//! Planner-shaped forward + backward through dynamics, reward and the Q
//! ensemble with libtorch autograd on one CPU thread: the baseline the
//! controller's compiled kernels are compared against.
//!
//! For batch B = 8 candidates and horizon H: z_{t+1} = d(z_t, a_t),
//! J = sum_t g^t R(z_t, a_t) + g^H mean_k Q_k(z_H, a_H), then dJ/da for all
//! H+1 actions. Weights are frozen (no weight gradients), as in the planner.
//!
//! ```text
//! source scripts/env.sh && cargo bench -p dream-mpc-trainer --bench kernels_vs_tch
//! ```
//!
//! Prints median and p90 per call and GFLOP/s against the single-core f32
//! FMA peak measured at start (`dream_mpc_testkit::peak`), counting 2 flops per multiply-add and
//! the backward as the forward's multiply-adds again (input gradients only).
//! The controller's compiled kernels run the same computation on the same
//! model, exported as a bundle and loaded by `dream_mpc::load::Bundle`,
//! in the same run; the ratio column is tch median / controller median.

mod common;

use common::exported_model;
use dream_mpc::kernels::{Program, Tape};
use dream_mpc::load::Bundle;
use dream_mpc_testkit::vjp::VjpBuffers;
use dream_mpc_trainer::export::ExportMeta;
use dream_mpc_trainer::model::{to_vec, Mlp, ModelConfig, WorldModel};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

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

/// The same objective and input gradients through the controller's kernels:
/// reward and dynamics for t < H, the Q ensemble at H, then the chained VJP
/// back to every action (cotangents g^t for r_t, g^H / n_q for each head).
struct Controller<'b> {
    d: &'b Program,
    r: &'b Program,
    q: &'b Program,
    tapes: [Tape; 3],
    z: Vec<Vec<f32>>,
    a: Vec<Vec<f32>>,
    buf: VjpBuffers,
    grad: Vec<Vec<f32>>,
    gamma: f32,
}

impl<'b> Controller<'b> {
    fn new(b: &'b Bundle, z0: Vec<f32>, a: Vec<Vec<f32>>, batch: usize, gamma: f32) -> Self {
        let h = a.len() - 1;
        let (d, r, q) = (
            b.module("dynamics").unwrap(),
            b.module("reward").unwrap(),
            b.module("q").unwrap(),
        );
        let l = z0.len() / batch;
        let na = a[0].len() / batch;
        // Outputs per row: 101 two-hot logits for the reward, heads x 101
        // for Q (the trainer's heads); the cotangents fall on the logits.
        let (nr, nq) = (r.outputs()[0].size, q.outputs()[0].size);
        let mut z = vec![vec![0.0; batch * l]; h + 1];
        z[0] = z0;
        let mut buf = VjpBuffers::new(batch, l, na, nr, nq);
        buf.ct_q.fill(gamma.powi(h as i32) / nq as f32);
        Controller {
            tapes: [d.tape(batch, h + 1), r.tape(batch, h + 1), q.tape(batch, 1)],
            d,
            r,
            q,
            z,
            grad: vec![vec![0.0; batch * na]; h + 1],
            a,
            buf,
            gamma,
        }
    }

    fn run(&mut self) -> f32 {
        let h = self.a.len() - 1;
        let [td, tr, tq] = &mut self.tapes;
        let b = &mut self.buf;
        let mut j = 0.0;
        for t in 0..h {
            let (zt, znext) = self.z.split_at_mut(t + 1);
            self.r
                .forward(tr, t, &[&zt[t], &self.a[t]], &mut [&mut b.r]);
            j += self.gamma.powi(t as i32) * b.r.iter().sum::<f32>();
            self.d
                .forward(td, t, &[&zt[t], &self.a[t]], &mut [&mut znext[0]]);
        }
        self.q
            .forward(tq, 0, &[&self.z[h], &self.a[h]], &mut [&mut b.q]);
        let [dz0, dz1, _] = &mut b.dz;
        let [da0, da1, _] = &mut b.da;
        self.q
            .backward(tq, 0, &[&b.ct_q], &mut [dz0, &mut self.grad[h]]);
        for t in (0..h).rev() {
            self.d.backward(td, t, &[dz0], &mut [dz1, da0]);
            b.ct_r.fill(self.gamma.powi(t as i32));
            self.r.backward(tr, t, &[&b.ct_r], &mut [dz0, da1]);
            for (i, g) in self.grad[t].iter_mut().enumerate() {
                *g = da0[i] + da1[i];
            }
            for (x, y) in dz0.iter_mut().zip(dz1.iter()) {
                *x += y;
            }
        }
        j
    }
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[v.len() / 2], v[(v.len() * 9) / 10])
}

fn main() {
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let measured = dream_mpc_testkit::peak::measure();
    println!("{}", measured.describe());
    let peak = measured.f32_fma;
    let batch = 8usize;
    let (obs, act) = (8usize, 2usize);
    println!(
        "{:<28} {:>4} {:>12} {:>12} {:>10} {:>8} {:>8}",
        "model", "H", "median_us", "p90_us", "GFLOP/s", "of_peak", "ratio"
    );
    for (label, latent, hidden) in [("small L64 h256", 64, 256), ("medium L512 h512", 512, 512)] {
        let cfg = ModelConfig {
            latent,
            hidden,
            ..Default::default()
        };
        let meta = ExportMeta::plain("bench", obs, act);
        let name = format!("kernels-vs-tch-{latent}");
        let (_vs, m, bundle, dir) = exported_model(&cfg, (obs, act), &meta, &name);
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
                "{:<28} {:>4} {:>12.1} {:>12.1} {:>10.2} {:>7.1}% {:>8}",
                format!("tch {label}"),
                h,
                med * 1e6,
                p90 * 1e6,
                gf,
                100.0 * gf / peak,
                "1.0"
            );
            let mut c = Controller::new(
                &bundle,
                to_vec(&z0),
                acts.iter().map(to_vec).collect(),
                batch,
                0.99,
            );
            let mut times = Vec::with_capacity(reps * 5);
            for k in 0..reps * 5 + 5 {
                let t0 = Instant::now();
                std::hint::black_box(c.run());
                if k >= 5 {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
            assert!(c.grad.iter().flatten().all(|g| g.is_finite()));
            let (cmed, cp90) = stats(times);
            let cgf = flops / cmed / 1e9;
            println!(
                "{:<28} {:>4} {:>12.1} {:>12.1} {:>10.2} {:>7.1}% {:>7.1}x",
                format!("controller {label}"),
                h,
                cmed * 1e6,
                cp90 * 1e6,
                cgf,
                100.0 * cgf / peak,
                med / cmed
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
