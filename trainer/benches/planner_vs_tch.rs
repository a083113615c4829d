//! Dream-MPC per tick, side by side in one run on one thread: the
//! controller's planner (compiled kernels over the exported bundle) and the
//! obvious alternative, the same algorithm written with tch autograd on the
//! same tch model (the planner benchmark).
//!
//! Two algorithms, each in both implementations:
//!
//! - `authors`: the Dream-MPC authors' planner (the default `dream_mpc`;
//!   N = 5, H = 3, K = 1 SGD step, blended reuse), tch side
//!   `dream_mpc_trainer::reference_planner::AuthorsPlanner` (autograd);
//! - `sketch`: N policy rollouts (sampled, tanh squashed) + the previous
//!   plan shifted, K = 5 Adam steps on
//!   J = sum_t g^t (r_t - beta * std_i Q_i) + g^H mean_i Q_i(z_H, tanh mu(z_H))
//!   with actions clipped to [-1, 1], then the best candidate's first action.
//!
//! Models (trainer `WorldModel`, scalar reward and Q heads, observation 24,
//! action 6): small (latent 64, MLP 256, 5 heads), TD-MPC2's 1M (latent
//! 128, MLP 384, 2 heads) and 5M (latent 512, MLP 512, 5 heads). TD-MPC2
//! itself decodes 101-bin two-hot heads; the controller's planner benchmark
//! (`cargo bench -p dream-mpc --bench planners -- --models 1m,5m`) times
//! those.
//!
//! ```text
//! source scripts/env.sh && cargo bench -p dream-mpc-trainer --bench planner_vs_tch -- [--ticks N] [--quick] [--models small,1m,5m] [--bf16]
//! ```
//!
//! `--bf16` adds a row for the controller on the same bundle loaded with
//! bfloat16 weights, and the largest gap between its actions and the
//! float32 controller's over the same ticks (same seeds, same z0).
//!
//! Prints p50/p99/max per tick for each implementation, the ratio of the
//! medians and the controller's GFLOP/s (2 flops per multiply-add of the
//! forward and backward passes, counted by the planner) against the
//! single-core peak measured at start (`dream_mpc_testkit::peak`: float32
//! FMA, or `vdpbf16ps` for the bf16 row where the kernels use it).

mod common;

use common::{exported_model, percentiles};
use dream_mpc::bundle::manifest::PlannerDefaults;
use dream_mpc::bundle::Limits;
use dream_mpc::kernels::Weights;
use dream_mpc::load::Bundle;
use dream_mpc::planner::bundle_model::BundleModel;
use dream_mpc::planner::{Planner, PlannerConfig, PlannerKind, Preset};
use dream_mpc_trainer::export::ExportMeta;
use dream_mpc_trainer::model::{to_vec, ModelConfig, WorldModel};
use dream_mpc_trainer::reference_planner::{AuthorsBudget, AuthorsPlanner, TchLatentModel};
use std::time::{Duration, Instant};
use tch::{Device, Kind, Tensor};

struct Budget {
    n: usize,
    h: usize,
    k: usize,
    lr: f64,
    beta: f64,
    gamma: f64,
}

/// J per candidate, `[B]`, for actions `acts` (`[H, B, A]`).
fn objective(m: &WorldModel, z0: &Tensor, acts: &Tensor, b: &Budget) -> Tensor {
    let bsz = acts.size()[1];
    let mut z = z0.expand([bsz, z0.size()[1]], false);
    let mut j = Tensor::zeros([bsz], (Kind::Float, Device::Cpu));
    let mut g = 1.0;
    for t in 0..b.h as i64 {
        let a = acts.get(t);
        // Decoded (the model's heads may be two-hot, as TD-MPC2's are).
        let r = TchLatentModel::reward(m, &z, &a);
        let u = TchLatentModel::q_all(m, &z, &a).std_dim(1, false, false);
        j += (r - u * b.beta) * g;
        z = m.next(&z, &a);
        g *= b.gamma;
    }
    let (mu, _) = m.pi(&z);
    j + TchLatentModel::q_all(m, &z, &mu.tanh()).mean_dim(1, false, Kind::Float) * g
}

/// One Dream-MPC tick with tch autograd; returns the first action and the
/// best sequence (kept for the next tick).
fn tick_tch(m: &WorldModel, z0: &Tensor, prev: &Option<Tensor>, b: &Budget) -> (Tensor, Tensor) {
    let init = tch::no_grad(|| {
        let mut z = z0.expand([b.n as i64, z0.size()[1]], false);
        let mut acts = Vec::with_capacity(b.h);
        for _ in 0..b.h {
            let (mu, log_std) = m.pi(&z);
            let a = (&mu + log_std.exp() * mu.randn_like()).tanh();
            z = m.next(&z, &a);
            acts.push(a);
        }
        let mut seqs = Tensor::stack(&acts, 0);
        if let Some(p) = prev {
            // shift by one step; the last action from the policy
            let (mu, _) = m.pi(z0);
            let shifted = Tensor::cat(&[p.narrow(0, 1, b.h as i64 - 1), mu.tanh()], 0);
            seqs = Tensor::cat(&[seqs, shifted.unsqueeze(1)], 1);
        }
        seqs
    });
    let x = init.set_requires_grad(true);
    let mut m1 = x.zeros_like();
    let mut m2 = x.zeros_like();
    let (b1, b2, eps) = (0.9, 0.999, 1e-8);
    for it in 1..=b.k as i32 {
        let j = objective(m, z0, &x, b).sum(Kind::Float);
        let g = Tensor::run_backward(&[&j], &[&x], false, false)
            .pop()
            .unwrap();
        tch::no_grad(|| {
            m1 = &m1 * b1 + &g * (1.0 - b1);
            m2 = &m2 * b2 + (&g * &g) * (1.0 - b2);
            let mh = &m1 / (1.0 - b1.powi(it));
            let vh = &m2 / (1.0 - b2.powi(it));
            // ascent
            let mut xs = x.shallow_clone();
            let _ = xs.g_add_(&(mh / (vh.sqrt() + eps) * b.lr));
            let _ = xs.clamp_(-1.0, 1.0);
        });
    }
    tch::no_grad(|| {
        let j = objective(m, z0, &x, b);
        let best = j.argmax(0, false).int64_value(&[]);
        let seq = x.select(1, best).copy();
        (seq.get(0), seq)
    })
}

/// `ticks` timed controller ticks (after 10 warm-up ticks) on the same
/// `z0`: per-tick milliseconds, multiply-adds of a tick and every action.
fn time_controller(
    model: &BundleModel,
    planner: &mut Planner<BundleModel>,
    z0: &[f32],
    ticks: usize,
) -> (Vec<f64>, u64, Vec<f32>) {
    let mut t = Vec::with_capacity(ticks);
    let mut acts = vec![];
    let mut flops = 0u64;
    for i in 0..ticks + 10 {
        let t0 = Instant::now();
        let r = planner
            .plan(model, z0, Instant::now() + Duration::from_secs(10))
            .expect("plan");
        std::hint::black_box(r.action.as_slice()[0]);
        flops = r.evals.flops;
        if i >= 10 {
            t.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        acts.extend_from_slice(r.action.as_slice());
    }
    (t, flops, acts)
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let quick = argv.iter().any(|a| a == "--quick");
    let ticks: usize = argv
        .iter()
        .position(|a| a == "--ticks")
        .map(|i| argv[i + 1].parse().expect("--ticks N"))
        .unwrap_or(if quick { 200 } else { 2_000 });
    let only: Option<Vec<String>> = argv
        .iter()
        .position(|a| a == "--models")
        .map(|i| argv[i + 1].split(',').map(String::from).collect());
    let bf16 = argv.iter().any(|a| a == "--bf16");
    tch::set_num_threads(1);
    tch::manual_seed(0);
    let peak = dream_mpc_testkit::peak::measure();
    println!("{}", peak.describe());
    let (obs, act) = (24usize, 6usize);
    let gamma = 0.99;
    let sketch = Budget {
        n: 8,
        h: 3,
        k: 5,
        lr: 0.1,
        beta: 0.1,
        gamma,
    };
    println!("Dream-MPC tick, single thread, {ticks} ticks per row (after 10 warm-up)");
    println!(
        "{:<10} {:<8} {:<10} {:>9} {:>9} {:>9} {:>8} {:>9} {:>8}",
        "model", "preset", "impl", "p50 ms", "p99 ms", "max ms", "ratio", "GFLOP/s", "of peak"
    );
    for (label, latent, hidden, n_q) in [
        ("small", 64usize, 256usize, 5usize),
        ("1m", 128, 384, 2),
        ("5m", 512, 512, 5),
    ] {
        if only.as_ref().is_some_and(|o| !o.iter().any(|m| m == label)) {
            continue;
        }
        let cfg = ModelConfig {
            latent,
            hidden,
            n_q,
            ..Default::default()
        };
        let mut meta = ExportMeta::plain("bench", obs, act);
        meta.discount = gamma as f32;
        let name = format!("planner-vs-tch-{label}");
        let (_vs, m, bundle, dir) = exported_model(&cfg, (obs, act), &meta, &name);
        let model = BundleModel::new(&bundle).expect("model");
        let z0 =
            tch::no_grad(|| m.encode(&Tensor::randn([1, obs as i64], (Kind::Float, Device::Cpu))));
        let z0v = to_vec(&z0);

        for preset in [Preset::Authors, Preset::Sketch] {
            let mut d = PlannerDefaults::preset(preset);
            if preset == Preset::Sketch {
                d.candidates = sketch.n;
                d.iterations = sketch.k;
                d.step_size = sketch.lr as f32;
                d.beta = sketch.beta as f32;
            }
            let pc = PlannerConfig::for_kind(PlannerKind::DreamMpc, &d, gamma as f32);
            let mut planner = Planner::new(&model, pc.clone()).expect("planner");
            // tch: closed loop on the same z0 with the plan reused
            let mut authors = AuthorsPlanner::new(
                AuthorsBudget {
                    gamma,
                    ..Default::default()
                },
                0,
            );
            let mut prev = None;
            let mut t_tch = Vec::with_capacity(ticks);
            for i in 0..ticks + 10 {
                let t0 = Instant::now();
                let a = if preset == Preset::Authors {
                    authors.act(&m, &z0)
                } else {
                    let (a, seq) = tick_tch(&m, &z0, &prev, &sketch);
                    prev = Some(seq);
                    a
                };
                std::hint::black_box(a.double_value(&[0]));
                if i >= 10 {
                    t_tch.push(t0.elapsed().as_secs_f64() * 1e3);
                }
            }
            // controller: float32, then (--bf16) the same bundle in bf16
            let (t_ctl, flops, acts) = time_controller(&model, &mut planner, &z0v, ticks);
            let (t50, t99, tmax) = percentiles(t_tch);
            println!(
                "{:<10} {:<8} {:<10} {:>9.3} {:>9.3} {:>9.3} {:>8} {:>9} {:>8}",
                label,
                preset.name(),
                "tch",
                t50,
                t99,
                tmax,
                "1.0",
                "",
                ""
            );
            let row = |name: &str, t: Vec<f64>, peak_gflops: f64| {
                let (c50, c99, cmax) = percentiles(t);
                let gf = 2.0 * flops as f64 / (c50 / 1e3) / 1e9;
                println!(
                    "{:<10} {:<8} {:<10} {:>9.3} {:>9.3} {:>9.3} {:>7.1}x {:>9.1} {:>7.1}%",
                    label,
                    preset.name(),
                    name,
                    c50,
                    c99,
                    cmax,
                    t50 / c50,
                    gf,
                    100.0 * gf / peak_gflops
                );
            };
            row("controller", t_ctl, peak.f32_fma);
            if bf16 {
                let b16 = Bundle::load_as(&dir, Limits::default(), Weights::Bf16).expect("bf16");
                let model16 = BundleModel::new(&b16).expect("model");
                let mut p16 = Planner::new(&model16, pc.clone()).expect("planner");
                let (t16, _, acts16) = time_controller(&model16, &mut p16, &z0v, ticks);
                let p16 = match peak.bf16_dot {
                    Some(p) if dream_mpc::kernels::gemm::bf16_dot() => p,
                    _ => peak.f32_fma,
                };
                row("ctl-bf16", t16, p16);
                let gap = acts
                    .iter()
                    .zip(&acts16)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                println!(
                    "{label:<10} {:<8} bf16 vs f32: largest action gap {gap:.2e}",
                    preset.name()
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
