//! Forward + backward (VJP) through dynamics, reward and the Q ensemble of a
//! TD-MPC2-style model over a horizon, as a gradient planner runs them: for
//! t < H, z_{t+1} = d(z_t, a_t), r(z_t, a_t), Q(z_t, a_t); then the chained
//! VJP back to every a_t. Batch 8 (candidates), H in {3, 16}, small (latent
//! 64, hidden 256) and medium (latent 512, hidden 512) models; median and
//! p99 wall time per full pass and achieved GFLOP/s (2 x multiply-adds of
//! the matrix products) against the single-core f32 FMA peak measured at
//! start (`dream_mpc_testkit::peak`). Single thread.
//!
//! Run: `cargo bench -p dream-mpc --bench kernels` (add `-- --quick` for
//! fewer repetitions). Without a release build of the dependencies at
//! hand, the same code optimized inside the dev profile:
//! `cargo build -p dream-mpc --benches --config
//! 'profile.dev.package.dream-mpc.opt-level=3' --config
//! 'profile.dev.package.dream-mpc.debug-assertions=false' --config
//! 'profile.dev.package.dream-mpc.overflow-checks=false'` and run
//! `target/debug/deps/kernels-*` pinned with `taskset -c 1`.
//!
//! Measured 2026-11-24 17:26 UTC that way, on the shared 2-vCPU Intel
//! Xeon (AVX-512) dev machine under load average ~4 from other builds
//! (so absolute numbers are pessimistic; "of 256" was the peak assumed
//! then, the benchmark now measures it):
//!
//! | model  | H  | MACs f+b | fwd med | f+b med  | f+b p99  | GFLOP/s | of 256 |
//! |--------|----|----------|---------|----------|----------|---------|--------|
//! | small  | 3  | 36.3 M   | 1.17 ms | 2.60 ms  | 3.34 ms  | 27.9    | 10.9 % |
//! | small  | 16 | 193 M    | 6.36 ms | 14.1 ms  | 38.9 ms  | 27.5    | 10.7 % |
//! | medium | 3  | 205 M    | 8.93 ms | 19.2 ms  | 58.0 ms  | 21.3    | 8.3 %  |
//! | medium | 16 | 1.09 G   | 85.3 ms | 173 ms   | 190 ms   | 12.6    | 4.9 %  |

use dream_mpc::kernels::{Program, Tape};
use dream_mpc::rng::Rng;
use dream_mpc_testkit::bundles::{TdmpcModel, TdmpcSpec};
use dream_mpc_testkit::vjp::VjpBuffers;
use std::time::Instant;

struct Rollout {
    dynamics: Program,
    reward: Program,
    q: Program,
    tapes: [Tape; 3],
    h: usize,
    batch: usize,
    z: Vec<Vec<f32>>,
    a: Vec<Vec<f32>>,
    buf: VjpBuffers,
    dz_next: Vec<f32>,
    grad_a: Vec<Vec<f32>>,
}

fn rnd(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32 * 0.5).collect()
}

impl Rollout {
    fn new(spec: &TdmpcSpec, batch: usize, h: usize) -> Self {
        let model = TdmpcModel::random(spec);
        let mut progs: Vec<Program> = model
            .modules()
            .into_iter()
            .filter(|m| ["dynamics", "reward", "q"].contains(&m.name.as_str()))
            .map(|m| Program::compile(&m.name, &m.model.to_bytes(), &m.spec).expect("compiles"))
            .collect();
        progs.sort_by_key(|p| {
            ["dynamics", "reward", "q"]
                .iter()
                .position(|n| *n == p.name())
        });
        let q = progs.pop().unwrap();
        let reward = progs.pop().unwrap();
        let dynamics = progs.pop().unwrap();
        let tapes = [
            dynamics.tape(batch, h),
            reward.tape(batch, h),
            q.tape(batch, h),
        ];
        let mut rng = Rng::new(9);
        let (l, na) = (spec.latent, spec.act);
        let nr = reward.outputs()[0].size;
        let nq = q.outputs()[0].size;
        let z = (0..=h).map(|_| rnd(&mut rng, batch * l)).collect();
        let a = (0..h).map(|_| rnd(&mut rng, batch * na)).collect();
        let mut buf = VjpBuffers::new(batch, l, na, nr, nq);
        buf.ct_r = rnd(&mut rng, batch * nr);
        buf.ct_q = rnd(&mut rng, batch * nq);
        Rollout {
            z,
            a,
            buf,
            dz_next: vec![0.0; batch * l],
            grad_a: (0..h).map(|_| vec![0.0; batch * na]).collect(),
            dynamics,
            reward,
            q,
            tapes,
            h,
            batch,
        }
    }

    fn forward(&mut self) {
        let [td, tr, tq] = &mut self.tapes;
        for t in 0..self.h {
            let (zt, znext) = self.z.split_at_mut(t + 1);
            let (zt, at) = (&zt[t], &self.a[t]);
            self.dynamics
                .forward(td, t, &[zt, at], &mut [&mut znext[0]]);
            let b = &mut self.buf;
            self.reward.forward(tr, t, &[zt, at], &mut [&mut b.r]);
            self.q.forward(tq, t, &[zt, at], &mut [&mut b.q]);
        }
    }

    fn backward(&mut self) {
        let [td, tr, tq] = &mut self.tapes;
        self.dz_next.iter_mut().for_each(|v| *v = 0.0);
        for t in (0..self.h).rev() {
            let b = &mut self.buf;
            let [dz0, dz1, dz2] = &mut b.dz;
            let [da0, da1, da2] = &mut b.da;
            self.dynamics
                .backward(td, t, &[&self.dz_next], &mut [dz0, da0]);
            self.reward.backward(tr, t, &[&b.ct_r], &mut [dz1, da1]);
            self.q.backward(tq, t, &[&b.ct_q], &mut [dz2, da2]);
            for (i, v) in self.dz_next.iter_mut().enumerate() {
                *v = dz0[i] + dz1[i] + dz2[i];
            }
            for (i, v) in self.grad_a[t].iter_mut().enumerate() {
                *v = da0[i] + da1[i] + da2[i];
            }
        }
    }

    /// Multiply-adds of one forward and one backward pass over the horizon.
    fn macs(&self) -> (u64, u64) {
        let (mut f, mut b) = (0, 0);
        for p in [&self.dynamics, &self.reward, &self.q] {
            let (pf, pb) = p.flops(self.batch);
            f += pf;
            b += pb;
        }
        (f * self.h as u64, b * self.h as u64)
    }
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let med = v[v.len() / 2];
    let p99 = v[((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1];
    (med, p99)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let measured = dream_mpc_testkit::peak::measure();
    println!("{}", measured.describe());
    let peak = measured.f32_fma;
    println!("kernels bench: forward+VJP through dynamics+reward+Q, batch 8, single thread");
    println!(
        "{:<8} {:>3} {:>12} {:>12} {:>12} {:>12} {:>9} {:>8} {:>7}",
        "model",
        "H",
        "MACs f+b",
        "fwd med us",
        "f+b med us",
        "f+b p99 us",
        "GFLOP/s",
        "of peak",
        "reps"
    );
    for (label, spec) in [
        ("small", TdmpcSpec::bench_small()),
        ("medium", TdmpcSpec::bench_medium()),
    ] {
        for h in [3, 16] {
            let mut r = Rollout::new(&spec, 8, h);
            let (mf, mb) = r.macs();
            let budget = if quick { 0.3 } else { 2.0 };
            for _ in 0..5 {
                r.forward();
                r.backward();
            }
            let (mut tf, mut tfb) = (vec![], vec![]);
            let start = Instant::now();
            while start.elapsed().as_secs_f64() < budget || tfb.len() < 20 {
                let t0 = Instant::now();
                r.forward();
                let t1 = Instant::now();
                r.backward();
                let t2 = Instant::now();
                tf.push((t1 - t0).as_secs_f64());
                tfb.push((t2 - t0).as_secs_f64());
            }
            assert!(r.grad_a.iter().flatten().all(|v| v.is_finite()));
            let n = tfb.len();
            let (fmed, _) = stats(tf);
            let (med, p99) = stats(tfb);
            let gflops = 2.0 * (mf + mb) as f64 / med / 1e9;
            println!(
                "{:<8} {:>3} {:>12} {:>12.1} {:>12.1} {:>12.1} {:>9.1} {:>7.1}% {:>7}",
                label,
                h,
                mf + mb,
                fmed * 1e6,
                med * 1e6,
                p99 * 1e6,
                gflops,
                100.0 * gflops / peak,
                n
            );
        }
    }
}
