//! Offline training from robot logs: bags written with
//! the node's and the sim's own writer ([`BagWriter`]) from the native
//! cart-pole, turned into agent steps, trained on with real libtorch,
//! exported and evaluated; `--init` from a bundle and from a checkpoint;
//! bad logs and bad options refused with the reason named.

mod common;

use common::tmpdir;
use dream_mpc::bag::write::{BagOptions, BagWriter, Step};
use dream_mpc::load::Bundle;
use dream_mpc::rng::Rng;
use dream_mpc_trainer::init::{check_references, InitSource};
use dream_mpc_trainer::learner::Learner;
use dream_mpc_trainer::model::ModelConfig;
use dream_mpc_trainer::offline::{load_logs, train_offline, LogOptions, OfflineOptions};
use dream_mpc_trainer::tasks;
use dream_mpc_trainer::train::{RunOptions, RunSummary, TrainConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const TASK: &str = "cartpole-swingup";
const T0: u64 = 1_790_000_000_000_000_000;
const DT_NS: u64 = 10_000_000;

/// What a recording did at each control step, keyed by the bits of the
/// observation before it (to check the replay against).
struct Truth {
    /// obs bits -> (action, reward, next obs)
    steps: HashMap<Vec<u32>, (f64, f64, Vec<f32>)>,
    control_steps: u64,
}

fn bits(o: &[f32]) -> Vec<u32> {
    o.iter().map(|v| v.to_bits()).collect()
}

/// Record `episodes` of the native cart-pole at 100 Hz as the sim does:
/// each action held for 2 control steps, except that every ~`slip`
/// agent steps it is held 1 or 3 steps (a controller whose ticks drift
/// against the robot's), every step's observation, applied action, reward
/// (when `reward`) and episode start, and each episode's last observation.
fn record(dir: &Path, episodes: usize, steps: usize, reward: bool, slip: u64) -> Truth {
    let mut task = tasks::make(TASK).unwrap();
    let (o, a) = (task.spec().obs_size, task.spec().action_size);
    let mut opts = BagOptions::new(o, a);
    opts.reward = reward;
    let mut w = BagWriter::create(dir, opts).unwrap();
    let mut rng = Rng::new(7);
    let mut truth = Truth {
        steps: HashMap::new(),
        control_steps: 0,
    };
    let mut seq = 0u64;
    let mut obs = vec![0.0; o];
    let mut next = vec![0.0; o];
    for ep in 0..episodes {
        task.reset(ep as u64, &mut obs).unwrap();
        let (mut act, mut left) = (vec![0.0; a], 0usize);
        for k in 0..steps {
            if left == 0 {
                act = vec![rng.uniform_in(-1.0, 1.0)];
                left = if rng.below(slip as usize) == 0 {
                    1 + 2 * rng.below(2)
                } else {
                    2
                };
            }
            left -= 1;
            let st = task.step(&act, &mut next).unwrap();
            w.write_step(&Step {
                index: seq,
                time_ns: T0 + seq * DT_NS,
                observation: &obs,
                action: Some(&act),
                reward: reward.then_some(st.reward),
                episode_start: (k == 0).then_some(ep as i64),
            })
            .unwrap();
            let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            truth
                .steps
                .insert(bits(&f(&obs)), (act[0], st.reward, f(&next)));
            truth.control_steps += 1;
            seq += 1;
            obs.copy_from_slice(&next);
        }
        w.write_step(&Step {
            index: seq,
            time_ns: T0 + seq * DT_NS,
            observation: &obs,
            action: None,
            reward: None,
            episode_start: None,
        })
        .unwrap();
        seq += 1;
    }
    w.close().unwrap();
    truth
}

fn cfg() -> TrainConfig {
    TrainConfig {
        task: TASK.into(),
        batch: 32,
        eval_episodes: 1,
        model: ModelConfig::tiny(2),
        ..Default::default()
    }
}

fn logs(paths: &[&Path]) -> LogOptions {
    LogOptions {
        paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        log_repeat: None,
        window: None,
        allow_partial: false,
    }
}

fn spec() -> dream_mpc_sim::task::TaskSpec {
    tasks::make(TASK).unwrap().spec().clone()
}

/// Every agent step of the replay is two logged steps that applied one
/// action: its action, the sum of their rewards and the observation after
/// the second; the report's counts add up to the logged steps.
#[test]
fn logs_become_agent_steps_of_held_actions() {
    let dir = tmpdir("offline", "steps");
    let bag = dir.join("bag");
    let truth = record(&bag, 3, 400, true, 12);
    let (r, rep) = load_logs(&logs(&[&bag]), &cfg(), Some(&spec())).unwrap();
    assert_eq!(r.len, 8, "default window 2 x (horizon + 1)");
    assert_eq!(rep.logged_transitions, truth.control_steps);
    assert_eq!(rep.log_repeat, vec![(bag.clone(), 2)]);
    assert!(rep.action_changes > 10, "{rep}");
    assert_eq!(
        rep.logged_transitions,
        2 * (rep.agent_steps + rep.short_run_steps) + rep.action_changes + rep.tail_steps,
        "{rep}"
    );
    assert!(rep.agent_steps > truth.control_steps / 2 * 7 / 10, "{rep}");
    let o = r.obs_size;
    for e in 0..r.episodes() {
        for i in 0..r.len {
            let row = |k: usize| &r.obs[(e * (r.len + 1) + k) * o..(e * (r.len + 1) + k + 1) * o];
            let (a0, r0, mid) = &truth.steps[&bits(row(i))];
            let (a1, r1, after) = &truth.steps[&bits(mid)];
            assert_eq!(a0, a1, "window {e} step {i} spans an action change");
            assert_eq!(r.actions[e * r.len + i], *a0 as f32);
            assert_eq!(r.rewards[e * r.len + i], (r0 + r1) as f32);
            assert_eq!(row(i + 1), after.as_slice(), "window {e} step {i}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A log without rewards (a real robot's) is refused unless `reward_from`
/// names a task; with it, the rewards are the ones the sim recorded.
#[test]
fn reward_from_computes_the_recorded_rewards() {
    let dir = tmpdir("offline", "reward");
    let (with, without) = (dir.join("with"), dir.join("without"));
    record(&with, 2, 200, true, 1_000_000);
    record(&without, 2, 200, false, 1_000_000);
    let e = load_logs(&logs(&[&without]), &cfg(), Some(&spec()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("without") && e.contains("reward_from"), "{e}");
    let (recorded, _) = load_logs(&logs(&[&with]), &cfg(), Some(&spec())).unwrap();
    let c = TrainConfig {
        reward_from: Some(TASK.into()),
        ..cfg()
    };
    let (computed, rep) = load_logs(&logs(&[&without]), &c, Some(&spec())).unwrap();
    assert!(rep.reward.contains(TASK), "{}", rep.reward);
    assert_eq!(computed.obs, recorded.obs);
    assert_eq!(computed.rewards, recorded.rewards);
    assert!(computed.rewards.iter().sum::<f32>() > 1.0);
    // a task whose reward is not in the observation is refused by name
    let c = TrainConfig {
        reward_from: Some("nope".into()),
        ..cfg()
    };
    let e = load_logs(&logs(&[&without]), &c, Some(&spec()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

fn run_opts(out: &Path) -> RunOptions {
    RunOptions::new(out)
}

fn offline(paths: &[&Path], init: Option<PathBuf>, updates: u64) -> OfflineOptions {
    OfflineOptions {
        logs: logs(paths),
        init,
        updates,
        eval_every: updates / 2,
    }
}

/// `episodes` episodes of 1000 steps with rewards recorded by the sim into
/// a bag in `tmpdir("offline", tag)`, then offline training on it alone
/// (from `init`, for `updates` updates) into its `run` folder: the scratch
/// folder (for the caller to remove), the run folder and the summary.
fn train_on_a_recorded_bag(
    tag: &str,
    episodes: usize,
    init: Option<PathBuf>,
    updates: u64,
) -> (PathBuf, PathBuf, RunSummary) {
    let dir = tmpdir("offline", tag);
    let bag = dir.join("bag");
    record(&bag, episodes, 1000, true, 15);
    let out = dir.join("run");
    let s = train_offline(
        &cfg(),
        Some(tasks::make(TASK).unwrap()),
        &run_opts(&out),
        &offline(&[&bag], init, updates),
    )
    .unwrap();
    (dir, out, s)
}

/// Training from a bag alone: the losses fall, a bundle the controller
/// loads is exported, the policy and the planner are evaluated on the
/// simulator at the start, halfway and at the end, and metrics.csv, the
/// curves and the dataset report are written. Then `--init` from that
/// run's checkpoint and from its bundle start from its weights.
#[test]
fn trains_from_a_bag_and_fine_tunes_from_its_result() {
    let (dir, out, s) = train_on_a_recorded_bag("train", 2, None, 400);
    assert_eq!(s.updates, 400);
    let (first, last) = (s.losses[..50].iter(), s.losses[350..].iter());
    let mean = |it: std::slice::Iter<'_, dream_mpc_trainer::metrics::Losses>| {
        let v: Vec<f64> = it.map(|l| l.reward).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (r0, r1) = (mean(first), mean(last));
    assert!(r1 < 0.7 * r0, "reward loss {r0} -> {r1}");
    let evals: Vec<_> = s
        .metrics
        .iter()
        .filter(|m| m.eval_return.is_some())
        .collect();
    assert_eq!(
        evals.iter().map(|m| m.updates).collect::<Vec<_>>(),
        vec![0, 200, 400]
    );
    assert!(evals
        .iter()
        .all(|m| m.eval_planner_return.is_some_and(f64::is_finite)));
    Bundle::load(&s.bundle).unwrap();
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4 + 3, "{csv}");
    for png in ["learning_curve.png", "loss_curve.png"] {
        assert!(std::fs::read(out.join(png))
            .unwrap()
            .starts_with(b"\x89PNG"));
    }
    assert!(std::fs::read_to_string(out.join("dataset.txt"))
        .unwrap()
        .contains("agent steps"));

    // --init from the run folder (its checkpoint) and from its bundle
    for (src, tag) in [(out.clone(), "checkpoint"), (s.bundle.clone(), "bundle")] {
        let found = InitSource::find(&src).unwrap();
        assert!(
            format!("{found:?}").to_lowercase().contains(tag),
            "{found:?}"
        );
        let mc = found.model_config(&ModelConfig::default()).unwrap();
        assert_eq!(
            (mc.latent, mc.hidden, mc.n_q, mc.num_bins),
            (16, 32, 2, 101),
            "{tag}"
        );
        let c = TrainConfig { model: mc, ..cfg() };
        let mut agent = Learner::new(&c, 5, 1, 16, tch::Device::Cpu);
        let what = found.apply(&mut agent).unwrap();
        assert!(what.contains(tag), "{what}");
        // the loaded model is the trained one: it reproduces the bundle
        check_references(&s.bundle, &agent.model).unwrap();
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A cart-pole model of an older exporter (scalar reward and value heads;
/// the bundle shipped until 2026-12-07, kept as a fixture) is read back
/// exactly, and a model that is not it fails the reference check;
/// fine-tuning it exports a bundle of the same shape.
#[test]
fn fine_tunes_an_older_exporters_bundle() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cartpole-scalar-heads");
    let src = InitSource::find(&shipped).unwrap();
    let mc = src.model_config(&ModelConfig::default()).unwrap();
    assert_eq!((mc.latent, mc.hidden, mc.num_bins), (32, 128, 1));
    let c = TrainConfig { model: mc, ..cfg() };
    let fresh = Learner::new(&c, 5, 1, 16, tch::Device::Cpu);
    let e = check_references(&shipped, &fresh.model)
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not reproduce"), "{e}");

    let (dir, _, s) = train_on_a_recorded_bag("finetune", 1, Some(shipped.clone()), 40);
    // the first evaluation is the shipped model itself: it swings up
    let start = s.metrics.iter().find_map(|m| m.eval_return).unwrap();
    assert!(start > 500.0, "shipped policy scored {start}");
    let b = Bundle::load(&s.bundle).unwrap();
    assert_eq!(b.manifest.q_ensemble, 5);
    assert_eq!(b.manifest.latent.size(), 32);
    let _ = std::fs::remove_dir_all(dir);
}

/// Bad logs and options: the reason and the file are named.
#[test]
fn bad_logs_and_options_are_refused() {
    let dir = tmpdir("offline", "bad");
    let bag = dir.join("bag");
    record(&bag, 1, 100, true, 1_000_000);
    let err = |l: LogOptions, c: &TrainConfig, s: Option<&dream_mpc_sim::task::TaskSpec>| {
        load_logs(&l, c, s).unwrap_err().to_string()
    };
    // sizes of another task: the reader names the file and topic
    let pend = tasks::make("pendulum-swingup").unwrap().spec().clone();
    let e = err(logs(&[&bag]), &cfg(), Some(&pend));
    assert!(e.contains("bag") && e.contains("observation"), "{e}");
    // a task the registry lacks needs --log-repeat
    let e = err(logs(&[&bag]), &cfg(), None);
    assert!(e.contains("--log-repeat"), "{e}");
    let mut l = logs(&[&bag]);
    l.log_repeat = Some(2);
    assert!(load_logs(&l, &cfg(), None).is_ok());
    // a window no longer than the horizon, no bag, a missing bag
    let mut l = logs(&[&bag]);
    l.window = Some(3);
    assert!(err(l, &cfg(), Some(&spec())).contains("--window 3"));
    assert!(err(logs(&[]), &cfg(), Some(&spec())).contains("no bag"));
    let e = err(logs(&[&dir.join("missing")]), &cfg(), Some(&spec()));
    assert!(e.contains("missing"), "{e}");
    // the logged steps per agent step follow the action repeat: at 3,
    // actions held for 2 steps never make an agent step
    let c = TrainConfig {
        action_repeat: 3,
        ..cfg()
    };
    let e = err(logs(&[&bag]), &c, Some(&spec()));
    assert!(e.contains("bag x3") && e.contains("no run of 8"), "{e}");
    // --init: a folder that is neither a checkpoint nor a bundle
    let e = InitSource::find(&dir).unwrap_err().to_string();
    assert!(e.contains("neither a checkpoint"), "{e}");
    // --resume is refused for offline runs
    let mut ro = run_opts(&dir.join("run"));
    ro.resume = true;
    let e = train_offline(&cfg(), None, &ro, &offline(&[&bag], None, 10))
        .unwrap_err()
        .to_string();
    assert!(e.contains("--init"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A bag of `n` steps of the cart-pole's sizes: the action is held for 2
/// logged steps for the first `held` steps and changes every step after,
/// and observation element 0 of step `big.0` is `big.1`.
fn synthetic(dir: &Path, n: u64, held: u64, big: (u64, f64)) {
    let spec = spec();
    let (o, a) = (spec.obs_size, spec.action_size);
    let mut opts = BagOptions::new(o, a);
    opts.reward = true;
    let mut w = BagWriter::create(dir, opts).unwrap();
    for k in 0..n {
        let mut obs = vec![0.01 * k as f64; o];
        if k == big.0 {
            obs[0] = big.1;
        }
        let act = vec![
            if k < held {
                (k / 2) as f64 * 0.01
            } else {
                (k % 3) as f64 * 0.1
            };
            a
        ];
        w.write_step(&Step {
            index: k,
            time_ns: T0 + k * DT_NS,
            observation: &obs,
            action: Some(&act),
            reward: Some(0.5),
            episode_start: (k == 0).then_some(0),
        })
        .unwrap();
    }
    w.close().unwrap();
}

/// A finite observation the model cannot train on (1e30: once a NaN in
/// the first LayerNorm and a two-hot index of -2^63, a panic) is refused
/// at load, naming the bag and the step; and a log of which fewer than
/// half of the steps are usable stops with the counts unless
/// `allow_partial` is set.
#[test]
fn logs_the_model_cannot_train_on_are_refused() {
    let dir = tmpdir("offline", "hostile");
    let huge = dir.join("huge");
    synthetic(&huge, 200, 200, (37, 1e30));
    let e = load_logs(&logs(&[&huge]), &cfg(), Some(&spec()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("huge") && e.contains("1e30") && e.contains("observation"),
        "{e}"
    );
    let part = dir.join("partial");
    synthetic(&part, 400, 100, (u64::MAX, 0.0));
    let e = load_logs(&logs(&[&part]), &cfg(), Some(&spec()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("of 400 logged steps are usable"), "{e}");
    let mut l = logs(&[&part]);
    l.allow_partial = true;
    let (_, rep) = load_logs(&l, &cfg(), Some(&spec())).unwrap();
    assert!(rep.agent_steps > 0 && rep.agent_steps < 100, "{rep}");
    let _ = std::fs::remove_dir_all(dir);
}
