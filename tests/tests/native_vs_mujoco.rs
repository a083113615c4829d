//! The native tasks against their MuJoCo twins (feature `mujoco`): same
//! sizes, timestep and episode length; the same observation layout (the
//! cos/sin pairs of every angle sit at the same indices and are unit
//! vectors in both); and the scripted swing policy earns returns within a
//! stated margin on both backends. (`cartpole-balance` has no MuJoCo twin
//! in the registry; it shares the cart-pole model with `cartpole-swingup`.)
//!
//! Both backends draw a seed's initial state the same way from the same
//! generator, so a seed is the same episode on both, and the returns agree
//! to a few 1e-3 (measured: pendulum 776.8 vs 776.8, cart-pole 592.4 vs
//! 592.4, acrobot 5.1 vs 5.1 over seeds 100..105). What could make them
//! drift: the native cart-pole's slider limit is a closed-form approximation
//! of MuJoCo's soft constraint (see `sim/src/cartpole.rs`), and the native
//! integrators are f64 re-implementations of MuJoCo's (per-step agreement
//! 1e-6 or better from equal states, `sim/tests/reference.rs`). The margin
//! below (1.0 per 1000-step episode) allows for that and nothing more.
#![cfg(feature = "mujoco")]

use dream_mpc_sim::closed_loop::run_episode;
use dream_mpc_sim::policy::{self, PolicyKind};
use dream_mpc_sim::registry;

/// A task, the indices of its (cos, sin) pairs in the observation, and the
/// return margin.
type Case = (&'static str, &'static [(usize, usize)], f64);

const CASES: [Case; 3] = [
    ("pendulum-swingup", &[(0, 1)], 1.0),
    ("cartpole-swingup", &[(1, 2)], 1.0),
    ("acrobot-swingup", &[(0, 2), (1, 3)], 1.0),
];

fn mean_return(name: &str, episodes: u64) -> f64 {
    let mut task = registry::make(name).unwrap();
    let mut pol = policy::make(PolicyKind::Swing, name.trim_start_matches("mujoco/")).unwrap();
    (0..episodes)
        .map(|s| {
            run_episode(task.as_mut(), pol.as_mut(), 100 + s)
                .unwrap()
                .ret
        })
        .sum::<f64>()
        / episodes as f64
}

#[test]
fn native_and_mujoco_tasks_share_layout_and_earn_similar_returns() {
    let mut report = Vec::new();
    for (name, pairs, margin) in CASES {
        let mj_name = format!("mujoco/{name}");
        let native = registry::make(name).unwrap();
        let mj = registry::make(&mj_name).unwrap();
        let (a, b) = (native.spec(), mj.spec());
        assert_eq!(a.obs_size, b.obs_size, "{name}");
        assert_eq!(a.action_size, b.action_size, "{name}");
        assert_eq!(a.episode_len, b.episode_len, "{name}");
        assert!(
            (a.control_timestep - b.control_timestep).abs() < 1e-12,
            "{name}"
        );
        for (task, n) in [(native, name), (mj, mj_name.as_str())] {
            let mut task = task;
            let mut obs = vec![0.0; task.spec().obs_size];
            task.reset(3, &mut obs).unwrap();
            let act = vec![0.7; task.spec().action_size];
            for _ in 0..50 {
                task.step(&act, &mut obs).unwrap();
                for &(c, s) in pairs {
                    let norm = obs[c] * obs[c] + obs[s] * obs[s];
                    assert!(
                        (norm - 1.0).abs() < 1e-9,
                        "{n}: obs[{c}], obs[{s}] not cos/sin"
                    );
                }
            }
        }
        let (rn, rm) = (mean_return(name, 5), mean_return(&mj_name, 5));
        report.push(format!("{name}: native {rn:.4}, mujoco {rm:.4}"));
        assert!(
            (rn - rm).abs() <= margin,
            "{name}: swing policy returns native {rn:.1} vs MuJoCo {rm:.1} (margin {margin})"
        );
    }
    eprintln!("{}", report.join("; "));
}
