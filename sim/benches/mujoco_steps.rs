//! Control steps per second of the MuJoCo tasks, one worker and two
//! workers (one task = one mjModel + mjData per thread), side by side.
//!
//!   source scripts/env.sh
//!   cargo bench -p dream-mpc-sim --features mujoco --bench mujoco_steps [-- STEPS]
//!
//! Prints, per task, the median over 5 runs of control steps/s and physics
//! steps/s with 1 worker, with 2 workers (total), and the ratio.

use std::time::Instant;

use dream_mpc::rng::Rng;
use dream_mpc_sim::mujoco::{MujocoTask, SuiteTask};
use dream_mpc_sim::Task;

/// Run `steps` control steps of `task` with uniform random actions,
/// resetting at episode ends. Returns seconds.
fn run(task: &mut MujocoTask, steps: usize, seed: u64) -> f64 {
    let spec = task.spec().clone();
    let mut obs = vec![0.0; spec.obs_size];
    let mut act = vec![0.0; spec.action_size];
    let mut rng = Rng::new(seed);
    task.reset(seed, &mut obs).unwrap();
    let t0 = Instant::now();
    for _ in 0..steps {
        for a in act.iter_mut() {
            *a = rng.uniform_in(-1.0, 1.0);
        }
        if task.step(&act, &mut obs).unwrap().done {
            task.reset(rng.next_u64(), &mut obs).unwrap();
        }
    }
    t0.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let steps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    println!("{steps} control steps per worker per run, median of 5 runs");
    println!(
        "{:<18} {:>6} {:>14} {:>14} {:>16} {:>7}",
        "task", "substp", "1 worker st/s", "phys st/s", "2 workers st/s", "ratio"
    );
    for t in SuiteTask::ALL {
        let mut one = Vec::new();
        let mut two = Vec::new();
        let mut a = MujocoTask::from_suite_task(t).unwrap();
        let mut b = MujocoTask::from_suite_task(t).unwrap();
        let sub = a.spec().physics_substeps;
        run(&mut a, steps / 10, 99); // warm up
        for r in 0..5 {
            one.push(steps as f64 / run(&mut a, steps, r));
            let t0 = Instant::now();
            std::thread::scope(|s| {
                s.spawn(|| run(&mut a, steps, 100 + r));
                s.spawn(|| run(&mut b, steps, 200 + r));
            });
            two.push(2.0 * steps as f64 / t0.elapsed().as_secs_f64());
        }
        let (m1, m2) = (median(one), median(two));
        println!(
            "{:<18} {:>6} {:>14.0} {:>14.0} {:>16.0} {:>7.2}",
            t.name(),
            sub,
            m1,
            m1 * sub as f64,
            m2,
            m2 / m1
        );
    }
}
