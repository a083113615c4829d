//! Latency of every planner at its default budget, single core.
//!
//! ```text
//! taskset -c 0 cargo bench -p dream-mpc --bench planners -- [--ticks N] [--sampling-ticks N] [--models lq,...] [--kinds dream_mpc,...] [--presets authors,sketch] [--weights f32,bf16]
//! ```
//!
//! `--weights`: the bundle models are loaded once per weight storage
//! (`f32` default, `bf16`: half the bytes; rows named `5m/bf16`).
//!
//! Presets: `authors` (the default `dream_mpc`: N = 5, H = 3, K = 1 SGD
//! step, the authors' options) and `sketch` (N = 8 + 1, H = 3, K = 5 Adam
//! steps of 0.05, beta 0.1: the earlier default, as in docs/RESULTS.md's first planner table).
//!
//! For each model and planner: a closed loop in the model itself (the
//! planned action moves the latent through the model's dynamics, so reuse
//! sees realistic consecutive ticks), 100 warm-up ticks, then `ticks` timed
//! ticks; reports p50/p99/max latency, model evaluations (rows forward and
//! backward) per tick, multiply-adds per tick and GFLOP/s (2 flops per
//! multiply-add) against this core's peak, measured at start
//! (`dream_mpc_testkit::peak`: float32 FMA, or `vdpbf16ps` for bf16 rows
//! where the kernels use it).
//! CEM and MPPI (512 samples x 6 iterations) run `--sampling-ticks`
//! (default 1,000) because a tick costs ~100x a Dream-MPC tick.
//!
//! Models: `lq` is the native linear-quadratic model (latent 64, action 6):
//! its model cost is tiny, so its row measures the planner's own overhead.
//! The others are random TD-MPC2-shaped bundles (observation 24, action 6,
//! two-hot reward and Q with 101 bins): `small` (latent 64, MLP 256, 5
//! heads), `medium` (latent 128, MLP 512, 5 heads), and TD-MPC2's own sizes
//! `1m` (latent 128, MLP 384, 2 heads) and `5m` (latent 512, MLP 512, 5
//! heads). The encoder (256 wide in TD-MPC2) does not run inside `plan`,
//! so it is not part of these timings.

use dream_mpc::bundle::manifest::PlannerDefaults;
use dream_mpc::kernels::Weights;
use dream_mpc::planner::{LatentModel, PlanStatus, Planner, PlannerConfig, PlannerKind, Preset};
use dream_mpc::rng::Rng;
use dream_mpc_testkit::lq::{Disagreement, LinearQuadratic};
use std::time::{Duration, Instant};

struct Args {
    ticks: usize,
    sampling_ticks: usize,
    models: Vec<String>,
    kinds: Vec<String>,
    presets: Vec<String>,
    weights: Vec<Weights>,
    peak: dream_mpc_testkit::peak::Peak,
}

fn args() -> Args {
    let mut a = Args {
        ticks: 10_000,
        sampling_ticks: 1_000,
        models: vec!["lq".into()],
        kinds: PlannerKind::ALL
            .iter()
            .map(|k| k.name().to_string())
            .collect(),
        presets: vec!["authors".into(), "sketch".into()],
        weights: vec![Weights::F32],
        peak: dream_mpc_testkit::peak::measure(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--ticks" => a.ticks = value().parse().expect("--ticks N"),
            "--sampling-ticks" => a.sampling_ticks = value().parse().expect("--sampling-ticks N"),
            "--models" => a.models = value().split(',').map(String::from).collect(),
            "--kinds" => a.kinds = value().split(',').map(String::from).collect(),
            "--presets" => a.presets = value().split(',').map(String::from).collect(),
            "--weights" => {
                a.weights = value()
                    .split(',')
                    .map(|w| Weights::parse(w).unwrap())
                    .collect()
            }
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn lq_model(latent: usize, action: usize) -> LinearQuadratic {
    let mut rng = Rng::new(1);
    let mut m = LinearQuadratic::point_mass(latent, 5, 0.1, 1.0, 0.1, 1.0);
    m.m = action;
    m.b = (0..latent * action)
        .map(|_| 0.1 * rng.normal() as f32)
        .collect();
    m.w_a = vec![0.1; action];
    m.k = (0..action * latent)
        .map(|_| 0.1 * rng.normal() as f32)
        .collect();
    m.bias = vec![0.0; action];
    m.log_std = vec![-1.0; action];
    m.heads = 6;
    m.disagreement = Some(Disagreement {
        center: vec![0.1; latent],
        width: 1.0,
        scale: 0.5,
    });
    m
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn defaults(preset: &str) -> PlannerDefaults {
    match preset {
        "authors" => PlannerDefaults::preset(Preset::Authors),
        "sketch" => PlannerDefaults {
            iterations: 5,
            step_size: 0.05,
            ..PlannerDefaults::preset(Preset::Sketch)
        },
        other => panic!("unknown preset {other} (authors, sketch)"),
    }
}

/// The peak a row is measured against, and its name.
fn peak_of(a: &Args, weights: Weights) -> (f64, &'static str) {
    match (weights, a.peak.bf16_dot) {
        (Weights::Bf16, Some(p)) if dream_mpc::kernels::gemm::bf16_dot() => (p, "bf16 peak"),
        _ => (a.peak.f32_fma, "f32 peak"),
    }
}

fn bench<M: LatentModel>(name: &str, model: &M, a: &Args, weights: Weights) {
    for preset in &a.presets {
        bench_preset(
            name,
            model,
            preset,
            &defaults(preset),
            a,
            peak_of(a, weights),
        );
    }
}

fn bench_preset<M: LatentModel>(
    name: &str,
    model: &M,
    preset: &str,
    defaults: &PlannerDefaults,
    a: &Args,
    (peak, peak_name): (f64, &str),
) {
    let l = model.dims().latent;
    for kind in PlannerKind::ALL {
        if !a.kinds.iter().any(|k| k == kind.name()) {
            continue;
        }
        // The presets differ only for the gradient planners.
        if !kind.is_gradient() && preset != a.presets[0] {
            continue;
        }
        let cfg = PlannerConfig::for_kind(kind, defaults, 0.99);
        let ticks = if kind.is_sampling() {
            a.sampling_ticks
        } else {
            a.ticks
        };
        let mut planner = Planner::new(model, cfg.clone()).unwrap();
        let mut stepper = model.tape(1, 1);
        let mut rng = Rng::new(3);
        let mut z: Vec<f32> = (0..l).map(|_| 0.5 * rng.normal() as f32).collect();
        let z_start = z.clone();
        let mut zn = vec![0.0; l];
        let mut action = vec![0.0; model.dims().action];
        let mut lat = Vec::with_capacity(ticks);
        let (mut fwd, mut bwd, mut flops, mut unfinished) = (0u64, 0u64, 0u64, 0usize);
        for tick in 0..100 + ticks {
            if tick % 200 == 0 {
                z.copy_from_slice(&z_start); // episodes of 200 ticks
                planner.reset();
            }
            let t0 = Instant::now();
            let r = planner
                .plan(model, &z, t0 + Duration::from_secs(10))
                .unwrap();
            let dt = t0.elapsed();
            action.copy_from_slice(r.action.as_slice());
            if tick >= 100 {
                lat.push(dt);
                fwd += r.evals.forward;
                bwd += r.evals.backward;
                flops += r.evals.flops;
                unfinished += usize::from(r.status != PlanStatus::Finished);
            }
            model.next(&mut stepper, 0, &z, &action, &mut zn);
            z.copy_from_slice(&zn);
        }
        let total: Duration = lat.iter().sum();
        lat.sort();
        let n = ticks as f64;
        let gflops = 2.0 * flops as f64 / total.as_secs_f64() / 1e9;
        println!(
            "{name:>10} {preset:>7} {:>16} N={:<3} H={} K={:<2} ticks={ticks:<6} p50={:>9.1?} p99={:>9.1?} max={:>9.1?} fwd_rows/tick={:>7.0} bwd_rows/tick={:>6.0} MMAC/tick={:>8.3} GFLOP/s={:>6.1} ({:.1}% of {peak_name} {peak:.0}) not_finished={unfinished}",
            kind.name(),
            if kind.is_sampling() { cfg.cem_samples } else { cfg.candidates },
            cfg.horizon,
            cfg.budget_iterations(model.dims().action),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat[lat.len() - 1],
            fwd as f64 / n,
            bwd as f64 / n,
            flops as f64 / n / 1e6,
            gflops,
            100.0 * gflops / peak,
        );
    }
}

fn main() {
    let a = args();
    println!(
        "{}; kernel path {} (DREAM_MPC_KERNELS), bf16 vdpbf16ps {}",
        a.peak.describe(),
        dream_mpc::kernels::gemm::kernel_path().name(),
        if dream_mpc::kernels::gemm::bf16_dot() {
            "on"
        } else {
            "off"
        }
    );
    for name in a.models.clone() {
        // (latent, MLP, Q heads) of the random TD-MPC2-shaped bundles.
        let shape = match name.as_str() {
            "lq" => {
                bench("lq", &lq_model(64, 6), &a, Weights::F32);
                continue;
            }
            "small" => (64, 256, 5),
            "medium" => (128, 512, 5),
            "1m" => (128, 384, 2),
            "5m" => (512, 512, 5),
            other => panic!("unknown model {other} (known: lq, small, medium, 1m, 5m)"),
        };
        let (latent, hidden, heads) = shape;
        let dir = std::env::temp_dir().join(format!("dream-mpc-bench-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        dream_mpc_testkit::bundles::write_random_tdmpc_bundle(
            &dir, 24, 6, latent, hidden, heads, 1,
        )
        .unwrap();
        for &w in &a.weights {
            let limits = dream_mpc::bundle::Limits::default();
            let bundle = dream_mpc::load::Bundle::load_as(&dir, limits, w).unwrap();
            let model = dream_mpc::planner::bundle_model::BundleModel::new(&bundle).unwrap();
            let label = match w {
                Weights::F32 => name.clone(),
                _ => format!("{name}/{}", w.name()),
            };
            bench(&label, &model, &a, w);
        }
    }
}
