//! Gradient updates per second of [`Learner::update`],
//! on a replay of random episodes shaped like pendulum (obs 3, action 1),
//! at two model sizes, batch 256, horizon 3:
//! - `small`: the trainer's default (latent 64, MLP 256, encoder 256);
//! - `5m`: TD-MPC2's 5M model (latent 512, MLP 512, encoder 256, 5 Q heads).
//!
//! ```text
//! source scripts/env.sh && cargo bench -p dream-mpc-trainer --bench updates -- \
//!     [--device cpu|cuda] [--threads 1,2] [--size small,5m] [--n 30] \
//!     [--path per-head,fused] [--no-refresh]
//! ```
//! Prints one row per (size, threads, update path): the median, p90 and
//! max update time of `n` timed updates after 5 of warm-up, updates/s
//! (1 / median), and `burst/s`: `n` more updates back to back with one
//! device sync at the end, as training runs them (host and device
//! overlap); with two paths, the speed-up of the second over the first. The paths (`fused`, the default update, and `per-head`, the
//! earlier one) run on agents with the same seed and replay, timed
//! alternately update by update, so load on the machine affects both
//! alike. On CUDA every timed update ends with a device synchronize.
//! Then, per size, the cost of refreshing the robot-side agent from the
//! current weights as planner collection does before every episode
//! (export through a CPU copy, `Bundle::load`, `Agent::with_defaults`).

use dream_mpc::rng::Rng;
use dream_mpc_trainer::model::ModelConfig;
use dream_mpc_trainer::train::{export, DeviceChoice, Learner, TrainConfig, UpdatePath};
use std::time::Instant;
use tch::Device;

fn config(size: &str) -> TrainConfig {
    let mut cfg = TrainConfig {
        batch: 256,
        horizon: 3,
        ..Default::default()
    };
    match size {
        "small" => {}
        // Sizes do not change the op count: a quick model to count ops
        // under valgrind (see the op count in docs/RESULTS.md).
        "tiny" => {
            cfg.batch = 16;
            cfg.model = ModelConfig::tiny(cfg.model.n_q);
        }
        "5m" => {
            cfg.model.latent = 512;
            cfg.model.hidden = 512;
            cfg.model.enc_hidden = 256;
            cfg.model.n_q = 5;
        }
        other => panic!("--size {other}: expected small, 5m or tiny"),
    }
    cfg
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn arg(args: &[String], key: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == key)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let device = arg(&args, "--device", "cpu");
    let threads = arg(&args, "--threads", "1");
    let sizes = arg(&args, "--size", "small");
    let paths: Vec<UpdatePath> = arg(&args, "--path", "per-head,fused")
        .split(',')
        .map(|p| p.parse().unwrap_or_else(|e| panic!("--path: {e}")))
        .collect();
    let n: usize = arg(&args, "--n", "30").parse().expect("--n");
    let refresh = !args.iter().any(|a| a == "--no-refresh");
    let (device, note) = match device.parse::<DeviceChoice>().and_then(|d| d.resolve()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Some(n) = note {
        eprintln!("{n}");
    }
    println!(
        "{:<6} {:<8} {:<9} {:>7} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "size",
        "device",
        "path",
        "threads",
        "updates",
        "median_ms",
        "p90_ms",
        "max_ms",
        "updates/s",
        "burst/s"
    );
    let mut refreshes = Vec::new();
    for size in sizes.split(',') {
        for th in threads.split(',') {
            let th: i32 = th.parse().expect("--threads");
            tch::set_num_threads(th);
            let cfg = config(size);
            // One agent per path, same seed and replay; their updates are
            // timed alternately so load on the machine hits both alike.
            let mut agents: Vec<Learner> = paths
                .iter()
                .map(|&p| {
                    let mut a = agent(&cfg, device);
                    a.path = p;
                    a
                })
                .collect();
            for a in agents.iter_mut() {
                for _ in 0..5 {
                    a.update_pending();
                }
                sync(device);
            }
            let mut times = vec![Vec::with_capacity(n); agents.len()];
            for _ in 0..n {
                for (a, t) in agents.iter_mut().zip(times.iter_mut()) {
                    let t0 = Instant::now();
                    std::hint::black_box(a.update_pending());
                    sync(device);
                    t.push(t0.elapsed().as_secs_f64());
                }
            }
            // Back to back as training runs them (losses not read, one
            // sync at the end): throughput, where host and device overlap.
            let burst: Vec<f64> = agents
                .iter_mut()
                .map(|a| {
                    let t0 = Instant::now();
                    let pending: Vec<_> = (0..n).map(|_| a.update_pending()).collect();
                    sync(device);
                    std::hint::black_box(pending);
                    n as f64 / t0.elapsed().as_secs_f64()
                })
                .collect();
            let mut medians = Vec::new();
            for ((p, mut t), burst) in paths.iter().zip(times).zip(burst) {
                t.sort_by(|a, b| a.partial_cmp(b).unwrap());
                let med = t[n / 2];
                medians.push(med);
                println!(
                    "{size:<6} {:<8} {:<9} {th:>7} {n:>7} {:>10.2} {:>10.2} {:>10.2} {:>10.1} {:>10.1}",
                    format!("{device:?}"),
                    format!("{p:?}"),
                    med * 1e3,
                    t[(n * 9 / 10).min(n - 1)] * 1e3,
                    t[n - 1] * 1e3,
                    1.0 / med,
                    burst
                );
            }
            if medians.len() == 2 {
                println!(
                    "{size:<6} speed-up of {:?} over {:?} (median): {:.2}x",
                    paths[1],
                    paths[0],
                    medians[0] / medians[1]
                );
            }
            if refresh && th == threads.split(',').next().unwrap().parse::<i32>().unwrap() {
                refreshes.push((size.to_string(), refresh_ms(&agents[0], &cfg)));
            }
        }
    }
    if refresh {
        println!(
            "\n{:<6} {:>12} {:>12}",
            "size", "refresh_ms", "(median of 5)"
        );
        for (size, ms) in refreshes {
            println!("{size:<6} {ms:>12.1}");
        }
    }
}

/// A fresh agent for `cfg` with 8 random pendulum-shaped episodes.
fn agent(cfg: &TrainConfig, device: Device) -> Learner {
    let (obs, act) = (3, 1);
    let mut agent = Learner::new(cfg, obs, act, 1000, device);
    let len = agent.replay.len;
    let mut rng = Rng::new(1);
    for _ in 0..8 {
        let o: Vec<f32> = (0..(len + 1) * obs).map(|_| rng.normal() as f32).collect();
        let a: Vec<f32> = (0..len * act)
            .map(|_| rng.uniform_in(-1.0, 1.0) as f32)
            .collect();
        let r: Vec<f32> = (0..len).map(|_| rng.uniform() as f32).collect();
        agent.replay.push_episode(&o, &a, &r);
    }
    agent
}

/// Median of 5 refreshes: export + Bundle::load + Agent::with_defaults.
fn refresh_ms(agent: &Learner, cfg: &TrainConfig) -> f64 {
    let dir = std::env::temp_dir().join(format!("dmpc-refresh-{}", std::process::id()));
    let mut t: Vec<f64> = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            let d = export(agent, &dir, 0, cfg, None).expect("export");
            let b = dream_mpc::load::Bundle::load(&d).expect("load");
            let a = dream_mpc::agent::Agent::with_defaults(
                &b,
                dream_mpc::planner::PlannerKind::DreamMpc,
                0,
            )
            .expect("agent");
            std::hint::black_box(&a);
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[2]
}
