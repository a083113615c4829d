//! Gradient updates per second for the default model size on one CPU
//! thread (issue 5): latent 64, hidden 256, 5 Q heads, batch 256, horizon 3,
//! on a replay of random episodes shaped like pendulum (obs 3, action 1)
//! and cartpole (obs 5, action 1).
//!
//! ```text
//! source scripts/env.sh && cargo bench -p dream-mpc-trainer --bench updates
//! ```

use dream_mpc::rng::Rng;
use dream_mpc_trainer::train::{Agent, TrainConfig};
use std::time::Instant;

fn main() {
    tch::set_num_threads(1);
    let cfg = TrainConfig::default();
    println!(
        "{:<22} {:>10} {:>12} {:>12}",
        "shape", "updates", "median_ms", "updates/s"
    );
    for (label, obs, act) in [("pendulum obs3 act1", 3, 1), ("cartpole obs5 act1", 5, 1)] {
        let mut agent = Agent::new(&cfg, obs, act, 1000);
        let len = agent.replay.len;
        let mut rng = Rng::new(1);
        for _ in 0..4 {
            let o: Vec<f32> = (0..(len + 1) * obs).map(|_| rng.normal() as f32).collect();
            let a: Vec<f32> = (0..len * act)
                .map(|_| rng.uniform_in(-1.0, 1.0) as f32)
                .collect();
            let r: Vec<f32> = (0..len).map(|_| rng.uniform() as f32).collect();
            agent.replay.push_episode(&o, &a, &r);
        }
        for _ in 0..3 {
            agent.update();
        }
        let n = 30;
        let mut times: Vec<f64> = (0..n)
            .map(|_| {
                let t0 = Instant::now();
                std::hint::black_box(agent.update());
                t0.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let med = times[n / 2];
        println!(
            "{label:<22} {n:>10} {:>12.2} {:>12.1}",
            med * 1e3,
            1.0 / med
        );
    }
}
