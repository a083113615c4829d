//! Behaviour of every native task through the `Task` trait: reward bounds,
//! determinism, the suite's initial-state distributions, bad input, a
//! balance controller keeping the pole up, and random-policy scores in the
//! suite's known low range.

use dream_mpc_sim::closed_loop::run_episode;
use dream_mpc_sim::policy::{self, PolicyKind, BALANCE_GAIN};
use dream_mpc_sim::registry::{self, NATIVE};
use dream_mpc_sim::{cartpole, TaskError};
use std::f64::consts::PI;

fn obs_buf(name: &str) -> Vec<f64> {
    vec![0.0; registry::make(name).unwrap().spec().obs_size]
}

#[test]
fn rewards_are_in_unit_interval_and_episodes_last_1000_steps() {
    for name in NATIVE {
        let mut t = registry::make(name).unwrap();
        let mut obs = obs_buf(name);
        let mut pol = policy::make(PolicyKind::Random, name).unwrap();
        let mut action = vec![0.0; t.spec().action_size];
        for seed in 0..2 {
            t.reset(seed, &mut obs).unwrap();
            pol.reset(seed);
            for k in 0..1000 {
                pol.act(&obs, &mut action);
                let st = t.step(&action, &mut obs).unwrap();
                assert!(
                    (0.0..=1.0).contains(&st.reward),
                    "{name} step {k}: {}",
                    st.reward
                );
                assert!(
                    obs.iter().all(|o| o.is_finite()),
                    "{name} step {k}: {obs:?}"
                );
                assert_eq!(st.done, k == 999, "{name} step {k}");
            }
            assert_eq!(t.step(&action, &mut obs), Err(TaskError::EpisodeOver));
        }
    }
}

#[test]
fn same_seed_same_trajectory_other_seed_other_start() {
    for name in NATIVE {
        let run = |seed: u64| {
            let mut t = registry::make(name).unwrap();
            let mut p = policy::make(PolicyKind::Random, name).unwrap();
            let mut obs = obs_buf(name);
            let mut action = vec![0.0; t.spec().action_size];
            t.reset(seed, &mut obs).unwrap();
            p.reset(seed);
            let mut trace = obs.clone();
            for _ in 0..200 {
                p.act(&obs, &mut action);
                let st = t.step(&action, &mut obs).unwrap();
                trace.extend_from_slice(&obs);
                trace.push(st.reward);
            }
            trace
        };
        let a = run(7);
        assert_eq!(a, run(7), "{name}: not deterministic");
        assert_ne!(a[..4], run(8)[..4], "{name}: seed has no effect");
    }
}

/// Initial states: sample many resets, check support and spread against
/// the suite's distributions.
#[test]
fn initial_state_distributions_match_the_suite() {
    let sample = |name: &str, n: u64| -> Vec<(Vec<f64>, Vec<f64>)> {
        let mut t = registry::make(name).unwrap();
        let (nq, nv) = t.state_size();
        let mut obs = obs_buf(name);
        (0..n)
            .map(|s| {
                t.reset(s, &mut obs).unwrap();
                let (mut q, mut v) = (vec![0.0; nq], vec![0.0; nv]);
                t.state(&mut q, &mut v);
                (q, v)
            })
            .collect()
    };
    let mean_std = |xs: &[f64]| {
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64;
        (m, v.sqrt())
    };
    let n = 2000;
    // Pendulum: q ~ U(-pi, pi) (std pi/sqrt(3) = 1.81), v = 0.
    let s = sample("pendulum-swingup", n);
    let q: Vec<f64> = s.iter().map(|(q, _)| q[0]).collect();
    assert!(q.iter().all(|x| (-PI..PI).contains(x)));
    let (m, sd) = mean_std(&q);
    assert!(m.abs() < 0.15 && (sd - 1.814).abs() < 0.08, "{m} {sd}");
    assert!(s.iter().all(|(_, v)| v[0] == 0.0));
    // Acrobot: both angles U(-pi, pi), v = 0.
    let s = sample("acrobot-swingup", n);
    for j in 0..2 {
        let q: Vec<f64> = s.iter().map(|(q, _)| q[j]).collect();
        let (m, sd) = mean_std(&q);
        assert!(q.iter().all(|x| (-PI..PI).contains(x)));
        assert!(m.abs() < 0.15 && (sd - 1.814).abs() < 0.08, "{m} {sd}");
    }
    assert!(s.iter().all(|(_, v)| v == &[0.0, 0.0]));
    // Cart-pole swing-up: x ~ 0.01 N, th ~ pi + 0.01 N, v ~ 0.01 N.
    let s = sample("cartpole-swingup", n);
    let (m, sd) = mean_std(&s.iter().map(|(q, _)| q[0]).collect::<Vec<_>>());
    assert!(m.abs() < 1e-3 && (sd - 0.01).abs() < 1e-3, "{m} {sd}");
    let (m, sd) = mean_std(&s.iter().map(|(q, _)| q[1]).collect::<Vec<_>>());
    assert!(
        (m - PI).abs() < 1e-3 && (sd - 0.01).abs() < 1e-3,
        "{m} {sd}"
    );
    let (m, sd) = mean_std(&s.iter().map(|(_, v)| v[1]).collect::<Vec<_>>());
    assert!(m.abs() < 1e-3 && (sd - 0.01).abs() < 1e-3, "{m} {sd}");
    // Cart-pole balance: x ~ U(-0.1, 0.1), th ~ U(-0.034, 0.034), v ~ 0.01 N.
    let s = sample("cartpole-balance", n);
    assert!(s
        .iter()
        .all(|(q, _)| q[0].abs() <= 0.1 && q[1].abs() <= 0.034));
    let (_, sd) = mean_std(&s.iter().map(|(q, _)| q[1]).collect::<Vec<_>>());
    assert!((sd - 0.034 / 3f64.sqrt()).abs() < 0.002, "{sd}");
    let (_, sd) = mean_std(&s.iter().map(|(_, v)| v[0]).collect::<Vec<_>>());
    assert!((sd - 0.01).abs() < 1e-3, "{sd}");
}

#[test]
fn bad_input_is_an_error_and_out_of_range_is_clamped() {
    for name in NATIVE {
        let mut t = registry::make(name).unwrap();
        let mut obs = obs_buf(name);
        assert_eq!(t.step(&[0.0], &mut obs), Err(TaskError::NotReset), "{name}");
        t.reset(1, &mut obs).unwrap();
        assert_eq!(
            t.step(&[0.0, 0.0], &mut obs),
            Err(TaskError::ActionSize {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(
            t.step(&[], &mut obs),
            Err(TaskError::ActionSize {
                expected: 1,
                got: 0
            })
        );
        let err = t.step(&[f64::NAN], &mut obs).unwrap_err();
        assert!(
            matches!(err, TaskError::NonFiniteAction { index: 0, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("NaN"), "{err}");
        assert!(matches!(
            t.step(&[f64::INFINITY], &mut obs),
            Err(TaskError::NonFiniteAction { index: 0, .. })
        ));
        let mut short = vec![0.0; obs.len() - 1];
        assert!(matches!(
            t.step(&[0.0], &mut short),
            Err(TaskError::BufferSize { .. })
        ));
        assert!(matches!(
            t.reset(0, &mut short),
            Err(TaskError::BufferSize { .. })
        ));
        // Rejected steps did not advance the state: a reset-and-step from
        // the same seed gives the same observation.
        let mut fresh = registry::make(name).unwrap();
        let mut o2 = obs_buf(name);
        fresh.reset(1, &mut o2).unwrap();
        let a = t.step(&[0.3], &mut obs).unwrap();
        let b = fresh.step(&[0.3], &mut o2).unwrap();
        assert_eq!((a, &obs), (b, &o2), "{name}");
        // Finite out-of-range actions act like the nearest bound (the
        // suite's ctrlrange clamp).
        let (mut hi, mut one) = (registry::make(name).unwrap(), registry::make(name).unwrap());
        let (mut oh, mut oo) = (obs_buf(name), obs_buf(name));
        hi.reset(3, &mut oh).unwrap();
        one.reset(3, &mut oo).unwrap();
        for _ in 0..20 {
            hi.step(&[7.5], &mut oh).unwrap();
            one.step(&[1.0], &mut oo).unwrap();
        }
        assert_eq!(oh, oo, "{name}: +7.5 should act as +1");
    }
}

#[test]
fn lqr_keeps_the_balance_task_upright() {
    let mut t = registry::make("cartpole-balance").unwrap();
    let mut obs = obs_buf("cartpole-balance");
    for seed in 0..5 {
        t.reset(seed, &mut obs).unwrap();
        let mut ret = 0.0;
        for k in 0..1000 {
            let th = obs[2].atan2(obs[1]);
            let f = BALANCE_GAIN[0] * obs[0]
                + BALANCE_GAIN[1] * th
                + BALANCE_GAIN[2] * obs[3]
                + BALANCE_GAIN[3] * obs[4];
            let st = t.step(&[f / cartpole::GEAR], &mut obs).unwrap();
            ret += st.reward;
            assert!(
                obs[1] > 0.99,
                "seed {seed} step {k}: pole fell, cos {}",
                obs[1]
            );
            assert!(
                obs[0].abs() < 0.25,
                "seed {seed} step {k}: cart drifted to {}",
                obs[0]
            );
        }
        assert!(ret > 950.0, "seed {seed}: return {ret}");
    }
    // Control: without the controller the pole falls.
    t.reset(0, &mut obs).unwrap();
    let mut min_cos: f64 = 1.0;
    for _ in 0..1000 {
        t.step(&[0.0], &mut obs).unwrap();
        min_cos = min_cos.min(obs[1]);
    }
    assert!(min_cos < 0.0, "uncontrolled pole never fell: {min_cos}");
}

/// Known low range of a uniform random policy on the suite (published
/// baselines: pendulum ~0, cartpole-swingup ~25-30, acrobot ~0-10).
#[test]
fn random_policy_scores_low_on_swingup_tasks() {
    for (name, hi) in [
        ("pendulum-swingup", 50.0),
        ("cartpole-swingup", 100.0),
        ("acrobot-swingup", 30.0),
    ] {
        let mut t = registry::make(name).unwrap();
        let mut p = policy::make(PolicyKind::Random, name).unwrap();
        let mut total = 0.0;
        for seed in 0..3 {
            total += run_episode(t.as_mut(), p.as_mut(), seed).unwrap().ret;
        }
        let mean = total / 3.0;
        assert!((0.0..hi).contains(&mean), "{name}: random return {mean}");
    }
}

/// The scripted swing policy pumps enough energy to score clearly above
/// random on every task (it is what the README's first command runs).
#[test]
fn swing_policy_beats_random() {
    for (name, lo) in [
        ("pendulum-swingup", 300.0),
        ("cartpole-swingup", 300.0),
        ("cartpole-balance", 900.0),
    ] {
        let mut t = registry::make(name).unwrap();
        let mut p = policy::make(PolicyKind::Swing, name).unwrap();
        let r = run_episode(t.as_mut(), p.as_mut(), 0).unwrap();
        assert_eq!(r.steps, 1000);
        assert!(r.ret > lo, "{name}: swing return {}", r.ret);
    }
}

/// `reward_from_observation` (the trainer's `reward_from` for bags without
/// a reward topic) gives exactly the reward `step` returned, from the
/// applied action and the next observation alone, on trajectories that
/// reach the rewarded states (the swing policy) and that push the action
/// past its bounds (random x 1.5); tasks whose reward is not in the
/// observation say `None`.
#[test]
fn reward_from_observation_is_the_step_reward() {
    let with = ["pendulum-swingup", "cartpole-swingup", "cartpole-balance"];
    for name in NATIVE {
        let mut t = registry::make(name).unwrap();
        let judge = registry::make(name).unwrap();
        let mut obs = obs_buf(name);
        let mut action = vec![0.0; t.spec().action_size];
        let (mut some, mut rewarded) = (0, 0.0);
        for (seed, kind) in [(0, PolicyKind::Swing), (1, PolicyKind::Random)] {
            let Ok(mut pol) = policy::make(kind, name) else {
                continue;
            };
            t.reset(seed, &mut obs).unwrap();
            pol.reset(seed);
            for k in 0..1000 {
                pol.act(&obs, &mut action);
                if kind == PolicyKind::Random {
                    action.iter_mut().for_each(|a| *a *= 1.5);
                }
                let st = t.step(&action, &mut obs).unwrap();
                match judge.reward_from_observation(&action, &obs) {
                    Some(r) => {
                        assert_eq!(r, st.reward, "{name} seed {seed} step {k}");
                        some += 1;
                        rewarded += r;
                    }
                    None => assert!(!with.contains(&name), "{name}: no observed reward"),
                }
            }
        }
        if with.contains(&name) {
            assert!(
                some >= 1000 && rewarded > 100.0,
                "{name}: {some} steps, {rewarded}"
            );
        }
        assert_eq!(judge.reward_from_observation(&action, &obs[1..]), None);
    }
}
